//! The Kubernetes capability and the k8s-rollback and k8s-pod-restart
//! plugins, end to end through the `remedy` binary, against the Kubernetes
//! API double (no API server can run here; `common::kube_double` follows
//! the API reference's shapes and semantics). The last test reads a real
//! cluster when asked to.

mod common;

use common::kube_double::{Injected, Kind, KubeDouble, status};
use common::{OFFLINE_SERVICES, run_json};
use remedy::contract::{Action, ActionStatus};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MANAGED: (&str, &str) = ("remedy.io/managed", "true");

const ROLLBACK_GRANTS: &str = r#"kube = ["read", "rollback"]
kube_namespaces = ["shop"]
kube_names = ["api", "web"]
kube_labels = ["remedy.io/managed=true"]
prometheus = ["read"]
prometheus_metrics = ["http_requests_total"]"#;

const RESTART_GRANTS: &str = r#"kube = ["read", "delete-pod"]
kube_namespaces = ["shop"]
kube_names = ["api"]"#;

struct Cluster {
    kube: KubeDouble,
    dir: tempfile::TempDir,
    /// The Prometheus plugins query, when the test runs one.
    prometheus: Option<String>,
}

impl Cluster {
    /// Deployment shop/api at revision 3 (image api:v3) with replica sets
    /// for revisions 2 and 3 and three pods; shop/web unmanaged; prod/api.
    fn new() -> Cluster {
        let kube = KubeDouble::start();
        {
            let mut w = kube.world();
            w.add_deployment(
                "shop",
                "api",
                &[MANAGED],
                &[(2, "api:v2"), (3, "api:v3")],
                3,
            );
            w.add_deployment("shop", "web", &[], &[(1, "web:v1"), (2, "web:v2")], 1);
            w.add_deployment(
                "prod",
                "api",
                &[MANAGED],
                &[(1, "api:v1"), (2, "api:v2")],
                1,
            );
            w.requests.clear();
            // remedy's requests must all fit the least-privilege Role it ships.
            w.role = Some(common::kube_double::role_in(&example("rbac.yaml")));
        }
        Cluster {
            kube,
            dir: tempfile::tempdir().unwrap(),
            prometheus: None,
        }
    }

    fn config(&self, timeout: &str) -> PathBuf {
        let path = self.dir.path().join("remedy.toml");
        let kubeconfig = self.kube.kubeconfig(self.dir.path());
        let prometheus = self
            .prometheus
            .as_ref()
            .map(|url| format!("[prometheus]\nurl = \"{url}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            &path,
            format!(
                r#"{OFFLINE_SERVICES}
{prometheus}
[kubernetes]
kubeconfig = "{}"
timeout = "{timeout}"

[[plugin]]
name = "k8s-rollback"
source = "builtin:k8s-rollback"
max_rounds = 10
params = {{ confirm_every = "1s", confirm_in_a_row = "1", confirm_within = "4s" }}
[plugin.grants]
{ROLLBACK_GRANTS}

[[plugin]]
name = "k8s-pod-restart"
source = "builtin:k8s-pod-restart"
max_rounds = 10
params = {{ confirm_every = "1s", confirm_in_a_row = "2", confirm_within = "6s" }}
[plugin.grants]
{RESTART_GRANTS}
"#,
                kubeconfig.display()
            ),
        )
        .unwrap();
        path
    }

    fn run(&self, plugin: &str, args: &[&str]) -> (i32, Value) {
        self.run_within("10s", plugin, args)
    }

    /// The same, with `timeout` for each exchange with the API server.
    fn run_within(&self, timeout: &str, plugin: &str, args: &[&str]) -> (i32, Value) {
        let state = self.dir.path().join("state");
        run_json(&state, &self.config(timeout), plugin, args)
    }

    /// `remedy run k8s-rollback ARGS` for deployment shop/api.
    fn rollback(&self, args: &[&str]) -> (i32, Value) {
        self.rollback_within("10s", args)
    }

    fn rollback_within(&self, timeout: &str, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--label", "namespace=shop", "--label", "deployment=api"];
        all.extend_from_slice(args);
        self.run_within(timeout, "k8s-rollback", &all)
    }

    /// The first pod in shop, made to use `bytes` of memory: its name.
    fn heavy_pod(&self, bytes: u64) -> String {
        let pod = self.pods("shop")[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let key = ("shop".to_string(), pod.clone(), "app".to_string());
        self.kube.world().memory.insert(key, bytes);
        pod
    }

    /// `remedy run k8s-pod-restart MODE` for `pod` in shop.
    fn pod_restart(&self, mode: &str, pod: &str) -> (i32, Value) {
        let pod = format!("pod={pod}");
        self.run(
            "k8s-pod-restart",
            &[mode, "--label", "namespace=shop", "--label", &pod],
        )
    }

    fn writes(&self) -> Vec<String> {
        self.kube
            .world()
            .writes()
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn object(&self, kind: Kind, namespace: &str, name: &str) -> Value {
        self.kube
            .world()
            .get(kind, namespace, name)
            .cloned()
            .unwrap()
    }

    fn image(&self, namespace: &str, name: &str) -> String {
        let deployment = self.object(Kind::Deployments, namespace, name);
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn pods(&self, namespace: &str) -> Vec<Value> {
        self.kube
            .world()
            .list(Kind::Pods, namespace)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The replica set of shop/api that runs `image`.
    fn set_running(&self, image: &str) -> Value {
        self.kube
            .world()
            .list(Kind::ReplicaSets, "shop")
            .into_iter()
            .find(|rs| rs["spec"]["template"]["spec"]["containers"][0]["image"] == json!(image))
            .cloned()
            .unwrap()
    }

    /// The first action of the run `run` printed, as recorded.
    fn planned(&self, run: &Value) -> Action {
        let store = remedy::store::Store::open(&self.dir.path().join("state")).unwrap();
        store.get_run(run["id"].as_str().unwrap()).unwrap().actions[0]
            .action
            .clone()
    }

    /// Execute `action` by hand under `grants`, as the executor would in a
    /// later run: its status and detail.
    fn execute(&self, action: Action, grants: &str) -> (ActionStatus, String) {
        let store = remedy::store::Store::open(&self.dir.path().join("state")).unwrap();
        let run_id = common::running_run(&store, &format!("by-hand-{}", uuid()));
        let grants: remedy::caps::Grants = toml::from_str(grants).unwrap();
        let settings = remedy::caps::kube::KubeSettings {
            kubeconfig: Some(self.kube.kubeconfig(self.dir.path())),
            timeout: Some("5s".into()),
            ..Default::default()
        };
        let env = common::offline_env().with_kube(settings);
        let kinds: Vec<String> = [
            "k8s-rollback-deployment",
            "k8s-restart-deployment",
            "k8s-delete-pod",
        ]
        .map(String::from)
        .to_vec();
        let executor = remedy::executor::Executor {
            store: &store,
            grants: &grants,
            env: &env,
            declared_kinds: &kinds,
            approved: None,
        };
        let results = executor.execute(&run_id, 1, &[action], false).unwrap();
        (results[0].status, results[0].detail.clone())
    }
}

fn example(file: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/kubernetes")
        .join(file)
}

fn uuid() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn reason(run: &Value) -> String {
    run["reason"].as_str().unwrap_or_default().to_string()
}

fn details(run: &Value) -> String {
    run["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{}: {}",
                a["status"],
                a["detail"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn rollback_goes_to_revision_2s_template_and_dry_run_shows_exactly_that() {
    let cluster = Cluster::new();
    let v2 = cluster.set_running("api:v2");
    {
        let mut w = cluster.kube.world();
        let pod = w.list(Kind::Pods, "shop")[0].clone();
        w.add_event(
            "shop",
            &pod,
            "BackOff",
            "Back-off restarting failed container app",
        );
    }

    let (code, dry) = cluster.rollback(&["--dry-run"]);
    assert_eq!(code, 0, "{dry:#}");
    let planned = &dry["actions"][0];
    assert_eq!(planned["status"], "planned", "{dry:#}");
    assert_eq!(planned["action"]["deployment"]["revision"], 3, "{dry:#}");
    assert_eq!(planned["action"]["to_revision"], 2, "{dry:#}");
    assert_eq!(
        planned["action"]["to_uid"], v2["metadata"]["uid"],
        "{dry:#}"
    );
    let would = planned["detail"].as_str().unwrap();
    assert!(
        would.contains("would roll back deployment shop/api from revision 3 to revision 2"),
        "{would}"
    );
    let checks = dry["rounds"].to_string();
    assert!(
        checks.contains("BackOff Back-off restarting failed container"),
        "{dry:#}"
    );
    assert!(cluster.writes().is_empty(), "{:?}", cluster.writes());

    let (code, run) = cluster.rollback(&["--apply"]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(
        run["actions"][0]["action"], dry["actions"][0]["action"],
        "apply ran exactly what the dry-run showed"
    );
    assert_eq!(
        cluster.writes(),
        vec!["PATCH /apis/apps/v1/namespaces/shop/deployments/api?".to_string()]
    );
    let patch = cluster.kube.world().write_bodies[0].clone();
    let template = patch
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["path"] == "/spec/template")
        .unwrap()["value"]
        .clone();
    let mut want = v2["spec"]["template"].clone();
    want["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    assert_eq!(
        template, want,
        "the patch carries revision 2's template exactly"
    );
    assert_eq!(cluster.image("shop", "api"), "api:v2");
    let deployment = cluster.object(Kind::Deployments, "shop", "api");
    assert_eq!(
        deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "4",
        "the controller gives the adopted template the next revision"
    );
    let adopted = cluster.set_running("api:v2");
    assert_eq!(adopted["metadata"]["uid"], v2["metadata"]["uid"]);
    assert_eq!(adopted["status"]["readyReplicas"], 3);

    // The same alert again inside min_interval: no second rollback.
    let (code, again) = cluster.rollback(&["--apply"]);
    assert_eq!(code, 4, "{again:#}");
    assert_eq!(again["status"], "escalated", "{again:#}");
    assert!(reason(&again).contains("min_interval"), "{again:#}");
    assert_eq!(cluster.writes().len(), 1, "{:?}", cluster.writes());
}

#[test]
fn a_deployment_changed_since_the_plan_is_stale_and_nothing_is_written() {
    let cluster = Cluster::new();
    let (_, dry) = cluster.rollback(&["--dry-run"]);
    let action = cluster.planned(&dry);

    // A deploy after the plan: the host sees revision 4 and writes nothing.
    cluster.kube.world().deploy("shop", "api", "api:v4-hotfix");
    cluster.kube.world().requests.clear();
    let (status, detail) = cluster.execute(action.clone(), ROLLBACK_GRANTS);
    assert_eq!(status, ActionStatus::Stale, "{detail}");
    assert!(detail.contains("revision 4 now, not 3"), "{detail}");
    assert!(cluster.writes().is_empty(), "{:?}", cluster.writes());
    assert_eq!(cluster.image("shop", "api"), "api:v4-hotfix");

    // Changed between the host's check and its write (a scale by hand):
    // the API server refuses the stale resourceVersion with 409.
    let cluster = Cluster::new();
    let (_, dry) = cluster.rollback(&["--dry-run"]);
    let action = cluster.planned(&dry);
    cluster.kube.world().before.push((
        "PATCH".into(),
        Box::new(|w| {
            let mut d = w.get(Kind::Deployments, "shop", "api").cloned().unwrap();
            d["spec"]["replicas"] = json!(5);
            w.update_deployment(d);
        }),
    ));
    let (status, detail) = cluster.execute(action, ROLLBACK_GRANTS);
    assert_eq!(status, ActionStatus::Stale, "{detail}");
    assert!(detail.contains("409 Conflict"), "{detail}");
    assert!(detail.contains("the object has been modified"), "{detail}");
    assert_eq!(
        cluster.image("shop", "api"),
        "api:v3",
        "nothing was written"
    );
}

#[test]
fn max_retries_caps_the_rollbacks_of_one_deployment_a_day() {
    let cluster = Cluster::new();
    let rollback = || {
        cluster.rollback(&[
            "--apply",
            "--param",
            "min_interval=0s",
            "--param",
            "max_retries=1",
        ])
    };
    let (code, first) = rollback();
    assert_eq!(code, 0, "{first:#}");
    assert_eq!(cluster.image("shop", "api"), "api:v2");
    // Revision 4 (api:v2) still fails: back to revision 3's api:v3.
    let (code, second) = rollback();
    assert_eq!(code, 0, "{second:#}");
    assert_eq!(second["actions"][0]["action"]["deployment"]["revision"], 4);
    assert_eq!(second["actions"][0]["action"]["to_revision"], 3);
    assert_eq!(cluster.image("shop", "api"), "api:v3");
    let (code, third) = rollback();
    assert_eq!(code, 4, "{third:#}");
    assert!(
        reason(&third).contains("rolled back 2 times in the last day (max_retries = 1)"),
        "{third:#}"
    );
    assert_eq!(cluster.writes().len(), 2, "{:?}", cluster.writes());
}

#[test]
fn a_rollout_in_progress_means_no_action() {
    let cluster = Cluster::new();
    {
        let mut w = cluster.kube.world();
        w.hold_rollouts = true;
        w.deploy("shop", "api", "api:v4");
        w.requests.clear();
    }
    let (code, run) = cluster.rollback(&["--apply"]);
    assert_eq!(code, 4, "{run:#}");
    assert!(reason(&run).contains("in progress"), "{run:#}");
    assert!(cluster.writes().is_empty(), "{:?}", cluster.writes());
}

#[test]
fn a_rollback_whose_rollout_never_completes_pages_at_the_deadline() {
    let cluster = Cluster::new();
    let started = Instant::now();
    cluster
        .kube
        .world()
        .before
        .push(("PATCH".into(), Box::new(|w| w.hold_rollouts = true)));
    let (code, run) = cluster.rollback(&["--apply"]);
    assert_eq!(code, 4, "{run:#}");
    assert_eq!(run["actions"][0]["status"], "done", "{run:#}");
    assert!(reason(&run).contains("did not hold"), "{run:#}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(cluster.writes().len(), 1);
}

#[test]
fn pod_restart_deletes_exactly_the_planned_pod_and_confirms_the_replacement() {
    let cluster = Cluster::new();
    let pods = cluster.pods("shop");
    let api_pods: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "api")
        .collect();
    let heavy = api_pods[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let heavy_uid = api_pods[0]["metadata"]["uid"].clone();
    {
        let mut w = cluster.kube.world();
        w.memory
            .insert(("shop".into(), heavy.clone(), "app".into()), 500 << 20);
        for other in &api_pods[1..] {
            let name = other["metadata"]["name"].as_str().unwrap().to_string();
            w.memory
                .insert(("shop".into(), name, "app".into()), 200 << 20);
        }
    }
    let (code, dry) = cluster.pod_restart("--dry-run", &heavy);
    assert_eq!(code, 0, "{dry:#}");
    assert_eq!(dry["actions"][0]["action"]["uid"], heavy_uid, "{dry:#}");
    assert!(dry["rounds"].to_string().contains("97.7 %"), "{dry:#}");
    assert!(cluster.writes().is_empty());

    let (code, run) = cluster.pod_restart("--apply", &heavy);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["actions"][0]["action"], dry["actions"][0]["action"]);
    assert_eq!(
        cluster.writes(),
        vec![format!("DELETE /api/v1/namespaces/shop/pods/{heavy}?")]
    );
    let sent = cluster.kube.world().write_bodies[0].clone();
    assert_eq!(sent["preconditions"]["uid"], heavy_uid);
    let after = cluster.pods("shop");
    assert!(after.iter().all(|p| p["metadata"]["uid"] != heavy_uid));
    for other in &api_pods[1..] {
        assert!(
            after
                .iter()
                .any(|p| p["metadata"]["uid"] == other["metadata"]["uid"])
        );
    }
    let api_after = after
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "api")
        .count();
    assert_eq!(api_after, 3, "the replica set replaced it");
}

#[test]
fn a_pod_replaced_or_changed_since_the_plan_is_stale() {
    let cluster = Cluster::new();
    let heavy = cluster.heavy_pod(510 << 20);
    let (_, dry) = cluster.pod_restart("--dry-run", &heavy);
    let action = cluster.planned(&dry);

    // Same name, another pod (a new uid): nothing is deleted.
    cluster.kube.world().edit_pod("shop", &heavy, |p| {
        p["metadata"]["uid"] = json!("another-pod")
    });
    let (status, detail) = cluster.execute(action.clone(), RESTART_GRANTS);
    assert_eq!(status, ActionStatus::Stale, "{detail}");
    assert!(detail.contains("replaced since the plan"), "{detail}");

    // Changed between the host's check and the delete: the preconditions
    // make the API server refuse.
    let cluster = Cluster::new();
    let heavy = cluster.heavy_pod(510 << 20);
    let (_, dry) = cluster.pod_restart("--dry-run", &heavy);
    let action = cluster.planned(&dry);
    let name = heavy.clone();
    cluster.kube.world().before.push((
        "DELETE".into(),
        Box::new(move |w| w.edit_pod("shop", &name, |p| p["status"]["phase"] = json!("Running"))),
    ));
    let (status, detail) = cluster.execute(action, RESTART_GRANTS);
    assert_eq!(status, ActionStatus::Stale, "{detail}");
    assert!(
        detail.contains("Precondition failed: ResourceVersion"),
        "{detail}"
    );
    assert!(
        cluster
            .kube
            .world()
            .get(Kind::Pods, "shop", &heavy)
            .is_some()
    );
}

#[test]
fn grants_refuse_before_any_request_and_each_action_needs_its_right() {
    let cluster = Cluster::new();
    let (_, dry) = cluster.rollback(&["--dry-run"]);
    let Action::K8sRollbackDeployment(rollback) = cluster.planned(&dry) else {
        panic!("a rollback")
    };
    cluster.kube.world().requests.clear();
    let elsewhere = |namespace: &str, name: &str| {
        let mut moved = rollback.clone();
        moved.deployment.namespace = namespace.into();
        moved.deployment.name = name.into();
        Action::K8sRollbackDeployment(moved)
    };
    for (action, key) in [
        (elsewhere("prod", "api"), "kube_namespaces"),
        (elsewhere("shop", "billing"), "kube_names"),
    ] {
        let (status, detail) = cluster.execute(action, ROLLBACK_GRANTS);
        assert_eq!(status, ActionStatus::Denied, "{detail}");
        assert!(detail.contains(key), "{detail}");
    }
    let restart = Action::K8sRestartDeployment(remedy::contract::K8sRestartDeployment {
        deployment: rollback.deployment.clone(),
        reason: "test".into(),
    });
    let (status, detail) = cluster.execute(restart, ROLLBACK_GRANTS);
    assert_eq!(status, ActionStatus::Denied, "{detail}");
    assert!(detail.contains("`restart`"), "{detail}");
    assert!(
        cluster.kube.world().requests.is_empty(),
        "{:?}",
        cluster.kube.world().requests
    );

    // shop/web is named but lacks the granted label: refused after one read.
    let (status, detail) = cluster.execute(elsewhere("shop", "web"), ROLLBACK_GRANTS);
    assert_eq!(status, ActionStatus::Denied, "{detail}");
    assert!(detail.contains("kube_labels"), "{detail}");
    assert!(cluster.writes().is_empty());

    // The plugin reading outside its grant is told so, and nothing is asked.
    cluster.kube.world().requests.clear();
    let (code, run) = cluster.run(
        "k8s-rollback",
        &[
            "--dry-run",
            "--label",
            "namespace=prod",
            "--label",
            "deployment=api",
        ],
    );
    assert_ne!(code, 0, "{run:#}");
    assert!(run.to_string().contains("kube_namespaces"), "{run:#}");
    assert!(cluster.kube.world().requests.is_empty());
}

#[test]
fn bad_answers_give_a_clear_failed_run_within_the_timeout() {
    let inject = |cluster: &Cluster, status_code: u16, body: String| {
        cluster.kube.world().inject.push_back(Injected {
            needle: "GET /apis/apps/v1/namespaces/shop/deployments/api".into(),
            status: status_code,
            body,
            retry_after: None,
        });
    };
    let failed_with = |cluster: &Cluster, timeout: &str, words: &str| {
        let started = Instant::now();
        let (code, run) = cluster.rollback_within(timeout, &["--dry-run"]);
        assert_ne!(code, 0, "{run:#}");
        assert_eq!(run["status"], "failed", "{run:#}");
        assert!(
            run.to_string().contains(words),
            "wanted {words:?} in {run:#}"
        );
        started.elapsed()
    };

    let cluster = Cluster::new();
    inject(
        &cluster,
        200,
        "{\"kind\": \"Deployment\", \"metadata\": [".into(),
    );
    failed_with(&cluster, "5s", "not what remedy understands");

    inject(
        &cluster,
        200,
        format!("{{\"pad\": \"{}\"}}", "x".repeat(20 << 20)),
    );
    failed_with(&cluster, "5s", "larger than 16777216 bytes");

    inject(&cluster, 403, status(403, "Forbidden", "deployments.apps \"api\" is forbidden: User \"system:serviceaccount:remedy:remedy\" cannot get resource \"deployments\"").to_string());
    failed_with(&cluster, "5s", "cannot get resource");

    cluster.kube.world().delay = Duration::from_secs(4);
    let took = failed_with(&cluster, "1s", "within 1s");
    assert!(took < Duration::from_secs(4), "{took:?}");
    cluster.kube.world().delay = Duration::ZERO;

    // Throttled: tried again when the server says, and then it works.
    cluster.kube.world().requests.clear();
    cluster.kube.world().inject.push_back(Injected {
        needle: "GET /apis/apps/v1/namespaces/shop/deployments/api".into(),
        status: 429,
        body: json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Too many requests, please try again later.", "reason": "TooManyRequests",
            "details": { "retryAfterSeconds": 1 }, "code": 429,
        })
        .to_string(),
        retry_after: Some(1),
    });
    let (code, run) = cluster.rollback(&["--dry-run"]);
    assert_eq!(code, 0, "{run:#}");
    let gets = cluster
        .kube
        .world()
        .requests
        .iter()
        .filter(|r| r.starts_with("GET /apis/apps/v1/namespaces/shop/deployments/api"))
        .count();
    assert!(gets >= 2, "retried after the 429");
}

#[test]
fn a_write_the_server_refuses_fails_the_run_with_its_words_and_is_not_repeated() {
    let cluster = Cluster::new();
    cluster.kube.world().inject.push_back(Injected {
        needle: "PATCH".into(),
        status: 500,
        body: status(500, "InternalError", "etcdserver: request timed out").to_string(),
        retry_after: None,
    });
    let (code, run) = cluster.rollback(&["--apply"]);
    assert_ne!(code, 0, "{run:#}");
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        details(&run).contains("500 InternalError: etcdserver: request timed out"),
        "{run:#}"
    );
    assert_eq!(
        cluster.writes().len(),
        1,
        "a failed write is not sent again"
    );

    let cluster = Cluster::new();
    cluster
        .kube
        .world()
        .forbidden
        .push(("patch".into(), "deployments".into()));
    let (code, run) = cluster.rollback(&["--apply"]);
    assert_ne!(code, 0, "{run:#}");
    assert!(
        details(&run).contains("cannot patch resource \"deployments\" in API group \"apps\""),
        "{run:#}"
    );
    assert_eq!(cluster.image("shop", "api"), "api:v3");
}

/// Reads and a dry-run against a real cluster: `KUBECONFIG` set, and
/// `REMEDY_LIVE_NAMESPACE` / `REMEDY_LIVE_DEPLOYMENT` naming a deployment
/// remedy may read. Run with `cargo test --test kube -- --ignored`.
#[test]
#[ignore]
fn live_kubernetes_dry_run() {
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG names a real cluster");
    let namespace = std::env::var("REMEDY_LIVE_NAMESPACE").expect("REMEDY_LIVE_NAMESPACE");
    let deployment = std::env::var("REMEDY_LIVE_DEPLOYMENT").expect("REMEDY_LIVE_DEPLOYMENT");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("remedy.toml");
    std::fs::write(
        &config,
        format!(
            r#"{OFFLINE_SERVICES}
[kubernetes]
kubeconfig = "{kubeconfig}"

[[plugin]]
name = "k8s-rollback"
source = "builtin:k8s-rollback"
[plugin.grants]
kube = ["read"]
kube_namespaces = ["{namespace}"]
kube_names = ["{deployment}"]
"#
        ),
    )
    .unwrap();
    let (_, run) = run_json(
        &dir.path().join("state"),
        &config,
        "k8s-rollback",
        &[
            "--dry-run",
            "--label",
            &format!("namespace={namespace}"),
            "--label",
            &format!("deployment={deployment}"),
        ],
    );
    assert!(run.to_string().contains("at revision"), "{run:#}");
}

#[test]
fn the_kubernetes_examples_pass_the_checkers_and_route_each_alert_as_the_runbook_says() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = example("remedy.toml");
    let check = common::remedy(&state, &config)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", common::describe(&check));
    common::prometheus::check_rules_and_alertmanager(
        &example("rules.yml"),
        &example("alertmanager.yml"),
    );
    let rules: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(example("rules.yml")).unwrap()).unwrap();
    let severities: Vec<(String, String)> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| {
            let text = |v: &Value| v.as_str().unwrap().to_string();
            (text(&r["alert"]), text(&r["labels"]["severity"]))
        })
        .collect();
    let table = [
        ("HighErrorRate", "critical", "rollback"),
        ("HighLatency", "critical", "rollback"),
        ("PodCrashLooping", "critical", "rollback"),
        ("ReplicaMismatch", "warning", "page"),
        ("HighMemory", "warning", "page"),
        ("CPUThrottling", "warning", "page"),
        ("ConnectionPoolExhausted", "warning", "page"),
        (
            "StreamingAPIMemoryCritical",
            "critical",
            "stream-api-memory",
        ),
    ];
    let expected: Vec<(String, String)> = table
        .iter()
        .map(|(alert, severity, _)| (alert.to_string(), severity.to_string()))
        .collect();
    assert_eq!(
        severities, expected,
        "the rules, with the severities routed on"
    );
    for (alertname, severity, route) in table {
        let labels = [
            ("alertname", alertname),
            ("severity", severity),
            ("namespace", "shop"),
            ("deployment", "api"),
        ];
        assert_eq!(
            common::routes_for(&state, &config, &labels),
            vec![route.to_string()],
            "{alertname}"
        );
    }
}

#[test]
fn reads_see_only_granted_deployments_and_what_they_own() {
    let cluster = Cluster::new();
    let pod_of = |app: &str| {
        cluster
            .pods("shop")
            .into_iter()
            .find(|p| p["metadata"]["labels"]["app"] == app)
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (api_pod, web_pod) = (pod_of("api"), pod_of("web"));
    {
        let mut w = cluster.kube.world();
        let pod = w.get(Kind::Pods, "shop", &api_pod).cloned().unwrap();
        w.add_event("shop", &pod, "OOMKilling", "Memory cgroup out of memory");
        w.memory
            .insert(("shop".into(), api_pod.clone(), "app".into()), 300 << 20);
        w.requests.clear();
    }
    let config = cluster.dir.path().join("hostile.toml");
    std::fs::write(
        &config,
        format!(
            r#"{OFFLINE_SERVICES}
[kubernetes]
kubeconfig = "{}"

[[plugin]]
name = "hostile"
source = "{}/hostile.wasm"
[plugin.grants]
kube = ["read"]
kube_namespaces = ["shop"]
kube_labels = ["remedy.io/managed=true"]
"#,
            cluster.kube.kubeconfig(cluster.dir.path()).display(),
            common::PLUGIN_DIR
        ),
    )
    .unwrap();
    let target = format!("shop prod shop/{api_pod} shop/{web_pod}");
    let (_, run) = run_json(
        &cluster.dir.path().join("state"),
        &config,
        "hostile",
        &[
            "--param",
            "attack=kube",
            "--param",
            &format!("target={target}"),
        ],
    );
    let checks: std::collections::HashMap<String, (String, String)> =
        run["rounds"][0]["plan"]["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("{run:#}"))
            .iter()
            .map(|c| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (text(&c["name"]), (text(&c["status"]), text(&c["detail"])))
            })
            .collect();
    assert_eq!(
        checks["shop"],
        ("pass".into(), "api pods Ok(3) events Ok(1)".into()),
        "web lacks the granted label: not listed"
    );
    assert_eq!(checks["prod"].0, "fail");
    assert!(checks["prod"].1.contains("kube_namespaces"), "{checks:?}");
    let api = &checks[&format!("shop/{api_pod}")];
    assert_eq!(
        api,
        &("pass".into(), "pod of api memory Ok(314572800)".into())
    );
    let web = &checks[&format!("shop/{web_pod}")];
    assert!(web.0 == "fail" && web.1.contains("kube_labels"), "{web:?}");
    assert!(
        cluster
            .kube
            .world()
            .requests
            .iter()
            .all(|r| !r.contains("/namespaces/prod/")),
        "nothing asked outside the grant"
    );
}

#[test]
fn a_restart_patches_the_template_annotation_once_and_refuses_a_changed_deployment() {
    let cluster = Cluster::new();
    let grants = r#"kube = ["read", "restart"]
kube_namespaces = ["shop"]"#;
    let restart = || {
        let deployment = cluster.object(Kind::Deployments, "shop", "api");
        let meta = &deployment["metadata"];
        let text = |v: &Value| v.as_str().unwrap().to_string();
        Action::K8sRestartDeployment(remedy::contract::K8sRestartDeployment {
            deployment: remedy::contract::K8sDeploymentRef {
                namespace: "shop".into(),
                name: "api".into(),
                uid: text(&meta["uid"]),
                resource_version: text(&meta["resourceVersion"]),
                revision: text(&meta["annotations"]["deployment.kubernetes.io/revision"])
                    .parse()
                    .unwrap(),
            },
            reason: "test".into(),
        })
    };
    let seen = restart();
    let (status, detail) = cluster.execute(seen.clone(), grants);
    assert_eq!(status, ActionStatus::Done, "{detail}");
    let deployment = cluster.object(Kind::Deployments, "shop", "api");
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert!(
        annotations["kubectl.kubernetes.io/restartedAt"].is_string(),
        "{deployment:#}"
    );
    assert_eq!(
        cluster.image("shop", "api"),
        "api:v3",
        "only the annotation changed"
    );

    // The same plan again: the deployment moved on (revision 4).
    let (status, detail) = cluster.execute(seen, grants);
    assert_eq!(status, ActionStatus::Stale, "{detail}");
    assert!(detail.contains("revision 4 now, not 3"), "{detail}");

    // Changed between check and write: the API server's 409.
    let fresh = restart();
    cluster.kube.world().before.push((
        "PATCH".into(),
        Box::new(|w| {
            let mut d = w.get(Kind::Deployments, "shop", "api").cloned().unwrap();
            d["metadata"]["labels"]["team"] = json!("shop");
            w.update_deployment(d);
        }),
    ));
    let (status, detail) = cluster.execute(fresh, grants);
    assert_eq!(status, ActionStatus::Stale, "{detail}");
    assert!(detail.contains("409 Conflict"), "{detail}");
    assert_eq!(cluster.writes().len(), 2, "{:?}", cluster.writes());
}

#[test]
fn a_pod_gone_since_the_plan_is_stale_and_a_replacement_that_never_gets_ready_pages() {
    let cluster = Cluster::new();
    let heavy = cluster.heavy_pod(510 << 20);
    let (_, dry) = cluster.pod_restart("--dry-run", &heavy);
    let action = cluster.planned(&dry);

    // Deleted by someone else since the plan: the API server's 404.
    let name = heavy.clone();
    cluster.kube.world().before.push((
        "GET /api/v1/namespaces/shop/pods/".into(),
        Box::new(move |w| w.remove_pod("shop", &name)),
    ));
    let (status, detail) = cluster.execute(action, RESTART_GRANTS);
    assert_eq!(status, ActionStatus::Stale, "{detail}");
    assert!(
        detail.contains("is gone") && detail.contains("404"),
        "{detail}"
    );

    // The replacement never becomes Ready: the watch gives up and pages.
    let cluster = Cluster::new();
    let heavy = cluster.heavy_pod(510 << 20);
    cluster
        .kube
        .world()
        .before
        .push(("DELETE".into(), Box::new(|w| w.hold_rollouts = true)));
    let (code, run) = cluster.pod_restart("--apply", &heavy);
    assert_eq!(code, 4, "{run:#}");
    assert_eq!(run["actions"][0]["status"], "done", "{run:#}");
    assert!(reason(&run).contains("did not hold"), "{run:#}");
    assert!(
        run["rounds"].to_string().contains("2 of 3 pods ready"),
        "{run:#}"
    );
}

#[test]
fn after_the_rollback_the_error_ratio_must_fall_below_the_threshold_too() {
    let dir = tempfile::tempdir().unwrap();
    let api = std::sync::Arc::new(common::fake_api::FakeApi::start());
    api.set(|s| s.failing_percent = 20);
    let prometheus = common::prometheus::Prometheus::start_with(
        dir.path(),
        common::prometheus::Setup {
            targets: &[("api", api.addr, "api-0")],
            ..Default::default()
        },
    );
    let run = |cluster: &Cluster, within: &str| {
        let ratio = r#"error_ratio=sum(rate(http_requests_total{code="500"}[3s])) / sum(rate(http_requests_total[3s]))"#;
        let within = format!("confirm_within={within}");
        cluster.rollback(&[
            "--apply",
            "--param",
            ratio,
            "--param",
            "act_above=5",
            "--param",
            &within,
            "--param",
            "confirm_in_a_row=2",
        ])
    };

    // Still failing after the rollback: the rollout completed, but the
    // ratio never falls, so the run pages.
    let mut cluster = Cluster::new();
    cluster.prometheus = Some(prometheus.url());
    let (code, run_still_failing) = run(&cluster, "5s");
    assert_eq!(code, 4, "{run_still_failing:#}");
    assert_eq!(run_still_failing["actions"][0]["status"], "done");
    let rounds = run_still_failing["rounds"].to_string();
    assert!(
        rounds.contains("error ratio 20.0 %"),
        "{run_still_failing:#}"
    );
    assert!(
        reason(&run_still_failing).contains("did not hold"),
        "{run_still_failing:#}"
    );

    // The rollback fixes it: the ratio falls and holds two looks in a row.
    let mut cluster = Cluster::new();
    cluster.prometheus = Some(prometheus.url());
    let fixed = api.clone();
    cluster.kube.world().before.push((
        "PATCH".into(),
        Box::new(move |_| fixed.set(|s| s.failing_percent = 0)),
    ));
    let (code, recovered) = run(&cluster, "9s");
    assert_eq!(code, 0, "{recovered:#}");
    assert_eq!(recovered["status"], "succeeded", "{recovered:#}");
    assert!(
        recovered["rounds"]
            .to_string()
            .contains("error ratio 0.0 %"),
        "{recovered:#}"
    );
    assert!(
        prometheus.queries().contains("http_requests_total"),
        "the ratio came from Prometheus"
    );
}
