//! Read-only view of named network namespaces within the granted names
//! (grant `netns = ["read", ...]`, `netns_names`).
//!
//! ```no_run
//! use remedy_sdk::{Error, netns};
//!
//! /// Named namespaces with no process inside: candidates for collection.
//! fn empty_namespaces() -> Result<Vec<netns::Namespace>, Error> {
//!     Ok(netns::namespaces()?.into_iter().filter(|ns| ns.pids.is_empty()).collect())
//! }
//! ```

pub use crate::bindings::remedy::plugin::netns::{Namespace, links, namespaces};
