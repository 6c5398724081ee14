//! The `netns` read interface: granted namespaces, who is in each, and
//! granted host links.

use super::{NetnsGrant, NetnsRight, SYS_CLASS_NET};
use crate::caps::Denials;
use crate::contract::ApiError;
use crate::contract::netns::Namespace;
use crate::sys::procfs::net_namespace_users;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MAX_NAMESPACES: usize = 65_536;

/// Granted namespaces in `dir`, with their inodes and the pids inside.
pub fn namespaces(
    dir: &Path,
    proc_root: &Path,
    grant: &NetnsGrant,
) -> std::io::Result<Vec<Namespace>> {
    let users = net_namespace_users(proc_root)?;
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // No namespace was ever named on this host.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(String::from) else {
            continue;
        };
        if !grant.names.matches(&name) {
            continue;
        }
        // stat, not lstat: a mounted namespace shows the nsfs inode.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        let inode = meta.ino();
        found.push(Namespace {
            pids: users.get(&inode).cloned().unwrap_or_default(),
            name,
            inode,
        });
        if found.len() >= MAX_NAMESPACES {
            break;
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

fn links(grant: &NetnsGrant) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(SYS_CLASS_NET)?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| grant.links.matches(n))
        .collect();
    names.sort();
    Ok(names)
}

/// The `netns` read interface of one plugin instance.
pub struct NetnsReader {
    dir: PathBuf,
    proc_root: PathBuf,
    grant: NetnsGrant,
    pub denials: Denials,
    /// Where its calls go: the world, kept or not, or a recording.
    pub journal: crate::caps::journal::Journal,
}

impl NetnsReader {
    pub fn new(dir: PathBuf, proc_root: impl Into<PathBuf>, grant: NetnsGrant) -> Self {
        NetnsReader {
            dir,
            proc_root: proc_root.into(),
            grant,
            denials: Denials::default(),
            journal: Default::default(),
        }
    }

    fn require_read(&mut self, call: &str) -> Result<(), ApiError> {
        self.denials
            .require_read(call, "netns", self.grant.rights.contains(&NetnsRight::Read))
    }
}

journaled! {
    "netns", NetnsReader: crate::contract::netns::Host {
        fn namespaces(&mut self) -> Result<Vec<Namespace>, ApiError> {
            self.require_read("netns.namespaces")?;
            namespaces(&self.dir, &self.proc_root, &self.grant)
                .map_err(|e| ApiError::Unavailable(format!("{}: {e}", self.dir.display())))
        }

        fn links(&mut self) -> Result<Vec<String>, ApiError> {
            self.require_read("netns.links")?;
            links(&self.grant).map_err(|e| ApiError::Unavailable(format!("{SYS_CLASS_NET}: {e}")))
        }
    }
}
