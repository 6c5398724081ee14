//! Plumbing that capabilities and the rest of remedy share but that is no
//! capability itself: reading procfs, anchored name patterns, the runtime
//! that bridges async clients into synchronous code, process identity and
//! private directories. Nothing here knows about grants, plugins, the
//! engine, the executor or the store; it imports nothing of remedy's.

pub mod bridge;
pub mod patterns;
pub mod procfs;

use std::path::Path;

/// This process as the owner of a run: pid and kernel start time, so a
/// reused pid is not mistaken for the process that started it.
pub fn this_process() -> String {
    let pid = std::process::id();
    format!(
        "{pid}:{}",
        procfs::start_time(Path::new("/proc"), pid).unwrap_or(0)
    )
}

/// Whether the process `owner` (as [`this_process`] wrote it) still runs.
pub fn is_alive(owner: &str) -> bool {
    let Some((pid, start)) = owner.split_once(':') else {
        return false;
    };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => procfs::start_time(Path::new("/proc"), pid) == Some(start),
        _ => false,
    }
}

/// Create `dir` (and parents) with mode 0700 for the last component.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = this_process();
        assert!(is_alive(&me));
        let (pid, start) = me.split_once(':').unwrap();
        let later: u64 = start.parse::<u64>().unwrap() + 1;
        assert!(!is_alive(&format!("{pid}:{later}")));
        assert!(!is_alive("garbage"));
    }
}
