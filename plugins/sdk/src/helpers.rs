//! Constructors and accessors that keep plugin code short.

use crate::{
    Action, ActionResult, ActionStatus, Alert, AlertStatus, Check, CheckStatus, DockerPrune,
    DockerPruneTarget, DockerRestartContainer, Error, FileIdentity, Incident, K8sDeletePod,
    K8sDeploymentRef, K8sRestartDeployment, K8sRollbackDeployment, KmodLoad, NbdDisconnect,
    NetnsDelete, NomadAllocRef, NomadClientGc, NomadEvaluateJob, NomadRestartAlloc, NomadRevertJob,
    NomadStopAlloc, ParamInfo, Plan, PluginInfo, ProcessSignal, RemovePath, docker, fs, kmod, kube,
    netns, nomad, proc,
};

impl PluginInfo {
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            params: Vec::new(),
            action_kinds: Vec::new(),
        }
    }

    /// Declare a parameter; `default` is what the plugin receives when nobody sets it.
    pub fn param(mut self, name: &str, description: &str, default: Option<&str>) -> Self {
        self.params.push(ParamInfo {
            name: name.into(),
            description: description.into(),
            default: default.map(Into::into),
        });
        self
    }

    /// Declare an action kind (see [`Action::kind`]) this plugin may propose.
    pub fn action_kind(mut self, kind: &str) -> Self {
        self.action_kinds.push(kind.into());
        self
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

impl Incident {
    /// The value of an alert label.
    /// The alert's label `name` if it has one, else the param `name`. A
    /// value taken from the label is reported to the host (`params.used`),
    /// so the run's record shows the value used, not the param's.
    pub fn label_or_param(&self, name: &str) -> Option<&str> {
        match self.label(name) {
            Some(value) => {
                if self.param(name) != Some(value) {
                    crate::params::used(name, value);
                }
                Some(value)
            }
            None => self.param(name),
        }
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        lookup(&self.alert.labels, name)
    }

    /// The value of a parameter (the host fills in declared defaults).
    pub fn param(&self, name: &str) -> Option<&str> {
        lookup(&self.params, name)
    }

    /// A parameter parsed by `parse`; missing or unparsable is an `invalid` error naming it.
    pub fn param_with<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, Error> {
        let raw = self
            .param(name)
            .ok_or_else(|| Error::Invalid(format!("parameter `{name}` is not set")))?;
        parse(raw).map_err(|why| Error::Invalid(format!("parameter `{name}` = {raw:?}: {why}")))
    }

    /// A comma-separated list parameter, empty items dropped.
    pub fn param_list(&self, name: &str) -> Vec<String> {
        self.param(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(String::from)
            .collect()
    }

    /// A firing incident with these labels and parameters, for tests.
    pub fn for_test(labels: &[(&str, &str)], params: &[(&str, &str)]) -> Self {
        let pairs = |items: &[(&str, &str)]| {
            items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Incident {
            run_id: "test".into(),
            alert: Alert {
                status: AlertStatus::Firing,
                labels: pairs(labels),
                annotations: Vec::new(),
                starts_at: "2026-01-01T00:00:00Z".into(),
                ends_at: None,
                fingerprint: "0000000000000000".into(),
            },
            params: pairs(params),
            dry_run: true,
            round: 0,
            history: Vec::new(),
            recent: Vec::new(),
            memo: None,
        }
    }
}

impl Check {
    fn with(status: CheckStatus, name: &str, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
    pub fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self::with(CheckStatus::Pass, name, detail)
    }
    pub fn warn(name: &str, detail: impl Into<String>) -> Self {
        Self::with(CheckStatus::Warn, name, detail)
    }
    pub fn fail(name: &str, detail: impl Into<String>) -> Self {
        Self::with(CheckStatus::Fail, name, detail)
    }
    pub fn skipped(name: &str, detail: impl Into<String>) -> Self {
        Self::with(CheckStatus::Skipped, name, detail)
    }
}

impl Plan {
    /// An empty plan: nothing to do until actions are added.
    pub fn new(summary: impl Into<String>) -> Self {
        Plan {
            summary: summary.into(),
            checks: Vec::new(),
            actions: Vec::new(),
            escalate: None,
            recheck_after_secs: None,
            memo: None,
        }
    }
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }
    pub fn act(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }
    /// Page a human instead of acting.
    pub fn escalate(mut self, why: impl Into<String>) -> Self {
        self.escalate = Some(why.into());
        self
    }
    /// Ask the host to wait this long before the next round: after acting, to
    /// confirm it took; with no actions, to look again before acting. Under
    /// `remedy serve` the run is parked in the store meanwhile, and the next
    /// round may run on another worker, or after a restart of remedy: what
    /// it needs from this one goes in the [`memo`](Plan::memo).
    pub fn recheck_after(mut self, secs: u32) -> Self {
        self.recheck_after_secs = Some(secs);
        self
    }
    /// Leave state for the next round (`Incident::memo`), such as a first scan.
    pub fn memo(mut self, memo: impl Into<String>) -> Self {
        self.memo = Some(memo.into());
        self
    }
}

fn alloc_ref(alloc: &nomad::Allocation) -> NomadAllocRef {
    NomadAllocRef {
        namespace: alloc.namespace.clone(),
        job_id: alloc.job_id.clone(),
        alloc_id: alloc.id.clone(),
        node_id: alloc.node_id.clone(),
    }
}

impl Action {
    /// Unlink the regular file `entry`, as it was when the plugin saw it.
    pub fn remove_file(entry: &fs::Entry, reason: impl Into<String>) -> Self {
        Action::RemovePath(RemovePath {
            path: entry.path.clone(),
            identity: entry.identity,
            reason: reason.into(),
        })
    }

    /// Restart one task (or all) of an allocation in place.
    pub fn restart_alloc(
        alloc: &nomad::Allocation,
        task: Option<&str>,
        reason: impl Into<String>,
    ) -> Self {
        Action::NomadRestartAlloc(NomadRestartAlloc {
            alloc: alloc_ref(alloc),
            task: task.map(Into::into),
            reason: reason.into(),
        })
    }

    /// Stop an allocation so the scheduler replaces it.
    pub fn stop_alloc(alloc: &nomad::Allocation, reason: impl Into<String>) -> Self {
        Action::NomadStopAlloc(NomadStopAlloc {
            alloc: alloc_ref(alloc),
            reason: reason.into(),
        })
    }

    /// Re-evaluate a job, optionally forcing failed allocations to reschedule.
    pub fn evaluate_job(
        job: &nomad::Job,
        force_reschedule: bool,
        reason: impl Into<String>,
    ) -> Self {
        Action::NomadEvaluateJob(NomadEvaluateJob {
            namespace: job.namespace.clone(),
            job_id: job.id.clone(),
            force_reschedule,
            reason: reason.into(),
        })
    }

    /// Revert `job` (as it is now) to `to_version`.
    pub fn revert_job(job: &nomad::Job, to_version: u64, reason: impl Into<String>) -> Self {
        Action::NomadRevertJob(NomadRevertJob {
            namespace: job.namespace.clone(),
            job_id: job.id.clone(),
            current_version: job.version,
            to_version,
            reason: reason.into(),
        })
    }

    /// Collect terminal allocations on a client node.
    pub fn client_gc(node: &nomad::Node, reason: impl Into<String>) -> Self {
        Action::NomadClientGc(NomadClientGc {
            node_id: node.id.clone(),
            reason: reason.into(),
        })
    }

    /// Remove what `docker::prune_candidates(target, older_than_secs)` lists.
    pub fn docker_prune(
        target: DockerPruneTarget,
        older_than_secs: u64,
        reason: impl Into<String>,
    ) -> Self {
        Action::DockerPrune(DockerPrune {
            target,
            older_than_secs,
            reason: reason.into(),
        })
    }

    pub fn restart_container(container: &docker::Container, reason: impl Into<String>) -> Self {
        Action::DockerRestartContainer(DockerRestartContainer {
            id: container.id.clone(),
            name: container.name.clone(),
            reason: reason.into(),
        })
    }

    /// Roll `deployment` back to the pod template of `to`, one of its
    /// replica sets, as seen.
    pub fn rollback_deployment(
        deployment: &kube::Deployment,
        to: &kube::ReplicaSet,
        reason: impl Into<String>,
    ) -> Self {
        Action::K8sRollbackDeployment(K8sRollbackDeployment {
            deployment: deployment_ref(deployment),
            to_revision: to.revision,
            to_uid: to.uid.clone(),
            reason: reason.into(),
        })
    }

    /// Restart the pods of `deployment`, as seen, through a rollout.
    pub fn restart_deployment(deployment: &kube::Deployment, reason: impl Into<String>) -> Self {
        Action::K8sRestartDeployment(K8sRestartDeployment {
            deployment: deployment_ref(deployment),
            reason: reason.into(),
        })
    }

    /// Delete `pod`, as seen; its replica set starts a replacement.
    pub fn delete_pod(pod: &kube::Pod, reason: impl Into<String>) -> Self {
        Action::K8sDeletePod(K8sDeletePod {
            namespace: pod.namespace.clone(),
            deployment: pod.deployment.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            resource_version: pod.resource_version.clone(),
            reason: reason.into(),
        })
    }

    /// Delete a namespace as seen, after its host-side link when one is named.
    pub fn delete_netns(
        namespace: &netns::Namespace,
        host_link: Option<&str>,
        reason: impl Into<String>,
    ) -> Self {
        Action::NetnsDelete(NetnsDelete {
            name: namespace.name.clone(),
            inode: namespace.inode,
            host_link: host_link.map(Into::into),
            reason: reason.into(),
        })
    }

    /// Signal `process` as seen (`TERM`, `KILL`, ...), or its whole process group.
    pub fn signal(
        process: &proc::Process,
        signal: &str,
        process_group: bool,
        reason: impl Into<String>,
    ) -> Self {
        Action::ProcessSignal(ProcessSignal {
            pid: process.pid,
            start_time: process.start_time,
            exe: process.exe.clone(),
            signal: signal.into(),
            process_group,
            reason: reason.into(),
        })
    }

    /// Signal the process seen listening on a port (`TERM`, `KILL`, ...).
    pub fn signal_listener(
        listener: &proc::Listener,
        signal: &str,
        reason: impl Into<String>,
    ) -> Self {
        Action::ProcessSignal(ProcessSignal {
            pid: listener.pid,
            start_time: listener.start_time,
            exe: listener.exe.clone(),
            signal: signal.into(),
            process_group: false,
            reason: reason.into(),
        })
    }

    pub fn load_module(
        module: &str,
        parameters: &[(&str, &str)],
        reason: impl Into<String>,
    ) -> Self {
        Action::KmodLoad(KmodLoad {
            module: module.into(),
            parameters: parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            reason: reason.into(),
        })
    }

    /// Disconnect an orphaned nbd device as seen.
    pub fn disconnect_nbd(device: &kmod::NbdDevice, reason: impl Into<String>) -> Self {
        Action::NbdDisconnect(NbdDisconnect {
            index: device.index,
            owner_pid: device.owner_pid.unwrap_or(0),
            reason: reason.into(),
        })
    }
}

remedy_contract::impl_action_kinds!(Action);
fn deployment_ref(deployment: &kube::Deployment) -> K8sDeploymentRef {
    K8sDeploymentRef {
        namespace: deployment.namespace.clone(),
        name: deployment.name.clone(),
        uid: deployment.uid.clone(),
        resource_version: deployment.resource_version.clone(),
        revision: deployment.revision,
    }
}

remedy_contract::impl_docker_prune_targets!(DockerPruneTarget);
remedy_contract::impl_error_describe!(Error);

impl DockerPruneTarget {
    /// The target called `name`; an unknown name is an error listing the known ones.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
                format!("unknown target {name:?}; use {}", known.join(", "))
            })
    }
}

impl ActionResult {
    /// Bytes a `remove-path` freed; 0 for anything not done.
    pub fn bytes_freed(&self) -> u64 {
        match (&self.action, self.status) {
            (Action::RemovePath(remove), ActionStatus::Done) => remove.identity.size,
            _ => 0,
        }
    }
}

impl FileIdentity {
    /// Seconds since the Unix epoch of the last modification.
    pub fn mtime_secs(&self) -> i64 {
        self.mtime_ns.div_euclid(1_000_000_000)
    }
}

/// Parse `90s`, `15m`, `6h`, `7d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| "expected a number followed by s, m, h or d".to_string())?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?}; use s, m, h or d")),
    };
    amount
        .checked_mul(scale)
        .ok_or_else(|| "duration too large".to_string())
}

/// Parse a whole number of at least 1: a count of rounds, looks, items.
pub fn parse_count(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "expected a whole number of at least 1".into())
}

/// Parse a percentage between 0 and 100, with or without a trailing `%`.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| "expected a number between 0 and 100".to_string())?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err("expected a number between 0 and 100".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count(" 3 "), Ok(3));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-1").is_err());
        assert!(parse_count("many").is_err());
    }

    #[test]
    fn percents() {
        assert_eq!(parse_percent("80"), Ok(80.0));
        assert_eq!(parse_percent("72.5%"), Ok(72.5));
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("lots").is_err());
    }

    #[test]
    fn prune_targets_round_trip() {
        for &target in DockerPruneTarget::ALL {
            assert_eq!(DockerPruneTarget::parse(target.name()), Ok(target));
        }
        assert!(
            DockerPruneTarget::parse("volumes")
                .unwrap_err()
                .contains("build-cache")
        );
    }

    #[test]
    fn list_params_drop_blanks() {
        let incident = Incident::for_test(&[], &[("dirs", " /a, ,/b ,")]);
        assert_eq!(incident.param_list("dirs"), ["/a", "/b"]);
        assert!(incident.param_list("missing").is_empty());
    }
}
