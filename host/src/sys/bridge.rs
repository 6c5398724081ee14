//! Nomad and Docker speak async HTTP, while plugins call the host
//! synchronously and the executor is synchronous. One small runtime, started
//! the first time it is needed, runs those requests and drives calls into
//! plugins.
//!
//! A call into a plugin sets its deadline on the thread that drives it
//! ([`Bridge::drive_until`]); every request made through the bridge on that
//! thread meanwhile (a plugin's Nomad or Docker read) ends by that deadline,
//! so no host call can outlast the plugin's wall-clock budget.

use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;
use tokio::runtime::Runtime;

thread_local! {
    /// The deadline of the plugin call this thread is driving, if any.
    static CALL_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A request that would have outlasted the plugin call it was made for.
#[derive(Debug, thiserror::Error)]
#[error("stopped at the plugin's deadline")]
pub struct PastDeadline;

#[derive(Default)]
pub struct Bridge {
    runtime: OnceLock<Result<Runtime, String>>,
}

impl Bridge {
    fn runtime(&self) -> Result<&Runtime, String> {
        let runtime = self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("remedy-io")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the I/O runtime: {e}"))
        });
        runtime.as_ref().map_err(Clone::clone)
    }

    /// Run `request` to completion on the bridge's runtime, from a thread
    /// that may block, including a plugin's host call. Inside a plugin call
    /// the request is cut off at that call's deadline.
    pub fn block_on<F: Future>(
        &self,
        request: F,
    ) -> Result<Result<F::Output, PastDeadline>, String> {
        let runtime = self.runtime()?;
        let deadline = CALL_DEADLINE.get();
        // Inside `drive_until` this thread is already driving the runtime;
        // block_in_place lets it drive the nested request too.
        Ok(tokio::task::block_in_place(|| {
            runtime.block_on(async {
                match deadline {
                    Some(at) => tokio::time::timeout_at(at.into(), request)
                        .await
                        .map_err(|_| PastDeadline),
                    None => Ok(request.await),
                }
            })
        }))
    }

    /// Drive `call` (a call into a plugin) on this thread until it ends or
    /// `deadline` passes, whichever is first; `None` when the deadline won.
    pub fn drive_until<F: Future>(
        &self,
        deadline: Instant,
        call: F,
    ) -> Result<Option<F::Output>, String> {
        let runtime = self.runtime()?;
        let _scope = DeadlineScope::set(deadline);
        Ok(runtime.block_on(async { tokio::time::timeout_at(deadline.into(), call).await.ok() }))
    }
}

/// Sets this thread's call deadline, and restores the previous one on drop.
struct DeadlineScope(Option<Instant>);

impl DeadlineScope {
    fn set(deadline: Instant) -> Self {
        DeadlineScope(CALL_DEADLINE.replace(Some(deadline)))
    }
}

impl Drop for DeadlineScope {
    fn drop(&mut self) {
        CALL_DEADLINE.set(self.0);
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which must not happen inside
        // the server's own runtime; let them go instead.
        if let Some(Ok(runtime)) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bridge")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn requests_inside_a_call_end_at_its_deadline() {
        let bridge = Bridge::default();
        let started = Instant::now();
        let outcome = bridge
            .drive_until(started + Duration::from_secs(5), async {
                // A host call made from inside the plugin call: nested, and cut short.
                let _scope = DeadlineScope::set(Instant::now() + Duration::from_millis(50));
                bridge.block_on(tokio::time::sleep(Duration::from_secs(30)))
            })
            .unwrap()
            .expect("the call itself finished");
        assert!(matches!(outcome, Ok(Err(PastDeadline))), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            CALL_DEADLINE.get(),
            None,
            "the deadline is cleared after the call"
        );
    }

    #[test]
    fn a_call_that_outlives_its_deadline_is_abandoned() {
        let bridge = Bridge::default();
        let started = Instant::now();
        let outcome = bridge
            .drive_until(started + Duration::from_millis(50), async {
                tokio::time::sleep(Duration::from_secs(30)).await
            })
            .unwrap();
        assert!(outcome.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        let outside = bridge.block_on(async { 7 }).unwrap();
        assert!(matches!(outside, Ok(7)));
    }
}
