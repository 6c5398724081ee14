//! `remove-path`: the grant check, and the removal that re-checks the
//! file's identity and proves it unused first.

use super::{identity, split_under};
use crate::caps::Refusal;
use crate::contract::{FileIdentity, RemovePath};
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::OpenOptionsExt;
use cap_std::fs::{Dir, Metadata, MetadataExt};
use std::io;
use std::path::PathBuf;

/// The static grant check for `remove-path`: a path lexically below an
/// `fs_remove` root, and not the root itself.
pub(super) fn check_grant(remove: &RemovePath, remove_roots: &[PathBuf]) -> Result<(), String> {
    let (root, rest) =
        split_under(&remove.path, remove_roots).map_err(|why| format!("{why} (fs_remove)"))?;
    if rest.as_os_str().is_empty() {
        return Err(format!("{} is a granted root itself", root.display()));
    }
    Ok(())
}

/// Re-check a granted `remove-path` against the file as it is now and, unless
/// `dry_run`, unlink it. Returns what was (or would be) freed.
///
/// The file must be reachable without following any symlink, still be the
/// regular file the plugin saw (device, inode, size, mtime), and be unused:
/// the kernel grants a write lease only while no other open file description
/// (an fd or a mapping, in any process or namespace) refers to the file, and
/// while we hold it nobody else can open the file without waiting for us.
pub(super) fn remove_file(
    remove: &RemovePath,
    remove_roots: &[PathBuf],
    dry_run: bool,
) -> Result<String, Refusal> {
    let (root, rest) = split_under(&remove.path, remove_roots).map_err(Refusal::Failed)?;
    let stale = Refusal::Stale;
    let path = &remove.path;
    let mut dir = Dir::open_ambient_dir(root, ambient_authority())
        .map_err(|e| stale(format!("{}: {e}", root.display())))?;
    let name = rest
        .file_name()
        .ok_or_else(|| Refusal::Failed(format!("{path} names no file")))?;
    if let Some(parent) = rest.parent() {
        for component in parent.components() {
            dir = dir.open_dir_nofollow(component).map_err(|e| {
                stale(format!(
                    "{path}: cannot open {:?} without following a symlink: {e}",
                    component.as_os_str()
                ))
            })?;
        }
    }
    let unchanged = |meta: &Metadata| -> Result<(), Refusal> {
        if !meta.file_type().is_file() {
            return Err(stale(format!("{path} is no longer a regular file")));
        }
        let now = identity(meta);
        if now != remove.identity {
            return Err(stale(format!(
                "{path} changed since it was planned: {}",
                describe_change(&remove.identity, &now)
            )));
        }
        Ok(())
    };
    let seen = dir
        .symlink_metadata(name)
        .map_err(|e| stale(format!("{path}: {e}")))?;
    unchanged(&seen)?;
    // Two runs planning the same file (two alerts about one disk): the first
    // to get here removes it, the other finds it stale. Claimed before the
    // open, since each one's open would deny the other its lease. A dry-run
    // removes nothing, so it waits its turn instead of reporting the other
    // run's check as its own answer.
    let patience = if dry_run {
        DRY_RUN_PATIENCE
    } else {
        std::time::Duration::ZERO
    };
    let _claim = InFlight::claim_within(&seen, patience)
        .ok_or_else(|| stale(format!("{path} is being removed by another run right now")))?;

    let mut options = cap_std::fs::OpenOptions::new();
    options
        .read(true)
        .follow(FollowSymlinks::No)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    let file = dir
        .open_with(name, &options)
        .map_err(|e| stale(format!("{path}: {e}")))?;
    let meta = file.metadata().map_err(|e| stale(format!("{path}: {e}")))?;
    unchanged(&meta)?;
    let lease = WriteLease::take(&file).map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            stale(format!(
                "{path} is in use: another process has it open or mapped"
            ))
        } else {
            Refusal::Failed(format!(
                "cannot prove {path} is unused: the kernel refused a lease ({e})"
            ))
        }
    })?;

    let freed = meta.blocks() * 512;
    if dry_run {
        return Ok(format!("would free {freed} bytes"));
    }
    unlink_exactly(&dir, name, (meta.dev(), meta.ino()), || lease.intact())
        .map_err(|why| why.naming(path))?;
    Ok(format!("freed {freed} bytes"))
}

/// Why [`unlink_exactly`] left a name alone.
enum Left {
    Stale(String),
    Failed(String),
}

impl Left {
    fn naming(self, path: &str) -> Refusal {
        match self {
            Left::Stale(why) => Refusal::Stale(format!("{path} {why}")),
            Left::Failed(why) => Refusal::Failed(format!("{path}: {why}")),
        }
    }
}

/// Unlink the file at `name` in `dir` only if it is the file `(device,
/// inode)` and `unused()` still holds. The name is first moved aside to a
/// private name in the same directory, then the file there is verified and
/// unlinked, so a file renamed into `name` meanwhile is never the one
/// removed: a mismatch is moved back, and nothing is unlinked.
fn unlink_exactly(
    dir: &Dir,
    name: &std::ffi::OsStr,
    (device, inode): (u64, u64),
    unused: impl Fn() -> bool,
) -> Result<(), Left> {
    let aside = aside_name();
    let failed = |what: &str, e: io::Error| Left::Failed(format!("{what}: {e}"));
    rename_noreplace(dir, name, &aside).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Left::Stale("vanished while being removed".into()),
        _ => failed("moving it aside to unlink it", e),
    })?;
    let moved = dir
        .symlink_metadata(&aside)
        .map_err(|e| failed("reading it back after moving it aside", e))?;
    let why = if (moved.dev(), moved.ino()) != (device, inode) {
        Some("was replaced while being removed; the new file was put back")
    } else if !unused() {
        // Someone opening the file broke the lease (and waits for us).
        Some("was opened by another process while being removed; left in place")
    } else {
        None
    };
    if let Some(why) = why {
        return match rename_noreplace(dir, &aside, name) {
            Ok(()) => Err(Left::Stale(why.into())),
            Err(e) => Err(Left::Failed(format!(
                "{why}, but could not be moved back (the name is taken again?): it is at {}: {e}",
                aside.to_string_lossy()
            ))),
        };
    }
    dir.remove_file(&aside).map_err(|e| failed("unlink", e))
}

/// A name no one else uses in a directory: hidden, this process's, counted.
fn aside_name() -> std::ffi::OsString {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(".remedy-removing.{}.{n}", std::process::id()).into()
}

/// Rename within `dir`, refusing to replace anything at `to`.
fn rename_noreplace(dir: &Dir, from: &std::ffi::OsStr, to: &std::ffi::OsStr) -> io::Result<()> {
    use rustix::fs::{RenameFlags, renameat_with};
    renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE).map_err(io::Error::from)
}

/// A write lease on an open file, released on drop.
struct WriteLease<'f> {
    file: &'f cap_std::fs::File,
}

impl<'f> WriteLease<'f> {
    fn take(file: &'f cap_std::fs::File) -> io::Result<Self> {
        quiet_lease_breaks();
        fcntl_lease(file, libc::F_SETLEASE, libc::F_WRLCK)?;
        Ok(WriteLease { file })
    }

    /// Still a write lease: nobody has tried to open the file since it was
    /// taken. During a break the kernel reports the type it is breaking to.
    fn intact(&self) -> bool {
        fcntl_lease(self.file, libc::F_GETLEASE, 0).is_ok_and(|kind| kind == libc::F_WRLCK)
    }
}

impl Drop for WriteLease<'_> {
    fn drop(&mut self) {
        let _ = fcntl_lease(self.file, libc::F_SETLEASE, libc::F_UNLCK);
    }
}

fn fcntl_lease(
    file: &cap_std::fs::File,
    command: libc::c_int,
    kind: libc::c_int,
) -> io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETLEASE and F_GETLEASE take an int argument and touch no
    // memory; the fd is open for as long as `file` is borrowed.
    let result = unsafe { libc::fcntl(file.as_raw_fd(), command, kind) };
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// The kernel announces a lease break with SIGIO, whose default action ends
/// the process: a backup agent opening a file remedy is removing would kill
/// remedy. remedy learns of a break by asking for the lease
/// ([`WriteLease::intact`]), so the signal only has to do nothing. A handler
/// rather than SIG_IGN, so programs remedy runs start with the default; a
/// handler the embedding program installed itself is left alone.
fn quiet_lease_breaks() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    extern "C" fn ignore(_: libc::c_int) {}
    INSTALLED.call_once(|| {
        // SAFETY: sigaction with zeroed, then filled, structs; the handler
        // does nothing, so it is async-signal-safe.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGIO, std::ptr::null(), &mut current) != 0
                || current.sa_sigaction != libc::SIG_DFL
            {
                return;
            }
            let mut quiet: libc::sigaction = std::mem::zeroed();
            quiet.sa_sigaction = ignore as *const () as libc::sighandler_t;
            quiet.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut quiet.sa_mask);
            libc::sigaction(libc::SIGIO, &quiet, std::ptr::null_mut());
        }
    });
}

/// Files (device, inode) some run of this process is removing right now.
struct InFlight((u64, u64));

static IN_FLIGHT: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// How long a dry-run waits for another run's check of the same file: that
/// check holds the file for the time of an open, a lease and an unlink.
const DRY_RUN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

impl InFlight {
    fn claim(meta: &Metadata) -> Option<InFlight> {
        let file = (meta.dev(), meta.ino());
        let mut taken = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        if taken.contains(&file) {
            return None;
        }
        taken.push(file);
        Some(InFlight(file))
    }

    /// The claim, once no other run holds it, within `patience`.
    fn claim_within(meta: &Metadata, patience: std::time::Duration) -> Option<InFlight> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(claim) = InFlight::claim(meta) {
                return Some(claim);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut taken = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        taken.retain(|file| *file != self.0);
    }
}

fn describe_change(then: &FileIdentity, now: &FileIdentity) -> String {
    let mut changes = Vec::new();
    if then.device != now.device || then.inode != now.inode {
        changes.push(format!(
            "now device {} inode {}, planned device {} inode {}",
            now.device, now.inode, then.device, then.inode
        ));
    }
    if then.size != now.size {
        changes.push(format!("size {} -> {}", then.size, now.size));
    }
    if then.mtime_ns != now.mtime_ns {
        changes.push("modified".into());
    }
    changes.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A removal of `name` in a fresh granted directory, as planned now.
    fn planned(dir: &std::path::Path, name: &str) -> (RemovePath, Metadata) {
        std::fs::write(dir.join(name), b"old").unwrap();
        let meta = Dir::open_ambient_dir(dir, ambient_authority())
            .unwrap()
            .symlink_metadata(name)
            .unwrap();
        let remove = RemovePath {
            path: dir.join(name).display().to_string(),
            identity: identity(&meta),
            reason: "test".into(),
        };
        (remove, meta)
    }

    #[test]
    fn a_dry_run_waits_for_another_runs_check_where_a_removal_finds_it_stale() {
        let dir = tempfile::tempdir().unwrap();
        let roots = [dir.path().to_path_buf()];
        let (remove, meta) = planned(dir.path(), "old.log");
        let other_run = InFlight::claim(&meta).unwrap();

        let refused = remove_file(&remove, &roots, false).unwrap_err();
        assert!(refused.to_string().contains("being removed by another run"), "{refused}");

        let released = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(other_run);
        });
        let planned = remove_file(&remove, &roots, true).unwrap();
        released.join().unwrap();
        assert!(planned.starts_with("would free"), "{planned}");
        assert!(dir.path().join("old.log").exists());
    }

    /// The directory's names, sorted.
    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn key(meta: &Metadata) -> (u64, u64) {
        (meta.dev(), meta.ino())
    }

    #[test]
    fn the_planned_file_is_unlinked_through_a_private_name_that_does_not_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, meta) = planned(tmp.path(), "old.log");
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        assert!(unlink_exactly(&dir, "old.log".as_ref(), key(&meta), || true).is_ok());
        assert!(names(tmp.path()).is_empty(), "{:?}", names(tmp.path()));
    }

    #[test]
    fn a_file_renamed_into_the_name_is_put_back_and_nothing_is_unlinked() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, meta) = planned(tmp.path(), "old.log");
        // After the last check, another process moves the planned file away
        // and renames a file of its own into the name.
        std::fs::rename(tmp.path().join("old.log"), tmp.path().join("moved.log")).unwrap();
        std::fs::write(tmp.path().join("theirs"), b"keep me").unwrap();
        std::fs::rename(tmp.path().join("theirs"), tmp.path().join("old.log")).unwrap();

        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let left = unlink_exactly(&dir, "old.log".as_ref(), key(&meta), || true).unwrap_err();
        let refused = left.naming("old.log").to_string();
        assert!(refused.contains("was replaced while being removed"), "{refused}");
        assert_eq!(names(tmp.path()), ["moved.log", "old.log"]);
        assert_eq!(std::fs::read(tmp.path().join("old.log")).unwrap(), b"keep me");
    }

    #[test]
    fn a_file_opened_meanwhile_is_put_back_under_its_name() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, meta) = planned(tmp.path(), "old.log");
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let left = unlink_exactly(&dir, "old.log".as_ref(), key(&meta), || false).unwrap_err();
        assert!(left.naming("old.log").to_string().contains("opened by another process"));
        assert_eq!(names(tmp.path()), ["old.log"]);
    }
}
