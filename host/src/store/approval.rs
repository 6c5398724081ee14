//! Approvals: a run in an `approve` route stops at `awaiting-approval` with
//! its plan and the plan's hash; approving queues it to execute exactly that
//! plan, within a time limit; rejecting closes it. Each step is audited.

use super::sql::args;
use super::{Store, StoreError, audit, now_ms, to_json};
use crate::contract::Action;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The hash operators see and approve: of the plan's actions, identities included.
pub fn plan_hash(actions: &[Action]) -> String {
    format!("{:x}", Sha256::digest(to_json(actions).as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no run {0}")]
    NotFound(String),
    #[error("run {id} is {status}, not awaiting approval")]
    NotAwaiting { id: String, status: String },
    #[error(
        "the approval of run {id} expired: it waited {waited}, longer than approval_ttl ({ttl}); \
         the run is cancelled, and a new alert or `remedy run` makes a fresh plan"
    )]
    Expired {
        id: String,
        waited: String,
        ttl: String,
    },
}

/// A plan waiting for a decision: what it would execute, its hash, and
/// since when it waits (the approval expires `approval_ttl` after).
#[derive(Debug)]
pub struct Awaiting {
    pub plan_hash: String,
    pub actions: Vec<Action>,
    pub since_ms: i64,
}

/// A run approved and queued, and the plan it may execute.
#[derive(Debug)]
pub struct Approved {
    pub id: String,
    pub plugin: String,
    pub plan_hash: String,
    pub actions: usize,
}

impl Store {
    /// The run `id` names; an unknown or ambiguous prefix is `NotFound`.
    fn resolve(&self, id: &str) -> Result<String, ApprovalError> {
        self.resolve_run(id).map_err(|e| match e {
            StoreError::UnknownRun(_) | StoreError::AmbiguousRun(_) => {
                ApprovalError::NotFound(id.into())
            }
            store => ApprovalError::Store(store),
        })
    }

    /// The plan run `id` waits to have approved; `None` once it waits no more.
    pub fn awaiting(&self, id: &str) -> Result<Option<Awaiting>, StoreError> {
        type Row = (String, Option<i64>, Option<String>, Option<String>);
        let row: Option<Row> = self.with(|c| {
            c.query_opt(
                "SELECT status, finished_ms, approval_hash, approval_plan FROM runs WHERE id = ?1",
                args![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
        })?;
        Ok(match row {
            Some((status, since, Some(hash), Some(plan))) if status == "awaiting-approval" => {
                Some(Awaiting {
                    plan_hash: hash,
                    actions: serde_json::from_str(&plan).unwrap_or_default(),
                    since_ms: since.unwrap_or(0),
                })
            }
            _ => None,
        })
    }

    /// Keep `actions` as the plan run `id` waits to have approved.
    pub fn request_approval(&self, id: &str, actions: &[Action]) -> Result<String, StoreError> {
        let hash = plan_hash(actions);
        self.in_tx(|c| {
            c.execute(
                "UPDATE runs SET approval_plan = ?2, approval_hash = ?3 WHERE id = ?1",
                args![id, to_json(actions), hash],
            )?;
            let body = serde_json::json!({ "plan_hash": hash, "actions": actions.len() });
            audit::append(c, "approval-requested", Some(id), &body)
        })?;
        Ok(hash)
    }

    /// Approve run `id` on behalf of `by`, unless it waited longer than `ttl`.
    pub fn approve(&self, id: &str, by: &str, ttl: Duration) -> Result<Approved, ApprovalError> {
        let id = self.resolve(id)?;
        let mut expired = None;
        let approved = self.in_tx(|tx| {
            let (status, since, hash, plan, plugin): (
                String,
                Option<i64>,
                Option<String>,
                Option<String>,
                String,
            ) = tx.query_row(
                "SELECT status, finished_ms, approval_hash, approval_plan, plugin
                 FROM runs WHERE id = ?1",
                args![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            if status != "awaiting-approval" {
                return Ok(Err(status));
            }
            let waited = Duration::from_millis((now_ms() - since.unwrap_or(0)).max(0) as u64);
            if waited > ttl {
                let why = format!("approval expired after {}", humantime::format_duration(ttl));
                tx.execute(
                    "UPDATE runs SET status = 'cancelled', reason = ?2, finished_ms = ?3 WHERE id = ?1",
                    args![id, why, now_ms()],
                )?;
                let body = serde_json::json!({ "by": by, "waited_ms": waited.as_millis() as u64 });
                audit::append(tx, "approval-expired", Some(&id), &body)?;
                expired = Some(waited);
                return Ok(Err(status));
            }
            let hash = hash.unwrap_or_default();
            // Approved, it executes: a breaker open when it was planned
            // no longer makes it a dry-run, and one still open when it is
            // taken makes it one again.
            tx.execute(
                "UPDATE runs SET status = 'queued', dry_run = FALSE, approval = FALSE, owner = NULL,
                        finished_ms = NULL, approved_by = ?2, approved_ms = ?3,
                        forced_dry_run = NULL, reason = 'approved by ' || ?2
                 WHERE id = ?1",
                args![id, by, now_ms()],
            )?;
            let actions = plan
                .and_then(|p| serde_json::from_str::<Vec<Action>>(&p).ok())
                .map_or(0, |a| a.len());
            let body = serde_json::json!({ "by": by, "plan_hash": hash });
            audit::append(tx, "approved", Some(&id), &body)?;
            tx.notify(super::QUEUE_CHANNEL)?;
            Ok(Ok(Approved {
                id: id.clone(),
                plugin,
                plan_hash: hash,
                actions,
            }))
        })?;
        match (approved, expired) {
            (_, Some(waited)) => Err(ApprovalError::Expired {
                id,
                waited: humantime::format_duration(Duration::from_secs(waited.as_secs()))
                    .to_string(),
                ttl: humantime::format_duration(ttl).to_string(),
            }),
            (Ok(approved), None) => Ok(approved),
            (Err(status), None) => Err(ApprovalError::NotAwaiting { id, status }),
        }
    }

    /// Close run `id` without executing anything.
    pub fn reject(&self, id: &str, by: &str, why: &str) -> Result<(), ApprovalError> {
        let id = self.resolve(id)?;
        let closed = self.in_tx(|c| {
            let changed = c.execute(
                "UPDATE runs SET status = 'cancelled', reason = ?2, finished_ms = ?3
                 WHERE id = ?1 AND status = 'awaiting-approval'",
                args![id, format!("rejected by {by}: {why}"), now_ms()],
            )?;
            if changed == 1 {
                let body = serde_json::json!({ "by": by, "why": why });
                audit::append(c, "rejected", Some(&id), &body)?;
            }
            Ok(changed == 1)
        })?;
        if closed {
            return Ok(());
        }
        let status = self.with(|c| {
            c.query_opt("SELECT status FROM runs WHERE id = ?1", args![id], |r| {
                r.get(0)
            })
        })?;
        Err(ApprovalError::NotAwaiting {
            id,
            status: status.unwrap_or_default(),
        })
    }

    /// The round number the next round of run `id` is recorded under.
    pub fn next_round(&self, id: &str) -> Result<u32, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(round) + 1, 0) FROM rounds WHERE run_id = ?1",
                args![id],
                |r| r.get(0),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::queue::tests::{take, taken_under_open_breaker};
    use crate::store::{ClaimRules, RunStatus};
    use std::time::Duration;

    /// A plan made while the route's breaker was open, then approved after
    /// it shut, executes: the approved run is no dry-run, and its end does
    /// not blame a breaker.
    #[test]
    fn an_approved_run_is_no_dry_run_for_a_breaker_shut_since() {
        crate::store::each_backend(|open| {
            let store = open();
            assert!(taken_under_open_breaker(&store, "a").dry_run);
            store.request_approval("a", &[]).unwrap();
            store
                .finish_run("a", RunStatus::AwaitingApproval, "awaiting approval")
                .unwrap();
            store.approve("a", "ops", Duration::from_secs(60)).unwrap();

            let approved = take(&store, "a", &ClaimRules::default()).unwrap();
            assert!(!approved.dry_run, "the approved run executes");
            store
                .finish_run("a", RunStatus::Succeeded, "1 action executed")
                .unwrap();
            assert_eq!(
                store.get_run("a").unwrap().summary.reason.as_deref(),
                Some("1 action executed")
            );
        });
    }
}
