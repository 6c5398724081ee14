//! nomad-restart: bring a Nomad job back without touching more than needed.
//!
//! - `action = restart` (default): restart the job's allocation on **this
//!   node** only, never the whole job (a system job runs on every node).
//! - `action = rolling-restart`: restart a service or batch job's allocations
//!   `batch_size` at a time, each batch confirmed healthy before the next.
//! - `action = revert`: a deploy went bad; revert the job to its last stable
//!   version, unless a deployment is still running or the job was already
//!   reverted within `revert_cooldown` (no flapping).
//!
//! After acting, the plugin asks to be looked at again after `confirm_after`
//! and then confirms the allocations are running and healthy, or escalates.

mod decide;

use decide::{Revert, next_batch, revert_decision};
use remedy_sdk::nomad::{self, Allocation};
use remedy_sdk::{
    Action, ActionStatus, Check, Error, Incident, Plan, Plugin, PluginInfo, parse_duration,
};

struct NomadRestart;

impl Plugin for NomadRestart {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "nomad-restart",
            env!("CARGO_PKG_VERSION"),
            "Restarts a Nomad job's allocation on this node, rolls a service job in batches, \
             or reverts a bad deploy to the last stable version, then confirms it is healthy.",
        )
        .param(
            "action",
            "restart (this node's allocation), rolling-restart, or revert.",
            Some("restart"),
        )
        .param(
            "job",
            "Job id; the alert's `job` label takes precedence.",
            None,
        )
        .param(
            "namespace",
            "Nomad namespace; the alert's `namespace` label takes precedence.",
            Some("default"),
        )
        .param(
            "task",
            "Restart only this task; the alert's `task` label takes precedence. Empty: all tasks.",
            Some(""),
        )
        .param(
            "batch_size",
            "Allocations restarted per round by rolling-restart.",
            Some("1"),
        )
        .param(
            "revert_cooldown",
            "Do not revert a job again within this long after remedy last reverted it.",
            Some("30m"),
        )
        .param(
            "confirm_after",
            "Wait this long after acting before checking health.",
            Some("30s"),
        )
        .action_kind("nomad-restart-alloc")
        .action_kind("nomad-revert-job")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let job_id = incident
            .label_or_param("job")
            .filter(|j| !j.is_empty())
            .ok_or_else(|| {
                Error::Invalid(
                    "no job: the alert has no `job` label and the `job` param is not set".into(),
                )
            })?
            .to_string();
        let namespace = incident
            .label_or_param("namespace")
            .unwrap_or("default")
            .to_string();
        let confirm_after = incident.param_with("confirm_after", parse_duration)?;
        let target = Target {
            namespace,
            job_id,
            confirm_after: u32::try_from(confirm_after).unwrap_or(u32::MAX),
        };
        match incident.param("action").unwrap_or("restart") {
            "restart" => restart_here(&incident, &target),
            "rolling-restart" => rolling_restart(&incident, &target),
            "revert" => revert(&incident, &target),
            other => Err(Error::Invalid(format!(
                "parameter `action` = {other:?}: use restart, rolling-restart or revert"
            ))),
        }
    }
}

struct Target {
    namespace: String,
    job_id: String,
    confirm_after: u32,
}

/// Allocations restarted (done) in earlier rounds of this run.
fn restarted(incident: &Incident) -> Vec<String> {
    incident
        .history
        .iter()
        .filter(|r| r.status == ActionStatus::Done)
        .filter_map(|r| match &r.action {
            Action::NomadRestartAlloc(a) => Some(a.alloc.alloc_id.clone()),
            _ => None,
        })
        .collect()
}

fn describe_alloc(alloc: &Allocation) -> String {
    let tasks: Vec<String> = alloc
        .task_states
        .iter()
        .map(|t| format!("{} {} ({} restarts)", t.name, t.state, t.restarts))
        .collect();
    format!(
        "allocation {} on {}: {} / {}; {}",
        short(&alloc.id),
        alloc.node_name,
        alloc.desired_status,
        alloc.client_status,
        tasks.join(", ")
    )
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Allocations among `ids` that are not healthy now, described.
fn unhealthy(allocs: &[Allocation], ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter_map(|id| match allocs.iter().find(|a| &a.id == id) {
            Some(alloc) if alloc.is_healthy() => None,
            Some(alloc) => Some(describe_alloc(alloc)),
            None => Some(format!("allocation {} is gone", short(id))),
        })
        .collect()
}

fn restart_here(incident: &Incident, target: &Target) -> Result<Plan, Error> {
    let node = nomad::local_node()?;
    let mut plan = Plan::new("").check(Check::pass(
        "node",
        format!("this is node {} ({})", node.name, short(&node.id)),
    ));
    // An alert about another machine must not restart this one's allocation.
    if let Some(instance) = incident.label("instance") {
        let host = instance.rsplit_once(':').map_or(instance, |(host, _)| host);
        if host != node.name {
            return Ok(plan.escalate(format!(
                "the alert is about instance {instance}, but this remedy runs on node {}; \
                 not restarting anything here",
                node.name
            )));
        }
    }
    let allocs = nomad::job_allocations(&target.namespace, &target.job_id)?;
    let done = restarted(incident);
    if !done.is_empty() {
        let problems = unhealthy(&allocs, &done);
        return Ok(if problems.is_empty() {
            plan.summary = format!(
                "{} on {} is running and healthy after the restart",
                target.job_id, node.name
            );
            plan.check(Check::pass(
                "health",
                "every restarted allocation is running",
            ))
        } else {
            plan.summary = format!(
                "{} on {} is not healthy after the restart",
                target.job_id, node.name
            );
            plan.escalate(format!(
                "still unhealthy after restart: {}",
                problems.join("; ")
            ))
        });
    }
    let here: Vec<&Allocation> = allocs
        .iter()
        .filter(|a| a.node_id == node.id && a.desired_status == "run")
        .collect();
    let Some(alloc) = here.first() else {
        plan.summary = format!(
            "job {} has no allocation on node {}",
            target.job_id, node.name
        );
        return Ok(plan.escalate(format!(
            "job {} has no allocation meant to run on node {}; restarting elsewhere is not this plugin's call",
            target.job_id, node.name
        )));
    };
    let task = incident
        .label("task")
        .or(incident.param("task"))
        .filter(|t| !t.is_empty());
    if let Some(task) = task
        && !alloc.task_states.iter().any(|t| t.name == task)
    {
        return Err(Error::Invalid(format!(
            "allocation {} has no task {task:?}",
            short(&alloc.id)
        )));
    }
    let what = task.map_or("all tasks".to_string(), |t| format!("task {t}"));
    plan.summary = format!(
        "restart {what} of {} allocation {} on node {}",
        target.job_id,
        short(&alloc.id),
        node.name
    );
    Ok(plan
        .check(Check::warn("allocation", describe_alloc(alloc)))
        .act(Action::restart_alloc(
            alloc,
            task,
            format!("{} is down on {}", target.job_id, node.name),
        ))
        .recheck_after(target.confirm_after))
}

fn rolling_restart(incident: &Incident, target: &Target) -> Result<Plan, Error> {
    let batch_size: usize = incident.param_with("batch_size", |s| {
        s.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| "expected a whole number of at least 1".into())
    })?;
    let job = nomad::get_job(&target.namespace, &target.job_id)?;
    if matches!(job.job_type.as_str(), "system" | "sysbatch") {
        return Ok(Plan::new(format!("{} is a {} job", job.id, job.job_type)).escalate(format!(
            "refusing a rolling restart of {} job {}: it runs on every node; use action = restart on the affected node",
            job.job_type, job.id
        )));
    }
    let allocs = nomad::job_allocations(&target.namespace, &target.job_id)?;
    let done = restarted(incident);
    let problems = unhealthy(&allocs, &done);
    if !problems.is_empty() {
        return Ok(
            Plan::new(format!("rolling restart of {} stopped", job.id)).escalate(format!(
                "a restarted batch is not healthy, so the rest is left alone: {}",
                problems.join("; ")
            )),
        );
    }
    let running: Vec<&Allocation> = allocs
        .iter()
        .filter(|a| a.desired_status == "run")
        .collect();
    let batch = next_batch(&running, &done, batch_size);
    if batch.is_empty() {
        return Ok(Plan::new(format!(
            "rolling restart of {}: {} allocations restarted and healthy",
            job.id,
            done.len()
        )));
    }
    let mut plan = Plan::new(format!(
        "rolling restart of {}: batch of {} ({} of {} restarted so far)",
        job.id,
        batch.len(),
        done.len(),
        running.len()
    ));
    for alloc in batch {
        plan = plan.act(Action::restart_alloc(
            alloc,
            None,
            format!("rolling restart of {}", job.id),
        ));
    }
    Ok(plan.recheck_after(target.confirm_after))
}

fn revert(incident: &Incident, target: &Target) -> Result<Plan, Error> {
    let cooldown = incident.param_with("revert_cooldown", parse_duration)?;
    let job = nomad::get_job(&target.namespace, &target.job_id)?;
    let reverted_now = incident.history.iter().find_map(|r| match &r.action {
        Action::NomadRevertJob(a) if r.status == ActionStatus::Done => Some(a.clone()),
        _ => None,
    });
    if let Some(reverted) = reverted_now {
        return confirm_revert(&job, reverted.to_version, target);
    }
    let versions = nomad::job_versions(&target.namespace, &target.job_id)?;
    let deployment = nomad::job_deployment(&target.namespace, &target.job_id)?;
    let decision = revert_decision(
        &job,
        &versions,
        deployment.as_ref(),
        &incident.recent,
        cooldown,
    );
    let plan = Plan::new("").check(Check::pass(
        "job",
        format!(
            "{} is at version {} (stable: {})",
            job.id, job.version, job.stable
        ),
    ));
    Ok(match decision {
        Revert::To(version) => {
            let mut plan = plan.act(Action::revert_job(
                &job,
                version,
                format!(
                    "version {} is failing; {version} was the last stable version",
                    job.version
                ),
            ));
            plan.summary = format!(
                "revert {} from version {} to stable version {version}",
                job.id, job.version
            );
            plan.recheck_after(target.confirm_after)
        }
        Revert::Nothing(why) => {
            let mut plan = plan.check(Check::pass("revert", why.clone()));
            plan.summary = why;
            plan
        }
        Revert::Escalate(why) => {
            let mut plan = plan.escalate(why.clone());
            plan.summary = format!("not reverting {}", job.id);
            plan
        }
    })
}

fn confirm_revert(job: &nomad::Job, to_version: u64, target: &Target) -> Result<Plan, Error> {
    let allocs = nomad::job_allocations(&target.namespace, &target.job_id)?;
    let current: Vec<&Allocation> = allocs
        .iter()
        .filter(|a| a.job_version == job.version && a.desired_status == "run")
        .collect();
    let sick: Vec<String> = current
        .iter()
        .filter(|a| !a.is_healthy())
        .map(|a| describe_alloc(a))
        .collect();
    let summary = format!(
        "{} reverted to the content of version {to_version} (now version {})",
        job.id, job.version
    );
    Ok(if current.is_empty() {
        Plan::new(summary).escalate(format!(
            "no allocation of {} version {} is running yet after the revert",
            job.id, job.version
        ))
    } else if sick.is_empty() {
        Plan::new(summary).check(Check::pass(
            "health",
            format!("{} allocations running", current.len()),
        ))
    } else {
        Plan::new(summary).escalate(format!("unhealthy after the revert: {}", sick.join("; ")))
    })
}

remedy_sdk::export_plugin!(NomadRestart);
