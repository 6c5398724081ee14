//! Group flush of a SQLite write-ahead log. Commits are written with
//! `synchronous = NORMAL`, under their connection's lock and without
//! waiting for the disk. A commit that must be durable then waits here,
//! outside that lock, for an `fdatasync` of the log that began after it was
//! written: one flush makes every commit written before it durable, so
//! concurrent commits share it, and the connection is free for the next
//! transaction while the disk works. (The webhook's group commit syncs
//! inside its commit instead, `backend::Commit::AtOnce`: it measured faster
//! there, its writers being gathered already.)
//!
//! A flush that fails leaves the log's state on disk unknown (the kernel
//! may already have dropped the pages it could not write), so every later
//! durable commit fails too, until remedy is restarted.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

pub(super) struct Flusher {
    sync: Box<dyn Fn() -> io::Result<()> + Send + Sync>,
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    /// Commits written so far; each commit's ticket is its number.
    written: u64,
    /// Every commit up to this ticket is on disk.
    durable: u64,
    /// A thread is flushing now.
    flushing: bool,
    /// Why a flush failed, once one has.
    failed: Option<String>,
}

impl Flusher {
    /// Flushes the write-ahead log beside the SQLite file `database`.
    pub(super) fn for_database(database: &Path) -> Flusher {
        let log = WalFile::beside(database);
        Flusher::new(move || log.sync())
    }

    fn new(sync: impl Fn() -> io::Result<()> + Send + Sync + 'static) -> Flusher {
        Flusher {
            sync: Box::new(sync),
            state: Mutex::new(State::default()),
            done: Condvar::new(),
        }
    }

    /// Note a commit just written; its ticket for [`Flusher::flush_through`].
    pub(super) fn written(&self) -> u64 {
        let mut state = self.lock();
        state.written += 1;
        state.written
    }

    /// Return once the commit with `ticket` is on disk: wait for a flush
    /// that began after it was written, or run one.
    pub(super) fn flush_through(&self, ticket: u64) -> io::Result<()> {
        let mut state = self.lock();
        loop {
            if let Some(why) = &state.failed {
                return Err(io::Error::other(format!(
                    "an earlier flush of the write-ahead log failed ({why}); what was written \
                     since may not be on disk, so nothing more is taken as durable: restart remedy"
                )));
            }
            if state.durable >= ticket {
                return Ok(());
            }
            if state.flushing {
                state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.flushing = true;
            let through = state.written;
            drop(state);
            let flushed = (self.sync)();
            state = self.lock();
            state.flushing = false;
            match &flushed {
                Ok(()) => state.durable = state.durable.max(through),
                Err(e) => state.failed = Some(e.to_string()),
            }
            self.done.notify_all();
            flushed?;
        }
    }

    /// Whether every commit written is on disk.
    #[cfg(test)]
    pub(super) fn all_durable(&self) -> bool {
        let state = self.lock();
        state.durable == state.written
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        super::lock(&self.state)
    }
}

/// The `-wal` file SQLite keeps beside a database, open for syncing, and
/// opened again if SQLite made a new one.
struct WalFile {
    path: PathBuf,
    open: Mutex<Option<File>>,
}

impl WalFile {
    fn beside(database: &Path) -> WalFile {
        let mut path = database.as_os_str().to_owned();
        path.push("-wal");
        WalFile {
            path: path.into(),
            open: Mutex::new(None),
        }
    }

    fn sync(&self) -> io::Result<()> {
        let mut open = super::lock(&self.open);
        let current = std::fs::metadata(&self.path).map_err(|e| self.failed(e))?;
        let stale = match open.as_ref() {
            Some(file) => file.metadata()?.ino() != current.ino(),
            None => true,
        };
        if stale {
            *open = Some(File::open(&self.path).map_err(|e| self.failed(e))?);
            // The log's name must survive a crash as well as its content.
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        let file = open.as_ref().expect("opened just now");
        file.sync_data().map_err(|e| self.failed(e))
    }

    fn failed(&self, error: io::Error) -> io::Error {
        io::Error::new(error.kind(), format!("{}: {error}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    /// A flusher whose flushes each wait for the test's go-ahead, and say
    /// when they begin.
    fn gated() -> (
        Arc<Flusher>,
        mpsc::Receiver<()>,
        mpsc::SyncSender<io::Result<()>>,
    ) {
        let (began, begun) = mpsc::channel();
        let (go, gate) = mpsc::sync_channel::<io::Result<()>>(0);
        let gate = Mutex::new(gate);
        let flusher = Flusher::new(move || {
            began.send(()).unwrap();
            gate.lock().unwrap().recv().unwrap()
        });
        (Arc::new(flusher), begun, go)
    }

    fn flush_on_a_thread(flusher: &Arc<Flusher>, ticket: u64) -> mpsc::Receiver<io::Result<()>> {
        let (tx, rx) = mpsc::channel();
        let flusher = flusher.clone();
        std::thread::spawn(move || tx.send(flusher.flush_through(ticket)).unwrap());
        rx
    }

    const BRIEFLY: Duration = Duration::from_millis(100);

    #[test]
    fn a_commit_written_during_a_flush_waits_for_the_next_one() {
        let (flusher, begun, go) = gated();
        let first = flusher.written();
        let first_done = flush_on_a_thread(&flusher, first);
        begun.recv().unwrap();
        // Written while the first flush is on its way: it may not be in it.
        let second = flusher.written();
        let second_done = flush_on_a_thread(&flusher, second);
        assert!(
            first_done.recv_timeout(BRIEFLY).is_err(),
            "returned before its flush ended"
        );
        go.send(Ok(())).unwrap();
        first_done.recv().unwrap().unwrap();
        assert!(
            second_done.recv_timeout(BRIEFLY).is_err(),
            "taken as flushed by an earlier flush"
        );
        begun.recv().unwrap();
        go.send(Ok(())).unwrap();
        second_done.recv().unwrap().unwrap();
    }

    #[test]
    fn one_flush_serves_every_commit_written_before_it_began() {
        let flushes = Arc::new(AtomicU64::new(0));
        let counted = flushes.clone();
        let flusher = Flusher::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let tickets: Vec<u64> = (0..5).map(|_| flusher.written()).collect();
        for ticket in tickets.into_iter().rev() {
            flusher.flush_through(ticket).unwrap();
        }
        assert_eq!(flushes.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn after_a_failed_flush_no_commit_is_taken_as_durable() {
        let (flusher, begun, go) = gated();
        let first = flusher.written();
        let first_done = flush_on_a_thread(&flusher, first);
        begun.recv().unwrap();
        go.send(Err(io::Error::other("I/O error"))).unwrap();
        let error = first_done.recv().unwrap().unwrap_err();
        assert!(error.to_string().contains("I/O error"), "{error}");
        // Nor any later one, though a later flush might succeed.
        let later = flusher.written();
        let error = flusher.flush_through(later).unwrap_err().to_string();
        assert!(
            error.contains("restart remedy") && error.contains("I/O error"),
            "{error}"
        );
        assert!(
            begun.try_recv().is_err(),
            "no flush is tried once one failed"
        );
    }

    #[test]
    fn a_log_that_was_made_anew_is_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("state.db");
        let log = WalFile::beside(&database);
        let missing = log.sync().unwrap_err().to_string();
        assert!(
            missing.contains("state.db-wal"),
            "the error names the log: {missing}"
        );
        std::fs::write(dir.path().join("state.db-wal"), b"one").unwrap();
        log.sync().unwrap();
        let synced = || {
            let open = log.open.lock().unwrap();
            open.as_ref().unwrap().metadata().unwrap().ino()
        };
        let first = synced();
        std::fs::write(dir.path().join("other"), b"two").unwrap();
        std::fs::rename(dir.path().join("other"), dir.path().join("state.db-wal")).unwrap();
        log.sync().unwrap();
        let second = synced();
        assert_ne!(first, second, "syncs the file now at the log's name");
    }
}
