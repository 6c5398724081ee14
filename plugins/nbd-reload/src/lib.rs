//! nbd-reload: the orchestrator exits at start when the `nbd` module is not
//! loaded. Load it with `nbds_max`, disconnect nbd devices whose server died
//! (nothing holding or mounting them), then restart the orchestrator's
//! allocation on this node only, and confirm it runs on the next round.
//!
//! It never restarts while sandboxes (firecracker processes) are running,
//! unless `allow_disruption` says so.

use remedy_sdk::{
    Action, ActionStatus, Check, Error, Incident, Plan, Plugin, PluginInfo, grants, kmod, nomad,
    parse_duration, proc,
};

struct NbdReload;

impl Plugin for NbdReload {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "nbd-reload",
            env!("CARGO_PKG_VERSION"),
            "Loads nbd with nbds_max, disconnects orphaned nbd devices, and restarts the \
             orchestrator allocation on this node, then confirms it runs.",
        )
        .param("module", "Kernel module to load.", Some("nbd"))
        .param(
            "nbds_max",
            "nbds_max to load the module with.",
            Some("4096"),
        )
        .param(
            "job",
            "Orchestrator job id: this, or this plus `-` and 16 hex digits.",
            Some("orchestrator"),
        )
        .param("namespace", "Nomad namespace of the job.", Some("default"))
        .param(
            "allow_disruption",
            "Restart even while sandboxes (firecracker processes) run (true/false).",
            Some("false"),
        )
        .param(
            "confirm_after",
            "Wait this long after acting before checking the allocation.",
            Some("30s"),
        )
        .action_kind("kmod-load")
        .action_kind("nbd-disconnect")
        .action_kind("nomad-restart-alloc")
        .action_kind("nomad-stop-alloc")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let module = incident.param("module").unwrap_or("nbd").to_string();
        let job = incident.param("job").unwrap_or("orchestrator").to_string();
        let namespace = incident.param("namespace").unwrap_or("default").to_string();
        let confirm_after = incident.param_with("confirm_after", parse_duration)?;
        let allow_disruption = incident.param_with("allow_disruption", |v| {
            v.parse::<bool>()
                .map_err(|_| "expected true or false".to_string())
        })?;
        let node = nomad::local_node()?;
        let allocs: Vec<nomad::Allocation> = nomad::node_allocations(&node.id)?
            .into_iter()
            .filter(|a| {
                a.namespace == namespace && is_job(&a.job_id, &job) && a.desired_status == "run"
            })
            .collect();

        if incident.round > 0 {
            return Ok(confirm(&incident, &module, &allocs));
        }

        let mut plan = Plan::new("");
        let mut actions = Vec::new();
        let loaded = kmod::loaded_module(&module)?;
        match &loaded {
            Some(m) => {
                plan = plan.check(Check::pass(
                    "module",
                    format!("{module} loaded: {}", pairs(&m.parameters)),
                ))
            }
            None => {
                let nbds_max = incident.param("nbds_max").unwrap_or("4096");
                plan = plan.check(Check::fail("module", format!("{module} is not loaded")));
                actions.push(Action::load_module(
                    &module,
                    &[("nbds_max", nbds_max)],
                    "the orchestrator exits at start without it",
                ));
            }
        }
        // Without the module there are no devices to look at.
        let devices = if loaded.is_some() {
            kmod::nbd_devices()?
        } else {
            Vec::new()
        };
        for device in devices.iter().filter(|d| d.owner_pid.is_some()) {
            if device.is_orphan() {
                plan = plan.check(Check::warn(
                    &format!("nbd{}", device.index),
                    format!(
                        "orphaned: server pid {} is gone, nothing holds it",
                        device.owner_pid.unwrap_or(0)
                    ),
                ));
                actions.push(Action::disconnect_nbd(device, "its server process is gone"));
            } else {
                plan = plan.check(Check::pass(
                    &format!("nbd{}", device.index),
                    format!(
                        "in use (server alive: {}, holders {}, mounted: {})",
                        device.owner_alive,
                        device.holders.join(", "),
                        device.mounted
                    ),
                ));
            }
        }

        let sandboxes = proc::processes()?
            .into_iter()
            .filter(|p| p.exe_name() == "firecracker")
            .count();
        match allocs.first() {
            None => {
                plan.summary = format!("no {job} allocation on node {}", node.name);
                return Ok(plan.escalate(format!(
                    "no allocation of {job} is meant to run on node {}; nothing here to restart",
                    node.name
                )));
            }
            Some(alloc) if alloc.is_healthy() && actions.is_empty() => {
                plan.summary = format!(
                    "{job} runs on {} and nbd is ready; nothing to do",
                    node.name
                );
                return Ok(plan.check(Check::pass(
                    "orchestrator",
                    format!("allocation {} running", alloc.id),
                )));
            }
            Some(_) if sandboxes > 0 && !allow_disruption => {
                plan = plan.check(Check::warn(
                    "sandboxes",
                    format!("{sandboxes} firecracker processes running"),
                ));
                if actions.is_empty() {
                    plan.summary = format!("{job} needs a restart, but sandboxes are running");
                    return Ok(plan.escalate(format!(
                        "{sandboxes} sandboxes are running; restart {job} by hand or set allow_disruption=true"
                    )));
                }
            }
            Some(alloc) => {
                plan = plan.check(Check::warn(
                    "orchestrator",
                    format!(
                        "allocation {} is {} on {}",
                        alloc.id, alloc.client_status, node.name
                    ),
                ));
                actions.push(if alloc.client_status == "running" {
                    Action::restart_alloc(
                        alloc,
                        None,
                        "reload the orchestrator now that nbd is ready",
                    )
                } else {
                    // A dead allocation cannot restart in place; stopping it places a new one here.
                    Action::stop_alloc(alloc, "replace the orchestrator now that nbd is ready")
                });
            }
        }
        let missing = grants::not_allowed(&actions);
        if !missing.is_empty() {
            plan.summary = format!("nbd is not ready for {job} on {}", node.name);
            return Ok(plan.escalate(format!(
                "the fix needs {}, which this plugin is not granted",
                missing.join(", ")
            )));
        }
        plan.summary = format!(
            "{} actions to make nbd ready for {job} on {}",
            actions.len(),
            node.name
        );
        plan.actions = actions;
        Ok(plan.recheck_after(u32::try_from(confirm_after).unwrap_or(u32::MAX)))
    }
}

/// `base`, or `base` plus `-` and 16 hex digits (the orchestrator's per-version job ids).
fn is_job(id: &str, base: &str) -> bool {
    match id.strip_prefix(base) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('-')
            .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
        None => false,
    }
}

/// After acting: the module is there and the orchestrator runs, or a human is needed.
fn confirm(incident: &Incident, module: &str, allocs: &[nomad::Allocation]) -> Plan {
    let failed: Vec<String> = incident
        .history
        .iter()
        .filter(|r| r.status != ActionStatus::Done)
        .map(|r| format!("{}: {}", r.action.kind(), r.detail))
        .collect();
    if !failed.is_empty() {
        return Plan::new("not everything was done").escalate(failed.join("; "));
    }
    let module_ok = matches!(kmod::loaded_module(module), Ok(Some(_)));
    match allocs.iter().find(|a| a.is_healthy()) {
        Some(alloc) if module_ok => Plan::new(format!(
            "{module} is loaded and allocation {} runs",
            alloc.id
        )),
        _ => Plan::new("the orchestrator is not back").escalate(format!(
            "after the reload: module loaded: {module_ok}; allocations: {}",
            allocs
                .iter()
                .map(|a| format!("{} {}", a.id, a.client_status))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `name=value` pairs as a module's parameters are written.
fn pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

remedy_sdk::export_plugin!(NbdReload);

#[cfg(test)]
mod tests {
    use super::is_job;

    #[test]
    fn orchestrator_job_ids() {
        assert!(is_job("orchestrator", "orchestrator"));
        assert!(is_job("orchestrator-0123456789abcdef", "orchestrator"));
        assert!(!is_job("orchestrator-0123456789abcdeg", "orchestrator"));
        assert!(!is_job("orchestrator-dev", "orchestrator"));
        assert!(!is_job("my-orchestrator", "orchestrator"));
    }
}
