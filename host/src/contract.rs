//! The WIT contract (`contract/wit/`) as Rust types. The engine lowers and lifts them,
//! the capabilities implement its read interfaces, the executor acts on its
//! actions, and the store keeps them as JSON.

mod generated {
    wasmtime::component::bindgen!({
        path: "../contract/wit",
        world: "plugin",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        // Calls into a plugin are async so that its deadline can win over a
        // host call that waits (WASI's poll); remedy's own imports stay
        // synchronous and bound themselves.
        exports: { default: async },
    });
}

// Every interface of the contract, each named as in the WIT.
pub(crate) use generated::remedy::plugin::*;
pub(crate) use generated::{Plugin as PluginBindings, PluginPre};
pub use types::{
    Action, ActionResult, ActionStatus, Alert, AlertStatus, Check, CheckStatus, DockerPrune,
    DockerPruneTarget, DockerRestartContainer, Error as ApiError, FileIdentity, Incident,
    K8sDeletePod, K8sDeploymentRef, K8sRestartDeployment, K8sRollbackDeployment, KmodLoad,
    NbdDisconnect, NetnsDelete, NomadAllocRef, NomadClientGc, NomadEvaluateJob, NomadRestartAlloc,
    NomadRevertJob, NomadStopAlloc, ParamInfo, PastAction, Plan, PluginInfo, ProcessSignal,
    RemovePath,
};

pub use remedy_contract::PACKAGE;

remedy_contract::impl_action_kinds!(Action);
remedy_contract::impl_docker_prune_targets!(DockerPruneTarget);
remedy_contract::impl_error_describe!(ApiError);

impl Action {
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
                format!("{} older than {}s", a.target.name(), a.older_than_secs)
            }
            Action::DockerRestartContainer(a) => format!("container {}", a.name),
            Action::K8sRollbackDeployment(a) => format!(
                "{} revision {} -> {}",
                deployment_target(&a.deployment),
                a.deployment.revision,
                a.to_revision
            ),
            Action::K8sRestartDeployment(a) => deployment_target(&a.deployment),
            Action::K8sDeletePod(a) => format!("pod {}/{} (uid {})", a.namespace, a.name, a.uid),
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
            Action::K8sRollbackDeployment(a) => &a.reason,
            Action::K8sRestartDeployment(a) => &a.reason,
            Action::K8sDeletePod(a) => &a.reason,
        }
    }
}

fn deployment_target(deployment: &K8sDeploymentRef) -> String {
    format!("deployment {}/{}", deployment.namespace, deployment.name)
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

    pub const ALL: [ActionStatus; 6] = [
        ActionStatus::Planned,
        ActionStatus::Done,
        ActionStatus::Denied,
        ActionStatus::Stale,
        ActionStatus::Failed,
        ActionStatus::Skipped,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
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
    pub fn denied(message: impl Into<String>) -> Self {
        ApiError::Denied(message.into())
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid(message.into())
    }
}
