//! `netns`, `netns_names` and `netns_links`: which named network
//! namespaces (and host links) a plugin may see and delete.

use crate::sys::patterns::Patterns;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NetnsRight {
    /// Link the `netns` read interface.
    Read,
    /// `netns-delete`.
    Delete,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetnsGrant {
    /// `read` links the `netns` interface; `delete` allows `netns-delete`.
    #[serde(default, rename = "netns")]
    pub rights: Vec<NetnsRight>,
    /// Anchored regexes of namespace names it may see and delete; none: nothing.
    #[serde(default, rename = "netns_names")]
    pub names: Patterns,
    /// Anchored regexes of host link names it may see and delete with a namespace.
    #[serde(default, rename = "netns_links")]
    pub links: Patterns,
}
