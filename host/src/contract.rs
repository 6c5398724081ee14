//! The WIT contract (`wit/`) as Rust types. The engine lowers and lifts them,
//! the capabilities implement its read interfaces, the executor acts on its
//! actions, and the store keeps them as JSON.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

pub(crate) use generated::remedy::plugin::{fs, log, proc, types};
pub(crate) use generated::{Plugin as PluginBindings, PluginPre};
pub use types::{
    Action, ActionResult, ActionStatus, Alert, AlertStatus, Check, CheckStatus, Error as ApiError,
    FileIdentity, Incident, ParamInfo, Plan, PluginInfo, RemovePath,
};

/// The versioned package every remedy interface belongs to.
pub const PACKAGE: &str = "remedy:plugin@0.1.0";

impl Action {
    /// Every kind of action this version of the contract has.
    pub const KINDS: [&'static str; 1] = ["remove-path"];

    /// The kind name plugins declare in `action-kinds` and operators see in plans.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::RemovePath(_) => "remove-path",
        }
    }

    /// What the action acts on, in one line.
    pub fn target(&self) -> String {
        match self {
            Action::RemovePath(remove) => remove.path.clone(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Action::RemovePath(remove) => &remove.reason,
        }
    }
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
