//! The parts of Nomad's JSON that remedy reads, and how they become the
//! contract's records. Missing fields take their zero value, as Nomad's own
//! Go structs do.

use crate::contract::nomad as wit;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskState {
    pub state: String,
    pub failed: bool,
    pub restarts: u64,
    pub events: Option<Vec<TaskEvent>>,
}

/// One of the recent events Nomad keeps for a task.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskEvent {
    pub details: Option<BTreeMap<String, String>>,
}

impl TaskState {
    /// Whether an event it still keeps says the OOM killer ended it.
    fn oom_killed(&self) -> bool {
        self.events.iter().flatten().any(|event| {
            event
                .details
                .as_ref()
                .and_then(|d| d.get("oom_killed"))
                .is_some_and(|v| v == "true")
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeploymentStatus {
    pub healthy: Option<bool>,
}

/// An allocation, full or as a list stub: both carry these fields.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Allocation {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub namespace: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_version: u64,
    pub task_group: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_name: String,
    pub desired_status: String,
    pub client_status: String,
    pub deployment_status: Option<DeploymentStatus>,
    pub task_states: Option<BTreeMap<String, TaskState>>,
    pub modify_time: i64,
}

impl From<Allocation> for wit::Allocation {
    fn from(a: Allocation) -> Self {
        wit::Allocation {
            id: a.id,
            name: a.name,
            namespace: a.namespace,
            job_id: a.job_id,
            job_version: a.job_version,
            task_group: a.task_group,
            node_id: a.node_id,
            node_name: a.node_name,
            desired_status: a.desired_status,
            client_status: a.client_status,
            healthy: a.deployment_status.and_then(|d| d.healthy),
            task_states: a
                .task_states
                .unwrap_or_default()
                .into_iter()
                .map(|(name, t)| wit::TaskState {
                    oom_killed: t.oom_killed(),
                    name,
                    state: t.state,
                    failed: t.failed,
                    restarts: t.restarts,
                })
                .collect(),
            modify_time_ns: a.modify_time,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobStub {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub namespace: String,
    #[serde(rename = "Type")]
    pub job_type: String,
    pub status: String,
    pub stop: bool,
}

impl From<JobStub> for wit::JobSummary {
    fn from(j: JobStub) -> Self {
        wit::JobSummary {
            id: j.id,
            name: j.name,
            namespace: j.namespace,
            job_type: j.job_type,
            status: j.status,
            stop: j.stop,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskGroup {
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Job {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub namespace: String,
    #[serde(rename = "Type")]
    pub job_type: String,
    pub status: String,
    pub stop: bool,
    pub version: u64,
    pub stable: bool,
    pub submit_time: i64,
    pub task_groups: Option<Vec<TaskGroup>>,
}

impl From<Job> for wit::Job {
    fn from(j: Job) -> Self {
        wit::Job {
            id: j.id,
            name: j.name,
            namespace: j.namespace,
            job_type: j.job_type,
            status: j.status,
            stop: j.stop,
            version: j.version,
            stable: j.stable,
            submit_time_ns: j.submit_time,
            task_groups: j
                .task_groups
                .unwrap_or_default()
                .into_iter()
                .map(|g| g.name)
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobVersions {
    pub versions: Vec<Job>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Deployment {
    #[serde(rename = "ID")]
    pub id: String,
    pub job_version: u64,
    pub status: String,
    pub status_description: String,
}

impl From<Deployment> for wit::Deployment {
    fn from(d: Deployment) -> Self {
        wit::Deployment {
            id: d.id,
            job_version: d.job_version,
            status: d.status,
            description: d.status_description,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub datacenter: String,
    pub status: String,
}

impl From<Node> for wit::Node {
    fn from(n: Node) -> Self {
        wit::Node {
            id: n.id,
            name: n.name,
            datacenter: n.datacenter,
            status: n.status,
        }
    }
}

/// `/v1/agent/self`: only the client's node id matters here.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AgentSelf {
    pub stats: AgentStats,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AgentStats {
    pub client: Option<ClientStats>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClientStats {
    pub node_id: String,
}

/// `/v1/agent/health`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AgentHealth {
    pub client: Option<HealthPart>,
    pub server: Option<HealthPart>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HealthPart {
    pub ok: bool,
    pub message: String,
}

impl From<AgentHealth> for wit::Health {
    fn from(h: AgentHealth) -> Self {
        let message = [("client", &h.client), ("server", &h.server)]
            .iter()
            .filter_map(|(who, part)| part.as_ref().map(|p| format!("{who}: {}", p.message)))
            .collect::<Vec<_>>()
            .join("; ");
        wit::Health {
            client_ok: h.client.as_ref().map(|p| p.ok),
            server_ok: h.server.as_ref().map(|p| p.ok),
            message,
        }
    }
}

/// What Nomad answers to a write that creates an evaluation.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EvalReply {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
}
