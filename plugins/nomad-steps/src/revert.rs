//! Whether and where to revert a job: decided apart from the host calls,
//! so it is tested natively.

use remedy_sdk::nomad::{Deployment, Job};
use remedy_sdk::{Action, PastAction};

#[derive(Debug, PartialEq)]
pub enum Revert {
    To(u64),
    Nothing(String),
    Escalate(String),
}

/// Whether and where to revert `job`. `versions` are Nomad's, newest first.
pub fn revert_decision(
    job: &Job,
    versions: &[Job],
    deployment: Option<&Deployment>,
    recent: &[PastAction],
    cooldown_secs: u64,
) -> Revert {
    if let Some(past) = recent.iter().find(|p| match &p.action {
        Action::NomadRevertJob(a) => a.namespace == job.namespace && a.job_id == job.id,
        _ => false,
    }) && past.age_secs < cooldown_secs
    {
        return Revert::Escalate(format!(
            "{} was reverted {}s ago by run {}; not reverting again within the {}s cooldown",
            job.id, past.age_secs, past.run_id, cooldown_secs
        ));
    }
    if let Some(d) = deployment
        && d.job_version == job.version
        && matches!(
            d.status.as_str(),
            "running" | "paused" | "pending" | "initializing"
        )
    {
        return Revert::Escalate(format!(
            "deployment {} of version {} is still {} ({}); let it finish or fail before reverting",
            d.id, d.job_version, d.status, d.description
        ));
    }
    if job.stable {
        return Revert::Nothing(format!(
            "{} version {} is stable; nothing to revert",
            job.id, job.version
        ));
    }
    match versions
        .iter()
        .filter(|v| v.stable && v.version < job.version)
        .max_by_key(|v| v.version)
    {
        Some(stable) => Revert::To(stable.version),
        None => Revert::Escalate(format!(
            "{} has no stable version before {}; nothing safe to revert to",
            job.id, job.version
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remedy_sdk::NomadRevertJob;

    fn job(version: u64, stable: bool) -> Job {
        Job {
            id: "api".into(),
            name: "api".into(),
            namespace: "default".into(),
            job_type: "service".into(),
            status: "running".into(),
            stop: false,
            version,
            stable,
            submit_time_ns: 0,
            task_groups: vec!["web".into()],
        }
    }

    fn reverted(age_secs: u64) -> PastAction {
        PastAction {
            run_id: "r1".into(),
            age_secs,
            action: Action::NomadRevertJob(NomadRevertJob {
                namespace: "default".into(),
                job_id: "api".into(),
                current_version: 3,
                to_version: 1,
                reason: String::new(),
            }),
        }
    }

    #[test]
    fn reverts_to_the_newest_earlier_stable_version() {
        let versions = [job(3, false), job(2, false), job(1, true), job(0, true)];
        assert_eq!(
            revert_decision(&job(3, false), &versions, None, &[], 1800),
            Revert::To(1)
        );
    }

    #[test]
    fn no_flapping_within_the_cooldown() {
        let versions = [job(4, false), job(3, false), job(1, true)];
        let decision = revert_decision(&job(4, false), &versions, None, &[reverted(60)], 1800);
        assert!(matches!(decision, Revert::Escalate(why) if why.contains("cooldown")));
        assert_eq!(
            revert_decision(&job(4, false), &versions, None, &[reverted(4000)], 1800),
            Revert::To(1)
        );
    }

    #[test]
    fn waits_for_an_active_deployment() {
        let deployment = Deployment {
            id: "d1".into(),
            job_version: 3,
            status: "running".into(),
            description: "Deployment is running".into(),
        };
        let versions = [job(3, false), job(1, true)];
        let decision = revert_decision(&job(3, false), &versions, Some(&deployment), &[], 1800);
        assert!(matches!(decision, Revert::Escalate(why) if why.contains("still running")));
    }

    #[test]
    fn a_stable_job_is_left_alone_and_no_stable_version_escalates() {
        assert!(matches!(
            revert_decision(&job(2, true), &[job(2, true)], None, &[], 1800),
            Revert::Nothing(_)
        ));
        assert!(matches!(
            revert_decision(
                &job(2, false),
                &[job(2, false), job(1, false)],
                None,
                &[],
                1800
            ),
            Revert::Escalate(_)
        ));
    }
}
