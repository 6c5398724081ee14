//! A recorded world: what one plugin saw in a run, round by round (the
//! incident it was given and every read call with its answer), and the
//! plan it made. `remedy run --record FILE` writes one; `remedy plugins
//! test` and `plugins diff` replay it through the real engine with the same
//! limits, answering every read from the recording, so a plugin can be
//! tested on last week's incident long after its disks and processes are gone.
//!
//! A replay uses the grants in force in the config, never the recording's,
//! and refuses a world recorded under other grants or by another plugin.

use crate::caps::Grants;
use crate::caps::journal::{HostCall, Journal};
use crate::contract::{ActionResult, ActionStatus, Incident, Plan};
use crate::engine::{LoadedPlugin, PluginEngine};
use crate::run::RoundReport;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The format's version, the file's first key.
pub const FORMAT: u32 = 1;
/// What replaces a redacted value.
pub const REDACTED: &str = "<redacted>";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    pub remedy_world: u32,
    pub plugin: RecordedPlugin,
    /// The node the plugin ran on, as the `node` interface told it.
    pub node: String,
    /// The grants in force when it was recorded.
    pub grants: Grants,
    pub recorded_at: String,
    /// Labels, annotations and parameters whose values were hidden.
    pub redacted: Vec<String>,
    pub rounds: Vec<Round>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedPlugin {
    /// As configured.
    pub name: String,
    /// As the component describes itself.
    pub component: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Round {
    pub incident: Incident,
    pub reads: Vec<HostCall>,
    /// Reads made past the recording's bounds, so not in `reads`.
    #[serde(default)]
    pub reads_not_kept: u64,
    /// As `remedy` shows plans; absent when the plugin failed.
    pub plan: Option<Value>,
    pub failure: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("cannot read the recorded world {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a recorded world remedy can replay: {detail}")]
    Format { path: String, detail: String },
    #[error("cannot write the recorded world {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the world was recorded by plugin `{recorded}`, not by `{given}`; replay it with the plugin that made it"
    )]
    OtherPlugin { recorded: String, given: String },
    #[error(
        "the world was recorded under other grants than the config gives `{plugin}` ({keys}); a replay uses the config's grants, so record the world again under them"
    )]
    OtherGrants { plugin: String, keys: String },
}

/// Which label, annotation and parameter values a recording hides: those
/// whose names match the rule.
#[derive(Clone, Debug)]
pub struct Redaction(Regex);

impl Redaction {
    pub const DEFAULT: &str = "(?i)pass|secret|token|key|credential|auth|cookie|session";

    pub fn new(rule: &str) -> Result<Redaction, regex::Error> {
        Regex::new(rule).map(Redaction)
    }

    /// Hide the matching values of `incident`; the names hidden.
    fn apply(&self, incident: &mut Incident) -> Vec<String> {
        let mut hidden = Vec::new();
        let alert = &mut incident.alert;
        for (section, pairs) in [
            ("label", &mut alert.labels),
            ("annotation", &mut alert.annotations),
            ("param", &mut incident.params),
        ] {
            for (name, value) in pairs.iter_mut() {
                if self.0.is_match(name) {
                    *value = REDACTED.into();
                    hidden.push(format!("{section} {name}"));
                }
            }
        }
        hidden
    }
}

impl World {
    /// The world `plugin` saw in the rounds of a recorded run.
    pub fn of_run(
        plugin: &LoadedPlugin,
        node: &str,
        rounds: &[RoundReport],
        redaction: &Redaction,
    ) -> World {
        let mut redacted = Vec::new();
        let rounds = rounds
            .iter()
            .filter_map(|round| {
                let seen = round.seen.as_ref()?;
                let mut incident = seen.incident.clone();
                for name in redaction.apply(&mut incident) {
                    if !redacted.contains(&name) {
                        redacted.push(name);
                    }
                }
                Some(Round {
                    incident,
                    reads: seen.reads.calls.clone(),
                    reads_not_kept: seen.reads.left_over,
                    plan: round.plan.as_ref().map(crate::json::plan),
                    failure: seen.failure.clone(),
                })
            })
            .collect();
        World {
            remedy_world: FORMAT,
            plugin: RecordedPlugin {
                name: plugin.name.clone(),
                component: plugin.info.name.clone(),
                version: plugin.info.version.clone(),
                sha256: plugin.sha256.clone(),
            },
            node: node.to_string(),
            grants: plugin.grants.clone(),
            recorded_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string(),
            redacted,
            rounds,
        }
    }

    pub fn load(path: &Path) -> Result<World, WorldError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| WorldError::Read {
            path: shown.clone(),
            source,
        })?;
        let format = |detail: String| WorldError::Format {
            path: shown.clone(),
            detail,
        };
        let version: Value = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
        if version["remedy_world"] != FORMAT {
            return Err(format(format!(
                "remedy_world is {}, and this remedy replays version {FORMAT}",
                version["remedy_world"]
            )));
        }
        serde_json::from_str(&text).map_err(|e| format(e.to_string()))
    }

    /// Write it to `path` whole or not at all, readable by its owner only:
    /// the answers are what the plugin could read, and may be private.
    pub fn save(&self, path: &Path) -> Result<(), WorldError> {
        let failed = |source| WorldError::Write {
            path: path.display().to_string(),
            source,
        };
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let mut file =
            tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new("."))).map_err(failed)?;
        serde_json::to_writer_pretty(&mut file, self).map_err(|e| failed(e.into()))?;
        file.as_file().sync_all().map_err(failed)?;
        file.persist(path).map_err(|e| failed(e.error))?;
        Ok(())
    }

    pub fn reads(&self) -> usize {
        self.rounds.iter().map(|r| r.reads.len()).sum()
    }
}

/// One round replayed.
pub struct Replayed {
    /// The round as a dry-run shows it: the plan, each action `planned` or
    /// `denied` by the grants in force, and the plugin's log.
    pub report: RoundReport,
    /// Why the plugin made no plan, when it made none.
    pub failure: Option<String>,
    /// Recorded reads this replay never asked for.
    pub unasked: Vec<HostCall>,
}

impl Replayed {
    /// The plan, or the failure, as one JSON value to compare.
    pub fn outcome(&self) -> Value {
        let plan = self.report.plan.as_ref().map(crate::json::plan);
        outcome(plan.as_ref(), self.failure.as_deref())
    }
}

/// A round's plan or failure as one JSON value.
pub fn outcome(plan: Option<&Value>, failure: Option<&str>) -> Value {
    match plan {
        Some(plan) => serde_json::json!({ "plan": plan }),
        None => serde_json::json!({ "failure": failure.unwrap_or_default() }),
    }
}

/// Replay every round of `world` with `plugin` (its grants and limits as
/// configured), `params` overriding the recorded ones.
pub fn replay(
    engine: &PluginEngine,
    plugin: &LoadedPlugin,
    world: &World,
    params: &[(String, String)],
) -> Result<Vec<Replayed>, WorldError> {
    if plugin.info.name != world.plugin.component {
        return Err(WorldError::OtherPlugin {
            recorded: world.plugin.component.clone(),
            given: plugin.info.name.clone(),
        });
    }
    let differing = differing_keys(&world.grants, &plugin.grants);
    if !differing.is_empty() {
        return Err(WorldError::OtherGrants {
            plugin: plugin.name.clone(),
            keys: differing.join(", "),
        });
    }
    let rounds = world.rounds.iter().map(|round| {
        let mut incident = round.incident.clone();
        for (name, value) in params {
            match incident.params.iter_mut().find(|(n, _)| n == name) {
                Some((_, old)) => old.clone_from(value),
                None => incident.params.push((name.clone(), value.clone())),
            }
        }
        replay_round(engine, plugin, &incident, round.reads.clone())
    });
    Ok(rounds.collect())
}

fn replay_round(
    engine: &PluginEngine,
    plugin: &LoadedPlugin,
    incident: &Incident,
    reads: Vec<HostCall>,
) -> Replayed {
    let journal = Journal::replaying(reads, plugin.grants.readable());
    let call = engine.plan_through(plugin, incident, &journal);
    let (plan, failure) = match call.result {
        Ok(plan) => (Some(plan), None),
        Err(failure) => (None, Some(failure.to_string())),
    };
    let results = plan.as_ref().map_or_else(Vec::new, |plan| {
        checked(plan, incident.round, plugin, engine)
    });
    Replayed {
        report: RoundReport {
            round: incident.round,
            plan,
            results,
            logs: call.logs,
            instantiate: call.instantiate,
            planning: call.call,
            executing: std::time::Duration::ZERO,
            seen: None,
        },
        failure,
        unasked: journal.kept().calls,
    }
}

/// Each action of `plan` as the executor judges it before acting, under
/// the grants in force: `planned`, or, when any is refused, what the
/// executor records instead (`executor::refusals`). The objects are not
/// looked at: in a replay they exist only as recorded.
fn checked(
    plan: &Plan,
    round: u32,
    plugin: &LoadedPlugin,
    engine: &PluginEngine,
) -> Vec<ActionResult> {
    let refused = crate::executor::refusals(
        &plan.actions,
        &plugin.grants,
        engine.env(),
        &plugin.info.action_kinds,
        None,
    );
    let judged =
        refused.unwrap_or_else(|| vec![(ActionStatus::Planned, String::new()); plan.actions.len()]);
    plan.actions
        .iter()
        .zip(judged)
        .map(|(action, (status, detail))| ActionResult {
            round,
            action: action.clone(),
            status,
            detail,
        })
        .collect()
}

/// The grant keys whose values differ between two sets of grants.
fn differing_keys(recorded: &Grants, configured: &Grants) -> Vec<String> {
    let flat = |grants: &Grants| match serde_json::to_value(grants) {
        Ok(Value::Object(keys)) => keys,
        _ => Default::default(),
    };
    let (recorded, configured) = (flat(recorded), flat(configured));
    let mut keys: Vec<String> = recorded
        .keys()
        .chain(configured.keys())
        .filter(|key| recorded.get(*key) != configured.get(*key))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A readable line diff of two JSON values, or `None` when they are equal.
pub fn diff(before: &Value, after: &Value, names: (&str, &str)) -> Option<String> {
    if before == after {
        return None;
    }
    let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    let (before, after) = (pretty(before), pretty(after));
    let diff = similar::TextDiff::from_lines(&before, &after);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header(names.0, names.1)
            .to_string(),
    )
}
