//! The objects remedy reads and writes in a cluster, as kube-rs types: a
//! deployment and what it owns (replica sets, their pods, events about
//! them), pod metrics, and the two writes (a patch, a delete with
//! preconditions). Names from plugins are checked before any request.

use super::client::{KubeApi, KubeError};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// At most this many objects of a kind are read per namespace.
pub const MAX_ITEMS: u32 = 500;
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const TEMPLATE_HASH: &str = "pod-template-hash";

impl KubeApi {
    pub(super) fn get<K>(&self, namespace: &str, name: &str) -> Result<K, KubeError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
        K: Clone + DeserializeOwned + Debug + k8s_openapi::Resource,
    {
        let request = format!("get {} {namespace}/{name}", K::KIND);
        checked_names(&request, namespace, name)?;
        self.call(&request, |client| {
            let api = Api::<K>::namespaced(client, namespace);
            async move { api.get(name).await }
        })
    }

    fn list<K>(&self, namespace: &str, labels: Option<&str>) -> Result<Vec<K>, KubeError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
        K: Clone + DeserializeOwned + Debug + k8s_openapi::Resource,
    {
        let request = format!("list {} in {namespace}", K::KIND);
        checked_namespace(&request, namespace)?;
        let mut params = ListParams::default().limit(MAX_ITEMS);
        if let Some(labels) = labels {
            params = params.labels(labels);
        }
        let list = self.call(&request, |client| {
            let api = Api::<K>::namespaced(client, namespace);
            let params = params.clone();
            async move { api.list(&params).await }
        })?;
        Ok(list.items)
    }

    pub(super) fn deployments(&self, namespace: &str) -> Result<Vec<Deployment>, KubeError> {
        self.list(namespace, None)
    }

    /// The replica sets `deployment` controls, newest revision first.
    pub(super) fn replica_sets(&self, deployment: &Deployment) -> Result<Vec<ReplicaSet>, KubeError> {
        let namespace = namespace_of(&deployment.metadata);
        let selector = match_labels(deployment);
        let mut owned: Vec<ReplicaSet> = self
            .list::<ReplicaSet>(namespace, selector.as_deref())?
            .into_iter()
            .filter(|rs| controlled_by(&rs.metadata, &deployment.metadata))
            .collect();
        owned.sort_by_key(|rs| std::cmp::Reverse(revision(&rs.metadata)));
        Ok(owned)
    }

    /// The pods of `deployment`'s replica sets.
    pub(super) fn pods(
        &self,
        deployment: &Deployment,
        replica_sets: &[ReplicaSet],
    ) -> Result<Vec<Pod>, KubeError> {
        let namespace = namespace_of(&deployment.metadata);
        let selector = match_labels(deployment);
        Ok(self
            .list::<Pod>(namespace, selector.as_deref())?
            .into_iter()
            .filter(|pod| {
                replica_sets
                    .iter()
                    .any(|rs| controlled_by(&pod.metadata, &rs.metadata))
            })
            .collect())
    }

    /// The deployment that controls `pod` through its replica set, and
    /// that replica set; `None` for a pod no deployment controls.
    pub(super) fn owner_of(&self, pod: &Pod) -> Result<Option<(Deployment, ReplicaSet)>, KubeError> {
        let namespace = namespace_of(&pod.metadata);
        let Some(rs_ref) = controller(&pod.metadata, "ReplicaSet") else {
            return Ok(None);
        };
        let rs: ReplicaSet = self.get(namespace, &rs_ref.name)?;
        if rs.metadata.uid.as_deref() != Some(rs_ref.uid.as_str()) {
            return Ok(None);
        }
        let Some(deploy_ref) = controller(&rs.metadata, "Deployment") else {
            return Ok(None);
        };
        let deployment: Deployment = self.get(namespace, &deploy_ref.name)?;
        if deployment.metadata.uid.as_deref() != Some(deploy_ref.uid.as_str()) {
            return Ok(None);
        }
        Ok(Some((deployment, rs)))
    }

    pub(super) fn events(&self, namespace: &str) -> Result<Vec<Event>, KubeError> {
        self.list(namespace, None)
    }

    /// What `kubectl top pod` reads: the pod's metrics from metrics.k8s.io.
    pub(super) fn pod_metrics(&self, namespace: &str, name: &str) -> Result<PodMetrics, KubeError> {
        let request = format!("get PodMetrics {namespace}/{name}");
        checked_names(&request, namespace, name)?;
        let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}");
        self.call(&request, |client| {
            let path = path.clone();
            async move {
                let request = http::Request::get(path)
                    .body(Vec::new())
                    .map_err(kube::Error::HttpError)?;
                client.request::<PodMetrics>(request).await
            }
        })
    }

    pub(super) fn patch_deployment(
        &self,
        namespace: &str,
        name: &str,
        patch: &Patch<serde_json::Value>,
    ) -> Result<Deployment, KubeError> {
        let request = format!("patch Deployment {namespace}/{name}");
        checked_names(&request, namespace, name)?;
        let params = PatchParams::default();
        self.call(&request, |client| {
            let api = Api::<Deployment>::namespaced(client, namespace);
            let params = params.clone();
            async move { api.patch(name, &params, patch).await }
        })
    }

    /// Delete the pod only if it still has `uid` and `resource_version`.
    pub(super) fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        resource_version: &str,
    ) -> Result<(), KubeError> {
        let request = format!("delete Pod {namespace}/{name}");
        checked_names(&request, namespace, name)?;
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: Some(resource_version.to_string()),
            }),
            ..Default::default()
        };
        self.call(&request, |client| {
            let api = Api::<Pod>::namespaced(client, namespace);
            let params = params.clone();
            async move { api.delete(name, &params).await.map(drop) }
        })
    }
}

/// metrics.k8s.io/v1beta1 `PodMetrics`, the fields remedy reads.
#[derive(Debug, Deserialize)]
pub struct PodMetrics {
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Deserialize)]
pub struct ContainerMetrics {
    pub name: String,
    #[serde(default)]
    pub usage: std::collections::BTreeMap<String, String>,
}

/// Object names come from plugins: only what Kubernetes itself allows (a
/// DNS-1123 label for a namespace, a DNS-1123 subdomain for a name) reaches
/// a request path.
fn checked_names(request: &str, namespace: &str, name: &str) -> Result<(), KubeError> {
    checked_namespace(request, namespace)?;
    if dns_1123(name, 253) {
        Ok(())
    } else {
        Err(KubeError::BadName(request.to_string()))
    }
}

fn checked_namespace(request: &str, namespace: &str) -> Result<(), KubeError> {
    if dns_1123(namespace, 63) && !namespace.contains('.') {
        Ok(())
    } else {
        Err(KubeError::BadName(request.to_string()))
    }
}

fn dns_1123(text: &str, longest: usize) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.';
    !text.is_empty()
        && text.len() <= longest
        && text.bytes().all(allowed)
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
}

pub fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

/// `deployment.kubernetes.io/revision`, 0 when absent or not a number.
pub fn revision(meta: &ObjectMeta) -> u64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The owner reference of `meta` that is its controller, of `kind`.
fn controller<'a>(
    meta: &'a ObjectMeta,
    kind: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == kind)
}

/// Whether `owner` is the controller of `meta` (by uid, not by name).
pub fn controlled_by(meta: &ObjectMeta, owner: &ObjectMeta) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == owner.uid.as_deref())
}

/// A deployment's `matchLabels` as a label selector, to narrow a listing;
/// ownership is checked by uid either way.
fn match_labels(deployment: &Deployment) -> Option<String> {
    let labels = deployment.spec.as_ref()?.selector.match_labels.as_ref()?;
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    (!pairs.is_empty()).then(|| pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubernetes_names_reach_a_request_path() {
        let ok = |ns: &str, name: &str| checked_names("get x", ns, name).is_ok();
        assert!(ok("shop", "api-7d9f8-x1c2"));
        assert!(ok("kube-system", "coredns.v1"));
        for (ns, name) in [
            ("shop", "../../secrets/token"),
            ("shop", "api/x"),
            ("shop", "API"),
            ("shop", ""),
            ("shop", "-api"),
            ("shop", "api?watch=1"),
            ("sh.op", "api"),
            ("..", "api"),
            ("shop", &"a".repeat(254)),
        ] {
            assert!(!ok(ns, name), "{ns}/{name}");
        }
        let refused = checked_names("delete Pod shop/..", "shop", "..").unwrap_err();
        assert!(refused.to_string().contains("refusing to delete Pod shop/.."), "{refused}");
    }
}
