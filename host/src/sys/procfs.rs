//! Reading procfs: shared by the capabilities that look at processes
//! (`proc`, `netns`, `kmod`) and by process identity ([`super::is_alive`]).
//! Plain parsing, no grants and no effects.

use std::fs;
use std::io;
use std::path::Path;

/// Where the host's processes are read from.
pub const PROC_ROOT: &str = "/proc";

/// Every numeric entry of a procfs root, ascending.
pub fn pids(root: &Path) -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in fs::read_dir(root)? {
        if let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// A process that exits while we read it is simply gone; anything else is an error.
pub fn vanished(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound
        || error.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error())
}

/// The fields of `/proc/PID/stat` remedy uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    /// `R`, `S`, `Z`, ...
    pub state: char,
    pub ppid: u32,
    /// The process group.
    pub pgrp: u32,
    /// Clock ticks after boot: with the pid it names one process.
    pub start_time: u64,
}

/// Parse `/proc/PID/stat`. The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat_fields(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); ppid is field 4, pgrp 5, starttime 22.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// `(ppid, starttime)` from `/proc/PID/stat`.
pub fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    parse_stat_fields(stat).map(|s| (s.ppid, s.start_time))
}

/// `/proc/PID/stat` of `pid`, while it exists.
pub fn stat(root: &Path, pid: u32) -> Option<Stat> {
    parse_stat_fields(&fs::read_to_string(root.join(pid.to_string()).join("stat")).ok()?)
}

/// The kernel start time of `pid`, which with the pid names one process.
pub fn start_time(root: &Path, pid: u32) -> Option<u64> {
    stat(root, pid).map(|s| s.start_time)
}

/// The target of `/proc/PID/exe`; empty when it cannot be read (a kernel
/// thread, a zombie, another user's process).
pub fn exe(root: &Path, pid: u32) -> String {
    fs::read_link(root.join(pid.to_string()).join("exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The inode in a namespace link such as `net:[4026531840]`.
pub fn namespace_inode(link: &str) -> Option<u64> {
    link.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// Network namespace inode to the processes inside it: any thread whose
/// `ns/net` names it, or any process holding a descriptor to it.
pub fn net_namespace_users(root: &Path) -> io::Result<std::collections::HashMap<u64, Vec<u32>>> {
    let mut users: std::collections::HashMap<u64, Vec<u32>> = Default::default();
    let links = |dir: &Path| -> Vec<u64> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read_link(e.path()).ok())
            .filter_map(|l| {
                let l = l.to_string_lossy();
                l.starts_with("net:[")
                    .then(|| namespace_inode(&l))
                    .flatten()
            })
            .collect()
    };
    for pid in pids(root)? {
        let dir = root.join(pid.to_string());
        let mut inodes: Vec<u64> = fs::read_dir(dir.join("task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| fs::read_link(t.path().join("ns/net")).ok())
            .filter_map(|l| namespace_inode(&l.to_string_lossy()))
            .collect();
        inodes.extend(links(&dir.join("fd")));
        inodes.sort_unstable();
        inodes.dedup();
        for inode in inodes {
            users.entry(inode).or_default().push(pid);
        }
    }
    Ok(users)
}
