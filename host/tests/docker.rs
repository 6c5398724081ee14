//! The Docker capability, the docker-prune plugin and disk-cleanup's owner
//! tier against a real Docker engine started for each test.

mod common;

use common::dockerd::Dockerd;
use common::nomad_double::NomadDouble;
use common::{DAY, Tmpfs, aged_file, remedy, run_json};
use remedy::contract::{Action, ActionStatus, DockerRestartContainer};
use serde_json::Value;
use std::path::PathBuf;

const GRANTED: &str = "remedy.test=granted";

/// `[docker]` for this engine and `[nomad]` at `nomad`.
fn services(engine: &Dockerd, nomad: &str) -> String {
    format!(
        "[docker]\nsocket = \"{}\"\ntimeout = \"3s\"\n\n[nomad]\naddress = \"{nomad}\"\nretries = 0\n",
        engine.socket().display()
    )
}

fn config(engine: &Dockerd, dir: &std::path::Path, extra: &str) -> PathBuf {
    let path = dir.join("remedy.toml");
    std::fs::write(
        &path,
        format!(
            r#"
{}
[[plugin]]
name = "docker-prune"
source = "builtin:docker-prune"
params = {{ targets = "stopped-containers", older_than = "0s" }}
[plugin.grants]
docker = ["read", "prune"]
docker_labels = ["{GRANTED}"]
{extra}
"#,
            services(engine, "http://127.0.0.1:9")
        ),
    )
    .unwrap();
    path
}

fn run(
    dir: &std::path::Path,
    config: &std::path::Path,
    plugin: &str,
    args: &[&str],
) -> (i32, Value) {
    run_json(&dir.join("state"), config, plugin, args)
}

fn details(run: &Value) -> String {
    run["actions"].to_string()
}

#[test]
fn prune_plans_and_removes_exactly_the_exited_granted_containers() {
    let engine = Dockerd::start();
    engine.exited("granted-exited-1", &[GRANTED]);
    engine.exited("granted-exited-2", &[GRANTED, "team=a"]);
    engine.running("granted-running", &[GRANTED]);
    engine.exited("foreign-exited", &["remedy.test=other"]);
    engine.running("foreign-running", &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(&engine, dir.path(), "");

    let (code, dry) = run(dir.path(), &config, "docker-prune", &["--dry-run"]);
    assert_eq!(code, 0, "{dry:#}");
    assert_eq!(dry["status"], "succeeded", "{dry:#}");
    let planned = details(&dry);
    assert!(
        planned.contains("would remove 2 stopped containers (granted-exited-1, granted-exited-2)"),
        "{dry:#}"
    );
    assert!(
        !planned.contains("foreign") && !planned.contains("granted-running"),
        "{dry:#}"
    );
    let checks = dry["rounds"][0]["plan"]["checks"].to_string();
    assert!(
        checks.contains("granted-exited-1, granted-exited-2"),
        "{checks}"
    );
    assert_eq!(engine.names().len(), 5, "a dry-run removed something");

    let (code, applied) = run(dir.path(), &config, "docker-prune", &["--apply"]);
    assert_eq!(code, 0, "{applied:#}");
    assert_eq!(applied["status"], "succeeded", "{applied:#}");
    assert!(
        details(&applied).contains("removed 2 stopped containers"),
        "{applied:#}"
    );
    assert_eq!(
        engine.names(),
        ["foreign-exited", "foreign-running", "granted-running"],
        "apply removed something other than the planned containers"
    );
}

#[test]
fn restarting_a_container_outside_the_selector_is_denied_and_recorded() {
    let engine = Dockerd::start();
    let foreign = engine.running("foreign-running", &[]);
    let granted = engine.running("granted-running", &[GRANTED]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(&engine, dir.path(), "");
    let store = remedy::store::Store::open(&dir.path().join("state")).unwrap();
    let run_id = common::running_run(&store, "restarts");
    let grants = remedy::caps::Grants {
        docker: remedy::caps::docker::DockerGrant {
            rights: vec![
                remedy::caps::docker::DockerRight::Read,
                remedy::caps::docker::DockerRight::Restart,
            ],
            labels: vec![GRANTED.into()],
        },
        ..Default::default()
    };
    let env = remedy::caps::HostEnv::new(
        Default::default(),
        remedy::caps::docker::DockerSettings {
            socket: Some(engine.socket()),
            timeout: Some("5s".into()),
        },
    );
    let kinds = vec!["docker-restart-container".to_string()];
    let executor = remedy::executor::Executor {
        store: &store,
        grants: &grants,
        env: &env,
        declared_kinds: &kinds,
        approved: None,
    };
    let restart = |id: &str, name: &str| {
        Action::DockerRestartContainer(DockerRestartContainer {
            id: id.into(),
            name: name.into(),
            reason: "test".into(),
        })
    };
    let started = |name: &str| engine.must(&["inspect", "--format", "{{.State.StartedAt}}", name]);

    let before = started("foreign-running");
    let results = executor
        .execute(&run_id, 5, &[restart(&foreign, "foreign-running")], false)
        .unwrap();
    assert_eq!(results[0].status, ActionStatus::Denied, "{results:?}");
    assert!(
        results[0]
            .detail
            .contains("outside the granted label selector"),
        "{results:?}"
    );
    assert_eq!(
        started("foreign-running"),
        before,
        "the foreign container was restarted"
    );
    // Recorded like every decision.
    let recorded = remedy(&dir.path().join("state"), &config)
        .args(["runs", "show", &run_id, "--output", "json"])
        .output()
        .unwrap();
    let recorded: Value = serde_json::from_slice(&recorded.stdout).unwrap();
    assert!(
        recorded["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["status"] == "denied" && a["round"] == 5),
        "{recorded:#}"
    );

    let before = started("granted-running");
    let results = executor
        .execute(&run_id, 6, &[restart(&granted, "granted-running")], false)
        .unwrap();
    assert_eq!(results[0].status, ActionStatus::Done, "{results:?}");
    assert_ne!(
        started("granted-running"),
        before,
        "the granted container was not restarted"
    );

    // A container re-created under the planned name is not the planned one.
    engine.must(&["rm", "-f", "granted-running"]);
    engine.running("granted-running", &[GRANTED]);
    let results = executor
        .execute(&run_id, 7, &[restart(&granted, "granted-running")], false)
        .unwrap();
    assert_eq!(results[0].status, ActionStatus::Stale, "{results:?}");
}

#[test]
fn a_stopped_engine_fails_the_run_clearly_instead_of_hanging() {
    let engine = Dockerd::start();
    engine.exited("granted-exited", &[GRANTED]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(&engine, dir.path(), "");
    let (_, dry) = run(dir.path(), &config, "docker-prune", &["--dry-run"]);
    assert_eq!(dry["status"], "succeeded", "{dry:#}");

    // Frozen between plan and apply: the engine takes connections and never answers.
    engine.signal(libc::SIGSTOP);
    let started = std::time::Instant::now();
    let (code, frozen) = run(dir.path(), &config, "docker-prune", &["--apply"]);
    assert_eq!(code, 1, "{frozen:#}");
    assert_eq!(frozen["status"], "failed", "{frozen:#}");
    assert!(
        frozen["reason"]
            .as_str()
            .unwrap()
            .contains("no answer within 3s"),
        "{frozen:#}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "took {:?}",
        started.elapsed()
    );

    // Gone altogether.
    engine.signal(libc::SIGKILL);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, gone) = run(dir.path(), &config, "docker-prune", &["--apply"]);
    assert_eq!(code, 1, "{gone:#}");
    assert_eq!(gone["status"], "failed", "{gone:#}");
    let reason = gone["reason"].as_str().unwrap();
    assert!(
        reason.contains(&engine.socket().display().to_string()),
        "{reason}"
    );
    assert!(reason.contains("is dockerd running?"), "{reason}");
}

/// A Nomad double whose agent is on node `node-1`, and that node's id.
fn nomad_with_this_node() -> (NomadDouble, String) {
    let nomad = NomadDouble::start();
    let node = {
        let mut w = nomad.world();
        let node = w.add_node("node-1");
        w.local_node = node.clone();
        node
    };
    (nomad, node)
}

/// A 16 MiB tmpfs with twelve 1 MiB cache files two days old: 75 % full.
fn full_cache() -> Tmpfs {
    let fs = Tmpfs::mount("16m");
    for i in 0..12 {
        aged_file(&fs.path.join(format!("cache/blob-{i}")), 1 << 20, 2 * DAY);
    }
    fs
}

#[test]
fn disk_cleanup_runs_the_owner_tier_before_deleting_any_file() {
    let engine = Dockerd::start();
    engine.exited("granted-exited", &[GRANTED]);
    engine.exited("foreign-exited", &[]);
    let (nomad, node) = nomad_with_this_node();
    let fs = full_cache();
    let root = fs.path.clone();
    let dir = tempfile::tempdir().unwrap();
    let r = root.display();
    let path = dir.path().join("remedy.toml");
    std::fs::write(
        &path,
        format!(
            r#"
{}
[[plugin]]
name = "disk-cleanup"
source = "builtin:disk-cleanup"
params = {{ mountpoint = "{r}", sandbox_dirs = "", cache_dirs = "{r}/cache", log_dirs = "", target_used_percent = "50", docker_prune = "stopped-containers", docker_prune_older_than = "0s" }}
[plugin.grants]
fs_read = ["{r}"]
fs_remove = ["{r}/cache"]
proc = ["read"]
nomad = ["read", "gc"]
docker = ["read", "prune"]
docker_labels = ["{GRANTED}"]
"#,
            services(&engine, &nomad.address())
        ),
    )
    .unwrap();

    let (code, run) = run(dir.path(), &path, "disk-cleanup", &["--apply"]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let kinds_in = |round: u64| -> Vec<String> {
        run["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["round"] == round)
            .map(|a| a["action"]["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds_in(0), ["nomad-client-gc", "docker-prune"], "{run:#}");
    assert!(
        !kinds_in(1).is_empty() && kinds_in(1).iter().all(|k| k == "remove-path"),
        "{run:#}"
    );
    assert_eq!(
        nomad.world().writes(),
        [format!("PUT /v1/client/gc?node_id={node}")],
        "client GC went to the wrong place"
    );
    assert_eq!(engine.names(), ["foreign-exited"]);
    assert!(
        fs.used_percent() <= 50.0,
        "target not reached: {}%",
        fs.used_percent()
    );
}

#[test]
fn disk_cleanup_without_the_gc_grant_skips_the_gc_and_still_frees_space() {
    // Nomad answers reads, but the grants allow no client GC: the plan must
    // not propose one (it would be denied, and with it every file). With no
    // Nomad or Docker grant at all the plugin loads and the tier is skipped too.
    let only_reads = "nomad = [\"read\"]\ndocker = [\"read\"]";
    for owner_grants in [only_reads, ""] {
        let (nomad, _) = nomad_with_this_node();
        let fs = full_cache();
        let r = fs.path.display();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remedy.toml");
        std::fs::write(
            &path,
            format!(
                r#"
[nomad]
address = "{}"
retries = 0

[docker]
socket = "/nonexistent/remedy-test/docker.sock"

[[plugin]]
name = "disk-cleanup"
source = "builtin:disk-cleanup"
params = {{ mountpoint = "{r}", sandbox_dirs = "", cache_dirs = "{r}/cache", log_dirs = "", target_used_percent = "50" }}
[plugin.grants]
fs_read = ["{r}"]
fs_remove = ["{r}/cache"]
proc = ["read"]
{owner_grants}
"#,
                nomad.address()
            ),
        )
        .unwrap();

        let (code, run) = run(dir.path(), &path, "disk-cleanup", &["--apply"]);
        assert_eq!(code, 0, "{owner_grants:?}: {run:#}");
        assert_eq!(run["status"], "succeeded", "{run:#}");
        let checks = run["rounds"][0]["plan"]["checks"].to_string();
        assert!(
            checks.contains("no client GC: not granted"),
            "the GC tier must say why it was skipped: {checks}"
        );
        let actions = run["actions"].as_array().unwrap();
        assert!(
            !actions.is_empty() && actions.iter().all(|a| a["action"]["kind"] == "remove-path"),
            "{run:#}"
        );
        assert!(
            nomad.world().writes().is_empty(),
            "nothing was sent to Nomad"
        );
        assert!(
            fs.used_percent() <= 50.0,
            "{owner_grants:?}: target not reached: {}%",
            fs.used_percent()
        );
    }
}
