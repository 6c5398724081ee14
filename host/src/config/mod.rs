//! The operator's config file: plugins, what each may touch, and how it is bounded.
//!
//! Parsing is strict (unknown keys are errors, so a typo never silently drops
//! a grant) and validation reports every problem at once, each naming the
//! plugin and the key to fix.

use crate::builtin;
use crate::caps::Grants;
use crate::caps::docker::DockerSettings;
use crate::caps::log::LogLimits;
use crate::caps::nomad::NomadSettings;
use crate::engine::limits::{MAX_PLUGIN_MEMORY, PluginLimits};
use crate::matcher::{Matcher, parse_matchers};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

mod notify;
mod server;
pub use notify::{EventKind, NotifyConfig, NotifyFormat};
pub use server::{AuthConfig, DEFAULT_LISTEN, ServerConfig, TlsConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path} has {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid { path: String, problems: Vec<String> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    approval_ttl: Option<String>,
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    nomad: NomadSettings,
    #[serde(default)]
    docker: DockerSettings,
    #[serde(default)]
    netns: crate::caps::netns::NetnsSettings,
    #[serde(default)]
    kmod: crate::caps::kmod::KmodSettings,
    #[serde(default, rename = "notify")]
    notify: Vec<notify::RawNotify>,
    #[serde(default, rename = "plugin")]
    plugins: Vec<RawPlugin>,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Option<String>,
    #[serde(default)]
    matchers: Vec<String>,
    plugin: String,
    mode: Option<Mode>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    cooldown: Option<String>,
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default, rename = "continue")]
    continue_matching: bool,
    max_rounds: Option<u32>,
    breaker_failures: Option<u32>,
    breaker_window: Option<String>,
}

/// What a route does with the plan its plugin makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Execute it.
    Apply,
    /// Record it and execute nothing.
    DryRun,
    /// Record it and wait for a human to approve exactly that plan.
    Approve,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Apply => "apply",
            Mode::DryRun => "dry-run",
            Mode::Approve => "approve",
        }
    }
}

/// Which alerts go to which plugin. Routes are tried in order; the first
/// that matches wins, unless it says `continue = true`, as in Alertmanager.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub name: String,
    /// All must match; none matches every alert.
    pub matchers: Vec<Matcher>,
    pub plugin: String,
    pub mode: Mode,
    /// Override the plugin's configured params for alerts on this route.
    pub params: BTreeMap<String, String>,
    /// After a run, how long the same route and `group_by` values stay quiet.
    pub cooldown: Duration,
    pub group_by: Vec<String>,
    pub continue_matching: bool,
    pub max_rounds: Option<u32>,
    /// Failed runs within `breaker_window` that switch the route to dry-run; 0 never.
    pub breaker_failures: u32,
    pub breaker_window: Duration,
}

pub const DEFAULT_BREAKER_FAILURES: u32 = 3;
pub const DEFAULT_BREAKER_WINDOW: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: String,
    source: String,
    sha256: Option<String>,
    timeout: Option<String>,
    memory: Option<String>,
    max_rounds: Option<u32>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    grants: Grants,
}

/// Where a plugin's wasm comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Builtin(String),
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Builtin(name) => write!(f, "builtin:{name}"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct PluginConfig {
    pub name: String,
    pub source: Source,
    pub sha256: Option<String>,
    pub limits: PluginLimits,
    pub max_rounds: u32,
    /// Operator defaults for the plugin's params; a run's own params win.
    pub params: BTreeMap<String, String>,
    pub grants: Grants,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Where the config came from: a path, or `built-in default`.
    pub origin: String,
    pub state_dir: Option<PathBuf>,
    /// How long a plan awaiting approval may still be approved.
    pub approval_ttl: Duration,
    pub server: ServerConfig,
    /// How to reach Nomad, for plugins granted `nomad`.
    pub nomad: NomadSettings,
    /// How to reach the Docker engine, for plugins granted `docker`.
    pub docker: DockerSettings,
    /// Where named network namespaces live (`[netns] dir`).
    pub netns: crate::caps::netns::NetnsSettings,
    /// sysfs and the modprobe and nbd-client programs (`[kmod]`).
    pub kmod: crate::caps::kmod::KmodSettings,
    /// Webhooks told about escalations, approvals, failures and breaker trips.
    pub notify: Vec<NotifyConfig>,
    pub plugins: Vec<PluginConfig>,
    pub routes: Vec<RouteConfig>,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MEMORY: &str = "64MiB";
pub const DEFAULT_MAX_ROUNDS: u32 = 5;
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(3600);

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    /// The config remedy uses when none is given: every first-party plugin
    /// with the grants its runbook needs. Without `--apply` nothing executes.
    pub fn builtin() -> Config {
        Config::parse(builtin::DEFAULT_CONFIG, "built-in default", Path::new("/"))
            .expect("the built-in default config is valid")
    }

    /// Parse and validate `text`; relative plugin paths are taken from `base`.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        let mut plugins = Vec::new();
        for (index, raw) in raw.plugins.into_iter().enumerate() {
            let at = format!("[[plugin]] #{} `{}`", index + 1, raw.name);
            if !names.insert(raw.name.clone()) {
                problems.push(format!("{at}: name is used by an earlier plugin"));
            }
            if let Some(plugin) = validate_plugin(raw, base, &at, &mut problems) {
                plugins.push(plugin);
            }
        }
        let mut routes: Vec<RouteConfig> = Vec::new();
        for (index, raw) in raw.routes.into_iter().enumerate() {
            if let Some(route) = validate_route(raw, index, &names, &mut problems) {
                // Dedup, cooldown and breakers are kept per route name.
                if routes.iter().any(|r| r.name == route.name) {
                    problems.push(format!(
                        "[[route]] #{} `{}`: name is used by an earlier route",
                        index + 1,
                        route.name
                    ));
                }
                routes.push(route);
            }
        }
        if let Some(dir) = &raw.state_dir
            && !dir.is_absolute()
        {
            problems.push(format!(
                "state_dir = {:?}: must be an absolute path",
                dir.display()
            ));
        }
        let server = server::validate_server(raw.server, base, &mut problems);
        let approval_ttl = match raw.approval_ttl.as_deref().map(parse_duration) {
            None => DEFAULT_APPROVAL_TTL,
            Some(Ok(ttl)) if ttl > Duration::ZERO => ttl,
            Some(Ok(_)) => {
                problems.push("approval_ttl must be longer than zero".into());
                DEFAULT_APPROVAL_TTL
            }
            Some(Err(e)) => {
                problems.push(format!(
                    "approval_ttl = {:?}: {e}",
                    raw.approval_ttl.unwrap_or_default()
                ));
                DEFAULT_APPROVAL_TTL
            }
        };
        let notify = notify::validate_notify(raw.notify, base, &mut problems);
        problems.extend(raw.nomad.problems());
        problems.extend(raw.docker.problems());
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: origin.to_string(),
                problems,
            });
        }
        Ok(Config {
            origin: origin.to_string(),
            state_dir: raw.state_dir,
            approval_ttl,
            server,
            nomad: raw.nomad,
            docker: raw.docker,
            netns: raw.netns,
            kmod: raw.kmod,
            notify,
            plugins,
            routes,
        })
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name == name)
    }

    pub fn plugin_names(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.name.as_str()).collect()
    }
}

fn validate_route(
    raw: RawRoute,
    index: usize,
    plugins: &HashSet<String>,
    problems: &mut Vec<String>,
) -> Option<RouteConfig> {
    let name = raw.name.unwrap_or_else(|| format!("route-{}", index + 1));
    let at = format!("[[route]] #{} `{name}`", index + 1);
    let before = problems.len();
    let mut matchers = Vec::new();
    for text in &raw.matchers {
        match parse_matchers(text) {
            Ok(parsed) => matchers.extend(parsed),
            Err(e) => problems.push(format!("{at}: matchers entry {text:?}: {e}")),
        }
    }
    if !plugins.contains(&raw.plugin) {
        problems.push(format!(
            "{at}: plugin = {:?} is not a configured [[plugin]]",
            raw.plugin
        ));
    }
    let mut duration = |key: &str, text: Option<String>, default: Duration| match text {
        None => default,
        Some(text) => parse_duration(&text).unwrap_or_else(|e| {
            problems.push(format!("{at}: {key} = {text:?}: {e}"));
            default
        }),
    };
    let cooldown = duration("cooldown", raw.cooldown, Duration::ZERO);
    let breaker_window = duration("breaker_window", raw.breaker_window, DEFAULT_BREAKER_WINDOW);
    if raw.group_by.iter().any(String::is_empty) {
        problems.push(format!("{at}: group_by names an empty label"));
    }
    if let Some(rounds) = raw.max_rounds
        && !(1..=100).contains(&rounds)
    {
        problems.push(format!(
            "{at}: max_rounds = {rounds}: must be between 1 and 100"
        ));
    }
    (problems.len() == before).then(|| RouteConfig {
        name,
        matchers,
        plugin: raw.plugin,
        // Safe by default: a route executes nothing unless it says apply.
        mode: raw.mode.unwrap_or(Mode::DryRun),
        params: raw.params,
        cooldown,
        group_by: raw.group_by,
        continue_matching: raw.continue_matching,
        max_rounds: raw.max_rounds,
        breaker_failures: raw.breaker_failures.unwrap_or(DEFAULT_BREAKER_FAILURES),
        breaker_window,
    })
}

fn validate_plugin(
    raw: RawPlugin,
    base: &Path,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<PluginConfig> {
    let before = problems.len();
    let mut problem = |text: String| problems.push(format!("{at}: {text}"));

    if raw.name.is_empty()
        || !raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        problem("name must be non-empty letters, digits, `-`, `_` or `.`".into());
    }
    let source = match raw.source.strip_prefix("builtin:") {
        Some(name) if builtin::wasm(name).is_some() => Source::Builtin(name.into()),
        Some(name) => {
            problem(format!(
                "source = {:?}: no built-in plugin `{name}`; built-in: {}",
                raw.source,
                builtin::NAMES.join(", ")
            ));
            Source::Builtin(name.into())
        }
        None => Source::File(base.join(&raw.source)),
    };
    if let Some(sha) = &raw.sha256
        && (sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()))
    {
        problem(format!("sha256 = {sha:?}: expected 64 hex digits"));
    }
    let timeout = match raw.timeout.as_deref().map(humantime::parse_duration) {
        None => DEFAULT_TIMEOUT,
        Some(Ok(t)) if (Duration::from_millis(10)..=Duration::from_secs(600)).contains(&t) => t,
        Some(Ok(_)) => {
            problem("timeout must be between 10ms and 10m".into());
            DEFAULT_TIMEOUT
        }
        Some(Err(e)) => {
            problem(format!(
                "timeout = {:?}: {e} (write e.g. \"30s\")",
                raw.timeout.unwrap_or_default()
            ));
            DEFAULT_TIMEOUT
        }
    };
    let memory_text = raw.memory.as_deref().unwrap_or(DEFAULT_MEMORY);
    let memory = match parse_size(memory_text) {
        Ok(bytes) if (1 << 20..=MAX_PLUGIN_MEMORY as u64).contains(&bytes) => bytes as usize,
        Ok(_) => {
            problem(format!(
                "memory = {memory_text:?}: must be between 1MiB and 1GiB"
            ));
            0
        }
        Err(e) => {
            problem(format!("memory = {memory_text:?}: {e}"));
            0
        }
    };
    let max_rounds = raw.max_rounds.unwrap_or(DEFAULT_MAX_ROUNDS);
    if !(1..=100).contains(&max_rounds) {
        problem(format!(
            "max_rounds = {max_rounds}: must be between 1 and 100"
        ));
    }
    for (key, roots) in [
        ("fs_read", &raw.grants.fs_read),
        ("fs_remove", &raw.grants.fs_remove),
        ("proc_exes", &raw.grants.proc_exes),
        ("proc_locks", &raw.grants.proc_locks),
    ] {
        for root in roots {
            if !is_clean_absolute(root) {
                problem(format!(
                    "grants.{key} = {:?}: must be an absolute path without `.` or `..`",
                    root.display()
                ));
            }
        }
    }
    if raw.grants.nomad_namespaces.iter().any(String::is_empty) {
        problem("grants.nomad_namespaces names an empty namespace".into());
    }
    if raw
        .grants
        .docker_labels
        .iter()
        .any(|l| l.is_empty() || l.starts_with('='))
    {
        problem("grants.docker_labels entries are `key` or `key=value`".into());
    }
    for root in &raw.grants.fs_remove {
        if !raw.grants.fs_read.iter().any(|read| root.starts_with(read)) {
            problem(format!(
                "grants.fs_remove = {:?} is not below any fs_read root; a plugin must be able to \
                 look at what it proposes to remove, so add it to fs_read",
                root.display()
            ));
        }
    }

    (problems.len() == before).then(|| PluginConfig {
        name: raw.name,
        source,
        sha256: raw.sha256.map(|s| s.to_ascii_lowercase()),
        limits: PluginLimits {
            timeout,
            memory,
            log: LogLimits::default(),
        },
        max_rounds,
        params: raw.params,
        grants: raw.grants,
    })
}

fn is_clean_absolute(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !path.as_os_str().to_string_lossy().contains("/./")
}

/// `64MiB`, `512KiB`, `1GiB`, `100MB`, or a number of bytes.
/// A duration such as `15m` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. \"15m\")"))
}

/// An RFC 3339 time, or a duration meaning that long ago.
pub fn parse_since(text: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(at);
    }
    let age = parse_duration(text).map_err(|_| {
        format!("{text:?} is neither a time such as 2026-11-21T08:00:00Z nor an age such as 2h")
    })?;
    Ok(std::time::SystemTime::now()
        .checked_sub(age)
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH))
}

pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| "expected a size such as \"64MiB\"".to_string())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?}; use B, KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| "size too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", Path::new("/etc/remedy"))
    }

    #[test]
    fn the_builtin_default_is_valid_and_covers_every_builtin_plugin() {
        let config = Config::builtin();
        for name in builtin::NAMES {
            assert!(
                config.plugin(name).is_some(),
                "{name} missing from the default config"
            );
            assert!(
                config.routes.iter().any(|r| r.plugin == name),
                "no route to {name}"
            );
        }
        assert!(
            config.routes.iter().all(|r| r.mode == Mode::DryRun),
            "every built-in route must be dry-run"
        );
    }

    const ONE_PLUGIN: &str = "[[plugin]]\nname = \"p\"\nsource = \"builtin:disk-cleanup\"\n";

    #[test]
    fn notify_receivers_and_approval_ttl() {
        let config = parse(
            "approval_ttl = \"15m\"\n[[notify]]\nname = \"ops\"\nurl = \"https://hooks.example/x\"\nformat = \"slack\"\nevents = [\"escalated\"]\n",
        )
        .unwrap();
        assert_eq!(config.approval_ttl, Duration::from_secs(900));
        let sink = &config.notify[0];
        assert_eq!(
            (sink.format, sink.events.clone()),
            (NotifyFormat::Slack, vec![EventKind::Escalated])
        );
        assert_eq!(
            (sink.timeout, sink.retries),
            (notify::DEFAULT_NOTIFY_TIMEOUT, 3)
        );

        let error = parse(
            "approval_ttl = \"0s\"\n[[notify]]\nname = \"a\"\nurl = \"ftp://x\"\n[[notify]]\nname = \"a\"\nurl = \"http://x\"\nurl_file = \"f\"\n",
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "approval_ttl must be longer than zero",
            "[[notify]] #1 `a`: the URL must start with http:// or https://",
            "[[notify]] #2 `a`: name is used by an earlier [[notify]]",
            "[[notify]] #2 `a`: set exactly one of url and url_file",
        ] {
            assert!(
                error.contains(expected),
                "{expected:?} missing from:\n{error}"
            );
        }
        let unknown = parse("[[notify]]\nname = \"a\"\nurl = \"http://x\"\nevents = [\"paged\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("paged") && unknown.contains("escalated"),
            "{unknown}"
        );
    }

    #[test]
    fn routes() {
        let config = parse(&format!(
            r#"{ONE_PLUGIN}
            [[route]]
            name = "disk"
            matchers = ['alertname=~"DiskSpace(Low|Critical)"', 'severity!=info, team=sre']
            plugin = "p"
            mode = "apply"
            cooldown = "15m"
            group_by = ["instance"]
            continue = true
            [[route]]
            plugin = "p"
            "#
        ))
        .unwrap();
        let disk = &config.routes[0];
        assert_eq!(disk.matchers.len(), 3);
        assert_eq!(
            (disk.mode, disk.cooldown),
            (Mode::Apply, Duration::from_secs(900))
        );
        assert!(disk.continue_matching);
        let fallback = &config.routes[1];
        assert_eq!(
            (fallback.name.as_str(), fallback.mode),
            ("route-2", Mode::DryRun)
        );
        assert!(fallback.matchers.is_empty());
    }

    #[test]
    fn route_problems_are_all_reported() {
        let bad_mode = format!("{ONE_PLUGIN}[[route]]\nplugin = \"p\"\nmode = \"yolo\"\n");
        let error = parse(&bad_mode).unwrap_err().to_string();
        assert!(
            error.contains("yolo") && error.contains("dry-run"),
            "{error}"
        );

        let broken = format!(
            "{ONE_PLUGIN}[[route]]\nmatchers = ['alertname=~\"(\"', 'a=\"b']\nplugin = \"q\"\ncooldown = \"later\"\ngroup_by = [\"\"]\n"
        );
        let error = parse(&broken).unwrap_err().to_string();
        for needle in [
            "invalid regular expression",
            "missing closing quote",
            "\"q\" is not a configured",
            "cooldown",
            "group_by",
        ] {
            assert!(error.contains(needle), "missing {needle:?} in {error}");
        }
    }

    #[test]
    fn a_full_plugin_entry() {
        let config = parse(
            r#"
            state_dir = "/var/lib/remedy"
            [[plugin]]
            name = "cleanup"
            source = "plugins/cleanup.wasm"
            sha256 = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"
            timeout = "5s"
            memory = "32MiB"
            max_rounds = 3
            params = { target_used_percent = "70" }
            [plugin.grants]
            fs_read = ["/data"]
            fs_remove = ["/data/cache"]
            proc = ["read"]
            "#,
        )
        .unwrap();
        let plugin = config.plugin("cleanup").unwrap();
        assert_eq!(
            plugin.source,
            Source::File("/etc/remedy/plugins/cleanup.wasm".into())
        );
        assert_eq!(plugin.limits.timeout, Duration::from_secs(5));
        assert_eq!(plugin.limits.memory, 32 << 20);
        assert_eq!(plugin.max_rounds, 3);
        assert!(plugin.sha256.as_deref().unwrap().starts_with("abcdef"));
    }

    #[test]
    fn typos_are_errors_not_silently_dropped_grants() {
        let error = parse(
            "[[plugin]]\nname = \"a\"\nsource = \"builtin:disk-cleanup\"\n[plugin.grants]\nfs_raed = [\"/x\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("fs_raed") && error.contains("test.toml"),
            "{error}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let error = parse(
            r#"
            [[plugin]]
            name = "a"
            source = "builtin:nope"
            sha256 = "xyz"
            timeout = "forever"
            memory = "9GiB"
            max_rounds = 0
            [plugin.grants]
            fs_read = ["relative", "/data/../etc"]
            fs_remove = ["/elsewhere"]
            proc_exes = ["firecracker"]
            [[plugin]]
            name = "a"
            source = "x.wasm"
            "#,
        )
        .unwrap_err();
        let ConfigError::Invalid { problems, .. } = error else {
            panic!("{error}")
        };
        let all = problems.join("\n");
        for needle in [
            "no built-in plugin `nope`",
            "sha256",
            "timeout",
            "memory",
            "max_rounds",
            "\"relative\"",
            "\"/data/../etc\"",
            "not below any fs_read root",
            "grants.proc_exes = \"firecracker\"",
            "name is used by an earlier plugin",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn server_problems_name_their_key() {
        let error = Config::parse(
            r#"
            [server]
            listen = "localhost"
            max_body = "1GiB"
            workers = 0
            shutdown_grace = "soon"
            basic_auth = { username = "a:b", password_file = "p" }
            [[plugin]]
            name = "p"
            source = "builtin:disk-cleanup"
            [[route]]
            name = "r"
            plugin = "p"
            [[route]]
            name = "r"
            plugin = "p"
            "#,
            "test",
            Path::new("/etc/remedy"),
        )
        .unwrap_err();
        let ConfigError::Invalid { problems, .. } = error else {
            panic!("{error}")
        };
        let all = problems.join("\n");
        for needle in [
            "[server] listen = \"localhost\"",
            "[server] max_body",
            "[server] workers = 0",
            "[server] shutdown_grace",
            "basic_auth.username",
            "name is used by an earlier route",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        let unknown = Config::parse("[server]\nlisten_on = \"x\"\n", "test", Path::new("/"));
        assert!(unknown.unwrap_err().to_string().contains("listen_on"));
    }

    #[test]
    fn server_defaults_and_relative_files() {
        let config = Config::parse(
            "[server]\ntoken_file = \"token\"\n",
            "test",
            Path::new("/etc/remedy"),
        )
        .unwrap();
        assert_eq!(config.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            config.server.auth.token_file.as_deref(),
            Some(Path::new("/etc/remedy/token"))
        );
        assert_eq!(config.server.workers, 4);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }
}
