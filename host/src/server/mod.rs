//! `remedy serve`: the Alertmanager webhook target.
//!
//! A webhook request is parsed, routed and admitted to the durable queue in
//! one store transaction, then answered 202; it never waits for a plugin. The
//! [`dispatch`] loop takes queued runs as the concurrency limits allow and
//! runs each on a blocking thread through the same [`crate::run`] code as
//! `remedy run`.

mod api;
pub mod auth;
mod checkpoints;
mod console;
mod dispatch;
mod fleet;
pub mod metrics;
pub mod notify;
pub mod openapi;
mod pruning;
mod runs_api;
mod tls;
mod webhook;

use crate::config::{Config, FleetTimes, RouteConfig, ServerConfig};
use crate::engine::{LoadedPlugin, PluginEngine};
use crate::run::resolve_params;
use crate::store::{Location, Store, StoreError};
use crate::sys::group_commit::GroupCommit;
use auth::{AuthError, Credentials};
use metrics::Metrics;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, watch};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("[server] tls: {0}")]
    Tls(String),
    #[error("route `{route}`: {message}")]
    Route { route: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "remedy agent executes a fleet's runs from a shared store; set [store] url to the \
         fleet's PostgreSQL (with one remedy on one host, use remedy serve)"
    )]
    AgentAlone,
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot draw a random key for the console's form tokens: {0}")]
    Random(std::io::Error),
}

/// A configured route with its plugin loaded and its params resolved.
pub struct ReadyRoute {
    pub config: RouteConfig,
    pub plugin: Arc<LoadedPlugin>,
    pub params: Vec<(String, String)>,
}

/// What a config reload replaces: routes, plugins (with their params,
/// grants and limits) and the approval TTL. Runs already executing keep the
/// one they started with.
pub struct Live {
    pub config: Config,
    pub routes: Vec<ReadyRoute>,
    pub plugins: HashMap<String, Arc<LoadedPlugin>>,
}

impl Live {
    /// Resolve every route against the loaded plugins.
    pub fn build(
        config: Config,
        plugins: HashMap<String, Arc<LoadedPlugin>>,
    ) -> Result<Live, ServeError> {
        let mut routes = Vec::new();
        for route in &config.routes {
            let route_error = |message: String| ServeError::Route {
                route: route.name.clone(),
                message,
            };
            let plugin = plugins
                .get(&route.plugin)
                .ok_or_else(|| route_error(format!("plugin `{}` is not loaded", route.plugin)))?;
            let plugin_config = config.plugin(&route.plugin).ok_or_else(|| {
                route_error(format!("plugin `{}` is not configured", route.plugin))
            })?;
            let params = resolve_params(plugin, &plugin_config.params, &route.params)
                .map_err(route_error)?;
            routes.push(ReadyRoute {
                config: route.clone(),
                plugin: plugin.clone(),
                params,
            });
        }
        Ok(Live {
            config,
            routes,
            plugins,
        })
    }

    /// When each route's failing runs open its breaker, for the store that
    /// records their ends.
    pub fn breaker_rules(&self) -> HashMap<String, crate::store::BreakerRule> {
        self.routes
            .iter()
            .map(|route| {
                let rule = crate::store::BreakerRule {
                    failures: route.config.breaker_failures,
                    window: route.config.breaker_window,
                };
                (route.config.name.clone(), rule)
            })
            .collect()
    }

    pub fn route(&self, name: &str) -> Option<&ReadyRoute> {
        self.routes.iter().find(|r| r.config.name == name)
    }
}

/// Loads the config again, with its plugins, for a reload.
pub type Reloader =
    Box<dyn Fn() -> Result<(Config, HashMap<String, Arc<LoadedPlugin>>), String> + Send + Sync>;

/// Everything the handlers and workers share.
pub struct Shared {
    /// `[server]` as started: listening, credentials and limits need a restart.
    pub server: ServerConfig,
    live: RwLock<Arc<Live>>,
    reloader: Option<Reloader>,
    pub engine: Arc<PluginEngine>,
    /// Used by the webhook handler; workers have their own connection, so a
    /// long run's writes never queue behind admissions or the reverse.
    pub ingest: Store,
    /// Webhook requests waiting to be admitted together ([`GroupCommit`]).
    admissions: GroupCommit<Vec<crate::contract::Alert>, webhook::Answer>,
    pub work: Store,
    pub credentials: Credentials,
    pub metrics: Arc<Metrics>,
    /// Escalations, approvals needed, failures and breaker trips go out here.
    pub notifier: notify::Notifier,
    /// Rung after every admission and every finished run, and when another
    /// process queued a run (PostgreSQL's `NOTIFY`).
    pub wake: Notify,
    pub stopping: AtomicBool,
    pub role: Role,
    /// Where runs confirm their alert still fires (`[alertmanager]`).
    pub alertmanager: Option<Arc<crate::confirm::Alertmanager>>,
    /// The fleet's clocks, on a store other processes share; `None` when
    /// this process has its store to itself.
    pub fleet: Option<FleetTimes>,
    /// The key of the console's form tokens, drawn at start.
    pub csrf: console::csrf::CsrfKey,
    /// Told whenever a run is admitted, starts, ends or is decided on: the
    /// console's live updates.
    pub changes: tokio::sync::broadcast::Sender<()>,
}

impl Shared {
    /// Tell whoever watches (the console) that runs changed.
    pub fn changed(&self) {
        // Nobody watching is fine.
        let _ = self.changes.send(());
    }
}

/// What a remedy process is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `remedy serve`: Alertmanager's webhook target and the runs API; it
    /// also executes runs for its own node and cluster-wide ones.
    Receiver,
    /// `remedy agent`: executes the shared queue's runs for its node; it
    /// serves only health and metrics.
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Receiver => "serve",
            Role::Agent => "agent",
        }
    }
}

impl Shared {
    /// The routes and plugins in force now.
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Load the config again and, if it is valid and every plugin loads,
    /// switch to it; otherwise keep the running one. Either way it is audited.
    pub fn reload(&self, trigger: &str) -> Result<serde_json::Value, String> {
        let attempt = match &self.reloader {
            None => Err("this server has no config file to reload".to_string()),
            Some(load) => load().and_then(|(config, plugins)| {
                Live::build(config, plugins).map_err(|e| e.to_string())
            }),
        };
        match attempt {
            Ok(live) => {
                let plugins: Vec<serde_json::Value> = live
                    .plugins
                    .values()
                    .map(|p| serde_json::json!({ "name": p.name, "sha256": p.sha256, "grants": p.grants }))
                    .collect();
                let summary = serde_json::json!({
                    "trigger": trigger,
                    "origin": live.config.origin,
                    "routes": live.routes.iter().map(|r| r.config.name.clone()).collect::<Vec<_>>(),
                    "plugins": plugins,
                });
                self.work.audit("config-reloaded", None, &summary).map_err(|e| {
                    format!("the new config is valid, but the audit trail cannot be written, so it was not applied: {e}")
                })?;
                self.work.set_breaker_rules(live.breaker_rules());
                *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
                self.metrics.reload_ok.set(1);
                self.metrics.reload_success_at.set(unix_now());
                tracing::info!(trigger, "config reloaded");
                Ok(summary)
            }
            Err(why) => {
                let body = serde_json::json!({ "trigger": trigger, "error": why });
                if let Err(e) = self.work.audit("config-reload-failed", None, &body) {
                    tracing::error!("cannot audit the refused reload: {e}");
                }
                self.metrics.reload_ok.set(0);
                tracing::error!(
                    trigger,
                    "config reload refused, the running config stays: {why}"
                );
                Err(why)
            }
        }
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// Everything `remedy serve` needs, loaded and checked before it listens.
pub struct Server {
    shared: Arc<Shared>,
    /// Started with the runtime, in `run`.
    sinks: Vec<crate::config::NotifyConfig>,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    /// Check the config against the loaded plugins, read the credentials,
    /// open the store and bind the listener. Any problem is an error naming it.
    pub fn prepare(
        config: Config,
        engine: Arc<PluginEngine>,
        plugins: HashMap<String, Arc<LoadedPlugin>>,
        reloader: Option<Reloader>,
        store: &Location,
        listen: SocketAddr,
        role: Role,
    ) -> Result<Server, ServeError> {
        let credentials = match role {
            Role::Receiver => Credentials::load(&config.server.auth)?,
            // An agent answers health and metrics only, which ask for none.
            Role::Agent => Credentials::nobody(),
        };
        let tls = config
            .server
            .tls
            .as_ref()
            .map(tls::server_config)
            .transpose()
            .map_err(ServeError::Tls)?;
        let server = config.server.clone();
        let sinks = config.notify.clone();
        let alertmanager = crate::confirm::Alertmanager::from_settings(
            &config.alertmanager,
            engine.env().bridge.clone(),
        );
        let live = Live::build(config, plugins)?;
        let metrics = Arc::new(Metrics::new());
        let ingest = Store::open_at(store)?;
        let work = Store::open_at(store)?;
        work.set_breaker_rules(live.breaker_rules());
        if role == Role::Agent && !work.is_shared() {
            return Err(ServeError::AgentAlone);
        }
        let fleet = work.is_shared().then_some(live.config.store.fleet);
        for id in work.interrupt_orphans()? {
            tracing::warn!(run = %id, "run was executing when remedy stopped; marked interrupted");
        }
        let listener =
            std::net::TcpListener::bind(listen).map_err(|source| ServeError::Listen {
                addr: listen,
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ServeError::Listen {
                addr: listen,
                source,
            })?;
        Ok(Server {
            sinks,
            shared: Arc::new(Shared {
                server,
                live: RwLock::new(Arc::new(live)),
                reloader,
                engine,
                ingest,
                admissions: GroupCommit::default(),
                work,
                credentials,
                notifier: notify::Notifier::idle(metrics.clone()),
                metrics,
                wake: Notify::new(),
                stopping: AtomicBool::new(false),
                role,
                alertmanager,
                fleet,
                csrf: console::csrf::CsrfKey::new().map_err(ServeError::Random)?,
                changes: tokio::sync::broadcast::channel(16).0,
            }),
            listener,
            tls,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` completes, then stop accepting, give executing
    /// runs the configured grace, and return.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let shared = self.shared;
        // First, before anything is served: a key that cannot be read stops remedy.
        let audit = shared.live().config.audit.clone();
        let key = checkpoints::signing_key(&audit).map_err(std::io::Error::other)?;
        let checkpoints = checkpoints::Checkpoints::start(&shared, key.clone(), &audit);
        let pruning = tokio::spawn(pruning::prune_periodically(shared.clone(), key));
        shared
            .notifier
            .start(self.sinks, shared.server.external_url.clone());
        let app = api::router(shared.clone());
        let fleet = fleet::start(shared.clone());
        let handle = axum_server::Handle::new();
        let (stop_tx, stop_rx) = watch::channel(false);
        let dispatcher = tokio::spawn(dispatch::until_stopped(shared.clone(), stop_rx));

        let addr = self.listener.local_addr()?;
        let serving = {
            let handle = handle.clone();
            let service = app.into_make_service();
            match self.tls {
                Some(config) => {
                    let tls = axum_server::tls_rustls::RustlsConfig::from_config(config);
                    tokio::spawn(
                        axum_server::from_tcp_rustls(self.listener, tls)
                            .handle(handle)
                            .serve(service),
                    )
                }
                None => tokio::spawn(
                    axum_server::from_tcp(self.listener)
                        .handle(handle)
                        .serve(service),
                ),
            }
        };
        tracing::info!(%addr, tls = shared.server.tls.is_some(), role = shared.role.as_str(), "remedy is listening");
        release_start_up_code();
        shared.metrics.reload_ok.set(1);
        shared.metrics.reload_success_at.set(unix_now());
        let reloads = tokio::spawn(reload_on_sighup(shared.clone()));

        shutdown.await;
        tracing::info!("stopping: no new alerts are accepted; queued runs stay queued");
        shared.stopping.store(true, Ordering::Relaxed);
        // Requests in flight get a moment to finish their durable write.
        handle.graceful_shutdown(Some(Duration::from_secs(5)));
        let _ = stop_tx.send(true);
        reloads.abort();
        pruning.abort();
        let _ = dispatcher.await;
        if let Some(checkpoints) = checkpoints {
            checkpoints.finish().await;
        }
        fleet.stop().await;
        match serving.await {
            Ok(result) => result,
            Err(join) => Err(std::io::Error::other(join)),
        }
    }
}

/// Reload the config on every SIGHUP, as Prometheus and Alertmanager do.
async fn reload_on_sighup(shared: Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /-/reload");
        return;
    };
    while hangups.recv().await.is_some() {
        let shared = shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.reload("SIGHUP")).await;
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{name} received");
}

/// Give back the code pages start-up touched: parsing config, compiling or
/// mapping plugins and migrating the store run once, and their pages
/// would otherwise stay resident for as long as remedy serves.
fn release_start_up_code() {
    #[cfg(target_os = "linux")]
    match crate::sys::memory::release_code_pages() {
        Ok(bytes) => tracing::debug!(bytes, "start-up code pages given back"),
        Err(e) => tracing::debug!("start-up code pages kept: {e}"),
    }
}
