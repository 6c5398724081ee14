//! `docker` and `docker_labels`: what a plugin may read and do with the
//! local Docker engine, and the label selector every container it sees or
//! touches must match.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a plugin may do with Docker (`docker = [...]`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DockerRight {
    /// Link the `docker` read interface.
    Read,
    /// `docker-prune`.
    Prune,
    /// `docker-restart-container`.
    Restart,
}

/// The part of a plugin's grants that concerns Docker.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerGrant {
    /// `read` links the `docker` interface; `prune` and `restart` allow those actions.
    #[serde(default, rename = "docker")]
    pub rights: Vec<DockerRight>,
    /// Labels (`key` or `key=value`) a container must all carry to be seen
    /// or acted on. None: every container.
    #[serde(default, rename = "docker_labels")]
    pub labels: Vec<String>,
}

impl DockerGrant {
    pub(super) fn problems(&self) -> Vec<String> {
        crate::sys::selector::problem("docker_labels", &self.labels)
            .into_iter()
            .collect()
    }

    pub(super) fn selects(&self, labels: &HashMap<String, String>) -> bool {
        crate::sys::selector::selects(&self.labels, |key| labels.get(key).map(String::as_str))
    }

    pub(super) fn check_right(&self, right: DockerRight, name: &str) -> Result<(), String> {
        if self.rights.contains(&right) {
            Ok(())
        } else {
            Err(format!(
                "no Docker `{name}` grant; the operator adds it to docker = [...]"
            ))
        }
    }

    pub(super) fn label_filter(&self) -> HashMap<String, Vec<String>> {
        let mut filters = HashMap::new();
        if !self.labels.is_empty() {
            filters.insert("label".to_string(), self.labels.clone());
        }
        filters
    }
}
