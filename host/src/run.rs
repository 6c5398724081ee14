//! One remediation run: the plugin plans, the executor carries the plan out,
//! and the plugin is asked again with what happened, until it has nothing left
//! to do, escalates, fails, or reaches the round limit. Every step is recorded.

use crate::caps::journal::{Journal, Kept};
use crate::caps::log::LogLine;
use crate::contract::{Action, ActionResult, ActionStatus, Alert, Incident, PastAction, Plan};
use crate::engine::{Call, Failure, LoadedPlugin, PluginEngine};
use crate::executor::Executor;
use crate::store::{NewRound, NewRun, RunStatus, Store, StoreError};
use std::collections::BTreeMap;
use std::time::Duration;

/// How far back, and how many, earlier actions a plugin is shown.
const RECENT_WINDOW: Duration = crate::store::DECIDING;
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
    /// The node the run is for, and why this node must not execute it: then
    /// the run ends escalated before the plugin is called.
    pub node: crate::node::Placement,
    /// Set on a route that requires its alert to be firing: asked before
    /// each round's actions execute.
    pub confirm: Option<crate::confirm::Confirm>,
    /// Keep what the plugin saw each round, for a recorded world.
    pub record: bool,
    /// Between rounds, park the run in the store instead of waiting on
    /// this thread (`remedy serve`, whose workers are few).
    pub park: bool,
    /// The run was parked and goes on from its recorded rounds.
    pub resumed: bool,
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
    /// What the plugin was given and read, when the run is recorded.
    pub seen: Option<Seen>,
}

/// One round as the plugin saw it: the incident, and its read calls.
#[derive(Debug)]
pub struct Seen {
    pub incident: Incident,
    pub reads: Kept,
    /// Why the plugin made no plan, when it made none.
    pub failure: Option<String>,
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
pub fn run_by_hand(
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
        node: request.node.node.as_deref(),
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

/// How a run ended: its status and the reason.
type Verdict = (RunStatus, String);

/// Run `id`, whose record exists and is `running` with its `run-started`
/// audit record, to its end.
pub fn drive(
    engine: &PluginEngine,
    store: &Store,
    id: String,
    request: RunRequest<'_>,
) -> Result<RunReport, Box<RunAborted>> {
    if let Some(why) = &request.node.refusal {
        // Checked again here, last, on every path to a plugin: a run for
        // another node never executes on this one.
        let dry_run = request.dry_run || request.approval;
        return end(
            store,
            id,
            (RunStatus::Escalated, why.clone()),
            dry_run,
            Vec::new(),
        );
    }
    let mut driver = match Driver::start(engine, store, &id, &request) {
        Ok(driver) => driver,
        Err(source) => return Err(abort(store, &id, source, Vec::new())),
    };
    let stopped = driver.rounds_until_the_end();
    let after_round = driver.recorded_rounds().saturating_sub(1);
    let (dry_run, rounds) = (driver.dry_run, driver.rounds);
    match stopped {
        Ok(Stop::Ended(verdict)) => end(store, id, verdict, dry_run, rounds),
        Ok(Stop::Settled(verdict)) => Ok(ended(id, verdict, dry_run, rounds)),
        Ok(Stop::Parked { wait, summary }) => {
            park(store, id, after_round, wait, summary, dry_run, rounds)
        }
        Err(source) => Err(abort(store, &id, source, rounds)),
    }
}

/// Park the run until its next round is due, freeing this thread.
fn park(
    store: &Store,
    id: String,
    after_round: u32,
    wait: Duration,
    summary: String,
    dry_run: bool,
    rounds: Vec<RoundReport>,
) -> Result<RunReport, Box<RunAborted>> {
    let summary = crate::text::one_line(&summary);
    if let Err(source) = store.park(&id, after_round, wait, &summary) {
        return Err(abort(store, &id, source, rounds));
    }
    let wait = humantime::format_duration(wait);
    tracing::info!(target: PROGRESS, "{summary}; parked, next round in {wait}");
    Ok(RunReport {
        id,
        status: RunStatus::Waiting,
        reason: format!("watching: {summary}; next round in {wait}"),
        dry_run,
        rounds,
    })
}

/// Record the run's end with its verdict.
fn end(
    store: &Store,
    id: String,
    (status, reason): Verdict,
    dry_run: bool,
    rounds: Vec<RoundReport>,
) -> Result<RunReport, Box<RunAborted>> {
    if let Err(source) = store.finish_run(&id, status, &reason) {
        return Err(abort(store, &id, source, rounds));
    }
    Ok(ended(id, (status, reason), dry_run, rounds))
}

/// The report of a run whose end is recorded.
fn ended(
    id: String,
    (status, reason): Verdict,
    dry_run: bool,
    rounds: Vec<RoundReport>,
) -> RunReport {
    tracing::info!(status = status.as_str(), reason = %crate::text::one_line(&reason), "run finished");
    RunReport {
        id,
        status,
        reason,
        dry_run,
        rounds,
    }
}

/// A run between its start and its end: what every round needs, and what
/// the rounds so far left behind.
struct Driver<'a> {
    engine: &'a PluginEngine,
    store: &'a Store,
    id: &'a str,
    request: &'a RunRequest<'a>,
    executor: Executor<'a>,
    dry_run: bool,
    /// An approved run already has its approval round recorded, a resumed
    /// run its earlier rounds; rounds are numbered on from them.
    first_round: u32,
    /// Rounds of its execution the run went through before it was parked.
    done_before: u32,
    recent: Vec<PastAction>,
    history: Vec<ActionResult>,
    memo: Option<String>,
    rounds: Vec<RoundReport>,
    /// The params as recorded: those passed in, with any the plugin took
    /// from elsewhere in their place.
    params: Vec<(String, String)>,
}

/// Why the rounds stopped: the run ended, or it waits to look again.
enum Stop {
    Ended(Verdict),
    /// Ended, and the end recorded with the last round.
    Settled(Verdict),
    Parked {
        wait: Duration,
        summary: String,
    },
}

/// A round's plan as recorded.
enum Planned {
    /// The plugin could not plan: the run ends.
    Failed(Verdict),
    /// The plan ended the run, and the end is recorded with it.
    Settled(Plan, Verdict),
    /// The plan's actions are to be executed, or it looks again later.
    Open(Plan),
}

/// What a round leaves for the next: the end of the run, or another round.
enum Step {
    Ended(Verdict),
    /// The plan itself ended the run, recorded with it.
    Settled(Verdict),
    Again {
        /// The plan proposed nothing and only asked to look again.
        watching: bool,
        recheck: Option<u32>,
        summary: String,
    },
}

impl<'a> Driver<'a> {
    fn start(
        engine: &'a PluginEngine,
        store: &'a Store,
        id: &'a str,
        request: &'a RunRequest<'a>,
    ) -> Result<Self, StoreError> {
        let plugin = request.plugin;
        let first_round = store.next_round(id)?;
        // An approved run's approval round planned; it executed nothing.
        let approval_rounds = u32::from(request.approved.is_some()).min(first_round);
        let (history, memo) = match request.resumed {
            true => store.resume_state(id, approval_rounds)?,
            false => (Vec::new(), None),
        };
        Ok(Driver {
            engine,
            store,
            id,
            request,
            executor: Executor {
                store,
                grants: &plugin.grants,
                env: engine.env(),
                declared_kinds: &plugin.info.action_kinds,
                approved: request.approved.as_deref(),
            },
            dry_run: request.dry_run || request.approval,
            first_round,
            done_before: first_round - approval_rounds,
            recent: store.recent_actions(&plugin.name, RECENT_WINDOW, RECENT_LIMIT)?,
            history,
            memo,
            params: request.params.clone(),
            rounds: Vec::new(),
        })
    }

    /// Rounds until one ends the run, the round limit is reached, the run
    /// is parked to look again later, or the store fails.
    fn rounds_until_the_end(&mut self) -> Result<Stop, StoreError> {
        let limit = self.request.max_rounds;
        loop {
            let (watching, recheck, summary) = match self.round()? {
                Step::Ended(verdict) => return Ok(Stop::Ended(verdict)),
                Step::Settled(verdict) => return Ok(Stop::Settled(verdict)),
                Step::Again {
                    watching,
                    recheck,
                    summary,
                } => (watching, recheck, summary),
            };
            if self.done_before + self.rounds.len() as u32 >= limit {
                let still = if watching {
                    format!("is still watching: {summary}")
                } else {
                    "still proposes actions".to_string()
                };
                let why = format!("round limit of {limit} reached and the plugin {still}");
                return Ok(Stop::Ended((RunStatus::Escalated, why)));
            }
            let Some(wait) = recheck.map(recheck_wait) else {
                continue;
            };
            if self.request.park {
                return Ok(Stop::Parked { wait, summary });
            }
            let round = self.done_before + self.rounds.len() as u32;
            tracing::info!(
                target: PROGRESS,
                "round {round}: {}; next round in {}",
                crate::text::one_line(&summary),
                humantime::format_duration(wait)
            );
            std::thread::sleep(wait);
        }
    }

    /// The number the next recorded round would have: the rounds recorded so far.
    fn recorded_rounds(&self) -> u32 {
        self.first_round + self.rounds.len() as u32
    }

    /// One round: plan (or replay the approved plan), record it, and act on
    /// it. Its report is kept whatever happens.
    fn round(&mut self) -> Result<Step, StoreError> {
        let round = self.done_before + self.rounds.len() as u32;
        let recorded = self.recorded_rounds();
        let (call, seen) = self.plan(round);
        self.record_params_used(call.used_params)?;
        let mut report = RoundReport {
            round,
            plan: None,
            results: Vec::new(),
            logs: call.logs,
            instantiate: call.instantiate,
            planning: call.call,
            executing: Duration::ZERO,
            seen,
        };
        let step =
            self.record_plan(recorded, call.result, &report)
                .and_then(|planned| match planned {
                    Planned::Failed(verdict) => Ok(Step::Ended(verdict)),
                    Planned::Settled(plan, verdict) => {
                        report.plan = Some(plan);
                        Ok(Step::Settled(verdict))
                    }
                    Planned::Open(plan) => {
                        let step = self.act_on(recorded, &plan, &mut report);
                        report.plan = Some(plan);
                        step
                    }
                });
        self.rounds.push(report);
        step
    }

    /// A parameter the plugin took from elsewhere (the alert's label of that
    /// name) replaces the one passed in, in the run's record and its audit
    /// trail, so they show what was used. Only declared parameters count.
    fn record_params_used(&mut self, used: BTreeMap<String, String>) -> Result<(), StoreError> {
        let mut changed = BTreeMap::new();
        for (name, value) in used {
            if let Some((_, recorded)) = self.params.iter_mut().find(|(n, _)| *n == name)
                && *recorded != value
            {
                recorded.clone_from(&value);
                changed.insert(name, value);
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.store
            .record_params_used(self.id, &self.params, &changed)
    }

    /// This round's plan, and what the plugin saw when the run is recorded.
    /// An approved run starts with exactly the approved plan, not a new one.
    fn plan(&mut self, round: u32) -> (Call<Plan>, Option<Seen>) {
        if let (0, Some(approved)) = (round, &self.request.approved) {
            let call = Call {
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
                used_params: Default::default(),
                instantiate: Duration::ZERO,
                call: Duration::ZERO,
            };
            return (call, None);
        }
        let request = self.request;
        let incident = Incident {
            run_id: self.id.to_string(),
            alert: request.alert.clone(),
            params: request.params.clone(),
            dry_run: self.dry_run,
            round,
            history: self.history.clone(),
            recent: self.recent.clone(),
            memo: self.memo.take(),
        };
        let journal = if request.record {
            Journal::recording()
        } else {
            Journal::live()
        };
        let call = self
            .engine
            .plan_through(request.plugin, &incident, &journal);
        let seen = request.record.then(|| Seen {
            incident,
            reads: journal.kept(),
            failure: call.result.as_ref().err().map(ToString::to_string),
        });
        (call, seen)
    }

    /// Record the round's logs and its plan, with the run's end when the
    /// plan settles it; a plugin that could not plan ends the run.
    fn record_plan(
        &self,
        recorded: u32,
        planned: Result<Plan, Failure>,
        report: &RoundReport,
    ) -> Result<Planned, StoreError> {
        let plan = match planned {
            Ok(plan) => plan,
            Err(failure) => {
                self.store.record_logs(self.id, recorded, &report.logs)?;
                let verdict = (failure_status(&failure), format!("plugin {failure}"));
                return Ok(Planned::Failed(verdict));
            }
        };
        let settled = settled_by(&plan, &self.history);
        let round = NewRound {
            number: recorded,
            plan: &plan,
            logs: &report.logs,
            instantiate: report.instantiate,
            planning: report.planning,
        };
        let ending = settled
            .as_ref()
            .map(|(status, why)| (*status, why.as_str()));
        self.store.record_round(self.id, &round, ending)?;
        Ok(match settled {
            Some(verdict) => Planned::Settled(plan, verdict),
            None => Planned::Open(plan),
        })
    }

    /// What a plan that did not settle the run calls for: its actions
    /// executed (unless it only watches) and judged.
    fn act_on(
        &mut self,
        recorded: u32,
        plan: &Plan,
        report: &mut RoundReport,
    ) -> Result<Step, StoreError> {
        // No actions: the plan asked to look again later.
        let watching = plan.actions.is_empty();
        if !watching && let Some(verdict) = self.execute(recorded, plan, report)? {
            return Ok(Step::Ended(verdict));
        }
        self.memo = plan.memo.clone();
        Ok(Step::Again {
            watching,
            recheck: plan.recheck_after_secs,
            summary: plan.summary.clone(),
        })
    }

    /// Execute the plan's actions; a verdict when their results end the run.
    fn execute(
        &mut self,
        recorded: u32,
        plan: &Plan,
        report: &mut RoundReport,
    ) -> Result<Option<Verdict>, StoreError> {
        if let Some(verdict) = self.alert_gone() {
            return Ok(Some(verdict));
        }
        let started = std::time::Instant::now();
        let executed = self
            .executor
            .execute(self.id, recorded, &plan.actions, self.dry_run);
        report.executing = started.elapsed();
        let results = executed?;
        let mut verdict = judge_round(&results, self.dry_run, self.request.approval);
        if let Some((RunStatus::AwaitingApproval, reason)) = &mut verdict {
            let hash = self.store.request_approval(self.id, &plan.actions)?;
            reason.push_str(&format!("; plan {}", &hash[..16]));
        }
        self.history.extend(results.iter().cloned());
        report.results = results;
        Ok(verdict)
    }
}

impl Driver<'_> {
    /// Why the run must end before acting: its route requires the alert to
    /// be firing, and Alertmanager says it is not, or cannot say and the
    /// route refuses to guess. A plan that only looks is never held back.
    fn alert_gone(&self) -> Option<Verdict> {
        use crate::confirm::{Firing, Unconfirmed};
        let confirm = self.request.confirm.as_ref().filter(|_| !self.dry_run)?;
        match confirm.alertmanager.firing(&self.request.alert) {
            Firing::Yes => None,
            Firing::No(why) => Some((RunStatus::Cancelled, format!("{why}; nothing was executed"))),
            Firing::Unknown(why) => match confirm.unconfirmed {
                Unconfirmed::Refuse => Some((
                    RunStatus::Escalated,
                    format!(
                        "{why}; the route refuses to act unconfirmed (unconfirmed = \"refuse\")"
                    ),
                )),
                Unconfirmed::Proceed => {
                    tracing::warn!("{why}; acting anyway (unconfirmed = \"proceed\")");
                    None
                }
            },
        }
    }
}

/// The end of the run that a plan itself declares: it escalates, or it has
/// nothing (more) to do and does not ask to look again.
fn settled_by(plan: &Plan, history: &[ActionResult]) -> Option<Verdict> {
    if let Some(why) = &plan.escalate {
        return Some((RunStatus::Escalated, why.clone()));
    }
    if !plan.actions.is_empty() || plan.recheck_after_secs.is_some() {
        return None;
    }
    let status = if history.iter().any(|r| r.status == ActionStatus::Done) {
        RunStatus::Succeeded
    } else {
        RunStatus::NothingToDo
    };
    Some((status, plan.summary.clone()))
}

/// How long to wait when the plugin asked to look again later (to confirm
/// a restart took, or to compare a second scan with the first).
fn recheck_wait(secs: u32) -> Duration {
    Duration::from_secs(secs.into()).min(MAX_RECHECK_WAIT)
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
