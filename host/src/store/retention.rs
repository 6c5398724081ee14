//! Bounded history (`[store] retention`). Each kind of record goes once it
//! is older than its retention:
//!
//! - finished runs, with their rounds, actions and logs;
//! - the alerts log, and the dedup keys of alerts not seen since;
//! - the oldest part of the audit chain.
//!
//! The chain stays verifiable. In the same transaction as the cut, a
//! `pruned` record is appended. It carries the number and hash of the last
//! record removed, and `verify` starts from there. With a signing key the
//! `pruned` record is signed, so `verify --public-key` tells a prune by
//! remedy from a cut by someone who can write the database.
//!
//! Whatever the retention, a run remedy still decides from stays for
//! [`DECIDING`]: plugins see a day of past actions (`incident.recent`),
//! breakers count failed runs and the blast radius counts runs that were
//! not dry-runs. Only a finished dry-run that did not fail goes sooner.
//!
//! Each call removes at most [`BATCH`] rows of each kind, so no write
//! transaction holds the store for long; [`Pruned::more`] says whether to
//! call again.

use super::audit::{self, Anchor};
use super::sql::{Db, Result as DbResult, args};
use super::{RunStatus, Store, StoreError, checkpoint};
use ed25519_dalek::SigningKey;
use std::time::Duration;

/// Rows of one kind removed per call, at most.
pub const BATCH: i64 = 5_000;

/// How far back remedy's decisions look: a run that was not a dry-run, or
/// failed, is kept at least this long whatever `runs` says.
pub const DECIDING: Duration = Duration::from_secs(24 * 3600);

/// How long each kind of record is kept; `None` keeps it forever.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Retention {
    /// The alerts log, and the dedup keys of alerts not seen since.
    pub alerts: Option<Duration>,
    /// Finished runs, with their rounds, actions and logs.
    pub runs: Option<Duration>,
    /// Audit records.
    pub audit: Option<Duration>,
}

impl Retention {
    pub fn is_forever(&self) -> bool {
        *self == Retention::default()
    }
}

/// What one call removed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pruned {
    pub runs: u64,
    pub alerts: u64,
    pub deliveries: u64,
    pub audit: u64,
}

impl Pruned {
    /// A kind hit the batch limit: there may be more to remove.
    pub fn more(&self) -> bool {
        [self.runs, self.alerts, self.deliveries, self.audit]
            .iter()
            .any(|&n| n as i64 >= BATCH)
    }

    pub fn is_nothing(&self) -> bool {
        *self == Pruned::default()
    }
}

/// Statuses a run never leaves by itself: such a run is never pruned.
const OPEN: &str = "'queued', 'running', 'awaiting-approval', 'waiting'";

impl Store {
    /// Remove what `retention` no longer keeps, as of `now_ms`. An audit
    /// prune is signed with `key` when one is given.
    pub fn prune(
        &self,
        retention: &Retention,
        now_ms: i64,
        key: Option<&SigningKey>,
    ) -> Result<Pruned, StoreError> {
        let cutoff = |kept: Option<Duration>| kept.map(|d| now_ms - d.as_millis() as i64);
        let mut pruned = Pruned::default();
        if let Some(before) = cutoff(retention.runs) {
            let decided = before.min(now_ms - DECIDING.as_millis() as i64);
            pruned.runs = self.in_ordered_tx(|c| prune_runs(c, before, decided))?;
        }
        if let Some(before) = cutoff(retention.alerts) {
            (pruned.alerts, pruned.deliveries) = self.in_ordered_tx(|c| prune_alerts(c, before))?;
        }
        if let Some(before) = cutoff(retention.audit) {
            pruned.audit = self.in_ordered_tx(|c| prune_audit(c, before, key))?;
        }
        Ok(pruned)
    }
}

/// Finished runs older than `before`; one remedy still decides from only
/// once it is older than `decided` as well.
fn prune_runs(c: &mut dyn Db, before: i64, decided: i64) -> DbResult<u64> {
    let failures = RunStatus::failures_sql();
    let chosen = format!(
        "SELECT id FROM runs WHERE finished_ms < ?1 AND status NOT IN ({OPEN}) \
           AND (finished_ms < ?3 OR (dry_run = TRUE AND status NOT IN ({failures}))) \
         ORDER BY finished_ms, id LIMIT ?2"
    );
    for table in ["rounds", "actions", "logs"] {
        c.execute(
            &format!("DELETE FROM {table} WHERE run_id IN ({chosen})"),
            args![before, BATCH, decided],
        )?;
    }
    c.execute(
        &format!("DELETE FROM runs WHERE id IN ({chosen})"),
        args![before, BATCH, decided],
    )
}

/// Old alerts, and the dedup keys of alerts not received since `before`:
/// a key is what keeps a re-sent alert from running twice, and Alertmanager
/// re-sends a firing alert every `repeat_interval`, so the key of one still
/// firing stays. So does the key of a run still queued: its alert's
/// resolution finds the run through it.
fn prune_alerts(c: &mut dyn Db, before: i64) -> DbResult<(u64, u64)> {
    let deliveries = c.execute(
        "DELETE FROM deliveries WHERE (route, fingerprint, starts_at) IN (
           SELECT route, fingerprint, starts_at FROM deliveries d
           WHERE received_ms < ?1
             AND fingerprint NOT IN (SELECT fingerprint FROM alerts WHERE received_ms >= ?1)
             AND NOT EXISTS (SELECT 1 FROM runs WHERE id = d.run_id AND status = 'queued')
           LIMIT ?2)",
        args![before, BATCH],
    )?;
    let alerts = c.execute(
        "DELETE FROM alerts WHERE id IN (
           SELECT id FROM alerts WHERE received_ms < ?1 ORDER BY id LIMIT ?2)",
        args![before, BATCH],
    )?;
    Ok((alerts, deliveries))
}

/// Cut the chain's records older than `before`, never the newest one, and
/// anchor what is left with a `pruned` record.
fn prune_audit(c: &mut dyn Db, before: i64, key: Option<&SigningKey>) -> DbResult<u64> {
    let Some((head, _)) = audit::head(c)? else {
        return Ok(0);
    };
    let through: Option<i64> = c.query_row(
        "SELECT MAX(seq) FROM audit
         WHERE at_ms < ?1 AND seq < ?2 AND seq < (SELECT MIN(seq) FROM audit) + ?3",
        args![before, head, BATCH],
        |r| r.get(0),
    )?;
    let Some(through) = through else {
        return Ok(0);
    };
    let hash: String = c.query_row(
        "SELECT hash FROM audit WHERE seq = ?1",
        args![through],
        |r| r.get(0),
    )?;
    let removed = c.execute("DELETE FROM audit WHERE seq <= ?1", args![through])?;
    let anchor = Anchor { through, hash };
    audit::append(
        c,
        audit::PRUNED,
        None,
        &checkpoint::prune_body(&anchor, key),
    )?;
    Ok(removed)
}

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, more: Pruned) {
        self.runs += more.runs;
        self.alerts += more.alerts;
        self.deliveries += more.deliveries;
        self.audit += more.audit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::log::LogLine;
    use crate::contract::{Alert, AlertStatus};
    use crate::store::tests::{empty_plan, new_run};
    use crate::store::{NewRun, RunStatus, now_ms};
    use serde_json::json;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn count(store: &Store, sql: &str) -> i64 {
        store.with(|c| c.query_row(sql, &[], |r| r.get(0))).unwrap()
    }

    fn run(store: &Store, id: &str, finish: Option<RunStatus>) {
        run_as(store, id, true, finish)
    }

    fn run_as(store: &Store, id: &str, dry_run: bool, finish: Option<RunStatus>) {
        let alert = Alert {
            status: AlertStatus::Firing,
            labels: vec![],
            annotations: vec![],
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: None,
            fingerprint: "f".into(),
        };
        store
            .create_run(&NewRun {
                dry_run,
                ..new_run(id, &alert)
            })
            .unwrap();
        let plan = empty_plan("s");
        let line = LogLine {
            level: "info",
            message: "m".into(),
        };
        store
            .record_round(
                id,
                &crate::store::NewRound {
                    number: 0,
                    plan: &plan,
                    logs: &[line],
                    instantiate: Duration::ZERO,
                    planning: Duration::ZERO,
                },
                None,
            )
            .unwrap();
        if let Some(status) = finish {
            store.finish_run(id, status, "done").unwrap();
        }
    }

    fn runs_only(days: u64) -> Retention {
        Retention {
            runs: Some(DAY * days as u32),
            ..Retention::default()
        }
    }

    #[test]
    fn finished_runs_go_with_their_records_and_open_ones_stay() {
        super::super::each_backend(|open| {
            let store = open();
            run(&store, "old-done", Some(RunStatus::Succeeded));
            run(&store, "old-failed", Some(RunStatus::Failed));
            run(&store, "still-running", None);
            let later = now_ms() + 2 * DAY.as_millis() as i64;
            let kept = store.prune(&runs_only(3), later, None).unwrap();
            assert_eq!(kept, Pruned::default(), "younger than the retention");

            let pruned = store.prune(&runs_only(1), later, None).unwrap();
            assert_eq!(pruned.runs, 2);
            assert_eq!(count(&store, "SELECT COUNT(*) FROM runs"), 1);
            for table in ["rounds", "logs"] {
                let left = count(&store, &format!("SELECT COUNT(*) FROM {table}"));
                assert_eq!(left, 1, "{table}: only the running run's");
            }
            assert!(store.get_run("still-running").is_ok());
            assert!(
                store.verify_audit().unwrap().is_ok(),
                "runs go, their audit stays"
            );
        });
    }

    #[test]
    fn a_short_retention_keeps_the_runs_remedy_still_decides_from_for_a_day() {
        super::super::each_backend(|open| {
            let store = open();
            run_as(&store, "planned", true, Some(RunStatus::Succeeded));
            run_as(&store, "failed-plan", true, Some(RunStatus::Failed));
            run_as(&store, "acted", false, Some(RunStatus::Succeeded));
            let minutes = Retention {
                runs: Some(Duration::from_secs(60)),
                ..Retention::default()
            };
            let later = |ms: u128| now_ms() + ms as i64;
            let soon = store.prune(&minutes, later(120_000), None).unwrap();
            assert_eq!(soon.runs, 1, "only the dry-run that did not fail");
            assert!(store.get_run("planned").is_err());
            assert!(store.get_run("failed-plan").is_ok(), "breakers count it");
            assert!(store.get_run("acted").is_ok(), "plugins see it");
            let just_short = later(DECIDING.as_millis() - 60_000);
            assert!(
                store
                    .prune(&minutes, just_short, None)
                    .unwrap()
                    .is_nothing()
            );
            let past = later(DECIDING.as_millis() + 60_000);
            assert_eq!(store.prune(&minutes, past, None).unwrap().runs, 2);
        });
    }

    #[test]
    fn old_alerts_go_and_dedup_keys_stay_while_the_alert_is_still_sent() {
        super::super::each_backend(|open| {
            let store = open();
            let now = now_ms();
            let old = now - 3 * DAY.as_millis() as i64;
            store
                .with(|c| {
                    for (fingerprint, received) in [("gone", old), ("firing", old), ("firing", now)] {
                        c.execute(
                            "INSERT INTO alerts (received_ms, status, fingerprint, alert, outcome)
                             VALUES (?1, 'firing', ?2, '{}', 'queued')",
                            args![received, fingerprint],
                        )?;
                    }
                    for fingerprint in ["gone", "firing"] {
                        c.execute(
                            "INSERT INTO deliveries (route, fingerprint, starts_at, outcome, received_ms)
                             VALUES ('r', ?1, 'then', 'queued', ?2)",
                            args![fingerprint, old],
                        )?;
                    }
                    Ok(())
                })
                .unwrap();
            let retention = Retention {
                alerts: Some(DAY),
                ..Retention::default()
            };
            let pruned = store.prune(&retention, now, None).unwrap();
            assert_eq!((pruned.alerts, pruned.deliveries), (2, 1));
            let left: Vec<String> = store
                .with(|c| c.query_map("SELECT fingerprint FROM deliveries", &[], |r| r.get(0)))
                .unwrap();
            assert_eq!(
                left,
                vec!["firing".to_string()],
                "re-sent since: its key stays"
            );
        });
    }

    #[test]
    fn the_dedup_key_of_a_queued_run_stays_so_its_resolution_still_cancels_it() {
        use crate::store::queue::tests::{alert, cancelled_by_resolving, firing};
        super::super::each_backend(|open| {
            let store = open();
            let firing_alert = alert("f", AlertStatus::Firing);
            store.admit(&[firing(&firing_alert, "q", DAY)], 10).unwrap();
            let retention = Retention {
                alerts: Some(DAY),
                ..Retention::default()
            };
            let days_later = now_ms() + 3 * DAY.as_millis() as i64;
            let pruned = store.prune(&retention, days_later, None).unwrap();
            assert_eq!(
                (pruned.alerts, pruned.deliveries),
                (1, 0),
                "the alert's record goes, its key stays while its run is queued"
            );

            assert_eq!(cancelled_by_resolving(&store, "f"), ["q"]);
            let pruned = store.prune(&retention, days_later, None).unwrap();
            assert_eq!(pruned.deliveries, 1, "its run ended: the key goes");
        });
    }

    fn chain(store: &Store, records: usize) {
        for n in 0..records {
            store.audit("test", None, &json!({ "n": n })).unwrap();
        }
    }

    fn audit_only() -> Retention {
        Retention {
            audit: Some(Duration::from_secs(3600)),
            ..Retention::default()
        }
    }

    fn tomorrow() -> i64 {
        now_ms() + DAY.as_millis() as i64
    }

    #[test]
    fn a_pruned_chain_still_verifies_and_still_catches_edits() {
        super::super::each_backend(|open| {
            let store = open();
            chain(&store, 10);
            let pruned = store.prune(&audit_only(), tomorrow(), None).unwrap();
            assert_eq!(pruned.audit, 9, "all but the newest record");
            let intact = store.verify_audit().unwrap().unwrap();
            assert_eq!((intact.records, intact.pruned_through), (2, Some(9)));
            chain(&store, 3);
            assert!(store.verify_audit().unwrap().is_ok());

            store
                .with(|c| c.batch(r#"UPDATE audit SET body = '{"n":99}' WHERE seq = 12"#))
                .unwrap();
            let broken = store.verify_audit().unwrap().unwrap_err();
            assert_eq!(broken.seq, 12, "{broken}");

            let store = open();
            chain(&store, 10);
            store.prune(&audit_only(), tomorrow(), None).unwrap();
            store
                .with(|c| c.batch("DELETE FROM audit WHERE seq = 10"))
                .unwrap();
            let broken = store.verify_audit().unwrap().unwrap_err();
            assert_eq!(broken.seq, 10, "the first record after the cut: {broken}");
        });
    }

    #[test]
    fn only_a_signed_prune_passes_a_signed_verify() {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let (private, _) = crate::store::new_key_pair().unwrap();
        let key = SigningKey::from_pkcs8_pem(&private).unwrap();
        let public = key.verifying_key();
        super::super::each_backend(|open| {
            // remedy's own prune, signed, after a checkpoint it removes.
            let store = open();
            chain(&store, 5);
            store.checkpoint(&key).unwrap();
            chain(&store, 5);
            store.prune(&audit_only(), tomorrow(), Some(&key)).unwrap();
            store.checkpoint(&key).unwrap();
            let signed = store.verify_signed(&public).unwrap().unwrap();
            assert_eq!(signed.unsigned_tail, 0);

            // Someone who can write the database cuts the trail and anchors
            // it by hand: the hash chain holds, the signatures do not.
            let store = open();
            chain(&store, 5);
            store.checkpoint(&key).unwrap();
            chain(&store, 5);
            store
                .in_tx(|c| {
                    let (seq, hash): (i64, String) =
                        c.query_row("SELECT seq, hash FROM audit WHERE seq = 8", &[], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })?;
                    c.execute("DELETE FROM audit WHERE seq <= 8", &[])?;
                    let anchor = Anchor { through: seq, hash };
                    audit::append(
                        c,
                        audit::PRUNED,
                        None,
                        &checkpoint::prune_body(&anchor, None),
                    )
                })
                .unwrap();
            store.checkpoint(&key).unwrap();
            assert!(
                store.verify_audit().unwrap().is_ok(),
                "the plain chain cannot tell"
            );
            let broken = store.verify_signed(&public).unwrap().unwrap_err();
            assert!(broken.why.contains("no signature"), "{broken}");
        });
    }

    #[test]
    fn a_sqlite_store_reuses_what_pruning_frees() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let pages = |store: &Store| count(store, "PRAGMA page_count");
        let mut after_first = 0;
        for cycle in 0..4 {
            for n in 0..2_000 {
                store
                    .audit("test", None, &json!({ "n": n, "pad": "x".repeat(400) }))
                    .unwrap();
            }
            let retention = audit_only();
            while store.prune(&retention, tomorrow(), None).unwrap().more() {}
            if cycle == 0 {
                after_first = pages(&store);
            }
        }
        let after_last = pages(&store);
        assert!(
            after_last <= after_first + after_first / 10,
            "the file grew from {after_first} to {after_last} pages"
        );
    }
}
