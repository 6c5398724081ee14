//! Where the store's data lives: a SQLite file, for one remedy process, or
//! a PostgreSQL database shared by a fleet of receivers and agents. Each
//! backend gives the store's code a [`Db`] to read through and a
//! transaction to write in; the code is the same for both.

use super::crash_test;
use super::sql::{self, Db, Lite, Pg, Statements};
use fallible_iterator::FallibleIterator;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

pub(super) enum Backend {
    Sqlite(Sqlite),
    Postgres(Box<Mutex<PgConnection>>),
}

/// A connection to a SQLite file, and the gate this process's writers to
/// that file pass one at a time.
pub(super) struct Sqlite {
    conn: Mutex<rusqlite::Connection>,
    writes: Gate,
}

impl Sqlite {
    pub(super) fn new(path: &Path, conn: rusqlite::Connection) -> Sqlite {
        Sqlite {
            conn: Mutex::new(conn),
            writes: write_gate(path),
        }
    }
}

type Gate = Arc<Mutex<()>>;

static GATES: LazyLock<Mutex<HashMap<PathBuf, Weak<Mutex<()>>>>> = LazyLock::new(Mutex::default);

/// The write gate of the SQLite file at `path`, one per file in this
/// process. Its connections (the webhook's and the workers') would
/// otherwise meet at SQLite's write lock, whose busy handler sleeps a
/// millisecond or more before it tries again: under load, longer than a
/// whole commit. A writer waiting at the gate goes the moment the one
/// before it commits. Other processes still meet at the lock.
fn write_gate(path: &Path) -> Gate {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut gates = lock(&GATES);
    gates.retain(|_, gate| gate.strong_count() > 0);
    if let Some(gate) = gates.get(&path).and_then(Weak::upgrade) {
        return gate;
    }
    let gate = Arc::new(Mutex::new(()));
    gates.insert(path, Arc::downgrade(&gate));
    gate
}

/// One connection to PostgreSQL, made again when it was lost (PostgreSQL
/// restarted, the network dropped): the call that finds it lost fails, and
/// the next one connects.
pub(super) struct PgConnection {
    config: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    client: Option<postgres::Client>,
    /// Prepared on `client`'s connection; forgotten with it.
    statements: Statements,
}

impl PgConnection {
    pub(super) fn new(
        config: postgres::Config,
        tls: tokio_postgres_rustls::MakeRustlsConnect,
        client: postgres::Client,
    ) -> Self {
        PgConnection {
            config,
            tls,
            client: Some(client),
            statements: Statements::default(),
        }
    }

    /// The client, connected again if the connection was lost, and the
    /// statements prepared on its connection.
    fn parts(&mut self) -> Result<(&mut postgres::Client, &mut Statements), postgres::Error> {
        if self.client.as_ref().is_none_or(postgres::Client::is_closed) {
            self.client = None;
            self.statements = Statements::default();
            self.client = Some(self.config.connect(self.tls.clone())?);
        }
        let client = self.client.as_mut().expect("connected just now");
        Ok((client, &mut self.statements))
    }
}

/// A connection of its own that waits for `NOTIFY`s on one channel, made
/// again when lost.
pub struct Listener {
    channel: &'static str,
    config: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    client: Option<postgres::Client>,
}

impl Listener {
    /// Wait up to `timeout` for a notification; true if one came. A lost
    /// connection is an error, and the next call connects again.
    pub fn wait(&mut self, timeout: std::time::Duration) -> Result<bool, postgres::Error> {
        if self.client.as_ref().is_none_or(postgres::Client::is_closed) {
            self.client = None;
            let mut client = self.config.connect(self.tls.clone())?;
            client.batch_execute(&format!("LISTEN {}", self.channel))?;
            self.client = Some(client);
        }
        let client = self.client.as_mut().expect("connected just now");
        let mut notifications = client.notifications();
        let woken = notifications.timeout_iter(timeout).next()?.is_some();
        // Several at once need one wake-up.
        while notifications.iter().next()?.is_some() {}
        Ok(woken)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        // Closing a postgres::Client blocks on its own runtime, which panics
        // on an async thread (where remedy serve drops its stores); close it
        // on a thread of its own.
        if let Some(client) = self.client.take() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

impl Backend {
    /// A listener on `channel`, where there are other processes to hear
    /// from (PostgreSQL).
    pub(super) fn listener(&self, channel: &'static str) -> Option<Listener> {
        match self {
            Backend::Sqlite(_) => None,
            Backend::Postgres(conn) => {
                let conn = lock(conn);
                Some(Listener {
                    channel,
                    config: conn.config.clone(),
                    tls: conn.tls.clone(),
                    client: None,
                })
            }
        }
    }
}

/// A lock whose holder panicked still guards a consistent connection: the
/// transaction it held was rolled back.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Backend {
    pub(super) fn with<T>(
        &self,
        work: impl FnOnce(&mut dyn Db) -> sql::Result<T>,
    ) -> sql::Result<T> {
        match self {
            Backend::Sqlite(sqlite) => work(&mut Lite(&lock(&sqlite.conn))),
            Backend::Postgres(conn) => {
                let mut conn = lock(conn);
                let (client, statements) = conn.parts()?;
                work(&mut Pg { client, statements })
            }
        }
    }

    /// `work` committed as one transaction, or nothing of it. Every writer
    /// takes the write lock first: SQLite's (`BEGIN IMMEDIATE`), or the
    /// audit head's row in PostgreSQL. The audit append reads the chain's
    /// head before it writes, so writers must not interleave.
    pub(super) fn in_tx<T>(
        &self,
        mut work: impl FnMut(&mut dyn Db) -> sql::Result<T>,
    ) -> sql::Result<T> {
        match self {
            Backend::Sqlite(sqlite) => {
                let conn = lock(&sqlite.conn);
                let _writing = lock(&sqlite.writes);
                let tx = rusqlite::Transaction::new_unchecked(
                    &conn,
                    rusqlite::TransactionBehavior::Immediate,
                )?;
                let crash = crash_test::armed(&mut Lite(&tx))?;
                let out = work(&mut Lite(&tx))?;
                tx.commit()?;
                crash_test::fire_if_reached(crash, &mut Lite(&conn))?;
                Ok(out)
            }
            Backend::Postgres(conn) => {
                let mut conn = lock(conn);
                let (client, statements) = conn.parts()?;
                let mut tx = client.transaction()?;
                let mut db = Pg {
                    client: &mut tx,
                    statements,
                };
                db.execute("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE", &[])?;
                let crash = crash_test::armed(&mut db)?;
                let out = work(&mut db)?;
                tx.commit()?;
                crash_test::fire_if_reached(crash, &mut Pg { client, statements })?;
                Ok(out)
            }
        }
    }

    /// Make every later write fail, as a full or read-only disk would.
    pub(super) fn refuse_writes(&self) -> sql::Result<()> {
        let statement = match self {
            Backend::Sqlite(_) => "PRAGMA query_only = ON;",
            Backend::Postgres(_) => "SET default_transaction_read_only = on;",
        };
        self.with(|c| c.batch(statement))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    fn gate(store: &Store) -> &Gate {
        match &store.backend {
            Backend::Sqlite(sqlite) => &sqlite.writes,
            Backend::Postgres(_) => unreachable!("opened on SQLite"),
        }
    }

    #[test]
    fn stores_on_one_file_share_a_write_gate_and_write_at_once_without_a_busy_error() {
        let (one, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ingest, work) = (Store::open(one.path()).unwrap(), Store::open(one.path()).unwrap());
        let elsewhere = Store::open(other.path()).unwrap();
        assert!(Arc::ptr_eq(gate(&ingest), gate(&work)));
        assert!(!Arc::ptr_eq(gate(&ingest), gate(&elsewhere)));

        std::thread::scope(|s| {
            for store in [&ingest, &work, &ingest, &work] {
                s.spawn(move || {
                    for n in 0..200 {
                        store.audit("test", None, &serde_json::json!({ "n": n })).unwrap();
                    }
                });
            }
        });
        assert!(ingest.verify_audit().unwrap().is_ok(), "800 appends, one chain");

        let file = std::fs::canonicalize(one.path().join("state.db")).unwrap();
        drop((ingest, work));
        let gone = lock(&GATES).get(&file).and_then(Weak::upgrade);
        assert!(gone.is_none(), "the gate goes with the last store on the file");
    }
}
