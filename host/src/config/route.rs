//! `[[route]]`: which alerts go to which plugin, in which mode, with which
//! guards (cooldown, circuit breaker).

use super::parse_duration;
use super::plugin::PluginConfig;
use crate::confirm::Unconfirmed;
use crate::matcher::{Matcher, parse_matchers};
use crate::node::RunsOn;
use crate::store::BlastRadius;
use crate::world::Redaction;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
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
    runs_on: Option<RunsOn>,
    require_firing: Option<bool>,
    unconfirmed: Option<Unconfirmed>,
    max_nodes: Option<u32>,
    max_nodes_per_window: Option<u32>,
    node_window: Option<String>,
    record: Option<PathBuf>,
    record_redact: Option<String>,
}

/// What a route does with the plan its plugin makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
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
    /// Whether runs execute only on the node the alert is about.
    pub runs_on: RunsOn,
    /// How many nodes the route may change at once and per window.
    pub radius: BlastRadius,
    /// Act only while Alertmanager says the alert still fires.
    pub require_firing: bool,
    /// What to do when Alertmanager cannot say.
    pub unconfirmed: Unconfirmed,
    /// Where each run's recorded world goes, and what it hides.
    pub record: Option<Recording>,
}

/// A route's recordings: one world per run, `<dir>/<run id>.json`.
#[derive(Clone, Debug)]
pub struct Recording {
    pub dir: std::path::PathBuf,
    pub redaction: Redaction,
}

pub const DEFAULT_BREAKER_FAILURES: u32 = 3;
pub const DEFAULT_BREAKER_WINDOW: Duration = Duration::from_secs(3600);
pub const DEFAULT_NODE_WINDOW: Duration = Duration::from_secs(3600);

pub(super) fn validate_route(
    raw: RawRoute,
    index: usize,
    plugins: &HashSet<String>,
    configured: &[PluginConfig],
    alertmanager: bool,
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
    let node_window = duration("node_window", raw.node_window, DEFAULT_NODE_WINDOW);
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
    let radius =
        blast_radius(raw.max_nodes, raw.max_nodes_per_window, node_window).unwrap_or_else(|why| {
            problems.push(format!("{at}: {why}"));
            BlastRadius::default()
        });
    let on_this_node = configured
        .iter()
        .find(|p| p.name == raw.plugin)
        .map(|p| p.grants.on_this_node())
        .unwrap_or_default();
    let runs_on = runs_on(raw.runs_on, &on_this_node).unwrap_or_else(|why| {
        problems.push(format!("{at}: {why}"));
        RunsOn::AlertNode
    });
    // Safe by default: a route executes nothing unless it says apply.
    let mode = raw.mode.unwrap_or(Mode::DryRun);
    let require_firing = match raw.require_firing {
        Some(true) if !alertmanager => {
            problems.push(format!(
                "{at}: require_firing = true needs [alertmanager] url, where remedy asks whether \
                 the alert still fires"
            ));
            false
        }
        Some(required) => required,
        // Where remedy knows its Alertmanager, a route that acts does so
        // only on an alert that still fires.
        None => alertmanager && mode != Mode::DryRun,
    };
    let record = recording(raw.record, raw.record_redact).unwrap_or_else(|why| {
        problems.push(format!("{at}: {why}"));
        None
    });
    (problems.len() == before).then(|| RouteConfig {
        name,
        matchers,
        plugin: raw.plugin,
        mode,
        params: raw.params,
        cooldown,
        group_by: raw.group_by,
        continue_matching: raw.continue_matching,
        max_rounds: raw.max_rounds,
        breaker_failures: raw.breaker_failures.unwrap_or(DEFAULT_BREAKER_FAILURES),
        breaker_window,
        runs_on,
        radius,
        require_firing,
        unconfirmed: raw.unconfirmed.unwrap_or_default(),
        record,
    })
}

fn recording(dir: Option<PathBuf>, redact: Option<String>) -> Result<Option<Recording>, String> {
    let Some(dir) = dir else {
        return match redact {
            Some(_) => Err("record_redact needs record, the directory recordings go to".into()),
            None => Ok(None),
        };
    };
    if !dir.is_absolute() {
        return Err(format!(
            "record = {:?}: must be an absolute directory",
            dir.display()
        ));
    }
    let rule = redact.as_deref().unwrap_or(Redaction::DEFAULT);
    let redaction = Redaction::new(rule).map_err(|e| format!("record_redact = {rule:?}: {e}"))?;
    Ok(Some(Recording { dir, redaction }))
}

/// A route's blast radius; zero nodes would hold every run back forever.
fn blast_radius(
    max_nodes: Option<u32>,
    per_window: Option<u32>,
    window: Duration,
) -> Result<BlastRadius, String> {
    for (key, value) in [
        ("max_nodes", max_nodes),
        ("max_nodes_per_window", per_window),
    ] {
        if value == Some(0) {
            return Err(format!(
                "{key} = 0 would hold every run back; remove it for no limit"
            ));
        }
    }
    if window.is_zero() {
        return Err("node_window must be longer than zero".into());
    }
    Ok(BlastRadius {
        max_nodes,
        per_window: per_window.map(|n| (n, window)),
    })
}

/// Where a route's runs execute: as configured, or else on the alert's node
/// when its plugin is granted anything on this node (`on_this_node`), and on
/// any node when it only reaches cluster services. A plugin granted this
/// node's files or processes may never be told to run for other nodes.
fn runs_on(configured: Option<RunsOn>, on_this_node: &[&str]) -> Result<RunsOn, String> {
    match configured {
        Some(RunsOn::AnyNode) if !on_this_node.is_empty() => Err(format!(
            "runs_on = \"any-node\", but its plugin is granted {} on the node it runs on, so \
             its runs must execute on the node the alert is about; remove runs_on",
            on_this_node.join(", ")
        )),
        Some(runs_on) => Ok(runs_on),
        None => Ok(RunsOn::for_plugin(on_this_node)),
    }
}
