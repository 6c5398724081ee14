//! k8s-pod-restart's decisions, apart from the host calls, so they are
//! tested natively.

use remedy_sdk::kube::Pod;
use remedy_sdk::{Action, PastAction};

#[derive(Debug, PartialEq)]
pub enum First {
    Restart(String),
    Leave(String),
    Escalate(String),
}

/// Whether to restart `pod`, using `usage` bytes of memory now.
pub fn first_look(
    pod: &Pod,
    usage: u64,
    above_percent: f64,
    recent: &[PastAction],
    min_interval_secs: u64,
) -> First {
    let name = format!("{}/{}", pod.namespace, pod.name);
    if pod.terminating {
        return First::Leave(format!("{name} is already terminating"));
    }
    let Some(limit) = pod.memory_limit_bytes().filter(|&l| l > 0) else {
        return First::Escalate(format!(
            "{name} has a container without a memory limit: no threshold to judge it by"
        ));
    };
    let used = percent(usage, limit);
    if used <= above_percent {
        return First::Leave(format!(
            "{name} uses {used:.1} % of its memory limit, not above {above_percent} %"
        ));
    }
    if let Some(past) = recent.iter().find(|p| match &p.action {
        Action::K8sDeletePod(a) => a.namespace == pod.namespace && a.deployment == pod.deployment,
        _ => false,
    }) && past.age_secs < min_interval_secs
    {
        return First::Escalate(format!(
            "a pod of {}/{} was restarted {}s ago by run {}; memory climbing again so soon \
             is not a pod to restart but a leak to look at",
            pod.namespace, pod.deployment, past.age_secs, past.run_id
        ));
    }
    First::Restart(format!(
        "{name} uses {used:.1} % of its memory limit, above {above_percent} %"
    ))
}

pub fn percent(used: u64, limit: u64) -> f64 {
    used as f64 * 100.0 / limit.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use remedy_sdk::K8sDeletePod;
    use remedy_sdk::kube::ContainerStatus;

    const MIB: u64 = 1 << 20;

    fn pod(limit: Option<u64>) -> Pod {
        Pod {
            namespace: "shop".into(),
            name: "api-7d9-x1".into(),
            uid: "p".into(),
            resource_version: "9".into(),
            deployment: "api".into(),
            template_hash: "7d9".into(),
            node_name: "node-1".into(),
            phase: "Running".into(),
            ready: true,
            terminating: false,
            started_secs: 0,
            containers: vec![ContainerStatus {
                name: "app".into(),
                ready: true,
                restart_count: 2,
                waiting_reason: None,
                last_terminated_reason: Some("OOMKilled".into()),
                memory_limit_bytes: limit,
            }],
            labels: vec![],
        }
    }

    #[test]
    fn only_above_the_threshold_of_a_limit() {
        let p = pod(Some(512 * MIB));
        assert!(matches!(
            first_look(&p, 500 * MIB, 95.0, &[], 600),
            First::Restart(_)
        ));
        assert!(matches!(
            first_look(&p, 400 * MIB, 95.0, &[], 600),
            First::Leave(_)
        ));
        let First::Escalate(why) = first_look(&pod(None), 500 * MIB, 95.0, &[], 600) else {
            panic!("no limit")
        };
        assert!(why.contains("without a memory limit"), "{why}");
        let mut going = p.clone();
        going.terminating = true;
        assert!(matches!(
            first_look(&going, 500 * MIB, 95.0, &[], 600),
            First::Leave(_)
        ));
    }

    #[test]
    fn a_second_restart_of_the_same_deployment_soon_after_pages() {
        let p = pod(Some(512 * MIB));
        let past = PastAction {
            run_id: "r1".into(),
            age_secs: 120,
            action: Action::K8sDeletePod(K8sDeletePod {
                namespace: "shop".into(),
                deployment: "api".into(),
                name: "api-7d9-x0".into(),
                uid: "old".into(),
                resource_version: "3".into(),
                reason: String::new(),
            }),
        };
        assert!(matches!(
            first_look(&p, 500 * MIB, 95.0, std::slice::from_ref(&past), 600),
            First::Escalate(_)
        ));
        assert!(matches!(
            first_look(&p, 500 * MIB, 95.0, &[past], 60),
            First::Restart(_)
        ));
    }
}
