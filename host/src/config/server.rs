//! The `[server]` table: how `remedy serve` listens, authenticates and
//! bounds its queue and workers.

use super::{parse_duration, parse_size};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<String>,
    token_file: Option<PathBuf>,
    basic_auth: Option<RawBasicAuth>,
    /// People and their roles: `[basic_auth_users]` (name = bcrypt hash)
    /// and `[roles]` (name = ["read", "decide"]).
    users_file: Option<PathBuf>,
    #[serde(default)]
    insecure_no_auth: bool,
    tls: Option<RawTls>,
    max_body: Option<String>,
    max_alerts: Option<usize>,
    max_queued: Option<u64>,
    workers: Option<usize>,
    per_plugin: Option<usize>,
    target_labels: Option<Vec<String>>,
    shutdown_grace: Option<String>,
    /// Where people reach this remedy (`https://remedy.example.com`), for
    /// links to a run's page in notifications.
    external_url: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: String,
    password_file: PathBuf,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
}

/// How Alertmanager proves who it is. Secrets stay in their files until
/// `remedy serve` starts, so `config show` never prints them.
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    pub token_file: Option<PathBuf>,
    pub basic: Option<(String, PathBuf)>,
    /// The people who may read runs or decide on plans, with their roles.
    pub users_file: Option<PathBuf>,
    /// Explicitly accept unauthenticated webhooks (tests on loopback only).
    pub insecure_no_auth: bool,
}

#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub auth: AuthConfig,
    pub tls: Option<TlsConfig>,
    /// Largest webhook body accepted; larger ones get 413.
    pub max_body: usize,
    /// Most alerts in one webhook request.
    pub max_alerts: usize,
    /// Most queued runs; beyond it webhooks get 503 so Alertmanager retries.
    pub max_queued: u64,
    /// Runs executing at once, in all.
    pub workers: usize,
    /// Runs of one plugin executing at once.
    pub per_plugin: usize,
    /// Labels naming what a run acts on: one run at a time per target.
    pub target_labels: Vec<String>,
    /// How long shutdown waits for executing runs.
    pub shutdown_grace: Duration,
    /// Where people reach this remedy, without a trailing `/`.
    pub external_url: Option<String>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9095";

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            auth: AuthConfig::default(),
            tls: None,
            max_body: 1 << 20,
            max_alerts: 1000,
            max_queued: 10_000,
            workers: 4,
            per_plugin: 2,
            target_labels: vec!["instance".into()],
            shutdown_grace: Duration::from_secs(30),
            external_url: None,
        }
    }
}

pub(super) fn validate_server(
    raw: RawServer,
    base: &Path,
    problems: &mut Vec<String>,
) -> ServerConfig {
    let mut server = ServerConfig::default();
    let mut problem = |text: String| problems.push(format!("[server] {text}"));
    if let Some(listen) = raw.listen {
        match listen.parse() {
            Ok(addr) => server.listen = addr,
            Err(_) => problem(format!(
                "listen = {listen:?}: expected an address and port such as \"{DEFAULT_LISTEN}\""
            )),
        }
    }
    server.auth = AuthConfig {
        token_file: raw.token_file.map(|f| base.join(f)),
        basic: raw
            .basic_auth
            .map(|b| (b.username, base.join(b.password_file))),
        users_file: raw.users_file.map(|f| base.join(f)),
        insecure_no_auth: raw.insecure_no_auth,
    };
    if let Some((username, _)) = &server.auth.basic
        && (username.is_empty() || username.contains(':'))
    {
        problem("basic_auth.username must be non-empty and hold no `:`".into());
    }
    server.tls = raw.tls.map(|tls| TlsConfig {
        cert_file: base.join(tls.cert_file),
        key_file: base.join(tls.key_file),
        client_ca_file: tls.client_ca_file.map(|f| base.join(f)),
    });
    if let Some(text) = raw.max_body {
        match parse_size(&text) {
            Ok(size) if (1024..=64 << 20).contains(&size) => server.max_body = size as usize,
            Ok(_) => problem(format!(
                "max_body = {text:?}: must be between 1KiB and 64MiB"
            )),
            Err(e) => problem(format!("max_body = {text:?}: {e}")),
        }
    }
    let mut count = |key: &str, value: Option<usize>, slot: &mut usize, max: usize| {
        if let Some(value) = value {
            if (1..=max).contains(&value) {
                *slot = value;
            } else {
                problem(format!("{key} = {value}: must be between 1 and {max}"));
            }
        }
    };
    count(
        "max_alerts",
        raw.max_alerts,
        &mut server.max_alerts,
        100_000,
    );
    count("workers", raw.workers, &mut server.workers, 256);
    count("per_plugin", raw.per_plugin, &mut server.per_plugin, 256);
    let mut queued = server.max_queued as usize;
    count(
        "max_queued",
        raw.max_queued.map(|q| q as usize),
        &mut queued,
        10_000_000,
    );
    server.max_queued = queued as u64;
    if let Some(labels) = raw.target_labels {
        if labels.iter().any(String::is_empty) {
            problems.push("[server] target_labels names an empty label".into());
        }
        server.target_labels = labels;
    }
    if let Some(text) = raw.external_url {
        match url::Url::parse(&text) {
            // No `<`, `>` or `|`: the link goes into chat messages as `<url|text>`.
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.query().is_none()
                    && !text.contains(['<', '>', '|', ' ']) =>
            {
                server.external_url = Some(text.trim_end_matches('/').to_string());
            }
            _ => problems.push(format!(
                "[server] external_url = {text:?}: expected an http(s) address such as \"https://remedy.example.com\""
            )),
        }
    }
    if let Some(text) = raw.shutdown_grace {
        match parse_duration(&text) {
            Ok(grace) => server.shutdown_grace = grace,
            Err(e) => problems.push(format!("[server] shutdown_grace = {text:?}: {e}")),
        }
    }
    server
}
