//! The Nomad capability and the nomad-restart plugin, end to end through the
//! `remedy` binary, against the Nomad test double (no Nomad binary can run
//! here; `common::nomad_double` follows Nomad's shapes and behaviour). The
//! last test runs the same reads against a real Nomad when asked to.

mod common;

use common::nomad_double::NomadDouble;
use common::{describe, remedy, run_json};
use serde_json::Value;
use std::path::PathBuf;

const GRANTS: &str = r#"nomad = ["read", "restart", "revert"]
nomad_namespaces = ["default"]
nomad_jobs = ["orchestrator(-[0-9a-f]{16})?", "api"]"#;

struct Cluster {
    nomad: NomadDouble,
    dir: tempfile::TempDir,
    /// This host's node (the agent's), and another one.
    here: String,
    there: String,
}

impl Cluster {
    /// Two nodes; a system job `orchestrator` with an allocation on each;
    /// a service job `api` whose last deploy (version 2) is failing.
    fn new() -> Cluster {
        let nomad = NomadDouble::start();
        let (here, there) = {
            let mut w = nomad.world();
            let here = w.add_node("node-1");
            let there = w.add_node("node-2");
            w.local_node = here.clone();
            w.add_job("default", "orchestrator", "system", &["orchestrator"]);
            w.place("default", "orchestrator", &here);
            w.place("default", "orchestrator", &there);
            w.add_job("default", "api", "service", &["web"]);
            w.deploy("default", "api", "v1", true);
            w.deploy("default", "api", "v2-broken", false);
            w.add_job("default", "billing", "service", &["web"]);
            w.place("default", "billing", &here);
            w.add_job("prod", "api", "service", &["web"]);
            (here, there)
        };
        Cluster {
            nomad,
            dir: tempfile::tempdir().unwrap(),
            here,
            there,
        }
    }

    fn config(&self, nomad_extra: &str) -> PathBuf {
        let path = self.dir.path().join("remedy.toml");
        std::fs::write(
            &path,
            format!(
                r#"
[nomad]
address = "{}"
timeout = "2s"
retries = 2
{nomad_extra}

[docker]
socket = "/nonexistent/remedy-test/docker.sock"

[[plugin]]
name = "nomad-restart"
source = "builtin:nomad-restart"
params = {{ confirm_after = "1s" }}
[plugin.grants]
{GRANTS}
"#,
                self.nomad.address()
            ),
        )
        .unwrap();
        path
    }

    /// `remedy run nomad-restart ARGS --output json`: exit code and the run.
    fn run(&self, args: &[&str]) -> (i32, Value) {
        self.run_with("", args)
    }

    fn run_with(&self, nomad_extra: &str, args: &[&str]) -> (i32, Value) {
        let state = self.dir.path().join("state");
        run_json(&state, &self.config(nomad_extra), "nomad-restart", args)
    }

    /// Connections to the double, for tests that drive the executor directly.
    fn env(&self) -> remedy::caps::HostEnv {
        remedy::caps::HostEnv::new(
            remedy::caps::nomad::NomadSettings {
                address: Some(self.nomad.address()),
                ..Default::default()
            },
            Default::default(),
        )
    }

    fn alloc_on(&self, job: &str, node: &str) -> String {
        let w = self.nomad.world();
        w.allocs
            .iter()
            .find(|a| a.job_id == job && a.node_id == node && a.desired == "run")
            .map(|a| a.id.clone())
            .expect("allocation placed")
    }

    fn restarts(&self, alloc: &str) -> u64 {
        self.nomad.world().alloc(alloc).restarts()
    }

    fn writes(&self) -> Vec<String> {
        self.nomad
            .world()
            .writes()
            .into_iter()
            .map(String::from)
            .collect()
    }
}

fn reason(run: &Value) -> String {
    run["reason"].as_str().unwrap_or_default().to_string()
}

#[test]
fn restart_touches_only_this_nodes_allocation_and_confirms_health() {
    let cluster = Cluster::new();
    let here = cluster.alloc_on("orchestrator", &cluster.here);
    let there = cluster.alloc_on("orchestrator", &cluster.there);
    let labels = [
        "--label",
        "job=orchestrator",
        "--label",
        "instance=node-1:9100",
    ];

    let (code, run) = cluster.run(&[&labels[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert!(
        cluster.writes().is_empty(),
        "a dry-run wrote to Nomad: {:?}",
        cluster.writes()
    );
    let planned = &run["actions"][0]["action"];
    assert_eq!(planned["alloc"]["alloc_id"], here.as_str(), "{run:#}");
    assert_eq!(planned["alloc"]["node_id"], cluster.here.as_str());

    let (code, run) = cluster.run(&[&labels[..], &["--apply"]].concat());
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(cluster.restarts(&here), 1);
    assert_eq!(
        cluster.restarts(&there),
        0,
        "the other node's allocation was restarted"
    );
    assert_eq!(
        cluster.writes(),
        vec![format!(
            "PUT /v1/client/allocation/{here}/restart?namespace=default"
        )]
    );
    // The second round looked again and found it healthy.
    assert_eq!(run["rounds"].as_array().unwrap().len(), 2, "{run:#}");
    assert!(reason(&run).contains("running and healthy"), "{run:#}");
}

#[test]
fn an_alert_about_another_node_restarts_nothing_here() {
    let cluster = Cluster::new();
    let (_, run) = cluster.run(&[
        "--apply",
        "--label",
        "job=orchestrator",
        "--label",
        "instance=node-2:9100",
    ]);
    assert_eq!(run["status"], "escalated", "{run:#}");
    assert!(reason(&run).contains("node-1"), "{run:#}");
    assert!(cluster.writes().is_empty());
}

#[test]
fn still_unhealthy_after_the_restart_escalates() {
    let cluster = Cluster::new();
    let here = cluster.alloc_on("orchestrator", &cluster.here);
    // The task keeps failing: the double's restart brings it back, then it dies again.
    let nomad = &cluster.nomad;
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..40 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                nomad.change(|w| {
                    let alloc = w.alloc_mut(&here);
                    if alloc.restarts() > 0 {
                        alloc.client = "failed".into();
                        alloc
                            .tasks
                            .values_mut()
                            .for_each(|t| t.state = "dead".into());
                    }
                });
            }
        });
        let (code, run) = cluster.run(&["--apply", "--label", "job=orchestrator"]);
        assert_eq!(code, 4, "{run:#}");
        assert_eq!(run["status"], "escalated", "{run:#}");
        assert!(
            reason(&run).contains("still unhealthy after restart"),
            "{run:#}"
        );
    });
}

#[test]
fn namespaces_and_jobs_outside_the_grant_are_denied() {
    let cluster = Cluster::new();
    let (code, run) = cluster.run(&["--apply", "--label", "job=billing"]);
    assert_eq!(code, 1, "{run:#}");
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        reason(&run).contains(r#"denied: job "billing" is not granted"#),
        "{run:#}"
    );

    let (_, run) = cluster.run(&[
        "--apply",
        "--label",
        "job=api",
        "--label",
        "namespace=prod",
        "--param",
        "action=revert",
    ]);
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        reason(&run).contains(r#"namespace "prod" is not granted"#),
        "{run:#}"
    );
    assert!(cluster.writes().is_empty(), "{:?}", cluster.writes());
    // The refused reads never reached Nomad.
    assert!(
        !cluster
            .nomad
            .world()
            .requests
            .iter()
            .any(|r| r.contains("billing") || r.contains("prod")),
        "{:?}",
        cluster.nomad.world().requests
    );
}

#[test]
fn revert_goes_to_the_last_stable_version_and_a_second_alert_does_not_flap() {
    let cluster = Cluster::new();
    cluster.nomad.change(|w| {
        let alloc = w.place("default", "api", &cluster.here);
        w.alloc_mut(&alloc).healthy = Some(false);
    });
    let args = ["--apply", "--label", "job=api", "--param", "action=revert"];

    let (code, run) = cluster.run(&[
        "--dry-run",
        "--label",
        "job=api",
        "--param",
        "action=revert",
    ]);
    assert_eq!(code, 0, "{run:#}");
    let planned = &run["actions"][0]["action"];
    assert_eq!(planned["current_version"], 2, "{run:#}");
    assert_eq!(planned["to_version"], 1, "{run:#}");
    assert!(cluster.writes().is_empty());

    let (code, run) = cluster.run(&args);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    {
        let w = cluster.nomad.world();
        let job = w.job("default", "api").unwrap();
        assert_eq!(job.current().version, 3);
        assert_eq!(job.current().image, "v1", "reverted to the wrong version");
    }
    assert_eq!(
        cluster.writes(),
        vec!["POST /v1/job/api/revert?namespace=default".to_string()]
    );

    // The same failure alerts again inside the cooldown: version 3 is not
    // stable yet, but reverting again would flap.
    let (code, run) = cluster.run(&args);
    assert_eq!(code, 4, "{run:#}");
    assert_eq!(run["status"], "escalated", "{run:#}");
    assert!(reason(&run).contains("cooldown"), "{run:#}");
    assert_eq!(cluster.writes().len(), 1, "{:?}", cluster.writes());
    assert_eq!(
        cluster
            .nomad
            .world()
            .job("default", "api")
            .unwrap()
            .current()
            .version,
        3
    );
}

#[test]
fn a_deploy_newer_than_the_plan_is_not_reverted() {
    let cluster = Cluster::new();
    let state = cluster.dir.path().join("state");
    // Plan (approval-style: dry-run), then someone deploys version 3, then the plan is applied.
    let (_, run) = cluster.run(&[
        "--dry-run",
        "--label",
        "job=api",
        "--param",
        "action=revert",
    ]);
    let store = remedy::store::Store::open(&state).unwrap();
    let action = store.get_run(run["id"].as_str().unwrap()).unwrap().actions[0]
        .action
        .clone();
    // The planned action, applied later by a run of its own.
    let run_id = &common::running_run(&store, "apply-later");
    cluster.nomad.change(|w| {
        w.deploy("default", "api", "v3-hotfix", false);
    });
    let grants: remedy::caps::Grants = toml::from_str(GRANTS).unwrap();
    let env = cluster.env();
    let kinds = vec!["nomad-revert-job".to_string()];
    let executor = remedy::executor::Executor {
        store: &store,
        grants: &grants,
        env: &env,
        declared_kinds: &kinds,
        approved: None,
    };
    let results = executor.execute(run_id, 9, &[action], false).unwrap();
    assert_eq!(
        results[0].status,
        remedy::contract::ActionStatus::Stale,
        "{results:?}"
    );
    assert!(
        results[0].detail.contains("version 3 now, not 2"),
        "{results:?}"
    );
    assert!(cluster.writes().is_empty(), "{:?}", cluster.writes());
}

#[test]
fn executor_checks_rights_scope_and_identity_before_touching_nomad() {
    use remedy::contract::{Action, ActionStatus, NomadAllocRef, NomadClientGc, NomadRestartAlloc};
    let cluster = Cluster::new();
    let here = cluster.alloc_on("orchestrator", &cluster.here);
    let store = remedy::store::Store::open(&cluster.dir.path().join("state")).unwrap();
    let env = cluster.env();
    let grants: remedy::caps::Grants = toml::from_str(GRANTS).unwrap();
    let kinds: Vec<String> = ["nomad-restart-alloc", "nomad-client-gc"]
        .map(String::from)
        .to_vec();
    let executor = remedy::executor::Executor {
        store: &store,
        grants: &grants,
        env: &env,
        declared_kinds: &kinds,
        approved: None,
    };
    let restart = |alloc: &str, job: &str, node: &str| {
        Action::NomadRestartAlloc(NomadRestartAlloc {
            alloc: NomadAllocRef {
                namespace: "default".into(),
                job_id: job.into(),
                alloc_id: alloc.into(),
                node_id: node.into(),
            },
            task: None,
            reason: "test".into(),
        })
    };
    // Records need a run to belong to.
    let run_id = common::running_run(&store, "forged");
    let once = |action: Action| {
        let results = executor.execute(&run_id, 7, &[action], false).unwrap();
        (results[0].status, results[0].detail.clone())
    };

    let billing = cluster.alloc_on("billing", &cluster.here);
    let (status, detail) = once(restart(&billing, "billing", &cluster.here));
    assert_eq!(status, ActionStatus::Denied, "{detail}");
    assert!(detail.contains("nomad_jobs"), "{detail}");

    let gc = Action::NomadClientGc(NomadClientGc {
        node_id: cluster.here.clone(),
        reason: "test".into(),
    });
    let (status, detail) = once(gc);
    assert_eq!(status, ActionStatus::Denied, "{detail}");
    assert!(detail.contains("`gc`"), "{detail}");

    // The plan named this allocation on the other node: not the same object.
    let (status, detail) = once(restart(&here, "orchestrator", &cluster.there));
    assert_eq!(status, ActionStatus::Stale, "{detail}");
    assert!(detail.contains("node"), "{detail}");

    // Stopped since the plan (and replaced): the id no longer runs.
    cluster
        .nomad
        .change(|w| w.alloc_mut(&here).desired = "stop".into());
    let (status, detail) = once(restart(&here, "orchestrator", &cluster.here));
    assert_eq!(status, ActionStatus::Stale, "{detail}");

    let (status, detail) = once(restart(
        "00000000-dead-4000-8000-000000000000",
        "orchestrator",
        &cluster.here,
    ));
    assert_eq!(status, ActionStatus::Stale, "{detail}");
    assert!(detail.contains("404"), "{detail}");

    // An id that would walk the request path elsewhere is never sent.
    let before = cluster.nomad.world().requests.len();
    let (status, detail) = once(restart("..", "orchestrator", &cluster.here));
    assert_eq!(status, ActionStatus::Failed, "{detail}");
    assert!(
        detail.contains("an id may not be empty, `.` or `..`"),
        "{detail}"
    );
    assert_eq!(cluster.nomad.world().requests.len(), before);

    assert!(cluster.writes().is_empty(), "{:?}", cluster.writes());
}

#[test]
fn rolling_restart_goes_batch_by_batch_and_refuses_system_jobs() {
    let cluster = Cluster::new();
    let allocs: Vec<String> = {
        let mut w = cluster.nomad.world();
        let third = w.add_node("node-3");
        [cluster.here.clone(), cluster.there.clone(), third]
            .iter()
            .map(|node| w.place("default", "api", node))
            .collect()
    };
    let (code, run) = cluster.run(&[
        "--apply",
        "--label",
        "job=api",
        "--param",
        "action=rolling-restart",
        "--param",
        "batch_size=2",
    ]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    for alloc in &allocs {
        assert_eq!(
            cluster.restarts(alloc),
            1,
            "{alloc} restarted {} times",
            cluster.restarts(alloc)
        );
    }
    let batches: Vec<usize> = (0..3)
        .map(|round| {
            run["actions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["round"] == round)
                .count()
        })
        .collect();
    assert_eq!(batches, [2, 1, 0], "{run:#}");

    let (code, run) = cluster.run(&[
        "--apply",
        "--label",
        "job=orchestrator",
        "--param",
        "action=rolling-restart",
    ]);
    assert_eq!(code, 4, "{run:#}");
    assert!(
        reason(&run).contains("refusing a rolling restart of system job"),
        "{run:#}"
    );
    assert_eq!(cluster.writes().len(), 3, "{:?}", cluster.writes());
}

#[test]
fn nomad_errors_each_give_a_clear_outcome() {
    let cluster = Cluster::new();
    let args = ["--apply", "--label", "job=orchestrator"];

    // ACLs on and no token: Nomad's own 403 text reaches the run record.
    cluster.nomad.change(|w| {
        w.tokens.insert("s3cret".into(), vec!["default".into()]);
    });
    let (_, run) = cluster.run(&args);
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        reason(&run).contains("denied: Nomad answered GET"),
        "{run:#}"
    );
    assert!(
        reason(&run).contains("403 Forbidden: Permission denied"),
        "{run:#}"
    );
    // With the token from the config it works.
    std::fs::write(cluster.dir.path().join("token"), "s3cret\n").unwrap();
    let token = format!(
        "token_file = \"{}\"",
        cluster.dir.path().join("token").display()
    );
    let (_, run) = cluster.run_with(&token, &["--dry-run", "--label", "job=orchestrator"]);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    cluster.nomad.change(|w| w.tokens.clear());

    // 404 with Nomad's text body.
    let (_, run) = cluster.run(&[
        "--apply",
        "--label",
        "job=orchestrator-0123456789abcdef",
        "--param",
        "action=revert",
    ]);
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        reason(&run)
            .contains("not found: Nomad answered GET /v1/job/orchestrator-0123456789abcdef"),
        "{run:#}"
    );
    assert!(
        reason(&run).contains("404 Not Found: job not found"),
        "{run:#}"
    );

    // 429 twice: retried with backoff, and the run goes through.
    cluster.nomad.change(|w| {
        w.inject.push_back((429, "Too many requests".into()));
        w.inject.push_back((429, "Too many requests".into()));
    });
    let (_, run) = cluster.run(&["--dry-run", "--label", "job=orchestrator"]);
    assert_eq!(run["status"], "succeeded", "{run:#}");

    // A 500 that persists past the retries fails the run with Nomad's words.
    cluster.nomad.change(|w| {
        for _ in 0..3 {
            w.inject
                .push_back((500, "rpc error: No cluster leader".into()));
        }
    });
    let (_, run) = cluster.run(&args);
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        reason(&run).contains("unavailable: Nomad answered GET /v1/agent/self with 500"),
        "{run:#}"
    );
    assert!(reason(&run).contains("No cluster leader"), "{run:#}");
    assert!(cluster.writes().is_empty());

    // A 500 on the restart itself is not retried: a second restart is not harmless.
    let here = cluster.alloc_on("orchestrator", &cluster.here);
    cluster.nomad.change(|w| {
        w.inject_on.push((
            "PUT /v1/client/allocation/".into(),
            500,
            "failed to restart task".into(),
        ));
    });
    let (code, run) = cluster.run(&args);
    assert_eq!(code, 1, "{run:#}");
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(reason(&run).contains("failed to restart task"), "{run:#}");
    let restarts: Vec<String> = cluster
        .writes()
        .into_iter()
        .filter(|w| w.contains("restart"))
        .collect();
    assert_eq!(restarts.len(), 1, "the write was retried: {restarts:?}");
    assert_eq!(cluster.restarts(&here), 0);
}

#[test]
fn dry_run_on_the_command_line_names_the_allocation_node_and_task() {
    let cluster = Cluster::new();
    let here = cluster.alloc_on("orchestrator", &cluster.here);
    let output = remedy(&cluster.dir.path().join("state"), &cluster.config(""))
        .args([
            "run",
            "nomad-restart",
            "--dry-run",
            "--label",
            "job=orchestrator",
            "--label",
            "instance=node-1",
            "--param",
            "task=orchestrator",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(text.contains(&here), "no allocation id:\n{text}");
    assert!(text.contains("node-1"), "no node:\n{text}");
    assert!(text.contains("task orchestrator"), "no task:\n{text}");
    assert!(cluster.writes().is_empty());
}

#[test]
fn blocking_queries_wait_for_a_change() {
    // The double itself: a blocking query returns when the index moves.
    let nomad = NomadDouble::start();
    let index = nomad.world().index;
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            nomad.change(|w| w.add_job("default", "late", "batch", &["t"]));
        });
        let (status, reply) = common::daemon::raw_exchange(
            nomad.addr,
            format!("GET /v1/jobs?index={index}&wait=10s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 200, "{reply}");
        assert!(reply.contains("\"late\""), "{reply}");
    });
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(250),
        "returned before the change: {waited:?}"
    );
}

/// The read interfaces against a real Nomad. Opt in:
/// `NOMAD_ADDR=http://... [NOMAD_TOKEN=...] cargo test --test nomad -- --ignored live`
#[test]
#[ignore = "needs a real Nomad agent; set NOMAD_ADDR and run with --ignored"]
fn live_nomad_reads() {
    let address = std::env::var("NOMAD_ADDR").expect("set NOMAD_ADDR to a Nomad client agent");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("remedy.toml");
    std::fs::write(
        &config,
        format!(
            "[nomad]\naddress = \"{address}\"\n\n[[plugin]]\nname = \"nomad-restart\"\nsource = \"builtin:nomad-restart\"\n[plugin.grants]\nnomad = [\"read\"]\n"
        ),
    )
    .unwrap();
    let job = std::env::var("NOMAD_TEST_JOB").unwrap_or_else(|_| "example".into());
    let output = remedy(&dir.path().join("state"), &config)
        .args([
            "run",
            "nomad-restart",
            "--dry-run",
            "--output",
            "json",
            "--label",
        ])
        .arg(format!("job={job}"))
        .output()
        .unwrap();
    let run: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", describe(&output)));
    // Reading works end to end: the plan names this node, whatever it decides.
    assert!(
        run["rounds"][0]["plan"]["checks"]
            .to_string()
            .contains("this is node"),
        "{run:#}"
    );
}
