//! The state store: one SQLite database holding every run, each round's plan,
//! every action (intent first, result after) and the plugin's log lines.
//!
//! Writes are synchronous (`synchronous = FULL`): when a call returns, the
//! record survives a crash. A write that fails is an error the caller must
//! treat as fatal for the run: nothing may execute without its record.

use crate::caps::log::LogLine;
use crate::contract::{Action, ActionStatus, Alert, Plan};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod approval;
mod audit;
mod queue;
pub use approval::{ApprovalError, Approved, plan_hash};
pub use audit::{AuditRecord, Broken, Intact};
pub use queue::{Admission, AdmitError, Candidate, ClaimedRun, Incoming, QueuedRun, RunPlacement};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state store {path}: corrupt record: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("no run matches {0:?}")]
    UnknownRun(String),
    #[error("{0:?} matches more than one run; give more of the id")]
    AmbiguousRun(String),
}

/// How a run ended (or that it has not yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Running,
    Succeeded,
    NothingToDo,
    Escalated,
    Failed,
    Denied,
    TimedOut,
    Trapped,
    Interrupted,
    /// Accepted from a webhook, waiting for a worker.
    Queued,
    /// Queued, then its alert resolved before it started.
    Cancelled,
    /// Planned on an `approve` route; nothing runs until a human approves.
    AwaitingApproval,
}

impl RunStatus {
    pub const ALL: [RunStatus; 12] = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::NothingToDo,
        RunStatus::Escalated,
        RunStatus::Failed,
        RunStatus::Denied,
        RunStatus::TimedOut,
        RunStatus::Trapped,
        RunStatus::Interrupted,
        RunStatus::Queued,
        RunStatus::Cancelled,
        RunStatus::AwaitingApproval,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::NothingToDo => "nothing-to-do",
            RunStatus::Escalated => "escalated",
            RunStatus::Failed => "failed",
            RunStatus::Denied => "denied",
            RunStatus::TimedOut => "timed-out",
            RunStatus::Trapped => "trapped",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Queued => "queued",
            RunStatus::Cancelled => "cancelled",
            RunStatus::AwaitingApproval => "awaiting-approval",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// A failure that counts towards a route's circuit breaker.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RunStatus::Failed | RunStatus::TimedOut | RunStatus::Trapped | RunStatus::Denied
        )
    }
}

/// What a new run is about.
#[derive(Clone, Debug, Serialize)]
pub struct NewRun<'a> {
    pub id: &'a str,
    pub plugin: &'a str,
    pub plugin_version: &'a str,
    pub plugin_sha256: &'a str,
    /// `cli` or `webhook`.
    pub trigger: &'a str,
    /// The route that matched the alert, for webhook runs.
    pub route: Option<&'a str>,
    pub dry_run: bool,
    pub alert: &'a Alert,
    pub params: &'a [(String, String)],
}

#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub plugin: String,
    pub trigger: String,
    pub route: Option<String>,
    pub dry_run: bool,
    pub status: RunStatus,
    pub reason: Option<String>,
    pub created_at: String,
    /// Time spent queued before a worker took it.
    pub queue_ms: Option<u64>,
    /// From start (or creation, if it never started) to finish.
    pub duration_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActionRecord {
    pub round: u32,
    pub seq: u32,
    pub kind: String,
    pub action: Action,
    /// `intent` until the result is recorded.
    pub status: String,
    pub detail: String,
    pub duration_us: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RoundRecord {
    pub round: u32,
    pub plan: Plan,
    pub instantiate_us: u64,
    pub plan_us: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub plugin_version: String,
    pub plugin_sha256: String,
    pub alert: Alert,
    pub params: Vec<(String, String)>,
    pub rounds: Vec<RoundRecord>,
    pub actions: Vec<ActionRecord>,
    pub logs: Vec<LoggedLine>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LoggedLine {
    pub round: u32,
    pub level: String,
    pub message: String,
}

/// Filters for [`Store::list_runs`].
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub plugin: Option<String>,
    pub route: Option<String>,
    pub status: Option<RunStatus>,
    /// Only runs created at or after this time.
    pub since: Option<SystemTime>,
    pub limit: u32,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id             TEXT PRIMARY KEY,
    plugin         TEXT NOT NULL,
    plugin_version TEXT NOT NULL,
    plugin_sha256  TEXT NOT NULL,
    trigger        TEXT NOT NULL,
    dry_run        INTEGER NOT NULL,
    alert          TEXT NOT NULL,
    params         TEXT NOT NULL,
    status         TEXT NOT NULL,
    reason         TEXT,
    created_ms     INTEGER NOT NULL,
    finished_ms    INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_plugin ON runs (plugin, created_ms);
CREATE TABLE IF NOT EXISTS deliveries (
    route       TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    run_id      TEXT,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (route, fingerprint, starts_at)
);
CREATE TABLE IF NOT EXISTS alerts (
    id          INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    status      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    alert       TEXT NOT NULL,
    outcome     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS breakers (
    route     TEXT PRIMARY KEY,
    opened_ms INTEGER NOT NULL,
    reason    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    run_id         TEXT NOT NULL REFERENCES runs (id),
    round          INTEGER NOT NULL,
    plan           TEXT NOT NULL,
    instantiate_us INTEGER NOT NULL,
    plan_us        INTEGER NOT NULL,
    PRIMARY KEY (run_id, round)
);
CREATE TABLE IF NOT EXISTS actions (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    round       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    action      TEXT NOT NULL,
    status      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    intent_ms   INTEGER NOT NULL,
    duration_us INTEGER
);
CREATE INDEX IF NOT EXISTS actions_by_run ON actions (run_id, round, seq);
CREATE INDEX IF NOT EXISTS actions_by_time ON actions (status, intent_ms);
CREATE TABLE IF NOT EXISTS logs (
    run_id  TEXT NOT NULL REFERENCES runs (id),
    round   INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_run ON logs (run_id, round, seq);
";

pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn now_ms() -> i64 {
    system_ms(SystemTime::now())
}

fn system_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

impl Store {
    /// Open (or create) `state.db` in `dir`, creating `dir` private to this user.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        crate::sys::create_private_dir(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("state.db");
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sqlite)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(sqlite)?;
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        conn.execute_batch(audit::SCHEMA).map_err(sqlite)?;
        add_missing_columns(&conn).map_err(sqlite)?;
        Ok(Store {
            path,
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        // A panic while holding the lock leaves SQLite consistent; keep going.
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&conn).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// `work` and the audit records it appends, committed together. The write
    /// lock is taken up front: the audit append reads the chain's head before
    /// writing, and a read-then-write transaction would fail, not wait, when
    /// another connection wrote in between.
    fn in_tx<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.with(|c| {
            let tx =
                rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            let crash = crash_test::armed(&tx)?;
            let out = work(&tx)?;
            tx.commit()?;
            if let Some(point) = crash {
                point.fire_if_reached(c)?;
            }
            Ok(out)
        })
    }

    /// Make every later write fail, as a full or read-only disk would.
    #[doc(hidden)]
    pub fn simulate_write_failure(&self) -> Result<(), StoreError> {
        self.with(|c| c.execute_batch("PRAGMA query_only = ON;"))
    }

    /// Record a run this process starts right away.
    pub fn create_run(&self, run: &NewRun<'_>) -> Result<(), StoreError> {
        self.in_tx(|c| queue::insert_run(c, run, RunStatus::Running, &RunPlacement::default()))
    }

    pub fn record_round(
        &self,
        run_id: &str,
        round: u32,
        plan: &Plan,
        instantiate: Duration,
        planning: Duration,
    ) -> Result<(), StoreError> {
        let json = to_json(plan);
        self.in_tx(|c| {
            c.execute(
                "INSERT INTO rounds (run_id, round, plan, instantiate_us, plan_us)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    run_id,
                    round,
                    json,
                    instantiate.as_micros() as i64,
                    planning.as_micros() as i64
                ],
            )?;
            audit::append(
                c,
                "plan",
                Some(run_id),
                &serde_json::json!({ "round": round, "plan": plan }),
            )
        })
    }

    /// Record that `action` is about to be executed (or planned); returns its record id.
    pub fn record_intent(
        &self,
        run_id: &str,
        round: u32,
        seq: u32,
        action: &Action,
    ) -> Result<i64, StoreError> {
        let json = to_json(action);
        self.in_tx(|c| {
            c.execute(
                "INSERT INTO actions (run_id, round, seq, kind, action, status, intent_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'intent', ?6)",
                params![run_id, round, seq, action.kind(), json, now_ms()],
            )?;
            let id = c.last_insert_rowid();
            let body = serde_json::json!({ "action_id": id, "round": round, "seq": seq, "action": action });
            audit::append(c, "intent", Some(run_id), &body)?;
            Ok(id)
        })
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
            let mut query = c.prepare_cached(
                "SELECT a.run_id, a.intent_ms, a.action FROM actions a JOIN runs r ON r.id = a.run_id
                 WHERE r.plugin = ?1 AND a.status = 'done' AND a.intent_ms >= ?2
                 ORDER BY a.intent_ms DESC, a.id DESC LIMIT ?3",
            )?;
            let rows = query.query_map(params![plugin, since, limit as i64], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
            })?;
            let mut recent = Vec::new();
            for row in rows {
                let (run_id, at, json) = row?;
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
        self.in_tx(|c| {
            let run_id: String = c.query_row(
                "UPDATE actions SET status = ?2, detail = ?3, duration_us = ?4 WHERE id = ?1
                 RETURNING run_id",
                params![action_id, status.as_str(), detail, took.as_micros() as i64],
                |row| row.get(0),
            )?;
            let body = serde_json::json!({ "action_id": action_id, "status": status.as_str(), "detail": detail });
            audit::append(c, "result", Some(&run_id), &body)
        })
    }

    pub fn record_logs(
        &self,
        run_id: &str,
        round: u32,
        lines: &[LogLine],
    ) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO logs (run_id, round, seq, level, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (seq, line) in lines.iter().enumerate() {
                    insert.execute(params![run_id, round, seq as i64, line.level, line.message])?;
                }
            }
            tx.commit()
        })
    }

    pub fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.in_tx(|c| {
            c.execute(
                // A reason set when the run started (an open circuit breaker) is kept in front.
                "UPDATE runs SET status = ?2, reason = COALESCE(reason || '; ', '') || ?3,
                        finished_ms = ?4
                 WHERE id = ?1",
                params![run_id, status.as_str(), reason, now_ms()],
            )?;
            let body = serde_json::json!({ "status": status.as_str(), "reason": reason });
            audit::append(c, "finished", Some(run_id), &body)
        })
    }

    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let rows = self.with(|c| {
            let mut query = c.prepare(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM runs
                     WHERE (?1 IS NULL OR plugin = ?1) AND (?2 IS NULL OR status = ?2)
                       AND (?3 IS NULL OR route = ?3) AND created_ms >= ?4
                     ORDER BY created_ms DESC, id DESC LIMIT ?5"
            ))?;
            let since = filter.since.map_or(0, system_ms);
            let rows = query.query_map(
                params![
                    filter.plugin,
                    filter.status.map(RunStatus::as_str),
                    filter.route,
                    since,
                    filter.limit
                ],
                summary_row,
            )?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(|row| self.summary(row)).collect()
    }

    fn summary(&self, row: SummaryRow) -> Result<RunSummary, StoreError> {
        let status = RunStatus::parse(&row.status).ok_or_else(|| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("run {} has unknown status {:?}", row.id, row.status),
        })?;
        Ok(RunSummary {
            id: row.id,
            plugin: row.plugin,
            trigger: row.trigger,
            route: row.route,
            dry_run: row.dry_run,
            status,
            reason: row.reason,
            created_at: rfc3339(row.created_ms),
            queue_ms: row.started_ms.map(|s| (s - row.created_ms).max(0) as u64),
            duration_ms: row
                .finished_ms
                .map(|f| (f - row.started_ms.unwrap_or(row.created_ms)).max(0) as u64),
        })
    }

    /// A run by its id or an unambiguous prefix of it.
    /// The full id of the one run whose id starts with `id_or_prefix`.
    pub fn resolve_run(&self, id_or_prefix: &str) -> Result<String, StoreError> {
        let pattern = format!("{}%", id_or_prefix.replace(['%', '_'], ""));
        let mut ids = self.with(|c| {
            let mut query = c.prepare("SELECT id FROM runs WHERE id LIKE ?1 LIMIT 2")?;
            query
                .query_map([&pattern], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        match ids.len() {
            0 => Err(StoreError::UnknownRun(id_or_prefix.into())),
            1 => Ok(ids.remove(0)),
            _ => Err(StoreError::AmbiguousRun(id_or_prefix.into())),
        }
    }

    pub fn get_run(&self, id_or_prefix: &str) -> Result<RunDetail, StoreError> {
        let id = self.resolve_run(id_or_prefix)?;
        let (row, version, sha, alert, params) = self
            .with(|c| {
                c.query_row(
                    &format!(
                        "SELECT {SUMMARY_COLUMNS}, plugin_version, plugin_sha256, alert, params
                         FROM runs WHERE id = ?1"
                    ),
                    [&id],
                    |r| {
                        Ok((
                            summary_row(r)?,
                            r.get::<_, String>(SUMMARY_WIDTH)?,
                            r.get::<_, String>(SUMMARY_WIDTH + 1)?,
                            r.get::<_, String>(SUMMARY_WIDTH + 2)?,
                            r.get::<_, String>(SUMMARY_WIDTH + 3)?,
                        ))
                    },
                )
                .optional()
            })?
            .ok_or_else(|| StoreError::UnknownRun(id.clone()))?;

        let rounds = self.with(|c| {
            let mut query = c.prepare(
                "SELECT round, plan, instantiate_us, plan_us FROM rounds WHERE run_id = ?1 ORDER BY round",
            )?;
            query
                .query_map([&id], |r| {
                    Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let actions = self.with(|c| {
            let mut query = c.prepare(
                "SELECT round, seq, kind, action, status, detail, duration_us
                 FROM actions WHERE run_id = ?1 ORDER BY round, seq",
            )?;
            query
                .query_map([&id], |r| {
                    Ok((
                        r.get::<_, u32>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let logs = self.with(|c| {
            let mut query = c.prepare(
                "SELECT round, level, message FROM logs WHERE run_id = ?1 ORDER BY round, seq",
            )?;
            query
                .query_map([&id], |r| {
                    Ok(LoggedLine {
                        round: r.get(0)?,
                        level: r.get(1)?,
                        message: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;

        Ok(RunDetail {
            summary: self.summary(row)?,
            plugin_version: version,
            plugin_sha256: sha,
            alert: self.decode(&id, "alert", &alert)?,
            params: self.decode(&id, "params", &params)?,
            rounds: rounds
                .into_iter()
                .map(|(round, plan, instantiate_us, plan_us)| {
                    Ok(RoundRecord {
                        round,
                        plan: self.decode(&id, "plan", &plan)?,
                        instantiate_us: instantiate_us.max(0) as u64,
                        plan_us: plan_us.max(0) as u64,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            actions: actions
                .into_iter()
                .map(|(round, seq, kind, action, status, detail, took)| {
                    Ok(ActionRecord {
                        round,
                        seq,
                        kind,
                        action: self.decode(&id, "action", &action)?,
                        status,
                        detail,
                        duration_us: took.map(|t| t.max(0) as u64),
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            logs,
        })
    }
}

impl Store {
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        run: &str,
        what: &str,
        json: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("{what} of run {run}: {e}"),
        })
    }
}

const SUMMARY_COLUMNS: &str =
    "id, plugin, trigger, route, dry_run, status, reason, created_ms, started_ms, finished_ms";
const SUMMARY_WIDTH: usize = 10;

struct SummaryRow {
    id: String,
    plugin: String,
    trigger: String,
    route: Option<String>,
    dry_run: bool,
    status: String,
    reason: Option<String>,
    created_ms: i64,
    started_ms: Option<i64>,
    finished_ms: Option<i64>,
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SummaryRow> {
    Ok(SummaryRow {
        id: r.get(0)?,
        plugin: r.get(1)?,
        trigger: r.get(2)?,
        route: r.get(3)?,
        dry_run: r.get(4)?,
        status: r.get(5)?,
        reason: r.get(6)?,
        created_ms: r.get(7)?,
        started_ms: r.get(8)?,
        finished_ms: r.get(9)?,
    })
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Contract types are plain data; serialising them cannot fail.
    serde_json::to_string(value).expect("contract types serialise to JSON")
}

/// Columns added to `runs` after its first release, with their indexes.
/// `ALTER TABLE ... ADD COLUMN` keeps older state stores readable.
const RUN_COLUMNS: [(&str, &str); 11] = [
    ("route", "TEXT"),
    ("fingerprint", "TEXT"),
    ("group_key", "TEXT"),
    ("target", "TEXT"),
    ("approval", "INTEGER NOT NULL DEFAULT 0"),
    ("owner", "TEXT"),
    ("started_ms", "INTEGER"),
    ("approval_plan", "TEXT"),
    ("approval_hash", "TEXT"),
    ("approved_by", "TEXT"),
    ("approved_ms", "INTEGER"),
];

fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    let existing = conn
        .prepare("SELECT name FROM pragma_table_info('runs')")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (name, kind) in RUN_COLUMNS {
        if !existing.iter().any(|e| e == name) {
            conn.execute_batch(&format!("ALTER TABLE runs ADD COLUMN {name} {kind};"))?;
        }
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_ms);
         CREATE INDEX IF NOT EXISTS runs_by_group ON runs (route, group_key, created_ms);
         CREATE INDEX IF NOT EXISTS runs_by_fingerprint ON runs (fingerprint, status);",
    )
}

/// Crash tests: with `REMEDY_TEST_ABORT_AFTER=KIND` in its environment,
/// remedy aborts (no clean-up, as a kill -9 would) right after committing
/// the first transaction that holds an audit record of that kind
/// (`run-started`, `plan`, `intent`, `result`, `finished`, ...). Unset, it
/// costs one look at a cached value per transaction.
mod crash_test {
    use rusqlite::{Connection, OptionalExtension};
    use std::sync::OnceLock;

    fn kind() -> Option<&'static str> {
        static KIND: OnceLock<Option<String>> = OnceLock::new();
        KIND.get_or_init(|| std::env::var("REMEDY_TEST_ABORT_AFTER").ok())
            .as_deref()
    }

    pub struct Armed {
        kind: &'static str,
        head: i64,
    }

    /// Where the audit trail stands before a transaction, when armed.
    pub fn armed(c: &Connection) -> rusqlite::Result<Option<Armed>> {
        let Some(kind) = kind() else { return Ok(None) };
        let head = c
            .query_row("SELECT seq FROM audit_head WHERE id = 1", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        Ok(Some(Armed { kind, head }))
    }

    impl Armed {
        pub fn fire_if_reached(&self, c: &Connection) -> rusqlite::Result<()> {
            let reached: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM audit WHERE seq > ?1 AND kind = ?2)",
                rusqlite::params![self.head, self.kind],
                |r| r.get(0),
            )?;
            if reached {
                eprintln!("remedy: REMEDY_TEST_ABORT_AFTER={}: aborting", self.kind);
                std::process::abort();
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{AlertStatus, FileIdentity, RemovePath};

    fn alert() -> Alert {
        Alert {
            status: AlertStatus::Firing,
            labels: vec![("alertname".into(), "DiskSpaceLow".into())],
            annotations: vec![],
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: None,
            fingerprint: "abc".into(),
        }
    }

    fn new_run<'a>(id: &'a str, alert: &'a Alert) -> NewRun<'a> {
        NewRun {
            id,
            plugin: "disk-cleanup",
            plugin_version: "0.1.0",
            plugin_sha256: "00",
            trigger: "cli",
            route: None,
            dry_run: false,
            alert,
            params: &[],
        }
    }

    #[test]
    fn a_run_round_trips_with_its_actions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let alert = alert();
        store.create_run(&new_run("0190-a", &alert)).unwrap();
        let action = Action::RemovePath(RemovePath {
            path: "/x".into(),
            identity: FileIdentity {
                device: 1,
                inode: 2,
                size: 3,
                mtime_ns: 4,
            },
            reason: "old".into(),
        });
        let id = store.record_intent("0190-a", 0, 0, &action).unwrap();
        let intent = store.get_run("0190").unwrap();
        assert_eq!(
            intent.actions[0].status, "intent",
            "intent is visible before the result"
        );
        store
            .record_result(
                id,
                ActionStatus::Done,
                "freed 3 bytes",
                Duration::from_micros(7),
            )
            .unwrap();
        store
            .finish_run("0190-a", RunStatus::Succeeded, "ok")
            .unwrap();

        let run = store.get_run("0190").unwrap();
        assert_eq!(run.summary.status, RunStatus::Succeeded);
        assert_eq!(run.actions[0].action, action);
        assert_eq!(run.actions[0].status, "done");
        assert_eq!(run.alert, alert);
        assert_eq!(
            store
                .list_runs(&RunFilter {
                    limit: 10,
                    ..Default::default()
                })
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn prefixes_must_be_unambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let alert = alert();
        store.create_run(&new_run("0190-a", &alert)).unwrap();
        store.create_run(&new_run("0190-b", &alert)).unwrap();
        assert!(matches!(
            store.get_run("0190"),
            Err(StoreError::AmbiguousRun(_))
        ));
        assert!(matches!(
            store.get_run("%"),
            Err(StoreError::AmbiguousRun(_))
        ));
        assert!(matches!(
            store.get_run("zzz"),
            Err(StoreError::UnknownRun(_))
        ));
        assert_eq!(store.get_run("0190-b").unwrap().summary.id, "0190-b");
    }

    #[test]
    fn failed_writes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.simulate_write_failure().unwrap();
        let alert = alert();
        let error = store.create_run(&new_run("x", &alert)).unwrap_err();
        assert!(error.to_string().contains("state.db"), "{error}");
    }

    #[test]
    fn state_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("nested/state");
        Store::open(&state).unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
