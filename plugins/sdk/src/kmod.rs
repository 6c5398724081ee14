//! Read-only view of kernel modules and nbd devices (grant `kmod = ["read", ...]`).

pub use crate::bindings::remedy::plugin::kmod::{Module, NbdDevice, loaded_module, nbd_devices};

impl NbdDevice {
    /// Connected, but its serving process is gone and nothing holds or mounts it.
    pub fn is_orphan(&self) -> bool {
        self.owner_pid.is_some() && !self.owner_alive && self.holders.is_empty() && !self.mounted
    }
}
