//! One remediation run: the plugin plans, the executor carries the plan out,
//! and the plugin is asked again with what happened, until it has nothing left
//! to do, escalates, fails, or reaches the round limit. Every step is recorded.

use crate::caps::log::LogLine;
use crate::contract::{Action, ActionResult, ActionStatus, Alert, Incident, Plan};
use crate::engine::{Call, Failure, LoadedPlugin, PluginEngine};
use crate::executor::Executor;
use crate::store::{NewRun, RunStatus, Store, StoreError};
use std::collections::BTreeMap;
use std::time::Duration;

/// How far back, and how many, earlier actions a plugin is shown.
const RECENT_WINDOW: Duration = Duration::from_secs(24 * 3600);
const RECENT_LIMIT: usize = 100;
/// Tracing target for what an operator watching a run by hand should see.
pub const PROGRESS: &str = "remedy::progress";
/// The longest a run waits between rounds when a plan asks for a recheck.
const MAX_RECHECK_WAIT: Duration = Duration::from_secs(600);

pub struct RunRequest<'a> {
    pub plugin: &'a LoadedPlugin,
    pub alert: Alert,
    /// Complete params: see [`resolve_params`].
    pub params: Vec<(String, String)>,
    pub dry_run: bool,
    /// Plan only and end `awaiting-approval` (an `approve` route); implies `dry_run`.
    pub approval: bool,
    /// An approved run: only these actions may execute, in any round.
    pub approved: Option<Vec<Action>>,
    pub max_rounds: u32,
}

#[derive(Debug)]
pub struct RoundReport {
    pub round: u32,
    /// `None` when the plugin failed to produce one.
    pub plan: Option<Plan>,
    pub results: Vec<ActionResult>,
    pub logs: Vec<LogLine>,
    pub instantiate: Duration,
    pub planning: Duration,
    /// Time the executor spent on this round's actions.
    pub executing: Duration,
}

#[derive(Debug)]
pub struct RunReport {
    pub id: String,
    pub status: RunStatus,
    pub reason: String,
    pub dry_run: bool,
    pub rounds: Vec<RoundReport>,
}

/// The state store failed; the run stopped there and executed nothing more.
#[derive(Debug, thiserror::Error)]
#[error(
    "run {run_id} stopped because the state store cannot be written, so nothing more was executed: {source}"
)]
pub struct RunAborted {
    pub run_id: String,
    pub source: StoreError,
    pub rounds: Vec<RoundReport>,
}

/// The plugin's declared defaults, overridden by `configured`, overridden by
/// `given`. A name the plugin does not declare is an error naming it.
pub fn resolve_params(
    plugin: &LoadedPlugin,
    configured: &BTreeMap<String, String>,
    given: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, String> {
    let declared = &plugin.info.params;
    for name in configured.keys().chain(given.keys()) {
        if !declared.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "plugin `{}` has no param `{name}`; it takes: {}",
                plugin.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    Ok(declared
        .iter()
        .filter_map(|p| {
            let value = given
                .get(&p.name)
                .or(configured.get(&p.name))
                .cloned()
                .or(p.default.clone())?;
            Some((p.name.clone(), value))
        })
        .collect())
}

pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Record a run of `request` started by hand and run it to its end.
/// Only a failing state store cuts it short.
pub fn run(
    engine: &PluginEngine,
    store: &Store,
    request: RunRequest<'_>,
) -> Result<RunReport, Box<RunAborted>> {
    let id = new_run_id();
    let plugin = request.plugin;
    let created = store.create_run(&NewRun {
        id: &id,
        plugin: &plugin.name,
        plugin_version: &plugin.info.version,
        plugin_sha256: &plugin.sha256,
        trigger: "cli",
        route: None,
        dry_run: request.dry_run,
        alert: &request.alert,
        params: &request.params,
    });
    let _span = tracing::info_span!("run", run = %id).entered();
    let started = started_record(
        Some(plugin),
        &plugin.name,
        request.dry_run || request.approval,
        request.approval,
        request.approved.as_deref(),
    );
    match created.and_then(|()| store.audit("run-started", Some(&id), &started)) {
        Ok(()) => drive(engine, store, id, request),
        Err(source) => Err(abort(store, &id, source, Vec::new())),
    }
}

/// The body of a run's `run-started` audit record: what ran, and under which
/// grants. `plugin` is `None` when it is no longer configured.
pub fn started_record(
    plugin: Option<&LoadedPlugin>,
    name: &str,
    dry_run: bool,
    approval: bool,
    approved: Option<&[Action]>,
) -> serde_json::Value {
    serde_json::json!({
        "plugin": name,
        "plugin_sha256": plugin.map(|p| &p.sha256),
        "grants": plugin.map(|p| &p.grants),
        "dry_run": dry_run,
        "approval": approval,
        "approved_plan": approved.map(crate::store::plan_hash),
    })
}

/// Stop run `id` because the store failed: try to mark it failed (usually
/// that fails as well; when the fault was passing, the run is not left `running`).
fn abort(store: &Store, id: &str, source: StoreError, rounds: Vec<RoundReport>) -> Box<RunAborted> {
    let _ = store.finish_run(
        id,
        RunStatus::Failed,
        &format!("state store failed: {source}"),
    );
    tracing::error!(run = %id, "state store failed, run stopped: {source}");
    Box::new(RunAborted {
        run_id: id.to_string(),
        source,
        rounds,
    })
}

/// Run `id`, whose record exists and is `running` with its `run-started`
/// audit record, to its end.
pub fn drive(
    engine: &PluginEngine,
    store: &Store,
    id: String,
    request: RunRequest<'_>,
) -> Result<RunReport, Box<RunAborted>> {
    let plugin = request.plugin;
    let dry_run = request.dry_run || request.approval;
    let mut rounds = Vec::new();
    let abort = |source, rounds| abort(store, &id, source, rounds);

    let executor = Executor {
        store,
        grants: &plugin.grants,
        connections: engine.connections(),
        declared_kinds: &plugin.info.action_kinds,
        approved: request.approved.as_deref(),
    };
    // An approved run already has its approval round recorded; number on from it.
    let first_round = match store.next_round(&id) {
        Ok(next) => next,
        Err(source) => return Err(abort(source, rounds)),
    };
    let mut history: Vec<ActionResult> = Vec::new();
    let mut memo: Option<String> = None;
    let recent = match store.recent_actions(&plugin.name, RECENT_WINDOW, RECENT_LIMIT) {
        Ok(recent) => recent,
        Err(source) => return Err(abort(source, rounds)),
    };
    let (status, reason) = loop {
        let round = rounds.len() as u32;
        let incident = Incident {
            run_id: id.clone(),
            alert: request.alert.clone(),
            params: request.params.clone(),
            dry_run,
            round,
            history: history.clone(),
            recent: recent.clone(),
            memo: memo.take(),
        };
        // An approved run starts with exactly the approved plan, not a new one.
        let call = match (round, &request.approved) {
            (0, Some(approved)) => Call {
                result: Ok(Plan {
                    summary: format!(
                        "the approved plan ({})",
                        &crate::store::plan_hash(approved)[..16]
                    ),
                    checks: Vec::new(),
                    actions: approved.clone(),
                    escalate: None,
                    recheck_after_secs: None,
                    memo: None,
                }),
                logs: Vec::new(),
                instantiate: Duration::ZERO,
                call: Duration::ZERO,
            },
            _ => engine.plan(plugin, &incident),
        };
        let mut report = RoundReport {
            round,
            plan: None,
            results: Vec::new(),
            logs: call.logs,
            instantiate: call.instantiate,
            planning: call.call,
            executing: Duration::ZERO,
        };
        let recorded = first_round + round;
        if let Err(source) = store.record_logs(&id, recorded, &report.logs) {
            rounds.push(report);
            return Err(abort(source, rounds));
        }
        let plan = match call.result {
            Ok(plan) => plan,
            Err(failure) => {
                rounds.push(report);
                break (failure_status(&failure), format!("plugin {failure}"));
            }
        };
        if let Err(source) = store.record_round(&id, recorded, &plan, call.instantiate, call.call) {
            rounds.push(report);
            return Err(abort(source, rounds));
        }

        let watching = plan.actions.is_empty() && plan.recheck_after_secs.is_some();
        let outcome = if let Some(why) = &plan.escalate {
            Some((RunStatus::Escalated, why.clone()))
        } else if plan.actions.is_empty() && !watching {
            let status = if history.iter().any(|r| r.status == ActionStatus::Done) {
                RunStatus::Succeeded
            } else {
                RunStatus::NothingToDo
            };
            Some((status, plan.summary.clone()))
        } else {
            None
        };
        if let Some(outcome) = outcome {
            report.plan = Some(plan);
            rounds.push(report);
            break outcome;
        }

        // A watching plan has nothing to execute; it only waits and looks again.
        let mut verdict = None;
        if !watching {
            let started = std::time::Instant::now();
            let executed = executor.execute(&id, recorded, &plan.actions, dry_run);
            report.executing = started.elapsed();
            let results = match executed {
                Ok(results) => results,
                Err(source) => {
                    report.plan = Some(plan);
                    rounds.push(report);
                    return Err(abort(source, rounds));
                }
            };
            verdict = judge_round(&results, dry_run, request.approval);
            if let Some((RunStatus::AwaitingApproval, _)) = &verdict {
                match store.request_approval(&id, &plan.actions) {
                    Ok(hash) => {
                        if let Some((_, reason)) = &mut verdict {
                            reason.push_str(&format!("; plan {}", &hash[..16]));
                        }
                    }
                    Err(source) => {
                        report.plan = Some(plan);
                        rounds.push(report);
                        return Err(abort(source, rounds));
                    }
                }
            }
            history.extend(results.iter().cloned());
            report.results = results;
        }
        let recheck = plan.recheck_after_secs;
        let summary = plan.summary.clone();
        memo = plan.memo.clone();
        report.plan = Some(plan);
        rounds.push(report);
        if let Some(verdict) = verdict {
            break verdict;
        }
        if rounds.len() as u32 >= request.max_rounds {
            let still = if watching {
                format!("is still watching: {summary}")
            } else {
                "still proposes actions".to_string()
            };
            break (
                RunStatus::Escalated,
                format!(
                    "round limit of {} reached and the plugin {still}",
                    request.max_rounds
                ),
            );
        }
        wait_for_recheck(round, recheck, &summary);
    };

    if let Err(source) = store.finish_run(&id, status, &reason) {
        return Err(abort(source, rounds));
    }
    tracing::info!(status = status.as_str(), reason = %crate::text::one_line(&reason), "run finished");
    Ok(RunReport {
        id,
        status,
        reason,
        dry_run,
        rounds,
    })
}

/// The plugin asked to look again later: to confirm a restart took, or to
/// compare a second scan with the first.
fn wait_for_recheck(round: u32, secs: Option<u32>, summary: &str) {
    let Some(secs) = secs else { return };
    let wait = Duration::from_secs(secs.into()).min(MAX_RECHECK_WAIT);
    tracing::info!(
        target: PROGRESS,
        "round {}: {}; next round in {}",
        round + 1,
        crate::text::one_line(summary),
        humantime::format_duration(wait)
    );
    std::thread::sleep(wait);
}

/// How the run ends after this round's actions, or `None` to plan again.
fn judge_round(
    results: &[ActionResult],
    dry_run: bool,
    approval: bool,
) -> Option<(RunStatus, String)> {
    for (action_status, run_status) in [
        (ActionStatus::Denied, RunStatus::Denied),
        (ActionStatus::Failed, RunStatus::Failed),
    ] {
        if let Some(first) = results.iter().find(|r| r.status == action_status) {
            let action = &first.action;
            let reason = format!("{} {}: {}", action.kind(), action.target(), first.detail);
            return Some((run_status, reason));
        }
    }
    if dry_run {
        let planned = results
            .iter()
            .filter(|r| r.status == ActionStatus::Planned)
            .count();
        let stale = results.len() - planned;
        let (status, mode) = if approval {
            (RunStatus::AwaitingApproval, "awaiting approval")
        } else {
            (RunStatus::Succeeded, "dry-run")
        };
        let mut reason = format!("{mode}: {planned} actions planned, none executed");
        if stale > 0 {
            reason.push_str(&format!("; {stale} would be refused as stale"));
        }
        return Some((status, reason));
    }
    None
}

fn failure_status(failure: &Failure) -> RunStatus {
    match failure {
        Failure::TimedOut(_) => RunStatus::TimedOut,
        Failure::MemoryCap { .. } | Failure::Trapped(_) => RunStatus::Trapped,
        Failure::Plugin(_) | Failure::Invalid(_) => RunStatus::Failed,
    }
}
