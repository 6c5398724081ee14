//! The `kube` read interface: deployments within the granted namespaces,
//! names and labels, and what they own.

use super::client::{KubeApi, KubeError};
use super::cluster::{PodMetrics, TEMPLATE_HASH, namespace_of, revision};
use super::{KubeGrant, KubeRight, quantity};
use crate::caps::Denials;
use crate::contract::ApiError;
use crate::contract::kube::{
    Condition, ContainerStatus, Deployment, Event, Pod, MemoryUsage, ReplicaSet,
};
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// The contract's error for a failed read, keeping the API server's words.
pub(super) fn to_api(error: KubeError) -> ApiError {
    let message = error.to_string();
    match error {
        KubeError::BadName(_) => ApiError::Invalid(message),
        _ => match error.code() {
            Some(401 | 403) => ApiError::Denied(message),
            Some(404) => ApiError::NotFound(message),
            Some(400 | 422) => ApiError::Invalid(message),
            _ => ApiError::Unavailable(message),
        },
    }
}

/// The `kube` read interface of one plugin instance.
pub struct KubeReader {
    kube: Arc<KubeApi>,
    grant: KubeGrant,
    pub denials: Denials,
    /// Where its calls go: the world, kept or not, or a recording.
    pub journal: crate::caps::journal::Journal,
}

impl KubeReader {
    pub fn new(kube: Arc<KubeApi>, grant: KubeGrant) -> Self {
        KubeReader {
            kube,
            grant,
            denials: Denials::default(),
            journal: Default::default(),
        }
    }

    /// Check the right and `scope` (no request is made outside them),
    /// then read; refusals are noted for the run record.
    fn read<T>(
        &mut self,
        call: &str,
        scope: Result<(), String>,
        read: impl FnOnce(&KubeApi, &KubeGrant) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let allowed = self.grant.check_right(KubeRight::Read).and(scope);
        self.denials
            .guard(call, allowed, || read(&self.kube, &self.grant))
    }
}

/// The deployment, if the grant covers it and its labels.
pub(super) fn granted_deployment(
    kube: &KubeApi,
    grant: &KubeGrant,
    namespace: &str,
    name: &str,
) -> Result<apps::Deployment, ApiError> {
    let deployment: apps::Deployment = kube.get(namespace, name).map_err(to_api)?;
    check_labels(grant, &deployment)?;
    Ok(deployment)
}

/// Whether `deployment` carries the labels the grant asks for.
fn check_labels(grant: &KubeGrant, deployment: &apps::Deployment) -> Result<(), ApiError> {
    let meta = &deployment.metadata;
    let labels = meta.labels.clone().unwrap_or_default();
    let name = meta.name.as_deref().unwrap_or_default();
    grant
        .check_labels(namespace_of(meta), name, &labels)
        .map_err(ApiError::Denied)
}

/// The pod and the deployment that owns it, if the grant covers that deployment.
fn granted_pod(
    kube: &KubeApi,
    grant: &KubeGrant,
    namespace: &str,
    name: &str,
) -> Result<(core::Pod, apps::Deployment), ApiError> {
    let pod: core::Pod = kube.get(namespace, name).map_err(to_api)?;
    let Some((deployment, _)) = kube.owner_of(&pod).map_err(to_api)? else {
        return Err(ApiError::Denied(format!(
            "pod {namespace}/{name} belongs to no deployment, and kube grants cover deployments"
        )));
    };
    let owner = deployment.metadata.name.as_deref().unwrap_or_default();
    grant
        .check_name(namespace, owner)
        .map_err(ApiError::Denied)?;
    check_labels(grant, &deployment)?;
    Ok((pod, deployment))
}

journaled! {
    "kube", KubeReader: crate::contract::kube::Host {
        fn deployments(&mut self, namespace: String) -> Result<Vec<Deployment>, ApiError> {
            let scope = self.grant.check_namespace(&namespace);
            self.read("kube.deployments", scope, |k, grant| {
                Ok(k.deployments(&namespace)
                    .map_err(to_api)?
                    .iter()
                    .filter(|d| {
                        let name = d.metadata.name.as_deref().unwrap_or_default();
                        grant.check_name(&namespace, name).is_ok() && check_labels(grant, d).is_ok()
                    })
                    .map(deployment_record)
                    .collect())
            })
        }

        fn get_deployment(&mut self, namespace: String, name: String) -> Result<Deployment, ApiError> {
            let scope = self.grant.check_name(&namespace, &name);
            self.read("kube.get-deployment", scope, |k, grant| {
                granted_deployment(k, grant, &namespace, &name).map(|d| deployment_record(&d))
            })
        }

        fn replica_sets(
            &mut self,
            namespace: String,
            deployment: String,
        ) -> Result<Vec<ReplicaSet>, ApiError> {
            let scope = self.grant.check_name(&namespace, &deployment);
            self.read("kube.replica-sets", scope, |k, grant| {
                let deployment = granted_deployment(k, grant, &namespace, &deployment)?;
                let sets = k.replica_sets(&deployment).map_err(to_api)?;
                Ok(sets.iter().map(replica_set_record).collect())
            })
        }

        fn pods(&mut self, namespace: String, deployment: String) -> Result<Vec<Pod>, ApiError> {
            let scope = self.grant.check_name(&namespace, &deployment);
            self.read("kube.pods", scope, |k, grant| {
                let owner = granted_deployment(k, grant, &namespace, &deployment)?;
                let sets = k.replica_sets(&owner).map_err(to_api)?;
                let pods = k.pods(&owner, &sets).map_err(to_api)?;
                Ok(pods.iter().map(|p| pod_record(p, &deployment)).collect())
            })
        }

        fn get_pod(&mut self, namespace: String, name: String) -> Result<Pod, ApiError> {
            let scope = self.grant.check_namespace(&namespace);
            self.read("kube.get-pod", scope, |k, grant| {
                let (pod, owner) = granted_pod(k, grant, &namespace, &name)?;
                Ok(pod_record(&pod, owner.metadata.name.as_deref().unwrap_or_default()))
            })
        }

        fn pod_memory(&mut self, namespace: String, name: String) -> Result<MemoryUsage, ApiError> {
            let scope = self.grant.check_namespace(&namespace);
            self.read("kube.pod-memory", scope, |k, grant| {
                granted_pod(k, grant, &namespace, &name)?;
                let metrics = k.pod_metrics(&namespace, &name).map_err(to_api)?;
                Ok(memory_record(&metrics))
            })
        }

        fn events(&mut self, namespace: String, deployment: String) -> Result<Vec<Event>, ApiError> {
            let scope = self.grant.check_name(&namespace, &deployment);
            self.read("kube.events", scope, |k, grant| {
                let owner = granted_deployment(k, grant, &namespace, &deployment)?;
                let sets = k.replica_sets(&owner).map_err(to_api)?;
                let pods = k.pods(&owner, &sets).map_err(to_api)?;
                let uids: HashSet<&str> = std::iter::once(&owner.metadata)
                    .chain(sets.iter().map(|s| &s.metadata))
                    .chain(pods.iter().map(|p| &p.metadata))
                    .filter_map(|m| m.uid.as_deref())
                    .collect();
                let mut events: Vec<Event> = k
                    .events(&namespace)
                    .map_err(to_api)?
                    .iter()
                    .filter(|e| e.involved_object.uid.as_deref().is_some_and(|u| uids.contains(u)))
                    .map(event_record)
                    .collect();
                events.sort_by_key(|e| std::cmp::Reverse(e.last_seen_secs));
                Ok(events)
            })
        }
    }
    passing {
        fn namespaces(&mut self) -> Vec<String> {
            self.grant.namespaces()
        }
    }
}

fn count(n: Option<i32>) -> u32 {
    n.unwrap_or(0).max(0) as u32
}

fn secs(time: Option<&Time>) -> i64 {
    time.map(|t| t.0.as_second()).unwrap_or(0)
}

fn text(value: Option<&String>) -> String {
    value.cloned().unwrap_or_default()
}

fn label_pairs(meta: &ObjectMeta) -> Vec<(String, String)> {
    meta.labels.clone().unwrap_or_default().into_iter().collect()
}

fn identity(meta: &ObjectMeta) -> (String, String, String) {
    (
        namespace_of(meta).to_string(),
        text(meta.name.as_ref()),
        text(meta.uid.as_ref()),
    )
}

fn deployment_record(d: &apps::Deployment) -> Deployment {
    let (namespace, name, uid) = identity(&d.metadata);
    let spec = d.spec.as_ref();
    let status = d.status.clone().unwrap_or_default();
    Deployment {
        namespace,
        name,
        uid,
        resource_version: text(d.metadata.resource_version.as_ref()),
        revision: revision(&d.metadata),
        generation: d.metadata.generation.unwrap_or(0).max(0) as u64,
        observed_generation: status.observed_generation.unwrap_or(0).max(0) as u64,
        paused: spec.and_then(|s| s.paused).unwrap_or(false),
        // Kubernetes defaults an unset `replicas` to 1.
        replicas: spec.map(|s| count(Some(s.replicas.unwrap_or(1)))).unwrap_or(1),
        updated_replicas: count(status.updated_replicas),
        ready_replicas: count(status.ready_replicas),
        available_replicas: count(status.available_replicas),
        unavailable_replicas: count(status.unavailable_replicas),
        conditions: status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| Condition {
                type_: c.type_,
                status: c.status,
                reason: c.reason.unwrap_or_default(),
                message: c.message.unwrap_or_default(),
            })
            .collect(),
        labels: label_pairs(&d.metadata),
    }
}

fn replica_set_record(rs: &apps::ReplicaSet) -> ReplicaSet {
    let (namespace, name, uid) = identity(&rs.metadata);
    let status = rs.status.clone().unwrap_or_default();
    ReplicaSet {
        namespace,
        name,
        uid,
        revision: revision(&rs.metadata),
        template_hash: template_hash(&rs.metadata),
        replicas: count(Some(status.replicas)),
        ready_replicas: count(status.ready_replicas),
        available_replicas: count(status.available_replicas),
        created_secs: secs(rs.metadata.creation_timestamp.as_ref()),
    }
}

fn template_hash(meta: &ObjectMeta) -> String {
    text(meta.labels.as_ref().and_then(|l| l.get(TEMPLATE_HASH)))
}

fn pod_record(pod: &core::Pod, deployment: &str) -> Pod {
    let (namespace, name, uid) = identity(&pod.metadata);
    let status = pod.status.clone().unwrap_or_default();
    let limits: BTreeMap<String, Option<u64>> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            let memory = c.resources.as_ref().and_then(|r| r.limits.as_ref()?.get("memory"));
            (c.name.clone(), memory.and_then(|q| quantity::bytes(&q.0)))
        })
        .collect();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    Pod {
        namespace,
        name,
        uid,
        resource_version: text(pod.metadata.resource_version.as_ref()),
        deployment: deployment.to_string(),
        template_hash: template_hash(&pod.metadata),
        node_name: text(pod.spec.as_ref().and_then(|s| s.node_name.as_ref())),
        phase: text(status.phase.as_ref()),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        started_secs: secs(status.start_time.as_ref()),
        containers: status
            .container_statuses
            .unwrap_or_default()
            .into_iter()
            .map(|c| ContainerStatus {
                memory_limit_bytes: limits.get(&c.name).copied().flatten(),
                ready: c.ready,
                restart_count: c.restart_count.max(0) as u32,
                waiting_reason: c.state.and_then(|s| s.waiting?.reason),
                last_terminated_reason: c.last_state.and_then(|s| s.terminated?.reason),
                name: c.name,
            })
            .collect(),
        labels: label_pairs(&pod.metadata),
    }
}

fn memory_record(metrics: &PodMetrics) -> MemoryUsage {
    MemoryUsage {
        containers: metrics
            .containers
            .iter()
            .map(|c| {
                let bytes = c.usage.get("memory").and_then(|m| quantity::bytes(m));
                (c.name.clone(), bytes.unwrap_or(0))
            })
            .collect(),
        timestamp_secs: metrics
            .timestamp
            .as_deref()
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map(|t| t.as_second())
            .unwrap_or(0),
    }
}

fn event_record(e: &core::Event) -> Event {
    let last_seen = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
        .unwrap_or(0);
    Event {
        object_kind: text(e.involved_object.kind.as_ref()),
        object_name: text(e.involved_object.name.as_ref()),
        type_: text(e.type_.as_ref()),
        reason: text(e.reason.as_ref()),
        message: text(e.message.as_ref()),
        count: count(e.count),
        last_seen_secs: last_seen,
    }
}
