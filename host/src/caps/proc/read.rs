//! The `proc` read interface: processes, the files they hold open or
//! mapped, and the locks on granted lock files.

use crate::contract::ApiError;
use crate::contract::proc::{FileInUse, FileLock, InUse, Listener, Process};
use crate::sys::procfs::{self, namespace_inode, parse_stat, pids, vanished};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Bounds on what one call returns.
const MAX_PROCESSES: usize = 65_536;
const MAX_FILES_IN_USE: usize = 1 << 20;
const MAX_CMDLINE_BYTES: usize = 4096;

/// Read access to a procfs, granted or not.
#[derive(Debug)]
pub struct ProcReader {
    root: PathBuf,
    granted: bool,
    /// Lock files whose locks may be reported (`proc_locks`).
    lock_files: Vec<PathBuf>,
    pub denials: crate::caps::Denials,
    /// Where its calls go: the world, kept or not, or a recording.
    pub journal: crate::caps::journal::Journal,
}

impl ProcReader {
    pub fn new(root: impl Into<PathBuf>, granted: bool, lock_files: Vec<PathBuf>) -> Self {
        ProcReader {
            root: root.into(),
            granted,
            lock_files,
            denials: crate::caps::Denials::default(),
            journal: Default::default(),
        }
    }

    fn require_read(&mut self, call: &str) -> Result<(), ApiError> {
        self.denials.require_read(call, "proc", self.granted)
    }
}

journaled! {
    "proc", ProcReader: crate::contract::proc::Host {
        fn processes(&mut self) -> Result<Vec<Process>, ApiError> {
            self.require_read("proc.processes")?;
            processes(&self.root).map_err(unavailable)
        }

        fn files_in_use(&mut self, device: u64) -> Result<InUse, ApiError> {
            self.require_read("proc.files-in-use")?;
            let scan = files_in_use(&self.root, device).map_err(unavailable)?;
            Ok(InUse {
                files: scan
                    .held
                    .into_iter()
                    .map(|(inode, pid)| FileInUse { device, inode, pid })
                    .collect(),
                uninspected_pids: scan.uninspected,
            })
        }

        fn listeners(&mut self, port: u16) -> Result<Vec<Listener>, ApiError> {
            self.require_read("proc.listeners")?;
            listeners(&self.root, port).map_err(unavailable)
        }

        fn file_locks(&mut self, path: String) -> Result<Vec<FileLock>, ApiError> {
            self.require_read("proc.file-locks")?;
            if !Path::new(&path).is_absolute() {
                return Err(ApiError::Invalid(format!(
                    "{path:?} is not an absolute path"
                )));
            }
            // Decided on the name alone, before the filesystem is asked anything,
            // so the answer outside the grant says nothing of what exists there.
            if !self
                .lock_files
                .iter()
                .any(|granted| granted == Path::new(&path))
            {
                let refused = Err(ApiError::denied(format!(
                    "{path} is not granted; the operator adds it to proc_locks"
                )));
                return self.denials.note("proc.file-locks", refused);
            }
            match file_locks(&self.root, Path::new(&path)) {
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    Err(ApiError::NotFound(format!("{path}: no such file")))
                }
                result => result.map_err(unavailable),
            }
        }
    }
}

fn unavailable(error: io::Error) -> ApiError {
    ApiError::Unavailable(error.to_string())
}

pub fn processes(root: &Path) -> io::Result<Vec<Process>> {
    let mut found = Vec::new();
    let clock = Clock::of(root);
    for pid in pids(root)? {
        match process(root, pid, clock) {
            Ok(process) => found.push(process),
            Err(error) if vanished(&error) => continue,
            Err(error) => return Err(error),
        }
        if found.len() >= MAX_PROCESSES {
            break;
        }
    }
    Ok(found)
}

/// How long processes have run: the host's uptime, and the clock ticks a
/// second that start times count in.
#[derive(Clone, Copy)]
struct Clock {
    uptime_secs: f64,
    ticks_per_sec: u64,
}

impl Clock {
    fn of(root: &Path) -> Clock {
        let uptime_secs = fs::read_to_string(root.join("uptime"))
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Clock {
            uptime_secs,
            ticks_per_sec: rustix::param::clock_ticks_per_second().max(1),
        }
    }

    fn age_secs(self, start_time: u64) -> u64 {
        let started = start_time as f64 / self.ticks_per_sec as f64;
        (self.uptime_secs - started).max(0.0) as u64
    }
}

fn process(root: &Path, pid: u32, clock: Clock) -> io::Result<Process> {
    let dir = root.join(pid.to_string());
    let (ppid, start_time) = parse_stat(&fs::read_to_string(dir.join("stat"))?)
        .ok_or_else(|| io::Error::other(format!("unreadable {}/stat", dir.display())))?;
    let exe = procfs::exe(root, pid);
    let mut raw = fs::read(dir.join("cmdline")).unwrap_or_default();
    raw.truncate(MAX_CMDLINE_BYTES);
    let cmdline = raw
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    let netns_inode = fs::read_link(dir.join("ns/net"))
        .ok()
        .and_then(|link| namespace_inode(&link.to_string_lossy()))
        .unwrap_or(0);
    Ok(Process {
        pid,
        ppid,
        start_time,
        age_secs: clock.age_secs(start_time),
        exe,
        cmdline,
        netns_inode,
    })
}

/// The processes with a TCP socket listening on `port`: the listening
/// sockets' inodes from `net/tcp` and `net/tcp6`, then the processes whose
/// descriptors point at one of them.
pub fn listeners(root: &Path, port: u16) -> io::Result<Vec<Listener>> {
    let mut sockets: HashMap<u64, String> = HashMap::new();
    for table in ["net/tcp", "net/tcp6"] {
        match fs::read_to_string(root.join(table)) {
            Ok(text) => sockets.extend(text.lines().filter_map(|l| parse_listen_line(l, port))),
            // A kernel without IPv6 has no tcp6 table.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    let mut found = Vec::new();
    if sockets.is_empty() {
        return Ok(found);
    }
    for pid in pids(root)? {
        let Ok(fds) = fs::read_dir(root.join(pid.to_string()).join("fd")) else {
            continue; // gone, or not ours to read
        };
        let held = fds
            .flatten()
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .find_map(|link| socket_inode(&link.to_string_lossy()).and_then(|i| sockets.get(&i)));
        if let Some(address) = held
            && let Some(start_time) = procfs::start_time(root, pid)
        {
            found.push(Listener {
                pid,
                start_time,
                exe: procfs::exe(root, pid),
                address: address.clone(),
            });
        }
    }
    Ok(found)
}

/// `(inode, address)` of a `/proc/net/tcp{,6}` line for a socket listening
/// (state `0A`) on `port`. Addresses are the kernel's words in host order.
pub fn parse_listen_line(line: &str, port: u16) -> Option<(u64, String)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (address, hex_port) = fields.get(1)?.split_once(':')?;
    if *fields.get(3)? != "0A" || u16::from_str_radix(hex_port, 16).ok()? != port {
        return None;
    }
    let mut bytes = Vec::with_capacity(16);
    for word in address.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(word).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip: std::net::IpAddr = match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok()?.into(),
        16 => <[u8; 16]>::try_from(bytes).ok()?.into(),
        _ => return None,
    };
    let inode = fields.get(9)?.parse().ok()?;
    Some((inode, std::net::SocketAddr::new(ip, port).to_string()))
}

/// The inode of a descriptor link such as `socket:[123456]`.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// What a scan of procfs found on one device.
#[derive(Debug, Default)]
pub struct InUseScan {
    /// Inode to one pid that holds it.
    pub held: HashMap<u64, u32>,
    /// Processes whose fds or maps this process may not read.
    pub uninspected: Vec<u32>,
}

/// Inodes on `device` that some process has open (any fd) or mapped.
/// Processes we may not inspect are listed, never silently skipped.
pub fn files_in_use(root: &Path, device: u64) -> io::Result<InUseScan> {
    let mut scan = InUseScan::default();
    for pid in pids(root)? {
        let dir = root.join(pid.to_string());
        match held_by(&dir, pid, device, &mut scan.held) {
            Ok(()) => {}
            Err(error) if vanished(&error) => continue,
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                scan.uninspected.push(pid)
            }
            Err(error) => {
                return Err(io::Error::new(
                    error.kind(),
                    format!("cannot inspect the files of pid {pid}: {error}"),
                ));
            }
        }
        if scan.held.len() > MAX_FILES_IN_USE {
            return Err(io::Error::other("more files in use than remedy tracks"));
        }
    }
    Ok(scan)
}

fn held_by(dir: &Path, pid: u32, device: u64, held: &mut HashMap<u64, u32>) -> io::Result<()> {
    for fd in fs::read_dir(dir.join("fd"))? {
        // stat follows the fd's magic link to the open file itself.
        match rustix::fs::stat(fd?.path()) {
            Ok(stat) if stat.st_dev == device => {
                held.entry(stat.st_ino).or_insert(pid);
            }
            Ok(_) => {}
            Err(rustix::io::Errno::NOENT) => {} // closed while we looked
            Err(errno) => return Err(errno.into()),
        }
    }
    for line in fs::read_to_string(dir.join("maps"))?.lines() {
        if let Some((dev, inode)) = parse_maps_line(line)
            && dev == device
            && inode != 0
        {
            held.entry(inode).or_insert(pid);
        }
    }
    Ok(())
}

/// Locks held on the file at `path`, from `<root>/locks`.
pub fn file_locks(root: &Path, path: &Path) -> io::Result<Vec<FileLock>> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path)?;
    let target = (
        rustix::fs::major(meta.dev()),
        rustix::fs::minor(meta.dev()),
        meta.ino(),
    );
    let locks = fs::read_to_string(root.join("locks"))?;
    Ok(locks
        .lines()
        .filter_map(parse_lock_line)
        .filter(|(file, _)| *file == target)
        .map(|(_, lock)| lock)
        .collect())
}

/// One held lock of `/proc/locks`, with its file as `(major, minor, inode)`:
/// `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1311 0 EOF`. Waiters (`1: -> FLOCK ...`)
/// and leases are not held locks.
pub fn parse_lock_line(line: &str) -> Option<((u32, u32, u64), FileLock)> {
    let mut fields = line.split_whitespace().skip(1);
    let kind = match fields.next()? {
        "FLOCK" => "flock",
        "POSIX" => "posix",
        "OFDLCK" => "ofd",
        _ => return None,
    };
    let exclusive = match fields.nth(1)? {
        "WRITE" => true,
        "READ" => false,
        _ => return None,
    };
    let pid = fields.next()?.parse::<i64>().ok()?;
    let mut file = fields.next()?.split(':');
    let major = u32::from_str_radix(file.next()?, 16).ok()?;
    let minor = u32::from_str_radix(file.next()?, 16).ok()?;
    let inode = file.next()?.parse().ok()?;
    let lock = FileLock {
        kind: kind.into(),
        exclusive,
        pid: u32::try_from(pid).ok().filter(|pid| *pid > 0),
    };
    Some(((major, minor, inode), lock))
}

/// `(device, inode)` of one `/proc/PID/maps` line: `addr perms offset MAJ:MIN inode path`.
pub fn parse_maps_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    let dev = fields.nth(3)?;
    let inode = fields.next()?.parse().ok()?;
    let (major, minor) = dev.split_once(':')?;
    let major = u32::from_str_radix(major, 16).ok()?;
    let minor = u32::from_str_radix(minor, 16).ok()?;
    Some((rustix::fs::makedev(major, minor), inode))
}
