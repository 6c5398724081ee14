//! One module per capability: its grant, its read interface, its actions.
//! Capabilities never call each other; the engine links their read interfaces
//! and the executor combines their actions.

pub mod bridge;
pub mod docker;
pub mod fs;
pub mod log;
pub mod nomad;
pub mod proc;

use crate::contract::ApiError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Why a granted action was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The target is not the object the plugin saw, or it is now in use.
    #[error("{0}")]
    Stale(String),
    #[error("{0}")]
    Failed(String),
}

/// The outside services capabilities talk to, shared by every plugin
/// instance and the executor; each connects on first use.
pub struct Connections {
    pub nomad: Arc<nomad::Nomad>,
    pub docker: Arc<docker::Docker>,
}

impl Connections {
    pub fn new(nomad: nomad::NomadSettings, docker: docker::DockerSettings) -> Self {
        let bridge = Arc::new(bridge::Bridge::default());
        Connections {
            nomad: Arc::new(nomad::Nomad::new(nomad, bridge.clone())),
            docker: Arc::new(docker::Docker::new(docker, bridge)),
        }
    }
}

impl Default for Connections {
    fn default() -> Self {
        Connections::new(Default::default(), Default::default())
    }
}

/// Refusals a capability made during one call into a plugin, kept (bounded)
/// so the run record shows every attempt to step outside the grants, whatever
/// the plugin itself reports.
#[derive(Debug, Default)]
pub struct Denials {
    seen: Vec<String>,
    more: u64,
}

impl Denials {
    const KEPT: usize = 100;

    /// Pass `result` through, noting it when it is a denial.
    pub fn note<T>(&mut self, interface: &str, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(ApiError::Denied(why)) = &result {
            if self.seen.len() < Self::KEPT {
                self.seen.push(format!("{interface}: {why}"));
            } else {
                self.more += 1;
            }
        }
        result
    }

    pub fn into_lines(self) -> Vec<String> {
        let mut lines = self.seen;
        if self.more > 0 {
            lines.push(format!("{} more denials", self.more));
        }
        lines
    }
}

/// What the operator lets one plugin see and do (`[plugin.grants]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Directories the plugin may read below.
    #[serde(default)]
    pub fs_read: Vec<std::path::PathBuf>,
    /// Directories below which `remove-path` may unlink files.
    #[serde(default)]
    pub fs_remove: Vec<std::path::PathBuf>,
    /// `["read"]` lets the plugin list processes and the files they hold.
    #[serde(default)]
    pub proc: Vec<proc::ProcRight>,
    /// `read` links the `nomad` interface; `restart`, `stop`, `evaluate`,
    /// `revert` and `gc` allow those actions.
    #[serde(default)]
    pub nomad: Vec<nomad::NomadRight>,
    /// Namespaces the plugin may see and act in; none means `default` only.
    #[serde(default)]
    pub nomad_namespaces: Vec<String>,
    /// Anchored regexes of job ids the plugin may see and act on; none means all.
    #[serde(default)]
    pub nomad_jobs: nomad::JobPatterns,
    /// `read` links the `docker` interface; `prune` and `restart` allow those actions.
    #[serde(default)]
    pub docker: Vec<docker::DockerRight>,
    /// Labels (`key` or `key=value`) a container must all carry to be seen or acted on.
    #[serde(default)]
    pub docker_labels: Vec<String>,
}

impl Grants {
    /// The config line that would grant the WIT interface `interface`, or
    /// `None` when it is granted (or needs no grant, like `log`).
    pub fn missing_for(&self, interface: &str) -> Option<&'static str> {
        match interface {
            "fs" if self.fs_read.is_empty() => Some(r#"fs_read = ["/some/dir"]"#),
            "proc" if !self.proc.contains(&proc::ProcRight::Read) => Some(r#"proc = ["read"]"#),
            "nomad" if !self.nomad.contains(&nomad::NomadRight::Read) => {
                Some(r#"nomad = ["read"]"#)
            }
            "docker" if !self.docker.contains(&docker::DockerRight::Read) => {
                Some(r#"docker = ["read"]"#)
            }
            _ => None,
        }
    }

    pub fn nomad_grant(&self) -> nomad::NomadGrant {
        nomad::NomadGrant {
            rights: self.nomad.clone(),
            namespaces: self.nomad_namespaces.clone(),
            jobs: self.nomad_jobs.clone(),
        }
    }

    pub fn docker_grant(&self) -> docker::DockerGrant {
        docker::DockerGrant {
            rights: self.docker.clone(),
            labels: self.docker_labels.clone(),
        }
    }
}
