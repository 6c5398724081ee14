//! Read-only view of this host's processes (grant `proc = ["read"]`).
//!
//! ```no_run
//! use remedy_sdk::{Error, proc};
//!
//! /// The pids of the processes running `name`, and whether any holds
//! /// a file on `device` open.
//! fn running(name: &str, device: u64) -> Result<(Vec<u32>, bool), Error> {
//!     let pids = proc::processes()?
//!         .into_iter()
//!         .filter(|p| p.exe_name() == name)
//!         .map(|p| p.pid)
//!         .collect();
//!     let in_use = !proc::files_in_use(device)?.files.is_empty();
//!     Ok((pids, in_use))
//! }
//! ```

pub use crate::bindings::remedy::plugin::proc::{
    FileInUse, FileLock, Listener, Process, file_locks, files_in_use, listeners, processes,
};

use std::collections::{HashMap, HashSet};

impl Process {
    /// The file name of its executable. A binary replaced on disk since the
    /// process started shows as `PATH (deleted)`; this is still its name.
    pub fn exe_name(&self) -> &str {
        let exe = self.exe.strip_suffix(" (deleted)").unwrap_or(&self.exe);
        exe.rsplit('/').next().unwrap_or(exe)
    }
}

/// `roots` and every process descending from them, by `ppid`.
pub fn descendants(processes: &[Process], roots: &[u32]) -> HashSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for process in processes {
        children.entry(process.ppid).or_default().push(process.pid);
    }
    let mut found: HashSet<u32> = HashSet::new();
    let mut todo: Vec<u32> = roots.to_vec();
    while let Some(pid) = todo.pop() {
        if found.insert(pid) {
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    found
}

/// `pattern` matches `exe` path segment by segment, `*` within one segment.
/// A binary replaced since the process started (`… (deleted)`) still matches.
pub fn exe_matches(pattern: &str, exe: &str) -> bool {
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
    let (pattern, exe): (Vec<&str>, Vec<&str>) =
        (pattern.split('/').collect(), exe.split('/').collect());
    pattern.len() == exe.len() && pattern.iter().zip(&exe).all(|(p, e)| segment_matches(p, e))
}

fn segment_matches(pattern: &str, segment: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == segment,
        Some((head, tail)) => {
            segment.len() >= head.len()
                && segment.starts_with(head)
                && (0..=segment.len() - head.len())
                    .filter(|&i| segment.is_char_boundary(head.len() + i))
                    .any(|i| segment_matches(tail, &segment[head.len() + i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, ppid: u32, exe: &str) -> Process {
        Process {
            pid,
            ppid,
            start_time: 1,
            age_secs: 0,
            exe: exe.into(),
            cmdline: Vec::new(),
            netns_inode: 0,
        }
    }

    #[test]
    fn exe_names_survive_a_replaced_binary() {
        assert_eq!(
            process(2, 1, "/fc/v1/firecracker").exe_name(),
            "firecracker"
        );
        assert_eq!(
            process(2, 1, "/fc/v1/firecracker (deleted)").exe_name(),
            "firecracker"
        );
        assert_eq!(process(2, 1, "").exe_name(), "");
    }

    #[test]
    fn descendants_follow_ppid_links() {
        let all = [
            process(10, 1, "a"),
            process(11, 10, "b"),
            process(12, 11, "c"),
            process(20, 1, "d"),
        ];
        let tree = descendants(&all, &[10]);
        assert_eq!(tree, HashSet::from([10, 11, 12]));
    }

    #[test]
    fn executables_match_by_segment() {
        assert!(exe_matches(
            "/fc-versions/*/firecracker",
            "/fc-versions/v1.7/firecracker"
        ));
        assert!(exe_matches(
            "/fc-versions/*/firecracker",
            "/fc-versions/v1.7/firecracker (deleted)"
        ));
        assert!(exe_matches("/usr/bin/fire*", "/usr/bin/firecracker"));
        assert!(!exe_matches(
            "/fc-versions/*/firecracker",
            "/fc-versions/a/b/firecracker"
        ));
        assert!(!exe_matches(
            "/fc-versions/*/firecracker",
            "/usr/bin/firecracker"
        ));
        assert!(!exe_matches(
            "/usr/bin/firecracker",
            "/usr/bin/firecracker-jailer"
        ));
    }
}
