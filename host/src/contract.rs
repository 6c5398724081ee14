//! The WIT contract (`wit/`) as Rust types. The engine lowers and lifts them,
//! the capabilities implement its read interfaces, the executor acts on its
//! actions, and the store keeps them as JSON.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        // Calls into a plugin are async so that its deadline can win over a
        // host call that waits (WASI's poll); remedy's own imports stay
        // synchronous and bound themselves.
        exports: { default: async },
    });
}

pub(crate) use generated::remedy::plugin::{docker, fs, kmod, log, netns, nomad, proc, types};
pub(crate) use generated::{Plugin as PluginBindings, PluginPre};
pub use types::{
    Action, ActionResult, ActionStatus, Alert, AlertStatus, Check, CheckStatus, DockerPrune,
    DockerPruneTarget, DockerRestartContainer, Error as ApiError, FileIdentity, Incident, KmodLoad,
    NbdDisconnect, NetnsDelete, NomadAllocRef, NomadClientGc, NomadEvaluateJob, NomadRestartAlloc,
    NomadRevertJob, NomadStopAlloc, ParamInfo, PastAction, Plan, PluginInfo, ProcessSignal,
    RemovePath,
};

/// The versioned package every remedy interface belongs to.
pub const PACKAGE: &str = "remedy:plugin@0.1.0";

impl Action {
    /// Every kind of action this version of the contract has.
    pub const KINDS: [&'static str; 12] = [
        "remove-path",
        "netns-delete",
        "process-signal",
        "kmod-load",
        "nbd-disconnect",
        "nomad-restart-alloc",
        "nomad-stop-alloc",
        "nomad-evaluate-job",
        "nomad-revert-job",
        "nomad-client-gc",
        "docker-prune",
        "docker-restart-container",
    ];

    /// The kind name plugins declare in `action-kinds` and operators see in plans.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::RemovePath(_) => "remove-path",
            Action::NetnsDelete(_) => "netns-delete",
            Action::ProcessSignal(_) => "process-signal",
            Action::KmodLoad(_) => "kmod-load",
            Action::NbdDisconnect(_) => "nbd-disconnect",
            Action::NomadRestartAlloc(_) => "nomad-restart-alloc",
            Action::NomadStopAlloc(_) => "nomad-stop-alloc",
            Action::NomadEvaluateJob(_) => "nomad-evaluate-job",
            Action::NomadRevertJob(_) => "nomad-revert-job",
            Action::NomadClientGc(_) => "nomad-client-gc",
            Action::DockerPrune(_) => "docker-prune",
            Action::DockerRestartContainer(_) => "docker-restart-container",
        }
    }

    /// What the action acts on, in one line.
    pub fn target(&self) -> String {
        match self {
            Action::RemovePath(a) => a.path.clone(),
            Action::NetnsDelete(a) => match &a.host_link {
                Some(link) => format!("netns {} (inode {}) and link {link}", a.name, a.inode),
                None => format!("netns {} (inode {})", a.name, a.inode),
            },
            Action::ProcessSignal(a) => {
                let group = if a.process_group { " group" } else { "" };
                format!("SIG{} to pid {}{group} ({})", a.signal, a.pid, a.exe)
            }
            Action::KmodLoad(a) => {
                let params: Vec<String> = a
                    .parameters
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("module {} {}", a.module, params.join(" "))
                    .trim_end()
                    .to_string()
            }
            Action::NbdDisconnect(a) => format!("nbd{} (owner pid {})", a.index, a.owner_pid),
            Action::NomadRestartAlloc(a) => match &a.task {
                Some(task) => format!("{} task {task}", alloc_target(&a.alloc)),
                None => alloc_target(&a.alloc),
            },
            Action::NomadStopAlloc(a) => alloc_target(&a.alloc),
            Action::NomadEvaluateJob(a) => format!("{}/{}", a.namespace, a.job_id),
            Action::NomadRevertJob(a) => format!(
                "{}/{} v{} -> v{}",
                a.namespace, a.job_id, a.current_version, a.to_version
            ),
            Action::NomadClientGc(a) => format!("node {}", a.node_id),
            Action::DockerPrune(a) => {
                let target = match a.target {
                    DockerPruneTarget::StoppedContainers => "stopped-containers",
                    DockerPruneTarget::DanglingImages => "dangling-images",
                    DockerPruneTarget::UnusedImages => "unused-images",
                    DockerPruneTarget::BuildCache => "build-cache",
                };
                format!("{target} older than {}s", a.older_than_secs)
            }
            Action::DockerRestartContainer(a) => format!("container {}", a.name),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Action::RemovePath(a) => &a.reason,
            Action::NetnsDelete(a) => &a.reason,
            Action::ProcessSignal(a) => &a.reason,
            Action::KmodLoad(a) => &a.reason,
            Action::NbdDisconnect(a) => &a.reason,
            Action::NomadRestartAlloc(a) => &a.reason,
            Action::NomadStopAlloc(a) => &a.reason,
            Action::NomadEvaluateJob(a) => &a.reason,
            Action::NomadRevertJob(a) => &a.reason,
            Action::NomadClientGc(a) => &a.reason,
            Action::DockerPrune(a) => &a.reason,
            Action::DockerRestartContainer(a) => &a.reason,
        }
    }
}

fn alloc_target(alloc: &NomadAllocRef) -> String {
    format!(
        "{}/{} alloc {} on node {}",
        alloc.namespace, alloc.job_id, alloc.alloc_id, alloc.node_id
    )
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Planned => "planned",
            ActionStatus::Done => "done",
            ActionStatus::Denied => "denied",
            ActionStatus::Stale => "stale",
            ActionStatus::Failed => "failed",
            ActionStatus::Skipped => "skipped",
        }
    }
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
            CheckStatus::Skipped => "skip",
        }
    }
}

impl ApiError {
    /// `invalid: parameter ... ` — the variant, then the plugin's words.
    pub fn describe(&self) -> String {
        let (kind, message) = match self {
            ApiError::Denied(m) => ("denied", m),
            ApiError::NotFound(m) => ("not found", m),
            ApiError::Invalid(m) => ("invalid", m),
            ApiError::Unavailable(m) => ("unavailable", m),
            ApiError::Internal(m) => ("internal error", m),
        };
        format!("{kind}: {message}")
    }

    pub fn denied(message: impl Into<String>) -> Self {
        ApiError::Denied(message.into())
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid(message.into())
    }
}
