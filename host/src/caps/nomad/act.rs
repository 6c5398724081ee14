//! The Nomad actions: the grant check, and each action re-checked
//! against Nomad as it is now before it is sent.

use super::{NomadApi, NomadError, NomadGrant, NomadRight, api, segment};
use crate::caps::Refusal;
use crate::contract::{
    NomadAllocRef, NomadClientGc, NomadEvaluateJob, NomadRestartAlloc, NomadRevertJob,
    NomadStopAlloc,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A contract action that Nomad carries out.
pub enum NomadAction<'a> {
    Restart(&'a NomadRestartAlloc),
    Stop(&'a NomadStopAlloc),
    Evaluate(&'a NomadEvaluateJob),
    Revert(&'a NomadRevertJob),
    Gc(&'a NomadClientGc),
}

/// Why `action` is outside `grant`, if it is.
pub(super) fn check_grant(action: &NomadAction<'_>, grant: &NomadGrant) -> Result<(), String> {
    let (right, job) = match action {
        NomadAction::Restart(a) => (
            NomadRight::Restart,
            Some((&a.alloc.namespace, &a.alloc.job_id)),
        ),
        NomadAction::Stop(a) => (
            NomadRight::Stop,
            Some((&a.alloc.namespace, &a.alloc.job_id)),
        ),
        NomadAction::Evaluate(a) => (NomadRight::Evaluate, Some((&a.namespace, &a.job_id))),
        NomadAction::Revert(a) => (NomadRight::Revert, Some((&a.namespace, &a.job_id))),
        NomadAction::Gc(_) => (NomadRight::Gc, None),
    };
    grant.check_right(right)?;
    match job {
        Some((namespace, job)) => grant.check_job(namespace, job),
        None => Ok(()),
    }
}

/// Re-check `action` against Nomad as it is now and, unless `dry_run`, carry it out.
pub(super) fn perform(
    nomad: &NomadApi,
    action: &NomadAction<'_>,
    dry_run: bool,
) -> Result<String, Refusal> {
    match action {
        NomadAction::Restart(restart) => restart_alloc(nomad, restart, dry_run),
        NomadAction::Stop(stop) => stop_alloc(nomad, stop, dry_run),
        NomadAction::Evaluate(evaluate) => evaluate_job(nomad, evaluate, dry_run),
        NomadAction::Revert(revert) => revert_job(nomad, revert, dry_run),
        NomadAction::Gc(gc) => collect_garbage(nomad, gc, dry_run),
    }
}

/// In a dry run, what would be done.
fn would(text: String) -> String {
    format!("would {text}")
}

fn restart_alloc(nomad: &NomadApi, restart: &NomadRestartAlloc, dry_run: bool) -> Result<String, Refusal> {
    let alloc = current_allocation(nomad, &restart.alloc)?;
    let what = match &restart.task {
        Some(task) => {
            if !alloc
                .task_states
                .as_ref()
                .is_some_and(|t| t.contains_key(task))
            {
                return Err(Refusal::Stale(format!(
                    "allocation {} has no task {task:?}",
                    restart.alloc.alloc_id
                )));
            }
            format!("task {task}")
        }
        None => "all tasks".to_string(),
    };
    let text = format!(
        "restart {what} of allocation {} (job {} on node {})",
        restart.alloc.alloc_id, restart.alloc.job_id, alloc.node_name
    );
    if dry_run {
        return Ok(would(text));
    }
    let body = json!({
        "TaskName": restart.task.clone().unwrap_or_default(),
        "AllTasks": restart.task.is_none(),
    });
    nomad
        .write::<serde_json::Value>(
            Method::PUT,
            format!(
                "/v1/client/allocation/{}/restart",
                segment(&restart.alloc.alloc_id)
            ),
            &[("namespace", &restart.alloc.namespace)],
            Some(body),
        )
        .map_err(failed)?;
    Ok(format!("did {text}").replacen("did restart", "restarted", 1))
}

fn stop_alloc(nomad: &NomadApi, stop: &NomadStopAlloc, dry_run: bool) -> Result<String, Refusal> {
    let alloc = current_allocation(nomad, &stop.alloc)?;
    let text = format!(
        "stop allocation {} (job {} on node {}); the scheduler places a replacement",
        stop.alloc.alloc_id, stop.alloc.job_id, alloc.node_name
    );
    if dry_run {
        return Ok(would(text));
    }
    let reply: api::EvalReply = nomad
        .write(
            Method::PUT,
            format!("/v1/allocation/{}/stop", segment(&stop.alloc.alloc_id)),
            &[("namespace", &stop.alloc.namespace)],
            None,
        )
        .map_err(failed)?;
    Ok(format!(
        "stopped allocation {}; evaluation {}",
        stop.alloc.alloc_id, reply.eval_id
    ))
}

fn evaluate_job(nomad: &NomadApi, evaluate: &NomadEvaluateJob, dry_run: bool) -> Result<String, Refusal> {
    current_job(nomad, &evaluate.namespace, &evaluate.job_id)?;
    let force = if evaluate.force_reschedule {
        " forcing failed allocations to reschedule"
    } else {
        ""
    };
    if dry_run {
        return Ok(would(format!("evaluate job {}{force}", evaluate.job_id)));
    }
    let body = json!({
        "JobID": evaluate.job_id,
        "EvalOptions": { "ForceReschedule": evaluate.force_reschedule },
    });
    let reply: api::EvalReply = nomad
        .write(
            Method::PUT,
            format!("/v1/job/{}/evaluate", segment(&evaluate.job_id)),
            &[("namespace", &evaluate.namespace)],
            Some(body),
        )
        .map_err(failed)?;
    Ok(format!(
        "evaluation {} of job {}{force}",
        reply.eval_id, evaluate.job_id
    ))
}

fn revert_job(nomad: &NomadApi, revert: &NomadRevertJob, dry_run: bool) -> Result<String, Refusal> {
    let job = current_job(nomad, &revert.namespace, &revert.job_id)?;
    if job.version != revert.current_version {
        return Err(Refusal::Stale(format!(
            "job {} is at version {} now, not {}: something changed it after the plan",
            revert.job_id, job.version, revert.current_version
        )));
    }
    if revert.to_version >= revert.current_version {
        return Err(Refusal::Failed(format!(
            "version {} is not earlier than the current version {}",
            revert.to_version, revert.current_version
        )));
    }
    let text = format!(
        "revert job {} from version {} to version {}",
        revert.job_id, revert.current_version, revert.to_version
    );
    if dry_run {
        return Ok(would(text));
    }
    // Nomad re-checks the current version itself, closing the gap between our read and the write.
    let body = json!({
        "JobID": revert.job_id,
        "JobVersion": revert.to_version,
        "EnforcePriorVersion": revert.current_version,
    });
    let reply: api::EvalReply = nomad
        .write(
            Method::POST,
            format!("/v1/job/{}/revert", segment(&revert.job_id)),
            &[("namespace", &revert.namespace)],
            Some(body),
        )
        .map_err(failed)?;
    Ok(format!(
        "reverted job {} from version {} to {}; evaluation {}",
        revert.job_id, revert.current_version, revert.to_version, reply.eval_id
    ))
}

fn collect_garbage(nomad: &NomadApi, gc: &NomadClientGc, dry_run: bool) -> Result<String, Refusal> {
    let node: api::Node = nomad
        .get(format!("/v1/node/{}", segment(&gc.node_id)), &[])
        .map_err(stale_if_gone)?;
    let text = format!("collect terminal allocations on node {}", node.name);
    if dry_run {
        return Ok(would(text));
    }
    nomad
        .write::<serde_json::Value>(
            Method::PUT,
            "/v1/client/gc".into(),
            &[("node_id", &gc.node_id)],
            None,
        )
        .map_err(failed)?;
    Ok(format!(
        "collected terminal allocations on node {}",
        node.name
    ))
}

fn failed(error: NomadError) -> Refusal {
    Refusal::Failed(error.to_string())
}

/// A 404 means the object the plugin saw is gone; anything else is a failure.
fn stale_if_gone(error: NomadError) -> Refusal {
    match error.status() {
        Some(StatusCode::NOT_FOUND) => Refusal::Stale(error.to_string()),
        _ => failed(error),
    }
}

fn current_job(nomad: &NomadApi, namespace: &str, id: &str) -> Result<api::Job, Refusal> {
    nomad.job(namespace, id).map_err(stale_if_gone)
}

/// The allocation as Nomad has it now, if it is still the one in the plan and still meant to run.
fn current_allocation(
    nomad: &NomadApi,
    planned: &NomadAllocRef,
) -> Result<api::Allocation, Refusal> {
    let alloc = nomad
        .allocation(&planned.namespace, &planned.alloc_id)
        .map_err(stale_if_gone)?;
    let mismatch = [
        ("namespace", &alloc.namespace, &planned.namespace),
        ("job", &alloc.job_id, &planned.job_id),
        ("node", &alloc.node_id, &planned.node_id),
    ]
    .into_iter()
    .find(|(_, now, then)| now != then);
    if let Some((field, now, then)) = mismatch {
        return Err(Refusal::Stale(format!(
            "allocation {} belongs to {field} {now:?} now, not {then:?}",
            planned.alloc_id
        )));
    }
    if alloc.desired_status != "run" {
        return Err(Refusal::Stale(format!(
            "allocation {} is no longer meant to run (desired status {:?}, client status {:?})",
            planned.alloc_id, alloc.desired_status, alloc.client_status
        )));
    }
    Ok(alloc)
}
