//! A test double of Nomad's HTTP API, served on 127.0.0.1. No Nomad binary
//! can run here, so this follows Nomad's own shapes and behaviour for the
//! endpoints remedy uses: text/plain error bodies (403 "Permission denied",
//! 404 "job not found"), namespaces, `X-Nomad-Index` and blocking queries,
//! a restart that increments `Restarts`, a stop that creates a replacement
//! allocation, a revert that creates a new job version and enforces the prior
//! one. Failures (429, 500, ...) can be injected for the next requests.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub struct TaskState {
    pub state: String,
    pub failed: bool,
    pub restarts: u64,
    /// Ended by the OOM killer: shown as a `Terminated` event, as Nomad does.
    pub oom_killed: bool,
}

#[derive(Clone, Debug)]
pub struct Alloc {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_version: u64,
    pub group: String,
    pub node_id: String,
    pub desired: String,
    pub client: String,
    pub tasks: BTreeMap<String, TaskState>,
    pub healthy: Option<bool>,
    pub modify_index: u64,
}

impl Alloc {
    /// Restarts of all its tasks, as Nomad counts them.
    pub fn restarts(&self) -> u64 {
        self.tasks.values().map(|t| t.restarts).sum()
    }
}

#[derive(Clone, Debug)]
pub struct JobVersion {
    pub version: u64,
    pub stable: bool,
    /// What makes versions differ, e.g. the image; a revert copies it.
    pub image: String,
}

#[derive(Clone, Debug)]
pub struct Job {
    pub namespace: String,
    pub id: String,
    pub job_type: String,
    pub group: String,
    pub tasks: Vec<String>,
    /// Oldest first; the last is the current version.
    pub versions: Vec<JobVersion>,
}

impl Job {
    pub fn current(&self) -> &JobVersion {
        self.versions.last().expect("a job has a version")
    }
}

#[derive(Clone, Debug)]
pub struct Deployment {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_version: u64,
    pub status: String,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Default)]
pub struct World {
    pub index: u64,
    /// The node of the agent remedy talks to.
    pub local_node: String,
    pub nodes: Vec<Node>,
    pub jobs: Vec<Job>,
    pub allocs: Vec<Alloc>,
    pub deployments: Vec<Deployment>,
    /// ACL tokens and the namespaces each may use (`*`: all). Empty: ACLs off.
    pub tokens: HashMap<String, Vec<String>>,
    /// Answered, in order, instead of the next requests.
    pub inject: VecDeque<(u16, String)>,
    /// Answered once instead of the first request whose line contains the needle.
    pub inject_on: Vec<(String, u16, String)>,
    /// Every request as "METHOD /path?query".
    pub requests: Vec<String>,
    /// How long each request waits before it is handled, and again before
    /// it is answered, as a busy Nomad server would.
    pub latency: Duration,
    next_id: u64,
}

impl World {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{:08x}-0000-4000-8000-{:012x}", self.next_id, self.next_id)
    }

    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    pub fn add_node(&mut self, name: &str) -> String {
        let id = self.id();
        self.nodes.push(Node {
            id: id.clone(),
            name: name.into(),
        });
        id
    }

    /// A job at version 0 (stable), with `tasks` in one group.
    pub fn add_job(&mut self, namespace: &str, id: &str, job_type: &str, tasks: &[&str]) {
        self.jobs.push(Job {
            namespace: namespace.into(),
            id: id.into(),
            job_type: job_type.into(),
            group: format!("{id}-group"),
            tasks: tasks.iter().map(|t| t.to_string()).collect(),
            versions: vec![JobVersion {
                version: 0,
                stable: true,
                image: "v0".into(),
            }],
        });
        self.bump();
    }

    /// A new version of a job, as `nomad job run` of a changed spec makes.
    pub fn deploy(&mut self, namespace: &str, id: &str, image: &str, stable: bool) -> u64 {
        let job = self.job_mut(namespace, id).expect("job exists");
        let version = job.current().version + 1;
        job.versions.push(JobVersion {
            version,
            stable,
            image: image.into(),
        });
        self.bump();
        version
    }

    pub fn job(&self, namespace: &str, id: &str) -> Option<&Job> {
        self.jobs
            .iter()
            .find(|j| j.namespace == namespace && j.id == id)
    }

    fn job_mut(&mut self, namespace: &str, id: &str) -> Option<&mut Job> {
        self.jobs
            .iter_mut()
            .find(|j| j.namespace == namespace && j.id == id)
    }

    /// A running allocation of the job's current version on `node_id`.
    pub fn place(&mut self, namespace: &str, job_id: &str, node_id: &str) -> String {
        let job = self.job(namespace, job_id).expect("job exists").clone();
        let id = self.id();
        let index = self.bump();
        self.allocs.push(Alloc {
            id: id.clone(),
            namespace: namespace.into(),
            job_id: job_id.into(),
            job_version: job.current().version,
            group: job.group.clone(),
            node_id: node_id.into(),
            desired: "run".into(),
            client: "running".into(),
            tasks: job
                .tasks
                .iter()
                .map(|t| {
                    (
                        t.clone(),
                        TaskState {
                            state: "running".into(),
                            failed: false,
                            restarts: 0,
                            oom_killed: false,
                        },
                    )
                })
                .collect(),
            healthy: Some(true),
            modify_index: index,
        });
        id
    }

    pub fn alloc(&self, id: &str) -> &Alloc {
        self.allocs
            .iter()
            .find(|a| a.id == id)
            .expect("alloc exists")
    }

    pub fn alloc_mut(&mut self, id: &str) -> &mut Alloc {
        self.allocs
            .iter_mut()
            .find(|a| a.id == id)
            .expect("alloc exists")
    }

    /// Requests that changed something (every method but GET).
    pub fn writes(&self) -> Vec<&str> {
        self.requests
            .iter()
            .filter(|r| !r.starts_with("GET "))
            .map(String::as_str)
            .collect()
    }

    fn node_name(&self, id: &str) -> String {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.name.clone())
            .unwrap_or_default()
    }

    fn alloc_json(&self, a: &Alloc) -> Value {
        let tasks: serde_json::Map<String, Value> = a
            .tasks
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    json!({"State": t.state, "Failed": t.failed, "Restarts": t.restarts,
                           "LastRestart": null, "Events": task_events(t)}),
                )
            })
            .collect();
        json!({
            "ID": a.id,
            "EvalID": "",
            "Name": format!("{}.{}[0]", a.job_id, a.group),
            "Namespace": a.namespace,
            "NodeID": a.node_id,
            "NodeName": self.node_name(&a.node_id),
            "JobID": a.job_id,
            "JobType": self.job(&a.namespace, &a.job_id).map(|j| j.job_type.clone()),
            "JobVersion": a.job_version,
            "TaskGroup": a.group,
            "DesiredStatus": a.desired,
            "DesiredDescription": "",
            "ClientStatus": a.client,
            "ClientDescription": "",
            "TaskStates": tasks,
            "DeploymentStatus": a.healthy.map(|h| json!({"Healthy": h, "Canary": false})),
            "CreateIndex": a.modify_index,
            "ModifyIndex": a.modify_index,
            "CreateTime": 1_700_000_000_000_000_000i64,
            "ModifyTime": 1_700_000_000_000_000_000i64 + a.modify_index as i64,
        })
    }

    fn job_json(job: &Job, version: &JobVersion) -> Value {
        json!({
            "ID": job.id,
            "Name": job.id,
            "Namespace": job.namespace,
            "Type": job.job_type,
            "Status": "running",
            "Stop": false,
            "Version": version.version,
            "Stable": version.stable,
            "SubmitTime": 1_700_000_000_000_000_000i64 + version.version as i64,
            "TaskGroups": [{
                "Name": job.group,
                "Count": 1,
                "Tasks": job.tasks.iter().map(|t| json!({"Name": t, "Driver": "raw_exec",
                    "Config": {"image": version.image}})).collect::<Vec<_>>(),
            }],
            "Meta": null,
        })
    }

    /// Replace the job's allocations with ones of its current version.
    fn reschedule(&mut self, namespace: &str, job_id: &str) {
        let nodes: Vec<String> = self
            .allocs
            .iter()
            .filter(|a| a.namespace == namespace && a.job_id == job_id && a.desired == "run")
            .map(|a| a.node_id.clone())
            .collect();
        for alloc in self
            .allocs
            .iter_mut()
            .filter(|a| a.namespace == namespace && a.job_id == job_id && a.desired == "run")
        {
            alloc.desired = "stop".into();
            alloc.client = "complete".into();
        }
        for node in nodes {
            self.place(namespace, job_id, &node);
        }
    }
}

pub struct NomadDouble {
    pub addr: SocketAddr,
    world: Arc<Mutex<World>>,
    changed: Arc<Notify>,
    _server: std::thread::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    world: Arc<Mutex<World>>,
    changed: Arc<Notify>,
}

impl NomadDouble {
    pub fn start() -> NomadDouble {
        let world = Arc::new(Mutex::new(World {
            index: 1,
            ..World::default()
        }));
        let changed = Arc::new(Notify::new());
        let shared = Shared {
            world: world.clone(),
            changed: changed.clone(),
        };
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let (addr, server) = super::serve_in_thread(app);
        NomadDouble {
            addr,
            world,
            changed,
            _server: server,
        }
    }

    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    /// Change the world and wake blocked queries, as a Raft write would.
    pub fn change(&self, edit: impl FnOnce(&mut World)) {
        {
            let mut world = self.world();
            edit(&mut world);
            world.bump();
        }
        self.changed.notify_waiters();
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [("Content-Type", "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn parse_wait(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap_or(Duration::from_secs(300))
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = shared.world.lock().unwrap().latency;
    tokio::time::sleep(latency).await;
    let response = answer(shared, method, uri, headers, body).await;
    tokio::time::sleep(latency).await;
    response
}

async fn answer(
    shared: Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .collect::<HashMap<String, String>>()
        })
        .unwrap_or_default();
    let namespace = query
        .get("namespace")
        .cloned()
        .unwrap_or_else(|| "default".into());
    // Blocking query: hold the answer until the index moves past the one given.
    if method == Method::GET
        && let Some(index) = query.get("index").and_then(|i| i.parse::<u64>().ok())
    {
        let wait = query
            .get("wait")
            .map_or(Duration::from_secs(300), |w| parse_wait(w));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = shared.changed.notified();
            if shared.world.lock().unwrap().index > index {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
    }
    let mut world = shared.world.lock().unwrap();
    world.requests.push(format!(
        "{method} {}",
        uri.path_and_query().map_or("", |p| p.as_str())
    ));
    if let Some((status, body)) = world.inject.pop_front() {
        return text(StatusCode::from_u16(status).unwrap(), body);
    }
    let line = world.requests.last().cloned().unwrap_or_default();
    if let Some(at) = world
        .inject_on
        .iter()
        .position(|(needle, ..)| line.contains(needle.as_str()))
    {
        let (_, status, body) = world.inject_on.remove(at);
        return text(StatusCode::from_u16(status).unwrap(), body);
    }
    if !world.tokens.is_empty() {
        let allowed = headers
            .get("X-Nomad-Token")
            .and_then(|t| t.to_str().ok())
            .and_then(|t| world.tokens.get(t));
        let permitted = allowed
            .is_some_and(|namespaces| namespaces.iter().any(|n| n == "*" || *n == namespace));
        if !permitted {
            return text(StatusCode::FORBIDDEN, "Permission denied");
        }
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("failed to decode request body: {e}"),
                );
            }
        }
    };
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let answer = route(&mut world, &method, &segments, &namespace, &query, &body);
    let index = world.index;
    drop(world);
    if method != Method::GET {
        shared.changed.notify_waiters();
    }
    let mut response = match answer {
        Ok(Some(value)) => axum::Json(value).into_response(),
        Ok(None) => StatusCode::OK.into_response(),
        Err((status, message)) => text(status, message),
    };
    response
        .headers_mut()
        .insert("X-Nomad-Index", HeaderValue::from(index));
    response
        .headers_mut()
        .insert("X-Nomad-KnownLeader", HeaderValue::from_static("true"));
    response
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

type Answer = Result<Option<Value>, (StatusCode, String)>;

fn not_found(what: &str) -> (StatusCode, String) {
    (StatusCode::NOT_FOUND, what.to_string())
}

fn route(
    world: &mut World,
    method: &Method,
    path: &[&str],
    namespace: &str,
    query: &HashMap<String, String>,
    body: &Value,
) -> Answer {
    let write = *method == Method::PUT || *method == Method::POST;
    let path: Vec<String> = path.iter().map(|s| decode(s)).collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match (method.as_str(), path.as_slice()) {
        ("GET", ["v1", "jobs"]) => Ok(Some(Value::Array(
            world
                .jobs
                .iter()
                .filter(|j| namespace == "*" || j.namespace == namespace)
                .map(|j| {
                    json!({"ID": j.id, "Name": j.id, "Namespace": j.namespace, "Type": j.job_type,
                           "Status": "running", "Stop": false, "Priority": 50,
                           "JobModifyIndex": world.index})
                })
                .collect(),
        ))),
        ("GET", ["v1", "job", id]) => {
            let job = world
                .job(namespace, id)
                .ok_or_else(|| not_found("job not found"))?;
            Ok(Some(World::job_json(job, job.current())))
        }
        ("GET", ["v1", "job", id, "versions"]) => {
            let job = world
                .job(namespace, id)
                .ok_or_else(|| not_found("job versions not found"))?;
            let versions: Vec<Value> = job
                .versions
                .iter()
                .rev()
                .map(|v| World::job_json(job, v))
                .collect();
            Ok(Some(json!({"Versions": versions, "Diffs": null})))
        }
        ("GET", ["v1", "job", id, "allocations"]) => {
            // Nomad answers an empty list for a job it does not know.
            let allocs: Vec<Value> = world
                .allocs
                .iter()
                .filter(|a| a.namespace == namespace && a.job_id == *id)
                .map(|a| world.alloc_json(a))
                .collect();
            Ok(Some(Value::Array(allocs)))
        }
        ("GET", ["v1", "job", id, "deployment"]) => Ok(Some(
            world
                .deployments
                .iter()
                .rev()
                .find(|d| d.namespace == namespace && d.job_id == *id)
                .map_or(Value::Null, |d| {
                    json!({"ID": d.id, "Namespace": d.namespace, "JobID": d.job_id,
                           "JobVersion": d.job_version, "Status": d.status,
                           "StatusDescription": format!("Deployment is {}", d.status)})
                }),
        )),
        (_, ["v1", "job", id, "evaluate"]) if write => {
            world
                .job(namespace, id)
                .ok_or_else(|| not_found("job not found"))?;
            if body["EvalOptions"]["ForceReschedule"] == json!(true) {
                let failed: Vec<String> = world
                    .allocs
                    .iter()
                    .filter(|a| a.job_id == *id && a.client == "failed" && a.desired == "run")
                    .map(|a| a.id.clone())
                    .collect();
                for alloc in failed {
                    let node = world.alloc(&alloc).node_id.clone();
                    world.alloc_mut(&alloc).desired = "stop".into();
                    world.place(namespace, id, &node);
                }
            }
            let eval = world.id();
            let index = world.bump();
            Ok(Some(
                json!({"EvalID": eval, "EvalCreateIndex": index, "JobModifyIndex": index, "Index": index}),
            ))
        }
        (_, ["v1", "job", id, "revert"]) if write => {
            let job = world
                .job(namespace, id)
                .ok_or_else(|| {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("job {id:?} not found"),
                    )
                })?
                .clone();
            let current = job.current().version;
            let to = body["JobVersion"].as_u64().unwrap_or(u64::MAX);
            if to == current {
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "can't revert to current version".into(),
                ));
            }
            let Some(target) = job.versions.iter().find(|v| v.version == to).cloned() else {
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("job {id:?} at version {to} not found"),
                ));
            };
            if let Some(prior) = body["EnforcePriorVersion"].as_u64()
                && prior != current
            {
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Current job has version {current}; enforcing version {prior}"),
                ));
            }
            let version = current + 1;
            world
                .job_mut(namespace, id)
                .unwrap()
                .versions
                .push(JobVersion {
                    version,
                    stable: false,
                    image: target.image,
                });
            world.reschedule(namespace, id);
            let deployment = world.id();
            world.deployments.push(Deployment {
                id: deployment,
                namespace: namespace.into(),
                job_id: id.to_string(),
                job_version: version,
                status: "running".into(),
            });
            let eval = world.id();
            let index = world.bump();
            Ok(Some(
                json!({"EvalID": eval, "EvalCreateIndex": index, "JobModifyIndex": index, "Index": index}),
            ))
        }
        ("GET", ["v1", "allocation", id]) => {
            let alloc = world
                .allocs
                .iter()
                .find(|a| a.id == *id && a.namespace == namespace)
                .ok_or_else(|| not_found("alloc not found"))?;
            Ok(Some(world.alloc_json(alloc)))
        }
        (_, ["v1", "allocation", id, "stop"]) if write => {
            let Some(alloc) = world
                .allocs
                .iter()
                .find(|a| a.id == *id && a.namespace == namespace)
                .cloned()
            else {
                return Err(not_found("alloc not found"));
            };
            let a = world.alloc_mut(&alloc.id);
            a.desired = "stop".into();
            a.client = "complete".into();
            world.place(&alloc.namespace, &alloc.job_id, &alloc.node_id);
            let eval = world.id();
            let index = world.bump();
            Ok(Some(
                json!({"EvalID": eval, "EvalCreateIndex": index, "Index": index}),
            ))
        }
        (_, ["v1", "client", "allocation", id, "restart"]) if write => {
            if !world.allocs.iter().any(|a| a.id == *id) {
                return Err(not_found(&format!("Unknown allocation \"{id}\"")));
            }
            let task = body["TaskName"].as_str().unwrap_or("").to_string();
            let all = body["AllTasks"].as_bool().unwrap_or(false) || task.is_empty();
            let index = world.bump();
            let alloc = world.alloc_mut(id);
            if alloc.client != "running" {
                return Err((StatusCode::INTERNAL_SERVER_ERROR, "Task not running".into()));
            }
            if !all && !alloc.tasks.contains_key(&task) {
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Could not find task {task:?}"),
                ));
            }
            for (name, state) in alloc.tasks.iter_mut() {
                if all || *name == task {
                    state.restarts += 1;
                    state.state = "running".into();
                    state.failed = false;
                }
            }
            alloc.modify_index = index;
            Ok(Some(json!({})))
        }
        ("GET", ["v1", "nodes"]) => Ok(Some(Value::Array(
            world
                .nodes
                .iter()
                .map(
                    |n| json!({"ID": n.id, "Name": n.name, "Datacenter": "dc1", "Status": "ready"}),
                )
                .collect(),
        ))),
        ("GET", ["v1", "node", id]) => {
            let node = world
                .nodes
                .iter()
                .find(|n| n.id == *id)
                .ok_or_else(|| not_found("node not found"))?;
            Ok(Some(
                json!({"ID": node.id, "Name": node.name, "Datacenter": "dc1", "Status": "ready"}),
            ))
        }
        ("GET", ["v1", "node", id, "allocations"]) => Ok(Some(Value::Array(
            world
                .allocs
                .iter()
                .filter(|a| a.node_id == *id)
                .map(|a| world.alloc_json(a))
                .collect(),
        ))),
        ("GET", ["v1", "agent", "self"]) => Ok(Some(json!({
            "config": {"Region": "global", "Datacenter": "dc1"},
            "member": {"Name": "agent"},
            "stats": {"client": {"node_id": world.local_node, "known_servers": "127.0.0.1:4647"}},
        }))),
        ("GET", ["v1", "agent", "health"]) => Ok(Some(json!({
            "client": {"ok": true, "message": "ok"},
            "server": {"ok": true, "message": "ok"},
        }))),
        // Nomad answers a client GC with an empty body.
        (_, ["v1", "client", "gc"]) if write => {
            let node = query.get("node_id").cloned().unwrap_or_default();
            if !node.is_empty() && !world.nodes.iter().any(|n| n.id == node) {
                return Err(not_found("Unknown node"));
            }
            world.bump();
            Ok(None)
        }
        _ => Err(not_found("404 page not found")),
    }
}

/// The events Nomad keeps for a task: an OOM kill is a `Terminated` event
/// whose details say `oom_killed`.
fn task_events(task: &TaskState) -> Value {
    if task.oom_killed {
        json!([{"Type": "Terminated", "ExitCode": 137,
                "Details": {"exit_code": "137", "signal": "0", "oom_killed": "true"},
                "DisplayMessage": "Exit Code: 137, Exit Message: \"OOM Killed\""}])
    } else {
        json!([])
    }
}
