//! Copying a SQLite write-ahead log back into its database in the
//! background (SQLite calls it a checkpoint; it has nothing to do with the
//! audit chain's signed checkpoints in `checkpoint.rs`).
//!
//! Left to itself, SQLite copies the log back inside the commit that grows
//! it past `wal_autocheckpoint` pages, and under a storm that commit is
//! mostly the webhook's: every request of its group waits for the copy and
//! the database's sync. Here one thread per database copies the log back
//! a moment after commits, taking no lock a writer waits for (a passive
//! checkpoint). The writers keep their own checkpoint, at a higher mark,
//! for what only they can do: the log is written again from its start once
//! all of it was copied back with no commit in between, which a thread
//! beside a busy writer never sees. A writer's checkpoint then copies only
//! what came since the last pass, and the log starts over instead of
//! growing.

use super::lock;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a pass waits after the first commit it is for, so that one
/// pass copies back many commits' pages.
const GATHER: Duration = Duration::from_millis(10);

/// Log pages past which a writer copies the log back itself.
pub(super) const WRITER_CHECKPOINT_PAGES: u32 = 4_000;

/// The background copy of one database's log, shared by every store of
/// this process open on it.
pub(super) struct Backfill {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

#[derive(Default)]
struct Pending {
    /// Commits were written since the last pass began.
    written: bool,
    stop: bool,
}

impl Backfill {
    /// The background copy for the SQLite file `database`, started unless
    /// a store of this process runs one for it already.
    pub(super) fn for_database(database: &Path) -> Arc<Backfill> {
        static RUNNING: Mutex<Vec<(PathBuf, Weak<Backfill>)>> = Mutex::new(Vec::new());
        let mut running = lock(&RUNNING);
        running.retain(|(_, backfill)| backfill.strong_count() > 0);
        let found = running
            .iter()
            .find(|(path, _)| path == database)
            .and_then(|(_, backfill)| backfill.upgrade());
        found.unwrap_or_else(|| {
            let backfill = Arc::new(Backfill::start(database.to_path_buf()));
            running.push((database.to_path_buf(), Arc::downgrade(&backfill)));
            backfill
        })
    }

    fn start(database: PathBuf) -> Backfill {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("remedy-backfill".into())
            .spawn({
                let shared = shared.clone();
                move || copy_back_while_open(&database, &shared)
            })
            .map_err(|e| {
                tracing::warn!(
                    "cannot start the thread that copies the store's log back ({e}); \
                     its writers copy it back themselves"
                )
            })
            .ok();
        Backfill { shared, thread }
    }

    /// Note a commit: a pass follows shortly.
    pub(super) fn written(&self) {
        let mut pending = lock(&self.shared.pending);
        if !pending.written {
            pending.written = true;
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Backfill {
    fn drop(&mut self) {
        lock(&self.shared.pending).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// Wait for a commit, then let more gather; false once stopped.
    fn next_pass(&self) -> bool {
        let pending = lock(&self.pending);
        let pending = self
            .wake
            .wait_while(pending, |p| !p.written && !p.stop)
            .unwrap_or_else(|p| p.into_inner());
        let (mut pending, _) = self
            .wake
            .wait_timeout_while(pending, GATHER, |p| !p.stop)
            .unwrap_or_else(|p| p.into_inner());
        pending.written = false;
        !pending.stop
    }
}

fn copy_back_while_open(database: &Path, shared: &Shared) {
    let mut conn = None;
    let mut failing = false;
    while shared.next_pass() {
        match copy_back(&mut conn, database) {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(store = %database.display(), "copying the store's log back works again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                conn = None;
                tracing::warn!(
                    store = %database.display(),
                    "cannot copy the store's log back ({e}); its writers copy it back themselves"
                );
            }
            Err(_) => conn = None,
        }
    }
}

/// One passive checkpoint, on a connection of its own opened on first use
/// (never creating the file: a database removed under remedy stays gone).
fn copy_back(conn: &mut Option<rusqlite::Connection>, database: &Path) -> rusqlite::Result<()> {
    use rusqlite::OpenFlags;
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(rusqlite::Connection::open_with_flags(
            database,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?),
    };
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;
    use std::time::Instant;

    fn scratch_store(dir: &Path) -> Store {
        let store = Store::open(dir).unwrap();
        store
            .in_ordered_tx(|c| c.batch("CREATE TABLE scratch (body TEXT)"))
            .unwrap();
        store
    }

    fn insert(store: &Store, body: &str) {
        store
            .in_ordered_tx(|c| {
                c.execute(
                    "INSERT INTO scratch (body) VALUES (?1)",
                    super::super::sql::args![body],
                )
                .map(drop)
            })
            .unwrap();
    }

    #[test]
    fn commits_reach_the_database_file_without_a_writer_s_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = scratch_store(dir.path());
        // Far fewer pages than a writer's own checkpoint waits for.
        insert(&store, "copied back by the background");
        let database = dir.path().join("state.db");
        let deadline = Instant::now() + Duration::from_secs(10);
        let in_file = || {
            let bytes = std::fs::read(&database).unwrap();
            bytes
                .windows(29)
                .any(|w| w == b"copied back by the background")
        };
        while !in_file() {
            assert!(
                Instant::now() < deadline,
                "the commit is still only in the log"
            );
            std::thread::sleep(GATHER);
        }
    }

    #[test]
    fn a_busy_writer_s_log_starts_over_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap();
        let store = scratch_store(dir.path());
        let log = dir.path().join("state.db-wal");
        // Each commit writes at least a page: without a restart the log
        // would reach eight times the writer's mark. With one it stays near
        // the mark, and past it only while the background pass holds the
        // log when the writer's checkpoint comes (seen at 2.2 times, with
        // every other unit test running beside this one on two cores).
        let bound = u64::from(WRITER_CHECKPOINT_PAGES) * 4096 * 4;
        let mut largest = 0;
        for n in 0..(WRITER_CHECKPOINT_PAGES * 8) {
            insert(&store, &format!("row {n}"));
            if n % 256 == 0 {
                largest = largest.max(std::fs::metadata(&log).unwrap().len());
            }
        }
        assert!(
            largest < bound,
            "the log grew to {largest} bytes (bound {bound})"
        );
    }

    #[test]
    fn a_database_removed_under_remedy_is_not_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = scratch_store(dir.path());
        let database = dir.path().join("state.db");
        std::fs::remove_file(&database).unwrap();
        // The store's own connection still writes to the removed file.
        insert(&store, "after the removal");
        std::thread::sleep(GATHER * 20);
        assert!(!database.exists(), "an empty database took its place");
    }

    #[test]
    fn stores_of_one_database_share_one_backfill() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let first = Backfill::for_database(&dir.path().join("state.db"));
        let second = Backfill::for_database(&dir.path().join("state.db"));
        let elsewhere = Backfill::for_database(&other.path().join("state.db"));
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!Arc::ptr_eq(&first, &elsewhere));
    }
}
