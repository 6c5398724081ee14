//! k8s-rollback: for HighErrorRate, HighLatency or a crash-looping pod on
//! Kubernetes, roll the deployment the alert names back to its previous
//! revision, as `kubectl rollout undo` does: only when an earlier revision
//! is kept, no rollout is in progress, and remedy has not rolled it back
//! within `min_interval`, nor more than `1 + max_retries` times a day. Then
//! it watches: the rollout complete and, with
//! `error_ratio` set, the share of failing requests at or below
//! `act_above`, several looks in a row within `confirm_within`, or it pages.

pub mod decide;

use decide::{Attempt, Limits, Undo, attempt, undo_decision};
use remedy_sdk::watch::Watch;
use remedy_sdk::{
    Action, Check, Error, Incident, Plan, Plugin, PluginInfo, kube, parse_duration, parse_percent,
    prometheus,
};

struct K8sRollback;

impl Plugin for K8sRollback {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "k8s-rollback",
            env!("CARGO_PKG_VERSION"),
            "Rolls a Kubernetes deployment back to its previous revision, as `kubectl rollout \
             undo` does, then confirms the rollout and, if asked, the error ratio; pages when \
             it cannot or the rollback does not hold.",
        )
        .param(
            "deployment",
            "The deployment; the alert's `deployment` label takes precedence.",
            None,
        )
        .param(
            "namespace",
            "Its namespace; the alert's `namespace` label takes precedence.",
            Some("default"),
        )
        .param(
            "min_interval",
            "Do not roll the same deployment back again within this long after remedy last did.",
            Some("30m"),
        )
        .param(
            "max_retries",
            "Roll one deployment back again at most this many times a day; then page.",
            Some("3"),
        )
        .param(
            "error_ratio",
            "PromQL for the share of failing requests, 0 to 1, watched after the rollback \
             (needs the `prometheus` grant). Empty: the rollout alone confirms.",
            Some(""),
        )
        .param(
            "act_above",
            "After the rollback, the error ratio must be at or below this percentage.",
            Some("5"),
        )
        .confirm_params("15s", "5m")
        .action_kind("k8s-rollback-deployment")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let target = Target::of(&incident)?;
        let deployment = kube::get_deployment(&target.namespace, &target.name)?;
        let watch = Watch::from_params(&incident, "rollback")?;
        let check = deployment_check(&deployment);
        match attempt(&incident.history) {
            Some(Attempt::Done(revision)) => {
                return confirm(&incident, &deployment, revision, watch);
            }
            Some(Attempt::Refused(why)) => {
                return Ok(Plan::new(format!("not rolling back {target}"))
                    .check(check)
                    .escalate(format!("the rollback was refused: {why}")));
            }
            None => {}
        }
        let limits = Limits {
            min_interval_secs: incident.param_with("min_interval", parse_duration)?,
            max_retries: incident.param_with("max_retries", |t| {
                t.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{t:?} is not a count"))
            })?,
        };
        let sets = kube::replica_sets(&target.namespace, &target.name)?;
        let plan = Plan::new("").check(check).check(events_check(&target));
        Ok(
            match undo_decision(&deployment, &sets, &incident.recent, limits) {
                Undo::To(index) => {
                    let to = &sets[index];
                    let why = format!(
                        "revision {} is failing; revision {} (replica set {}) ran before it",
                        deployment.revision, to.revision, to.name
                    );
                    Plan {
                        summary: format!(
                            "roll back {target} from revision {} to {}",
                            deployment.revision, to.revision
                        ),
                        ..plan
                    }
                    .act(Action::rollback_deployment(&deployment, to, why))
                    .recheck_after(watch.every_secs)
                }
                Undo::Escalate(why) => Plan {
                    summary: format!("not rolling back {target}"),
                    ..plan
                }
                .escalate(why),
            },
        )
    }
}

/// The deployment an alert is about: its `namespace` and `deployment`
/// labels, or the params of the same names.
struct Target {
    namespace: String,
    name: String,
}

impl Target {
    fn of(incident: &Incident) -> Result<Target, Error> {
        let name = incident
            .label_or_param("deployment")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                Error::Invalid(
                    "no deployment: the alert has no `deployment` label and the `deployment` \
                     param is not set"
                        .into(),
                )
            })?;
        Ok(Target {
            namespace: incident
                .label_or_param("namespace")
                .unwrap_or("default")
                .to_string(),
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "deployment {}/{}", self.namespace, self.name)
    }
}

fn deployment_check(d: &kube::Deployment) -> Check {
    Check::pass(
        "deployment",
        format!(
            "{}/{} at revision {}: {} of {} replicas available, rollout {}",
            d.namespace,
            d.name,
            d.revision,
            d.available_replicas,
            d.replicas,
            rollout_state(d)
        ),
    )
}

/// The newest warnings about the deployment and what it owns: why it fails.
fn events_check(target: &Target) -> Check {
    match kube::events(&target.namespace, &target.name) {
        Ok(events) => {
            let warnings: Vec<String> = events
                .iter()
                .filter(|e| e.type_ == "Warning")
                .take(3)
                .map(|e| {
                    format!(
                        "{} {} ({} {}, ×{})",
                        e.reason, e.message, e.object_kind, e.object_name, e.count
                    )
                })
                .collect();
            if warnings.is_empty() {
                Check::pass("events", "no warnings")
            } else {
                Check::warn("events", warnings.join("; "))
            }
        }
        Err(e) => Check::skipped("events", e.describe()),
    }
}

fn rollout_state(d: &kube::Deployment) -> &'static str {
    if d.rollout_stuck() {
        "past its progress deadline"
    } else if d.rollout_complete() {
        "complete"
    } else {
        "in progress"
    }
}

/// After the rollback: one look a round at the rollout and the error ratio.
fn confirm(
    incident: &Incident,
    deployment: &kube::Deployment,
    revision: u64,
    watch: Watch<'_>,
) -> Result<Plan, Error> {
    let query = incident.param("error_ratio").unwrap_or_default().trim();
    let limit = incident.param_with("act_above", parse_percent)? / 100.0;
    let mut holds = deployment.rollout_complete();
    let mut saw = format!(
        "revision {} (the rollback to {revision}): {} of {} replicas available, rollout {}",
        deployment.revision,
        deployment.available_replicas,
        deployment.replicas,
        rollout_state(deployment)
    );
    if !query.is_empty() {
        let ratio = prometheus::query(query)
            .map_err(|e| e.describe())
            .and_then(|series| {
                prometheus::largest(&series).ok_or_else(|| "no requests to measure".to_string())
            });
        match ratio {
            Ok(r) => {
                holds &= r <= limit;
                saw.push_str(&format!("; error ratio {:.1} %", r * 100.0));
            }
            Err(why) => {
                holds = false;
                saw.push_str(&format!("; error ratio unknown: {why}"));
            }
        }
    }
    Ok(watch.round(incident, holds, &saw))
}

remedy_sdk::export_plugin!(K8sRollback);
