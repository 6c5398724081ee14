//! The wasmtime side of remedy: one Engine and one Linker for the process,
//! compiled components cached on disk, each plugin pre-instantiated once, and
//! every call run in a fresh instance under its plugin's limits.

pub mod cache;
mod context;
pub mod limits;

use crate::caps::journal::Journal;
use crate::caps::log::LogLine;
use crate::caps::{Grants, HostEnv};
use crate::contract::{self, ApiError, Incident, Plan, PluginBindings, PluginInfo, PluginPre};
use cache::{CacheUse, CompiledCache};
pub use context::RunContext;
use limits::{EpochTicker, MAX_CONCURRENT_INSTANCES, MAX_PLUGIN_MEMORY, PluginLimits};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot set up the WebAssembly engine: {0:#}")]
    Setup(wasmtime::Error),
    #[error("cannot create the compiled-plugin cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a plugin could not be loaded. Each names the plugin and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{plugin}`: sha256 is {actual}, but the config pins {expected}")]
    Sha256Mismatch {
        plugin: String,
        expected: String,
        actual: String,
    },
    #[error("plugin `{plugin}` is not a valid remedy component: {detail}")]
    Invalid { plugin: String, detail: String },
    #[error("plugin `{plugin}`: describe() failed: {failure}")]
    Describe { plugin: String, failure: Failure },
}

/// Why a component cannot be linked, naming the contract version this host
/// speaks when the component was built against another.
fn unlinkable(error: &wasmtime::Error, imports: &[String]) -> String {
    let speaks = format!(
        "@{}",
        contract::PACKAGE.rsplit('@').next().unwrap_or_default()
    );
    let other = imports
        .iter()
        .find(|import| import.starts_with("remedy:plugin/") && !import.ends_with(&speaks));
    match other {
        Some(import) => format!(
            "it imports {import}, and this remedy speaks {} (`remedy plugins wit` prints it): \
             rebuild the plugin against that contract",
            contract::PACKAGE
        ),
        None => format!("{error:#}"),
    }
}

/// How a call into a plugin failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("timed out after {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    #[error("stopped at its memory cap of {cap} bytes (it asked for {wanted})")]
    MemoryCap { cap: usize, wanted: usize },
    #[error("trapped: {0}")]
    Trapped(String),
    #[error("returned an error: {}", .0.describe())]
    Plugin(ApiError),
    #[error("returned an unacceptable answer: {0}")]
    Invalid(String),
}

/// The result of one call, with what the plugin logged and how long it took.
#[derive(Debug)]
pub struct Call<T> {
    pub result: Result<T, Failure>,
    pub logs: Vec<LogLine>,
    /// Parameters the plugin said it took from elsewhere (`params.used`).
    pub used_params: std::collections::BTreeMap<String, String>,
    pub instantiate: Duration,
    pub call: Duration,
}

/// Where a plugin comes from and how it is bounded, as configured.
pub struct PluginSpec {
    pub name: String,
    pub wasm: Wasm,
    pub sha256_pin: Option<String>,
    pub grants: Grants,
    pub limits: PluginLimits,
}

/// A plugin's WebAssembly and its sha256, which names it in run records and
/// in the compiled cache.
pub struct Wasm {
    bytes: Cow<'static, [u8]>,
    sha256: Cow<'static, str>,
}

impl Wasm {
    /// A plugin embedded in the binary, with the digest its build computed:
    /// a start whose compiled cache is warm reads neither the bytes nor
    /// hashes them, so they stay out of memory.
    pub fn embedded(bytes: &'static [u8], sha256: &'static str) -> Self {
        Wasm {
            bytes: Cow::Borrowed(bytes),
            sha256: Cow::Borrowed(sha256),
        }
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl From<Vec<u8>> for Wasm {
    fn from(bytes: Vec<u8>) -> Self {
        Wasm {
            sha256: cache::sha256_hex(&bytes).into(),
            bytes: Cow::Owned(bytes),
        }
    }
}

/// A plugin ready to run: compiled, checked against its grants, described.
pub struct LoadedPlugin {
    pub name: String,
    pub sha256: String,
    pub info: PluginInfo,
    /// Interfaces the component imports, remedy's and WASI's.
    pub imports: Vec<String>,
    pub grants: Grants,
    pub limits: PluginLimits,
    pub cache: CacheUse,
    pre: PluginPre<RunContext>,
}

impl LoadedPlugin {
    /// remedy interfaces the plugin imports but holds no read grant for, each
    /// with the grant line that would allow it. Such a plugin still loads:
    /// the grant, not the import, is the boundary. Every call through these
    /// answers `denied` and is noted in the run record, and a plugin that
    /// asks `grants.readable` first skips that tier without a denial.
    pub fn ungranted(&self) -> Vec<(&str, &'static str)> {
        self.imports
            .iter()
            .filter_map(|import| {
                let grant = self.grants.missing_for(remedy_interface(import)?)?;
                Some((import.as_str(), grant))
            })
            .collect()
    }

    /// Every import, with the grant line that would allow it when it has
    /// none (see [`LoadedPlugin::ungranted`]).
    pub fn imports_and_grants(&self) -> Vec<(&str, Option<&'static str>)> {
        let ungranted = self.ungranted();
        self.imports
            .iter()
            .map(|import| {
                let missing = ungranted.iter().find(|(name, _)| name == import);
                (import.as_str(), missing.map(|(_, grant)| *grant))
            })
            .collect()
    }

    /// The action kinds it says it may propose, for a person.
    pub fn proposes(&self) -> String {
        match self.info.action_kinds.as_slice() {
            [] => "none (read-only)".into(),
            kinds => kinds.join(", "),
        }
    }
}

pub struct PluginEngine {
    engine: Engine,
    linker: Linker<RunContext>,
    cache: Option<CompiledCache>,
    pooling: bool,
    env: Arc<HostEnv>,
    _ticker: EpochTicker,
}

impl PluginEngine {
    /// An engine caching compiled plugins in `cache_dir` (none: compile every time).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, EngineError> {
        let (engine, allocation) = first_engine()?;
        let pooling = allocation != Allocation::OnDemand;
        let mut linker = Linker::new(&engine);
        context::add_to_linker(&mut linker).map_err(EngineError::Setup)?;
        let cache = cache_dir
            .map(|dir| {
                CompiledCache::new(dir.clone())
                    .map_err(|source| EngineError::Cache { path: dir, source })
            })
            .transpose()?;
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|e| EngineError::Setup(wasmtime::Error::from(e)))?;
        Ok(PluginEngine {
            engine,
            linker,
            cache,
            pooling,
            env: Arc::new(HostEnv::default()),
            _ticker: ticker,
        })
    }

    /// Use these Nomad and Docker settings instead of the defaults.
    pub fn with_env(mut self, env: HostEnv) -> Self {
        self.env = Arc::new(env);
        self
    }

    /// The services plugins read from and the executor acts on.
    pub fn env(&self) -> &HostEnv {
        &self.env
    }

    pub fn uses_pooling(&self) -> bool {
        self.pooling
    }

    /// Compile (or fetch from the cache), check imports against grants,
    /// pre-instantiate and describe a plugin.
    pub fn load(&self, spec: PluginSpec) -> Result<LoadedPlugin, LoadError> {
        let plugin = spec.name.clone();
        let sha256 = spec.wasm.sha256.into_owned();
        if let Some(expected) = &spec.sha256_pin
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(LoadError::Sha256Mismatch {
                plugin,
                expected: expected.clone(),
                actual: sha256,
            });
        }
        let invalid = |detail: String| LoadError::Invalid {
            plugin: spec.name.clone(),
            detail,
        };
        let (component, cache_use) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, &spec.wasm.bytes, &sha256),
            None => Component::new(&self.engine, &spec.wasm.bytes).map(|c| (c, CacheUse::Compiled)),
        }
        .map_err(|e| invalid(format!("{e:#}")))?;

        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map_err(|e| invalid(unlinkable(&e, &imports)))?;

        let mut loaded = LoadedPlugin {
            name: spec.name,
            sha256,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                params: Vec::new(),
                action_kinds: Vec::new(),
            },
            imports,
            grants: spec.grants,
            limits: spec.limits,
            cache: cache_use,
            pre,
        };
        let described = self
            .call(&loaded, &Journal::live(), async |bindings, store| {
                bindings.call_describe(store).await
            })
            .result
            .and_then(|info| {
                limits::validate_info(&info)
                    .map(|()| info)
                    .map_err(Failure::Invalid)
            });
        loaded.info = described.map_err(|failure| LoadError::Describe {
            plugin: loaded.name.clone(),
            failure,
        })?;
        Ok(loaded)
    }

    /// One round of planning in a fresh instance.
    pub fn plan(&self, plugin: &LoadedPlugin, incident: &Incident) -> Call<Plan> {
        self.plan_through(plugin, incident, &Journal::live())
    }

    /// The same, its read calls going through `journal`: kept, or answered
    /// from a recording.
    pub fn plan_through(
        &self,
        plugin: &LoadedPlugin,
        incident: &Incident,
        journal: &Journal,
    ) -> Call<Plan> {
        let Call {
            result,
            logs,
            used_params,
            instantiate,
            call,
        } = self.call(plugin, journal, async |bindings, store| {
            bindings.call_plan(store, incident).await
        });
        let result = match result {
            Ok(Ok(plan)) => limits::validate_plan(&plan)
                .map(|()| plan)
                .map_err(Failure::Invalid),
            Ok(Err(error)) => match limits::validate_error(&error) {
                Ok(()) => Err(Failure::Plugin(error)),
                Err(why) => Err(Failure::Invalid(why)),
            },
            Err(failure) => Err(failure),
        };
        Call {
            result,
            logs,
            used_params,
            instantiate,
            call,
        }
    }

    /// Instantiate `plugin` and make one call into it, bounded by its limits.
    /// The deadline is wall-clock over the whole call, host calls included:
    /// a plugin waiting in WASI is dropped when it passes, wasm code is
    /// interrupted by the epoch, and remedy's own host calls end by it.
    fn call<T>(
        &self,
        plugin: &LoadedPlugin,
        journal: &Journal,
        work: impl AsyncFnOnce(&PluginBindings, &mut Store<RunContext>) -> wasmtime::Result<T>,
    ) -> Call<T> {
        let mut store = Store::new(
            &self.engine,
            RunContext::new(&plugin.grants, &plugin.limits, &self.env, journal),
        );
        store.limiter(|ctx| &mut ctx.limiter);
        store.set_epoch_deadline(plugin.limits.deadline_ticks());
        store.epoch_deadline_trap();

        let started = Instant::now();
        let deadline = started + plugin.limits.timeout;
        let mut instantiate = None;
        let driven = self.env.bridge.drive_until(deadline, async {
            let bindings = plugin.pre.instantiate_async(&mut store).await;
            instantiate = Some(started.elapsed());
            work(&bindings?, &mut store).await
        });
        let instantiate = instantiate.unwrap_or_else(|| started.elapsed());
        let call = started.elapsed() - instantiate;

        let result = match driven {
            Ok(None) => Err(Failure::TimedOut(plugin.limits.timeout)),
            // An answer that comes after the deadline is as late as none.
            Ok(Some(_)) if Instant::now() > deadline + limits::EPOCH_TICK => {
                Err(Failure::TimedOut(plugin.limits.timeout))
            }
            Ok(Some(result)) => {
                result.map_err(|error| classify(error, store.data(), &plugin.limits))
            }
            Err(why) => Err(Failure::Trapped(format!(
                "remedy could not run the plugin: {why}"
            ))),
        };
        let mut context = store.into_data();
        let used_params = std::mem::take(&mut context.used.0);
        let stderr = context.stderr.contents();
        let mut logs = context.finish_log();
        logs.extend(
            String::from_utf8_lossy(&stderr)
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| LogLine {
                    level: "stderr",
                    message: line.to_string(),
                }),
        );
        Call {
            result,
            logs,
            used_params,
            instantiate,
            call,
        }
    }
}

fn classify(error: wasmtime::Error, context: &RunContext, limits: &PluginLimits) -> Failure {
    if let Some(wanted) = context.limiter.exceeded {
        return Failure::MemoryCap {
            cap: limits.memory,
            wanted,
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return Failure::TimedOut(limits.timeout);
    }
    // A Rust plugin's panic message is on stderr: "panicked at FILE:LINE:" then the message.
    let stderr = context.stderr.contents();
    let stderr = String::from_utf8_lossy(&stderr);
    let panic: Vec<&str> = stderr
        .lines()
        .skip_while(|line| !line.contains("panicked at"))
        .take(2)
        .map(str::trim)
        .collect();
    let cause = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    if panic.is_empty() {
        Failure::Trapped(cause)
    } else {
        Failure::Trapped(format!("{cause}: {}", panic.join(" ")))
    }
}

/// `fs` for `remedy:plugin/fs@0.2.0`; `None` for anything not remedy's.
fn remedy_interface(import: &str) -> Option<&str> {
    let (package, version) = contract::PACKAGE.split_once('@')?;
    import
        .strip_prefix(package)?
        .strip_prefix('/')?
        .strip_suffix(version)?
        .strip_suffix('@')
}

/// How plugin instances get their memory, best first: remedy uses the
/// first this machine allows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allocation {
    /// Pooled slots whose written pages `PAGEMAP_SCAN` finds (Linux 6.7+),
    /// up to [`MEMORY_KEPT_RESIDENT`], and resets in place.
    PoolResetInPlace,
    /// Pooled slots whose memory is given back with `madvise`.
    Pool,
    /// Memory mapped for each instance: the pool reserves address space up
    /// front, which a small `ulimit -v`, say, does not allow.
    OnDemand,
}

/// The engine with the first allocation this machine allows.
fn first_engine() -> Result<(Engine, Allocation), EngineError> {
    let engine = |allocation| Engine::new(&config(allocation)).map(|e| (e, allocation));
    engine(Allocation::PoolResetInPlace)
        .or_else(|error| {
            tracing::info!("plugin memory is given back after each call: {error:#}");
            engine(Allocation::Pool)
        })
        .or_else(|error| {
            tracing::info!("pooling allocator unavailable, allocating on demand: {error:#}");
            engine(Allocation::OnDemand)
        })
        .map_err(EngineError::Setup)
}

/// Bytes of each pooled table reset in place rather than given back.
const TABLE_KEPT_RESIDENT: usize = 64 << 10;

/// Bytes of each pooled linear memory's written pages reset in place rather
/// than given back, with [`Allocation::PoolResetInPlace`]. Measured: a warm
/// dispatch of echo went from 20.5 to 11.5 µs and disk-cleanup's planning
/// from 43 to 26 µs, the next instance taking no page faults and the reset
/// no `madvise`; 64 KiB, 256 KiB and 1 MiB measured the same, so at most
/// 4 MiB stays resident over all the pool's slots.
const MEMORY_KEPT_RESIDENT: usize = 64 << 10;

fn config(allocation: Allocation) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    if allocation != Allocation::OnDemand {
        let instances = MAX_CONCURRENT_INSTANCES;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            // Async calls run on a fiber stack each.
            .total_stacks(instances)
            .max_memory_size(MAX_PLUGIN_MEMORY);
        // Tables are reset with a memset instead of a madvise: measured, a
        // warm dispatch of echo went from 30.9 to 22.5 µs.
        pool.table_keep_resident(TABLE_KEPT_RESIDENT);
        if allocation == Allocation::PoolResetInPlace {
            // Required, not "if supported": without the scan, keeping
            // memory resident means a memset of its first bytes, which
            // faults in pages the plugin never touched.
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(MEMORY_KEPT_RESIDENT);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remedy_interfaces_are_recognised_by_package_and_version() {
        assert_eq!(remedy_interface("remedy:plugin/fs@0.2.0"), Some("fs"));
        assert_eq!(remedy_interface("remedy:plugin/kube@0.2.0"), Some("kube"));
        assert_eq!(remedy_interface("remedy:plugin/fs@0.1.0"), None);
        assert_eq!(remedy_interface("wasi:cli/stderr@0.2.0"), None);
    }
}
