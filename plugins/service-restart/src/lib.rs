//! service-restart: for APIDown and APIHighMemory, restart this node's
//! allocation of the service when its health endpoint does not answer or
//! its memory is above the restart threshold, then watch it until it
//! answers (and its memory is back below) several times in a row.
//!
//! - Past the runbook's escalation condition (memory above
//!   `escalate_above`, or a task ended by the OOM killer) a human is paged
//!   instead of restarting.
//! - When the task is not running because something else holds its port,
//!   that holder is stopped first, but only when its executable is one of
//!   `holders`; any other holder is a human's call.
//! - Not back within `confirm_within`: escalate.

pub mod decide;

use decide::{Memory, Port, Seen, Verdict, bytes, url_port};
use remedy_nomad_steps::{self as steps, JobRef, describe_alloc, restarted, short};
use remedy_sdk::nomad::Allocation;
use remedy_sdk::watch::Watch;
use remedy_sdk::{
    Action, Check, Error, Incident, Plan, Plugin, PluginInfo, grants, http, proc, prometheus,
};

struct ServiceRestart;

impl Plugin for ServiceRestart {
    fn describe() -> PluginInfo {
        steps::job_params(PluginInfo::new(
            "service-restart",
            env!("CARGO_PKG_VERSION"),
            "Restarts this node's allocation of a service that does not answer its health \
             check or outgrew its memory, stops an allowed stale holder of its port, then \
             confirms it answers again; pages past the memory or OOM limit.",
        ))
        .param(
            "health",
            "Health endpoint; 2xx means it answers. Needs an `http_urls` grant.",
            Some("http://127.0.0.1:3000/health"),
        )
        .param(
            "memory",
            "PromQL for its resident memory in bytes (the largest series counts). Empty: \
             memory is not looked at.",
            Some(""),
        )
        .param(
            "memory_limit",
            "The memory the service may use, e.g. 4GB.",
            Some("4GB"),
        )
        .param(
            "restart_above",
            "Restart above this percentage of memory_limit.",
            Some("85"),
        )
        .param(
            "escalate_above",
            "Page a human instead above this percentage of memory_limit.",
            Some("95"),
        )
        .param(
            "holders",
            "Comma-separated executables (`*` within a segment) of a stale holder of the \
             port that may be stopped. Empty: a held port is a human's call.",
            Some(""),
        )
        .param(
            "port",
            "The port the service listens on. Empty: the health endpoint's.",
            Some(""),
        )
        .confirm_params("10s", "5m")
        .action_kind("nomad-restart-alloc")
        .action_kind("process-signal")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let rules = Rules::of(&incident)?;
        let job = JobRef::of(&incident)?;
        let health = probe(&rules.health);
        let rss = rules.memory.as_deref().map(resident_memory);
        let mut checks = vec![health.check.clone()];
        checks.extend(rss.as_ref().map(|r| r.check(rules.memory_limits)));
        let rss = rss.and_then(|r| r.bytes);
        if !restarted(&incident).is_empty() {
            return Ok(confirm(&incident, &rules, health.answers, rss, checks));
        }
        let (node, alloc) = match steps::allocation_here(&incident, &job)? {
            Ok(here) => here,
            Err(why) => {
                return Ok(
                    with_checks(Plan::new(format!("not restarting {}", job.id)), checks)
                        .escalate(why),
                );
            }
        };
        checks.insert(0, steps::node_check(&node));
        checks.push(Check::pass("allocation", describe_alloc(&alloc)));
        let seen = Seen {
            answers: health.answers,
            rss,
            oom_killed: alloc.task_states.iter().any(|t| t.oom_killed),
        };
        let plan = with_checks(Plan::new(""), checks);
        match decide::verdict(&seen, rules.memory_limits) {
            Verdict::Fine => Ok(Plan {
                summary: format!(
                    "{} answers on {} and its memory is below the threshold: nothing to restart",
                    job.id, node.name
                ),
                ..plan
            }),
            Verdict::Escalate(why) => Ok(Plan {
                summary: format!("{} on {} needs a human", job.id, node.name),
                ..plan
            }
            .escalate(why)),
            Verdict::Restart(why) => restart(plan, &rules, &alloc, &node.name, &job, why),
        }
    }
}

/// The parameters, checked.
struct Rules {
    health: String,
    memory: Option<String>,
    memory_limits: Memory,
    holders: Vec<String>,
    port: u16,
    watch: Watch<'static>,
}

impl Rules {
    fn of(incident: &Incident) -> Result<Rules, Error> {
        let health = incident.param("health").unwrap_or_default().to_string();
        let limit = incident.param_with("memory_limit", |s| {
            s.parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|e| format!("expected a size such as 4GB: {e}"))
        })?;
        let share = |name| {
            incident
                .param_with(name, remedy_sdk::parse_percent)
                .map(|p| (limit as f64 * p / 100.0) as u64)
        };
        let memory_limits = Memory {
            restart_above: share("restart_above")?,
            escalate_above: share("escalate_above")?,
        };
        let port = match incident.param("port").filter(|p| !p.is_empty()) {
            Some(_) => incident.param_with("port", |s| {
                s.parse::<u16>()
                    .map_err(|_| "expected a port number".to_string())
            })?,
            None => url_port(&health).ok_or_else(|| {
                Error::Invalid(format!(
                    "parameter `health` = {health:?} is not an http(s) URL with a port"
                ))
            })?,
        };
        Ok(Rules {
            health,
            memory: incident
                .param("memory")
                .filter(|q| !q.trim().is_empty())
                .map(str::to_string),
            memory_limits,
            holders: incident.param_list("holders"),
            port,
            watch: Watch::from_params(incident, "recovery")?,
        })
    }
}

struct Probe {
    answers: bool,
    check: Check,
}

/// One GET of the health endpoint: 2xx answers.
fn probe(url: &str) -> Probe {
    match http::get(url, 256) {
        Ok(answer) => {
            let saw = format!(
                "{url}: status {} in {} ms",
                answer.status, answer.elapsed_ms
            );
            let answers = (200..300).contains(&answer.status);
            Probe {
                answers,
                check: if answers {
                    Check::pass("health", saw)
                } else {
                    Check::fail("health", saw)
                },
            }
        }
        Err(error) => Probe {
            answers: false,
            check: Check::fail("health", format!("{url}: {}", error.describe())),
        },
    }
}

struct Rss {
    query: String,
    bytes: Option<u64>,
    error: Option<String>,
}

/// The largest resident memory among the query's series.
fn resident_memory(query: &str) -> Rss {
    let (bytes, error) = match prometheus::query(query) {
        Ok(series) => (
            prometheus::largest(&series)
                .filter(|v| *v >= 0.0)
                .map(|v| v as u64),
            None,
        ),
        Err(error) => (None, Some(error.describe())),
    };
    Rss {
        query: query.to_string(),
        bytes,
        error,
    }
}

impl Rss {
    fn check(&self, limits: Memory) -> Check {
        match (self.bytes, &self.error) {
            (Some(rss), _) => {
                let saw = format!(
                    "{}: {} (restart above {})",
                    self.query,
                    bytes(rss),
                    bytes(limits.restart_above)
                );
                if rss > limits.restart_above {
                    Check::fail("memory", saw)
                } else {
                    Check::pass("memory", saw)
                }
            }
            (None, Some(error)) => Check::warn("memory", format!("{}: {error}", self.query)),
            (None, None) => Check::warn("memory", format!("{}: no result", self.query)),
        }
    }
}

fn with_checks(mut plan: Plan, checks: Vec<Check>) -> Plan {
    plan.checks.extend(checks);
    plan
}

/// The restart, preceded by stopping an allowed stale holder of the port
/// when the task is not running because its port is taken.
fn restart(
    plan: Plan,
    rules: &Rules,
    alloc: &Allocation,
    node: &str,
    job: &JobRef,
    why: String,
) -> Result<Plan, Error> {
    let mut plan = Plan {
        summary: format!(
            "restart {} allocation {} on {}: {why}",
            job.id,
            short(&alloc.id),
            node
        ),
        ..plan
    };
    let task_down = alloc.task_states.iter().any(|t| t.state != "running");
    if task_down {
        let listeners = proc::listeners(rules.port)?;
        match decide::port(&listeners, &rules.holders) {
            Port::Free => {
                plan = plan.check(Check::pass("port", format!("port {} is free", rules.port)));
            }
            Port::HeldByOther(holder) => {
                return Ok(plan.check(port_check(rules.port, holder)).escalate(format!(
                    "port {} is held by pid {} ({}), which `holders` does not allow remedy to stop",
                    rules.port, holder.pid, holder.exe
                )));
            }
            Port::HeldByAllowed(holders) => {
                for holder in holders {
                    plan = plan
                        .check(port_check(rules.port, holder))
                        .act(Action::signal_listener(
                            holder,
                            "TERM",
                            format!(
                                "holds port {} that {} needs, while its task is not running",
                                rules.port, job.id
                            ),
                        ));
                }
            }
        }
    }
    plan = plan.act(Action::restart_alloc(alloc, None, why));
    let missing = grants::not_allowed(&plan.actions);
    if !missing.is_empty() {
        plan.actions.clear();
        return Ok(plan.escalate(format!(
            "the fix needs {}, which this plugin is not granted",
            missing.join(" and ")
        )));
    }
    Ok(plan.recheck_after(rules.watch.every_secs))
}

fn port_check(port: u16, holder: &proc::Listener) -> Check {
    Check::warn(
        "port",
        format!(
            "port {port} is held by pid {} ({}) on {}",
            holder.pid, holder.exe, holder.address
        ),
    )
}

/// After the restart: one look a round until it answers (and its memory
/// is below the restart threshold) enough times in a row, or page.
fn confirm(
    incident: &Incident,
    rules: &Rules,
    answers: bool,
    rss: Option<u64>,
    checks: Vec<Check>,
) -> Plan {
    let memory_ok = rss.is_none_or(|rss| rss <= rules.memory_limits.restart_above);
    let saw = match (answers, memory_ok) {
        (true, true) => "answers, memory below the threshold",
        (true, false) => "answers, memory still above the threshold",
        (false, _) => "does not answer",
    };
    let mut plan = rules.watch.round(incident, answers && memory_ok, saw);
    plan.checks.splice(0..0, checks);
    plan
}

remedy_sdk::export_plugin!(ServiceRestart);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_shares_of_the_limit_and_the_port_comes_from_the_url() {
        let incident = Incident::for_test(
            &[],
            &[
                ("health", "http://127.0.0.1:3000/health"),
                ("memory_limit", "4GB"),
                ("restart_above", "85"),
                ("escalate_above", "95"),
                ("port", ""),
                ("confirm_every", "10s"),
                ("confirm_within", "5m"),
                ("confirm_in_a_row", "3"),
            ],
        );
        let rules = Rules::of(&incident).unwrap();
        assert_eq!(rules.memory_limits.restart_above, 3_400_000_000);
        assert_eq!(rules.memory_limits.escalate_above, 3_800_000_000);
        assert_eq!(rules.port, 3000);
        assert_eq!((rules.watch.every_secs, rules.watch.looks), (10, 30));
        assert!(rules.memory.is_none());

        let mut bad = incident.clone();
        bad.params.retain(|(name, _)| name != "memory_limit");
        bad.params.push(("memory_limit".into(), "lots".into()));
        assert!(Rules::of(&bad).is_err());
    }
}
