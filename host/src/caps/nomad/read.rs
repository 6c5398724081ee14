//! The `nomad` read interface, scoped to the granted namespaces and jobs.

use super::{NomadApi, NomadError, NomadGrant, NomadRight, api, segment};
use crate::caps::Denials;
use crate::contract::ApiError;
use crate::contract::nomad::{Allocation, Deployment, Health, Job, JobSummary, Node};
use reqwest::StatusCode;
use std::sync::Arc;

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
    nomad: Arc<NomadApi>,
    grant: NomadGrant,
    pub denials: Denials,
    /// Where its calls go: the world, kept or not, or a recording.
    pub journal: crate::caps::journal::Journal,
}

impl NomadReader {
    pub fn new(nomad: Arc<NomadApi>, grant: NomadGrant) -> Self {
        NomadReader {
            nomad,
            grant,
            denials: Denials::default(),
            journal: Default::default(),
        }
    }

    /// Check the grant, then read; refusals are noted for the run record.
    fn read<T>(
        &mut self,
        call: &str,
        scope: Result<(), String>,
        read: impl FnOnce(&NomadApi) -> Result<T, NomadError>,
    ) -> Result<T, ApiError> {
        let allowed = self.grant.check_right(NomadRight::Read).and(scope);
        self.denials
            .guard(call, allowed, || read(&self.nomad).map_err(to_api))
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

journaled! {
    "nomad", NomadReader: crate::contract::nomad::Host {
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
                        "the agent at {} is not a NomadApi client; point [nomad] address at this \
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
    passing {
        fn namespaces(&mut self) -> Vec<String> {
            self.grant.namespaces()
        }
    }
}
