//! A test double of the Kubernetes API server, served on 127.0.0.1. No API
//! server can run here, so this follows the Kubernetes API reference for
//! the endpoints remedy's `kube` capability uses:
//!
//! - apps/v1 deployments (get, list, and patch as JSON patch or merge
//!   patch) and replicasets (get, list); core/v1 pods (get, list, delete
//!   with `DeleteOptions.preconditions`) and events (list);
//!   metrics.k8s.io/v1beta1 pod metrics (get);
//! - `labelSelector` (equality) and `limit` on lists;
//! - one `resourceVersion` counter for every write, `generation` on spec
//!   changes, and 409 Conflict for a write that carries an old
//!   `resourceVersion` or fails its delete preconditions;
//! - the deployment controller's part: a changed pod template adopts the
//!   replica set with the same template or creates one, gives it the next
//!   `deployment.kubernetes.io/revision`, and (unless told to hold the
//!   rollout) moves the pods to it; a deleted pod is replaced;
//! - every error as a `Status` object: 401 without the bearer token, 403
//!   for a verb RBAC does not allow, 404, 409, 422, and 429 with
//!   `Retry-After` and `details.retryAfterSeconds` when injected.
//!
//! Watches are not served: the capability does not watch.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const TOKEN: &str = "remedy-test-token";
const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH: &str = "pod-template-hash";

/// The kinds served, as their resource names in URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Deployments,
    ReplicaSets,
    Pods,
    Events,
}

impl Kind {
    fn of(resource: &str) -> Option<Kind> {
        Some(match resource {
            "deployments" => Kind::Deployments,
            "replicasets" => Kind::ReplicaSets,
            "pods" => Kind::Pods,
            "events" => Kind::Events,
            _ => return None,
        })
    }

    fn resource(self) -> &'static str {
        match self {
            Kind::Deployments => "deployments",
            Kind::ReplicaSets => "replicasets",
            Kind::Pods => "pods",
            Kind::Events => "events",
        }
    }

    /// `deployments.apps`, as the API server names it in messages.
    fn qualified(self) -> &'static str {
        match self {
            Kind::Deployments => "deployments.apps",
            Kind::ReplicaSets => "replicasets.apps",
            Kind::Pods => "pods",
            Kind::Events => "events",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Kind::Deployments => "Deployment",
            Kind::ReplicaSets => "ReplicaSet",
            Kind::Pods => "Pod",
            Kind::Events => "Event",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Kind::Deployments | Kind::ReplicaSets => "apps/v1",
            Kind::Pods | Kind::Events => "v1",
        }
    }
}

/// An answer served instead of the next matching request.
#[derive(Clone, Debug)]
pub struct Injected {
    /// Served for the first request whose line ("PATCH /apis/...") contains it.
    pub needle: String,
    pub status: u16,
    pub body: String,
    pub retry_after: Option<u32>,
}

type Edit = Box<dyn FnOnce(&mut World) + Send>;

#[derive(Default)]
pub struct World {
    pub resource_version: u64,
    objects: BTreeMap<(Kind, String, String), Value>,
    /// The Role remedy's service account is bound to, and its namespace;
    /// every request outside it is 403, as RBAC answers. `None`: everything.
    pub role: Option<(String, Vec<Rule>)>,
    /// (verb, resource) pairs refused on top of the role: `("patch", "deployments")`.
    pub forbidden: Vec<(String, String)>,
    /// Answered once each, in order of match, instead of the real answer.
    pub inject: VecDeque<Injected>,
    /// Applied once, just before serving the first request whose line
    /// contains the needle: someone changed the cluster at that moment.
    pub before: Vec<(String, Edit)>,
    /// Every request as "METHOD /path?query".
    pub requests: Vec<String>,
    /// Bodies of the writes, in order.
    pub write_bodies: Vec<Value>,
    /// Working-set bytes per (namespace, pod, container), for pod metrics.
    pub memory: BTreeMap<(String, String, String), u64>,
    /// Leave rollouts unfinished: the new replica set gets no ready pods.
    pub hold_rollouts: bool,
    /// Every answer waits this long.
    pub delay: Duration,
    next_uid: u64,
}

/// One rule of an RBAC Role.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

/// The namespace and rules of the Role in the multi-document manifest at `path`.
pub fn role_in(path: &std::path::Path) -> (String, Vec<Rule>) {
    let text = std::fs::read_to_string(path).unwrap();
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let role = documents
        .into_iter()
        .find(|d| d["kind"] == "Role")
        .expect("a Role in the manifest");
    let namespace = role["metadata"]["namespace"].as_str().unwrap().to_string();
    (
        namespace,
        serde_json::from_value(role["rules"].clone()).unwrap(),
    )
}

impl World {
    /// Whether RBAC lets remedy `verb` `resource` of API group `group` in `namespace`.
    fn allows(&self, namespace: &str, group: &str, resource: &str, verb: &str) -> bool {
        let by_role = self.role.as_ref().is_none_or(|(bound, rules)| {
            bound == namespace
                && rules.iter().any(|r| {
                    r.api_groups.iter().any(|g| g == group)
                        && r.resources.iter().any(|x| x == resource)
                        && r.verbs.iter().any(|v| v == verb)
                })
        });
        by_role
            && !self
                .forbidden
                .iter()
                .any(|(v, r)| v == verb && r == resource)
    }

    fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!(
            "{:08x}-0000-4000-8000-{:012x}",
            self.next_uid, self.next_uid
        )
    }

    fn bump(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(kind, namespace.to_string(), name.to_string()))
    }

    pub fn list(&self, kind: Kind, namespace: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((k, ns, _), _)| *k == kind && ns == namespace)
            .map(|(_, v)| v)
            .collect()
    }

    /// The writes served, as request lines.
    pub fn writes(&self) -> Vec<&str> {
        self.requests
            .iter()
            .map(String::as_str)
            .filter(|r| !r.starts_with("GET "))
            .collect()
    }

    fn put(&mut self, kind: Kind, mut object: Value) -> Value {
        let rv = self.bump();
        object["metadata"]["resourceVersion"] = json!(rv);
        object["kind"] = json!(kind.kind());
        object["apiVersion"] = json!(kind.api_version());
        let key = (
            kind,
            name_of(&object, "namespace"),
            name_of(&object, "name"),
        );
        self.objects.insert(key, object.clone());
        object
    }

    fn meta(&mut self, namespace: &str, name: &str) -> Value {
        json!({
            "name": name,
            "namespace": namespace,
            "uid": self.uid(),
            "creationTimestamp": format!("2026-11-26T10:{:02}:00Z", self.next_uid % 60),
        })
    }

    /// A deployment with one replica set per `(revision, image)`, oldest
    /// first; the last is current and runs `replicas` ready pods.
    pub fn add_deployment(
        &mut self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        revisions: &[(u64, &str)],
        replicas: u32,
    ) {
        let mut meta = self.meta(namespace, name);
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        meta["labels"] = json!(labels);
        let (current, image) = *revisions.last().expect("a revision");
        meta["annotations"] = json!({ REVISION: current.to_string() });
        meta["generation"] = json!(1);
        let deployment = json!({
            "metadata": meta,
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app": name } },
                "template": template(name, image),
                "progressDeadlineSeconds": 600,
            },
            "status": {},
        });
        let deployment = self.put(Kind::Deployments, deployment);
        for (revision, image) in revisions {
            self.replica_set(&deployment, *revision, template(name, image));
        }
        self.settle(namespace, name);
    }

    fn replica_set(&mut self, deployment: &Value, revision: u64, mut template: Value) -> Value {
        let namespace = name_of(deployment, "namespace");
        let name = name_of(deployment, "name");
        let hash = template_hash(&template);
        template["metadata"]["labels"][HASH] = json!(hash);
        let mut meta = self.meta(&namespace, &format!("{name}-{hash}"));
        meta["labels"] = template["metadata"]["labels"].clone();
        meta["annotations"] = json!({ REVISION: revision.to_string() });
        meta["ownerReferences"] = json!([owner(Kind::Deployments, deployment)]);
        let mut selector = deployment["spec"]["selector"].clone();
        selector["matchLabels"][HASH] = json!(hash);
        self.put(
            Kind::ReplicaSets,
            json!({
                "metadata": meta,
                "spec": { "replicas": 0, "selector": selector, "template": template },
                "status": { "replicas": 0 },
            }),
        )
    }

    /// The controllers' work after a change to a deployment: the replica
    /// set of the current template gets the pods, the others none, and
    /// the status says so.
    fn settle(&mut self, namespace: &str, name: &str) {
        let Some(deployment) = self.get(Kind::Deployments, namespace, name).cloned() else {
            return;
        };
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
        let current_hash = template_hash(&deployment["spec"]["template"]);
        let owned: Vec<Value> = self
            .list(Kind::ReplicaSets, namespace)
            .into_iter()
            .filter(|rs| owned_by(rs, &deployment))
            .cloned()
            .collect();
        let mut ready = 0;
        for rs in owned {
            let is_current = rs["metadata"]["labels"][HASH] == json!(current_hash);
            let want = if is_current { replicas } else { 0 };
            let running = self.scale(&rs, want, is_current && self.hold_rollouts);
            if is_current {
                ready = running;
            }
        }
        let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(1);
        let mut deployment = deployment;
        let (progressing, available) = if self.hold_rollouts {
            ("ReplicaSetUpdated", 0)
        } else {
            ("NewReplicaSetAvailable", ready)
        };
        deployment["status"] = json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": replicas - available.min(replicas),
            "conditions": [
                { "type": "Available", "status": if available == replicas { "True" } else { "False" },
                  "reason": "MinimumReplicasAvailable", "message": "" },
                { "type": "Progressing", "status": "True", "reason": progressing, "message": "" },
            ],
        });
        self.put(Kind::Deployments, deployment);
    }

    /// Give `rs` `want` pods (ready unless `unready`); the pods it runs.
    fn scale(&mut self, rs: &Value, want: u64, unready: bool) -> u64 {
        let namespace = name_of(rs, "namespace");
        let pods: Vec<String> = self
            .list(Kind::Pods, &namespace)
            .into_iter()
            .filter(|p| owned_by(p, rs))
            .map(|p| name_of(p, "name"))
            .collect();
        let mut have = pods.len() as u64;
        for pod in pods.iter().skip(want as usize) {
            self.objects
                .remove(&(Kind::Pods, namespace.clone(), pod.clone()));
            have -= 1;
        }
        while have < want {
            self.add_pod(rs, !unready);
            have += 1;
        }
        let mut rs = rs.clone();
        rs["spec"]["replicas"] = json!(want);
        let ready = if unready { 0 } else { want };
        rs["status"] =
            json!({ "replicas": want, "readyReplicas": ready, "availableReplicas": ready });
        self.put(Kind::ReplicaSets, rs);
        want
    }

    fn add_pod(&mut self, rs: &Value, ready: bool) -> Value {
        let namespace = name_of(rs, "namespace");
        self.next_uid += 1;
        let name = format!(
            "{}-{:05x}",
            name_of(rs, "name"),
            self.next_uid * 7919 % 0xfffff
        );
        let template = &rs["spec"]["template"];
        let mut meta = self.meta(&namespace, &name);
        meta["labels"] = template["metadata"]["labels"].clone();
        meta["ownerReferences"] = json!([owner(Kind::ReplicaSets, rs)]);
        let statuses: Vec<Value> = template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                json!({
                    "name": c["name"], "image": c["image"], "imageID": "", "ready": ready,
                    "restartCount": 0,
                    "state": if ready { json!({ "running": { "startedAt": "2026-11-26T10:00:00Z" } }) }
                             else { json!({ "waiting": { "reason": "CrashLoopBackOff" } }) },
                })
            })
            .collect();
        let mut spec = template["spec"].clone();
        spec["nodeName"] = json!("node-1");
        self.put(
            Kind::Pods,
            json!({
                "metadata": meta,
                "spec": spec,
                "status": {
                    "phase": "Running",
                    "startTime": "2026-11-26T10:00:00Z",
                    "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
                    "containerStatuses": statuses,
                },
            }),
        )
    }

    /// Delete a pod; its replica set starts a replacement, as its controller would.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        let Some(pod) = self
            .objects
            .remove(&(Kind::Pods, namespace.to_string(), name.to_string()))
        else {
            return;
        };
        self.bump();
        let rs = pod["metadata"]["ownerReferences"][0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(rs) = self.get(Kind::ReplicaSets, namespace, &rs).cloned() {
            let want = rs["spec"]["replicas"].as_u64().unwrap_or(0);
            let hold = self.hold_rollouts;
            self.scale(&rs, want, hold);
        }
    }

    /// Change a pod as the kubelet would report it (a restart, an OOM kill).
    pub fn edit_pod(&mut self, namespace: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        let mut pod = self
            .get(Kind::Pods, namespace, name)
            .cloned()
            .expect("pod exists");
        edit(&mut pod);
        self.put(Kind::Pods, pod);
    }

    /// A new deploy of `image`, as `kubectl set image` would make it.
    pub fn deploy(&mut self, namespace: &str, name: &str, image: &str) {
        let patch = json!({ "spec": { "template": template(name, image) } });
        let mut deployment = self
            .get(Kind::Deployments, namespace, name)
            .cloned()
            .expect("deployment exists");
        json_patch::merge(&mut deployment, &patch);
        self.update_deployment(deployment);
    }

    /// Store a deployment changed by a write, and run the controller.
    pub fn update_deployment(&mut self, mut deployment: Value) -> Value {
        let namespace = name_of(&deployment, "namespace");
        let name = name_of(&deployment, "name");
        let before = self
            .get(Kind::Deployments, &namespace, &name)
            .cloned()
            .unwrap_or(Value::Null);
        if before["spec"] != deployment["spec"] {
            let generation = before["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            deployment["metadata"]["generation"] = json!(generation);
        }
        if before["spec"]["template"] != deployment["spec"]["template"] {
            self.roll_out(&mut deployment);
        }
        self.put(Kind::Deployments, deployment);
        self.settle(&namespace, &name);
        self.get(Kind::Deployments, &namespace, &name)
            .cloned()
            .unwrap()
    }

    /// The deployment controller on a new template: adopt the replica set
    /// that has it, or make one, at the next revision.
    fn roll_out(&mut self, deployment: &mut Value) {
        let namespace = name_of(deployment, "namespace");
        let owned: Vec<Value> = self
            .list(Kind::ReplicaSets, &namespace)
            .into_iter()
            .filter(|rs| owned_by(rs, deployment))
            .cloned()
            .collect();
        let next = owned.iter().map(revision_of).max().unwrap_or(0) + 1;
        let template = deployment["spec"]["template"].clone();
        let hash = template_hash(&template);
        match owned
            .into_iter()
            .find(|rs| rs["metadata"]["labels"][HASH] == json!(hash))
        {
            Some(mut rs) => {
                rs["metadata"]["annotations"][REVISION] = json!(next.to_string());
                self.put(Kind::ReplicaSets, rs);
            }
            None => {
                self.replica_set(deployment, next, template);
            }
        }
        deployment["metadata"]["annotations"][REVISION] = json!(next.to_string());
    }

    pub fn add_event(&mut self, namespace: &str, about: &Value, reason: &str, message: &str) {
        let meta = self.meta(
            namespace,
            &format!("{}.{:x}", name_of(about, "name"), self.next_uid),
        );
        self.put(
            Kind::Events,
            json!({
                "metadata": meta,
                "involvedObject": {
                    "kind": about["kind"], "name": about["metadata"]["name"],
                    "namespace": namespace, "uid": about["metadata"]["uid"],
                },
                "type": "Warning", "reason": reason, "message": message, "count": 3,
                "lastTimestamp": "2026-11-26T10:30:00Z",
            }),
        );
    }
}

/// The pod template of deployment `app` running `image`, with a memory limit.
fn template(app: &str, image: &str) -> Value {
    json!({
        "metadata": { "labels": { "app": app } },
        "spec": { "containers": [{
            "name": "app", "image": image,
            "resources": { "limits": { "memory": "512Mi" } },
        }] },
    })
}

/// A stable hash of a template without its own hash label, as the
/// controller computes `pod-template-hash`.
fn template_hash(template: &Value) -> String {
    let mut template = template.clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH);
    }
    let text = template.to_string();
    let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        fnv = (fnv ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:010x}", fnv & 0xff_ffff_ffff)
}

fn name_of(object: &Value, field: &str) -> String {
    object["metadata"][field]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn revision_of(object: &Value) -> u64 {
    object["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn owner(kind: Kind, object: &Value) -> Value {
    json!({
        "apiVersion": kind.api_version(), "kind": kind.kind(),
        "name": object["metadata"]["name"], "uid": object["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    })
}

fn owned_by(object: &Value, owner: &Value) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["controller"] == json!(true) && o["uid"] == owner["metadata"]["uid"])
}

pub struct KubeDouble {
    pub addr: SocketAddr,
    world: Arc<Mutex<World>>,
    _server: std::thread::JoinHandle<()>,
}

impl KubeDouble {
    pub fn start() -> KubeDouble {
        let world = Arc::new(Mutex::new(World::default()));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(world.clone());
        let (addr, server) = super::serve_in_thread(app);
        KubeDouble {
            addr,
            world,
            _server: server,
        }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    /// A kubeconfig for this server with the token it accepts, as kubectl writes one.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters:\n- name: test\n  cluster:\n    server: http://{}\n\
             users:\n- name: remedy\n  user:\n    token: {TOKEN}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: remedy\n    namespace: default\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A `Status` object, as the API server answers every error.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

fn answer(code: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [("Content-Type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

type Answer = Result<Value, (u16, Value)>;

/// A refusal: its HTTP code and the `Status` object that says why.
fn refusal(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (code, status(code, reason, message))
}

fn no_such_path() -> (u16, Value) {
    refusal(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn method_not_allowed() -> (u16, Value) {
    refusal(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

fn not_found(kind: Kind, name: &str) -> (u16, Value) {
    let message = format!("{} \"{name}\" not found", kind.qualified());
    refusal(404, "NotFound", &message)
}

fn conflict(kind: Kind, name: &str, why: &str) -> (u16, Value) {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": {why}",
        kind.qualified()
    );
    refusal(409, "Conflict", &message)
}

async fn handle(
    State(world): State<Arc<Mutex<World>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = world.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let mut world = world.lock().unwrap();
    let line = format!(
        "{method} {}",
        uri.path_and_query().map_or("", |p| p.as_str())
    );
    world.requests.push(line.clone());
    if let Some(at) = world
        .before
        .iter()
        .position(|(needle, _)| line.contains(needle.as_str()))
    {
        let (_, edit) = world.before.remove(at);
        edit(&mut world);
    }
    if let Some(at) = world
        .inject
        .iter()
        .position(|i| line.contains(i.needle.as_str()))
    {
        let injected = world.inject.remove(at).unwrap();
        let mut response = (
            StatusCode::from_u16(injected.status).unwrap(),
            [("Content-Type", "application/json")],
            injected.body,
        )
            .into_response();
        if let Some(secs) = injected.retry_after {
            response
                .headers_mut()
                .insert("Retry-After", secs.to_string().parse().unwrap());
        }
        return response;
    }
    let bearer = headers.get("Authorization").and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {TOKEN}")) {
        return answer(401, status(401, "Unauthorized", "Unauthorized"));
    }
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let result = route(&mut world, &method, &segments, &query, &headers, &body);
    if method != Method::GET && !body.is_empty() {
        let sent = serde_json::from_slice(&body).unwrap_or(Value::Null);
        world.write_bodies.push(sent);
    }
    match result {
        Ok(value) => answer(200, value),
        Err((code, value)) => answer(code, value),
    }
}

fn route(
    world: &mut World,
    method: &Method,
    segments: &[&str],
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let (resource, namespace, name) = match segments {
        [
            "apis",
            "metrics.k8s.io",
            "v1beta1",
            "namespaces",
            ns,
            "pods",
            name,
        ] => {
            if !world.allows(ns, "metrics.k8s.io", "pods", "get") {
                return Err(forbidden(
                    "pods.metrics.k8s.io",
                    name,
                    "get",
                    "pods",
                    "metrics.k8s.io",
                    ns,
                ));
            }
            return pod_metrics(world, ns, name);
        }
        ["apis", "apps", "v1", "namespaces", ns, resource] => (*resource, *ns, None),
        ["apis", "apps", "v1", "namespaces", ns, resource, name] => (*resource, *ns, Some(*name)),
        ["api", "v1", "namespaces", ns, resource] => (*resource, *ns, None),
        ["api", "v1", "namespaces", ns, resource, name] => (*resource, *ns, Some(*name)),
        _ => {
            return Err(no_such_path());
        }
    };
    let Some(kind) = Kind::of(resource) else {
        return Err(no_such_path());
    };
    let verb = match (method.as_str(), name) {
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("PATCH", Some(_)) => "patch",
        ("DELETE", Some(_)) => "delete",
        _ => {
            return Err(method_not_allowed());
        }
    };
    let group = kind
        .api_version()
        .split_once('/')
        .map_or("", |(group, _)| group);
    if !world.allows(namespace, group, kind.resource(), verb) {
        return Err(forbidden(
            kind.qualified(),
            name.unwrap_or_default(),
            verb,
            kind.resource(),
            group,
            namespace,
        ));
    }
    match (verb, name) {
        ("list", _) => Ok(list(world, kind, namespace, query)),
        ("get", Some(name)) => world
            .get(kind, namespace, name)
            .cloned()
            .ok_or_else(|| not_found(kind, name)),
        ("patch", Some(name)) if kind == Kind::Deployments => {
            let content_type = headers
                .get("Content-Type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            patch_deployment(world, namespace, name, content_type, body)
        }
        ("delete", Some(name)) if kind == Kind::Pods => delete_pod(world, namespace, name, body),
        _ => Err(method_not_allowed()),
    }
}

fn list(world: &World, kind: Kind, namespace: &str, query: &BTreeMap<String, String>) -> Value {
    let selector: Vec<(String, String)> = query
        .get("labelSelector")
        .map(|s| {
            s.split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let limit = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let items: Vec<&Value> = world
        .list(kind, namespace)
        .into_iter()
        .filter(|o| {
            selector
                .iter()
                .all(|(k, v)| o["metadata"]["labels"][k].as_str() == Some(v))
        })
        .take(limit)
        .collect();
    json!({
        "kind": format!("{}List", kind.kind()),
        "apiVersion": kind.api_version(),
        "metadata": { "resourceVersion": world.resource_version.to_string() },
        "items": items,
    })
}

/// RBAC's refusal, in the API server's words.
fn forbidden(
    qualified: &str,
    name: &str,
    verb: &str,
    resource: &str,
    group: &str,
    namespace: &str,
) -> (u16, Value) {
    let target = if name.is_empty() {
        format!("{qualified} is forbidden")
    } else {
        format!("{qualified} \"{name}\" is forbidden")
    };
    let message = format!(
        "{target}: User \"system:serviceaccount:remedy:remedy\" cannot {verb} resource \"{resource}\" in API group \"{group}\" in the namespace \"{namespace}\""
    );
    refusal(403, "Forbidden", &message)
}

fn invalid(message: String) -> (u16, Value) {
    refusal(422, "Invalid", &message)
}

fn patch_deployment(
    world: &mut World,
    namespace: &str,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> Answer {
    let kind = Kind::Deployments;
    let current = world
        .get(kind, namespace, name)
        .cloned()
        .ok_or_else(|| not_found(kind, name))?;
    let mut patched = current.clone();
    let bad = |e: String| refusal(400, "BadRequest", &e);
    match content_type {
        "application/json-patch+json" => {
            let patch: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
            json_patch::patch(&mut patched, &patch).map_err(|e| invalid(e.to_string()))?;
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
            json_patch::merge(&mut patched, &patch);
        }
        other => {
            return Err(refusal(
                415,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {other}"
                ),
            ));
        }
    }
    // Optimistic concurrency: a patch that sets resourceVersion is a
    // precondition on it.
    let sent = &patched["metadata"]["resourceVersion"];
    if sent != &current["metadata"]["resourceVersion"] {
        return Err(conflict(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    if patched["metadata"]["uid"] != current["metadata"]["uid"]
        || patched["metadata"]["name"] != current["metadata"]["name"]
    {
        return Err(invalid(format!(
            "Deployment.apps \"{name}\" is invalid: metadata: field is immutable"
        )));
    }
    Ok(world.update_deployment(patched))
}

fn delete_pod(world: &mut World, namespace: &str, name: &str, body: &[u8]) -> Answer {
    let kind = Kind::Pods;
    let pod = world
        .get(kind, namespace, name)
        .cloned()
        .ok_or_else(|| not_found(kind, name))?;
    let options: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| refusal(400, "BadRequest", &e.to_string()))?
    };
    let preconditions = &options["preconditions"];
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        let want = &preconditions[field];
        if !want.is_null() && want != &pod["metadata"][field] {
            let why = format!(
                "Precondition failed: {label} in precondition: {}, {label} in object meta: {}",
                want.as_str().unwrap_or_default(),
                pod["metadata"][field].as_str().unwrap_or_default()
            );
            return Err(conflict(kind, name, &why));
        }
    }
    world.remove_pod(namespace, name);
    Ok(pod)
}

fn pod_metrics(world: &World, namespace: &str, name: &str) -> Answer {
    if world.get(Kind::Pods, namespace, name).is_none() {
        let message = format!("pods.metrics.k8s.io \"{name}\" not found");
        return Err(refusal(404, "NotFound", &message));
    }
    let containers: Vec<Value> = world
        .memory
        .iter()
        .filter(|((ns, pod, _), _)| ns == namespace && pod == name)
        .map(|((_, _, container), bytes)| {
            json!({ "name": container, "usage": { "cpu": "250m", "memory": format!("{}Ki", bytes / 1024) } })
        })
        .collect();
    Ok(json!({
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": { "name": name, "namespace": namespace },
        "timestamp": "2026-11-26T10:30:00Z",
        "window": "15s",
        "containers": containers,
    }))
}
