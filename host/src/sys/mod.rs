//! Plumbing that capabilities and the rest of remedy share but that is no
//! capability itself: reading procfs and the mount table, anchored name patterns, the runtime
//! that bridges async clients into synchronous code, group commit, giving memory back, TLS as a client,
//! process identity and private directories. Nothing here knows about grants, plugins, the
//! engine, the executor or the store; it imports nothing of remedy's.

pub mod bridge;
pub mod group_commit;
pub mod memory;
pub mod mounts;
pub mod patterns;
pub mod procfs;
pub mod selector;
pub mod tls;

use std::path::Path;

/// This process as the owner of a run: pid and kernel start time, so a
/// reused pid is not mistaken for the process that started it, and this
/// machine's boot id, so a store shared by many machines tells whose it is.
pub fn this_process() -> String {
    let pid = std::process::id();
    format!(
        "{pid}:{}@{}",
        procfs::start_time(Path::new("/proc"), pid).unwrap_or(0),
        boot_id()
    )
}

/// Whether the owner of a run still runs, as this machine can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// Started on another machine, or on this one before it restarted:
    /// its pid means nothing here.
    OtherBoot,
}

/// Whether the process `owner` (as [`this_process`] wrote it) still runs.
/// An owner written without a boot id is taken to be this machine's.
pub fn liveness(owner: &str) -> Liveness {
    let (process, boot) = match owner.split_once('@') {
        Some((process, boot)) => (process, Some(boot)),
        None => (owner, None),
    };
    if boot.is_some_and(|boot| boot != boot_id()) {
        return Liveness::OtherBoot;
    }
    let Some((pid, start)) = process.split_once(':') else {
        return Liveness::Dead;
    };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) if procfs::start_time(Path::new("/proc"), pid) == Some(start) => {
            Liveness::Alive
        }
        _ => Liveness::Dead,
    }
}

/// This boot of this machine, as the kernel names it.
fn boot_id() -> &'static str {
    static BOOT_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT_ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|id| id.trim().to_string())
            .unwrap_or_default()
    })
}

/// The bearer token in `path`, the config key `key` names (for errors):
/// the file's text without surrounding whitespace, which `echo` leaves.
/// An unreadable or empty file is an error naming the key and the file.
pub fn read_token(key: &str, path: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{key} {} is empty", path.display()));
    }
    Ok(token.to_string())
}

/// An error message from a service as remedy repeats it: trimmed, at most
/// `max_chars` characters, and never empty.
pub fn clipped(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".to_string();
    }
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
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
        assert_eq!(liveness(&me), Liveness::Alive);
        let (process, boot) = me.split_once('@').unwrap();
        let (pid, start) = process.split_once(':').unwrap();
        let later: u64 = start.parse::<u64>().unwrap() + 1;
        assert_eq!(liveness(&format!("{pid}:{later}@{boot}")), Liveness::Dead);
        assert_eq!(
            liveness(process),
            Liveness::Alive,
            "written before boot ids"
        );
        assert_eq!(
            liveness(&format!("{process}@another-machine")),
            Liveness::OtherBoot
        );
        assert_eq!(liveness("garbage"), Liveness::Dead);
    }
}
