//! `[store]`: where runs, history and the audit trail are kept. Without a
//! `url`, a SQLite file in the state directory (one remedy process); with
//! one, a PostgreSQL database that every receiver and agent of a fleet
//! shares.

use super::parse_duration;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable holding the PostgreSQL password, where no
/// `password_file` is set.
const PASSWORD_ENV: &str = "REMEDY_STORE_PASSWORD";

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    /// `postgres://user@host:port/database`, without the password.
    url: Option<String>,
    /// A file holding the password; else `$REMEDY_STORE_PASSWORD`.
    password_file: Option<PathBuf>,
    /// The CA that signed PostgreSQL's certificate; else the system's roots.
    ca_file: Option<PathBuf>,
    /// A client certificate and its key, where PostgreSQL asks for one.
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    /// How often a remedy process says it is alive (default 5s).
    heartbeat: Option<String>,
    /// How long a run stays its process's without a heartbeat (default 30s).
    lease: Option<String>,
    /// How long a run for a node waits for a remedy there (default 2m).
    unattended_after: Option<String>,
    /// How long each kind of record is kept; unset, forever.
    #[serde(default)]
    retention: RawRetention,
}

/// `[store.retention]`: `alerts`, `runs` and `audit`, each a duration.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    /// The alerts log, and the dedup keys of alerts not received since.
    alerts: Option<String>,
    /// Finished runs with their rounds, actions and logs (at least 1d:
    /// plugins see a day of their past actions).
    runs: Option<String>,
    /// Audit records; the chain stays verifiable across the cut.
    audit: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct StoreConfig {
    /// A PostgreSQL URL; `None` keeps the SQLite file in the state directory.
    pub url: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub fleet: FleetTimes,
    /// How long history is kept (`[store.retention]`).
    pub retention: crate::store::Retention,
}

/// The fleet's clocks, for a shared store: how often each process says it
/// is alive, how long its runs stay its own without that, and how long a
/// run waits for a remedy on its node before it escalates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FleetTimes {
    pub heartbeat: Duration,
    pub lease: Duration,
    pub unattended_after: Duration,
}

impl Default for FleetTimes {
    fn default() -> Self {
        FleetTimes {
            heartbeat: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            unattended_after: Duration::from_secs(120),
        }
    }
}

pub(super) fn validate_store(
    raw: RawStore,
    base: &Path,
    problems: &mut Vec<String>,
) -> StoreConfig {
    if let Some(url) = &raw.url {
        match url.parse::<postgres::Config>() {
            Err(e) => problems.push(format!(
                "[store] url is not a PostgreSQL URL (postgres://user@host/database): {e}"
            )),
            Ok(parsed) if parsed.get_password().is_some() => problems.push(
                "[store] url holds a password; configs are shared and logged, so put it in \
                 password_file or $REMEDY_STORE_PASSWORD instead"
                    .into(),
            ),
            Ok(_) => {}
        }
    }
    let postgres_only = [
        ("password_file", &raw.password_file),
        ("ca_file", &raw.ca_file),
        ("cert_file", &raw.cert_file),
        ("key_file", &raw.key_file),
    ];
    for (key, value) in postgres_only {
        if value.is_some() && raw.url.is_none() {
            problems.push(format!(
                "[store] {key} is set without a url: it is only for PostgreSQL"
            ));
        }
    }
    if raw.cert_file.is_some() != raw.key_file.is_some() {
        problems.push("[store] cert_file and key_file go together: set both or neither".into());
    }
    let fleet = fleet_times(&raw, problems);
    let retention = retention(&raw.retention, problems);
    let relative = |file: Option<PathBuf>| file.map(|file| base.join(file));
    StoreConfig {
        fleet,
        retention,
        url: raw.url,
        password_file: relative(raw.password_file),
        ca_file: relative(raw.ca_file),
        cert_file: relative(raw.cert_file),
        key_file: relative(raw.key_file),
    }
}

/// The fleet's clocks as configured; a lease must outlast a few missed
/// heartbeats, or a busy process would lose runs it is executing.
fn fleet_times(raw: &RawStore, problems: &mut Vec<String>) -> FleetTimes {
    let default = FleetTimes::default();
    let mut read = |key: &str, text: &Option<String>, fallback: Duration| match text {
        None => fallback,
        Some(text) => match parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                problems.push(format!("[store] {key} must be longer than zero"));
                fallback
            }
            Err(e) => {
                problems.push(format!("[store] {key} = {text:?}: {e}"));
                fallback
            }
        },
    };
    let times = FleetTimes {
        heartbeat: read("heartbeat", &raw.heartbeat, default.heartbeat),
        lease: read("lease", &raw.lease, default.lease),
        unattended_after: read(
            "unattended_after",
            &raw.unattended_after,
            default.unattended_after,
        ),
    };
    if times.lease < times.heartbeat * 3 {
        problems.push(format!(
            "[store] lease ({}) must be at least three heartbeats ({} each), so a slow \
             heartbeat never loses a run that is executing",
            humantime::format_duration(times.lease),
            humantime::format_duration(times.heartbeat)
        ));
    }
    times
}

/// The shortest retention of any kind. The store itself keeps the runs
/// remedy still decides from (`store::DECIDING`), and [`windows_kept`]
/// holds each route's windows within what `runs` keeps.
const SHORTEST: Duration = Duration::from_secs(60);

fn retention(raw: &RawRetention, problems: &mut Vec<String>) -> crate::store::Retention {
    let mut read = |key: &str, text: &Option<String>| {
        let kept = parse_duration(text.as_deref()?)
            .map_err(|e| problems.push(format!("[store.retention] {key}: {e}")))
            .ok()?;
        if kept < SHORTEST {
            problems.push(format!(
                "[store.retention] {key} = {:?} is shorter than {}",
                text.as_deref().unwrap_or_default(),
                humantime::format_duration(SHORTEST)
            ));
            return None;
        }
        Some(kept)
    };
    crate::store::Retention {
        alerts: read("alerts", &raw.alerts),
        runs: read("runs", &raw.runs),
        audit: read("audit", &raw.audit),
    }
}

/// Cooldown, breakers and the blast radius count past runs: `runs`
/// retention must keep each route's runs as long as its windows look back.
pub(super) fn windows_kept(
    retention: &crate::store::Retention,
    routes: &[super::RouteConfig],
    problems: &mut Vec<String>,
) {
    let Some(runs) = retention.runs else { return };
    let decided = runs.max(crate::store::DECIDING);
    for route in routes {
        let node_window = route
            .radius
            .per_window
            .map(|(_, w)| ("node_window", w, decided));
        let windows = [
            ("cooldown", route.cooldown, runs),
            ("breaker_window", route.breaker_window, decided),
        ];
        for (key, window, kept) in windows.into_iter().chain(node_window) {
            if window > kept {
                problems.push(format!(
                    "[[route]] `{}`: {key} ({}) looks back further than [store.retention] runs \
                     keeps the runs it counts ({})",
                    route.name,
                    humantime::format_duration(window),
                    humantime::format_duration(kept)
                ));
            }
        }
    }
}

impl StoreConfig {
    /// The password: the file's first line, or the environment's.
    pub fn password(&self) -> Result<Option<String>, String> {
        match &self.password_file {
            Some(file) => std::fs::read_to_string(file)
                .map(|text| Some(text.lines().next().unwrap_or("").to_string()))
                .map_err(|e| format!("[store] password_file {}: {e}", file.display())),
            None => Ok(std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(url: Option<&str>, password_file: Option<&str>) -> Vec<String> {
        let raw = RawStore {
            url: url.map(String::from),
            password_file: password_file.map(PathBuf::from),
            ..RawStore::default()
        };
        let mut problems = Vec::new();
        validate_store(raw, Path::new("/etc/remedy"), &mut problems);
        problems
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_every_mistake_named() {
        assert!(problems(None, None).is_empty());
        assert!(problems(Some("postgres://remedy@db:5432/remedy"), Some("pw")).is_empty());
        let leaked = problems(Some("postgres://remedy:hunter2@db/remedy"), None);
        assert!(leaked[0].contains("password_file"), "{leaked:?}");
        assert!(
            !leaked[0].contains("hunter2"),
            "the password is not repeated: {leaked:?}"
        );
        let garbage = problems(Some("postgres://remedy@db:notaport/remedy"), None);
        assert!(garbage[0].contains("[store] url"), "{garbage:?}");
        let orphan = problems(None, Some("pw"));
        assert!(orphan[0].contains("without a url"), "{orphan:?}");
        let mut half = Vec::new();
        let raw = RawStore {
            url: Some("postgres://remedy@db/remedy".into()),
            cert_file: Some("client.crt".into()),
            ..RawStore::default()
        };
        validate_store(raw, Path::new("/etc/remedy"), &mut half);
        assert!(half[0].contains("cert_file and key_file"), "{half:?}");
    }

    #[test]
    fn retention_is_read_per_kind_and_too_short_a_one_is_refused() {
        let checked = |text: &str| {
            crate::config::Config::check(text, "test.toml", Path::new("/etc/remedy")).unwrap()
        };
        let ok = checked("[store.retention]\nruns = \"30d\"\naudit = \"365d\"\n");
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        let retention = ok.config.store.retention;
        assert_eq!(retention.runs, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(retention.alerts, None, "unset: kept forever");
        let minutes = checked("[store.retention]\nruns = \"1m\"\nalerts = \"10m\"\n");
        assert!(minutes.problems.is_empty(), "{:?}", minutes.problems);
        let short = checked("[store.retention]\nruns = \"30s\"\nalerts = \"soon\"\n");
        assert_eq!(short.problems.len(), 2, "{:?}", short.problems);
        assert!(
            short
                .problems
                .iter()
                .any(|p| p.contains("runs = \"30s\" is shorter than 1m"))
        );
        assert!(short.problems.iter().any(|p| p.contains("alerts")));
        assert_eq!(
            short.config.store.retention,
            crate::store::Retention::default()
        );
    }

    #[test]
    fn a_route_window_longer_than_the_runs_it_counts_are_kept_is_refused() {
        let checked = |runs: &str, route: &str| {
            let text = format!(
                "[store.retention]\nruns = \"{runs}\"\n\
                 [[plugin]]\nname = \"p\"\nsource = \"builtin:disk-cleanup\"\n\
                 [[route]]\nname = \"r\"\nplugin = \"p\"\n{route}\n"
            );
            let checked = crate::config::Config::check(&text, "t", Path::new("/")).unwrap();
            checked.problems
        };
        // Failed and acting runs stay a day whatever `runs` says.
        assert!(checked("10m", "cooldown = \"10m\"\nbreaker_window = \"1d\"").is_empty());
        let cooldown = checked("10m", "cooldown = \"11m\"");
        assert!(cooldown[0].contains("`r`: cooldown (11m)"), "{cooldown:?}");
        assert!(cooldown[0].contains("keeps the runs it counts (10m)"));
        let breaker = checked("10m", "breaker_window = \"2d\"");
        assert!(breaker[0].contains("breaker_window (2days)"), "{breaker:?}");
        assert!(breaker[0].contains("(1day)"), "{breaker:?}");
        let radius = checked("3d", "max_nodes_per_window = 2\nnode_window = \"4d\"");
        assert!(radius[0].contains("node_window (4days)"), "{radius:?}");
        assert!(checked("3d", "max_nodes_per_window = 2\nnode_window = \"3d\"").is_empty());
    }

    #[test]
    fn the_password_comes_from_its_file_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let raw = RawStore {
            url: Some("postgres://remedy@db/remedy".into()),
            password_file: Some("pw".into()),
            ..RawStore::default()
        };
        let config = validate_store(raw, dir.path(), &mut Vec::new());
        assert_eq!(config.password().unwrap().as_deref(), Some("s3cret"));
        let missing = StoreConfig {
            password_file: Some(dir.path().join("nope")),
            ..config
        };
        assert!(missing.password().unwrap_err().contains("nope"));
    }
}
