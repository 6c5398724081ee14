//! Read-only view of this host's processes (grant `proc = ["read"]`).

pub use crate::bindings::remedy::plugin::proc::{
    FileInUse, FileLock, Process, file_locks, files_in_use, processes,
};

use std::collections::{HashMap, HashSet};

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
