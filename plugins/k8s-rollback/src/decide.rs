//! k8s-rollback's decisions, apart from the host calls, so they are tested
//! natively: whether and where to roll back, and how earlier attempts in
//! this run went.

use remedy_sdk::kube::{Deployment, ReplicaSet};
use remedy_sdk::{Action, ActionResult, ActionStatus, PastAction};

#[derive(Debug, PartialEq)]
pub enum Undo {
    /// Roll back to the replica set at this index of the ones given.
    To(usize),
    Escalate(String),
}

/// How often remedy may roll one deployment back.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Not again within this long of the last rollback.
    pub min_interval_secs: u64,
    /// Rollbacks after the first within the day `recent` covers.
    pub max_retries: u32,
}

/// Whether and where to roll `deployment` back. `sets` are its replica
/// sets; `recent` what this plugin carried out in the last day, newest first.
pub fn undo_decision(
    deployment: &Deployment,
    sets: &[ReplicaSet],
    recent: &[PastAction],
    limits: Limits,
) -> Undo {
    let name = format!("{}/{}", deployment.namespace, deployment.name);
    let earlier: Vec<&PastAction> = recent
        .iter()
        .filter(|p| match &p.action {
            Action::K8sRollbackDeployment(a) => {
                a.deployment.namespace == deployment.namespace
                    && a.deployment.name == deployment.name
            }
            _ => false,
        })
        .collect();
    if let Some(last) = earlier.first()
        && last.age_secs < limits.min_interval_secs
    {
        return Undo::Escalate(format!(
            "{name} was rolled back {}s ago by run {}; not again within min_interval ({}s)",
            last.age_secs, last.run_id, limits.min_interval_secs
        ));
    }
    if earlier.len() > limits.max_retries as usize {
        return Undo::Escalate(format!(
            "{name} was rolled back {} times in the last day (max_retries = {}); a human decides now",
            earlier.len(),
            limits.max_retries
        ));
    }
    if deployment.paused {
        return Undo::Escalate(format!("{name} is paused: someone is changing it by hand"));
    }
    if !deployment.rollout_complete() && !deployment.rollout_stuck() {
        return Undo::Escalate(format!(
            "a rollout of {name} revision {} is in progress ({} of {} updated replicas available); \
             let it finish or pass its progress deadline before rolling back",
            deployment.revision, deployment.available_replicas, deployment.replicas
        ));
    }
    let previous = sets
        .iter()
        .enumerate()
        .filter(|(_, rs)| rs.revision < deployment.revision && rs.revision > 0)
        .max_by_key(|(_, rs)| rs.revision);
    match previous {
        Some((index, _)) => Undo::To(index),
        None => Undo::Escalate(format!(
            "{name} keeps no revision before {} (revisionHistoryLimit); nothing to roll back to",
            deployment.revision
        )),
    }
}

/// How this run's rollback went, if it tried one.
#[derive(Debug, PartialEq)]
pub enum Attempt {
    /// Carried out, to this revision.
    Done(u64),
    /// Refused by the host (the deployment changed since the plan):
    /// trying again on the same plan would not help.
    Refused(String),
}

pub fn attempt(history: &[ActionResult]) -> Option<Attempt> {
    history.iter().rev().find_map(|result| {
        let Action::K8sRollbackDeployment(rollback) = &result.action else {
            return None;
        };
        match result.status {
            ActionStatus::Done => Some(Attempt::Done(rollback.to_revision)),
            ActionStatus::Stale | ActionStatus::Denied | ActionStatus::Failed => {
                Some(Attempt::Refused(result.detail.clone()))
            }
            ActionStatus::Planned | ActionStatus::Skipped => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use remedy_sdk::kube::Condition;
    use remedy_sdk::{K8sDeploymentRef, K8sRollbackDeployment};

    fn deployment(revision: u64) -> Deployment {
        Deployment {
            namespace: "shop".into(),
            name: "api".into(),
            uid: "d".into(),
            resource_version: "7".into(),
            revision,
            generation: 4,
            observed_generation: 4,
            paused: false,
            replicas: 3,
            updated_replicas: 3,
            ready_replicas: 3,
            available_replicas: 3,
            unavailable_replicas: 0,
            conditions: vec![],
            labels: vec![],
        }
    }

    fn set(revision: u64) -> ReplicaSet {
        ReplicaSet {
            namespace: "shop".into(),
            name: format!("api-{revision}"),
            uid: format!("rs-{revision}"),
            revision,
            template_hash: String::new(),
            replicas: 0,
            ready_replicas: 0,
            available_replicas: 0,
            created_secs: 0,
        }
    }

    const LIMITS: Limits = Limits {
        min_interval_secs: 600,
        max_retries: 1,
    };

    fn rollback_of(name: &str) -> Action {
        Action::K8sRollbackDeployment(K8sRollbackDeployment {
            deployment: K8sDeploymentRef {
                namespace: "shop".into(),
                name: name.into(),
                uid: "d".into(),
                resource_version: "1".into(),
                revision: 3,
            },
            to_revision: 2,
            to_uid: "rs-2".into(),
            reason: String::new(),
        })
    }

    #[test]
    fn goes_to_the_newest_revision_before_the_current_one() {
        let sets = [set(3), set(1), set(2)];
        assert_eq!(
            undo_decision(&deployment(3), &sets, &[], LIMITS),
            Undo::To(2)
        );
        let only_current = [set(3)];
        let Undo::Escalate(why) = undo_decision(&deployment(3), &only_current, &[], LIMITS) else {
            panic!("no earlier revision")
        };
        assert!(why.contains("revisionHistoryLimit"), "{why}");
    }

    #[test]
    fn a_rollout_in_progress_is_left_alone_but_a_stuck_one_is_not() {
        let mut rolling = deployment(3);
        rolling.available_replicas = 1;
        rolling.unavailable_replicas = 2;
        let sets = [set(2), set(3)];
        let Undo::Escalate(why) = undo_decision(&rolling, &sets, &[], LIMITS) else {
            panic!("in progress")
        };
        assert!(why.contains("in progress"), "{why}");
        rolling.conditions.push(Condition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: "ProgressDeadlineExceeded".into(),
            message: String::new(),
        });
        assert_eq!(undo_decision(&rolling, &sets, &[], LIMITS), Undo::To(0));
    }

    #[test]
    fn not_again_within_min_interval_nor_past_max_retries_a_day() {
        let sets = [set(2), set(3)];
        let past = |name: &str, age_secs| PastAction {
            run_id: "r1".into(),
            age_secs,
            action: rollback_of(name),
        };
        let decide = |recent: &[PastAction]| undo_decision(&deployment(3), &sets, recent, LIMITS);
        let Undo::Escalate(why) = decide(&[past("api", 120)]) else {
            panic!("inside min_interval")
        };
        assert!(why.contains("min_interval"), "{why}");
        assert_eq!(decide(&[past("api", 900)]), Undo::To(0));
        assert_eq!(decide(&[past("web", 60)]), Undo::To(0));
        let Undo::Escalate(why) = decide(&[past("api", 900), past("api", 5000)]) else {
            panic!("past max_retries")
        };
        assert!(
            why.contains("2 times in the last day (max_retries = 1)"),
            "{why}"
        );
    }

    #[test]
    fn the_last_attempt_of_this_run_decides_what_comes_next() {
        let result = |status, detail: &str| ActionResult {
            round: 0,
            action: rollback_of("api"),
            status,
            detail: detail.into(),
        };
        assert_eq!(attempt(&[]), None);
        assert_eq!(
            attempt(&[result(ActionStatus::Done, "")]),
            Some(Attempt::Done(2))
        );
        assert_eq!(
            attempt(&[result(ActionStatus::Stale, "changed since the plan")]),
            Some(Attempt::Refused("changed since the plan".into()))
        );
        assert_eq!(attempt(&[result(ActionStatus::Planned, "")]), None);
    }
}
