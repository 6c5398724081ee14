//! The durable queue behind `remedy serve`: admitting webhook alerts as
//! queued runs (with dedup and cooldown decided in the same transaction),
//! and handing them to workers.
//!
//! Admission is one write transaction for the webhook requests that arrive
//! together (group commit), each in a savepoint of its own, so a request's
//! batch is either wholly durable (and answered 202) or not at all (and
//! retried by Alertmanager).

use super::audit::Chain;
use super::sql::{Db, Result as DbResult, Value, args};
use super::{NewRun, RunStatus, Store, StoreError, now_ms, to_json};
use crate::contract::Alert;
use crate::json::{AlertJson, Pairs};
use std::time::Duration;

/// Where a run sits: its route and the keys the queue schedules by.
#[derive(Clone, Debug, Default)]
pub struct RunPlacement {
    pub fingerprint: Option<String>,
    /// The route's `group_by` label values: cooldown is kept per group.
    pub group_key: Option<String>,
    /// At most one run at a time per target (such as `instance`).
    pub target: Option<String>,
    /// An `approve` route: plan only, then wait for a human.
    pub approval: bool,
}

/// One route an incoming firing alert matched.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub run: NewRun<'a>,
    pub placement: RunPlacement,
    pub cooldown: Duration,
    /// Why this node must not execute the run (it is about another node):
    /// it is recorded as escalated, never queued.
    pub refusal: Option<String>,
}

/// One alert of a webhook request, with the routes it matched.
#[derive(Clone, Debug)]
pub enum Incoming<'a> {
    Firing {
        alert: &'a Alert,
        candidates: Vec<Candidate<'a>>,
    },
    Resolved {
        alert: &'a Alert,
    },
}

/// What became of one alert on one route, as the webhook's answer and the
/// audit record show it: `{"outcome": "queued", "route": ..., "run": ...}`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Admission {
    Queued {
        route: String,
        #[serde(rename = "run")]
        run_id: String,
    },
    /// The same (route, fingerprint, startsAt) arrived before.
    Duplicate { route: String },
    /// Recorded as escalated, not queued: this node must not execute it.
    Escalated {
        route: String,
        #[serde(rename = "run")]
        run_id: String,
        reason: String,
    },
    /// The route ran for this group too recently.
    #[serde(rename = "cooldown")]
    CoolingDown { route: String, last_run: String },
    /// No route matched the firing alert.
    Unrouted,
    /// A resolved alert; these queued runs of it were cancelled.
    Resolved { cancelled: Vec<String> },
}

impl Admission {
    /// The word used in metrics and in the alert record.
    pub fn outcome(&self) -> &'static str {
        match self {
            Admission::Queued { .. } => "queued",
            Admission::Escalated { .. } => "escalated",
            Admission::Duplicate { .. } => "duplicate",
            Admission::CoolingDown { .. } => "cooldown",
            Admission::Unrouted => "unrouted",
            Admission::Resolved { .. } => "resolved",
        }
    }
}

/// What became of each alert of one request, on each of its routes.
pub type Admitted = Vec<Vec<Admission>>;

/// A request refused because admitting it would take the queue past its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the queue holds {depth} runs and its limit is {limit}; retry later")]
pub struct QueueFull {
    pub depth: u64,
    pub limit: u64,
}

/// A queued run as the dispatcher sees it.
#[derive(Clone, Debug)]
pub struct QueuedRun {
    pub id: String,
    pub plugin: String,
    pub route: Option<String>,
    pub target: Option<String>,
    /// The node it is for; `None` for a cluster-wide run.
    pub node: Option<String>,
}

/// How a run is taken from the queue.
#[derive(Clone, Debug, Default)]
pub struct ClaimRules<'a> {
    /// Set when the route's circuit breaker is open: the run only plans.
    pub force_dry_run: Option<&'a str>,
    /// How long the run is held without a heartbeat renewing it; `None`
    /// for a store only this process uses, which judges its runs by pid.
    pub lease: Option<Duration>,
    pub radius: BlastRadius,
}

/// How many nodes one route may change at once, and per window, as
/// kured's `--concurrency` or SSM's `MaxConcurrency` bound a fleet change.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlastRadius {
    /// At most this many nodes executing the route's runs at once.
    pub max_nodes: Option<u32>,
    /// At most this many nodes starting the route's runs per window.
    pub per_window: Option<(u32, Duration)>,
}

/// What became of a claim.
#[derive(Debug)]
pub enum Claim {
    Taken(Box<ClaimedRun>),
    /// No longer queued: cancelled, or taken by another worker.
    Gone,
    /// Left queued: the route's blast radius is reached; why.
    Held(String),
}

impl Claim {
    /// The run, if this process took it.
    pub fn taken(self) -> Option<ClaimedRun> {
        match self {
            Claim::Taken(run) => Some(*run),
            Claim::Gone | Claim::Held(_) => None,
        }
    }
}

/// Why a run of `route` for `node` must wait: the nodes other than `node`
/// now executing the route's runs, or that started one within the window.
fn held_back(
    c: &mut dyn Db,
    route: &str,
    node: &str,
    radius: &BlastRadius,
) -> DbResult<Option<String>> {
    const OTHER_NODES: &str = "SELECT count(DISTINCT lower(node)) FROM runs
         WHERE route = ?1 AND node IS NOT NULL AND lower(node) != lower(CAST(?2 AS TEXT)) AND dry_run = FALSE";
    if let Some(max) = radius.max_nodes {
        let busy: i64 = c.query_row(
            &format!("{OTHER_NODES} AND status = 'running'"),
            args![route, node],
            |r| r.get(0),
        )?;
        if busy >= i64::from(max) {
            return Ok(Some(format!(
                "held back: route `{route}` is executing on {busy} other nodes and max_nodes is {max}"
            )));
        }
    }
    if let Some((max, window)) = radius.per_window {
        let since = now_ms() - window.as_millis() as i64;
        let started: i64 = c.query_row(
            &format!("{OTHER_NODES} AND started_ms >= ?3"),
            args![route, node, since],
            |r| r.get(0),
        )?;
        if started >= i64::from(max) {
            let window = humantime::format_duration(window);
            return Ok(Some(format!(
                "held back: route `{route}` started on {started} other nodes within {window} \
                 and max_nodes_per_window is {max}"
            )));
        }
    }
    Ok(None)
}

/// A run a worker has taken from the queue.
#[derive(Clone, Debug)]
pub struct ClaimedRun {
    pub id: String,
    pub plugin: String,
    pub route: Option<String>,
    pub alert: Alert,
    pub params: Vec<(String, String)>,
    pub dry_run: bool,
    pub approval: bool,
    /// Set when a human approved this run's plan: only it may execute.
    pub approved: Option<Vec<crate::contract::Action>>,
    pub queued_for: Duration,
    /// The node the run is for; `None` when any node may execute it.
    pub node: Option<String>,
    /// It was parked between rounds and goes on from where it stopped.
    pub resumed: bool,
}

pub(super) fn insert_run(
    c: &mut dyn Db,
    chain: &mut Chain,
    run: &NewRun<'_>,
    status: RunStatus,
    placement: &RunPlacement,
) -> DbResult<()> {
    let now = now_ms();
    let running = status == RunStatus::Running;
    c.execute(
        "INSERT INTO runs (id, plugin, plugin_version, plugin_sha256, trigger, dry_run, alert,
                           params, status, created_ms, route, fingerprint, group_key, target,
                           approval, owner, started_ms, node)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        args![
            run.id,
            run.plugin,
            run.plugin_version,
            run.plugin_sha256,
            run.trigger,
            run.dry_run,
            to_json(run.alert),
            to_json(run.params),
            status.as_str(),
            now,
            run.route,
            placement.fingerprint,
            placement.group_key,
            placement.target,
            placement.approval,
            running.then(crate::sys::this_process),
            running.then_some(now),
            run.node,
        ],
    )?;
    if status == RunStatus::Queued {
        // Here rather than in a trigger (migration V4 says why); this is
        // the one place a run is inserted.
        c.execute("UPDATE heads SET queued = queued + 1 WHERE id = 1", &[])?;
    }
    let body = RunCreated {
        alert: run.alert.into(),
        approval: placement.approval,
        dry_run: run.dry_run,
        node: run.node,
        params: Pairs(run.params),
        plugin: run.plugin,
        plugin_sha256: run.plugin_sha256,
        plugin_version: run.plugin_version,
        route: run.route,
        status: status.as_str(),
        trigger: run.trigger,
    };
    chain.append(c, "run-created", Some(run.id), &body)
}

/// The body of a `run-created` record.
#[derive(serde::Serialize)]
struct RunCreated<'a> {
    alert: AlertJson<'a>,
    approval: bool,
    dry_run: bool,
    node: Option<&'a str>,
    params: Pairs<'a>,
    plugin: &'a str,
    plugin_sha256: &'a str,
    plugin_version: &'a str,
    route: Option<&'a str>,
    status: &'static str,
    trigger: &'a str,
}

/// The body of an `alert` record: what became of it on each route.
#[derive(serde::Serialize)]
struct AlertDecided<'a> {
    decisions: &'a [Admission],
    fingerprint: &'a str,
    labels: Pairs<'a>,
    status: &'static str,
}

impl Store {
    /// Admit several webhook requests in one transaction, so they share one
    /// durable commit. Each request is admitted whole or not at all, in
    /// order, as if it came alone: one that would overfill the queue is
    /// rolled back to its savepoint and refused, and the next goes on. A
    /// store error refuses them all, and nothing of any is kept.
    pub fn admit_group(
        &self,
        requests: &[&[Incoming<'_>]],
        max_queued: u64,
    ) -> Result<Vec<Result<Admitted, QueueFull>>, StoreError> {
        self.commit(super::Commit::AtOnce, |tx| {
            let mut depth = count_queued(tx)?;
            let mut chain = Chain::open(tx)?;
            let mut answers = Vec::with_capacity(requests.len());
            for batch in requests {
                // Only a request that could overfill the queue can be
                // refused, so only such a request needs a savepoint to roll
                // back to. The others go without: under a savepoint SQLite
                // copies each page a request touches to a statement journal,
                // which more than halved single-alert admission.
                let could_overfill = depth + most_queued(batch) > max_queued;
                let savepoint = could_overfill.then(|| (depth, chain.clone()));
                if savepoint.is_some() {
                    tx.batch("SAVEPOINT admission")?;
                }
                let answer = admit_batch(tx, &mut chain, batch, &mut depth, max_queued)?;
                if let Some(before) = savepoint {
                    if answer.is_err() {
                        tx.batch("ROLLBACK TO SAVEPOINT admission")?;
                        (depth, chain) = before;
                    }
                    tx.batch("RELEASE SAVEPOINT admission")?;
                }
                answers.push(answer);
            }
            chain.close(tx)?;
            let queued = answers
                .iter()
                .flatten()
                .flatten()
                .flatten()
                .any(|a| matches!(a, Admission::Queued { .. }));
            if queued {
                tx.notify(super::QUEUE_CHANNEL)?;
            }
            Ok(answers)
        })
    }

    /// Waiting runs that are due, then queued runs, each oldest first: with
    /// `node`, only those for that node and those any node may execute. A
    /// due run goes first: its next round confirms what an earlier one did.
    pub fn queued(&self, limit: u32, node: Option<&str>) -> Result<Vec<QueuedRun>, StoreError> {
        let mut runs = self.runs_to_take(DUE, args![limit, node, now_ms()])?;
        let left = limit.saturating_sub(runs.len() as u32);
        runs.extend(self.runs_to_take(QUEUED, args![left, node])?);
        Ok(runs)
    }

    /// Runs meeting `condition`, oldest first, at most `?1` of them, for
    /// the node `?2` if it is not null.
    fn runs_to_take(&self, condition: &str, args: &[Value]) -> Result<Vec<QueuedRun>, StoreError> {
        self.with(|c| {
            c.query_map(&runs_to_take_sql(condition), args, |r| {
                Ok(QueuedRun {
                    id: r.get(0)?,
                    plugin: r.get(1)?,
                    route: r.get(2)?,
                    target: r.get(3)?,
                    node: r.get(4)?,
                })
            })
        })
    }

    pub fn queue_depth(&self) -> Result<u64, StoreError> {
        self.with(count_queued)
    }

    /// Take a queued run for this process under `rules`, writing its
    /// `run-started` record (whose body `started` makes from the claimed
    /// run) in the same transaction. Every claim in the fleet takes the
    /// store's write lock, so the blast radius is counted and the run taken
    /// atomically: two agents never both take the last place.
    pub fn claim(
        &self,
        id: &str,
        rules: &ClaimRules<'_>,
        started: impl Fn(&ClaimedRun) -> serde_json::Value,
    ) -> Result<Claim, StoreError> {
        // Planning comes next, which changes nothing; the first intent or
        // the run's end, both durable, put the claim on disk.
        self.in_ordered_tx(|c| {
            let now = now_ms();
            let Some((route, node, dry_run, resumed)) = c.query_opt(
                "SELECT route, node, dry_run, status = 'waiting' FROM runs
                 WHERE id = ?1 AND (status = 'queued' OR status = 'waiting' AND due_ms <= ?2)",
                args![id, now],
                |r| {
                    Ok((
                        r.get::<Option<String>>(0)?,
                        r.get::<Option<String>>(1)?,
                        r.get::<bool>(2)?,
                        r.get::<bool>(3)?,
                    ))
                },
            )?
            else {
                return Ok(Claim::Gone);
            };
            let executes = !dry_run && rules.force_dry_run.is_none();
            if let (true, Some(route), Some(node)) = (executes, &route, &node)
                && let Some(why) = held_back(c, route, node, &rules.radius)?
            {
                // Shown as the queued run's reason until it is taken.
                c.execute("UPDATE runs SET reason = ?2 WHERE id = ?1", args![id, why])?;
                return Ok(Claim::Held(why));
            }
            c.execute(
                // A resumed run keeps the time it first started, and stays
                // a dry-run, saying why, if its first stint was made one.
                "UPDATE runs SET status = 'running', owner = ?2,
                        started_ms = COALESCE(CASE WHEN status = 'waiting' THEN started_ms END, ?3),
                        dry_run = dry_run OR ?4, forced_dry_run = COALESCE(forced_dry_run, ?5),
                        reason = COALESCE(forced_dry_run, ?5), lease_ms = ?6, due_ms = NULL
                 WHERE id = ?1 AND status IN ('queued', 'waiting')",
                args![
                    id,
                    crate::sys::this_process(),
                    now,
                    rules.force_dry_run.is_some(),
                    rules.force_dry_run,
                    rules.lease.map(|lease| now + lease.as_millis() as i64)
                ],
            )?;
            let claimed = c.query_row(
                "SELECT plugin, route, alert, params, dry_run, approval, started_ms - created_ms,
                        CASE WHEN approved_by IS NOT NULL THEN approval_plan END, node
                 FROM runs WHERE id = ?1",
                args![id],
                |r| {
                    let approved: Option<String> = r.get(7)?;
                    Ok(ClaimedRun {
                        id: id.to_string(),
                        plugin: r.get(0)?,
                        route: r.get(1)?,
                        alert: r.json(2)?,
                        params: r.json(3)?,
                        dry_run: r.get(4)?,
                        approval: r.get(5)?,
                        approved: approved.map(|_| r.json(7)).transpose()?,
                        queued_for: Duration::from_millis(r.get::<i64>(6)?.max(0) as u64),
                        node: r.get(8)?,
                        resumed,
                    })
                },
            )?;
            let kind = if resumed {
                "run-resumed"
            } else {
                "run-started"
            };
            super::audit::append(c, kind, Some(id), &started(&claimed))?;
            Ok(Claim::Taken(Box::new(claimed)))
        })
    }

    /// Mark `running` runs whose process is gone as `interrupted`: they were
    /// executing when it died, and are never silently executed again.
    /// A SQLite file is one machine's, so a run started before the machine
    /// restarted is gone too. A shared PostgreSQL store holds other
    /// machines' runs, which this one cannot judge and leaves alone.
    pub fn interrupt_orphans(&self) -> Result<Vec<String>, StoreError> {
        use crate::sys::Liveness;
        let shared = self.is_shared();
        let running = self.with(|c| {
            c.query_map(
                "SELECT id, owner FROM runs WHERE status = 'running'",
                &[],
                |r| Ok((r.get::<String>(0)?, r.get::<Option<String>>(1)?)),
            )
        })?;
        let mut interrupted = Vec::new();
        for (id, owner) in running {
            let owner = owner.unwrap_or_default();
            match crate::sys::liveness(&owner) {
                Liveness::Alive => continue,
                Liveness::OtherBoot if shared => continue,
                Liveness::OtherBoot | Liveness::Dead => {}
            }
            let pid = owner.split(':').next().unwrap_or("?");
            self.interrupt(
                &id,
                &format!(
                    "the remedy process (pid {pid}) stopped while this run was executing; \
                     it was not executed again: check its actions and re-run by hand if needed"
                ),
            )?;
            interrupted.push(id);
        }
        Ok(interrupted)
    }

    /// Mark as `interrupted` the runs this process claimed and no longer
    /// executes (`executing` are those it does): their worker stopped when
    /// the store could not be written, so their end was never recorded.
    pub fn interrupt_abandoned(&self, executing: &[String]) -> Result<Vec<String>, StoreError> {
        let owner = crate::sys::this_process();
        let mine: Vec<String> = self.with(|c| {
            c.query_map(
                "SELECT id FROM runs WHERE status = 'running' AND owner = ?1",
                args![owner],
                |r| r.get(0),
            )
        })?;
        let abandoned: Vec<String> = mine
            .into_iter()
            .filter(|id| !executing.contains(id))
            .collect();
        for id in &abandoned {
            self.interrupt(
                id,
                "the state store could not be written while this run was executing, so it \
                 stopped; it was not executed again: check its actions and re-run by hand if needed",
            )?;
        }
        Ok(abandoned)
    }

    /// End a `running` run as `interrupted`, with its audit record.
    pub fn interrupt(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        self.in_tx(|c| {
            let changed = c.execute(
                "UPDATE runs SET status = 'interrupted', reason = ?2, finished_ms = ?3
                 WHERE id = ?1 AND status = 'running'",
                args![id, reason, now_ms()],
            )?;
            if changed == 0 {
                return Ok(());
            }
            super::audit::append_finished(c, id, RunStatus::Interrupted, reason)
        })
    }
}

/// Kept as runs enter and leave the queue (`insert_run` and migration
/// V4's triggers): counting would walk every queued run, once per group
/// commit.
fn count_queued(c: &mut dyn Db) -> DbResult<u64> {
    c.query_row("SELECT queued FROM heads WHERE id = 1", &[], |r| {
        r.get::<i64>(0)
    })
    .map(|n| n.max(0) as u64)
}

/// The most runs `batch` can queue: one per candidate route of each firing
/// alert, before duplicates and cooldowns are known.
fn most_queued(batch: &[Incoming<'_>]) -> u64 {
    batch
        .iter()
        .map(|incoming| match incoming {
            Incoming::Firing { candidates, .. } => candidates.len() as u64,
            Incoming::Resolved { .. } => 0,
        })
        .sum()
}

/// One request's alerts, each logged and audited with what became of it;
/// `QueueFull` as soon as one would take the queue past `max_queued`.
fn admit_batch(
    tx: &mut dyn Db,
    chain: &mut Chain,
    batch: &[Incoming<'_>],
    depth: &mut u64,
    max_queued: u64,
) -> DbResult<Result<Admitted, QueueFull>> {
    let mut admitted = Vec::with_capacity(batch.len());
    for incoming in batch {
        let admissions = admit_one(tx, chain, incoming, depth)?;
        if *depth > max_queued {
            return Ok(Err(QueueFull {
                depth: *depth,
                limit: max_queued,
            }));
        }
        let outcomes: Vec<&str> = admissions.iter().map(Admission::outcome).collect();
        let (status, alert) = match incoming {
            Incoming::Firing { alert, .. } => ("firing", alert),
            Incoming::Resolved { alert } => ("resolved", alert),
        };
        tx.execute(
            "INSERT INTO alerts (received_ms, status, fingerprint, alert, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            args![
                now_ms(),
                status,
                alert.fingerprint,
                to_json(*alert),
                outcomes.join(",")
            ],
        )?;
        let body = AlertDecided {
            decisions: &admissions,
            fingerprint: &alert.fingerprint,
            labels: Pairs(&alert.labels),
            status,
        };
        chain.append(tx, "alert", None, &body)?;
        admitted.push(admissions);
    }
    Ok(Ok(admitted))
}

/// The runs a poll takes, one query per status so that each reads only its
/// status's own index (migration V8): the waiting runs due by `?3`, then
/// the queued ones, oldest first and no more than the limit.
const DUE: &str = "status = 'waiting' AND due_ms <= ?3";
const QUEUED: &str = "status = 'queued'";

fn runs_to_take_sql(condition: &str) -> String {
    format!(
        "SELECT id, plugin, route, target, node FROM runs
         WHERE {condition} AND (CAST(?2 AS TEXT) IS NULL OR node IS NULL
                                OR lower(node) = lower(CAST(?2 AS TEXT)))
         ORDER BY created_ms, id LIMIT ?1"
    )
}

/// Cancel the queued runs of the resolved alert `?1`, found through its
/// dedup keys (which retention keeps while their run is queued). The queue
/// is not walked: `status` is tested in the subquery, so the planner looks
/// runs up by id rather than reading every queued one.
const CANCEL_QUEUED_RUNS: &str =
    "UPDATE runs SET status = 'cancelled', finished_ms = ?2, reason = ?3
     WHERE id IN (SELECT d.run_id FROM deliveries d JOIN runs r ON r.id = d.run_id
                  WHERE d.fingerprint = ?1 AND r.status = 'queued')
     RETURNING id";

fn admit_one(
    tx: &mut dyn Db,
    chain: &mut Chain,
    incoming: &Incoming<'_>,
    depth: &mut u64,
) -> DbResult<Vec<Admission>> {
    let (alert, candidates) = match incoming {
        Incoming::Resolved { alert } => {
            const WHY: &str = "the alert resolved before the run started";
            let cancelled: Vec<String> = tx.query_map(
                CANCEL_QUEUED_RUNS,
                args![alert.fingerprint, now_ms(), WHY],
                |r| r.get(0),
            )?;
            for id in &cancelled {
                chain.append_finished(tx, id, RunStatus::Cancelled, WHY)?;
            }
            *depth -= cancelled.len() as u64;
            return Ok(vec![Admission::Resolved { cancelled }]);
        }
        Incoming::Firing { alert, candidates } => (alert, candidates),
    };
    if candidates.is_empty() {
        return Ok(vec![Admission::Unrouted]);
    }
    let mut admissions = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let route = candidate.run.route.unwrap_or_default().to_string();
        let seen: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM deliveries
              WHERE route = ?1 AND fingerprint = ?2 AND starts_at = ?3)",
            args![route, alert.fingerprint, alert.starts_at],
            |r| r.get(0),
        )?;
        if seen {
            admissions.push(Admission::Duplicate { route });
            continue;
        }
        let admission = match last_run_within_cooldown(tx, &route, candidate)? {
            Some(last_run) => Admission::CoolingDown {
                route: route.clone(),
                last_run,
            },
            None => place(tx, chain, candidate, route.clone(), depth)?,
        };
        record_delivery(tx, &route, alert, &admission)?;
        admissions.push(admission);
    }
    Ok(admissions)
}

/// The route's last run for the candidate's group within its cooldown.
fn last_run_within_cooldown(
    tx: &mut dyn Db,
    route: &str,
    candidate: &Candidate<'_>,
) -> DbResult<Option<String>> {
    if candidate.cooldown.is_zero() {
        return Ok(None);
    }
    tx.query_opt(
        "SELECT id FROM runs WHERE route = ?1 AND group_key IS NOT DISTINCT FROM ?2
           AND status != 'cancelled' AND created_ms >= ?3
         ORDER BY created_ms DESC LIMIT 1",
        args![
            route,
            candidate.placement.group_key,
            now_ms() - candidate.cooldown.as_millis() as i64
        ],
        |r| r.get(0),
    )
}

/// Queue the candidate's run, or record it escalated when this node must
/// not execute it.
fn place(
    tx: &mut dyn Db,
    chain: &mut Chain,
    candidate: &Candidate<'_>,
    route: String,
    depth: &mut u64,
) -> DbResult<Admission> {
    let run_id = candidate.run.id.to_string();
    if let Some(reason) = &candidate.refusal {
        insert_escalated(tx, chain, candidate, reason)?;
        return Ok(Admission::Escalated {
            route,
            run_id,
            reason: reason.clone(),
        });
    }
    insert_run(
        tx,
        chain,
        &candidate.run,
        RunStatus::Queued,
        &candidate.placement,
    )?;
    *depth += 1;
    Ok(Admission::Queued { route, run_id })
}

/// What became of this (route, fingerprint, startsAt): the key that makes a
/// redelivered alert a duplicate.
fn record_delivery(
    tx: &mut dyn Db,
    route: &str,
    alert: &Alert,
    admission: &Admission,
) -> DbResult<()> {
    let run_id = match admission {
        Admission::Queued { run_id, .. } | Admission::Escalated { run_id, .. } => {
            Some(run_id.as_str())
        }
        _ => None,
    };
    tx.execute(
        "INSERT INTO deliveries (route, fingerprint, starts_at, outcome, run_id, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![
            route,
            alert.fingerprint,
            alert.starts_at,
            admission.outcome(),
            run_id,
            now_ms()
        ],
    )?;
    Ok(())
}

/// Record a run this node must not execute: created and ended escalated,
/// each with its audit record, in the admission's transaction.
fn insert_escalated(
    tx: &mut dyn Db,
    chain: &mut Chain,
    candidate: &Candidate<'_>,
    reason: &str,
) -> DbResult<()> {
    insert_run(
        tx,
        chain,
        &candidate.run,
        RunStatus::Escalated,
        &candidate.placement,
    )?;
    tx.execute(
        "UPDATE runs SET reason = ?2, finished_ms = ?3 WHERE id = ?1",
        args![candidate.run.id, reason, now_ms()],
    )?;
    chain.append_finished(tx, candidate.run.id, RunStatus::Escalated, reason)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::contract::AlertStatus;

    #[derive(Debug, thiserror::Error)]
    pub(in crate::store) enum AdmitError {
        #[error(transparent)]
        QueueFull(#[from] QueueFull),
        #[error(transparent)]
        Store(#[from] StoreError),
    }

    impl Store {
        /// One webhook request admitted alone, as most tests admit.
        pub(in crate::store) fn admit(
            &self,
            batch: &[Incoming<'_>],
            max_queued: u64,
        ) -> Result<Admitted, AdmitError> {
            let mut answers = self.admit_group(&[batch], max_queued)?;
            Ok(answers.pop().expect("one answer per request")?)
        }
    }

    pub(in crate::store) fn alert(fingerprint: &str, status: AlertStatus) -> Alert {
        Alert {
            status,
            labels: vec![("alertname".into(), "A".into())],
            annotations: vec![],
            starts_at: "2026-11-21T10:00:00Z".into(),
            ends_at: None,
            fingerprint: fingerprint.into(),
        }
    }

    /// The queued runs a resolution of alert `fingerprint` cancels.
    pub(in crate::store) fn cancelled_by_resolving(
        store: &Store,
        fingerprint: &str,
    ) -> Vec<String> {
        let resolved = alert(fingerprint, AlertStatus::Resolved);
        let answer = store
            .admit(&[Incoming::Resolved { alert: &resolved }], 10)
            .unwrap();
        match &answer[0][..] {
            [Admission::Resolved { cancelled }] => cancelled.clone(),
            other => panic!("not a resolution: {other:?}"),
        }
    }

    pub(in crate::store) fn take(
        store: &Store,
        id: &str,
        rules: &ClaimRules<'_>,
    ) -> Option<ClaimedRun> {
        store
            .claim(id, rules, |_| serde_json::json!({}))
            .unwrap()
            .taken()
    }

    /// What an open breaker says of the runs it makes dry-runs, in tests.
    pub(in crate::store) const BREAKER_NOTE: &str =
        "circuit breaker of route `r` is open: ran in dry-run";

    /// Run `id`, for a firing alert of the same name, admitted and then
    /// taken while its route's breaker is open: a dry-run.
    pub(in crate::store) fn taken_under_open_breaker(store: &Store, id: &str) -> ClaimedRun {
        let alert = alert(id, AlertStatus::Firing);
        store
            .admit(&[firing(&alert, id, Duration::ZERO)], 10)
            .unwrap();
        let breaker = ClaimRules {
            force_dry_run: Some(BREAKER_NOTE),
            ..ClaimRules::default()
        };
        take(store, id, &breaker).expect("queued just now")
    }

    pub(in crate::store) fn candidate<'a>(
        id: &'a str,
        alert: &'a Alert,
        cooldown: Duration,
    ) -> Candidate<'a> {
        Candidate {
            run: NewRun {
                id,
                plugin: "p",
                plugin_version: "0",
                plugin_sha256: "00",
                trigger: "webhook",
                route: Some("r"),
                dry_run: true,
                alert,
                params: &[],
                node: None,
            },
            placement: RunPlacement {
                fingerprint: Some(alert.fingerprint.clone()),
                group_key: Some("{}".into()),
                ..Default::default()
            },
            cooldown,
            refusal: None,
        }
    }

    pub(in crate::store) fn firing<'a>(
        alert: &'a Alert,
        id: &'a str,
        cooldown: Duration,
    ) -> Incoming<'a> {
        Incoming::Firing {
            alert,
            candidates: vec![candidate(id, alert, cooldown)],
        }
    }

    #[test]
    fn a_full_queue_refuses_the_whole_batch() {
        super::super::each_backend(|open| {
            let store = open();
            let (a, b, c) = (
                alert("a", AlertStatus::Firing),
                alert("b", AlertStatus::Firing),
                alert("c", AlertStatus::Firing),
            );
            let batch = [
                firing(&a, "1", Duration::ZERO),
                firing(&b, "2", Duration::ZERO),
                firing(&c, "3", Duration::ZERO),
            ];
            let error = store.admit(&batch, 2).unwrap_err();
            assert!(
                matches!(
                    error,
                    AdmitError::QueueFull(QueueFull { depth: 3, limit: 2 })
                ),
                "{error}"
            );
            assert_eq!(
                store.queue_depth().unwrap(),
                0,
                "nothing of the batch was kept"
            );
            // Not even the dedup records: a retry is admitted.
            assert_eq!(store.admit(&batch[..2], 2).unwrap().len(), 2);
            assert_eq!(store.queue_depth().unwrap(), 2);
        });
    }

    /// The depth kept in `heads`, beside a count of the queued runs.
    fn depth_and_count(store: &Store) -> (u64, u64) {
        let counted: i64 = store
            .with(|c| {
                c.query_row(
                    "SELECT count(*) FROM runs WHERE status = 'queued'",
                    &[],
                    |r| r.get(0),
                )
            })
            .unwrap();
        (store.queue_depth().unwrap(), counted as u64)
    }

    /// Every way a run enters or leaves the queue moves the kept depth,
    /// and nothing else does: admission, cancellation, a claim, a run put
    /// back (as an approval does), a deleted run, and changes that leave a
    /// run's place in the queue as it was.
    #[test]
    fn the_queue_depth_follows_every_run_into_and_out_of_the_queue() {
        super::super::each_backend(|open| {
            let store = open();
            let alerts: Vec<Alert> = ["a", "b", "c"]
                .map(|name| alert(name, AlertStatus::Firing))
                .into();
            let batch: Vec<_> = alerts
                .iter()
                .zip(["1", "2", "3"])
                .map(|(alert, id)| firing(alert, id, Duration::ZERO))
                .collect();
            store.admit(&batch, 10).unwrap();
            assert_eq!(depth_and_count(&store), (3, 3), "admitted");
            let resolved = alert("a", AlertStatus::Resolved);
            store
                .admit(&[Incoming::Resolved { alert: &resolved }], 10)
                .unwrap();
            assert_eq!(depth_and_count(&store), (2, 2), "cancelled");
            take(&store, "2", &ClaimRules::default()).unwrap();
            assert_eq!(depth_and_count(&store), (1, 1), "claimed");
            let steps = [
                (
                    "UPDATE runs SET status = 'queued' WHERE id = '2'",
                    2,
                    "put back",
                ),
                (
                    "UPDATE runs SET reason = 'held' WHERE id = '2'",
                    2,
                    "status untouched",
                ),
                (
                    "UPDATE runs SET status = 'queued' WHERE id = '2'",
                    2,
                    "queued again",
                ),
                (
                    "UPDATE runs SET status = 'failed' WHERE id = '1'",
                    2,
                    "ended, not queued",
                ),
                ("DELETE FROM runs WHERE id = '3'", 1, "deleted while queued"),
                ("DELETE FROM runs WHERE id = '1'", 1, "deleted, not queued"),
            ];
            for (sql, depth, step) in steps {
                store.in_tx(|c| c.batch(sql)).unwrap();
                assert_eq!(depth_and_count(&store), (depth, depth), "{step}");
            }
        });
    }

    /// A store that already has queued runs when it gains the kept depth
    /// starts from their count.
    #[test]
    fn a_store_upgraded_with_queued_runs_starts_from_their_count() {
        use crate::store::schema::tests::{queued_run, sqlite_before};
        let dir = tempfile::tempdir().unwrap();
        let conn = sqlite_before(dir.path(), 4);
        let two = format!("{}{}", queued_run("1"), queued_run("2"));
        conn.execute_batch(&two).unwrap();
        drop(conn);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(depth_and_count(&store), (2, 2));
    }

    /// Requests committed together are admitted as if they came one by
    /// one: the one that would overfill the queue is refused whole, with
    /// no trace, and the requests before and after it are kept.
    #[test]
    fn a_group_admits_each_request_whole_or_not_at_all() {
        super::super::each_backend(|open| {
            let store = open();
            let alerts: Vec<Alert> = ["a", "b", "c", "d"]
                .map(|name| alert(name, AlertStatus::Firing))
                .into();
            let first = [firing(&alerts[0], "1", Duration::ZERO)];
            let too_many = [
                firing(&alerts[1], "2", Duration::ZERO),
                firing(&alerts[2], "3", Duration::ZERO),
            ];
            let last = [firing(&alerts[3], "4", Duration::ZERO)];
            let answers = store.admit_group(&[&first, &too_many, &last], 2).unwrap();
            assert!(
                matches!(answers[0].as_deref(), Ok([queued]) if matches!(queued[0], Admission::Queued { .. }))
            );
            assert_eq!(answers[1], Err(QueueFull { depth: 3, limit: 2 }));
            assert!(answers[2].is_ok(), "{:?}", answers[2]);
            let queued: Vec<String> = store
                .queued(10, None)
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(queued, ["1", "4"]);
            // The refused request left no dedup record: sent again, it is admitted.
            let again = store.admit_group(&[&too_many[..1]], 3).unwrap();
            assert!(again[0].is_ok(), "{:?}", again[0]);
            // A request that could overfill the queue but, being partly a
            // duplicate, does not, is kept whole.
            let e = alert("e", AlertStatus::Firing);
            let duplicate_and_new = [
                firing(&alerts[0], "5", Duration::ZERO),
                firing(&e, "6", Duration::ZERO),
            ];
            let kept = store.admit_group(&[&duplicate_and_new], 4).unwrap();
            assert!(kept[0].is_ok(), "{:?}", kept[0]);
            assert_eq!(store.queue_depth().unwrap(), 4);
            assert!(store.verify_audit().unwrap().is_ok());
        });
    }

    #[test]
    fn a_store_error_refuses_every_request_of_the_group() {
        super::super::each_backend(|open| {
            let store = open();
            let (a, b) = (
                alert("a", AlertStatus::Firing),
                alert("b", AlertStatus::Firing),
            );
            store.simulate_write_failure().unwrap();
            let error = store
                .admit_group(
                    &[
                        &[firing(&a, "1", Duration::ZERO)],
                        &[firing(&b, "2", Duration::ZERO)],
                    ],
                    10,
                )
                .unwrap_err();
            assert!(error.to_string().contains("read"), "{error}");
        });
    }

    #[test]
    fn a_resolved_alert_looks_its_runs_up_by_id_not_by_walking_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let plan = store.query_plan(CANCEL_QUEUED_RUNS, args!["f", 0_i64, "why"]);
        let runs: Vec<&str> = plan
            .lines()
            .filter(|step| step.contains(" runs "))
            .collect();
        assert!(runs.iter().all(|step| step.contains("(id=?)")), "{plan}");
    }

    /// Each poll reads its status's own index, which holds no finished run,
    /// on both backends.
    #[test]
    fn a_poll_reads_only_its_own_status_index() {
        super::super::each_backend(|open| {
            let store = open();
            let polls: [(_, _, &[Value]); 2] = [
                (DUE, "runs_waiting", args![10_i64, None::<String>, 0_i64]),
                (QUEUED, "runs_queued", args![10_i64, None::<String>]),
            ];
            for (condition, index, args) in polls {
                let plan = store.query_plan(&runs_to_take_sql(condition), args);
                assert!(plan.contains(index), "{condition}: {plan}");
            }
        });
    }

    #[test]
    fn duplicates_cooldown_cancellation_and_a_single_claim() {
        super::super::each_backend(|open| {
            let store = open();
            let a = alert("a", AlertStatus::Firing);
            let hour = Duration::from_secs(3600);
            let first = store.admit(&[firing(&a, "1", hour)], 10).unwrap();
            assert!(matches!(first[0][0], Admission::Queued { .. }));
            let again = store.admit(&[firing(&a, "2", hour)], 10).unwrap();
            assert_eq!(again[0][0], Admission::Duplicate { route: "r".into() });

            let mut later = alert("a", AlertStatus::Firing);
            later.starts_at = "2026-11-21T11:00:00Z".into();
            let cooling = store.admit(&[firing(&later, "3", hour)], 10).unwrap();
            assert_eq!(
                cooling[0][0],
                Admission::CoolingDown {
                    route: "r".into(),
                    last_run: "1".into()
                }
            );

            assert_eq!(cancelled_by_resolving(&store, "a"), ["1"]);
            assert!(
                take(&store, "1", &ClaimRules::default()).is_none(),
                "a cancelled run never starts"
            );

            let b = alert("b", AlertStatus::Firing);
            store.admit(&[firing(&b, "4", Duration::ZERO)], 10).unwrap();
            let breaker = ClaimRules {
                force_dry_run: Some("breaker open"),
                ..ClaimRules::default()
            };
            let claimed = take(&store, "4", &breaker).unwrap();
            assert!(claimed.dry_run);
            assert!(
                take(&store, "4", &ClaimRules::default()).is_none(),
                "claimed once only"
            );
        });
    }

    #[test]
    fn a_run_this_process_stopped_executing_is_interrupted_once() {
        super::super::each_backend(|open| {
            let store = open();
            queue_two(&store);
            for id in ["1", "2"] {
                take(&store, id, &ClaimRules::default()).unwrap();
            }
            let executing = vec!["2".to_string()];
            assert_eq!(store.interrupt_abandoned(&executing).unwrap(), ["1"]);
            assert!(store.interrupt_abandoned(&executing).unwrap().is_empty());
            let (kind, body) = last_record(&store, "1");
            assert_eq!(
                (kind.as_str(), body["status"].as_str()),
                ("finished", Some("interrupted"))
            );
            assert_eq!(last_record(&store, "2").0, "run-started", "still executing");
        });
    }

    /// Runs `1` and `2` queued, for alerts `a` and `b`.
    fn queue_two(store: &Store) {
        let (a, b) = (
            alert("a", AlertStatus::Firing),
            alert("b", AlertStatus::Firing),
        );
        let batch = [
            firing(&a, "1", Duration::ZERO),
            firing(&b, "2", Duration::ZERO),
        ];
        store.admit(&batch, 10).unwrap();
    }

    /// The kind and body of run `id`'s newest audit record.
    fn last_record(store: &Store, id: &str) -> (String, serde_json::Value) {
        let records = store.audit_of_run(id).unwrap();
        let last = records.last().expect("the run has audit records");
        (last.kind.clone(), last.body.clone())
    }

    #[test]
    fn every_change_of_a_run_is_audited_with_it() {
        super::super::each_backend(|open| {
            let store = open();
            queue_two(&store);
            assert_eq!(last_record(&store, "1").0, "run-created");

            // A resolved alert cancels its queued run, and says so in its trail.
            let resolved = alert("a", AlertStatus::Resolved);
            store
                .admit(&[Incoming::Resolved { alert: &resolved }], 10)
                .unwrap();
            let (kind, body) = last_record(&store, "1");
            assert_eq!(
                (kind.as_str(), body["status"].as_str()),
                ("finished", Some("cancelled"))
            );

            // The claim and its run-started record are one transaction.
            let started = serde_json::json!({ "plugin": "p", "marker": 7 });
            store
                .claim("2", &ClaimRules::default(), |_| started.clone())
                .unwrap()
                .taken()
                .unwrap();
            assert_eq!(last_record(&store, "2"), ("run-started".into(), started));

            // Ending a run as interrupted writes its end.
            store.interrupt("2", "remedy stopped").unwrap();
            let (kind, body) = last_record(&store, "2");
            assert_eq!(
                (kind.as_str(), body["status"].as_str()),
                ("finished", Some("interrupted"))
            );
            // Only a running run is interrupted, and only once.
            store.interrupt("2", "again").unwrap();
            assert_eq!(last_record(&store, "2").1["reason"], "remedy stopped");
            assert!(store.verify_audit().unwrap().is_ok());
        });
    }
}
