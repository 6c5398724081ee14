//! The operator's config file: plugins, what each may touch, and how it is bounded.
//!
//! Parsing is strict (unknown keys are errors, so a typo never silently drops
//! a grant) and validation reports every problem at once, each naming the
//! plugin and the key to fix.

use crate::builtin;
use crate::caps::docker::DockerSettings;
use crate::caps::nomad::NomadSettings;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod audit;
mod node;
mod notify;
mod plugin;
mod raw;
mod route;
mod server;
mod store;
mod units;
pub use audit::AuditConfig;
pub use notify::{EventKind, NotifyConfig, NotifyFormat};
pub use plugin::{DEFAULT_MAX_ROUNDS, PluginConfig, Source};
use plugin::{RawPlugin, validate_plugin};
pub use route::{DEFAULT_BREAKER_FAILURES, DEFAULT_BREAKER_WINDOW, Mode, Recording, RouteConfig};
use route::{RawRoute, validate_route};
pub use server::{AuthConfig, DEFAULT_LISTEN, ServerConfig, TlsConfig};
pub use store::{FleetTimes, StoreConfig};
pub use units::{parse_duration, parse_since, parse_size};

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

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    approval_ttl: Option<String>,
    #[serde(default)]
    node: node::RawNode,
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    store: store::RawStore,
    #[serde(default)]
    audit: audit::RawAudit,
    #[serde(default)]
    alertmanager: crate::confirm::AlertmanagerSettings,
    #[serde(default)]
    prometheus: crate::caps::prometheus::PrometheusSettings,
    #[serde(default)]
    nomad: NomadSettings,
    #[serde(default)]
    docker: DockerSettings,
    #[serde(default)]
    kubernetes: crate::caps::kube::KubeSettings,
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
    /// Names of `[[plugin]]` entries that could not be read at all.
    #[serde(skip)]
    unreadable_plugins: Vec<String>,
    /// Where in the file each read `[[plugin]]` and `[[route]]` entry is
    /// (0-based), when some could not be read; else they are in order.
    #[serde(skip)]
    plugin_places: Vec<usize>,
    #[serde(skip)]
    route_places: Vec<usize>,
}

/// A config as far as it is valid: every problem, and the plugins and routes
/// that have none (`config check` loads those even when others are wrong).
pub struct Checked {
    pub config: Config,
    pub problems: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Where the config came from: a path, or `built-in default`.
    pub origin: String,
    pub state_dir: Option<PathBuf>,
    /// How long a plan awaiting approval may still be approved.
    pub approval_ttl: Duration,
    /// This node, and how alerts name the node they are about.
    pub node: crate::node::NodeIdentity,
    pub server: ServerConfig,
    /// Where runs and the audit trail are kept (`[store]`).
    pub store: StoreConfig,
    /// How the audit chain is signed (`[audit]`).
    pub audit: AuditConfig,
    /// Where remedy asks whether an alert still fires (`[alertmanager]`).
    pub alertmanager: crate::confirm::AlertmanagerSettings,
    /// The Prometheus plugins granted `prometheus` query (`[prometheus]`).
    pub prometheus: crate::caps::prometheus::PrometheusSettings,
    /// How to reach Nomad, for plugins granted `nomad`.
    pub nomad: NomadSettings,
    /// How to reach the Docker engine, for plugins granted `docker`.
    pub docker: DockerSettings,
    /// How to reach Kubernetes, for plugins granted `kube` (`[kubernetes]`).
    pub kubernetes: crate::caps::kube::KubeSettings,
    /// Where named network namespaces live (`[netns] dir`).
    pub netns: crate::caps::netns::NetnsSettings,
    /// sysfs and the modprobe and nbd-client programs (`[kmod]`).
    pub kmod: crate::caps::kmod::KmodSettings,
    /// Webhooks told about escalations, approvals, failures and breaker trips.
    pub notify: Vec<NotifyConfig>,
    pub plugins: Vec<PluginConfig>,
    pub routes: Vec<RouteConfig>,
}

pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(3600);

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    /// Every problem in the file at `path` (see [`Config::check`]).
    pub fn check_file(path: &Path) -> Result<Checked, ConfigError> {
        let text = read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::check(&text, &path.display().to_string(), base)
    }

    /// The config remedy uses when none is given: every first-party plugin
    /// with the grants its runbook needs. Without `--apply` nothing executes.
    pub fn builtin() -> Config {
        Config::parse(builtin::DEFAULT_CONFIG, "built-in default", Path::new("/"))
            .expect("the built-in default config is valid")
    }

    /// Parse and validate `text`; relative plugin paths are taken from `base`.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let Checked { config, problems } = Config::check(text, origin, base)?;
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: origin.to_string(),
                problems,
            })
        }
    }

    /// Every problem in `text`, and the config as far as it is valid. Only
    /// text that is not TOML at all is an error.
    pub fn check(text: &str, origin: &str, base: &Path) -> Result<Checked, ConfigError> {
        let (mut raw, mut problems) = raw::read(text, origin)?;
        let mut names: HashSet<String> = raw.unreadable_plugins.iter().cloned().collect();
        let raw_places = (
            std::mem::take(&mut raw.plugin_places),
            std::mem::take(&mut raw.route_places),
        );
        let mut plugins = Vec::new();
        for (index, raw) in raw.plugins.into_iter().enumerate() {
            let index = raw_place(&raw_places.0, index);
            let at = format!("[[plugin]] #{} `{}`", index + 1, raw.name);
            if !names.insert(raw.name.clone()) {
                problems.push(format!("{at}: name is used by an earlier plugin"));
            }
            if let Some(plugin) = validate_plugin(raw, base, &at, &mut problems) {
                plugins.push(plugin);
            }
        }
        let alertmanager = raw.alertmanager.validated(base, &mut problems);
        let knows_alertmanager = alertmanager.url.is_some();
        let mut routes: Vec<RouteConfig> = Vec::new();
        for (index, raw) in raw.routes.into_iter().enumerate() {
            let index = raw_place(&raw_places.1, index);
            let route = validate_route(
                raw,
                index,
                &names,
                &plugins,
                knows_alertmanager,
                &mut problems,
            );
            if let Some(route) = route {
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
        let node = node::validate_node(raw.node, &mut problems);
        let store = store::validate_store(raw.store, base, &mut problems);
        store::windows_kept(&store.retention, &routes, &mut problems);
        let audit = audit::validate_audit(raw.audit, base, raw.state_dir.as_deref(), &mut problems);
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
        problems.extend(raw.prometheus.problems());
        let prometheus = crate::caps::prometheus::PrometheusSettings {
            token_file: raw.prometheus.token_file.map(|file| base.join(file)),
            ..raw.prometheus
        };
        problems.extend(raw.nomad.problems());
        problems.extend(raw.docker.problems());
        problems.extend(raw.kubernetes.problems());
        let kubernetes = crate::caps::kube::KubeSettings {
            kubeconfig: raw.kubernetes.kubeconfig.map(|file| base.join(file)),
            ..raw.kubernetes
        };
        let config = Config {
            origin: origin.to_string(),
            state_dir: raw.state_dir,
            approval_ttl,
            node,
            server,
            store,
            audit,
            alertmanager,
            prometheus,
            nomad: raw.nomad,
            docker: raw.docker,
            kubernetes,
            netns: raw.netns,
            kmod: raw.kmod,
            notify,
            plugins,
            routes,
        };
        Ok(Checked { config, problems })
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name == name)
    }

    pub fn plugin_names(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.name.as_str()).collect()
    }
}

/// Where the `index`th entry read sits in the file.
fn raw_place(places: &[usize], index: usize) -> usize {
    places.get(index).copied().unwrap_or(index)
}

/// The JSON Schema of the config file, for editors that check TOML against
/// one (Even Better TOML, taplo).
pub fn schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(RawConfig).to_value();
    schema["title"] = "remedy config".into();
    schema
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
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
    fn the_audit_signing_key_is_kept_out_of_the_state_directory() {
        let with = |keys: &str| {
            parse(&format!(
                "state_dir = \"/var/lib/remedy\"\n[audit]\n{keys}\n"
            ))
        };
        let config = with("signing_key_file = \"/etc/remedy/audit.key\"").unwrap();
        assert_eq!(config.audit.checkpoint_every, 1000);
        for (keys, named) in [
            (
                "signing_key_file = \"/var/lib/remedy/audit.key\"",
                "inside state_dir",
            ),
            ("checkpoint_every = 0", "at least 1"),
            ("checkpoint_interval = \"soon\"", "checkpoint_interval"),
        ] {
            let error = with(keys).unwrap_err().to_string();
            assert!(error.contains(named), "{keys}: {error}");
        }
    }

    #[test]
    fn every_section_is_read_when_another_has_a_mistake() {
        let text = format!(
            "[alertmanager]\nurl = \"http://127.0.0.1:9093\"\n[prometheus]\nurl = \"http://127.0.0.1:9090\"\n\
             {ONE_PLUGIN}[[route]]\nplugin = \"p\"\nmode = \"sometimes\"\n"
        );
        let error = parse(&text).unwrap_err().to_string();
        assert!(error.contains("sometimes"), "{error}");
        assert!(!error.contains("unknown key"), "{error}");
    }

    #[test]
    fn a_route_records_to_an_absolute_directory_under_a_valid_redaction() {
        let route = |keys: &str| format!("{ONE_PLUGIN}[[route]]\nplugin = \"p\"\n{keys}\n");
        let config = parse(&route("record = \"/var/lib/remedy/worlds\"")).unwrap();
        let recording = config.routes[0].record.as_ref().unwrap();
        assert_eq!(recording.dir, Path::new("/var/lib/remedy/worlds"));
        assert!(parse(&route("")).unwrap().routes[0].record.is_none());
        for (keys, named) in [
            ("record = \"worlds\"", "must be an absolute directory"),
            ("record_redact = \"token\"", "record_redact needs record"),
            (
                "record = \"/w\"\nrecord_redact = \"(\"",
                "record_redact = \"(\"",
            ),
        ] {
            let error = parse(&route(keys)).unwrap_err().to_string();
            assert!(error.contains(named), "{keys}: {error}");
        }
    }

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
    fn routes_that_act_require_a_firing_alert_where_alertmanager_is_known() {
        let routes = r#"
            [[route]]
            name = "acts"
            plugin = "p"
            mode = "apply"
            [[route]]
            name = "looks"
            plugin = "p"
            [[route]]
            name = "trusts"
            plugin = "p"
            mode = "approve"
            require_firing = false
            "#;
        let required = |config: &Config| -> Vec<bool> {
            config.routes.iter().map(|r| r.require_firing).collect()
        };
        let alone = parse(&format!("{ONE_PLUGIN}{routes}")).unwrap();
        assert_eq!(required(&alone), [false, false, false], "nothing to ask");
        let asking = parse(&format!(
            "[alertmanager]\nurl = \"http://127.0.0.1:9093\"\n{ONE_PLUGIN}{routes}"
        ))
        .unwrap();
        assert_eq!(required(&asking), [true, false, false]);

        let unaskable = format!("{ONE_PLUGIN}[[route]]\nplugin = \"p\"\nrequire_firing = true\n");
        let error = parse(&unaskable).unwrap_err().to_string();
        assert!(error.contains("[alertmanager] url"), "{error}");
        let error = parse("[alertmanager]\nurl = \"ftp://am\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("http or https"), "{error}");
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
    fn external_url_is_an_http_address_that_cannot_break_a_chat_link() {
        let with = |url: &str| {
            Config::parse(
                &format!("[server]\nexternal_url = {url:?}\n"),
                "test",
                Path::new("/"),
            )
        };
        let config = with("https://remedy.example.com/").unwrap();
        assert_eq!(
            config.server.external_url.as_deref(),
            Some("https://remedy.example.com")
        );
        for refused in [
            "ftp://remedy.example.com",
            "remedy.example.com",
            "https://remedy.example.com/a|b",
            "https://remedy.example.com/<x>",
            "https://remedy.example.com/?next=1",
        ] {
            let error = with(refused).unwrap_err().to_string();
            assert!(
                error.contains("[server] external_url"),
                "{refused}: {error}"
            );
        }
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
