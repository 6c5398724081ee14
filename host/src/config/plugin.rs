//! `[[plugin]]`: where a plugin comes from, how it is bounded, and what it
//! may touch (its grants, checked here).

use super::parse_size;
use crate::builtin;
use crate::caps::Grants;
use crate::caps::log::LogLimits;
use crate::engine::limits::{MAX_PLUGIN_MEMORY, PluginLimits};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin {
    pub(super) name: String,
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

pub const DEFAULT_MAX_ROUNDS: u32 = 5;

pub(super) fn validate_plugin(
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
    let defaults = PluginLimits::default();
    let timeout = plugin_timeout(raw.timeout.as_deref(), defaults.timeout).unwrap_or_else(|why| {
        problem(why);
        defaults.timeout
    });
    let memory = plugin_memory(raw.memory.as_deref(), defaults.memory).unwrap_or_else(|why| {
        problem(why);
        0
    });
    let max_rounds = raw.max_rounds.unwrap_or(DEFAULT_MAX_ROUNDS);
    if !(1..=100).contains(&max_rounds) {
        problem(format!(
            "max_rounds = {max_rounds}: must be between 1 and 100"
        ));
    }
    for grant_problem in raw.grants.problems() {
        problem(grant_problem);
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

/// `timeout`: how long one call into the plugin may take, 10ms to 10m.
fn plugin_timeout(text: Option<&str>, default: Duration) -> Result<Duration, String> {
    let Some(text) = text else {
        return Ok(default);
    };
    match humantime::parse_duration(text) {
        Ok(t) if (Duration::from_millis(10)..=Duration::from_secs(600)).contains(&t) => Ok(t),
        Ok(_) => Err("timeout must be between 10ms and 10m".into()),
        Err(e) => Err(format!("timeout = {text:?}: {e} (write e.g. \"30s\")")),
    }
}

/// `memory`: the plugin's linear memory cap, 1MiB to 1GiB.
fn plugin_memory(text: Option<&str>, default: usize) -> Result<usize, String> {
    let Some(text) = text else {
        return Ok(default);
    };
    match parse_size(text) {
        Ok(bytes) if (1 << 20..=MAX_PLUGIN_MEMORY as u64).contains(&bytes) => Ok(bytes as usize),
        Ok(_) => Err(format!("memory = {text:?}: must be between 1MiB and 1GiB")),
        Err(e) => Err(format!("memory = {text:?}: {e}")),
    }
}
