//! What one plugin instance sees: a WASI context with nothing in it but clocks
//! and randomness, and the remedy read interfaces scoped by its grants.

use super::limits::{MemoryLimiter, PluginLimits};
use crate::caps::journal::Journal;
use crate::caps::log::LogSink;
use crate::caps::{Grants, HasReaders, HostEnv, Readers};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Bytes of stdout/stderr kept per instance (panic messages land on stderr).
const STDIO_CAPTURE: usize = 16 * 1024;

pub struct RunContext {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) stderr: MemoryOutputPipe,
    readers: Readers,
    pub(super) log: LogSink,
    node: NodeName,
    grants: GrantsView,
    pub(super) used: UsedParams,
}

/// The `params` interface: parameters the plugin took from elsewhere than
/// the params passed in, kept (bounded) for the run's record.
#[derive(Default)]
pub(super) struct UsedParams(pub(super) std::collections::BTreeMap<String, String>);

impl UsedParams {
    const MAX: usize = 64;
}

impl crate::contract::params::Host for UsedParams {
    fn used(&mut self, name: String, value: String) {
        if self.0.len() < Self::MAX || self.0.contains_key(&name) {
            let value = crate::caps::log::truncate(&value, super::limits::MAX_TEXT_BYTES);
            self.0.insert(crate::caps::log::truncate(&name, 128), value);
        }
    }
}

/// The `grants` interface: what this plugin's grants allow, so it can plan
/// within them. Every plugin may read it.
struct GrantsView {
    allowed_kinds: Vec<&'static str>,
    readable: Vec<&'static str>,
}

impl GrantsView {
    /// Interfaces every plugin may read, whatever its grants.
    const ALWAYS: [&'static str; 3] = ["log", "node", "grants"];

    fn of(grants: &Grants) -> Self {
        GrantsView {
            allowed_kinds: grants.allowed_kinds(),
            readable: Self::ALWAYS.into_iter().chain(grants.readable()).collect(),
        }
    }
}

impl crate::contract::grants::Host for GrantsView {
    fn allowed_actions(&mut self) -> Vec<String> {
        self.allowed_kinds.iter().map(|k| k.to_string()).collect()
    }

    fn readable(&mut self, interface: String) -> bool {
        self.readable.contains(&interface.as_str())
    }
}

/// The `node` interface: this node's name. Every plugin may read it.
struct NodeName(std::sync::Arc<str>);

impl crate::contract::node::Host for NodeName {
    fn name(&mut self) -> String {
        self.0.to_string()
    }
}

impl RunContext {
    /// The plugin's log lines, then every host call a capability refused.
    pub(super) fn finish_log(self) -> Vec<crate::caps::log::LogLine> {
        let denials = self.readers.denials();
        let mut lines = self.log.finish();
        lines.extend(
            denials
                .into_iter()
                .map(|message| crate::caps::log::LogLine {
                    level: "denied",
                    message,
                }),
        );
        lines
    }
}

impl RunContext {
    /// An instance's context; its read calls go through `journal`.
    pub fn new(grants: &Grants, limits: &PluginLimits, env: &HostEnv, journal: &Journal) -> Self {
        let stderr = MemoryOutputPipe::new(STDIO_CAPTURE);
        // No preopened directories, no environment, no arguments, no sockets.
        let wasi = WasiCtxBuilder::new()
            .stdout(MemoryOutputPipe::new(STDIO_CAPTURE))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        RunContext {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory),
            stderr,
            readers: Readers::new(grants, env, journal),
            log: LogSink::new(limits.log),
            node: NodeName(env.node_name.clone()),
            grants: GrantsView::of(grants),
            used: UsedParams::default(),
        }
    }
}

impl HasReaders for RunContext {
    fn readers(&mut self) -> &mut Readers {
        &mut self.readers
    }
}

impl WasiView for RunContext {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Every interface a plugin may import. Whether a plugin may use one is
/// decided per plugin when it is loaded, and again by its grants on each call.
pub fn add_to_linker(linker: &mut Linker<RunContext>) -> wasmtime::Result<()> {
    // Async, so that a plugin waiting in WASI (a sleep, a poll) is a pending
    // future its deadline can drop, not a blocked thread.
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    Readers::link(linker)?;
    crate::contract::log::add_to_linker::<_, HasSelf<LogSink>>(linker, |c| &mut c.log)?;
    crate::contract::node::add_to_linker::<_, HasSelf<NodeName>>(linker, |c| &mut c.node)?;
    crate::contract::grants::add_to_linker::<_, HasSelf<GrantsView>>(linker, |c| &mut c.grants)?;
    crate::contract::params::add_to_linker::<_, HasSelf<UsedParams>>(linker, |c| &mut c.used)?;
    Ok(())
}
