//! Read-only view of Nomad within the granted namespaces and jobs
//! (grant `nomad = ["read", ...]`).
//!
//! ```no_run
//! use remedy_sdk::{Error, nomad};
//!
//! /// The allocations on this node that are not healthy.
//! fn unhealthy_here() -> Result<Vec<nomad::Allocation>, Error> {
//!     let node = nomad::local_node()?;
//!     let allocations = nomad::node_allocations(&node.id)?;
//!     Ok(allocations.into_iter().filter(|a| !a.is_healthy()).collect())
//! }
//! ```

pub use crate::bindings::remedy::plugin::nomad::{
    Allocation, Deployment, Health, Job, JobSummary, Node, TaskState, agent_health, get_job,
    job_allocations, job_deployment, job_versions, jobs, local_node, namespaces, node_allocations,
};

impl Allocation {
    /// Running, meant to run, and not judged unhealthy by a deployment.
    pub fn is_healthy(&self) -> bool {
        self.desired_status == "run"
            && self.client_status == "running"
            && self.healthy != Some(false)
            && self.task_states.iter().all(|t| t.state == "running")
    }

    /// Restarts of all tasks so far.
    pub fn restarts(&self) -> u64 {
        self.task_states.iter().map(|t| t.restarts).sum()
    }
}
