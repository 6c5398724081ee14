//! `remedy serve`: receive Alertmanager webhooks and remediate.

use super::{Cli, UsageError, exit, load_plugin};
use crate::server::{ServeError, Server, termination_signal};
use anyhow::{Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::net::SocketAddr;
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

Endpoints: POST /v1/alerts, GET /v1/runs, GET /v1/runs/ID, GET /metrics,
GET /-/healthy, GET /-/ready. SIGTERM or SIGINT stop it gracefully.
See examples/deploy/ for a systemd unit and a Nomad job.")]
pub struct ServeArgs {
    /// Address to listen on [default: [server] listen in the config, else 127.0.0.1:9095]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
}

pub fn serve(cli: &Cli, args: &ServeArgs) -> Result<u8> {
    let config = cli.load_config()?;
    let state_dir = cli.state_dir(&config)?;
    let engine = Arc::new(cli.engine(&config)?);
    let mut plugins = HashMap::new();
    for plugin in &config.plugins {
        let loaded = load_plugin(&engine, plugin)?;
        plugins.insert(plugin.name.clone(), Arc::new(loaded));
    }
    let listen = args.listen.unwrap_or(config.server.listen);
    let origin = config.origin.clone();
    let server =
        Server::prepare(config, engine, plugins, &state_dir, listen).map_err(|e| match e {
            ServeError::Store(_) | ServeError::Listen { .. } => anyhow::Error::new(e),
            config_problem => UsageError(config_problem.to_string()).into(),
        })?;
    tracing::info!(config = %origin, state_dir = %state_dir.display(), "remedy serve starting");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("remedy-serve")
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(server.run(termination_signal()))
        .context("serving webhooks")?;
    // Runs past their grace were marked interrupted; do not wait on them.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(exit::SUCCESS)
}
