//! `remedy serve`: receive Alertmanager webhooks and remediate; `remedy
//! agent`: remediate a fleet node's share of the shared queue.

use super::{Cli, UsageError, exit, load_config_at, load_plugin};
use crate::config::Config;
use crate::engine::{LoadedPlugin, PluginEngine};
use crate::server::{Reloader, Role, ServeError, Server, termination_signal};
use anyhow::{Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Point Alertmanager at it (alertmanager.yml):
  receivers:
    - name: remedy
      webhook_configs:
        - url: http://127.0.0.1:9095/v1/alerts
          http_config:
            authorization:
              credentials_file: /etc/remedy/token

remedy answers 202 once the alerts are durably queued, 4xx for requests it
will never accept, and 503 (which Alertmanager retries) when it cannot accept
now. Routes run in their mode: dry-run (the default), apply, or approve.

Endpoints: POST /v1/alerts (role post: Alertmanager's credentials), GET
/v1/runs and /v1/runs/ID (role read), POST /v1/runs/ID/approve and /reject
and POST /-/reload (role decide), GET /metrics, /-/healthy, /-/ready. People
and their roles are the users of [server] users_file (remedy hash-password). SIGHUP or POST /-/reload load the config again: routes,
plugins and their grants switch over only if all of it is valid (the running
config stays otherwise); [server], [nomad] and [docker] need a restart.
SIGTERM or SIGINT stop it gracefully.
See examples/deploy/ for a systemd unit and a Nomad job.")]
pub struct ServeArgs {
    /// Address to listen on [default: [server] listen in the config, else 127.0.0.1:9095]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,

    /// File holding the bearer token Alertmanager sends [default: [server]
    /// token_file]; lets the built-in default config serve as it is
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

pub fn serve(cli: &Cli, args: &ServeArgs) -> Result<u8> {
    let mut config = cli.load_config()?;
    if let Some(token_file) = &args.token_file {
        config.server.auth.token_file = Some(token_file.clone());
    }
    let listen = args.listen.unwrap_or(config.server.listen);
    run_until_stopped(cli, config, listen, Role::Receiver)
}

#[derive(Debug, Args)]
#[command(after_help = "\
An agent runs on every node of a fleet, against the fleet's shared
PostgreSQL store ([store] url), with that node's own config: its plugins
and grants decide what may be touched on it. It takes the queued runs for
its node (the node an alert is about, see `remedy node`) and the
cluster-wide runs of plugins it has, executes them under a lease it renews
every [store] heartbeat, and records everything in the shared store.

It receives no alerts: `remedy serve` does, on one or two hosts behind
Alertmanager. An agent that dies mid-run leaves its run to end `interrupted`
when its lease runs out; it is never executed again. A run for a node where
no remedy is heard from escalates after [store] unattended_after.

Endpoints: GET /metrics, GET /-/healthy, GET /-/ready.
See examples/deploy/ for the fleet's Nomad jobs.")]
pub struct AgentArgs {
    /// Address for health and metrics [default: 127.0.0.1:9096]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
}

/// Where an agent serves health and metrics unless told.
const AGENT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9096,
));

pub fn agent(cli: &Cli, args: &AgentArgs) -> Result<u8> {
    let config = cli.load_config()?;
    run_until_stopped(
        cli,
        config,
        args.listen.unwrap_or(AGENT_LISTEN),
        Role::Agent,
    )
}

/// Load the plugins, open the store, and serve in `role` until SIGTERM.
fn run_until_stopped(cli: &Cli, config: Config, listen: SocketAddr, role: Role) -> Result<u8> {
    let store = cli.store_location(&config)?;
    let engine = Arc::new(cli.engine(&config)?);
    let plugins = load_plugins(&engine, &config)?;
    let origin = config.origin.clone();
    let node = config.node.name.clone();
    // A reload reads the same file again and loads every plugin anew, so a
    // changed .wasm or grant takes effect; only then does the server switch.
    let reloader: Reloader = {
        let path = cli.config.clone();
        let engine = engine.clone();
        Box::new(move || {
            let config = load_config_at(path.as_deref()).map_err(|e| format!("{e:#}"))?;
            let plugins = load_plugins(&engine, &config).map_err(|e| format!("{e:#}"))?;
            Ok((config, plugins))
        })
    };
    let server = Server::prepare(
        config,
        engine,
        plugins,
        Some(reloader),
        &store,
        listen,
        role,
    )
    .map_err(|e| match e {
        ServeError::Store(_) | ServeError::Listen { .. } => anyhow::Error::new(e),
        config_problem => UsageError(config_problem.to_string()).into(),
    })?;
    let role = role.as_str();
    tracing::info!(config = %origin, store = %store, %node, "remedy {role} starting");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(format!("remedy-{role}"))
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(server.serve_until(termination_signal()))
        .with_context(|| format!("remedy {role}"))?;
    // Runs past their grace were marked interrupted; do not wait on them.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(exit::SUCCESS)
}

fn load_plugins(
    engine: &PluginEngine,
    config: &Config,
) -> Result<HashMap<String, Arc<LoadedPlugin>>> {
    config
        .plugins
        .iter()
        .map(|plugin| Ok((plugin.name.clone(), Arc::new(load_plugin(engine, plugin)?))))
        .collect()
}
