//! The executor: the one place where a plan becomes an effect.
//!
//! For a plan: every action must be of a kind the plugin declared and be
//! covered by a grant, or none of them runs. Then, for each action in order:
//! durable intent record, identity re-check against the world as it is now,
//! effect (or, in a dry-run, nothing), durable result record. A record that
//! cannot be written stops everything.

use crate::caps::{CapAction, Grants, HostEnv, Refusal};
use crate::contract::{Action, ActionResult, ActionStatus};
use crate::store::{Store, StoreError};
use crate::text::one_line;
use std::time::Instant;

pub struct Executor<'a> {
    pub store: &'a Store,
    pub grants: &'a Grants,
    pub env: &'a HostEnv,
    /// Action kinds the plugin declared in `describe`.
    pub declared_kinds: &'a [String],
    /// For an approved run, the approved plan: nothing else may run.
    pub approved: Option<&'a [Action]>,
}

/// Why `action` may not run at all, or `None` when it may: it must be in
/// the `approved` plan when there is one, of a kind the plugin declared,
/// and covered by `grants`.
pub fn denial(
    action: &Action,
    grants: &Grants,
    env: &HostEnv,
    declared_kinds: &[String],
    approved: Option<&[Action]>,
) -> Option<String> {
    if let Some(approved) = approved
        && !approved.contains(action)
    {
        return Some(format!(
            "not in the approved plan (plan {}); approve a new plan for it",
            &crate::store::plan_hash(approved)[..16]
        ));
    }
    if !declared_kinds.iter().any(|k| k == action.kind()) {
        return Some(format!(
            "the plugin did not declare `{}` actions in describe()",
            action.kind()
        ));
    }
    CapAction::of(action).check_grant(grants, env).err()
}

impl Executor<'_> {
    /// Why `action` may not run at all, or `None` when it is granted.
    pub fn denial(&self, action: &Action) -> Option<String> {
        denial(
            action,
            self.grants,
            self.env,
            self.declared_kinds,
            self.approved,
        )
    }

    /// Re-check the target of a granted `action` and, unless `dry_run`, act.
    fn perform(&self, action: &Action, dry_run: bool) -> (ActionStatus, String) {
        let outcome = CapAction::of(action).perform(self.grants, self.env, dry_run);
        match outcome {
            Ok(detail) if dry_run => (ActionStatus::Planned, detail),
            Ok(detail) => (ActionStatus::Done, detail),
            Err(Refusal::Stale(why)) => (ActionStatus::Stale, why),
            Err(Refusal::Failed(why)) => (ActionStatus::Failed, why),
            Err(Refusal::Denied(why)) => (ActionStatus::Denied, why),
        }
    }

    /// Check, record and (unless `dry_run`) perform `actions`, in order.
    pub fn execute(
        &self,
        run_id: &str,
        round: u32,
        actions: &[Action],
        dry_run: bool,
    ) -> Result<Vec<ActionResult>, StoreError> {
        let denials: Vec<Option<String>> = actions.iter().map(|a| self.denial(a)).collect();
        if let Some(first) = denials.iter().position(Option::is_some) {
            return actions
                .iter()
                .zip(denials)
                .enumerate()
                .map(|(seq, (action, denial))| {
                    let (status, detail) = match denial {
                        Some(why) => (ActionStatus::Denied, why),
                        None => (
                            ActionStatus::Skipped,
                            format!("not run: action {} of this plan was denied", first + 1),
                        ),
                    };
                    self.record(run_id, round, seq, action, || (status, detail))
                })
                .collect();
        }

        actions
            .iter()
            .enumerate()
            .map(|(seq, action)| {
                self.record(run_id, round, seq, action, || self.perform(action, dry_run))
            })
            .collect()
    }

    /// Intent, then `perform`, then result: each durable before the next step.
    fn record(
        &self,
        run_id: &str,
        round: u32,
        seq: usize,
        action: &Action,
        perform: impl FnOnce() -> (ActionStatus, String),
    ) -> Result<ActionResult, StoreError> {
        let id = self
            .store
            .record_intent(run_id, round, seq as u32, action)?;
        let started = Instant::now();
        let (status, detail) = perform();
        self.store
            .record_result(id, status, &detail, started.elapsed())?;
        tracing::info!(
            run = run_id,
            round,
            seq,
            kind = action.kind(),
            target = %one_line(&action.target()),
            status = status.as_str(),
            detail = %one_line(&detail),
            "action"
        );
        Ok(ActionResult {
            round,
            action: action.clone(),
            status,
            detail,
        })
    }
}
