//! `kube`, `kube_namespaces`, `kube_names` and `kube_labels`: what a plugin
//! may read and do in Kubernetes, in which namespaces, to which deployments.
//! Replica sets, pods and events are granted with the deployment that owns them.

use crate::sys::patterns::Patterns;
use crate::sys::selector;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a plugin may do in Kubernetes (`kube = [...]`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KubeRight {
    /// Link the `kube` read interface.
    Read,
    /// `k8s-rollback-deployment`.
    Rollback,
    /// `k8s-restart-deployment`.
    Restart,
    /// `k8s-delete-pod`.
    DeletePod,
}

impl KubeRight {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            KubeRight::Read => "read",
            KubeRight::Rollback => "rollback",
            KubeRight::Restart => "restart",
            KubeRight::DeletePod => "delete-pod",
        }
    }
}

/// The part of a plugin's grants that concerns Kubernetes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeGrant {
    /// `read` links the `kube` interface; `rollback`, `restart` and
    /// `delete-pod` allow those actions.
    #[serde(default, rename = "kube")]
    pub rights: Vec<KubeRight>,
    /// Namespaces the plugin may see and act in; none means `default` only.
    #[serde(default, rename = "kube_namespaces")]
    pub namespaces: Vec<String>,
    /// Anchored regexes of deployment names the plugin may see and act on;
    /// none means all.
    #[serde(default, rename = "kube_names")]
    pub names: Patterns,
    /// Labels (`key` or `key=value`) a deployment must all carry to be seen
    /// or acted on. None: every deployment.
    #[serde(default, rename = "kube_labels")]
    pub labels: Vec<String>,
}

impl KubeGrant {
    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> =
            selector::problem("kube_labels", &self.labels).into_iter().collect();
        if self.namespaces.iter().any(String::is_empty) {
            problems.push("grants.kube_namespaces names an empty namespace".into());
        }
        problems
    }

    pub fn namespaces(&self) -> Vec<String> {
        if self.namespaces.is_empty() {
            vec!["default".to_string()]
        } else {
            self.namespaces.clone()
        }
    }

    /// Whether a deployment's namespace and name are granted: checked
    /// before any request is made.
    pub(super) fn check_name(&self, namespace: &str, name: &str) -> Result<(), String> {
        self.check_namespace(namespace)?;
        if !(self.names.is_empty() || self.names.matches(name)) {
            return Err(format!(
                "deployment {namespace}/{name} is not granted (kube_names = {:?})",
                self.names.sources()
            ));
        }
        Ok(())
    }

    pub(super) fn check_namespace(&self, namespace: &str) -> Result<(), String> {
        if self.namespaces().iter().any(|n| n == namespace) {
            Ok(())
        } else {
            Err(format!(
                "namespace {namespace:?} is not granted (kube_namespaces = {:?})",
                self.namespaces()
            ))
        }
    }

    /// Whether a deployment with these labels is inside `kube_labels`.
    pub(super) fn check_labels(
        &self,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        if selector::selects(&self.labels, |key| labels.get(key).map(String::as_str)) {
            Ok(())
        } else {
            Err(format!(
                "deployment {namespace}/{name} is outside the granted labels (kube_labels = {:?})",
                self.labels
            ))
        }
    }

    pub(super) fn check_right(&self, right: KubeRight) -> Result<(), String> {
        if self.rights.contains(&right) {
            Ok(())
        } else {
            Err(format!(
                "no Kubernetes `{}` grant; the operator adds it to kube = [...]",
                right.as_str()
            ))
        }
    }
}
