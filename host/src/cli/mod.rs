//! The `remedy` command line: one file per subcommand.

mod approve;
mod audit;
mod config_cmd;
mod docs;
mod node;
mod nodes;
mod output;
mod plugins;
mod replay;
mod routes;
mod run;
mod runs;
mod scaffold;
mod serve;
mod users;

use crate::config::{Config, PluginConfig, Source};
use crate::engine::{LoadError, LoadedPlugin, PluginEngine, PluginSpec, Wasm};
use crate::store::{Location, Postgres, Store};
use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Exit codes:
  0  succeeded (for a dry-run: the plan was made and recorded)
  1  failed: the run failed, timed out or trapped, or remedy could not run it
  2  usage or config error
  3  nothing to do
  4  escalated: a human is needed
  5  denied: the plan asked for something its grants do not allow

Config: --config FILE, else $REMEDY_CONFIG, else /etc/remedy/remedy.toml if it
exists, else the built-in default (`remedy config show` prints it).";

/// Alert-driven auto-remediation with sandboxed WebAssembly plugins.
///
/// A plugin looks at the host through read-only interfaces its grants allow
/// and proposes a plan; remedy checks each action against the grants and the
/// object's identity, records it, and executes it, or, in a dry-run (the
/// default), only shows and records it.
#[derive(Debug, Parser)]
#[command(name = "remedy", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Config file [default: $REMEDY_CONFIG, /etc/remedy/remedy.toml, or built in]
    #[arg(long, global = true, env = "REMEDY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Where runs and compiled plugins are kept
    /// [default: config state_dir, $XDG_STATE_HOME/remedy, ~/.local/state/remedy]
    #[arg(long, global = true, env = "REMEDY_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// More of remedy's log output on stderr (-v info, -vv debug); RUST_LOG
    /// overrides, and is how to see the libraries' own lines
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    /// One JSON object per line, with the run id in its span
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a plugin now: plan (the default) or plan and apply
    Run(run::RunArgs),
    /// Receive Alertmanager webhooks: route, queue durably, remediate
    Serve(serve::ServeArgs),
    /// On each node of a fleet: execute that node's runs from the shared store
    Agent(serve::AgentArgs),
    /// List or inspect the configured plugins; test them on recorded worlds
    #[command(subcommand, visible_alias = "plugin")]
    Plugins(plugins::PluginsCommand),
    /// Validate or print the config
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Show recorded runs
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Test which route an alert takes; reset a route's circuit breaker
    #[command(subcommand)]
    Routes(routes::RoutesCommand),
    /// Approve a plan awaiting approval and execute exactly that plan
    Approve(approve::ApproveArgs),
    /// Reject a plan awaiting approval: nothing is executed
    Reject(approve::RejectArgs),
    /// Verify, show or export the hash-chained audit trail
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// This node's name, and which node an alert is about
    Node(node::NodeArgs),
    /// The fleet's remedy processes: node, role, last heartbeat, plugins
    Nodes(nodes::NodesArgs),
    /// Hash a password (read from stdin) for a user of [server] users_file
    HashPassword(users::HashPasswordArgs),
    /// Print shell completions (remedy completions bash > /etc/bash_completion.d/remedy)
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the man page (remedy man | man -l -)
    Man,
}

/// Exit statuses, documented in `--help`.
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOTHING_TO_DO: u8 = 3;
    pub const ESCALATED: u8 = 4;
    pub const DENIED: u8 = 5;
}

/// An error the user can fix by changing the command or the config: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            });
        }
    };
    // The daemon reports what it does; one-shot commands only warn.
    let quiet = !matches!(cli.command, Command::Serve(_) | Command::Agent(_));
    init_tracing(cli.verbose + u8::from(!quiet), cli.log_format);
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("remedy: {error:#}");
            let usage = error.downcast_ref::<UsageError>().is_some()
                || error.downcast_ref::<crate::config::ConfigError>().is_some();
            ExitCode::from(if usage { exit::USAGE } else { exit::FAILED })
        }
    }
}

fn dispatch(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Run(args) => run::run(cli, args),
        Command::Serve(args) => serve::serve(cli, args),
        Command::Agent(args) => serve::agent(cli, args),
        Command::Plugins(command) => plugins::plugins(cli, command),
        Command::Config(command) => config_cmd::config(cli, command),
        Command::Runs(command) => runs::runs(cli, command),
        Command::Routes(command) => routes::routes(cli, command),
        Command::Audit(command) => audit::audit(cli, command),
        Command::Approve(args) => approve::approve(cli, args),
        Command::Reject(args) => approve::reject(cli, args),
        Command::Node(args) => node::node(cli, args),
        Command::Nodes(args) => nodes::nodes(cli, args),
        Command::HashPassword(args) => users::hash_password(args),
        Command::Completions { shell } => docs::completions(*shell),
        Command::Man => docs::man(),
    }
}

fn init_tracing(verbose: u8, format: LogFormat) {
    let default = match verbose {
        // Long waits inside a run are shown even when the rest is quiet.
        0 => format!("warn,{}=info", crate::run::PROGRESS),
        // remedy's own lines only: wasmtime and cranelift log a great deal
        // at debug, and RUST_LOG is there for whoever wants them.
        1 => "warn,remedy=info".into(),
        _ => "warn,remedy=debug".into(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

const SYSTEM_CONFIG: &str = "/etc/remedy/remedy.toml";

/// The config at `path`, else the system one if present, else the built-in one.
fn load_config_at(path: Option<&Path>) -> Result<Config> {
    match config_path(path) {
        Some(path) => Ok(Config::load(&path)?),
        None => Ok(Config::builtin()),
    }
}

/// The config file in use: `path`, else the system one if present; `None`
/// for the built-in default.
fn config_path(path: Option<&Path>) -> Option<PathBuf> {
    let system = Path::new(SYSTEM_CONFIG);
    path.map(Path::to_path_buf)
        .or_else(|| system.exists().then(|| system.to_path_buf()))
}

impl Cli {
    fn load_config(&self) -> Result<Config> {
        load_config_at(self.config.as_deref())
    }

    /// The config as far as it is valid, and every problem in it.
    fn check_config(&self) -> Result<crate::config::Checked> {
        match config_path(self.config.as_deref()) {
            Some(path) => Ok(Config::check_file(&path)?),
            None => Ok(crate::config::Checked {
                config: Config::builtin(),
                problems: Vec::new(),
            }),
        }
    }

    fn state_dir(&self, config: &Config) -> Result<PathBuf> {
        if let Some(dir) = self.state_dir.clone().or(config.state_dir.clone()) {
            return Ok(dir);
        }
        if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(xdg).join("remedy"));
        }
        let home = std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| UsageError("no state directory: set --state-dir or HOME".into()))?;
        Ok(PathBuf::from(home).join(".local/state/remedy"))
    }

    /// Where the store is: `[store] url`, else `state.db` in the state directory.
    fn store_location(&self, config: &Config) -> Result<Location> {
        match &config.store.url {
            Some(url) => Ok(Location::Postgres(Postgres {
                url: url.clone(),
                password: config.store.password().map_err(UsageError)?,
                ca_file: config.store.ca_file.clone(),
                cert_file: config.store.cert_file.clone(),
                key_file: config.store.key_file.clone(),
            })),
            None => Ok(Location::Dir(self.state_dir(config)?)),
        }
    }

    fn open_store(&self, config: &Config) -> Result<Store> {
        let location = self.store_location(config)?;
        let fix = match location {
            Location::Dir(_) => "choose another with --state-dir",
            Location::Postgres(_) => "check [store] and that PostgreSQL is up",
        };
        Store::open_at(&location).with_context(|| {
            format!(
                "cannot open the state store {location}, so nothing can be recorded and nothing is run ({fix})"
            )
        })
    }

    /// An engine caching compiled plugins in the state dir; without a cache
    /// (and a warning) where that cannot be created: compiling is only slower.
    fn engine(&self, config: &Config) -> Result<PluginEngine> {
        let cache = self.state_dir(config)?.join("compiled");
        let env = || {
            crate::caps::HostEnv::new(config.nomad.clone(), config.docker.clone())
                .with_paths(config.netns.clone(), config.kmod.clone())
                .with_prometheus(config.prometheus.clone())
                .with_kube(config.kubernetes.clone())
                .named(&config.node.name)
        };
        let engine = match PluginEngine::new(Some(cache)) {
            Err(crate::engine::EngineError::Cache { path, source }) => {
                tracing::warn!(
                    "not caching compiled plugins: cannot create {}: {source}",
                    path.display()
                );
                PluginEngine::new(None)?
            }
            engine => engine?,
        };
        Ok(engine.with_env(env()))
    }
}

fn plugin_config<'c>(config: &'c Config, name: &str) -> Result<&'c PluginConfig> {
    config.plugin(name).ok_or_else(|| {
        anyhow!(UsageError(format!(
            "no plugin `{name}` in the {} config; configured: {}",
            config.origin,
            config.plugin_names().join(", ")
        )))
    })
}

fn load_plugin(engine: &PluginEngine, plugin: &PluginConfig) -> Result<LoadedPlugin> {
    let wasm: Wasm = match &plugin.source {
        Source::Builtin(name) => crate::builtin::wasm(name)
            .ok_or_else(|| UsageError(format!("no built-in plugin `{name}`")))?,
        Source::File(path) => std::fs::read(path)
            .map_err(|e| {
                UsageError(format!(
                    "plugin `{}`: cannot read source {}: {e}",
                    plugin.name,
                    path.display()
                ))
            })?
            .into(),
    };
    engine
        .load(PluginSpec {
            name: plugin.name.clone(),
            wasm,
            sha256_pin: plugin.sha256.clone(),
            grants: plugin.grants.clone(),
            limits: plugin.limits,
        })
        .map_err(|error| match error {
            LoadError::Describe { .. } => anyhow!(error),
            config_problem => anyhow!(UsageError(config_problem.to_string())),
        })
}

/// The alert in `--alert FILE`; a bad file is a usage error naming it.
fn read_alert_file(path: &Path) -> Result<crate::contract::Alert> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("--alert {}: {e}", path.display())))?;
    Ok(crate::alert::parse_alert_json(&text)
        .map_err(|e| UsageError(format!("--alert {}: {e}", path.display())))?)
}

/// `key=value` for `--label` and `--param`.
fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pairs() {
        assert_eq!(parse_pair("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_pair("a="), Ok(("a".into(), String::new())));
        assert!(parse_pair("=b").is_err());
        assert!(parse_pair("ab").is_err());
    }
}
