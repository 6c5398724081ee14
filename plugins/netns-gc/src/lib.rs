//! netns-gc: the orchestrator names a network namespace `ns-<slot>` for each
//! sandbox and keeps a pool of empty ones while it runs. Namespaces leak when
//! it crashes; firecracker processes outlive an orchestrator that was killed.
//!
//! While the orchestrator runs (it holds `flock` on its lock file) this plugin
//! deletes nothing: it estimates the leak against the pool and escalates past a
//! threshold. Only while it is stopped, and only for namespaces unused on two
//! scans `rescan_after` apart with the same inode, does it propose deletion,
//! host-side link first. Firecracker processes with no running orchestrator
//! above them, on both scans, are signalled. Names other than `ns-1` to
//! `ns-32766` are never touched.

mod decide;
mod scan;

use decide::{Decision, Limits, decide, estimated_leak};
use remedy_sdk::{
    Action, ActionStatus, Check, Error, Incident, Plan, Plugin, PluginInfo, grants, netns,
    parse_duration, proc,
};
use scan::{Scan, slot};
use std::collections::BTreeMap;

struct NetnsGc;

impl Plugin for NetnsGc {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "netns-gc",
            env!("CARGO_PKG_VERSION"),
            "Deletes the orchestrator's leaked network namespaces (ns-1 to ns-32766) while it is \
             stopped, after two scans agree, and signals orphaned firecracker processes.",
        )
        .param(
            "lock_file",
            "File the orchestrator holds a flock on while it runs.",
            Some("/orchestrator.lock"),
        )
        .param(
            "pool_size",
            "Empty namespaces the running orchestrator keeps on purpose.",
            Some("132"),
        )
        .param(
            "leak_threshold",
            "Escalate when unused namespaces exceed the pool by more than this.",
            Some("100"),
        )
        .param(
            "rescan_after",
            "Time between the two scans that must agree before acting.",
            Some("3m"),
        )
        .param(
            "host_link",
            "Host-side link of a slot, `{n}` standing for the slot; empty for none.",
            Some("veth-{n}"),
        )
        .param(
            "firecracker",
            "File name of the sandbox VMM's executable.",
            Some("firecracker"),
        )
        .param(
            "signal",
            "Signal for orphaned firecracker processes.",
            Some("TERM"),
        )
        .param(
            "max_deletes",
            "At most this many namespaces deleted per round.",
            Some("1000"),
        )
        .action_kind("netns-delete")
        .action_kind("process-signal")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| "expected a whole number".to_string())
        };
        let limits = Limits {
            pool_size: incident.param_with("pool_size", number)?,
            leak_threshold: incident.param_with("leak_threshold", number)?,
            max_deletes: incident.param_with("max_deletes", number)?,
        };
        let rescan_after = incident.param_with("rescan_after", parse_duration)?;
        let rescan_secs = u32::try_from(rescan_after).unwrap_or(u32::MAX);
        let lock_file = incident.param("lock_file").unwrap_or("/orchestrator.lock");
        let firecracker = incident.param("firecracker").unwrap_or("firecracker");

        let look = look(lock_file, firecracker)?;
        let scan = &look.scan;
        let before = incident.memo.as_deref().and_then(Scan::from_memo);
        let signalled: Vec<(u32, u64)> = incident
            .history
            .iter()
            .filter(|r| r.status == ActionStatus::Done)
            .filter_map(|r| match &r.action {
                Action::ProcessSignal(s) => Some((s.pid, s.start_time)),
                _ => None,
            })
            .collect();

        let mut plan = Plan::new("");
        plan.checks = look.checks(&limits);
        if let Some(before) = before
            .as_ref()
            .filter(|_| !scan.online && !scan.unused.is_empty())
        {
            let kept = scan
                .unused
                .iter()
                .filter(|(slot, inode)| before.unused.get(slot) == Some(inode))
                .count();
            plan = plan.check(Check::pass(
                "rescan",
                format!(
                    "{kept} of {} unused namespaces were unused with the same inode on the previous scan",
                    scan.unused.len()
                ),
            ));
        }

        match decide(scan, before.as_ref(), &signalled, &limits) {
            Decision::Nothing(why) => plan.summary = why,
            Decision::Escalate(why) => {
                plan.summary = "a human should look at this host's sandboxes".into();
                plan = plan.escalate(why);
            }
            Decision::Watch(what) => {
                plan.summary = format!("{what}; looking again before acting");
                plan = plan.recheck_after(rescan_secs).memo(scan.to_memo());
            }
            Decision::Act {
                signals,
                deletes,
                rescan,
            } => {
                let signal = incident.param("signal").unwrap_or("TERM");
                let template = incident.param("host_link").unwrap_or("");
                let links = if template.is_empty() {
                    Vec::new()
                } else {
                    netns::links()?
                };
                for pid in &signals {
                    plan = plan.act(Action::signal(
                        &look.orphans[pid],
                        signal,
                        false,
                        "orphaned firecracker: no running orchestrator above it on two scans",
                    ));
                }
                for slot in &deletes {
                    let link = template.replace("{n}", &slot.to_string());
                    let link = links.contains(&link).then_some(link.as_str());
                    plan = plan.act(Action::delete_netns(
                        &look.namespaces[slot],
                        link,
                        format!(
                            "unused on two scans {} apart while the orchestrator was stopped",
                            incident.param("rescan_after").unwrap_or("3m")
                        ),
                    ));
                }
                let mut doing = Vec::new();
                if !signals.is_empty() {
                    doing.push(format!(
                        "signal {} orphaned firecracker processes",
                        signals.len()
                    ));
                }
                if !deletes.is_empty() {
                    doing.push(format!("delete {} leaked namespaces", deletes.len()));
                }
                plan.summary = doing.join(", then ");
                let missing = grants::not_allowed(&plan.actions);
                if !missing.is_empty() {
                    plan.actions.clear();
                    return Ok(plan.escalate(format!(
                        "this would {}, but needs {}, which this plugin is not granted",
                        doing.join(", then "),
                        missing.join(", ")
                    )));
                }
                if rescan {
                    plan = plan.recheck_after(rescan_secs).memo(scan.to_memo());
                }
            }
        }
        Ok(plan)
    }
}

/// One look at the host, with what the actions will need.
struct Look {
    scan: Scan,
    lock_file: String,
    /// `None`: the lock file does not exist.
    holders: Option<Vec<Option<u32>>>,
    namespaces: BTreeMap<u32, netns::Namespace>,
    foreign: usize,
    firecrackers: usize,
    orphans: BTreeMap<u32, proc::Process>,
}

fn look(lock_file: &str, firecracker: &str) -> Result<Look, Error> {
    let holders = match proc::file_locks(lock_file) {
        Ok(locks) => Some(locks.into_iter().map(|l| l.pid).collect::<Vec<_>>()),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let online = holders.as_ref().is_some_and(|h| !h.is_empty());
    let processes = proc::processes()?;
    let firecrackers: Vec<&proc::Process> = processes
        .iter()
        .filter(|p| p.exe_name() == firecracker)
        .collect();
    // A lock with no owning process (an OFD lock) hides which firecrackers are
    // the orchestrator's, so then none counts as orphaned.
    let orphans: BTreeMap<u32, proc::Process> = match &holders {
        Some(h) if h.iter().any(Option::is_none) => BTreeMap::new(),
        _ => {
            let roots: Vec<u32> = holders.iter().flatten().flatten().copied().collect();
            let tree = proc::descendants(&processes, &roots);
            firecrackers
                .iter()
                .filter(|p| !tree.contains(&p.pid))
                .map(|p| (p.pid, (*p).clone()))
                .collect()
        }
    };

    let mut scan = Scan {
        online,
        orphans: orphans
            .iter()
            .map(|(pid, p)| (*pid, p.start_time))
            .collect(),
        ..Scan::default()
    };
    let mut namespaces = BTreeMap::new();
    let mut foreign = 0;
    for namespace in netns::namespaces()? {
        let Some(slot) = slot(&namespace.name) else {
            foreign += 1;
            continue;
        };
        if namespace.pids.is_empty() {
            scan.unused.insert(slot, namespace.inode);
        } else {
            scan.in_use += 1;
        }
        namespaces.insert(slot, namespace);
    }
    Ok(Look {
        scan,
        lock_file: lock_file.into(),
        holders,
        namespaces,
        foreign,
        firecrackers: firecrackers.len(),
        orphans,
    })
}

impl Look {
    fn checks(&self, limits: &Limits) -> Vec<Check> {
        let scan = &self.scan;
        let mut checks = vec![match &self.holders {
            Some(holders) if !holders.is_empty() => {
                let pids: Vec<String> = holders
                    .iter()
                    .map(|p| p.map_or("an open file description".into(), |p| format!("pid {p}")))
                    .collect();
                Check::pass(
                    "orchestrator",
                    format!("running: {} holds {}", pids.join(", "), self.lock_file),
                )
            }
            Some(_) => Check::warn(
                "orchestrator",
                format!("stopped: nobody holds {}", self.lock_file),
            ),
            None => Check::warn(
                "orchestrator",
                format!("stopped: {} does not exist", self.lock_file),
            ),
        }];
        let mut namespaces = format!(
            "{} orchestrator namespaces: {} unused, {} with processes inside",
            scan.unused.len() + scan.in_use,
            scan.unused.len(),
            scan.in_use
        );
        if self.foreign > 0 {
            namespaces.push_str(&format!("; {} other names left alone", self.foreign));
        }
        checks.push(Check::pass("namespaces", namespaces));
        if scan.online {
            let leak = estimated_leak(scan, limits);
            let detail = format!(
                "estimated leak {leak}: {} unused against a pool of {} (escalates above {})",
                scan.unused.len(),
                limits.pool_size,
                limits.leak_threshold
            );
            checks.push(if leak > limits.leak_threshold {
                Check::fail("pool", detail)
            } else {
                Check::pass("pool", detail)
            });
        }
        checks.push(if self.orphans.is_empty() {
            Check::pass(
                "firecracker",
                format!("{} running, none orphaned", self.firecrackers),
            )
        } else {
            let pids: Vec<String> = self.orphans.keys().map(u32::to_string).collect();
            Check::warn(
                "firecracker",
                format!(
                    "{} running, {} with no running orchestrator above them: pids {}",
                    self.firecrackers,
                    self.orphans.len(),
                    pids.join(", ")
                ),
            )
        });
        checks
    }
}

remedy_sdk::export_plugin!(NetnsGc);
