//! `kmod`: kernel modules and nbd devices as sysfs shows them, loading a
//! module (`modprobe`) and disconnecting an orphaned nbd device. The sysfs
//! root and both programs come from config, so they can be pointed at a
//! prepared tree where the kernel has no modules.

mod act;
mod grant;
mod read;

pub use act::KmodAction;
pub use grant::{KmodGrant, KmodRight};
pub use read::{KmodReader, module, nbd_devices};

use crate::caps::journal::Journal;
use super::{Act, Capability, allowed, HostEnv, Refusal};
use serde::Deserialize;
use std::path::PathBuf;
use wasmtime::component::{HasSelf, Linker};

/// Kernel modules and nbd devices.
pub struct Kmod;

impl Capability for Kmod {
    const NAME: &'static str = "kmod";
    const NODE_LOCAL: bool = true;
    type Grant = KmodGrant;
    type Reader = KmodReader;

    fn missing(grant: &KmodGrant) -> Option<&'static str> {
        (!grant.rights.contains(&KmodRight::Read)).then_some(r#"kmod = ["read"]"#)
    }

    fn problems(_: &KmodGrant) -> Vec<String> {
        Vec::new() // module names are checked against each action
    }

    fn reader(grant: &KmodGrant, env: &HostEnv, journal: Journal) -> KmodReader {
        let mut reader = KmodReader::new(env.kmod.clone(), grant);
        reader.journal = journal;
        reader
    }

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut KmodReader,
    ) -> wasmtime::Result<()> {
        crate::contract::kmod::add_to_linker::<T, HasSelf<KmodReader>>(linker, get)
    }

    fn denials(reader: KmodReader) -> Vec<String> {
        reader.denials.into_lines()
    }
}

impl Act for Kmod {
    type Action<'a> = KmodAction<'a>;

    fn allowed_kinds(grant: &KmodGrant) -> Vec<&'static str> {
        let load = grant.rights.contains(&KmodRight::Load) && !grant.modules.is_empty();
        let mut kinds = allowed(load, "kmod-load");
        kinds.extend(allowed(
            grant.rights.contains(&KmodRight::NbdDisconnect),
            "nbd-disconnect",
        ));
        kinds
    }

    fn check_grant(action: &KmodAction<'_>, grant: &KmodGrant, _: &HostEnv) -> Result<(), String> {
        act::check_grant(action, grant)
    }

    fn perform(
        action: &KmodAction<'_>,
        _: &KmodGrant,
        env: &HostEnv,
        dry_run: bool,
    ) -> Result<String, Refusal> {
        match action {
            KmodAction::Load(load) => act::load(&env.kmod, load, dry_run),
            KmodAction::NbdDisconnect(nbd) => act::disconnect(&env.kmod, nbd, dry_run),
        }
    }
}

/// `[kmod]` in the config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KmodSettings {
    /// Where sysfs is mounted.
    pub sysfs: Option<PathBuf>,
    /// Loads a module: called as `modprobe MODULE KEY=VALUE...`.
    pub modprobe: Option<PathBuf>,
    /// Disconnects a device: called as `nbd-client -d /dev/nbdN`.
    pub nbd_client: Option<PathBuf>,
    /// Where the device nodes are.
    pub dev: Option<PathBuf>,
}

impl KmodSettings {
    pub fn sysfs(&self) -> PathBuf {
        self.sysfs.clone().unwrap_or_else(|| PathBuf::from("/sys"))
    }
    fn modprobe(&self) -> PathBuf {
        self.modprobe
            .clone()
            .unwrap_or_else(|| PathBuf::from("modprobe"))
    }
    fn nbd_client(&self) -> PathBuf {
        self.nbd_client
            .clone()
            .unwrap_or_else(|| PathBuf::from("nbd-client"))
    }
    fn dev(&self) -> PathBuf {
        self.dev.clone().unwrap_or_else(|| PathBuf::from("/dev"))
    }
}

fn valid_module(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
