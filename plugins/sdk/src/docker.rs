//! Read-only view of the local Docker engine within the granted label
//! selector (grant `docker = ["read", ...]`).
//!
//! ```no_run
//! use remedy_sdk::{Error, docker};
//!
//! /// The names of the stopped containers the grant lets this plugin see.
//! fn stopped() -> Result<Vec<String>, Error> {
//!     let all = docker::containers(true)?;
//!     Ok(all.into_iter().filter(|c| c.state == "exited").map(|c| c.name).collect())
//! }
//! ```

pub use crate::bindings::remedy::plugin::docker::{
    Container, Image, PruneCandidate, containers, images, prune_candidates,
};
