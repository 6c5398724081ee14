//! Read-only view of the local Docker engine within the granted label
//! selector (grant `docker = ["read", ...]`).

pub use crate::bindings::remedy::plugin::docker::{
    Container, Image, PruneCandidate, containers, images, prune_candidates,
};
