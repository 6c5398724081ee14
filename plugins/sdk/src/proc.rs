//! Read-only view of this host's processes (grant `proc = ["read"]`).

pub use crate::bindings::remedy::plugin::proc::{FileInUse, Process, files_in_use, processes};
