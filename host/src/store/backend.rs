//! Where the store's data lives: a SQLite file, for one remedy process, or
//! a PostgreSQL database shared by a fleet of receivers and agents. Each
//! backend gives the store's code a [`Db`] to read through and a
//! transaction to write in; the code is the same for both.

use super::backfill::Backfill;
use super::crash_test;
use super::flush::Flusher;
use super::lock;
use super::sql::{self, Db, Lite, Pg, Statements};
use fallible_iterator::FallibleIterator;
use std::sync::{Arc, Mutex};

/// Whether a commit waits for the disk before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Commit {
    /// On disk (fdatasync) before the call returns: for a commit after
    /// which remedy does something outside the store, such as answering a
    /// webhook, executing an action or ending a run.
    Durable,
    /// Written in order, not waited for: the next durable commit, of any
    /// connection, flushes it too. A killed remedy loses none of it; an OS
    /// crash or power cut can lose it with everything after it, which
    /// leaves the store as it was a moment earlier.
    Ordered,
    /// On disk before the call returns, flushed inside the write lock
    /// instead: for the webhook's group commit, which has gathered its
    /// writers already.
    AtOnce,
}

pub(super) enum Backend {
    /// The flusher puts durable commits on disk, outside the connection's
    /// lock; the backfill copies the log back into the database.
    Sqlite(Mutex<rusqlite::Connection>, Flusher, Arc<Backfill>),
    Postgres(Box<Mutex<PgConnection>>),
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
            Backend::Sqlite(..) => None,
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

impl Backend {
    pub(super) fn with<T>(
        &self,
        work: impl FnOnce(&mut dyn Db) -> sql::Result<T>,
    ) -> sql::Result<T> {
        match self {
            Backend::Sqlite(conn, ..) => work(&mut Lite(&lock(conn))),
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
        commit: Commit,
        mut work: impl FnMut(&mut dyn Db) -> sql::Result<T>,
    ) -> sql::Result<T> {
        match self {
            Backend::Sqlite(conn, flusher, backfill) => {
                let (out, ticket) = {
                    let conn = lock(conn);
                    // Set for every transaction, so none inherits another's.
                    let synchronous = match commit {
                        Commit::AtOnce => "PRAGMA synchronous = FULL",
                        Commit::Durable | Commit::Ordered => "PRAGMA synchronous = NORMAL",
                    };
                    conn.prepare_cached(synchronous)?.execute([])?;
                    let tx = rusqlite::Transaction::new_unchecked(
                        &conn,
                        rusqlite::TransactionBehavior::Immediate,
                    )?;
                    let crash = crash_test::armed(&mut Lite(&tx))?;
                    let out = work(&mut Lite(&tx))?;
                    tx.commit()?;
                    crash_test::fire_if_reached(crash, &mut Lite(&conn))?;
                    (out, flusher.written())
                };
                backfill.written();
                if commit == Commit::Durable {
                    flusher.flush_through(ticket).map_err(sql::DbError::Flush)?;
                }
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
                if commit == Commit::Ordered {
                    // Ends with the transaction.
                    db.batch("SET LOCAL synchronous_commit = off")?;
                }
                db.execute("SELECT 1 FROM heads WHERE id = 1 FOR UPDATE", &[])?;
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
            Backend::Sqlite(..) => "PRAGMA query_only = ON;",
            Backend::Postgres(_) => "SET default_transaction_read_only = on;",
        };
        self.with(|c| c.batch(statement))
    }
}
