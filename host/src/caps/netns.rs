//! `netns`: named network namespaces (as `ip netns` keeps them), who is
//! inside each, and deleting one the way `ip netns del` does.

use super::{Denials, Refusal};
use crate::contract::netns::Namespace;
use crate::contract::{ApiError, NetnsDelete};
use crate::sys::patterns::Patterns;
use crate::sys::procfs::net_namespace_users;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const DEFAULT_DIR: &str = "/var/run/netns";
const SYS_CLASS_NET: &str = "/sys/class/net";
const MAX_NAMESPACES: usize = 65_536;

/// `[netns]` in the config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
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

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NetnsRight {
    /// Link the `netns` read interface.
    Read,
    /// `netns-delete`.
    Delete,
}

/// The part of a plugin's grants that concerns network namespaces.
#[derive(Clone, Debug, Default)]
pub struct NetnsGrant {
    pub rights: Vec<NetnsRight>,
    /// Namespace names it may see and delete; none: nothing.
    pub names: Patterns,
    /// Host link names it may see and delete with a namespace.
    pub links: Patterns,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

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
}

impl NetnsReader {
    pub fn new(dir: PathBuf, proc_root: impl Into<PathBuf>, grant: NetnsGrant) -> Self {
        NetnsReader {
            dir,
            proc_root: proc_root.into(),
            grant,
            denials: Denials::default(),
        }
    }

    fn require_read(&mut self, call: &str) -> Result<(), ApiError> {
        self.denials
            .require_read(call, "netns", self.grant.rights.contains(&NetnsRight::Read))
    }
}

impl crate::contract::netns::Host for NetnsReader {
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

/// Why `delete` is outside `grant`, if it is.
pub fn check_grant(delete: &NetnsDelete, grant: &NetnsGrant) -> Result<(), String> {
    if !grant.rights.contains(&NetnsRight::Delete) {
        return Err(r#"no netns `delete` grant; the operator adds it to netns = [...]"#.into());
    }
    if !valid_name(&delete.name) || !grant.names.matches(&delete.name) {
        return Err(format!(
            "namespace {:?} is not granted (netns_names = {:?})",
            delete.name,
            grant.names.sources()
        ));
    }
    match &delete.host_link {
        Some(link) if !valid_name(link) || !grant.links.matches(link) => Err(format!(
            "host link {link:?} is not granted (netns_links = {:?})",
            grant.links.sources()
        )),
        _ => Ok(()),
    }
}

/// Re-check the namespace and, unless `dry_run`, delete its host link and then it.
///
/// An effect: only the executor calls it.
pub(crate) fn delete(
    settings: &NetnsSettings,
    proc_root: &Path,
    delete: &NetnsDelete,
    dry_run: bool,
) -> Result<String, Refusal> {
    let path = settings.dir().join(&delete.name);
    let stale = Refusal::Stale;
    let meta = std::fs::metadata(&path)
        .map_err(|e| stale(format!("namespace {} is gone: {e}", delete.name)))?;
    if meta.ino() != delete.inode {
        return Err(stale(format!(
            "namespace {} is not the one planned: inode {} now, {} then (re-created since)",
            delete.name,
            meta.ino(),
            delete.inode
        )));
    }
    let users = net_namespace_users(proc_root)
        .map_err(|e| Refusal::Failed(format!("cannot scan {}: {e}", proc_root.display())))?;
    if let Some(pids) = users.get(&delete.inode) {
        return Err(stale(format!(
            "namespace {} is in use now, by pids {pids:?}",
            delete.name
        )));
    }
    let link = delete
        .host_link
        .as_ref()
        .filter(|l| Path::new(SYS_CLASS_NET).join(l).exists());
    let what = match link {
        Some(link) => format!("host link {link}, then namespace {}", delete.name),
        None => format!("namespace {}", delete.name),
    };
    if dry_run {
        return Ok(format!("would delete {what}"));
    }
    if let Some(link) = link {
        let output = Command::new(settings.ip())
            .args(["link", "del", link])
            .output()
            .map_err(|e| Refusal::Failed(format!("cannot run {}: {e}", settings.ip().display())))?;
        if !output.status.success() {
            return Err(Refusal::Failed(format!(
                "ip link del {link}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    // As `ip netns del`: detach the bind mount that keeps the namespace alive, then remove the name.
    rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| Refusal::Failed(format!("umount {}: {e}", path.display())))?;
    std::fs::remove_file(&path)
        .map_err(|e| Refusal::Failed(format!("unlink {}: {e}", path.display())))?;
    Ok(format!("deleted {what}"))
}
