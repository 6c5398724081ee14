//! Takes queued runs, oldest first, as the limits allow: `workers` in all,
//! `per_plugin` per plugin, one at a time per target. Each run executes on a
//! blocking thread; its end frees its slots and wakes the loop.
//!
//! A route whose circuit breaker is open still runs, but in dry-run. On a
//! shared store this process takes only its own node's runs and the
//! cluster-wide ones, each under a lease, within its route's blast radius.

use super::Shared;
use super::metrics::{ActionLabels, PluginLabels, RouteLabels, RunLabels, observe};
use super::notify::{Event, EventKind};
use crate::config::DEFAULT_MAX_ROUNDS;
use crate::run::{RunReport, RunRequest, drive, started_record};
use crate::store::{Claim, ClaimRules, ClaimedRun, QueuedRun, RunStatus};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What an executing run holds.
struct Slot {
    plugin: String,
    target: Option<String>,
}

/// How often the queue is read afresh (a parked run may have come due, an
/// approved one been queued) and runs left behind by a failed store are
/// looked for, however busy the loop is.
const POLL: Duration = Duration::from_secs(2);

/// Queued runs read at once: enough to find one past busy targets and
/// plugins, not a storm's whole queue each time (reading 1,000 held a
/// 20,000-run drain to ~400 runs/s; 64, ~650).
const CANDIDATES_PER_WORKER: usize = 16;

/// Queued runs read ahead, oldest first, taken as workers free up: a run's
/// end starts the next without reading the queue again.
#[derive(Default)]
struct ReadAhead {
    runs: VecDeque<QueuedRun>,
}

pub async fn until_stopped(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut executing: HashMap<String, Slot> = HashMap::new();
    let mut ahead = ReadAhead::default();
    let mut poll = tokio::time::interval(POLL);
    // After a long stall, one look, not one for every tick missed.
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut polled = false;
    let mut deadline = None;
    loop {
        if deadline.is_none() {
            if std::mem::take(&mut polled) {
                ahead.runs.clear();
                sweep_abandoned(&shared, &executing).await;
            }
            fill(&shared, &mut executing, &mut ahead, &done_tx).await;
        } else if executing.is_empty() {
            break;
        }
        shared.metrics.executing.set(executing.len() as i64);
        let grace_over = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            Some(id) = done_rx.recv() => { executing.remove(&id); }
            _ = stop.changed(), if deadline.is_none() => {
                let grace = shared.server.shutdown_grace;
                if !executing.is_empty() {
                    tracing::info!(runs = executing.len(), ?grace, "waiting for executing runs");
                }
                deadline = Some(tokio::time::Instant::now() + grace);
            }
            _ = grace_over => {
                let ids: Vec<String> = executing.keys().cloned().collect();
                let shared = shared.clone();
                let _ = tokio::task::spawn_blocking(move || interrupt_unfinished(&shared, &ids)).await;
                break;
            }
            _ = poll.tick() => { polled = true; }
        }
    }
    shared.metrics.executing.set(0);
}

/// Mark the runs still executing after the shutdown grace as interrupted.
fn interrupt_unfinished(shared: &Shared, ids: &[String]) {
    let reason = format!(
        "remedy was stopped and this run did not finish within the shutdown grace of {}",
        humantime::format_duration(shared.server.shutdown_grace)
    );
    for id in ids {
        tracing::warn!(run = %id, "still executing after the shutdown grace; marked interrupted");
        if let Err(e) = shared.work.interrupt(id, &reason) {
            tracing::error!(run = %id, "cannot mark the run interrupted: {e}");
        }
    }
}

/// Mark runs this process stopped executing when the store failed as
/// interrupted, now that the store can be written again.
async fn sweep_abandoned(shared: &Arc<Shared>, executing: &HashMap<String, Slot>) {
    let running: Vec<String> = executing.keys().cloned().collect();
    let shared = shared.clone();
    let swept = off_the_loop("look for abandoned runs", move || {
        shared.work.interrupt_abandoned(&running)
    });
    for id in swept.await.unwrap_or_default() {
        tracing::warn!(run = %id, "run stopped when the store failed; marked interrupted");
    }
}

/// A store call on a blocking thread (a PostgreSQL store blocks); its
/// failure, to `do_what`, is logged.
async fn off_the_loop<T: Send + 'static>(
    do_what: &str,
    call: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Option<T> {
    let failure = match tokio::task::spawn_blocking(call).await {
        Ok(Ok(done)) => return Some(done),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::error!("cannot {do_what}: {failure}");
    None
}

/// Start every queued run the limits allow: from those read ahead, and
/// from the queue read afresh when they run out or none of them can start.
async fn fill(
    shared: &Arc<Shared>,
    executing: &mut HashMap<String, Slot>,
    ahead: &mut ReadAhead,
    done: &mpsc::UnboundedSender<String>,
) {
    let mut read_afresh = false;
    while executing.len() < shared.server.workers {
        if ahead.runs.is_empty() {
            if read_afresh {
                return;
            }
            read_afresh = true;
            match read_queue(shared).await {
                Some(queued) => ahead.runs = queued.into(),
                None => return,
            }
        }
        let started = start_from(shared, executing, ahead, done, read_afresh).await;
        if started == 0 {
            if read_afresh {
                return;
            }
            // None of those read ahead can start; there may be others that can.
            ahead.runs.clear();
        }
    }
}

/// The oldest queued runs this process may take.
async fn read_queue(shared: &Arc<Shared>) -> Option<Vec<QueuedRun>> {
    let node = shared.fleet.map(|_| shared.live().config.node.name.clone());
    let candidates = (shared.server.workers * CANDIDATES_PER_WORKER) as u32;
    let reader = shared.clone();
    off_the_loop("read the queue", move || {
        reader.work.queued(candidates, node.as_deref())
    })
    .await
}

/// Start the runs read ahead that the limits allow, oldest first; those
/// that cannot start yet stay read ahead. How many started. `whole`: the
/// runs read ahead are the queue's oldest as just read, so the routes'
/// held-back counts are set from them.
async fn start_from(
    shared: &Arc<Shared>,
    executing: &mut HashMap<String, Slot>,
    ahead: &mut ReadAhead,
    done: &mpsc::UnboundedSender<String>,
    whole: bool,
) -> usize {
    let server = &shared.server;
    let live = shared.live();
    let mut held: HashMap<String, i64> = HashMap::new();
    let mut waiting = VecDeque::new();
    let mut started = 0;
    while let Some(candidate) = ahead.runs.pop_front() {
        if executing.len() >= server.workers {
            ahead.runs.push_front(candidate);
            break;
        }
        // A cluster-wide run for a plugin this process lacks is left to one that has it.
        if shared.fleet.is_some()
            && candidate.node.is_none()
            && !live.plugins.contains_key(&candidate.plugin)
        {
            continue;
        }
        let busy = |slot: &Slot| candidate.target.is_some() && slot.target == candidate.target;
        let of_plugin = executing
            .values()
            .filter(|s| s.plugin == candidate.plugin)
            .count();
        if of_plugin >= server.per_plugin || executing.values().any(busy) {
            waiting.push_back(candidate);
            continue;
        }
        // Counted as executing from before its claim, which takes it out of
        // the queue: no scrape finds a run neither queued nor executing.
        shared.metrics.executing.set(executing.len() as i64 + 1);
        // Every store call leaves the async threads: a PostgreSQL store blocks.
        let claimed = {
            let shared = shared.clone();
            let candidate = candidate.clone();
            tokio::task::spawn_blocking(move || claim(&shared, &candidate)).await
        };
        let claimed = match claimed {
            Ok(Some(Claim::Taken(claimed))) => *claimed,
            Ok(Some(Claim::Held(why))) => {
                tracing::debug!(run = %candidate.id, "{why}");
                *held
                    .entry(candidate.route.clone().unwrap_or_default())
                    .or_default() += 1;
                continue;
            }
            _ => continue,
        };
        executing.insert(
            claimed.id.clone(),
            Slot {
                plugin: candidate.plugin.clone(),
                target: candidate.target.clone(),
            },
        );
        started += 1;
        let shared = shared.clone();
        let done = done.clone();
        tokio::task::spawn_blocking(move || {
            let id = claimed.id.clone();
            execute(&shared, claimed);
            let _ = done.send(id);
        });
    }
    waiting.append(&mut ahead.runs);
    ahead.runs = waiting;
    if whole {
        set_held(shared, &live, &held);
    }
    started
}

/// Each route's count of runs its blast radius holds back.
fn set_held(shared: &Shared, live: &super::Live, held: &HashMap<String, i64>) {
    for route in &live.routes {
        let name = &route.config.name;
        let count = held.get(name).copied().unwrap_or(0);
        shared
            .metrics
            .held
            .get_or_create(&RouteLabels {
                route: name.clone(),
            })
            .set(count);
    }
}

/// Take `candidate` for this process, in dry-run if its route's breaker is
/// open, unless its route's blast radius holds it back.
fn claim(shared: &Shared, candidate: &QueuedRun) -> Option<Claim> {
    let store = &shared.work;
    let breaker = match &candidate.route {
        Some(route) => match store.breaker(route) {
            Ok(open) => open.map(|why| {
                format!("circuit breaker of route `{route}` is open ({why}): ran in dry-run")
            }),
            Err(e) => {
                tracing::error!(run = %candidate.id, "cannot read the circuit breaker: {e}");
                return None;
            }
        },
        None => None,
    };
    let live = shared.live();
    let plugin = live.plugins.get(&candidate.plugin).map(AsRef::as_ref);
    let started = |claimed: &ClaimedRun| {
        started_record(
            plugin,
            &claimed.plugin,
            claimed.dry_run || claimed.approval,
            claimed.approval,
            claimed.approved.as_deref(),
        )
    };
    let rules = ClaimRules {
        force_dry_run: breaker.as_deref(),
        lease: shared.fleet.map(|fleet| fleet.lease),
        radius: candidate
            .route
            .as_deref()
            .and_then(|route| live.route(route))
            .map(|route| route.config.radius)
            .unwrap_or_default(),
    };
    match store.claim(&candidate.id, &rules, started) {
        Ok(claim) => Some(claim),
        Err(e) => {
            tracing::error!(run = %candidate.id, "cannot take the run from the queue: {e}");
            None
        }
    }
}

/// Run one claimed run to its end and account for it.
fn execute(shared: &Shared, claimed: ClaimedRun) {
    let span = tracing::info_span!("run", run = %claimed.id);
    let _entered = span.enter();
    let route_name = claimed.route.clone().unwrap_or_default();
    let live = shared.live();
    let route = live.route(&route_name);
    let Some(plugin) = live.plugins.get(&claimed.plugin) else {
        let reason = match shared.fleet {
            Some(_) => format!(
                "plugin `{}` is not configured on {}, the node this run is for: add it, with \
                 the grants this node allows, to this node's config",
                claimed.plugin, live.config.node.name
            ),
            None => format!(
                "plugin `{}` is no longer configured; the run was accepted under an earlier config",
                claimed.plugin
            ),
        };
        tracing::error!("{reason}");
        if let Err(e) = shared
            .work
            .finish_run(&claimed.id, RunStatus::Failed, &reason)
        {
            tracing::error!("cannot record the run's end: {e}");
        }
        announce_opened_breakers(shared);
        return;
    };
    let max_rounds = route
        .and_then(|r| r.config.max_rounds)
        .or(live.config.plugin(&claimed.plugin).map(|p| p.max_rounds))
        .unwrap_or(DEFAULT_MAX_ROUNDS);
    let recorded = route.is_some_and(|r| r.config.record.is_some());
    let labels = claimed.alert.labels.iter().cloned().collect();
    if claimed.resumed {
        tracing::info!(plugin = %plugin.name, route = %route_name, "run resumed");
    } else {
        observe(&shared.metrics.queue_wait_seconds, claimed.queued_for);
        tracing::info!(plugin = %plugin.name, route = %route_name, dry_run = claimed.dry_run, "run started");
    }
    shared.changed();
    let outcome = drive(
        &shared.engine,
        &shared.work,
        claimed.id.clone(),
        RunRequest {
            plugin,
            alert: claimed.alert,
            params: node_params(shared, route, &claimed.id, claimed.params),
            dry_run: claimed.dry_run,
            approval: claimed.approval,
            approved: claimed.approved,
            max_rounds,
            node: live.config.node.recheck(claimed.node),
            confirm: route.and_then(|route| {
                crate::confirm::Confirm::for_route(&route.config, shared.alertmanager.as_ref())
            }),
            record: recorded,
            // A recorded world holds every round, so a recorded run is not parked.
            park: !recorded,
            resumed: claimed.resumed,
        },
    );
    if let Ok(report) = &outcome {
        account(shared, &plugin.name, report);
    }
    let (status, reason) = match &outcome {
        Ok(report) if report.status == RunStatus::Waiting => {
            // Parked: it ends, and is counted as a run, in a later stint.
            shared.changed();
            return;
        }
        Ok(report) => {
            if let Some(recording) = route.and_then(|r| r.config.record.as_ref()) {
                save_world(recording, plugin, &live.config.node.name, report);
            }
            (report.status, report.reason.clone())
        }
        Err(aborted) => {
            tracing::error!("{aborted}");
            (RunStatus::Failed, aborted.to_string())
        }
    };
    let ended = Ended {
        run_id: &claimed.id,
        plugin: &plugin.name,
        route: &route_name,
        status,
    };
    notify(shared, &ended, reason, labels);
    shared.changed();
    shared
        .metrics
        .runs
        .get_or_create(&RunLabels {
            plugin: plugin.name.clone(),
            route: route_name.clone(),
            outcome: status.as_str(),
            node: live.config.node.name.clone(),
        })
        .inc();
    announce_opened_breakers(shared);
}

/// The params a run executes with. In a fleet, the receiver that queued it
/// resolved them from its own config; this node's config says what they are
/// here (which directories, which jobs), as its grants say what may be
/// touched. The change is recorded and audited with the run.
fn node_params(
    shared: &Shared,
    route: Option<&super::ReadyRoute>,
    id: &str,
    queued_with: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let (Some(_), Some(route)) = (shared.fleet, route) else {
        return queued_with;
    };
    let changed: BTreeMap<String, String> = route
        .params
        .iter()
        .filter(|pair| !queued_with.contains(pair))
        .cloned()
        .collect();
    if !changed.is_empty()
        && let Err(e) = shared.work.record_params_used(id, &route.params, &changed)
    {
        tracing::error!("cannot record this node's params; the run keeps its queued ones: {e}");
        return queued_with;
    }
    route.params.clone()
}

/// How a run ended.
pub(super) struct Ended<'a> {
    pub run_id: &'a str,
    pub plugin: &'a str,
    pub route: &'a str,
    pub status: RunStatus,
}

/// Tell people about an escalation, a plan awaiting approval, or a failure.
pub(super) fn notify(
    shared: &Shared,
    ended: &Ended<'_>,
    reason: String,
    labels: BTreeMap<String, String>,
) {
    let kind = match ended.status {
        RunStatus::Escalated => EventKind::Escalated,
        RunStatus::AwaitingApproval => EventKind::ApprovalNeeded,
        failed if failed.is_failure() => EventKind::Failed,
        _ => return,
    };
    shared.notifier.send(Event {
        run_id: Some(ended.run_id.to_string()),
        plugin: Some(ended.plugin.to_string()),
        route: Some(ended.route.to_string()),
        status: Some(ended.status.as_str().to_string()),
        labels,
        ..Event::new(kind, reason)
    });
}

fn account(shared: &Shared, plugin: &str, report: &RunReport) {
    let metrics = &shared.metrics;
    let labels = PluginLabels {
        plugin: plugin.to_string(),
    };
    for round in &report.rounds {
        observe(
            &metrics.instantiate_seconds.get_or_create(&labels),
            round.instantiate,
        );
        observe(&metrics.plan_seconds.get_or_create(&labels), round.planning);
        if !report.dry_run && !round.results.is_empty() {
            observe(
                &metrics.apply_seconds.get_or_create(&labels),
                round.executing,
            );
        }
        for result in &round.results {
            metrics
                .actions
                .get_or_create(&ActionLabels {
                    kind: result.action.kind(),
                    outcome: result.status.as_str(),
                })
                .inc();
        }
    }
}

/// Tell of the breakers that runs' ends opened (`Store::finish_run`, which
/// opens them with the end, by the rules `Live::breaker_rules` set).
fn announce_opened_breakers(shared: &Shared) {
    for opened in shared.work.take_opened_breakers() {
        let (route, reason) = (opened.route, opened.reason);
        tracing::warn!(
            route = %route,
            "circuit breaker opened, the route runs in dry-run until `remedy routes reset {route}`: {reason}"
        );
        let told =
            format!("{reason}; the route runs in dry-run until `remedy routes reset {route}`");
        shared.notifier.send(Event {
            route: Some(route),
            ..Event::new(EventKind::BreakerOpened, told)
        });
    }
}

/// Keep the world a route's run saw, as `<dir>/<run id>.json`. A recording
/// that cannot be written is logged; the run itself stands.
fn save_world(
    recording: &crate::config::Recording,
    plugin: &crate::engine::LoadedPlugin,
    node: &str,
    report: &crate::run::RunReport,
) {
    let world = crate::world::World::of_run(plugin, node, &report.rounds, &recording.redaction);
    let saved = std::fs::create_dir_all(&recording.dir)
        .map_err(|e| format!("{}: {e}", recording.dir.display()))
        .and_then(|()| {
            let path = recording.dir.join(format!("{}.json", report.id));
            world.save(&path).map_err(|e| e.to_string())
        });
    match saved {
        Ok(()) => tracing::info!(reads = world.reads(), "recorded the run's world"),
        Err(why) => tracing::error!("cannot record the run's world: {why}"),
    }
}
