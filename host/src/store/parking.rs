//! Runs that watch. A run whose plan asks to look again later is parked
//! between the two rounds: `waiting`, with the time its next round is due,
//! held by no process. Any worker resumes it when it is due, after a
//! restart of remedy too: a waiting run has nothing in flight, so nothing
//! of it can be half done.

use super::sql::args;
use super::{Store, StoreError, audit, now_ms, rfc3339};
use crate::contract::{ActionResult, ActionStatus};
use std::time::Duration;

impl Store {
    /// Park `run_id`, which this process executes, after round `round`;
    /// its next round is due in `due_in`.
    pub fn park(
        &self,
        run_id: &str,
        round: u32,
        due_in: Duration,
        summary: &str,
    ) -> Result<(), StoreError> {
        let owner = crate::sys::this_process();
        let due = now_ms() + due_in.as_millis() as i64;
        let body = serde_json::json!({ "round": round, "due": rfc3339(due), "summary": summary });
        let reason = format!("watching: {summary}; next round at {}", rfc3339(due));
        let parked = self.in_tx(|c| {
            let changed = c.execute(
                "UPDATE runs SET status = 'waiting', due_ms = ?2, reason = ?3, owner = NULL,
                        lease_ms = NULL
                 WHERE id = ?1 AND status = 'running' AND owner = ?4",
                args![run_id, due, reason, owner],
            )?;
            if changed == 0 {
                let status = c.query_row(
                    "SELECT status FROM runs WHERE id = ?1",
                    args![run_id],
                    |r| r.get::<String>(0),
                )?;
                return Ok(Err(status));
            }
            audit::append(c, "parked", Some(run_id), &body)?;
            Ok(Ok(()))
        })?;
        parked.map_err(|status| StoreError::not_executing(run_id, status))
    }

    /// What a resumed run's plugin is shown again: the results of its
    /// actions from round `from` on, in order, and the memo its last plan
    /// left.
    pub fn resume_state(
        &self,
        run_id: &str,
        from: u32,
    ) -> Result<(Vec<ActionResult>, Option<String>), StoreError> {
        let history = self
            .actions_of(run_id)?
            .into_iter()
            .filter(|record| record.round >= from)
            .filter_map(|record| {
                // An intent without a result never executed: it is no history.
                let status = ActionStatus::parse(&record.status)?;
                Some(ActionResult {
                    round: record.round,
                    action: record.action,
                    status,
                    detail: record.detail,
                })
            })
            .collect();
        let memo = self
            .rounds_of(run_id)?
            .pop()
            .and_then(|last| last.plan.memo);
        Ok((history, memo))
    }
}

#[cfg(test)]
mod tests {
    use crate::contract::AlertStatus;
    use crate::store::queue::tests::{BREAKER_NOTE, alert, firing, take, taken_under_open_breaker};
    use crate::store::{Admission, Claim, ClaimRules, RunStatus};
    use std::time::Duration;

    /// A parked run is out of the queue and held by nobody until it is
    /// due; then it is claimed again, resumed, not started, and audited so.
    #[test]
    fn a_parked_run_waits_unheld_and_resumes_when_due() {
        crate::store::each_backend(|open| {
            let store = open();
            let alert = alert("w", AlertStatus::Firing);
            let admitted = store
                .admit(&[firing(&alert, "w", Duration::ZERO)], 10)
                .unwrap();
            assert!(matches!(admitted[0][0], Admission::Queued { .. }));
            let rules = ClaimRules::default();
            assert!(take(&store, "w", &rules).is_some());

            // Long enough that a machine busy with other tests still checks
            // "not due yet" before it is.
            let due_in = Duration::from_millis(1500);
            store.park("w", 0, due_in, "restarted; confirming").unwrap();
            let run = store.get_run("w").unwrap().summary;
            assert_eq!(run.status, RunStatus::Waiting);
            let reason = run.reason.unwrap();
            assert!(
                reason.starts_with("watching: restarted; confirming; next round at "),
                "{reason}"
            );
            assert_eq!(
                store.queue_depth().unwrap(),
                0,
                "a waiting run is not queued"
            );
            assert!(store.queued(10, None).unwrap().is_empty(), "not due yet");
            let early = store.claim("w", &rules, |_| serde_json::json!({})).unwrap();
            assert!(matches!(early, Claim::Gone));
            assert!(
                store.interrupt_orphans().unwrap().is_empty(),
                "held by nobody"
            );
            // Parked twice is refused: it is no longer this process's.
            assert!(store.park("w", 0, Duration::ZERO, "again").is_err());

            std::thread::sleep(due_in + Duration::from_millis(100));
            let due: Vec<String> = store
                .queued(10, None)
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(due, ["w"]);
            let resumed = take(&store, "w", &rules).expect("a due run is claimed");
            assert!(resumed.resumed);
            assert_eq!(
                store.get_run("w").unwrap().summary.status,
                RunStatus::Running
            );
            let kinds: Vec<String> = store
                .audit_of_run("w")
                .unwrap()
                .into_iter()
                .map(|r| r.kind)
                .collect();
            assert_eq!(
                kinds[kinds.len() - 3..],
                ["run-started", "parked", "run-resumed"]
            );
            assert!(store.verify_audit().unwrap().is_ok());
        });
    }

    /// A run made a dry-run by an open breaker stays one when it resumes
    /// after the breaker shut, and its end still says why it only planned.
    #[test]
    fn a_run_made_a_dry_run_resumes_as_one_and_ends_saying_why() {
        crate::store::each_backend(|open| {
            let store = open();
            assert!(taken_under_open_breaker(&store, "w").dry_run);
            store.park("w", 0, Duration::ZERO, "rescan").unwrap();

            let resumed = take(&store, "w", &ClaimRules::default()).expect("due at once");
            assert!(resumed.resumed && resumed.dry_run, "{resumed:?}");
            let running = store.get_run("w").unwrap().summary.reason;
            assert_eq!(running.as_deref(), Some(BREAKER_NOTE));
            store
                .finish_run("w", RunStatus::Succeeded, "dry-run: 1 actions planned")
                .unwrap();
            assert_eq!(
                store.get_run("w").unwrap().summary.reason,
                Some(format!("{BREAKER_NOTE}; dry-run: 1 actions planned"))
            );
        });
    }
}
