//! What one plugin instance sees: a WASI context with nothing in it but clocks
//! and randomness, and the remedy read interfaces scoped by its grants.

use super::limits::{MemoryLimiter, PluginLimits};
use crate::caps::docker::DockerReader;
use crate::caps::fs::FsReader;
use crate::caps::kmod::KmodReader;
use crate::caps::log::LogSink;
use crate::caps::netns::NetnsReader;
use crate::caps::nomad::NomadReader;
use crate::caps::proc::{PROC_ROOT, ProcReader, ProcRight};
use crate::caps::{Connections, Grants};
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
    fs: FsReader,
    proc: ProcReader,
    nomad: NomadReader,
    docker: DockerReader,
    netns: NetnsReader,
    kmod: KmodReader,
    pub(super) log: LogSink,
}

impl RunContext {
    /// The plugin's log lines, then every host call a capability refused.
    pub(super) fn finish_log(self) -> Vec<crate::caps::log::LogLine> {
        let denials = self.fs.denials.into_lines().into_iter();
        let denials = denials
            .chain(self.proc.denials.into_lines())
            .chain(self.nomad.denials.into_lines())
            .chain(self.docker.denials.into_lines())
            .chain(self.netns.denials.into_lines())
            .chain(self.kmod.denials.into_lines());
        let mut lines = self.log.finish();
        lines.extend(denials.map(|message| crate::caps::log::LogLine {
            level: "denied",
            message,
        }));
        lines
    }
}

impl RunContext {
    pub fn new(grants: &Grants, limits: &PluginLimits, connections: &Connections) -> Self {
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
            fs: FsReader::new(&grants.fs_read),
            proc: ProcReader::new(
                PROC_ROOT,
                grants.proc.contains(&ProcRight::Read),
                grants.proc_locks.clone(),
            ),
            nomad: NomadReader::new(connections.nomad.clone(), grants.nomad_grant()),
            docker: DockerReader::new(connections.docker.clone(), grants.docker_grant()),
            netns: NetnsReader::new(connections.netns.dir(), PROC_ROOT, grants.netns_grant()),
            kmod: KmodReader::new(connections.kmod.clone(), &grants.kmod_grant()),
            log: LogSink::new(limits.log),
        }
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
    use crate::contract::{docker, fs, kmod, log, netns, nomad, proc};
    fs::add_to_linker::<_, HasSelf<FsReader>>(linker, |c| &mut c.fs)?;
    proc::add_to_linker::<_, HasSelf<ProcReader>>(linker, |c| &mut c.proc)?;
    nomad::add_to_linker::<_, HasSelf<NomadReader>>(linker, |c| &mut c.nomad)?;
    docker::add_to_linker::<_, HasSelf<DockerReader>>(linker, |c| &mut c.docker)?;
    netns::add_to_linker::<_, HasSelf<NetnsReader>>(linker, |c| &mut c.netns)?;
    kmod::add_to_linker::<_, HasSelf<KmodReader>>(linker, |c| &mut c.kmod)?;
    log::add_to_linker::<_, HasSelf<LogSink>>(linker, |c| &mut c.log)?;
    Ok(())
}
