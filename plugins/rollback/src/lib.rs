//! rollback: for APIHighErrorRate, confirm from Prometheus that the share
//! of failing requests is above the threshold, revert the Nomad job to its
//! last stable version (the same revert as nomad-restart's: not while a
//! deployment runs, not again within `revert_cooldown`), then watch the
//! ratio fall below the threshold several looks in a row.
//!
//! Above `escalate_above` (20 %), before or after the revert, a human is
//! paged; so is a ratio not back below the threshold within
//! `confirm_within` (10 m).

pub mod decide;

use decide::{After, First, Thresholds, first_look, later_look, percent};
use remedy_nomad_steps::{self as steps, JobRef};
use remedy_sdk::watch::Watch;
use remedy_sdk::{Check, Error, Incident, Plan, Plugin, PluginInfo, parse_percent, prometheus};

struct Rollback;

impl Plugin for Rollback {
    fn describe() -> PluginInfo {
        steps::job_params(PluginInfo::new(
            "rollback",
            env!("CARGO_PKG_VERSION"),
            "Confirms a high share of failing requests from Prometheus, reverts the Nomad job \
             to its last stable version, and watches the share fall; pages past the \
             escalation threshold or the deadline.",
        ))
        .param(
            "error_ratio",
            "PromQL for the share of failing requests, 0 to 1 (the largest series counts). \
             Needs the `prometheus` grant for its metrics.",
            Some(
                "sum(rate(http_requests_total{job=\"api\",code=~\"5..\"}[5m])) / \
                 sum(rate(http_requests_total{job=\"api\"}[5m]))",
            ),
        )
        .param(
            "act_above",
            "Roll back above this percentage of failing requests.",
            Some("5"),
        )
        .param(
            "escalate_above",
            "Page a human instead above this percentage.",
            Some("20"),
        )
        .param(
            "revert_cooldown",
            "Do not revert the job again within this long after remedy last reverted it.",
            Some("1h"),
        )
        .confirm_params("30s", "10m")
        .action_kind("nomad-revert-job")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let rules = Rules::of(&incident)?;
        let job = JobRef::of(&incident)?;
        let ratio = error_ratio(&rules.query);
        let check = ratio_check(&rules, &ratio);
        if steps::reverted_to(&incident).is_some() {
            return confirm(&incident, &rules, &job, ratio, check);
        }
        match first_look(ratio, rules.limits) {
            First::Leave(why) => Ok(Plan::new(why).check(check)),
            First::Escalate(why) => Ok(Plan::new(format!("not rolling back {}", job.id))
                .check(check)
                .escalate(why)),
            First::Revert(why) => {
                let mut plan = steps::revert_step(&incident, &job, rules.watch.every_secs)?;
                plan.checks.insert(0, check);
                if !plan.actions.is_empty() {
                    plan.summary = format!("{}: {why}", plan.summary);
                }
                Ok(plan)
            }
        }
    }
}

/// The parameters, checked.
struct Rules {
    query: String,
    limits: Thresholds,
    watch: Watch<'static>,
}

impl Rules {
    fn of(incident: &Incident) -> Result<Rules, Error> {
        let fraction = |name| incident.param_with(name, parse_percent).map(|p| p / 100.0);
        Ok(Rules {
            query: incident
                .param("error_ratio")
                .unwrap_or_default()
                .to_string(),
            limits: Thresholds {
                act_above: fraction("act_above")?,
                escalate_above: fraction("escalate_above")?,
            },
            watch: Watch::from_params(incident, "error ratio")?,
        })
    }
}

/// The largest share among the query's series; no traffic (no series, or
/// 0/0) cannot confirm anything.
fn error_ratio(query: &str) -> Result<f64, String> {
    let series = prometheus::query(query).map_err(|e| e.describe())?;
    prometheus::largest(&series).ok_or_else(|| "no result: no requests to measure".into())
}

fn ratio_check(rules: &Rules, ratio: &Result<f64, String>) -> Check {
    match ratio {
        Ok(r) if *r > rules.limits.act_above => {
            Check::fail("error ratio", format!("{}: {}", rules.query, percent(*r)))
        }
        Ok(r) => Check::pass("error ratio", format!("{}: {}", rules.query, percent(*r))),
        Err(why) => Check::warn("error ratio", format!("{}: {why}", rules.query)),
    }
}

/// After the revert: the reverted allocations healthy, then one look at
/// the ratio a round until it stays below the threshold, or page.
fn confirm(
    incident: &Incident,
    rules: &Rules,
    job: &JobRef,
    ratio: Result<f64, String>,
    check: Check,
) -> Result<Plan, Error> {
    let health = steps::revert_step(incident, job, rules.watch.every_secs)?;
    if health.escalate.is_some() {
        return Ok(Plan {
            checks: [vec![check], health.checks].concat(),
            ..health
        });
    }
    let mut plan = match later_look(&ratio, rules.limits) {
        After::Escalate(why) => Plan::new(health.summary).escalate(why),
        After::Look(below) => {
            let saw = match &ratio {
                Ok(r) => percent(*r),
                Err(why) => why.clone(),
            };
            rules.watch.round(incident, below, &saw)
        }
    };
    plan.checks
        .splice(0..0, [vec![check], health.checks].concat());
    Ok(plan)
}

remedy_sdk::export_plugin!(Rollback);
