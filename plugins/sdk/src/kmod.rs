//! Read-only view of kernel modules and nbd devices (grant `kmod = ["read", ...]`).
//!
//! ```no_run
//! use remedy_sdk::{Error, kmod};
//!
//! /// Whether `nbd` is loaded, and its orphaned devices.
//! fn nbd_state() -> Result<(bool, Vec<u32>), Error> {
//!     let loaded = kmod::loaded_module("nbd")?.is_some();
//!     let orphans = kmod::nbd_devices()?
//!         .into_iter()
//!         .filter(|d| d.is_orphan())
//!         .map(|d| d.index)
//!         .collect();
//!     Ok((loaded, orphans))
//! }
//! ```

pub use crate::bindings::remedy::plugin::kmod::{Module, NbdDevice, loaded_module, nbd_devices};

impl NbdDevice {
    /// Connected, but its serving process is gone and nothing holds or mounts it.
    pub fn is_orphan(&self) -> bool {
        self.owner_pid.is_some() && !self.owner_alive && self.holders.is_empty() && !self.mounted
    }
}
