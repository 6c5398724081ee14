//! The Nomad steps remedy's first-party plugins share (nomad-restart,
//! service-restart, rollback): the job an alert is about, this node's
//! allocation of it, a revert to the last stable version, and the health
//! checks after acting. Each step answers with checks, actions or an
//! escalation for the calling plugin's plan; none is a plugin by itself.

mod revert;

pub use revert::{Revert, revert_decision};

use remedy_sdk::nomad::{self, Allocation, Node};
use remedy_sdk::{Action, ActionStatus, Check, Error, Incident, Plan, PluginInfo, parse_duration};

/// The Nomad job an alert is about: its `job` and `namespace` labels, or
/// the params of the same names.
pub struct JobRef {
    pub namespace: String,
    pub id: String,
}

impl JobRef {
    pub fn of(incident: &Incident) -> Result<JobRef, Error> {
        let id = incident
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
        Ok(JobRef { namespace, id })
    }
}

/// Declare the `job` and `namespace` params [`JobRef::of`] reads.
pub fn job_params(info: PluginInfo) -> PluginInfo {
    info.param(
        "job",
        "Nomad job id; the alert's `job` label takes precedence.",
        None,
    )
    .param(
        "namespace",
        "Nomad namespace; the alert's `namespace` label takes precedence.",
        Some("default"),
    )
}

/// An id as Nomad's CLI shows it.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

pub fn describe_alloc(alloc: &Allocation) -> String {
    let tasks: Vec<String> = alloc
        .task_states
        .iter()
        .map(|t| {
            let oom = if t.oom_killed { ", OOM-killed" } else { "" };
            format!("{} {} ({} restarts{oom})", t.name, t.state, t.restarts)
        })
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

/// Allocations restarted (done) in earlier rounds of this run.
pub fn restarted(incident: &Incident) -> Vec<String> {
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

/// Allocations among `ids` that are not healthy now, described.
pub fn unhealthy(allocs: &[Allocation], ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter_map(|id| match allocs.iter().find(|a| &a.id == id) {
            Some(alloc) if alloc.is_healthy() => None,
            Some(alloc) => Some(describe_alloc(alloc)),
            None => Some(format!("allocation {} is gone", short(id))),
        })
        .collect()
}

/// This node and its allocation of the job, or why nothing here may be
/// touched: the alert names another instance, or the job has no
/// allocation meant to run on this node.
pub fn allocation_here(
    incident: &Incident,
    job: &JobRef,
) -> Result<Result<(Node, Allocation), String>, Error> {
    let node = nomad::local_node()?;
    // An alert about another machine must not restart this one's allocation.
    if let Some(instance) = incident.label("instance") {
        let host = instance.rsplit_once(':').map_or(instance, |(host, _)| host);
        if host != node.name {
            return Ok(Err(format!(
                "the alert is about instance {instance}, but this remedy runs on node {}; \
                 not restarting anything here",
                node.name
            )));
        }
    }
    let allocs = nomad::job_allocations(&job.namespace, &job.id)?;
    match allocs
        .into_iter()
        .find(|a| a.node_id == node.id && a.desired_status == "run")
    {
        Some(alloc) => Ok(Ok((node, alloc))),
        None => Ok(Err(format!(
            "job {} has no allocation meant to run on node {}; restarting elsewhere is not this plugin's call",
            job.id, node.name
        ))),
    }
}

/// The check naming the node a step runs on.
pub fn node_check(node: &Node) -> Check {
    Check::pass(
        "node",
        format!("this is node {} ({})", node.name, short(&node.id)),
    )
}

/// A revert of the job to its last stable version, or, once this run
/// reverted it, the check that the reverted allocations are healthy.
/// `revert_cooldown` is the param that keeps it from flapping.
pub fn revert_step(incident: &Incident, job: &JobRef, confirm_after: u32) -> Result<Plan, Error> {
    let cooldown = incident.param_with("revert_cooldown", parse_duration)?;
    let current = nomad::get_job(&job.namespace, &job.id)?;
    if let Some(to_version) = reverted_to(incident) {
        return confirm_revert(&current, to_version, job);
    }
    let versions = nomad::job_versions(&job.namespace, &job.id)?;
    let deployment = nomad::job_deployment(&job.namespace, &job.id)?;
    let decision = revert_decision(
        &current,
        &versions,
        deployment.as_ref(),
        &incident.recent,
        cooldown,
    );
    let plan = Plan::new("").check(Check::pass(
        "job",
        format!(
            "{} is at version {} (stable: {})",
            current.id, current.version, current.stable
        ),
    ));
    Ok(match decision {
        Revert::To(version) => {
            let mut plan = plan.act(Action::revert_job(
                &current,
                version,
                format!(
                    "version {} is failing; {version} was the last stable version",
                    current.version
                ),
            ));
            plan.summary = format!(
                "revert {} from version {} to stable version {version}",
                current.id, current.version
            );
            plan.recheck_after(confirm_after)
        }
        Revert::Nothing(why) => {
            let mut plan = plan.check(Check::pass("revert", why.clone()));
            plan.summary = why;
            plan
        }
        Revert::Escalate(why) => {
            let mut plan = plan.escalate(why.clone());
            plan.summary = format!("not reverting {}", current.id);
            plan
        }
    })
}

/// The version this run reverted the job to, once the revert is done.
pub fn reverted_to(incident: &Incident) -> Option<u64> {
    incident.history.iter().find_map(|r| match &r.action {
        Action::NomadRevertJob(a) if r.status == ActionStatus::Done => Some(a.to_version),
        _ => None,
    })
}

fn confirm_revert(current: &nomad::Job, to_version: u64, job: &JobRef) -> Result<Plan, Error> {
    let allocs = nomad::job_allocations(&job.namespace, &job.id)?;
    let running: Vec<&Allocation> = allocs
        .iter()
        .filter(|a| a.job_version == current.version && a.desired_status == "run")
        .collect();
    let sick: Vec<String> = running
        .iter()
        .filter(|a| !a.is_healthy())
        .map(|a| describe_alloc(a))
        .collect();
    let summary = format!(
        "{} reverted to the content of version {to_version} (now version {})",
        current.id, current.version
    );
    Ok(if running.is_empty() {
        Plan::new(summary).escalate(format!(
            "no allocation of {} version {} is running yet after the revert",
            current.id, current.version
        ))
    } else if sick.is_empty() {
        Plan::new(summary).check(Check::pass(
            "health",
            format!("{} allocations running", running.len()),
        ))
    } else {
        Plan::new(summary).escalate(format!("unhealthy after the revert: {}", sick.join("; ")))
    })
}
