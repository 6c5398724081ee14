//! The executor: the one place where a plan becomes an effect.
//!
//! For a plan: every action must be of a kind the plugin declared and be
//! covered by a grant, or none of them runs. Then, for each action in order:
//! durable intent record, identity re-check against the world as it is now,
//! effect (or, in a dry-run, nothing), durable result record. A record that
//! cannot be written stops everything.

use crate::caps::{CapAction, Grants, HostEnv, Refusal};
use crate::contract::{Action, ActionResult, ActionStatus};
use crate::store::{Judged, Store, StoreError};
use crate::text::one_line;
use std::time::{Duration, Instant};

pub struct Executor<'a> {
    pub store: &'a Store,
    pub grants: &'a Grants,
    pub env: &'a HostEnv,
    /// Action kinds the plugin declared in `describe`.
    pub declared_kinds: &'a [String],
    /// For an approved run, the approved plan: nothing else may run.
    pub approved: Option<&'a [Action]>,
}

/// When any of `actions` may not run, what each gets instead: a denied one
/// its reason, the others `skipped`, since a plan runs whole or not at all.
/// `None` when every action may run. The executor records exactly this,
/// and a replay shows it, so the two cannot judge a plan differently.
pub fn refusals(
    actions: &[Action],
    grants: &Grants,
    env: &HostEnv,
    declared_kinds: &[String],
    approved: Option<&[Action]>,
) -> Option<Vec<(ActionStatus, String)>> {
    let denials: Vec<Option<String>> = actions
        .iter()
        .map(|action| denial(action, grants, env, declared_kinds, approved))
        .collect();
    let first = denials.iter().position(Option::is_some)?;
    let judged = denials.into_iter().map(|denial| match denial {
        Some(why) => (ActionStatus::Denied, why),
        None => (
            ActionStatus::Skipped,
            format!("not run: action {} of this plan was denied", first + 1),
        ),
    });
    Some(judged.collect())
}

/// Why `action` may not run at all, or `None` when it may: it must be in
/// the `approved` plan when there is one, of a kind the plugin declared,
/// and covered by `grants`.
fn denial(
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
        let refused = refusals(
            actions,
            self.grants,
            self.env,
            self.declared_kinds,
            self.approved,
        );
        if let Some(refused) = refused {
            let judged = refused.into_iter().map(|j| (j, Duration::ZERO)).collect();
            return self.record_unexecuted(run_id, round, actions, judged);
        }
        if dry_run {
            let judged = actions
                .iter()
                .map(|action| timed(|| self.perform(action, true)))
                .collect();
            return self.record_unexecuted(run_id, round, actions, judged);
        }
        actions
            .iter()
            .enumerate()
            .map(|(seq, action)| {
                self.record(run_id, round, seq, action, || self.perform(action, false))
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
        let ((status, detail), took) = timed(perform);
        self.store.record_result(id, status, &detail, took)?;
        Ok(action_result(run_id, round, seq, action, status, detail))
    }

    /// Actions nothing executes, with how each was judged: recorded in
    /// one commit, since no effect waits on any of their intents.
    fn record_unexecuted(
        &self,
        run_id: &str,
        round: u32,
        actions: &[Action],
        judged_as: Vec<((ActionStatus, String), Duration)>,
    ) -> Result<Vec<ActionResult>, StoreError> {
        let records: Vec<Judged<'_>> = actions
            .iter()
            .zip(&judged_as)
            .map(|(action, ((status, detail), took))| Judged {
                action,
                status: *status,
                detail,
                took: *took,
            })
            .collect();
        self.store.record_unexecuted(run_id, round, &records)?;
        let results = actions.iter().zip(judged_as).enumerate();
        Ok(results
            .map(|(seq, (action, ((status, detail), _)))| {
                action_result(run_id, round, seq, action, status, detail)
            })
            .collect())
    }
}

/// What `work` gave, and how long it took.
fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = work();
    (out, started.elapsed())
}

/// A recorded action's result, logged.
fn action_result(
    run_id: &str,
    round: u32,
    seq: usize,
    action: &Action,
    status: ActionStatus,
    detail: String,
) -> ActionResult {
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
    ActionResult {
        round,
        action: action.clone(),
        status,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Plan;

    /// The fuzz target `plans` starts from `fuzz/seeds/plans`: they must
    /// stay plans the engine accepts, one per group of action kinds, and
    /// the judgement on them holds a plan whole or not at all.
    #[test]
    fn the_fuzz_seeds_are_plans_the_engine_accepts_and_judges_whole() {
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/plans");
        let grants: Grants = toml::from_str(
            r#"
            fs_read = ["/data"]
            fs_remove = ["/data"]
            kube = ["read", "rollback"]
            kube_namespaces = ["shop"]
            "#,
        )
        .unwrap();
        let env = HostEnv::new(Default::default(), Default::default());
        let declared: Vec<String> = Action::KINDS.iter().map(|k| k.to_string()).collect();
        let mut kinds = std::collections::BTreeSet::new();
        for seed in std::fs::read_dir(seeds).unwrap() {
            let path = seed.unwrap().path();
            let plan: Plan = serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            crate::engine::limits::validate_plan(&plan).unwrap();
            kinds.extend(plan.actions.iter().map(Action::kind));
            if let Some(judged) = refusals(&plan.actions, &grants, &env, &declared, None) {
                assert_eq!(judged.len(), plan.actions.len());
                assert!(judged.iter().any(|(s, _)| *s == ActionStatus::Denied));
            }
        }
        assert_eq!(
            kinds.len(),
            Action::KINDS.len(),
            "every kind of action has a seed"
        );
    }
}
