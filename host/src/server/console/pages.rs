//! The console's pages: askama templates (`host/templates/`, HTML-escaped
//! by askama) and the views they show. Every string a plugin or an alert
//! wrote goes through [`shown`] first, so it reaches the page as one line of
//! text; askama then escapes it, so markup in it is shown, never obeyed.

use super::chart::Chart;
use super::timeline::Timeline;
use crate::contract::{Action, Check};
use crate::store::{ActionRecord, Awaiting, RunDetail, RunStatus, RunSummary};
use crate::text::one_line;
use askama::Template;
use std::time::Duration;

/// What every page shows around its content.
pub struct Frame {
    pub user: String,
    /// Plans awaiting a decision, for the navigation's count.
    pub pending: u64,
}

pub(super) fn shown(text: &str) -> String {
    one_line(text).into_owned()
}

fn took(ms: Option<u64>) -> String {
    match ms {
        None => String::new(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) => humantime::format_duration(Duration::from_secs(ms / 1000)).to_string(),
    }
}

pub struct RunRow {
    pub id: String,
    pub created_at: String,
    pub status: &'static str,
    pub dry_run: bool,
    pub route: String,
    pub plugin: String,
    pub node: String,
    pub reason: String,
    pub took: String,
    pub approved_by: String,
}

impl RunRow {
    pub fn of(run: &RunSummary) -> RunRow {
        RunRow {
            id: run.id.clone(),
            created_at: run.created_at.clone(),
            status: run.status.as_str(),
            dry_run: run.dry_run && run.status != RunStatus::AwaitingApproval,
            route: run.route.clone().unwrap_or_default(),
            plugin: run.plugin.clone(),
            node: run.node.clone().unwrap_or_default(),
            reason: run.reason.as_deref().map(shown).unwrap_or_default(),
            took: took(run.duration_ms),
            approved_by: run.approved_by.as_deref().map(shown).unwrap_or_default(),
        }
    }
}

/// The filters of the runs page, as the form shows them.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
pub struct Filter {
    pub route: String,
    pub plugin: String,
    pub node: String,
    pub outcome: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "runs.html")]
pub struct RunsPage {
    pub frame: Frame,
    pub filter: Filter,
    pub outcomes: Vec<&'static str>,
    pub problem: Option<String>,
    /// Runs over time; `None` when the filter is refused.
    pub chart: Option<Chart>,
    pub runs: Vec<RunRow>,
}

pub struct CheckView {
    pub status: &'static str,
    pub name: String,
    pub detail: String,
}

impl CheckView {
    fn of(check: &Check) -> CheckView {
        CheckView {
            status: check.status.as_str(),
            name: shown(&check.name),
            detail: shown(&check.detail),
        }
    }
}

pub struct ActionView {
    pub number: usize,
    pub kind: &'static str,
    pub target: String,
    pub reason: String,
    pub status: String,
    pub detail: String,
    pub took: String,
}

impl ActionView {
    fn planned(number: usize, action: &Action) -> ActionView {
        ActionView {
            number,
            kind: action.kind(),
            target: shown(&action.target()),
            reason: shown(action.reason()),
            status: "planned".into(),
            detail: String::new(),
            took: String::new(),
        }
    }

    fn recorded(record: &ActionRecord) -> ActionView {
        ActionView {
            status: record.status.clone(),
            detail: shown(&record.detail),
            took: record
                .duration_us
                .map(|us| format!("{:.1} ms", us as f64 / 1000.0))
                .unwrap_or_default(),
            ..ActionView::planned(record.seq as usize + 1, &record.action)
        }
    }
}

pub struct RoundView {
    pub number: u32,
    pub summary: String,
    pub checks: Vec<CheckView>,
    pub actions: Vec<ActionView>,
    pub escalate: Option<String>,
    pub timing: String,
}

/// A plan awaiting a decision, and what deciding on it takes.
pub struct Decision {
    pub run_id: String,
    pub plan_hash: String,
    pub expires_in: String,
    pub actions: Vec<ActionView>,
    /// The user's form token; `None` when they may only read.
    pub csrf: Option<String>,
}

impl Decision {
    pub fn of(run_id: &str, awaiting: &Awaiting, ttl: Duration, csrf: Option<String>) -> Decision {
        let now = crate::store::now_ms();
        let left = (awaiting.since_ms + ttl.as_millis() as i64 - now).max(0) as u64;
        Decision {
            run_id: run_id.to_string(),
            plan_hash: awaiting.plan_hash.clone(),
            expires_in: humantime::format_duration(Duration::from_secs(left / 1000)).to_string(),
            actions: awaiting
                .actions
                .iter()
                .enumerate()
                .map(|(i, a)| ActionView::planned(i + 1, a))
                .collect(),
            csrf,
        }
    }
}

#[derive(Template)]
#[template(path = "run.html")]
pub struct RunPage {
    pub frame: Frame,
    pub run: RunRow,
    pub plugin_version: String,
    pub plugin_sha256: String,
    pub labels: Vec<(String, String)>,
    pub params: Vec<(String, String)>,
    pub rounds: Vec<RoundView>,
    pub logs: Vec<(u32, String, String)>,
    pub decision: Option<Decision>,
    /// The run's audit records, oldest first.
    pub records_shown: Vec<RecordView>,
    pub timeline: Option<Timeline>,
}

impl RunPage {
    pub fn of(
        frame: Frame,
        run: &RunDetail,
        decision: Option<Decision>,
        records: &[crate::store::AuditRecord],
    ) -> RunPage {
        let pairs = |pairs: &[(String, String)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (shown(k), shown(v))).collect()
        };
        let rounds = run
            .rounds
            .iter()
            .map(|round| RoundView {
                number: round.round + 1,
                summary: shown(&round.plan.summary),
                checks: round.plan.checks.iter().map(CheckView::of).collect(),
                actions: run
                    .actions
                    .iter()
                    .filter(|a| a.round == round.round)
                    .map(ActionView::recorded)
                    .collect(),
                escalate: round.plan.escalate.as_deref().map(shown),
                timing: format!(
                    "instantiate {} µs, plan {} µs",
                    round.instantiate_us, round.plan_us
                ),
            })
            .collect();
        RunPage {
            frame,
            run: RunRow::of(&run.summary),
            plugin_version: shown(&run.plugin_version),
            plugin_sha256: run.plugin_sha256.clone(),
            labels: pairs(&run.alert.labels),
            params: pairs(&run.params),
            rounds,
            logs: run
                .logs
                .iter()
                .map(|l| (l.round + 1, l.level.clone(), shown(&l.message)))
                .collect(),
            decision,
            records_shown: records.iter().map(RecordView::of).collect(),
            timeline: Timeline::of(records, crate::store::now_ms()),
        }
    }
}

#[derive(Template)]
#[template(path = "approvals.html")]
pub struct ApprovalsPage {
    pub frame: Frame,
    pub waiting: Vec<(RunRow, Decision)>,
}

#[derive(Template)]
#[template(path = "refused.html")]
pub struct RefusedPage {
    pub status: u16,
    pub message: String,
}

/// One configured route, as the routes page shows it.
pub struct RouteView {
    pub name: String,
    pub matchers: String,
    pub plugin: String,
    pub mode: &'static str,
    pub cooldown: String,
    pub group_by: String,
    pub limits: String,
    /// When its breaker is open: since when, and why.
    pub breaker: Option<(String, String)>,
}

impl RouteView {
    pub fn of(route: &crate::config::RouteConfig, breaker: Option<(String, String)>) -> RouteView {
        let matchers: Vec<String> = route.matchers.iter().map(|m| m.to_string()).collect();
        let mut limits = vec![format!(
            "breaker after {} failures in {}",
            route.breaker_failures,
            humantime::format_duration(route.breaker_window)
        )];
        if let Some(rounds) = route.max_rounds {
            limits.push(format!("{rounds} rounds"));
        }
        if route.require_firing {
            limits.push("acts only while the alert fires".into());
        }
        RouteView {
            name: route.name.clone(),
            matchers: if matchers.is_empty() {
                "every alert".into()
            } else {
                matchers.join(", ")
            },
            plugin: route.plugin.clone(),
            mode: route.mode.as_str(),
            cooldown: humantime::format_duration(route.cooldown).to_string(),
            group_by: route.group_by.join(", "),
            limits: limits.join("; "),
            breaker: breaker.map(|(since, why)| (since, shown(&why))),
        }
    }
}

/// How one route judged the labels typed into the test box.
pub struct Tried {
    pub route: String,
    pub verdict: &'static str,
    pub why: String,
}

#[derive(Template)]
#[template(path = "routes.html")]
pub struct RoutesPage {
    pub frame: Frame,
    pub routes: Vec<RouteView>,
    /// The user's form token, when they may reset a breaker.
    pub csrf: Option<String>,
    /// The labels typed into the test box, one `name=value` a line.
    pub labels: String,
    pub tried: Vec<Tried>,
    pub problem: Option<String>,
}

pub struct PluginView {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub about: String,
    pub actions: String,
    pub limits: String,
    /// Each import, and the grant that would allow it when it has none.
    pub imports: Vec<(String, String)>,
    pub grants: String,
    pub params: Vec<(String, String, String)>,
}

impl PluginView {
    pub fn of(
        plugin: &crate::engine::LoadedPlugin,
        configured: &std::collections::BTreeMap<String, String>,
    ) -> PluginView {
        let info = &plugin.info;
        PluginView {
            name: plugin.name.clone(),
            version: shown(&info.version),
            sha256: plugin.sha256.clone(),
            about: shown(&info.description),
            actions: plugin.proposes(),
            limits: plugin.limits.to_string(),
            imports: plugin
                .imports_and_grants()
                .into_iter()
                .filter(|(import, _)| import.starts_with("remedy:"))
                .map(|(import, missing)| {
                    let state = missing
                        .map(|grant| format!("not granted: {grant} allows it"))
                        .unwrap_or_else(|| "granted".into());
                    (import.to_string(), state)
                })
                .collect(),
            grants: serde_json::to_string_pretty(&plugin.grants).unwrap_or_default(),
            params: info
                .params
                .iter()
                .map(|p| {
                    let value = configured
                        .get(&p.name)
                        .or(p.default.as_ref())
                        .map(|v| shown(v))
                        .unwrap_or_else(|| "-".into());
                    (shown(&p.name), value, shown(&p.description))
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "plugins.html")]
pub struct PluginsPage {
    pub frame: Frame,
    pub plugins: Vec<PluginView>,
}

/// One audit record, its body as one line of JSON.
pub struct RecordView {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub run_id: Option<String>,
    pub body: String,
}

impl RecordView {
    pub fn of(record: &crate::store::AuditRecord) -> RecordView {
        RecordView {
            seq: record.seq,
            at: record.at.clone(),
            kind: shown(&record.kind),
            run_id: record.run_id.clone(),
            body: shown(&record.body.to_string()),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub frame: Frame,
    /// Intact: how many records and the head's hash; broken: where and why.
    pub verdict: Result<(u64, String), String>,
    pub records_shown: Vec<RecordView>,
}
