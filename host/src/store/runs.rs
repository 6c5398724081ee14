//! Writing a run's records as it goes: its creation, each round's plan,
//! each action's intent and result, its log lines and its end. Each write
//! is committed with its audit record before it returns; those remedy acts
//! on next (an intent, a run's end, a result) are on disk by then.

use super::sql::{Db, Result as DbResult, args};
use super::{
    Commit, NewRun, OpenedBreaker, RunStatus, Store, StoreError, audit, breakers, now_ms, queue,
    to_json,
};
use crate::caps::log::LogLine;
use crate::contract::{Action, ActionStatus, Plan};
use queue::RunPlacement;
use std::time::Duration;

impl Store {
    /// Record a run this process starts right away.
    pub fn create_run(&self, run: &NewRun<'_>) -> Result<(), StoreError> {
        self.in_tx(|c| {
            let mut chain = super::audit::Chain::open(c)?;
            queue::insert_run(
                c,
                &mut chain,
                run,
                RunStatus::Running,
                &RunPlacement::default(),
            )?;
            chain.close(c)
        })
    }

    /// A round's plan with the plugin's log lines of that round, in one
    /// transaction; with `ending`, the run's end as well, when the plan
    /// itself settles the run (it costs no commit of its own then).
    pub fn record_round(
        &self,
        run_id: &str,
        round: &NewRound<'_>,
        ending: Option<(RunStatus, &str)>,
    ) -> Result<(), StoreError> {
        let json = to_json(round.plan);
        // Intents or the next round follow an open plan; a settled one is told.
        let commit = match ending {
            Some(_) => Commit::Durable,
            None => Commit::Ordered,
        };
        let opened = self.commit(commit, |c| {
            insert_logs(c, run_id, round.number, round.logs)?;
            c.execute(
                "INSERT INTO rounds (run_id, round, plan, instantiate_us, plan_us)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                args![
                    run_id,
                    round.number,
                    json,
                    round.instantiate.as_micros() as u64,
                    round.planning.as_micros() as u64
                ],
            )?;
            let plan = crate::json::plan(round.plan);
            let body = serde_json::json!({ "round": round.number, "plan": plan });
            audit::append(c, "plan", Some(run_id), &body)?;
            match ending {
                Some((status, reason)) => self.finish(c, run_id, status, reason),
                None => Ok(None),
            }
        })?;
        self.opened_breaker(opened);
        Ok(())
    }

    /// Record that `action` is about to be executed (or planned); returns its record id.
    pub fn record_intent(
        &self,
        run_id: &str,
        round: u32,
        seq: u32,
        action: &Action,
    ) -> Result<i64, StoreError> {
        let owner = crate::sys::this_process();
        let recorded = self.in_tx(|c| match still_owned(c, run_id, &owner)? {
            Ok(()) => intent(c, run_id, round, seq, action).map(Ok),
            Err(status) => Ok(Err(status)),
        })?;
        recorded.map_err(|status| StoreError::not_executing(run_id, status))
    }

    /// The intents and results of a round's actions that nothing executes
    /// (a dry-run's, or a plan refused whole), in one transaction: with no
    /// effect to come, no intent has to be durable before the next step.
    pub fn record_unexecuted(
        &self,
        run_id: &str,
        round: u32,
        judged: &[Judged<'_>],
    ) -> Result<(), StoreError> {
        let owner = crate::sys::this_process();
        let recorded = self.in_ordered_tx(|c| {
            if let Err(status) = still_owned(c, run_id, &owner)? {
                return Ok(Err(status));
            }
            for (seq, one) in judged.iter().enumerate() {
                let id = intent(c, run_id, round, seq as u32, one.action)?;
                result(c, id, one.status, one.detail, one.took)?;
            }
            Ok(Ok(()))
        })?;
        recorded.map_err(|status| StoreError::not_executing(run_id, status))
    }

    /// Actions runs of `plugin` executed within `window`, newest first, at
    /// most `limit`: what a plugin is shown to keep it from flapping.
    pub fn recent_actions(
        &self,
        plugin: &str,
        window: Duration,
        limit: usize,
    ) -> Result<Vec<crate::contract::PastAction>, StoreError> {
        let now = now_ms();
        let since = now - window.as_millis() as i64;
        self.with(|c| {
            let rows = c.query_map(RECENT_ACTIONS, args![plugin, since, limit], |row| {
                Ok((
                    row.get::<String>(0)?,
                    row.get::<i64>(1)?,
                    row.get::<String>(2)?,
                ))
            })?;
            let mut recent = Vec::new();
            for (run_id, at, json) in rows {
                // A record from another contract version is skipped, not fatal.
                if let Ok(action) = serde_json::from_str(&json) {
                    recent.push(crate::contract::PastAction {
                        run_id,
                        age_secs: ((now - at).max(0) / 1000) as u64,
                        action,
                    });
                }
            }
            Ok(recent)
        })
    }

    pub fn record_result(
        &self,
        action_id: i64,
        status: ActionStatus,
        detail: &str,
        took: Duration,
    ) -> Result<(), StoreError> {
        self.in_tx(|c| result(c, action_id, status, detail, took))
    }

    /// The params a run used, where the plugin took some from elsewhere
    /// (`changed`): the run's record is updated and the change audited.
    pub fn record_params_used(
        &self,
        run_id: &str,
        params: &[(String, String)],
        changed: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.in_ordered_tx(|c| {
            c.execute(
                "UPDATE runs SET params = ?2 WHERE id = ?1",
                args![run_id, to_json(&params)],
            )?;
            audit::append(
                c,
                "params-used",
                Some(run_id),
                &serde_json::json!({ "params": changed }),
            )
        })
    }

    /// The log lines of a round that made no plan.
    pub fn record_logs(
        &self,
        run_id: &str,
        round: u32,
        lines: &[LogLine],
    ) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        self.in_ordered_tx(|c| insert_logs(c, run_id, round, lines))
    }

    pub fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        reason: &str,
    ) -> Result<(), StoreError> {
        let opened = self.in_tx(|c| self.finish(c, run_id, status, reason))?;
        self.opened_breaker(opened);
        Ok(())
    }

    /// Record the run's end, audited. A failure opens its route's breaker
    /// here, in the same transaction, when the route's rule says so.
    fn finish(
        &self,
        c: &mut dyn Db,
        run_id: &str,
        status: RunStatus,
        reason: &str,
    ) -> DbResult<Option<OpenedBreaker>> {
        let route: Option<Option<String>> = c.query_opt(
            // Why it was made a dry-run (an open circuit breaker) is kept in front.
            "UPDATE runs SET status = ?2, reason = COALESCE(forced_dry_run || '; ', '') || ?3,
                    finished_ms = ?4
             WHERE id = ?1 RETURNING route",
            args![run_id, status.as_str(), reason, now_ms()],
            |r| r.get(0),
        )?;
        // A run held back by its route's blast radius may go now.
        c.notify(super::QUEUE_CHANNEL)?;
        audit::append_finished(c, run_id, status, reason)?;
        let Some(route) = route.flatten().filter(|_| status.is_failure()) else {
            return Ok(None);
        };
        match self.breaker_rule(&route) {
            Some(rule) => breakers::trip_if_due(c, &route, rule),
            None => Ok(None),
        }
    }
}

/// The done actions of runs of plugin `?1` since `?2` (ms), newest first,
/// at most `?3`: read through the index of done actions alone (V9).
pub(super) const RECENT_ACTIONS: &str =
    "SELECT a.run_id, a.intent_ms, a.action FROM actions a JOIN runs r ON r.id = a.run_id
     WHERE r.plugin = ?1 AND a.status = 'done' AND a.intent_ms >= ?2
     ORDER BY a.intent_ms DESC, a.id DESC LIMIT ?3";

/// An action of a round as judged, without executing it.
pub struct Judged<'a> {
    pub action: &'a Action,
    pub status: ActionStatus,
    pub detail: &'a str,
    pub took: Duration,
}

/// Whether the run is still `owner`'s to execute, or its status: a run
/// whose lease ran out was ended `interrupted` by another process, and not
/// one more action of it may be recorded.
fn still_owned(c: &mut dyn Db, run_id: &str, owner: &str) -> DbResult<Result<(), String>> {
    let (status, holder): (String, Option<String>) = c.query_row(
        "SELECT status, owner FROM runs WHERE id = ?1",
        args![run_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    match status == "running" && holder.as_deref() == Some(owner) {
        true => Ok(Ok(())),
        false => Ok(Err(status)),
    }
}

/// The intent of `action`, seq `seq` of round `round`: its record id.
fn intent(c: &mut dyn Db, run_id: &str, round: u32, seq: u32, action: &Action) -> DbResult<i64> {
    let id: i64 = c.query_row(
        "INSERT INTO actions (run_id, round, seq, kind, action, status, intent_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 'intent', ?6) RETURNING id",
        args![run_id, round, seq, action.kind(), to_json(action), now_ms()],
        |r| r.get(0),
    )?;
    let body = serde_json::json!({
        "action_id": id,
        "round": round,
        "seq": seq,
        "action": crate::json::action(action),
    });
    audit::append(c, "intent", Some(run_id), &body)?;
    Ok(id)
}

fn result(
    c: &mut dyn Db,
    action_id: i64,
    status: ActionStatus,
    detail: &str,
    took: Duration,
) -> DbResult<()> {
    let run_id: String = c.query_row(
        "UPDATE actions SET status = ?2, detail = ?3, duration_us = ?4 WHERE id = ?1
         RETURNING run_id",
        args![action_id, status.as_str(), detail, took.as_micros() as u64],
        |row| row.get(0),
    )?;
    let body =
        serde_json::json!({ "action_id": action_id, "status": status.as_str(), "detail": detail });
    audit::append(c, "result", Some(&run_id), &body)
}

/// A round as recorded: its number, plan and logs, and how long the
/// plugin took to start and to plan.
pub struct NewRound<'a> {
    pub number: u32,
    pub plan: &'a Plan,
    pub logs: &'a [LogLine],
    pub instantiate: Duration,
    pub planning: Duration,
}

fn insert_logs(c: &mut dyn Db, run_id: &str, round: u32, lines: &[LogLine]) -> DbResult<()> {
    for (seq, line) in lines.iter().enumerate() {
        c.execute(
            "INSERT INTO logs (run_id, round, seq, level, message) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![run_id, round, seq, line.level, line.message],
        )?;
    }
    Ok(())
}
