//! Nomad and Docker speak async HTTP, while plugins call the host
//! synchronously and the executor is synchronous. One small runtime, started
//! the first time a request is made, runs those requests for both.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::Runtime;

#[derive(Default)]
pub struct Bridge {
    runtime: OnceLock<Result<Runtime, String>>,
}

impl Bridge {
    /// Run `request` to completion on the bridge's runtime. Call it from a
    /// thread that may block (never from async code).
    pub fn block_on<F: Future>(&self, request: F) -> Result<F::Output, String> {
        let runtime = self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("remedy-io")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the I/O runtime: {e}"))
        });
        match runtime {
            Ok(runtime) => Ok(runtime.block_on(request)),
            Err(why) => Err(why.clone()),
        }
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
