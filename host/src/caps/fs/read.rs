//! The `fs` read interface: stat, list, read and measure below the
//! `fs_read` roots, through directory handles no path can lead out of.

use super::{MAX_DIR_ENTRIES, MAX_READ_BYTES, identity, split_under};
use crate::contract::ApiError;
use crate::contract::fs::{DiskUsage, Entry, FileKind};
use cap_std::ambient_authority;
use cap_std::fs::OpenOptionsExt;
use cap_std::fs::{Dir, Metadata, MetadataExt};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

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
    pub denials: crate::caps::Denials,
    /// Where its calls go: the world, kept or not, or a recording.
    pub journal: crate::caps::journal::Journal,
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
            denials: crate::caps::Denials::default(),
            journal: Default::default(),
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

journaled! {
    "fs", FsReader: crate::contract::fs::Host {
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
    passing {
        fn roots(&mut self) -> Vec<String> {
            self.paths.iter().map(|p| p.display().to_string()).collect()
        }
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
        let (dir, rest) = match self.resolve(&path) {
            Ok(found) => found,
            // A filesystem's sizes are no secret (`df` shows them to every
            // user), so a mount point outside the roots is measured; nothing
            // below it is.
            Err(denied) if is_mount_point(&path) => return mounted_usage(&path).or(Err(denied)),
            Err(denied) => return Err(denied),
        };
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
    let mut usage = sizes(handle)?;
    usage.mount_point = mount_point(usage.device, path).unwrap_or_else(|| "?".into());
    Ok(usage)
}

/// The filesystem's device and sizes, as `df` counts them; no mount point yet.
fn sizes(handle: std::os::fd::BorrowedFd<'_>) -> io::Result<DiskUsage> {
    let stat = rustix::fs::fstat(handle)?;
    let vfs = rustix::fs::fstatvfs(handle)?;
    let total = vfs.f_blocks * vfs.f_frsize;
    let free = vfs.f_bfree * vfs.f_frsize;
    Ok(DiskUsage {
        mount_point: String::new(),
        device: stat.st_dev,
        total_bytes: total,
        available_bytes: vfs.f_bavail * vfs.f_frsize,
        used_bytes: total.saturating_sub(free),
    })
}

/// Where the filesystem with `device` that holds `path` is mounted: of the
/// mounts of that device, the deepest one that is a prefix of `path`.
fn mount_point(device: u64, path: &str) -> Option<String> {
    let mountinfo = crate::sys::mounts::mountinfo().ok()?;
    let major_minor = format!("{}:{}", rustix::fs::major(device), rustix::fs::minor(device));
    let mounts: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let dev = fields.nth(2)?;
            let mount = fields.nth(1)?;
            (dev == major_minor).then(|| unescape_mount(mount))
        })
        .collect();
    mounts
        .iter()
        .filter(|m| Path::new(path).starts_with(m))
        .max_by_key(|m| m.len())
        .or(mounts.first())
        .cloned()
}

/// Whether `path`, written plainly (absolute, no `.`, `..` or doubled
/// `/`), is a directory on another filesystem than its parent: a mount
/// point. Two `lstat`s, where reading the mount table would cost far more.
fn is_mount_point(path: &str) -> bool {
    let plain = path == "/"
        || (path.starts_with('/')
            && !path.ends_with('/')
            && path[1..]
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != ".."));
    if !plain {
        return false;
    }
    let Ok(this) = rustix::fs::lstat(path) else {
        return false;
    };
    let is_dir = rustix::fs::FileType::from_raw_mode(this.st_mode) == rustix::fs::FileType::Directory;
    let parent = Path::new(path).parent().unwrap_or(Path::new("/"));
    is_dir && (path == "/" || rustix::fs::lstat(parent).is_ok_and(|p| p.st_dev != this.st_dev))
}

/// The usage of the filesystem mounted at `path`, opened as a directory
/// without following a symlink.
fn mounted_usage(path: &str) -> Result<DiskUsage, ApiError> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = rustix::fs::open(path, flags, Mode::empty())
        .map_err(|e| io_error(path, io::Error::from(e)))?;
    let mut usage = sizes(dir.as_fd()).map_err(|e| io_error(path, e))?;
    usage.mount_point = path.to_string();
    Ok(usage)
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
pub(super) fn unescape_mount(raw: &str) -> String {
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
