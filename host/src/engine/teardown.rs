//! Finished instances are torn down on a thread of their own. Dropping a
//! `Store` hands its instance's memories, tables and stack back to the
//! pooling allocator, which resets them; the run has its answer by then and
//! need not wait for that.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

pub(super) struct Teardown<T: Send + 'static> {
    to_drop: Option<SyncSender<T>>,
}

impl<T: Send + 'static> Teardown<T> {
    /// Instances waiting for the thread. When it falls this far behind, a
    /// caller drops its own, so finished instances never hold more than
    /// this many of the pool's slots.
    const BACKLOG: usize = 8;

    /// The thread, or inline drops where no thread can be started.
    pub(super) fn start() -> Self {
        let (to_drop, dropping) = sync_channel::<T>(Self::BACKLOG);
        let started = std::thread::Builder::new()
            .name("remedy-teardown".into())
            .spawn(move || dropping.into_iter().for_each(drop));
        match started {
            Ok(_) => Teardown {
                to_drop: Some(to_drop),
            },
            Err(error) => {
                tracing::info!("no teardown thread, instances are dropped inline: {error}");
                Teardown { to_drop: None }
            }
        }
    }

    /// Drop `value` on the teardown thread, or here if it is behind.
    pub(super) fn drop_later(&self, value: T) {
        let Some(to_drop) = &self.to_drop else {
            return drop(value);
        };
        match to_drop.try_send(value) {
            Ok(()) => {}
            Err(TrySendError::Full(value) | TrySendError::Disconnected(value)) => drop(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// Counts its drops and notes whether the teardown thread did them.
    struct Counted(Arc<AtomicUsize>, Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            let on_teardown = std::thread::current().name() == Some("remedy-teardown");
            if on_teardown {
                // Slow enough that the backlog fills behind it.
                std::thread::sleep(Duration::from_millis(20));
            }
            let which = if on_teardown { &self.0 } else { &self.1 };
            which.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn everything_is_dropped_and_a_full_backlog_drops_inline() {
        let (there, here) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let teardown = Teardown::start();
        for _ in 0..100 {
            teardown.drop_later(Counted(there.clone(), here.clone()));
        }
        // The caller never waited for the slow drops beyond the backlog.
        assert!(
            here.load(Ordering::SeqCst) > 0,
            "a full backlog drops inline"
        );
        drop(teardown);
        let deadline = Instant::now() + Duration::from_secs(10);
        while there.load(Ordering::SeqCst) + here.load(Ordering::SeqCst) < 100 {
            assert!(Instant::now() < deadline, "every value is dropped");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(there.load(Ordering::SeqCst) > 0, "the thread dropped some");
    }
}
