//! `proc`: the processes on this host and the files they hold, read from procfs.

use crate::contract::ApiError;
use crate::contract::ProcessSignal;
use crate::contract::proc::{FileInUse, FileLock, InUse, Process};
use crate::sys::procfs::{self, namespace_inode, parse_stat, pids, vanished};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ProcRight {
    Read,
}

/// Where the host's processes are read from.
pub const PROC_ROOT: &str = "/proc";

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
    pub denials: super::Denials,
}

impl ProcReader {
    pub fn new(root: impl Into<PathBuf>, granted: bool, lock_files: Vec<PathBuf>) -> Self {
        ProcReader {
            root: root.into(),
            granted,
            lock_files,
            denials: super::Denials::default(),
        }
    }

    fn require_grant(&mut self, call: &str) -> Result<(), ApiError> {
        self.denials.require_read(call, "proc", self.granted)
    }
}

impl crate::contract::proc::Host for ProcReader {
    fn processes(&mut self) -> Result<Vec<Process>, ApiError> {
        self.require_grant("proc.processes")?;
        processes(&self.root).map_err(unavailable)
    }

    fn files_in_use(&mut self, device: u64) -> Result<InUse, ApiError> {
        self.require_grant("proc.files-in-use")?;
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

    fn file_locks(&mut self, path: String) -> Result<Vec<FileLock>, ApiError> {
        self.require_grant("proc.file-locks")?;
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

fn unavailable(error: io::Error) -> ApiError {
    ApiError::Unavailable(error.to_string())
}

pub fn processes(root: &Path) -> io::Result<Vec<Process>> {
    let mut found = Vec::new();
    for pid in pids(root)? {
        match process(root, pid) {
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

fn process(root: &Path, pid: u32) -> io::Result<Process> {
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
        exe,
        cmdline,
        netns_inode,
    })
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

/// Signals a grant may allow (`proc_signals`), by their usual names.
const SIGNALS: [(&str, rustix::process::Signal); 7] = [
    ("TERM", rustix::process::Signal::TERM),
    ("KILL", rustix::process::Signal::KILL),
    ("INT", rustix::process::Signal::INT),
    ("HUP", rustix::process::Signal::HUP),
    ("QUIT", rustix::process::Signal::QUIT),
    ("USR1", rustix::process::Signal::USR1),
    ("USR2", rustix::process::Signal::USR2),
];

/// Why `signal` is outside the grants (`proc_signals`, `proc_exes`), if it is.
pub fn check_signal_grant(
    signal: &ProcessSignal,
    signals: &[String],
    exes: &[PathBuf],
) -> Result<(), String> {
    if !SIGNALS.iter().any(|(name, _)| *name == signal.signal) {
        let known: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown signal {:?}; remedy sends {}",
            signal.signal,
            known.join(", ")
        ));
    }
    if !signals.contains(&signal.signal) {
        return Err(format!(
            "signal {} is not granted (proc_signals = {signals:?})",
            signal.signal
        ));
    }
    if !exe_granted(exes, &signal.exe) {
        return Err(format!(
            "executable {} is not granted (proc_exes = {exes:?})",
            signal.exe
        ));
    }
    if signal.pid <= 1 {
        return Err(format!("pid {} is never signalled", signal.pid));
    }
    Ok(())
}

/// Whether `exe` is the path `pattern` names; `*` matches any run of
/// characters within one path segment, so it never crosses a `/`.
fn exe_matches(pattern: &str, exe: &str) -> bool {
    let patterns: Vec<&str> = pattern.split('/').collect();
    let segments: Vec<&str> = exe.split('/').collect();
    patterns.len() == segments.len()
        && patterns
            .iter()
            .zip(&segments)
            .all(|(p, s)| segment_matches(p.as_bytes(), s.as_bytes()))
}

/// Wildcard match that backtracks only to the last `*`: at most
/// pattern × text steps, whatever a plugin puts in `exe`.
fn segment_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            last_star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star, from)) = last_star {
            p = star + 1;
            t = from + 1;
            last_star = Some((star, from + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One process a signal would reach, as it was when it was checked.
#[derive(Clone, Debug, PartialEq)]
struct Recipient {
    pid: u32,
    start_time: u64,
    exe: String,
}

/// Re-check that `pid` is still the process planned and, unless `dry_run`,
/// signal it. A group signal reaches every member of the process group, so
/// every member must run a granted executable (`exes`), or nothing is sent.
/// Each is signalled through a pidfd opened while it still had the start
/// time it was checked with, so a pid reused meanwhile is never hit.
///
/// An effect: only the executor calls it.
pub(crate) fn send_signal(
    root: &Path,
    signal: &ProcessSignal,
    exes: &[PathBuf],
    dry_run: bool,
) -> Result<String, super::Refusal> {
    use super::Refusal;
    let stale = Refusal::Stale;
    let pid = signal.pid;
    let Some(stat) = procfs::stat(root, pid) else {
        return Err(stale(format!("process {pid} has exited")));
    };
    if stat.start_time != signal.start_time {
        return Err(stale(format!(
            "pid {pid} belongs to another process now (started at tick {}, planned {})",
            stat.start_time, signal.start_time
        )));
    }
    let exe = procfs::exe(root, pid);
    if exe != signal.exe {
        return Err(stale(format!(
            "process {pid} runs {exe:?} now, not {}",
            signal.exe
        )));
    }
    let (_, number) = SIGNALS
        .iter()
        .find(|(name, _)| *name == signal.signal)
        .ok_or_else(|| Refusal::Failed(format!("unknown signal {}", signal.signal)))?;
    let named = Recipient {
        pid,
        start_time: stat.start_time,
        exe: exe.clone(),
    };
    let (recipients, whom) = if signal.process_group {
        let members = group_members(root, stat.pgrp).map_err(|e| {
            Refusal::Failed(format!("cannot list process group {}: {e}", stat.pgrp))
        })?;
        if let Some(foreign) = members.iter().find(|m| !exe_granted(exes, &m.exe)) {
            return Err(Refusal::Denied(format!(
                "the process group of {pid} also holds pid {} ({}), which is not granted \
                 (proc_exes); a group signal must be granted for every member, so nothing was sent",
                foreign.pid,
                if foreign.exe.is_empty() {
                    "executable unknown"
                } else {
                    &foreign.exe
                }
            )));
        }
        let pids: Vec<String> = members.iter().map(|m| m.pid.to_string()).collect();
        let whom = format!("the process group of {pid} (pids {})", pids.join(", "));
        (members, whom)
    } else {
        (vec![named], format!("{pid} ({exe})"))
    };
    if dry_run {
        return Ok(format!("would send SIG{} to {whom}", signal.signal));
    }
    let mut sent = 0;
    for recipient in &recipients {
        if deliver(root, recipient, *number)? {
            sent += 1;
        }
    }
    if sent == 0 {
        return Err(stale(format!("{whom} exited before the signal")));
    }
    Ok(format!("sent SIG{} to {whom}", signal.signal))
}

fn exe_granted(exes: &[PathBuf], exe: &str) -> bool {
    // A binary replaced on disk shows as `PATH (deleted)`; the grant names PATH.
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
    !exe.is_empty() && exes.iter().any(|e| exe_matches(&e.to_string_lossy(), exe))
}

/// The live members of process group `pgrp`; zombies have exited already.
fn group_members(root: &Path, pgrp: u32) -> io::Result<Vec<Recipient>> {
    let mut members = Vec::new();
    for pid in pids(root)? {
        let Some(stat) = procfs::stat(root, pid) else {
            continue; // gone while we looked
        };
        if stat.pgrp == pgrp && stat.state != 'Z' {
            members.push(Recipient {
                pid,
                start_time: stat.start_time,
                exe: procfs::exe(root, pid),
            });
        }
    }
    Ok(members)
}

/// Signal `recipient` if it is still the process that was checked; `false`
/// when it has exited (or its pid went to another process) since.
fn deliver(
    root: &Path,
    recipient: &Recipient,
    signal: rustix::process::Signal,
) -> Result<bool, super::Refusal> {
    use rustix::process::{Pid, PidfdFlags, pidfd_open, pidfd_send_signal};
    let pid = recipient.pid;
    let target = Pid::from_raw(pid as i32)
        .ok_or_else(|| super::Refusal::Failed(format!("invalid pid {pid}")))?;
    let pidfd = match pidfd_open(target, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(false),
        Err(e) => return Err(super::Refusal::Failed(format!("pidfd_open {pid}: {e}"))),
    };
    // The pidfd names whatever process has the pid now: check it is still ours.
    if procfs::start_time(root, pid) != Some(recipient.start_time) {
        return Ok(false);
    }
    match pidfd_send_signal(&pidfd, signal) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::SRCH) => Ok(false),
        Err(e) => Err(super::Refusal::Failed(format!("signal {pid}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn stat_fields_survive_hostile_command_names() {
        let stat =
            "4242 (evil) 1 2 (x) S 77 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        assert_eq!(parse_stat(stat), Some((77, 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn namespace_links() {
        assert_eq!(namespace_inode("net:[4026531840]"), Some(4026531840));
        assert_eq!(namespace_inode("net:4026531840"), None);
    }

    #[test]
    fn maps_lines() {
        let line = "7f1c2a000000-7f1c2a021000 r--p 00000000 fd:01 1311 /usr/lib/libc.so.6";
        assert_eq!(
            parse_maps_line(line),
            Some((rustix::fs::makedev(0xfd, 1), 1311))
        );
        assert_eq!(
            parse_maps_line("7ffd-7ffe rw-p 00000000 00:00 0 [stack]").map(|m| m.1),
            Some(0)
        );
        assert_eq!(parse_maps_line("short line"), None);
    }

    #[test]
    fn exe_globs_stay_within_a_segment() {
        let pattern = "/fc-versions/*/firecracker";
        assert!(exe_matches(
            pattern,
            "/fc-versions/v1.10.1_1fcdaec/firecracker"
        ));
        assert!(!exe_matches(pattern, "/fc-versions/a/b/firecracker"));
        assert!(!exe_matches(pattern, "/fc-versions/v1/firecracker2"));
        assert!(!exe_matches(pattern, "/tmp/fc-versions/v1/firecracker"));
        assert!(exe_matches("/usr/bin/sleep", "/usr/bin/sleep"));
        assert!(!exe_matches("/usr/bin/sleep", "/usr/bin/sleepy"));
        assert!(exe_matches("/opt/*-bin/fc*", "/opt/x-bin/fc-1"));
        assert!(!exe_matches("/opt/*", "/opt"));
        assert!(exe_matches("/opt/*", "/opt/"));
        assert!(exe_matches("/a/*b*b*", "/a/xbyb"));
        assert!(!exe_matches("/a/*b*b*c", "/a/xbyb"));
        let long = format!("/a/{}", "b".repeat(16 * 1024));
        assert!(!exe_matches("/a/*b*b*b*b*c", &long));
    }

    #[test]
    fn file_locks_need_the_grant_and_an_absolute_path() {
        use crate::contract::proc::Host;
        let granted = vec![PathBuf::from("/nonexistent/remedy.lock")];
        let denied = ProcReader::new(PROC_ROOT, false, granted.clone())
            .file_locks("/nonexistent/remedy.lock".into());
        assert!(matches!(denied, Err(ApiError::Denied(_))), "{denied:?}");
        let mut reader = ProcReader::new(PROC_ROOT, true, granted);
        let relative = reader.file_locks("orchestrator.lock".into());
        assert!(
            matches!(relative, Err(ApiError::Invalid(_))),
            "{relative:?}"
        );
        let missing = reader.file_locks("/nonexistent/remedy.lock".into());
        assert!(matches!(missing, Err(ApiError::NotFound(_))), "{missing:?}");
    }

    #[test]
    fn file_locks_outside_the_grant_say_nothing_of_the_file() {
        use crate::contract::proc::Host;
        let mut reader = ProcReader::new(PROC_ROOT, true, vec![PathBuf::from("/run/x.lock")]);
        let answer = |reader: &mut ProcReader, path: &str| match reader.file_locks(path.into()) {
            Err(ApiError::Denied(why)) => why.replace(path, "PATH"),
            other => panic!("{path}: {other:?}"),
        };
        let existing = answer(&mut reader, "/etc/hostname");
        let missing = answer(&mut reader, "/nonexistent/remedy.lock");
        let locked_dir = answer(&mut reader, "/proc/self/exe");
        assert_eq!(existing, missing);
        assert_eq!(existing, locked_dir);
        assert_eq!(
            reader.denials.into_lines().len(),
            3,
            "each refusal is recorded"
        );
    }

    #[test]
    fn lock_lines() {
        let (file, lock) =
            parse_lock_line("1: FLOCK  ADVISORY  WRITE 4242 fd:01:1311 0 EOF").unwrap();
        assert_eq!(file, (0xfd, 1, 1311));
        assert_eq!(
            (lock.kind.as_str(), lock.exclusive, lock.pid),
            ("flock", true, Some(4242))
        );
        let (_, ofd) = parse_lock_line("2: OFDLCK ADVISORY  READ  -1 00:2f:7 0 EOF").unwrap();
        assert_eq!(
            (ofd.kind.as_str(), ofd.exclusive, ofd.pid),
            ("ofd", false, None)
        );
        assert!(parse_lock_line("1: -> FLOCK  ADVISORY  WRITE 4243 fd:01:1311 0 EOF").is_none());
        assert!(parse_lock_line("3: LEASE  ACTIVE    READ 99 fd:01:5 0 EOF").is_none());
        assert!(parse_lock_line("garbage").is_none());
    }

    #[test]
    fn finds_a_lock_this_process_holds() {
        use rustix::fs::{FlockOperation, flock};
        let file = tempfile::NamedTempFile::new().unwrap();
        let proc = Path::new("/proc");
        assert!(file_locks(proc, file.path()).unwrap().is_empty());
        flock(file.as_file(), FlockOperation::LockExclusive).unwrap();
        let locks = file_locks(proc, file.path()).unwrap();
        assert_eq!(locks.len(), 1, "{locks:?}");
        assert_eq!(locks[0].pid, Some(std::process::id()));
        assert!(locks[0].exclusive);
        flock(file.as_file(), FlockOperation::Unlock).unwrap();
        assert!(file_locks(proc, file.path()).unwrap().is_empty());
        let gone = file_locks(proc, Path::new("/nonexistent/remedy.lock")).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id();
        let all = processes(Path::new("/proc")).unwrap();
        let own = all
            .iter()
            .find(|p| p.pid == me)
            .expect("own process listed");
        assert!(own.start_time > 0);
        assert!(!own.exe.is_empty());
        assert!(own.netns_inode > 0);
    }

    #[test]
    fn finds_a_file_this_process_holds() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let meta = file.as_file().metadata().unwrap();
        let scan = files_in_use(Path::new("/proc"), meta.dev()).unwrap();
        assert_eq!(scan.held.get(&meta.ino()), Some(&std::process::id()));
        assert!(!scan.uninspected.contains(&std::process::id()));
    }
}
