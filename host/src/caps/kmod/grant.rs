//! `kmod`, `kmod_modules` and `kmod_params`: which modules a plugin may
//! load with which parameters, and whether it may disconnect nbd devices.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KmodRight {
    /// Link the `kmod` read interface.
    Read,
    /// `kmod-load`.
    Load,
    /// `nbd-disconnect`.
    NbdDisconnect,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KmodGrant {
    /// `read` links the `kmod` interface; `load`, `nbd-disconnect` allow those actions.
    #[serde(default, rename = "kmod")]
    pub rights: Vec<KmodRight>,
    /// Modules `kmod-load` may load.
    #[serde(default, rename = "kmod_modules")]
    pub modules: Vec<String>,
    /// Parameters it may pass: `name` (any value) or `name=value`.
    #[serde(default, rename = "kmod_params")]
    pub parameters: Vec<String>,
}
