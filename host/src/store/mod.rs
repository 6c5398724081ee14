//! The state store: one SQLite database holding every run, each round's plan,
//! every action (intent first, result after) and the plugin's log lines.
//!
//! A write that remedy acts on is durable when the call returns: an
//! admission before its 202, an intent before its effect, a run's end
//! before anyone hears of it. The writes between (a claim, a plan that
//! leads to intents, a dry-run's actions) are ordered instead: a killed
//! remedy keeps them, and the next durable commit puts them on disk too
//! (`backend::Commit`). A write that fails is an error the caller must
//! treat as fatal for the run: nothing may execute without its record.
//!
//! `schema.rs` holds the tables, `runs.rs` a run's records as it goes,
//! `history.rs` reading runs back, `queue.rs` admission, claims and
//! breakers, `approval.rs` approvals, `audit.rs` the hash chain; this file
//! opens the store and runs transactions.

use crate::contract::Alert;
use backend::{Backend, Commit, PgConnection};
use serde::Serialize;
use sql::{Db, DbError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod approval;
mod audit;
mod backend;
mod backfill;
mod breakers;
mod checkpoint;
mod fleet;
mod flush;
mod history;
mod parking;
mod queue;
mod reserve;
mod retention;
mod runs;
mod schema;
mod sql;
pub use approval::{ApprovalError, Approved, Awaiting, plan_hash};
pub use audit::{AuditRecord, Broken, Intact};
pub use backend::Listener;
pub use breakers::{BreakerRule, OpenedBreaker};
pub use checkpoint::{Signed, key_id, new_key_pair, read_public_key, read_signing_key};
pub use fleet::{Member, QUEUE_CHANNEL, Seen, Unattended};
pub use history::{
    ActionRecord, LoggedLine, RoundRecord, RunCount, RunDetail, RunFilter, RunSummary,
};
pub use queue::{
    Admission, Admitted, BlastRadius, Candidate, Claim, ClaimRules, ClaimedRun, Incoming,
    QueueFull, QueuedRun, RunPlacement,
};
pub use retention::{DECIDING, Pruned, Retention};
pub use runs::{Judged, NewRound};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state store {store}: {source}")]
    Database { store: String, source: DbError },
    #[error("state store {store}: {source}")]
    Migrate {
        store: String,
        source: schema::MigrateError,
    },
    #[error("state store {store}: corrupt record: {detail}")]
    Corrupt { store: String, detail: String },
    #[error("state store {store}: {detail}")]
    Config { store: String, detail: String },
    #[error(
        "run {run} is {status} and no longer this process's to execute (its lease ran out); \
         nothing more of it executes"
    )]
    NotExecuting { run: String, status: String },
    #[error("no run matches {0:?}")]
    UnknownRun(String),
    #[error("{0:?} matches more than one run; give more of the id")]
    AmbiguousRun(String),
}

impl StoreError {
    /// `run`, found `status`, is no longer this process's to execute.
    fn not_executing(run: &str, status: String) -> StoreError {
        StoreError::NotExecuting {
            run: run.to_string(),
            status,
        }
    }
}

/// How a run ended (or that it has not yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    /// Watching between rounds: parked until its next round is due, when
    /// any worker resumes it.
    Waiting,
}

impl RunStatus {
    pub const ALL: [RunStatus; 13] = [
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
        RunStatus::Waiting,
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
            RunStatus::Waiting => "waiting",
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

    /// The failure statuses as an SQL list: `'failed','timed-out',…`.
    fn failures_sql() -> String {
        let quoted: Vec<String> = RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_failure())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        quoted.join(",")
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
    /// The node the run is for; `None` when any node may execute it.
    pub node: Option<&'a str>,
}

/// Where a store's data is: a SQLite file in a state directory, or a
/// PostgreSQL database.
#[derive(Clone)]
pub enum Location {
    Dir(PathBuf),
    Postgres(Postgres),
}

/// A PostgreSQL database and how to reach it.
#[derive(Clone, Default)]
pub struct Postgres {
    /// `postgres://user@host:port/database?sslmode=require`, without the password.
    pub url: String,
    pub password: Option<String>,
    /// TLS: the CA that signed the server's certificate (else the system's
    /// roots), and a client certificate and key where the server asks for one.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl Postgres {
    /// Just a URL, as the tests make them.
    pub fn at(url: &str) -> Postgres {
        Postgres {
            url: url.to_string(),
            ..Postgres::default()
        }
    }

    /// TLS as `sslmode` in the URL asks: `prefer` (the default) uses it where
    /// the server offers it, `require` refuses a server that does not. The
    /// server's certificate is always verified, against `ca_file` or the
    /// system's roots, for the host the URL names.
    fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
        let files = crate::sys::tls::ClientFiles {
            ca_file: self.ca_file.as_deref(),
            cert_file: self.cert_file.as_deref(),
            key_file: self.key_file.as_deref(),
        };
        crate::sys::tls::client_config(files)
            .map(tokio_postgres_rustls::MakeRustlsConnect::new)
            .map_err(|problem| format!("[store] {problem}"))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.join("state.db").display()),
            Location::Postgres(postgres) => f.write_str(&postgres.url),
        }
    }
}

pub struct Store {
    /// The SQLite file, or the PostgreSQL database without its password.
    location: String,
    backend: Backend,
    /// Space kept beside a SQLite file for a full disk (`reserve.rs`).
    reserve: Option<PathBuf>,
    /// Each route's breaker rule, for the ends of its runs (`breakers.rs`).
    breaker_rules: std::sync::RwLock<std::collections::HashMap<String, BreakerRule>>,
    /// Breakers opened by runs' ends, not yet told.
    opened: Mutex<Vec<OpenedBreaker>>,
}

/// Milliseconds since the Unix epoch, as the store records times.
pub fn now_ms() -> i64 {
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
    pub fn open_at(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::Dir(dir) => Store::open(dir),
            Location::Postgres(postgres) => Store::connect(postgres),
        }
    }

    /// Open (or create) `state.db` in `dir`, creating `dir` private to this user.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        crate::sys::create_private_dir(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("state.db");
        let location = path.display().to_string();
        let reserve = reserve::path(dir);
        let connected = match connect_sqlite(&path) {
            Err(e) if reserve::out_of_space(&e) && reserve::release(&reserve) => {
                connect_sqlite(&path)
            }
            connected => connected,
        };
        let mut conn = connected.map_err(|source| StoreError::Database {
            store: location.clone(),
            source: source.into(),
        })?;
        schema::migrate_sqlite(&mut conn).map_err(|source| StoreError::Migrate {
            store: location.clone(),
            source,
        })?;
        Ok(Store {
            location,
            backend: Backend::Sqlite(
                Mutex::new(conn),
                flush::Flusher::for_database(&path),
                backfill::Backfill::for_database(&path),
            ),
            reserve: Some(reserve::keep(reserve)),
            breaker_rules: Default::default(),
            opened: Default::default(),
        })
    }

    /// Connect to the PostgreSQL database `postgres` names, and bring its
    /// schema up to date.
    pub fn connect(postgres: &Postgres) -> Result<Store, StoreError> {
        let config_problem = |detail: String| StoreError::Config {
            store: "postgres".into(),
            detail,
        };
        let mut config: postgres::Config = postgres
            .url
            .parse()
            .map_err(|e| config_problem(format!("[store] url is not a PostgreSQL URL: {e}")))?;
        if let Some(password) = &postgres.password {
            config.password(password);
        }
        let tls = postgres.tls().map_err(config_problem)?;
        let location = describe(&config);
        let mut client = config
            .connect(tls.clone())
            .map_err(|source| StoreError::Database {
                store: location.clone(),
                source: source.into(),
            })?;
        schema::migrate_postgres(&mut client).map_err(|source| StoreError::Migrate {
            store: location.clone(),
            source,
        })?;
        let connection = PgConnection::new(config, tls, client);
        Ok(Store {
            location,
            backend: Backend::Postgres(Box::new(Mutex::new(connection))),
            // Its disk is the database server's.
            reserve: None,
            breaker_rules: Default::default(),
            opened: Default::default(),
        })
    }

    /// Something to wait on for runs queued by other processes; `None`
    /// where this process is the only one (SQLite).
    pub fn queue_listener(&self) -> Option<Listener> {
        self.backend.listener(QUEUE_CHANNEL)
    }

    /// Whether other machines may use this store too (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Where the data lives, as errors name it.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn with<T>(&self, work: impl FnOnce(&mut dyn Db) -> sql::Result<T>) -> Result<T, StoreError> {
        self.backend
            .with(work)
            .map_err(|source| self.failed(source))
    }

    /// `work` and the audit records it appends, committed together, or
    /// nothing, and on disk when this returns.
    fn in_tx<T>(&self, work: impl FnMut(&mut dyn Db) -> sql::Result<T>) -> Result<T, StoreError> {
        self.commit(Commit::Durable, work)
    }

    /// As [`Store::in_tx`], for a commit after which remedy does nothing
    /// outside the store: the next durable commit puts it on disk.
    fn in_ordered_tx<T>(
        &self,
        work: impl FnMut(&mut dyn Db) -> sql::Result<T>,
    ) -> Result<T, StoreError> {
        self.commit(Commit::Ordered, work)
    }

    /// A disk too full for `work` releases the reserve, and `work` is tried
    /// once more.
    fn commit<T>(
        &self,
        commit: Commit,
        mut work: impl FnMut(&mut dyn Db) -> sql::Result<T>,
    ) -> Result<T, StoreError> {
        let result = match self.backend.in_tx(commit, &mut work) {
            Err(error) if reserve::is_out_of_space(&error) && self.release_reserve() => {
                self.backend.in_tx(commit, work)
            }
            done => done,
        };
        result.map_err(|source| self.failed(source))
    }

    fn release_reserve(&self) -> bool {
        self.reserve.as_deref().is_some_and(reserve::release)
    }

    fn failed(&self, source: DbError) -> StoreError {
        StoreError::Database {
            store: self.location.clone(),
            source,
        }
    }

    /// Make every later write fail, as a full or read-only disk would.
    #[doc(hidden)]
    pub fn simulate_write_failure(&self) -> Result<(), StoreError> {
        self.backend
            .refuse_writes()
            .map_err(|source| self.failed(source))
    }
}

/// A lock whose holder panicked is taken all the same: what each of the
/// store's locks guards is whole after a panic (a connection's transaction
/// was rolled back; the rest are flags, counters and lists changed in one
/// step).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The SQLite file at `path`, opened as remedy keeps it, and read once so
/// a disk too full to map its shared memory says so here.
fn connect_sqlite(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        // Commits that must be durable are flushed by `flush.rs`.
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )?;
    // Above SQLite's 1,000: `backfill.rs` copies the log back before that.
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        backfill::WRITER_CHECKPOINT_PAGES,
    )?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    Ok(conn)
}

/// `postgres://user@host:port/db`: the database, never the password.
fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(name)) => name.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

impl Store {
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        run: &str,
        what: &str,
        json: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
            store: self.location.clone(),
            detail: format!("{what} of run {run}: {e}"),
        })
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Contract types and audit bodies are plain data with string keys;
    // serialising them cannot fail.
    serde_json::to_string(value).expect("remedy's records serialise to JSON")
}

/// Crash tests: with `REMEDY_TEST_ABORT_AFTER=KIND` in its environment,
/// remedy aborts (no clean-up, as a kill -9 would) right after committing
/// the first transaction that holds an audit record of that kind
/// (`run-started`, `plan`, `intent`, `result`, `finished`, ...). Unset, it
/// costs one look at a cached value per transaction.
mod crash_test {
    use super::sql::{Db, Result, args};
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
    pub fn armed(c: &mut dyn Db) -> Result<Option<Armed>> {
        let Some(kind) = kind() else { return Ok(None) };
        let head = super::audit::head(c)?.map_or(0, |(seq, _)| seq);
        Ok(Some(Armed { kind, head }))
    }

    /// Abort if the transaction just committed holds the record armed for.
    pub fn fire_if_reached(armed: Option<Armed>, c: &mut dyn Db) -> Result<()> {
        let Some(armed) = armed else { return Ok(()) };
        let reached: bool = c.query_row(
            "SELECT EXISTS (SELECT 1 FROM audit WHERE seq > ?1 AND kind = ?2)",
            args![armed.head, armed.kind],
            |r| r.get(0),
        )?;
        if reached {
            eprintln!("remedy: REMEDY_TEST_ABORT_AFTER={}: aborting", armed.kind);
            std::process::abort();
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "../../tests/common/postgres.rs"]
mod throwaway_postgres;

#[cfg(test)]
#[path = "../../tests/common/ports.rs"]
mod ports;

/// Run `test` on SQLite, then on PostgreSQL; `open` gives it a fresh,
/// empty store on that backend each time it is called.
#[cfg(test)]
fn each_backend(test: impl Fn(&dyn Fn() -> Store)) {
    let dirs = std::cell::RefCell::new(Vec::new());
    let sqlite = || {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        dirs.borrow_mut().push(dir);
        store
    };
    eprintln!("on SQLite");
    test(&sqlite);
    let postgres = || Store::connect(&Postgres::at(&throwaway_postgres::fresh_database())).unwrap();
    eprintln!("on PostgreSQL");
    test(&postgres);
}

#[cfg(test)]
impl Store {
    /// How the backend would run `sql`, as text: SQLite's `EXPLAIN QUERY
    /// PLAN` steps, or PostgreSQL's `EXPLAIN` with sequential scans priced
    /// out, so that a plan names an index whenever the query can use one,
    /// however few rows a test's store holds.
    fn query_plan(&self, sql: &str, args: &[sql::Value]) -> String {
        let shared = self.is_shared();
        let steps = self
            .in_ordered_tx(|c| {
                if shared {
                    c.execute("SET LOCAL enable_seqscan = off", &[])?;
                    c.query_map(&format!("EXPLAIN {sql}"), args, |r| r.get::<String>(0))
                } else {
                    c.query_map(&format!("EXPLAIN QUERY PLAN {sql}"), args, |r| {
                        r.get::<String>(3)
                    })
                }
            })
            .unwrap();
        steps.join("\n")
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::contract::{Action, ActionStatus, AlertStatus, FileIdentity, Plan, RemovePath};

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

    pub(in crate::store) fn removal() -> Action {
        Action::RemovePath(RemovePath {
            path: "/x".into(),
            identity: FileIdentity {
                device: 1,
                inode: 2,
                size: 3,
                mtime_ns: 4,
            },
            reason: "old".into(),
        })
    }

    /// A plan that asks for nothing, saying `summary`.
    pub(in crate::store) fn empty_plan(summary: &str) -> Plan {
        Plan {
            summary: summary.into(),
            checks: vec![],
            actions: vec![],
            escalate: None,
            recheck_after_secs: None,
            memo: None,
        }
    }

    /// A run of `alert` started by hand, for no route.
    pub(in crate::store) fn new_run<'a>(id: &'a str, alert: &'a Alert) -> NewRun<'a> {
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
            node: None,
        }
    }

    /// A plugin is shown its runs' done actions alone, read through the
    /// index that holds only those: not one still at its intent, a dry-run's
    /// planned one, or a failed one.
    #[test]
    fn a_plugin_s_recent_actions_are_its_done_ones_through_their_own_index() {
        super::each_backend(|open| {
            let store = open();
            let alert = alert();
            store.create_run(&new_run("0190-a", &alert)).unwrap();
            let took = Duration::from_micros(7);
            for (seq, status) in [
                (0, Some(ActionStatus::Done)),
                (1, Some(ActionStatus::Planned)),
                (2, Some(ActionStatus::Failed)),
                (3, None),
            ] {
                let id = store.record_intent("0190-a", 0, seq, &removal()).unwrap();
                if let Some(status) = status {
                    store.record_result(id, status, "", took).unwrap();
                }
            }
            let recent = store
                .recent_actions("disk-cleanup", Duration::from_secs(3600), 10)
                .unwrap();
            assert_eq!(recent.len(), 1, "only the done action");
            assert_eq!(recent[0].run_id, "0190-a");

            let plan = store.query_plan(
                runs::RECENT_ACTIONS,
                sql::args!["disk-cleanup", 0_i64, 10_i64],
            );
            assert!(plan.contains("actions_done"), "{plan}");
        });
    }

    #[test]
    fn a_run_round_trips_with_its_actions() {
        super::each_backend(|open| {
            let store = open();
            let alert = alert();
            store.create_run(&new_run("0190-a", &alert)).unwrap();
            let action = removal();
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
        });
    }

    #[test]
    fn runs_are_counted_by_outcome_in_slices_of_time_as_filtered() {
        super::each_backend(|open| {
            let store = open();
            let alert = alert();
            let now = now_ms();
            let minutes_ago = |m: i64| now - m * 60_000;
            // (id, plugin, outcome, created)
            let runs = [
                (
                    "too-old",
                    "disk-cleanup",
                    RunStatus::Succeeded,
                    minutes_ago(150),
                ),
                ("a", "disk-cleanup", RunStatus::Succeeded, minutes_ago(110)),
                ("b", "disk-cleanup", RunStatus::Failed, minutes_ago(100)),
                ("c", "disk-cleanup", RunStatus::Succeeded, minutes_ago(10)),
                ("d", "netns-gc", RunStatus::Succeeded, minutes_ago(1)),
            ];
            for (id, plugin, outcome, created) in runs {
                let mut run = new_run(id, &alert);
                run.plugin = plugin;
                store.create_run(&run).unwrap();
                store.finish_run(id, outcome, "").unwrap();
                store
                    .with(|c| {
                        c.execute(
                            "UPDATE runs SET created_ms = ?2 WHERE id = ?1",
                            sql::args![id, created],
                        )
                    })
                    .unwrap();
            }
            let since = std::time::UNIX_EPOCH + Duration::from_millis(minutes_ago(120) as u64);
            let filter = RunFilter {
                since: Some(since),
                ..Default::default()
            };
            let hour = Duration::from_secs(3600);
            let count = |slice, status, runs| RunCount {
                slice,
                status,
                runs,
            };
            let mut counts = store.runs_over_time(&filter, hour).unwrap();
            counts.sort_by_key(|c| (c.slice, c.status.as_str()));
            assert_eq!(
                counts,
                [
                    count(0, RunStatus::Failed, 1),
                    count(0, RunStatus::Succeeded, 1),
                    count(1, RunStatus::Succeeded, 2),
                ]
            );
            let one_plugin = RunFilter {
                plugin: Some("disk-cleanup".into()),
                ..filter.clone()
            };
            assert_eq!(store.count_runs(&one_plugin).unwrap(), 3);
            let failed = RunFilter {
                status: Some(RunStatus::Failed),
                ..filter.clone()
            };
            assert_eq!(store.count_runs(&failed).unwrap(), 1);
            assert_eq!(store.count_runs(&RunFilter::default()).unwrap(), 5);
        });
    }

    #[test]
    fn prefixes_must_be_unambiguous() {
        super::each_backend(|open| {
            let store = open();
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
        });
    }

    /// Whether a commit of kind `commit` waits for the disk: SQLite syncs
    /// inside the commit or its flusher has flushed every commit written;
    /// PostgreSQL's setting inside the transaction says it waits.
    fn flushes(store: &Store, commit: Commit) -> bool {
        let setting = match &store.backend {
            Backend::Sqlite(..) => "SELECT synchronous = 2 FROM pragma_synchronous",
            Backend::Postgres(_) => "SELECT current_setting('synchronous_commit') = 'on'",
        };
        let inside: bool = store
            .commit(commit, |c| c.query_row(setting, &[], |r| r.get(0)))
            .unwrap();
        match &store.backend {
            Backend::Sqlite(_, flusher, _) => inside || flusher.all_durable(),
            Backend::Postgres(_) => inside,
        }
    }

    #[test]
    fn only_an_ordered_commit_skips_the_flush_and_no_commit_inherits_another_s() {
        super::each_backend(|open| {
            let store = open();
            assert!(flushes(&store, Commit::Durable));
            assert!(!flushes(&store, Commit::Ordered));
            assert!(flushes(&store, Commit::Durable), "after an ordered commit");
            assert!(flushes(&store, Commit::AtOnce));
            assert!(
                !flushes(&store, Commit::Ordered),
                "after one synced at once"
            );
            // A commit that fails leaves nothing of its own behind either.
            let failed: Result<(), _> = store.in_ordered_tx(|c| c.batch("no such statement"));
            assert!(failed.is_err());
            assert!(flushes(&store, Commit::Durable), "after a failed one");
        });
    }

    /// On SQLite, what remedy acts on next waits for the flusher: an
    /// intent (its effect comes next) and a run's end (it is told next),
    /// each with every commit before it.
    #[test]
    fn an_intent_and_a_run_s_end_are_on_disk_with_every_commit_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let Backend::Sqlite(_, flusher, _) = &store.backend else {
            unreachable!("a SQLite store")
        };
        let alert = alert();
        store.create_run(&new_run("0190-a", &alert)).unwrap();
        let ordered = || {
            let params = [("min_age".to_string(), "1d".to_string())];
            let changed = [("min_age".to_string(), "1d".to_string())].into();
            store
                .record_params_used("0190-a", &params, &changed)
                .unwrap();
            assert!(
                !flusher.all_durable(),
                "an ordered commit is not waited for"
            );
        };
        ordered();
        let action = removal();
        store.record_intent("0190-a", 0, 0, &action).unwrap();
        assert!(
            flusher.all_durable(),
            "the intent is on disk before its effect"
        );
        ordered();
        store
            .finish_run("0190-a", RunStatus::Succeeded, "ok")
            .unwrap();
        assert!(
            flusher.all_durable(),
            "the run's end is on disk before it is told"
        );
    }

    #[test]
    fn failed_writes_are_errors() {
        super::each_backend(|open| {
            let store = open();
            store.simulate_write_failure().unwrap();
            let alert = alert();
            let error = store.create_run(&new_run("x", &alert)).unwrap_err();
            let text = error.to_string();
            assert!(
                text.contains(store.location()),
                "the error names the store: {text}"
            );
        });
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
