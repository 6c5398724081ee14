//! The decisions, apart from the host calls, so they can be tested natively.

use crate::scan::Scan;

pub struct Limits {
    /// Empty namespaces the orchestrator keeps on purpose while it runs.
    pub pool_size: usize,
    /// Escalate when more than this many unused namespaces exceed the pool.
    pub leak_threshold: usize,
    /// At most this many deletions per round.
    pub max_deletes: usize,
}

#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Nothing to collect; the reason, for the summary.
    Nothing(String),
    Escalate(String),
    /// Look again after the rescan interval before doing anything.
    Watch(String),
    /// Signal these orphans (pids), then delete these slots. `rescan` asks for
    /// another look: something seen only once, or freed by the signals, is left.
    Act {
        signals: Vec<u32>,
        deletes: Vec<u32>,
        rescan: bool,
    },
}

/// Unused namespaces beyond the pool while the orchestrator runs.
pub fn estimated_leak(scan: &Scan, limits: &Limits) -> usize {
    scan.unused.len().saturating_sub(limits.pool_size)
}

/// What to do given this scan, the previous one (if it was made with the
/// orchestrator in the same state) and the orphans this run already signalled.
pub fn decide(
    now: &Scan,
    before: Option<&Scan>,
    signalled: &[(u32, u64)],
    limits: &Limits,
) -> Decision {
    if let Some((pid, _)) = signalled
        .iter()
        .find(|(pid, start)| now.orphans.get(pid) == Some(start))
    {
        return Decision::Escalate(format!(
            "orphaned firecracker pid {pid} still runs after it was signalled; look at it by hand"
        ));
    }
    let leak = estimated_leak(now, limits);
    let leaking = now.online && leak > limits.leak_threshold;
    let leak_report = || {
        format!(
            "the orchestrator runs with {} unused namespaces, {leak} more than its pool of {}; \
             remedy deletes namespaces only while it is stopped",
            now.unused.len(),
            limits.pool_size
        )
    };

    // Both scans must agree on whether the orchestrator ran: it may have
    // (re)started in between, and then nothing seen before still holds.
    let Some(before) = before.filter(|b| b.online == now.online) else {
        return if now.orphans.is_empty() && (now.online || now.unused.is_empty()) {
            if leaking {
                Decision::Escalate(leak_report())
            } else {
                Decision::Nothing(nothing(now, leak))
            }
        } else {
            let mut seen = Vec::new();
            if !now.online && !now.unused.is_empty() {
                seen.push(format!("{} unused namespaces", now.unused.len()));
            }
            if !now.orphans.is_empty() {
                seen.push(format!(
                    "{} orphaned firecracker processes",
                    now.orphans.len()
                ));
            }
            Decision::Watch(format!("{} on the first scan", seen.join(" and ")))
        };
    };

    let signals: Vec<u32> = now
        .orphans
        .iter()
        .filter(|(pid, start)| before.orphans.get(pid) == Some(start))
        .map(|(pid, _)| *pid)
        .collect();
    let confirmed: Vec<u32> = if now.online {
        Vec::new()
    } else {
        now.unused
            .iter()
            .filter(|(slot, inode)| before.unused.get(slot) == Some(inode))
            .map(|(slot, _)| *slot)
            .collect()
    };
    let unconfirmed_orphans = now.orphans.len() > signals.len();
    let unconfirmed_namespaces = !now.online && now.unused.len() > confirmed.len();
    let deletes: Vec<u32> = confirmed.iter().take(limits.max_deletes).copied().collect();
    let rescan = !signals.is_empty()
        || unconfirmed_orphans
        || unconfirmed_namespaces
        || deletes.len() < confirmed.len();

    if !signals.is_empty() || !deletes.is_empty() {
        Decision::Act {
            signals,
            deletes,
            rescan,
        }
    } else if leaking {
        Decision::Escalate(leak_report())
    } else if rescan {
        Decision::Watch("what was seen on the last scan changed".into())
    } else {
        Decision::Nothing(nothing(now, leak))
    }
}

fn nothing(scan: &Scan, leak: usize) -> String {
    if scan.online {
        format!(
            "the orchestrator runs; {} unused namespaces are its pool (estimated leak {leak}); nothing to collect",
            scan.unused.len()
        )
    } else {
        "no unused orchestrator namespaces and no orphaned firecracker processes".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        pool_size: 2,
        leak_threshold: 1,
        max_deletes: 10,
    };

    fn scan(online: bool, unused: &[(u32, u64)], orphans: &[(u32, u64)]) -> Scan {
        Scan {
            online,
            unused: unused.iter().copied().collect(),
            in_use: 0,
            orphans: orphans.iter().copied().collect(),
        }
    }

    #[test]
    fn offline_deletes_only_what_two_scans_saw_unused_with_the_same_inode() {
        let first = scan(false, &[(1, 100), (2, 200), (3, 300)], &[]);
        assert!(matches!(
            decide(&first, None, &[], &LIMITS),
            Decision::Watch(_)
        ));
        // 2 was re-created (new inode); 4 is new; 3 got a user.
        let second = scan(false, &[(1, 100), (2, 201), (4, 400)], &[]);
        assert_eq!(
            decide(&second, Some(&first), &[], &LIMITS),
            Decision::Act {
                signals: vec![],
                deletes: vec![1],
                rescan: true
            }
        );
        let settled = scan(false, &[(1, 100)], &[]);
        assert_eq!(
            decide(&settled, Some(&settled.clone()), &[], &LIMITS),
            Decision::Act {
                signals: vec![],
                deletes: vec![1],
                rescan: false
            }
        );
    }

    #[test]
    fn online_never_deletes_and_escalates_a_leak_past_the_threshold() {
        let pool = scan(true, &[(1, 1), (2, 2), (3, 3)], &[]);
        assert!(matches!(
            decide(&pool, None, &[], &LIMITS),
            Decision::Nothing(_)
        ));
        let leaking = scan(true, &[(1, 1), (2, 2), (3, 3), (4, 4)], &[]);
        let Decision::Escalate(why) = decide(&leaking, None, &[], &LIMITS) else {
            panic!("a leak of 2 over a threshold of 1 escalates");
        };
        assert!(
            why.contains("4 unused") && why.contains("2 more than its pool of 2"),
            "{why}"
        );
        assert!(matches!(
            decide(&leaking, Some(&leaking.clone()), &[], &LIMITS),
            Decision::Escalate(_)
        ));
    }

    #[test]
    fn a_change_of_orchestrator_state_between_scans_starts_over() {
        let offline = scan(false, &[(1, 100)], &[]);
        let online = scan(true, &[(1, 100)], &[]);
        assert!(matches!(
            decide(&online, Some(&offline), &[], &LIMITS),
            Decision::Nothing(_)
        ));
        assert!(matches!(
            decide(&offline, Some(&online), &[], &LIMITS),
            Decision::Watch(_)
        ));
    }

    #[test]
    fn orphans_are_signalled_once_seen_twice_and_escalated_if_they_survive() {
        let first = scan(true, &[], &[(50, 7)]);
        assert!(matches!(
            decide(&first, None, &[], &LIMITS),
            Decision::Watch(_)
        ));
        // Pid 50 was reused by another process: not the orphan seen before.
        let reused = scan(true, &[], &[(50, 8)]);
        assert!(matches!(
            decide(&reused, Some(&first), &[], &LIMITS),
            Decision::Watch(_)
        ));
        assert_eq!(
            decide(&first, Some(&first.clone()), &[], &LIMITS),
            Decision::Act {
                signals: vec![50],
                deletes: vec![],
                rescan: true
            }
        );
        assert!(matches!(
            decide(&first, Some(&first.clone()), &[(50, 7)], &LIMITS),
            Decision::Escalate(_)
        ));
    }

    #[test]
    fn deletions_are_capped_per_round_and_the_rest_rescanned() {
        let many: Vec<(u32, u64)> = (1..=15).map(|n| (n, u64::from(n) * 10)).collect();
        let both = scan(false, &many, &[]);
        let Decision::Act {
            deletes, rescan, ..
        } = decide(&both, Some(&both.clone()), &[], &LIMITS)
        else {
            panic!("confirmed namespaces are deleted");
        };
        assert_eq!(deletes, (1..=10).collect::<Vec<u32>>());
        assert!(rescan);
    }
}
