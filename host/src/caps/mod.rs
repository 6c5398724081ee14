//! One module per capability: its grant, its read interface, its actions.
//! Capabilities never call each other; the engine links their read interfaces
//! and the executor combines their actions. What they share that is no
//! capability (procfs, patterns, the async bridge) is in [`crate::sys`].

pub mod docker;
pub mod fs;
pub mod kmod;
pub mod log;
pub mod netns;
pub mod nomad;
pub mod proc;

use crate::contract::ApiError;
use crate::sys::{bridge, patterns};
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
    /// The action would reach something its grant does not cover (a
    /// process-group signal reaching an ungranted process, say).
    #[error("{0}")]
    Denied(String),
}

/// The outside services capabilities talk to, shared by every plugin
/// instance and the executor; each connects on first use.
pub struct Connections {
    /// Runs Nomad and Docker requests and drives calls into plugins.
    pub bridge: Arc<bridge::Bridge>,
    pub nomad: Arc<nomad::Nomad>,
    pub docker: Arc<docker::Docker>,
    /// Where this host keeps named network namespaces.
    pub netns: netns::NetnsSettings,
    /// Where sysfs is, and the programs that load modules and disconnect nbd devices.
    pub kmod: kmod::KmodSettings,
}

impl Connections {
    pub fn new(nomad: nomad::NomadSettings, docker: docker::DockerSettings) -> Self {
        let bridge = Arc::new(bridge::Bridge::default());
        Connections {
            nomad: Arc::new(nomad::Nomad::new(nomad, bridge.clone())),
            docker: Arc::new(docker::Docker::new(docker, bridge.clone())),
            bridge,
            netns: Default::default(),
            kmod: Default::default(),
        }
    }

    /// The same, with this host's netns directory and kmod paths.
    pub fn with_host(mut self, netns: netns::NetnsSettings, kmod: kmod::KmodSettings) -> Self {
        self.netns = netns;
        self.kmod = kmod;
        self
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
    /// Each line names what the plugin asked for, so it is cut to this.
    const LINE_BYTES: usize = 1024;

    /// Pass `result` through, noting it when it is a denial.
    pub fn note<T>(&mut self, interface: &str, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(ApiError::Denied(why)) = &result {
            if self.seen.len() < Self::KEPT {
                let line = format!("{interface}: {why}");
                self.seen.push(log::truncate(&line, Self::LINE_BYTES));
            } else {
                self.more += 1;
            }
        }
        result
    }

    /// Refuse `call` (and note it) unless the plugin holds `interface = ["read"]`.
    pub fn require_read(
        &mut self,
        call: &str,
        interface: &str,
        granted: bool,
    ) -> Result<(), ApiError> {
        let result = if granted {
            Ok(())
        } else {
            Err(ApiError::denied(format!(
                r#"no {interface} grant; the operator adds {interface} = ["read"]"#
            )))
        };
        self.note(call, result)
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
    pub nomad_jobs: patterns::Patterns,
    /// `read` links the `docker` interface; `prune` and `restart` allow those actions.
    #[serde(default)]
    pub docker: Vec<docker::DockerRight>,
    /// Labels (`key` or `key=value`) a container must all carry to be seen or acted on.
    #[serde(default)]
    pub docker_labels: Vec<String>,
    /// Files whose locks `proc.file-locks` may report (absolute paths); a
    /// daemon's lock file tells whether it runs.
    #[serde(default)]
    pub proc_locks: Vec<std::path::PathBuf>,
    /// Signals `process-signal` may send (`TERM`, `KILL`, ...).
    #[serde(default)]
    pub proc_signals: Vec<String>,
    /// Executables whose processes `process-signal` may signal: absolute paths,
    /// where `*` stands for any part of one path segment (`/fc-versions/*/firecracker`).
    #[serde(default)]
    pub proc_exes: Vec<std::path::PathBuf>,
    /// `read` links the `netns` interface; `delete` allows `netns-delete`.
    #[serde(default)]
    pub netns: Vec<netns::NetnsRight>,
    /// Anchored regexes of namespace names it may see and delete; none: nothing.
    #[serde(default)]
    pub netns_names: patterns::Patterns,
    /// Anchored regexes of host link names it may see and delete.
    #[serde(default)]
    pub netns_links: patterns::Patterns,
    /// `read` links the `kmod` interface; `load`, `nbd-disconnect` allow those actions.
    #[serde(default)]
    pub kmod: Vec<kmod::KmodRight>,
    /// Modules `kmod-load` may load.
    #[serde(default)]
    pub kmod_modules: Vec<String>,
    /// Parameters it may pass: `name` (any value) or `name=value`.
    #[serde(default)]
    pub kmod_params: Vec<String>,
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
            "netns" if !self.netns.contains(&netns::NetnsRight::Read) => {
                Some(r#"netns = ["read"] and netns_names = ["ns-[0-9]+"]"#)
            }
            "kmod" if !self.kmod.contains(&kmod::KmodRight::Read) => Some(r#"kmod = ["read"]"#),
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

    pub fn netns_grant(&self) -> netns::NetnsGrant {
        netns::NetnsGrant {
            rights: self.netns.clone(),
            names: self.netns_names.clone(),
            links: self.netns_links.clone(),
        }
    }

    pub fn kmod_grant(&self) -> kmod::KmodGrant {
        kmod::KmodGrant {
            rights: self.kmod.clone(),
            modules: self.kmod_modules.clone(),
            parameters: self.kmod_params.clone(),
        }
    }

    pub fn docker_grant(&self) -> docker::DockerGrant {
        docker::DockerGrant {
            rights: self.docker.clone(),
            labels: self.docker_labels.clone(),
        }
    }
}
