//! `nomad`: jobs and allocations seen through Nomad's HTTP API, scoped by
//! namespace and job id, and the Nomad actions the executor may perform.

pub mod api;
pub mod client;

use super::{Denials, Refusal};
use crate::contract::nomad::{Allocation, Deployment, Health, Job, JobSummary, Node};
use crate::contract::{
    ApiError, NomadAllocRef, NomadClientGc, NomadEvaluateJob, NomadRestartAlloc, NomadRevertJob,
    NomadStopAlloc,
};
use crate::sys::bridge::Bridge;
use crate::sys::patterns::Patterns;
pub use client::{NomadClient, NomadError, NomadSettings};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// What a plugin may do with Nomad (`nomad = [...]`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NomadRight {
    /// Link the `nomad` read interface.
    Read,
    /// `nomad-restart-alloc`.
    Restart,
    /// `nomad-stop-alloc`.
    Stop,
    /// `nomad-evaluate-job`.
    Evaluate,
    /// `nomad-revert-job`.
    Revert,
    /// `nomad-client-gc`.
    Gc,
}

impl NomadRight {
    fn as_str(self) -> &'static str {
        match self {
            NomadRight::Read => "read",
            NomadRight::Restart => "restart",
            NomadRight::Stop => "stop",
            NomadRight::Evaluate => "evaluate",
            NomadRight::Revert => "revert",
            NomadRight::Gc => "gc",
        }
    }
}

/// The part of a plugin's grants that concerns Nomad.
#[derive(Clone, Debug, Default)]
pub struct NomadGrant {
    pub rights: Vec<NomadRight>,
    /// Empty means only `default`.
    pub namespaces: Vec<String>,
    pub jobs: Patterns,
}

impl NomadGrant {
    pub fn namespaces(&self) -> Vec<String> {
        if self.namespaces.is_empty() {
            vec!["default".to_string()]
        } else {
            self.namespaces.clone()
        }
    }

    fn allows(&self, namespace: &str, job: &str) -> bool {
        self.namespaces().iter().any(|n| n == namespace) && self.allows_job(job)
    }

    /// No `nomad_jobs` means every job.
    fn allows_job(&self, job: &str) -> bool {
        self.jobs.is_empty() || self.jobs.matches(job)
    }

    fn check_namespace(&self, namespace: &str) -> Result<(), String> {
        if self.namespaces().iter().any(|n| n == namespace) {
            Ok(())
        } else {
            Err(format!(
                "namespace {namespace:?} is not granted (nomad_namespaces = {:?})",
                self.namespaces()
            ))
        }
    }

    fn check_job(&self, namespace: &str, job: &str) -> Result<(), String> {
        self.check_namespace(namespace)?;
        if self.allows_job(job) {
            Ok(())
        } else {
            Err(format!(
                "job {job:?} is not granted (nomad_jobs = {:?})",
                self.jobs.sources()
            ))
        }
    }

    fn check_right(&self, right: NomadRight) -> Result<(), String> {
        if self.rights.contains(&right) {
            Ok(())
        } else {
            Err(format!(
                "no Nomad `{}` grant; the operator adds it to nomad = [...]",
                right.as_str()
            ))
        }
    }
}

/// The Nomad API as configured; the client is made on first use, so a
/// config without Nomad never touches it.
pub struct Nomad {
    settings: NomadSettings,
    client: Mutex<Option<Arc<NomadClient>>>,
    bridge: Arc<Bridge>,
}

impl Nomad {
    pub fn new(settings: NomadSettings, bridge: Arc<Bridge>) -> Self {
        Nomad {
            settings,
            client: Mutex::new(None),
            bridge,
        }
    }

    fn client(&self) -> Result<Arc<NomadClient>, NomadError> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = &*slot {
            return Ok(client.clone());
        }
        let client = Arc::new(NomadClient::new(&self.settings)?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Run one exchange with Nomad to completion.
    pub fn call<T, F>(&self, exchange: impl FnOnce(Arc<NomadClient>) -> F) -> Result<T, NomadError>
    where
        F: Future<Output = Result<T, NomadError>>,
    {
        let client = self.client()?;
        match self.bridge.block_on(exchange(client)) {
            Ok(Ok(answer)) => answer,
            Ok(Err(past)) => Err(NomadError::Setup(past.to_string())),
            Err(why) => Err(NomadError::Setup(why)),
        }
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: String,
        query: &[(&str, &str)],
    ) -> Result<T, NomadError> {
        self.call(|client| async move { client.get(&path, query).await })
    }

    fn write<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, NomadError> {
        self.call(|client| async move { client.write(method, &path, query, body).await })
    }

    fn allocation(&self, namespace: &str, id: &str) -> Result<api::Allocation, NomadError> {
        self.get(
            format!("/v1/allocation/{}", segment(id)),
            &[("namespace", namespace)],
        )
    }

    fn job(&self, namespace: &str, id: &str) -> Result<api::Job, NomadError> {
        self.get(
            format!("/v1/job/{}", segment(id)),
            &[("namespace", namespace)],
        )
    }
}

/// A path segment: ids come from plugins, so nothing in them may change the path.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The contract's error for a failed read, keeping Nomad's own words.
fn to_api(error: NomadError) -> ApiError {
    let message = error.to_string();
    if let NomadError::BadPath(_) = error {
        return ApiError::Invalid(message);
    }
    match error.status() {
        Some(StatusCode::FORBIDDEN) => ApiError::Denied(message),
        Some(StatusCode::NOT_FOUND) => ApiError::NotFound(message),
        Some(StatusCode::BAD_REQUEST) => ApiError::Invalid(message),
        _ => ApiError::Unavailable(message),
    }
}

/// Most items one listing hands a plugin.
const MAX_ITEMS: usize = 10_000;

/// The `nomad` read interface of one plugin instance.
pub struct NomadReader {
    nomad: Arc<Nomad>,
    grant: NomadGrant,
    pub denials: Denials,
}

impl NomadReader {
    pub fn new(nomad: Arc<Nomad>, grant: NomadGrant) -> Self {
        NomadReader {
            nomad,
            grant,
            denials: Denials::default(),
        }
    }

    /// Check the grant, then read; refusals are noted for the run record.
    fn read<T>(
        &mut self,
        call: &str,
        scope: Result<(), String>,
        read: impl FnOnce(&Nomad) -> Result<T, NomadError>,
    ) -> Result<T, ApiError> {
        let allowed = self
            .grant
            .check_right(NomadRight::Read)
            .and(scope)
            .map_err(ApiError::Denied);
        let result = allowed.and_then(|()| read(&self.nomad).map_err(to_api));
        self.denials.note(call, result)
    }

    fn granted_allocations(&self, allocations: Vec<api::Allocation>) -> Vec<Allocation> {
        allocations
            .into_iter()
            .filter(|a| self.grant.allows(&a.namespace, &a.job_id))
            .take(MAX_ITEMS)
            .map(Into::into)
            .collect()
    }
}

impl crate::contract::nomad::Host for NomadReader {
    fn namespaces(&mut self) -> Vec<String> {
        self.grant.namespaces()
    }

    fn jobs(&mut self, namespace: String) -> Result<Vec<JobSummary>, ApiError> {
        let scope = self.grant.check_namespace(&namespace);
        let jobs: Vec<api::JobStub> = self.read("nomad.jobs", scope, |n| {
            n.get("/v1/jobs".into(), &[("namespace", &namespace)])
        })?;
        Ok(jobs
            .into_iter()
            .filter(|j| self.grant.allows(&j.namespace, &j.id))
            .take(MAX_ITEMS)
            .map(Into::into)
            .collect())
    }

    fn get_job(&mut self, namespace: String, job_id: String) -> Result<Job, ApiError> {
        let scope = self.grant.check_job(&namespace, &job_id);
        self.read("nomad.job", scope, |n| n.job(&namespace, &job_id))
            .map(Into::into)
    }

    fn job_versions(&mut self, namespace: String, job_id: String) -> Result<Vec<Job>, ApiError> {
        let scope = self.grant.check_job(&namespace, &job_id);
        let versions: api::JobVersions = self.read("nomad.job-versions", scope, |n| {
            n.get(
                format!("/v1/job/{}/versions", segment(&job_id)),
                &[("namespace", &namespace)],
            )
        })?;
        Ok(versions
            .versions
            .into_iter()
            .take(MAX_ITEMS)
            .map(Into::into)
            .collect())
    }

    fn job_allocations(
        &mut self,
        namespace: String,
        job_id: String,
    ) -> Result<Vec<Allocation>, ApiError> {
        let scope = self.grant.check_job(&namespace, &job_id);
        let allocations = self.read("nomad.job-allocations", scope, |n| {
            n.get(
                format!("/v1/job/{}/allocations", segment(&job_id)),
                &[("namespace", &namespace)],
            )
        })?;
        Ok(self.granted_allocations(allocations))
    }

    fn job_deployment(
        &mut self,
        namespace: String,
        job_id: String,
    ) -> Result<Option<Deployment>, ApiError> {
        let scope = self.grant.check_job(&namespace, &job_id);
        let deployment: Option<api::Deployment> =
            self.read("nomad.job-deployment", scope, |n| {
                n.get(
                    format!("/v1/job/{}/deployment", segment(&job_id)),
                    &[("namespace", &namespace)],
                )
            })?;
        Ok(deployment.map(Into::into))
    }

    fn local_node(&mut self) -> Result<Node, ApiError> {
        self.read("nomad.local-node", Ok(()), |n| {
            let agent: api::AgentSelf = n.get("/v1/agent/self".into(), &[])?;
            let Some(client) = agent.stats.client.filter(|c| !c.node_id.is_empty()) else {
                return Err(NomadError::Setup(format!(
                    "the agent at {} is not a Nomad client; point [nomad] address at this \
                     host's client agent",
                    n.client()?.address()
                )));
            };
            n.get::<api::Node>(format!("/v1/node/{}", segment(&client.node_id)), &[])
        })
        .map(Into::into)
    }

    fn node_allocations(&mut self, node_id: String) -> Result<Vec<Allocation>, ApiError> {
        let allocations = self.read("nomad.node-allocations", Ok(()), |n| {
            n.get(format!("/v1/node/{}/allocations", segment(&node_id)), &[])
        })?;
        Ok(self.granted_allocations(allocations))
    }

    fn agent_health(&mut self) -> Result<Health, ApiError> {
        self.read("nomad.agent-health", Ok(()), |n| {
            n.get::<api::AgentHealth>("/v1/agent/health".into(), &[])
        })
        .map(Into::into)
    }
}

/// A contract action that Nomad carries out.
pub enum NomadAction<'a> {
    Restart(&'a NomadRestartAlloc),
    Stop(&'a NomadStopAlloc),
    Evaluate(&'a NomadEvaluateJob),
    Revert(&'a NomadRevertJob),
    Gc(&'a NomadClientGc),
}

/// Why `action` is outside `grant`, if it is.
pub fn check_grant(action: &NomadAction<'_>, grant: &NomadGrant) -> Result<(), String> {
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
///
/// An effect: only the executor calls it.
pub(crate) fn perform(
    nomad: &Nomad,
    action: &NomadAction<'_>,
    dry_run: bool,
) -> Result<String, Refusal> {
    let would = |text: String| {
        if dry_run {
            format!("would {text}")
        } else {
            text
        }
    };
    match action {
        NomadAction::Restart(restart) => {
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
        NomadAction::Stop(stop) => {
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
        NomadAction::Evaluate(evaluate) => {
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
        NomadAction::Revert(revert) => {
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
        NomadAction::Gc(gc) => {
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
    }
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

fn current_job(nomad: &Nomad, namespace: &str, id: &str) -> Result<api::Job, Refusal> {
    nomad.job(namespace, id).map_err(stale_if_gone)
}

/// The allocation as Nomad has it now, if it is still the one in the plan and still meant to run.
fn current_allocation(nomad: &Nomad, planned: &NomadAllocRef) -> Result<api::Allocation, Refusal> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(namespaces: &[&str], jobs: &[&str]) -> NomadGrant {
        NomadGrant {
            rights: vec![NomadRight::Read, NomadRight::Restart],
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            jobs: Patterns::try_from(jobs.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap(),
        }
    }

    #[test]
    fn job_patterns_are_anchored() {
        let grant = grant(&[], &["orchestrator(-[0-9a-f]{16})?"]);
        assert!(grant.check_job("default", "orchestrator").is_ok());
        assert!(
            grant
                .check_job("default", "orchestrator-0123456789abcdef")
                .is_ok()
        );
        assert!(grant.check_job("default", "orchestrator-evil").is_err());
        assert!(grant.check_job("default", "my-orchestrator").is_err());
        assert_eq!(grant.jobs.sources(), vec!["orchestrator(-[0-9a-f]{16})?"]);
    }

    #[test]
    fn namespaces_default_to_default_only() {
        let grant = grant(&[], &[]);
        assert!(grant.check_job("default", "anything").is_ok());
        let refused = grant.check_job("prod", "anything").unwrap_err();
        assert!(refused.contains("nomad_namespaces"), "{refused}");
    }

    #[test]
    fn rights_are_checked_per_action_kind() {
        let grant = grant(&["default"], &[]);
        let gc = NomadClientGc {
            node_id: "n".into(),
            reason: String::new(),
        };
        let refused = check_grant(&NomadAction::Gc(&gc), &grant).unwrap_err();
        assert!(refused.contains("`gc`"), "{refused}");
    }

    #[test]
    fn ids_cannot_change_the_request_path() {
        assert_eq!(
            segment("../../v1/acl/tokens"),
            "..%2F..%2Fv1%2Facl%2Ftokens"
        );
        assert_eq!(segment("a?b#c"), "a%3Fb%23c");
        assert_eq!(segment("orchestrator-1f"), "orchestrator-1f");
        // Left as is, and refused whole by the client before any request.
        assert_eq!(segment(".."), "..");
    }
}
