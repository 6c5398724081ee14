//! Read-only view of named network namespaces within the granted names
//! (grant `netns = ["read", ...]`, `netns_names`).

pub use crate::bindings::remedy::plugin::netns::{Namespace, links, namespaces};
