//! `process-signal`: the grant check, and the signal sent through a pidfd
//! to the process that was planned, and only to it.

use crate::contract::ProcessSignal;
use crate::sys::procfs::{self, pids};
use std::io;
use std::path::{Path, PathBuf};

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
pub(super) fn check_grant(
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
pub(super) fn exe_matches(pattern: &str, exe: &str) -> bool {
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
pub(super) fn send_signal(
    root: &Path,
    signal: &ProcessSignal,
    exes: &[PathBuf],
    dry_run: bool,
) -> Result<String, super::Refusal> {
    use crate::caps::Refusal;
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
