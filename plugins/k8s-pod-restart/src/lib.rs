//! k8s-pod-restart: the high-memory runbook for an API with streaming
//! connections. Confirm the pod the alert names is above `memory_above` of
//! its memory limit (as `kubectl top pod` reads it) and not already
//! terminating; delete it with preconditions, so exactly that pod goes and
//! its replica set starts a replacement; then watch the deployment back at
//! full strength, every pod Ready and below the threshold, or page.

pub mod decide;

use decide::{First, first_look, percent};
use remedy_sdk::watch::Watch;
use remedy_sdk::{
    Action, ActionStatus, Check, Error, Incident, K8sDeletePod, Plan, Plugin, PluginInfo, kube,
    parse_duration, parse_percent,
};

struct K8sPodRestart;

impl Plugin for K8sPodRestart {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "k8s-pod-restart",
            env!("CARGO_PKG_VERSION"),
            "Restarts a Kubernetes pod above its memory threshold by deleting exactly that pod, \
             then confirms its replacement is Ready and below the threshold; pages otherwise.",
        )
        .param(
            "pod",
            "The pod; the alert's `pod` label takes precedence.",
            None,
        )
        .param(
            "namespace",
            "Its namespace; the alert's `namespace` label takes precedence.",
            Some("default"),
        )
        .param(
            "memory_above",
            "Restart only above this percentage of the pod's memory limit.",
            Some("95"),
        )
        .param(
            "min_interval",
            "A pod of the same deployment restarted this recently pages instead.",
            Some("30m"),
        )
        .confirm_params("15s", "5m")
        .action_kind("k8s-delete-pod")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let namespace = incident
            .label_or_param("namespace")
            .unwrap_or("default")
            .to_string();
        let name = incident
            .label_or_param("pod")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                Error::Invalid(
                    "no pod: the alert has no `pod` label and the `pod` param is not set".into(),
                )
            })?
            .to_string();
        let above = incident.param_with("memory_above", parse_percent)?;
        let watch = Watch::from_params(&incident, "replacement")?;
        if let Some((deleted, status, detail)) = earlier_delete(&incident) {
            return match status {
                ActionStatus::Done => confirm(&incident, &deleted, above, watch),
                _ => Ok(Plan::new(format!("{} not restarted", deleted.name))
                    .escalate(format!("the delete was not carried out: {detail}"))),
            };
        }
        let pod = kube::get_pod(&namespace, &name)?;
        let usage = kube::pod_memory(&namespace, &name)?.total_bytes();
        let min_interval = incident.param_with("min_interval", parse_duration)?;
        let checks = pod_checks(&pod, usage);
        let plan = Plan {
            checks,
            ..Plan::new("")
        };
        Ok(
            match first_look(&pod, usage, above, &incident.recent, min_interval) {
                First::Restart(why) => Plan {
                    summary: format!("restart pod {namespace}/{name}: {why}"),
                    ..plan
                }
                .act(Action::delete_pod(&pod, why))
                .recheck_after(watch.every_secs),
                First::Leave(why) => Plan {
                    summary: why,
                    ..plan
                },
                First::Escalate(why) => Plan {
                    summary: format!("not restarting pod {namespace}/{name}"),
                    ..plan
                }
                .escalate(why),
            },
        )
    }
}

/// The pod delete this run already tried, with how it went.
fn earlier_delete(incident: &Incident) -> Option<(K8sDeletePod, ActionStatus, String)> {
    incident.history.iter().rev().find_map(|r| match &r.action {
        Action::K8sDeletePod(a) => Some((a.clone(), r.status, r.detail.clone())),
        _ => None,
    })
}

fn pod_checks(pod: &kube::Pod, usage: u64) -> Vec<Check> {
    let memory = match pod.memory_limit_bytes() {
        Some(limit) => format!(
            "{} of {} ({:.1} %)",
            remedy_sdk::format_bytes(usage),
            remedy_sdk::format_bytes(limit),
            percent(usage, limit)
        ),
        None => format!("{} (no limit)", remedy_sdk::format_bytes(usage)),
    };
    vec![
        Check::pass("memory", memory),
        Check::pass(
            "pod",
            format!(
                "{} of deployment {} on {}: {}, {} restarts{}",
                pod.name,
                pod.deployment,
                pod.node_name,
                if pod.ready { "ready" } else { "not ready" },
                pod.restarts(),
                if pod.oom_killed() {
                    ", OOM-killed before"
                } else {
                    ""
                }
            ),
        ),
    ]
}

/// After the delete: the deployment back to full strength without the
/// deleted pod, every pod Ready and below the threshold.
fn confirm(
    incident: &Incident,
    deleted: &K8sDeletePod,
    above: f64,
    watch: Watch<'_>,
) -> Result<Plan, Error> {
    let deployment = kube::get_deployment(&deleted.namespace, &deleted.deployment)?;
    let pods: Vec<kube::Pod> = kube::pods(&deleted.namespace, &deleted.deployment)?
        .into_iter()
        .filter(|p| !p.terminating)
        .collect();
    let gone = pods.iter().all(|p| p.uid != deleted.uid);
    let ready = pods.iter().filter(|p| p.ready).count();
    let mut highest = 0.0f64;
    for pod in &pods {
        let usage = kube::pod_memory(&pod.namespace, &pod.name)?.total_bytes();
        if let Some(limit) = pod.memory_limit_bytes() {
            highest = highest.max(percent(usage, limit));
        }
    }
    let holds = gone && ready as u32 >= deployment.replicas && highest <= above;
    let saw = format!(
        "{} gone: {gone}; {ready} of {} pods ready; highest memory {highest:.1} %",
        deleted.name, deployment.replicas
    );
    Ok(watch.round(incident, holds, &saw))
}

remedy_sdk::export_plugin!(K8sPodRestart);
