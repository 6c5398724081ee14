//! `netns`: named network namespaces (as `ip netns` keeps them), who is
//! inside each, and deleting one the way `ip netns del` does.

mod act;
mod grant;
mod read;

pub use grant::{NetnsGrant, NetnsRight};
pub use read::{NetnsReader, namespaces};

use crate::caps::journal::Journal;
use super::{Act, Capability, allowed, HostEnv, Refusal};
use crate::contract::NetnsDelete;
use crate::sys::procfs::PROC_ROOT;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use wasmtime::component::{HasSelf, Linker};

/// Named network namespaces.
pub struct Netns;

impl Capability for Netns {
    const NAME: &'static str = "netns";
    const NODE_LOCAL: bool = true;
    type Grant = NetnsGrant;
    type Reader = NetnsReader;

    fn missing(grant: &NetnsGrant) -> Option<&'static str> {
        (!grant.rights.contains(&NetnsRight::Read))
            .then_some(r#"netns = ["read"] and netns_names = ["ns-[0-9]+"]"#)
    }

    fn problems(_: &NetnsGrant) -> Vec<String> {
        Vec::new() // patterns that do not compile are refused as they are read
    }

    fn reader(grant: &NetnsGrant, env: &HostEnv, journal: Journal) -> NetnsReader {
        let mut reader = NetnsReader::new(env.netns.dir(), PROC_ROOT, grant.clone());
        reader.journal = journal;
        reader
    }

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut NetnsReader,
    ) -> wasmtime::Result<()> {
        crate::contract::netns::add_to_linker::<T, HasSelf<NetnsReader>>(linker, get)
    }

    fn denials(reader: NetnsReader) -> Vec<String> {
        reader.denials.into_lines()
    }
}

impl Act for Netns {
    type Action<'a> = &'a NetnsDelete;

    fn allowed_kinds(grant: &NetnsGrant) -> Vec<&'static str> {
        let delete = grant.rights.contains(&NetnsRight::Delete) && !grant.names.is_empty();
        allowed(delete, "netns-delete")
    }

    fn check_grant(delete: &&NetnsDelete, grant: &NetnsGrant, _: &HostEnv) -> Result<(), String> {
        act::check_grant(delete, grant)
    }

    fn perform(
        delete: &&NetnsDelete,
        _: &NetnsGrant,
        env: &HostEnv,
        dry_run: bool,
    ) -> Result<String, Refusal> {
        act::delete(&env.netns, Path::new(PROC_ROOT), delete, dry_run)
    }
}

const SYS_CLASS_NET: &str = "/sys/class/net";
pub const DEFAULT_DIR: &str = "/var/run/netns";

/// `[netns]` in the config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetnsSettings {
    /// Where named namespaces are mounted.
    pub dir: Option<PathBuf>,
    /// The `ip` program, for deleting host-side links.
    pub ip: Option<PathBuf>,
}

impl NetnsSettings {
    pub fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
    }

    fn ip(&self) -> PathBuf {
        self.ip.clone().unwrap_or_else(|| PathBuf::from("ip"))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}
