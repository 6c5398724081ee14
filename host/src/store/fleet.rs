//! The fleet as the store sees it: each remedy process (a receiver, or an
//! agent on a node) announces itself with a heartbeat, and holds the runs
//! it executes under a lease it renews with that heartbeat. A run whose
//! lease ran out ends `interrupted`, never executed again; a run for a node
//! where no remedy has been heard from escalates instead of waiting forever.

use super::sql::args;
use super::{RunStatus, Store, StoreError, now_ms, rfc3339};
use std::time::Duration;

/// The channel a queued run wakes agents on (PostgreSQL's `NOTIFY`).
pub const QUEUE_CHANNEL: &str = "remedy_queue";

/// This process, as it announces itself.
#[derive(Clone, Debug)]
pub struct Member {
    pub node: String,
    /// `serve` (a receiver, which also executes) or `agent`.
    pub role: &'static str,
    pub version: String,
    /// The plugins it has loaded: name and sha256.
    pub plugins: Vec<(String, String)>,
}

/// A remedy process the store has heard from.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Seen {
    pub node: String,
    pub role: String,
    pub version: String,
    /// `pid:start@boot`, as runs name their owner.
    pub process: String,
    pub started_at: String,
    pub heartbeat_at: String,
    /// Milliseconds since its last heartbeat.
    pub silent_ms: u64,
    /// Heard from within the lease: it executes runs now.
    pub live: bool,
    /// Name to sha256.
    pub plugins: std::collections::BTreeMap<String, String>,
}

/// A queued run no live process could take, ended escalated.
#[derive(Clone, Debug)]
pub struct Unattended {
    pub run_id: String,
    pub plugin: String,
    pub route: String,
    pub reason: String,
    pub alert: crate::contract::Alert,
}

impl Store {
    /// Say this process is alive and renew the lease of every run it is
    /// executing, so they are not taken for abandoned.
    pub fn heartbeat(&self, me: &Member, lease: Duration) -> Result<(), StoreError> {
        let owner = crate::sys::this_process();
        let now = now_ms();
        let plugins = serde_json::to_string(&me.plugins).expect("pairs serialise");
        self.with(|c| {
            c.execute(
                "INSERT INTO agents (owner, node, role, version, started_ms, heartbeat_ms, plugins)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
                 ON CONFLICT (owner) DO UPDATE SET node = ?2, role = ?3, version = ?4,
                        heartbeat_ms = ?5, plugins = ?6",
                args![owner, me.node, me.role, me.version, now, plugins],
            )?;
            c.execute(
                "UPDATE runs SET lease_ms = ?2 WHERE owner = ?1 AND status = 'running'",
                args![owner, now + lease.as_millis() as i64],
            )?;
            Ok(())
        })
    }

    /// End as `interrupted` every running run whose lease ran out: the
    /// process executing it stopped renewing it (it died, or lost the
    /// store), so it is never executed again by anyone.
    pub fn expire_leases(&self) -> Result<Vec<String>, StoreError> {
        let expired: Vec<(String, Option<String>, Option<String>)> = self.with(|c| {
            c.query_map(
                "SELECT r.id, r.owner, a.node FROM runs r LEFT JOIN agents a ON a.owner = r.owner
                 WHERE r.status = 'running' AND r.lease_ms < ?1",
                args![now_ms()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })?;
        for (id, owner, node) in &expired {
            let who = match (node, owner) {
                (Some(node), Some(owner)) => format!("the remedy on {node} ({owner})"),
                (None, Some(owner)) => format!("the remedy process {owner}"),
                _ => "its remedy process".to_string(),
            };
            self.interrupt(
                id,
                &format!(
                    "{who} stopped renewing this run's lease while executing it; it was not \
                     executed again: check its actions and re-run by hand if needed"
                ),
            )?;
        }
        Ok(expired.into_iter().map(|(id, ..)| id).collect())
    }

    /// End as escalated the runs queued for a node longer than `wait`, or
    /// due there that long ago, while no remedy on that node was heard from
    /// within `lease`.
    pub fn escalate_unattended(
        &self,
        wait: Duration,
        lease: Duration,
    ) -> Result<Vec<Unattended>, StoreError> {
        let now = now_ms();
        let heard_since = now - lease.as_millis() as i64;
        let waiting = humantime::format_duration(Duration::from_secs(wait.as_secs()));
        const STRANDED: &str = "FROM runs r
             WHERE (status = 'queued' AND created_ms < ?1 OR status = 'waiting' AND due_ms < ?1)
               AND node IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM agents a
                                WHERE lower(a.node) = lower(r.node) AND a.heartbeat_ms >= ?2)";
        let since = now - wait.as_millis() as i64;
        // Looked at without the write lock first: almost always there are none.
        let any: bool = self.with(|c| {
            c.query_row(
                &format!("SELECT EXISTS (SELECT 1 {STRANDED})"),
                args![since, heard_since],
                |r| r.get(0),
            )
        })?;
        if !any {
            return Ok(Vec::new());
        }
        self.in_tx(|c| {
            let stranded: Vec<(String, String, Option<String>, String, String)> = c.query_map(
                &format!("SELECT id, plugin, route, node, alert {STRANDED}"),
                args![since, heard_since],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            let mut escalated = Vec::with_capacity(stranded.len());
            for (run_id, plugin, route, node, alert) in stranded {
                let reason = format!(
                    "no remedy on {node} has been heard from for {waiting} while this run \
                     waited for it: start `remedy agent` on {node}, or remediate by hand"
                );
                c.execute(
                    "UPDATE runs SET status = 'escalated', reason = ?2, finished_ms = ?3
                     WHERE id = ?1 AND status IN ('queued', 'waiting')",
                    args![run_id, reason, now],
                )?;
                super::audit::append_finished(c, &run_id, RunStatus::Escalated, &reason)?;
                escalated.push(Unattended {
                    alert: serde_json::from_str(&alert).map_err(|e| {
                        super::sql::DbError::Decode {
                            column: 4,
                            detail: e.to_string(),
                        }
                    })?,
                    run_id,
                    plugin,
                    route: route.unwrap_or_default(),
                    reason,
                });
            }
            Ok(escalated)
        })
    }

    /// Every remedy process heard from, by node; `live` against `lease`.
    pub fn members(&self, lease: Duration) -> Result<Vec<Seen>, StoreError> {
        let now = now_ms();
        let rows: Vec<(String, String, String, String, i64, i64, String)> = self.with(|c| {
            c.query_map(
                "SELECT node, role, version, owner, started_ms, heartbeat_ms, plugins
                 FROM agents ORDER BY node, heartbeat_ms DESC",
                &[],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(node, role, version, process, started, heartbeat, plugins)| {
                    let silent = (now - heartbeat).max(0) as u64;
                    let plugins: Vec<(String, String)> =
                        serde_json::from_str(&plugins).unwrap_or_default();
                    Seen {
                        node,
                        role,
                        version,
                        process,
                        started_at: rfc3339(started),
                        heartbeat_at: rfc3339(heartbeat),
                        silent_ms: silent,
                        live: silent <= lease.as_millis() as u64,
                        plugins: plugins.into_iter().collect(),
                    }
                },
            )
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::queue::tests::{alert, candidate, take};
    use super::super::{BlastRadius, Claim, ClaimRules, Incoming, each_backend};
    use super::*;
    use crate::contract::AlertStatus;

    /// Queue run `id`, to be applied on `node` by route `r`.
    fn queue_for(store: &Store, id: &str, node: Option<&str>) {
        let alert = alert(id, AlertStatus::Firing);
        let mut wanted = candidate(id, &alert, Duration::ZERO);
        wanted.run.node = node;
        wanted.run.dry_run = false;
        let batch = [Incoming::Firing {
            alert: &alert,
            candidates: vec![wanted],
        }];
        store.admit(&batch, 100).unwrap();
    }

    fn status(store: &Store, id: &str) -> (String, String) {
        let run = store.get_run(id).unwrap().summary;
        (
            run.status.as_str().to_string(),
            run.reason.unwrap_or_default(),
        )
    }

    fn member(node: &str) -> Member {
        Member {
            node: node.into(),
            role: "agent",
            version: "0".into(),
            plugins: vec![("p".into(), "00".into())],
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_run_whose_lease_ran_out_ends_interrupted_and_acts_no_more() {
        each_backend(|open| {
            let store = open();
            queue_for(&store, "renewed", Some("node-a"));
            queue_for(&store, "lost", Some("node-a"));
            let brief = ClaimRules {
                lease: Some(Duration::from_millis(200)),
                ..ClaimRules::default()
            };
            take(&store, "renewed", &brief).unwrap();
            take(&store, "lost", &brief).unwrap();
            // The heartbeat renews every run this process executes...
            store.heartbeat(&member("node-a"), HOUR).unwrap();
            // ...until it stops: here, a lease set back as if it had.
            store
                .with(|c| c.execute("UPDATE runs SET lease_ms = 1 WHERE id = 'lost'", &[]))
                .unwrap();
            assert_eq!(store.expire_leases().unwrap(), ["lost"]);
            let (ended, why) = status(&store, "lost");
            assert_eq!(ended, "interrupted");
            assert!(
                why.contains("the remedy on node-a") && why.contains("lease"),
                "{why}"
            );
            assert_eq!(status(&store, "renewed").0, "running");

            let action = crate::contract::Action::RemovePath(crate::contract::RemovePath {
                path: "/x".into(),
                identity: crate::contract::FileIdentity {
                    device: 1,
                    inode: 1,
                    size: 1,
                    mtime_ns: 1,
                },
                reason: "r".into(),
            });
            let refused = store.record_intent("lost", 0, 0, &action).unwrap_err();
            assert!(
                matches!(refused, StoreError::NotExecuting { ref status, .. } if status == "interrupted"),
                "{refused}"
            );
            // Nor a dry-run's round of them, recorded in one commit.
            let planned = [crate::store::Judged {
                action: &action,
                status: crate::contract::ActionStatus::Planned,
                detail: "would remove",
                took: Duration::ZERO,
            }];
            let refused = store.record_unexecuted("lost", 0, &planned).unwrap_err();
            assert!(
                matches!(refused, StoreError::NotExecuting { ref status, .. } if status == "interrupted"),
                "{refused}"
            );
            let recorded = |run: &str| -> i64 {
                store
                    .with(|c| {
                        c.query_row(
                            "SELECT count(*) FROM actions WHERE run_id = ?1",
                            args![run],
                            |r| r.get(0),
                        )
                    })
                    .unwrap()
            };
            assert_eq!(recorded("lost"), 0, "nothing of the lost run is recorded");
            store.record_unexecuted("renewed", 0, &planned).unwrap();
            store.record_intent("renewed", 0, 1, &action).unwrap();
            assert_eq!(recorded("renewed"), 2);
            assert!(store.verify_audit().unwrap().is_ok());
        });
    }

    #[test]
    fn a_run_for_a_node_no_remedy_is_heard_from_escalates_after_the_wait() {
        each_backend(|open| {
            let store = open();
            store.heartbeat(&member("node-live"), HOUR).unwrap();
            queue_for(&store, "orphan", Some("node-gone"));
            queue_for(&store, "served", Some("NODE-LIVE"));
            queue_for(&store, "anywhere", None);
            assert!(
                store.escalate_unattended(HOUR, HOUR).unwrap().is_empty(),
                "not before the wait"
            );
            let escalated = store.escalate_unattended(Duration::ZERO, HOUR).unwrap();
            let ids: Vec<&str> = escalated.iter().map(|u| u.run_id.as_str()).collect();
            assert_eq!(ids, ["orphan"]);
            let (ended, why) = status(&store, "orphan");
            assert_eq!(ended, "escalated");
            assert!(why.contains("no remedy on node-gone"), "{why}");
            assert_eq!(status(&store, "served").0, "queued");
            assert_eq!(status(&store, "anywhere").0, "queued");
            assert!(
                store
                    .escalate_unattended(Duration::ZERO, HOUR)
                    .unwrap()
                    .is_empty(),
                "escalated once"
            );

            let seen = store.members(HOUR).unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!((seen[0].node.as_str(), seen[0].live), ("node-live", true));
            assert_eq!(seen[0].plugins["p"], "00");
            std::thread::sleep(Duration::from_millis(20));
            let silent = store.members(Duration::from_millis(10)).unwrap();
            assert!(
                !silent[0].live,
                "not heard from within the lease: {silent:?}"
            );
        });
    }

    #[test]
    fn each_node_sees_its_own_runs_and_the_cluster_wide_ones() {
        each_backend(|open| {
            let store = open();
            queue_for(&store, "a", Some("node-a"));
            queue_for(&store, "b", Some("node-b"));
            queue_for(&store, "any", None);
            // Sorted: runs queued within one millisecond come in id order.
            let ids = |node| -> Vec<String> {
                let mut ids: Vec<String> = store
                    .queued(10, node)
                    .unwrap()
                    .into_iter()
                    .map(|q| q.id)
                    .collect();
                ids.sort();
                ids
            };
            assert_eq!(ids(Some("Node-A")), ["a", "any"]);
            assert_eq!(ids(Some("node-c")), ["any"]);
            assert_eq!(ids(None), ["a", "any", "b"]);
        });
    }

    #[test]
    fn the_blast_radius_holds_back_a_third_node_and_says_why() {
        each_backend(|open| {
            let store = open();
            for (id, node) in [("1", "n1"), ("2", "n2"), ("3", "n3"), ("1b", "n1")] {
                queue_for(&store, id, Some(node));
            }
            let two_at_once = ClaimRules {
                radius: BlastRadius {
                    max_nodes: Some(2),
                    per_window: None,
                },
                ..ClaimRules::default()
            };
            assert!(take(&store, "1", &two_at_once).is_some());
            assert!(take(&store, "2", &two_at_once).is_some());
            let held = store
                .claim("3", &two_at_once, |_| serde_json::json!({}))
                .unwrap();
            let Claim::Held(why) = held else {
                panic!("the third node is held back: {held:?}")
            };
            assert!(
                why.contains("2 other nodes") && why.contains("max_nodes is 2"),
                "{why}"
            );
            assert_eq!(status(&store, "3"), ("queued".into(), why));
            assert!(
                take(&store, "1b", &two_at_once).is_some(),
                "a node already executing the route is no new node"
            );

            store.finish_run("1", RunStatus::Succeeded, "done").unwrap();
            store
                .finish_run("1b", RunStatus::Succeeded, "done")
                .unwrap();
            let two_per_hour = ClaimRules {
                radius: BlastRadius {
                    max_nodes: Some(2),
                    per_window: Some((2, HOUR)),
                },
                ..ClaimRules::default()
            };
            let Claim::Held(why) = store
                .claim("3", &two_per_hour, |_| serde_json::json!({}))
                .unwrap()
            else {
                panic!("two nodes started within the hour")
            };
            assert!(why.contains("within 1h"), "{why}");
            assert!(
                take(&store, "3", &two_at_once).is_some(),
                "one node executes now"
            );
            assert_eq!(status(&store, "3").1, "", "the reason it waited is gone");
        });
    }
}
