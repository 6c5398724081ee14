//! The pure part of disk-cleanup: what may go, and how much of it.

use remedy_sdk::fs::{DiskUsage, Entry, FileKind};
use std::collections::HashSet;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Sandbox,
    Cache,
    Logs,
}

impl Tier {
    pub fn label(self) -> &'static str {
        match self {
            Tier::Sandbox => "sandbox",
            Tier::Cache => "cache",
            Tier::Logs => "log",
        }
    }

    /// What one file of this tier is, for an action's reason.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Sandbox => "leaked sandbox file",
            Tier::Cache => "cache",
            Tier::Logs => "rotated log",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    InUse,
    Recent,
    OtherFilesystem,
    HardLinked,
    NotRotated,
    NotRegular,
}

/// How many files a directory had, and why the ineligible ones were passed over.
#[derive(Default)]
pub struct Skips {
    eligible: u64,
    in_use: u64,
    recent: u64,
    other_fs: u64,
    hard_linked: u64,
    not_rotated: u64,
    not_regular: u64,
}

impl Skips {
    pub fn accept(&mut self) {
        self.eligible += 1;
    }

    pub fn count(&mut self, skip: Skip) {
        *match skip {
            Skip::InUse => &mut self.in_use,
            Skip::Recent => &mut self.recent,
            Skip::OtherFilesystem => &mut self.other_fs,
            Skip::HardLinked => &mut self.hard_linked,
            Skip::NotRotated => &mut self.not_rotated,
            Skip::NotRegular => &mut self.not_regular,
        } += 1;
    }
}

impl fmt::Display for Skips {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `judge` accepted the ones not counted as skipped.
        let skipped = [
            (self.in_use, "open or mapped by a process"),
            (self.recent, "too recent"),
            (self.other_fs, "on another filesystem"),
            (self.hard_linked, "hard-linked elsewhere"),
            (self.not_rotated, "not a rotated log"),
            (self.not_regular, "not a regular file"),
        ];
        let total = self.eligible + skipped.iter().map(|(n, _)| n).sum::<u64>();
        write!(f, "{total} files")?;
        for (count, why) in skipped.iter().filter(|(n, _)| *n > 0) {
            write!(f, ", {count} skipped ({why})")?;
        }
        Ok(())
    }
}

/// Whether `entry` may be deleted in `tier`; `Err` says why not.
pub fn judge(
    tier: Tier,
    entry: &Entry,
    device: u64,
    in_use: &HashSet<u64>,
    now_secs: i64,
    min_age_secs: u64,
) -> Result<(), Skip> {
    if entry.kind != FileKind::File {
        return Err(Skip::NotRegular);
    }
    if entry.identity.device != device {
        return Err(Skip::OtherFilesystem);
    }
    if in_use.contains(&entry.identity.inode) {
        return Err(Skip::InUse);
    }
    if entry.links > 1 {
        return Err(Skip::HardLinked);
    }
    if tier == Tier::Logs && !is_rotated_log(&entry.path) {
        return Err(Skip::NotRotated);
    }
    let age = now_secs.saturating_sub(entry.identity.mtime_secs());
    if age < 0 || (age as u64) < min_age_secs {
        return Err(Skip::Recent);
    }
    Ok(())
}

/// `app.log.3`, `app.stdout.12`, `syslog.2.gz`, `x.old`: names logrotate and Nomad give old logs.
pub fn is_rotated_log(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    if stem.is_empty() {
        return false;
    }
    matches!(ext, "gz" | "xz" | "zst" | "bz2" | "old")
        || (!ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()))
}

pub struct Candidate {
    pub tier: Tier,
    pub entry: Entry,
}

pub struct Selection {
    pub files: Vec<Candidate>,
    /// Bytes the selected files occupy on disk.
    pub bytes: u64,
    pub reaches_target: bool,
}

/// Tier by tier, oldest first, just enough files to free `to_free` bytes.
pub fn oldest_first(mut candidates: Vec<Candidate>, to_free: u64) -> Selection {
    candidates.sort_by(|a, b| {
        (a.tier, a.entry.identity.mtime_ns, &a.entry.path).cmp(&(
            b.tier,
            b.entry.identity.mtime_ns,
            &b.entry.path,
        ))
    });
    let mut selection = Selection {
        files: Vec::new(),
        bytes: 0,
        reaches_target: false,
    };
    for candidate in candidates {
        if selection.bytes >= to_free {
            break;
        }
        selection.bytes += candidate.entry.allocated_bytes;
        selection.files.push(candidate);
    }
    selection.reaches_target = selection.bytes >= to_free;
    selection
}

/// `df`'s Use%: used / (used + available), so reserved blocks count as full.
pub fn used_percent(usage: &DiskUsage) -> f64 {
    let usable = usage.used_bytes + usage.available_bytes;
    if usable == 0 {
        return 0.0;
    }
    usage.used_bytes as f64 * 100.0 / usable as f64
}

/// Bytes to delete so that `used_percent` drops to `target` (deleting moves bytes
/// from used to available, so their sum stays put).
pub fn bytes_to_free(usage: &DiskUsage, target_percent: f64) -> u64 {
    let usable = (usage.used_bytes + usage.available_bytes) as f64;
    let allowed = (usable * target_percent / 100.0).floor() as u64;
    usage.used_bytes.saturating_sub(allowed)
}

pub fn human_age(secs: i64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{}s", s.max(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remedy_sdk::FileIdentity;

    const DEV: u64 = 7;
    const NOW: i64 = 1_000_000;

    fn file(path: &str, inode: u64, mtime: i64, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind: FileKind::File,
            identity: FileIdentity {
                device: DEV,
                inode,
                size,
                mtime_ns: mtime * 1_000_000_000,
            },
            mode: 0o100644,
            allocated_bytes: size,
            links: 1,
        }
    }

    fn usage(used: u64, available: u64) -> DiskUsage {
        DiskUsage {
            mount_point: "/".into(),
            device: DEV,
            total_bytes: used + available,
            available_bytes: available,
            used_bytes: used,
        }
    }

    #[test]
    fn bytes_to_free_reaches_the_target_exactly() {
        assert_eq!(bytes_to_free(&usage(90, 10), 80.0), 10);
        assert_eq!(bytes_to_free(&usage(70, 30), 80.0), 0);
        assert_eq!(used_percent(&usage(0, 0)), 0.0);
        let u = usage(900, 100);
        let freed = bytes_to_free(&u, 80.0);
        assert!(used_percent(&usage(900 - freed, 100 + freed)) <= 80.0);
    }

    #[test]
    fn selects_oldest_first_and_stops_at_the_target() {
        let candidates = vec![
            Candidate {
                tier: Tier::Cache,
                entry: file("/c/new", 1, 900, 40),
            },
            Candidate {
                tier: Tier::Cache,
                entry: file("/c/old", 2, 100, 40),
            },
            Candidate {
                tier: Tier::Cache,
                entry: file("/c/mid", 3, 500, 40),
            },
        ];
        let selection = oldest_first(candidates, 50);
        let paths: Vec<_> = selection
            .files
            .iter()
            .map(|c| c.entry.path.as_str())
            .collect();
        assert_eq!(paths, ["/c/old", "/c/mid"]);
        assert_eq!(selection.bytes, 80);
        assert!(selection.reaches_target);
    }

    #[test]
    fn earlier_tiers_go_first_whatever_their_age() {
        let candidates = vec![
            Candidate {
                tier: Tier::Logs,
                entry: file("/l/a.1", 1, 1, 10),
            },
            Candidate {
                tier: Tier::Sandbox,
                entry: file("/s/x", 2, 999, 10),
            },
        ];
        let selection = oldest_first(candidates, 10);
        assert_eq!(selection.files[0].entry.path, "/s/x");
        assert_eq!(selection.files.len(), 1);
    }

    #[test]
    fn not_enough_is_reported() {
        let candidates = vec![Candidate {
            tier: Tier::Cache,
            entry: file("/c/a", 1, 1, 10),
        }];
        let selection = oldest_first(candidates, 100);
        assert!(!selection.reaches_target);
        assert_eq!(selection.bytes, 10);
    }

    #[test]
    fn judge_refuses_every_unsafe_file() {
        let none = HashSet::new();
        let old = file("/c/a", 1, 0, 10);
        assert_eq!(judge(Tier::Cache, &old, DEV, &none, NOW, 60), Ok(()));

        let in_use = HashSet::from([1]);
        assert_eq!(
            judge(Tier::Cache, &old, DEV, &in_use, NOW, 60),
            Err(Skip::InUse)
        );
        assert_eq!(
            judge(Tier::Cache, &old, DEV + 1, &none, NOW, 60),
            Err(Skip::OtherFilesystem)
        );
        assert_eq!(
            judge(
                Tier::Cache,
                &file("/c/b", 2, NOW - 10, 1),
                DEV,
                &none,
                NOW,
                60
            ),
            Err(Skip::Recent)
        );
        assert_eq!(
            judge(
                Tier::Cache,
                &file("/c/f", 4, NOW + 99, 1),
                DEV,
                &none,
                NOW,
                0
            ),
            Err(Skip::Recent)
        );

        let mut link = file("/c/l", 3, 0, 1);
        link.kind = FileKind::Symlink;
        assert_eq!(
            judge(Tier::Cache, &link, DEV, &none, NOW, 60),
            Err(Skip::NotRegular)
        );
        link.kind = FileKind::File;
        link.links = 2;
        assert_eq!(
            judge(Tier::Cache, &link, DEV, &none, NOW, 60),
            Err(Skip::HardLinked)
        );

        assert_eq!(
            judge(Tier::Logs, &old, DEV, &none, NOW, 60),
            Err(Skip::NotRotated)
        );
        let rotated = file("/l/app.log.1", 5, 0, 1);
        assert_eq!(judge(Tier::Logs, &rotated, DEV, &none, NOW, 60), Ok(()));
    }

    #[test]
    fn rotated_log_names() {
        for yes in [
            "/l/syslog.1",
            "/l/app.stdout.12",
            "/l/kern.log.2.gz",
            "/l/x.old",
            "a.zst",
        ] {
            assert!(is_rotated_log(yes), "{yes}");
        }
        for no in ["/l/syslog", "/l/app.log", "/l/.1", "/l/x.", "/l/1"] {
            assert!(!is_rotated_log(no), "{no}");
        }
    }

    #[test]
    fn skip_summary_counts_everything() {
        let mut skips = Skips::default();
        (0..3).for_each(|_| skips.accept());
        skips.count(Skip::InUse);
        skips.count(Skip::Recent);
        skips.count(Skip::Recent);
        assert_eq!(
            skips.to_string(),
            "6 files, 1 skipped (open or mapped by a process), 2 skipped (too recent)"
        );
    }

    #[test]
    fn human_ages() {
        assert_eq!(human_age(90_000), "1d");
        assert_eq!(human_age(-5), "0s");
    }
}
