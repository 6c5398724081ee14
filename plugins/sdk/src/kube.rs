//! Read-only view of Kubernetes within the granted namespaces, deployment
//! names and labels (grant `kube = ["read", ...]`). Replica sets, pods and
//! events are seen through the deployment that owns them.
//!
//! ```no_run
//! use remedy_sdk::{Error, kube};
//!
//! /// The revision a rollback of `name` would return to, if it has one.
//! fn previous_revision(namespace: &str, name: &str) -> Result<Option<u64>, Error> {
//!     let deployment = kube::get_deployment(namespace, name)?;
//!     let sets = kube::replica_sets(namespace, name)?;
//!     Ok(sets
//!         .iter()
//!         .map(|rs| rs.revision)
//!         .find(|&revision| revision < deployment.revision))
//! }
//! ```

pub use crate::bindings::remedy::plugin::kube::{
    Condition, ContainerStatus, Deployment, Event, MemoryUsage, Pod, ReplicaSet, deployments,
    events, get_deployment, get_pod, namespaces, pod_memory, pods, replica_sets,
};

impl Deployment {
    /// The rollout of its current template is done, as `kubectl rollout
    /// status` judges it: the controller has seen the latest spec, and every
    /// replica is updated and available, with no old one left.
    pub fn rollout_complete(&self) -> bool {
        self.observed_generation >= self.generation
            && self.updated_replicas >= self.replicas
            && self.available_replicas >= self.updated_replicas
            && self.unavailable_replicas == 0
            && !self.rollout_stuck()
    }

    /// Its rollout passed its progress deadline (`ProgressDeadlineExceeded`).
    pub fn rollout_stuck(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.reason == "ProgressDeadlineExceeded")
    }
}

impl Pod {
    /// Restarts of all its containers.
    pub fn restarts(&self) -> u32 {
        self.containers.iter().map(|c| c.restart_count).sum()
    }

    /// A container's last run ended because the kernel killed it for memory.
    pub fn oom_killed(&self) -> bool {
        self.containers
            .iter()
            .any(|c| c.last_terminated_reason.as_deref() == Some("OOMKilled"))
    }

    /// The sum of its containers' memory limits, if every container has one.
    pub fn memory_limit_bytes(&self) -> Option<u64> {
        self.containers.iter().map(|c| c.memory_limit_bytes).sum()
    }
}

impl MemoryUsage {
    pub fn total_bytes(&self) -> u64 {
        self.containers.iter().map(|(_, bytes)| bytes).sum()
    }
}
