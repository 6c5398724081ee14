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

use remedy_nomad_steps::{self as steps, JobRef, describe_alloc, restarted, short, unhealthy};
use remedy_sdk::nomad::{self, Allocation};
use remedy_sdk::{
    Action, Check, Error, Incident, Plan, Plugin, PluginInfo, parse_count, parse_duration,
};

struct NomadRestart;

impl Plugin for NomadRestart {
    fn describe() -> PluginInfo {
        steps::job_params(PluginInfo::new(
            "nomad-restart",
            env!("CARGO_PKG_VERSION"),
            "Restarts a Nomad job's allocation on this node, rolls a service job in batches, \
             or reverts a bad deploy to the last stable version, then confirms it is healthy.",
        ))
        .param(
            "action",
            "restart (this node's allocation), rolling-restart, or revert.",
            Some("restart"),
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
        let job = JobRef::of(&incident)?;
        let confirm_after = incident.param_with("confirm_after", parse_duration)?;
        let confirm_after = u32::try_from(confirm_after).unwrap_or(u32::MAX);
        match incident.param("action").unwrap_or("restart") {
            "restart" => restart_here(&incident, &job, confirm_after),
            "rolling-restart" => rolling_restart(&incident, &job, confirm_after),
            "revert" => steps::revert_step(&incident, &job, confirm_after),
            other => Err(Error::Invalid(format!(
                "parameter `action` = {other:?}: use restart, rolling-restart or revert"
            ))),
        }
    }
}

fn restart_here(incident: &Incident, job: &JobRef, confirm_after: u32) -> Result<Plan, Error> {
    let done = restarted(incident);
    if !done.is_empty() {
        return confirm_restart(job, &done);
    }
    let (node, alloc) = match steps::allocation_here(incident, job)? {
        Ok(here) => here,
        Err(why) => return Ok(Plan::new(format!("not restarting {}", job.id)).escalate(why)),
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
    Ok(Plan::new(format!(
        "restart {what} of {} allocation {} on node {}",
        job.id,
        short(&alloc.id),
        node.name
    ))
    .check(steps::node_check(&node))
    .check(Check::warn("allocation", describe_alloc(&alloc)))
    .act(Action::restart_alloc(
        &alloc,
        task,
        format!("{} is down on {}", job.id, node.name),
    ))
    .recheck_after(confirm_after))
}

/// After a restart: every restarted allocation running and healthy, or an
/// escalation naming those that are not.
fn confirm_restart(job: &JobRef, done: &[String]) -> Result<Plan, Error> {
    let allocs = nomad::job_allocations(&job.namespace, &job.id)?;
    let problems = unhealthy(&allocs, done);
    Ok(if problems.is_empty() {
        Plan::new(format!(
            "{} is running and healthy after the restart",
            job.id
        ))
        .check(Check::pass(
            "health",
            "every restarted allocation is running",
        ))
    } else {
        Plan::new(format!("{} is not healthy after the restart", job.id)).escalate(format!(
            "still unhealthy after restart: {}",
            problems.join("; ")
        ))
    })
}

fn rolling_restart(
    incident: &Incident,
    job_ref: &JobRef,
    confirm_after: u32,
) -> Result<Plan, Error> {
    let batch_size = incident.param_with("batch_size", parse_count)? as usize;
    let job = nomad::get_job(&job_ref.namespace, &job_ref.id)?;
    if matches!(job.job_type.as_str(), "system" | "sysbatch") {
        return Ok(Plan::new(format!("{} is a {} job", job.id, job.job_type)).escalate(format!(
            "refusing a rolling restart of {} job {}: it runs on every node; use action = restart on the affected node",
            job.job_type, job.id
        )));
    }
    let allocs = nomad::job_allocations(&job_ref.namespace, &job_ref.id)?;
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
    Ok(plan.recheck_after(confirm_after))
}

/// The next `size` allocations not yet restarted, in a stable order.
pub fn next_batch<'a>(
    running: &[&'a Allocation],
    done: &[String],
    size: usize,
) -> Vec<&'a Allocation> {
    let mut pending: Vec<&Allocation> = running
        .iter()
        .copied()
        .filter(|a| !done.contains(&a.id))
        .collect();
    pending.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    pending.truncate(size);
    pending
}

remedy_sdk::export_plugin!(NomadRestart);
