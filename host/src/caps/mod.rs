//! Capabilities: one folder each, with its grant (`grant.rs`), its read
//! interface (`read.rs`) and its actions (`act.rs`), tied together by one
//! [`Capability`] impl in its `mod.rs`. [`registry`] names every capability
//! once; the engine links, the config validates and the executor dispatches
//! by looping over it. Capabilities never call each other. What they share
//! that is no capability (procfs, patterns, the async bridge) is in
//! [`crate::sys`].

#[macro_use]
pub mod journal;
pub mod log;
#[macro_use]
mod registry;

/// The [`Act`] of a read-only capability: it has no actions, so its action
/// type has no values and the executor never reaches it.
macro_rules! read_only {
    ($cap:ty) => {
        impl $crate::caps::Act for $cap {
            type Action<'a> = std::convert::Infallible;

            fn allowed_kinds(_: &Self::Grant) -> Vec<&'static str> {
                Vec::new()
            }

            fn check_grant(
                never: &std::convert::Infallible,
                _: &Self::Grant,
                _: &$crate::caps::HostEnv,
            ) -> Result<(), String> {
                match *never {}
            }

            fn perform(
                never: &std::convert::Infallible,
                _: &Self::Grant,
                _: &$crate::caps::HostEnv,
                _: bool,
            ) -> Result<String, $crate::caps::Refusal> {
                match *never {}
            }
        }
    };
}

pub use registry::HasReaders;

// Every capability: its folder, and the type that implements it.
registry! {
    fs: Fs,
    proc: Proc,
    nomad: Nomad,
    docker: Docker,
    netns: Netns,
    kmod: Kmod,
    http: Http,
    prometheus: Prometheus,
    kube: Kube,
}

use crate::contract::ApiError;
use crate::sys::bridge;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Linker;

/// One capability: a WIT interface plugins read through, the part of
/// `[plugin.grants]` that scopes it, and the actions it carries out.
pub trait Capability {
    /// The WIT interface, and the first word of every grant key
    /// (`nomad`, `nomad_jobs`): a grant key belongs to the capability it
    /// is named after.
    const NAME: &'static str;
    /// Whether it reaches this node's own things (files, processes,
    /// namespaces, modules, the local Docker engine) rather than a cluster
    /// service: a plugin granted it runs only on the node its alert is about.
    const NODE_LOCAL: bool;
    /// Its keys in `[plugin.grants]`.
    type Grant: Clone
        + Default
        + PartialEq
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
        + schemars::JsonSchema;
    /// Its read interface for one plugin instance: it refuses (and notes)
    /// every call outside the grant before it looks.
    type Reader: Send + 'static;
    /// The grant line that would let a plugin read through the interface,
    /// when `grant` does not (its calls are then denied).
    fn missing(grant: &Self::Grant) -> Option<&'static str>;
    /// What is wrong with `grant`, each problem naming its key.
    fn problems(grant: &Self::Grant) -> Vec<String>;
    /// Its reader for one instance, whose calls go through `journal`.
    fn reader(grant: &Self::Grant, env: &HostEnv, journal: journal::Journal) -> Self::Reader;
    /// Link the read interface; `get` finds this capability's reader.
    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut Self::Reader,
    ) -> wasmtime::Result<()>;
    /// The calls the reader refused during one plugin call.
    fn denials(reader: Self::Reader) -> Vec<String>;
}

/// What a capability does beyond reading: its actions, their grant check,
/// and their effect. Crate-private, so nothing outside remedy can reach an
/// effect; inside, the executor is the one caller, through [`CapAction`].
pub(crate) trait Act: Capability {
    /// Its actions, as borrowed from a plan.
    type Action<'a>;

    /// The kinds of action `grant` allows at all; each action's target is
    /// still checked by [`Act::check_grant`].
    fn allowed_kinds(grant: &Self::Grant) -> Vec<&'static str>;

    /// Why `grant` does not cover `action`, if it does not.
    fn check_grant(
        action: &Self::Action<'_>,
        grant: &Self::Grant,
        env: &HostEnv,
    ) -> Result<(), String>;
    /// Re-check the object against the world as it is now and, unless
    /// `dry_run`, act on it.
    fn perform(
        action: &Self::Action<'_>,
        grant: &Self::Grant,
        env: &HostEnv,
        dry_run: bool,
    ) -> Result<String, Refusal>;
}

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

/// This host as capabilities reach it, shared by every plugin instance and
/// the executor: clients of the outside services (each connects on first
/// use) and where this host keeps things.
pub struct HostEnv {
    /// Runs Nomad and Docker requests and drives calls into plugins.
    pub bridge: Arc<bridge::Bridge>,
    pub nomad: Arc<nomad::NomadApi>,
    pub docker: Arc<docker::DockerEngine>,
    /// Where this host keeps named network namespaces.
    pub netns: netns::NetnsSettings,
    /// Where sysfs is, and the programs that load modules and disconnect nbd devices.
    pub kmod: kmod::KmodSettings,
    /// The client granted HTTP reads go through.
    pub http: Arc<http::HttpClient>,
    /// The operator's Prometheus (`[prometheus]`).
    pub prometheus: Arc<prometheus::PrometheusApi>,
    /// The Kubernetes API (`[kubernetes]`).
    pub kube: Arc<self::kube::KubeApi>,
    /// This node's name, as plugins see it through the `node` interface.
    pub node_name: Arc<str>,
}

impl HostEnv {
    pub fn new(nomad: nomad::NomadSettings, docker: docker::DockerSettings) -> Self {
        let bridge = Arc::new(bridge::Bridge::default());
        HostEnv {
            nomad: Arc::new(nomad::NomadApi::new(nomad, bridge.clone())),
            docker: Arc::new(docker::DockerEngine::new(docker, bridge.clone())),
            prometheus: Arc::new(prometheus::PrometheusApi::new(
                Default::default(),
                bridge.clone(),
            )),
            kube: Arc::new(self::kube::KubeApi::new(Default::default(), bridge.clone())),
            bridge,
            netns: Default::default(),
            kmod: Default::default(),
            http: Default::default(),
            node_name: crate::node::host_name().into(),
        }
    }

    /// The same, reaching the Kubernetes API `settings` name.
    pub fn with_kube(mut self, settings: self::kube::KubeSettings) -> Self {
        self.kube = Arc::new(self::kube::KubeApi::new(settings, self.bridge.clone()));
        self
    }

    /// The same, on the node called `name`.
    pub fn named(mut self, name: &str) -> Self {
        self.node_name = name.into();
        self
    }

    /// The same, querying the Prometheus `settings` name.
    pub fn with_prometheus(mut self, settings: prometheus::PrometheusSettings) -> Self {
        self.prometheus = Arc::new(prometheus::PrometheusApi::new(
            settings,
            self.bridge.clone(),
        ));
        self
    }

    /// The same, with this host's netns directory and kmod paths.
    pub fn with_paths(mut self, netns: netns::NetnsSettings, kmod: kmod::KmodSettings) -> Self {
        self.netns = netns;
        self.kmod = kmod;
        self
    }
}

impl Default for HostEnv {
    fn default() -> Self {
        HostEnv::new(Default::default(), Default::default())
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

    /// Make the read `read` only when `allowed` (the grant's answer for
    /// this call); a refusal, the grant's or the service's, is noted.
    pub fn guard<T>(
        &mut self,
        call: &str,
        allowed: Result<(), String>,
        read: impl FnOnce() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let result = allowed.map_err(ApiError::Denied).and_then(|()| read());
        self.note(call, result)
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

/// `[kind]` when `granted`, for [`Act::allowed_kinds`].
fn allowed(granted: bool, kind: &'static str) -> Vec<&'static str> {
    if granted { vec![kind] } else { Vec::new() }
}

/// A problem for each of `paths` (the grant `key`) that is not absolute or
/// holds `.` or `..`: grants name directories and files exactly.
fn unclean_paths(key: &str, paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .filter(|path| !is_clean_absolute(path))
        .map(|path| {
            format!(
                "grants.{key} = {:?}: must be an absolute path without `.` or `..`",
                path.display()
            )
        })
        .collect()
}

fn is_clean_absolute(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !path.as_os_str().to_string_lossy().contains("/./")
}
