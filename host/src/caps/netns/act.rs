//! `netns-delete`: the grant check, and the deletion of an empty,
//! unchanged namespace and its host link.

use super::{NetnsGrant, NetnsRight, NetnsSettings, SYS_CLASS_NET, valid_name};
use crate::caps::Refusal;
use crate::contract::NetnsDelete;
use crate::sys::procfs::net_namespace_users;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// Why `delete` is outside `grant`, if it is.
pub(super) fn check_grant(delete: &NetnsDelete, grant: &NetnsGrant) -> Result<(), String> {
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
pub(super) fn delete(
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
