//! `fs`: reads below the granted roots, and the `remove-path` action.
//!
//! Every path a plugin names is absolute and is split into a granted root and
//! a relative rest; `..` is refused outright. The rest is resolved with
//! cap-std from a directory handle on the root, so no symlink can lead out of
//! it. Removal goes further and follows no symlink at all.

use super::Refusal;
use crate::contract::fs::{DiskUsage, Entry, FileKind};
use crate::contract::{ApiError, FileIdentity, RemovePath};
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::OpenOptionsExt;
use cap_std::fs::{Dir, Metadata, MetadataExt};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

/// Bounds on what one call returns.
pub const MAX_DIR_ENTRIES: usize = 100_000;
pub const MAX_READ_BYTES: u32 = 1 << 20;
const MAX_PATH_BYTES: usize = 4096;

/// Split an absolute path into the longest granted root that holds it and the
/// rest relative to that root.
pub fn split_under<'r>(path: &str, roots: &'r [PathBuf]) -> Result<(&'r Path, PathBuf), String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("path longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{} contains `..`", path.display()));
    }
    roots
        .iter()
        .filter_map(|root| Some((root.as_path(), path.strip_prefix(root).ok()?)))
        .max_by_key(|(root, _)| root.as_os_str().len())
        .map(|(root, rest)| (root, rest.to_path_buf()))
        .ok_or_else(|| format!("{} is outside the granted directories", path.display()))
}

fn io_error(path: &str, error: io::Error) -> ApiError {
    match error.kind() {
        io::ErrorKind::NotFound => ApiError::NotFound(path.to_string()),
        // cap-std answers PermissionDenied when resolution would leave the root.
        io::ErrorKind::PermissionDenied => ApiError::Denied(format!("{path}: {error}")),
        io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory
        | io::ErrorKind::InvalidInput => ApiError::Invalid(format!("{path}: {error}")),
        _ => ApiError::Unavailable(format!("{path}: {error}")),
    }
}

pub fn identity(meta: &Metadata) -> FileIdentity {
    FileIdentity {
        device: meta.dev(),
        inode: meta.ino(),
        size: meta.len(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
    }
}

fn entry(path: String, meta: &Metadata) -> Entry {
    let file_type = meta.file_type();
    let kind = if file_type.is_symlink() {
        FileKind::Symlink
    } else if file_type.is_dir() {
        FileKind::Directory
    } else if file_type.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    Entry {
        path,
        kind,
        identity: identity(meta),
        mode: meta.mode(),
        allocated_bytes: meta.blocks() * 512,
        links: meta.nlink(),
    }
}

struct Root {
    path: PathBuf,
    /// `None` when the root does not exist (yet) on this host.
    dir: Option<Dir>,
}

/// Read access below the `fs_read` roots, opened once per instance.
pub struct FsReader {
    roots: Vec<Root>,
    paths: Vec<PathBuf>,
    pub denials: super::Denials,
}

impl FsReader {
    pub fn new(read_roots: &[PathBuf]) -> Self {
        let roots = read_roots
            .iter()
            .map(|path| Root {
                path: path.clone(),
                dir: Dir::open_ambient_dir(path, ambient_authority()).ok(),
            })
            .collect();
        FsReader {
            roots,
            paths: read_roots.to_vec(),
            denials: super::Denials::default(),
        }
    }

    /// The root directory handle and the relative rest of `path`.
    fn resolve(&self, path: &str) -> Result<(&Dir, PathBuf), ApiError> {
        let (root, rest) = split_under(path, &self.paths).map_err(ApiError::Denied)?;
        let dir = self
            .roots
            .iter()
            .find(|r| r.path == root)
            .and_then(|r| r.dir.as_ref())
            .ok_or_else(|| ApiError::NotFound(path.to_string()))?;
        Ok((dir, rest))
    }

    fn lstat(dir: &Dir, rest: &Path) -> io::Result<Metadata> {
        if rest.as_os_str().is_empty() {
            dir.dir_metadata()
        } else {
            dir.symlink_metadata(rest)
        }
    }
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.ends_with('/') {
        format!("{parent}{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl crate::contract::fs::Host for FsReader {
    fn roots(&mut self) -> Vec<String> {
        self.paths.iter().map(|p| p.display().to_string()).collect()
    }

    fn stat(&mut self, path: String) -> Result<Entry, ApiError> {
        let result = self.stat_entry(path);
        self.denials.note("fs.stat", result)
    }

    fn read_dir(&mut self, path: String) -> Result<Vec<Entry>, ApiError> {
        let result = self.list_dir(path);
        self.denials.note("fs.read-dir", result)
    }

    fn read_file(&mut self, path: String, max_bytes: u32) -> Result<Vec<u8>, ApiError> {
        let result = self.read_bytes(path, max_bytes);
        self.denials.note("fs.read-file", result)
    }

    fn usage(&mut self, path: String) -> Result<DiskUsage, ApiError> {
        let result = self.disk_usage(path);
        self.denials.note("fs.usage", result)
    }
}

impl FsReader {
    fn stat_entry(&self, path: String) -> Result<Entry, ApiError> {
        let (dir, rest) = self.resolve(&path)?;
        let meta = Self::lstat(dir, &rest).map_err(|e| io_error(&path, e))?;
        Ok(entry(path, &meta))
    }

    fn list_dir(&self, path: String) -> Result<Vec<Entry>, ApiError> {
        let (dir, rest) = self.resolve(&path)?;
        let listing = if rest.as_os_str().is_empty() {
            dir.entries()
        } else {
            dir.read_dir(&rest)
        }
        .map_err(|e| io_error(&path, e))?;
        let mut entries = Vec::new();
        for item in listing {
            let item = item.map_err(|e| io_error(&path, e))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                continue; // not representable in the contract; never a candidate
            };
            // DirEntry::metadata does not follow symlinks.
            let meta = match item.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&path, e)),
            };
            if entries.len() == MAX_DIR_ENTRIES {
                return Err(ApiError::invalid(format!(
                    "{path} has more than {MAX_DIR_ENTRIES} entries"
                )));
            }
            entries.push(entry(child_path(&path, name), &meta));
        }
        Ok(entries)
    }

    fn read_bytes(&self, path: String, max_bytes: u32) -> Result<Vec<u8>, ApiError> {
        let (dir, rest) = self.resolve(&path)?;
        if rest.as_os_str().is_empty() {
            return Err(ApiError::invalid(format!(
                "{path} is a directory, not a regular file"
            )));
        }
        let file = open_regular(dir, &rest, &path)?;
        let mut bytes = Vec::new();
        file.take(u64::from(max_bytes.min(MAX_READ_BYTES)))
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(&path, e))?;
        Ok(bytes)
    }

    fn disk_usage(&self, path: String) -> Result<DiskUsage, ApiError> {
        let (dir, rest) = self.resolve(&path)?;
        if rest.as_os_str().is_empty() {
            return statvfs_usage(dir.as_fd(), &path).map_err(|e| io_error(&path, e));
        }
        let meta = dir.metadata(&rest).map_err(|e| io_error(&path, e))?;
        let file = if meta.is_dir() {
            dir.open_dir(&rest)
                .map_err(|e| io_error(&path, e))?
                .into_std_file()
        } else {
            open_regular(dir, &rest, &path)?.into_std()
        };
        statvfs_usage(file.as_fd(), &path).map_err(|e| io_error(&path, e))
    }
}

/// Open `rest` below `dir` for reading, only if it is a regular file.
/// Opening a FIFO waits for a writer and opening a device acts on it, so
/// neither is ever opened: the kind is checked first, the open does not
/// wait, and the kind is checked again on what was opened, in case the name
/// was pointed elsewhere in between.
fn open_regular(dir: &Dir, rest: &Path, path: &str) -> Result<cap_std::fs::File, ApiError> {
    regular_file(path, &dir.metadata(rest).map_err(|e| io_error(path, e))?)?;
    let mut options = cap_std::fs::OpenOptions::new();
    options
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    let file = dir
        .open_with(rest, &options)
        .map_err(|e| io_error(path, e))?;
    regular_file(path, &file.metadata().map_err(|e| io_error(path, e))?)?;
    Ok(file)
}

/// Refuse anything but a regular file where a file's content is asked for.
fn regular_file(path: &str, meta: &Metadata) -> Result<(), ApiError> {
    use cap_std::fs::FileTypeExt;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(ApiError::invalid(format!(
        "{path} is {what}, not a regular file"
    )))
}

fn statvfs_usage(handle: std::os::fd::BorrowedFd<'_>, path: &str) -> io::Result<DiskUsage> {
    let stat = rustix::fs::fstat(handle)?;
    let vfs = rustix::fs::fstatvfs(handle)?;
    let total = vfs.f_blocks * vfs.f_frsize;
    let free = vfs.f_bfree * vfs.f_frsize;
    Ok(DiskUsage {
        mount_point: mount_point(stat.st_dev, path).unwrap_or_else(|| "?".into()),
        device: stat.st_dev,
        total_bytes: total,
        available_bytes: vfs.f_bavail * vfs.f_frsize,
        used_bytes: total.saturating_sub(free),
    })
}

/// Where the filesystem with `device` that holds `path` is mounted: of the
/// mounts of that device, the deepest one that is a prefix of `path`.
fn mount_point(device: u64, path: &str) -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let (major, minor) = (rustix::fs::major(device), rustix::fs::minor(device));
    let mounts: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let dev = fields.nth(2)?;
            let mount = fields.nth(1)?;
            (dev == format!("{major}:{minor}")).then(|| unescape_mount(mount))
        })
        .collect();
    mounts
        .iter()
        .filter(|m| Path::new(path).starts_with(m))
        .max_by_key(|m| m.len())
        .or(mounts.first())
        .cloned()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mount(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Some(code) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The static grant check for `remove-path`: a path lexically below an
/// `fs_remove` root, and not the root itself.
pub fn check_remove_grant(remove: &RemovePath, remove_roots: &[PathBuf]) -> Result<(), String> {
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
///
/// An effect: only the executor calls it.
pub(crate) fn remove_file(
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
    // open, since each one's open would deny the other its lease.
    let _claim = InFlight::claim(&seen)
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
    // The name could have been pointed at another file since we opened it.
    let at_name = dir
        .symlink_metadata(name)
        .map_err(|e| stale(format!("{path}: {e}")))?;
    if (at_name.dev(), at_name.ino()) != (meta.dev(), meta.ino()) {
        return Err(stale(format!("{path} was replaced while being removed")));
    }
    // Someone opening the file breaks the lease (and waits for us): leave it.
    if !lease.intact() {
        return Err(stale(format!(
            "{path} was opened by another process while being removed; left in place"
        )));
    }
    dir.remove_file(name)
        .map_err(|e| Refusal::Failed(format!("unlink {path}: {e}")))?;
    Ok(format!("freed {freed} bytes"))
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
    use crate::contract::fs::Host;

    fn roots(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn split_picks_the_deepest_root() {
        let granted = roots(&["/data", "/data/cache"]);
        let (root, rest) = split_under("/data/cache/a/b", &granted).unwrap();
        assert_eq!(
            (root, rest.as_path()),
            (Path::new("/data/cache"), Path::new("a/b"))
        );
        assert_eq!(split_under("/data", &granted).unwrap().1, PathBuf::new());
    }

    #[test]
    fn split_refuses_escapes() {
        let granted = roots(&["/data"]);
        for bad in [
            "/data/../etc/passwd",
            "/data/a/../../etc",
            "data/x",
            "../data/x",
            "/database/x",
            "/etc/passwd",
            "/data/x\0y",
            "",
        ] {
            assert!(
                split_under(bad, &granted).is_err(),
                "{bad:?} must be refused"
            );
        }
        assert!(split_under(&format!("/data/{}", "a".repeat(5000)), &granted).is_err());
    }

    #[test]
    fn remove_grant_excludes_the_root_itself() {
        let remove = |path: &str| RemovePath {
            path: path.into(),
            identity: FileIdentity {
                device: 0,
                inode: 0,
                size: 0,
                mtime_ns: 0,
            },
            reason: String::new(),
        };
        let granted = roots(&["/data/cache"]);
        assert!(check_remove_grant(&remove("/data/cache/x"), &granted).is_ok());
        assert!(check_remove_grant(&remove("/data/cache"), &granted).is_err());
        assert!(check_remove_grant(&remove("/data/other"), &granted).is_err());
    }

    #[test]
    fn symlinks_cannot_lead_out_of_a_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("file-link"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("dir-link")).unwrap();
        std::os::unix::fs::symlink("../../../../../../..", root.path().join("up")).unwrap();
        let base = root.path().display().to_string();
        let mut reader = FsReader::new(&[root.path().to_path_buf()]);

        for path in ["file-link", "dir-link/secret", "up/etc/passwd"] {
            let result = reader.read_file(format!("{base}/{path}"), 100);
            assert!(
                matches!(result, Err(ApiError::Denied(_))),
                "{path}: {result:?}"
            );
        }
        assert!(matches!(
            reader.read_dir(format!("{base}/dir-link")),
            Err(ApiError::Denied(_))
        ));
        // lstat reports the link itself, which reveals nothing of the target.
        let link = reader.stat(format!("{base}/file-link")).unwrap();
        assert_eq!(link.kind, FileKind::Symlink);
    }

    #[test]
    fn missing_roots_read_as_not_found() {
        let mut reader = FsReader::new(&roots(&["/nonexistent-remedy-root"]));
        assert!(matches!(
            reader.stat("/nonexistent-remedy-root/x".into()),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn mount_escapes_are_decoded() {
        assert_eq!(unescape_mount(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape_mount(r"/plain"), "/plain");
        assert_eq!(unescape_mount(r"/trail\04"), r"/trail\04");
    }
}
