//! A fleet on one machine: two receivers behind one real Alertmanager (so
//! every alert arrives twice) and agents named as nodes, each with its own
//! tmpfs as "its" disk, all on one real PostgreSQL. An alert about a node
//! is remediated on that node only, once; an agent killed mid-run leaves
//! its run interrupted when the lease runs out; a route's blast radius is
//! never exceeded.

mod common;

use common::alertmanager::Alertmanager;
use common::daemon::{Daemon, TOKEN, firing, is_finished, webhook};
use common::ports::free_addr;
use common::postgres::{Cluster, fresh_database};
use common::{DAY, PLUGIN_DIR, Tmpfs, aged_file, describe, reaper_plugin, remedy};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The fleet's clocks, short so that leases run out within a test.
const FLEET_TIMES: &str = r#"heartbeat = "1s"
lease = "3s"
unattended_after = "4s""#;

/// A remedy's home: its config (node `node`, the shared store at `url`,
/// and `rest`), and its state directory.
fn home(dir: &Path, node: &str, url: &str, rest: &str) -> (PathBuf, PathBuf) {
    let home = dir.join(node);
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("token"), format!("{TOKEN}\n")).unwrap();
    common::daemon::write_users(&home);
    let config = home.join("remedy.toml");
    std::fs::write(
        &config,
        format!("[node]\nname = \"{node}\"\n\n[store]\nurl = \"{url}\"\n{FLEET_TIMES}\n\n{rest}"),
    )
    .unwrap();
    (config, home.join("state"))
}

fn receiver(dir: &Path, name: &str, url: &str, routes: &str) -> Daemon {
    let addr = free_addr();
    let rest = format!(
        "[server]\nlisten = \"{addr}\"\ntoken_file = \"token\"\nusers_file = \"users.toml\"\n{routes}"
    );
    let (config, state) = home(dir, name, url, &rest);
    Daemon::start(&state, &config, addr)
}

fn agent(dir: &Path, node: &str, url: &str, routes: &str) -> Daemon {
    let (config, state) = home(dir, node, url, routes);
    Daemon::agent(&state, &config, free_addr())
}

/// tmp-reaper reaping `reap` on whichever node this config is, in apply.
fn reaper_routes(reap: &Path) -> String {
    format!(
        "{}\n[[route]]\nname = \"reap\"\nmatchers = ['alertname=\"TmpFull\"']\n\
         plugin = \"tmp-reaper\"\nmode = \"apply\"\n",
        reaper_plugin("tmp-reaper", reap, "1d")
    )
}

/// The hostile plugin sleeping in the host until its `timeout` ends the
/// run; `radius` lines bound the route.
fn sleeper_routes(timeout: &str, radius: &str) -> String {
    format!(
        r#"
[[plugin]]
name = "sleeper"
source = "{PLUGIN_DIR}/hostile.wasm"
timeout = "{timeout}"
params = {{ attack = "sleep" }}
[plugin.grants]
fs_read = ["/tmp"]

[[route]]
name = "sleep"
matchers = ['alertname="Sleep"']
plugin = "sleeper"
mode = "apply"
breaker_failures = 0
{radius}
"#
    )
}

/// A firing `alertname` alert about `node` (its `instance`), with `more` labels.
fn about(alertname: &str, node: &str, more: &[(&str, &str)]) -> Value {
    let mut labels = vec![("alertname", alertname), ("instance", node)];
    labels.extend_from_slice(more);
    firing(&labels, "2026-11-26T10:00:00Z")
}

/// One delivery of `about(alertname, node, more)` to `receiver`; its status.
fn deliver(receiver: &Daemon, alertname: &str, node: &str, more: &[(&str, &str)]) -> u16 {
    let (status, answer) = receiver.post_alerts(&webhook("r", &[about(alertname, node, more)]));
    assert!(matches!(status, 202 | 503), "{status} {answer}");
    status
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(daemon: &Daemon, id: &str) -> Value {
    serde_json::from_str(&daemon.get(&format!("/v1/runs/{id}")).1).unwrap()
}

fn audit_verifies(dir: &Path, node: &str) {
    let home = dir.join(node);
    let verify = remedy(&home.join("state"), &home.join("remedy.toml"))
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
}

#[test]
fn an_alert_about_node_b_cleans_node_b_only_once_and_one_about_a_node_without_remedy_escalates() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let disks: Vec<(&str, Tmpfs)> = ["node-a", "node-b", "node-c"]
        .into_iter()
        .map(|node| (node, Tmpfs::mount("4m")))
        .collect();
    for (_, disk) in &disks {
        aged_file(&disk.path.join("old.log"), 64 * 1024, 30 * DAY);
        aged_file(&disk.path.join("fresh.log"), 1024, Duration::ZERO);
    }
    let agents: Vec<Daemon> = disks
        .iter()
        .map(|(node, disk)| agent(dir.path(), node, &url, &reaper_routes(&disk.path)))
        .collect();
    // The receivers' own disk is somewhere else: they must not touch the nodes'.
    let theirs = dir.path().join("receivers-disk");
    aged_file(&theirs.join("old.log"), 1024, 30 * DAY);
    let receivers = [
        receiver(dir.path(), "receiver-1", &url, &reaper_routes(&theirs)),
        receiver(dir.path(), "receiver-2", &url, &reaper_routes(&theirs)),
    ];
    let alertmanager = Alertmanager::start(dir.path(), &[receivers[0].addr, receivers[1].addr]);

    alertmanager.post_alert(json!({"alertname": "TmpFull", "instance": "node-b:9100"}));
    let runs = receivers[1].wait_for_runs("route=reap", 1, is_finished);
    std::thread::sleep(Duration::from_secs(3)); // room for a second run, were there one
    let runs_now = receivers[0].runs("route=reap&limit=100");
    assert_eq!(
        runs_now.len(),
        1,
        "one run for two deliveries: {runs_now:#?}"
    );
    let done = run(&receivers[0], runs[0]["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["node"], "node-b");
    for (node, disk) in &disks {
        let old = disk.path.join("old.log").exists();
        assert_eq!(old, *node != "node-b", "{node}'s old.log");
        assert!(disk.path.join("fresh.log").exists(), "{node}'s fresh file");
    }
    assert!(theirs.join("old.log").exists(), "the receivers' own disk");

    alertmanager.post_alert(json!({"alertname": "TmpFull", "instance": "node-z:9100"}));
    let query = "route=reap&node=node-z";
    let stranded = receivers[0].wait_for_runs(query, 1, is_finished);
    assert_eq!(stranded[0]["status"], "escalated", "{stranded:#?}");
    let why = stranded[0]["reason"].as_str().unwrap();
    assert!(why.contains("no remedy on node-z"), "{why}");

    let nodes = remedy(
        &dir.path().join("node-a/state"),
        &dir.path().join("node-a/remedy.toml"),
    )
    .args(["nodes", "--output", "json"])
    .output()
    .unwrap();
    assert_eq!(nodes.status.code(), Some(0), "{}", describe(&nodes));
    let seen: Vec<Value> = serde_json::from_slice(&nodes.stdout).unwrap();
    let mut live: Vec<(&str, &str)> = seen
        .iter()
        .filter(|m| m["live"] == true)
        .map(|m| (m["node"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    live.sort();
    assert_eq!(
        live,
        [
            ("node-a", "agent"),
            ("node-b", "agent"),
            ("node-c", "agent"),
            ("receiver-1", "serve"),
            ("receiver-2", "serve")
        ]
    );
    assert!(
        seen.iter().all(|m| m["plugins"]["tmp-reaper"].is_string()),
        "{seen:#?}"
    );
    drop(alertmanager);
    for agent in agents {
        agent.stop();
    }
    for receiver in receivers {
        receiver.stop();
    }
    audit_verifies(dir.path(), "node-a");
}

#[test]
fn an_agent_killed_mid_run_leaves_it_interrupted_when_the_lease_runs_out_never_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let routes = sleeper_routes("60s", "");
    let doomed = agent(dir.path(), "node-k", &url, &routes);
    let receiver = receiver(dir.path(), "receiver", &url, &routes);

    assert_eq!(deliver(&receiver, "Sleep", "node-k:9100", &[]), 202);
    let running = receiver.wait_for_runs("route=sleep", 1, |r| r["status"] == "running");
    let id = running[0]["id"].as_str().unwrap().to_string();
    doomed.kill_9();
    let killed = Instant::now();

    wait_for("the run's interruption", || {
        run(&receiver, &id)["status"] == "interrupted"
    });
    let ended = run(&receiver, &id);
    let why = ended["reason"].as_str().unwrap();
    assert!(why.contains("node-k") && why.contains("lease"), "{why}");
    assert!(
        killed.elapsed() >= Duration::from_secs(2),
        "not before the lease ran out"
    );

    // Back on its node, the agent finds nothing to resume.
    let again = agent(dir.path(), "node-k", &url, &routes);
    std::thread::sleep(Duration::from_secs(3));
    let runs = receiver.runs("route=sleep");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "interrupted");
    again.stop();
    receiver.stop();
    audit_verifies(dir.path(), "receiver");
}

#[test]
fn five_nodes_alerting_at_once_on_a_route_limited_to_two_never_run_more_than_two() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let routes = sleeper_routes("2s", "max_nodes = 2");
    let nodes: Vec<String> = (1..=5).map(|n| format!("node-{n}")).collect();
    let agents: Vec<Daemon> = nodes
        .iter()
        .map(|node| agent(dir.path(), node, &url, &routes))
        .collect();
    let receiver = receiver(dir.path(), "receiver", &url, &routes);

    let alerts: Vec<Value> = nodes.iter().map(|node| about("Sleep", node, &[])).collect();
    assert_eq!(receiver.post_alerts(&webhook("r", &alerts)).0, 202);
    wait_for("a run held back", || {
        receiver.runs("route=sleep").iter().any(|r| {
            r["status"] == "queued"
                && r["reason"]
                    .as_str()
                    .is_some_and(|w| w.contains("max_nodes is 2"))
        })
    });
    let runs = receiver.wait_for_runs("route=sleep", 5, is_finished);
    assert!(
        runs.iter().all(|r| r["status"] == "timed-out"),
        "each ran until its timeout: {runs:#?}"
    );

    // The proof, from the recorded start and end of every run.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let spans: Vec<(String, i64, i64)> = db
        .query(
            "SELECT node, started_ms, finished_ms FROM runs WHERE route = 'sleep'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let mut ran_on: Vec<&str> = spans.iter().map(|(node, ..)| node.as_str()).collect();
    ran_on.sort();
    assert_eq!(ran_on, nodes, "every node's run, once");
    let most_at_once = spans
        .iter()
        .map(|&(_, start, _)| {
            spans
                .iter()
                .filter(|&&(_, s, f)| s <= start && start < f)
                .count()
        })
        .max()
        .unwrap();
    assert!(most_at_once <= 2, "{most_at_once} at once: {spans:?}");
    for agent in agents {
        agent.stop();
    }
    receiver.stop();
    audit_verifies(dir.path(), "receiver");
}

#[test]
fn while_postgresql_is_down_agents_wait_and_after_it_returns_every_alert_runs_once() {
    let cluster = Cluster::start();
    let url = cluster.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("nothing-old");
    std::fs::create_dir_all(&empty).unwrap();
    let routes = reaper_routes(&empty);
    let agent = agent(dir.path(), "node-q", &url, &routes);
    let receiver = receiver(dir.path(), "receiver", &url, &routes);
    let about_q = |n: usize| deliver(&receiver, "TmpFull", "node-q", &[("n", &n.to_string())]);
    for n in 0..3 {
        assert_eq!(about_q(n), 202);
    }
    receiver.wait_for_runs("route=reap", 3, is_finished);

    cluster.stop();
    assert_eq!(about_q(3), 503, "Alertmanager retries a 503");
    std::thread::sleep(Duration::from_secs(4)); // longer than a lease
    assert_eq!(
        agent.request("GET", "/-/healthy", &[], b"").0,
        200,
        "the agent waits"
    );

    cluster.restart();
    for n in 3..6 {
        assert_eq!(about_q(n), 202);
    }
    let runs = receiver.wait_for_runs("route=reap&limit=100", 6, is_finished);
    assert_eq!(runs.len(), 6, "{runs:#?}");
    assert!(
        runs.iter()
            .all(|r| r["status"] == "nothing-to-do" && r["node"] == "node-q"),
        "{runs:#?}"
    );
    agent.stop();
    receiver.stop();
    audit_verifies(dir.path(), "receiver");
}

#[test]
fn a_plan_planned_on_its_node_is_approved_from_another_host_and_executed_there() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let disk = Tmpfs::mount("4m");
    aged_file(&disk.path.join("old.log"), 4096, 30 * DAY);
    let approve =
        |reap: &Path| reaper_routes(reap).replace("mode = \"apply\"", "mode = \"approve\"");
    let agent = agent(dir.path(), "node-p", &url, &approve(&disk.path));
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let receiver = receiver(dir.path(), "receiver", &url, &approve(&elsewhere));

    assert_eq!(deliver(&receiver, "TmpFull", "node-p:9100", &[]), 202);
    let waiting = receiver.wait_for_runs("route=reap", 1, is_finished);
    assert_eq!(waiting[0]["status"], "awaiting-approval", "{waiting:#?}");
    let id = waiting[0]["id"].as_str().unwrap().to_string();
    let planned = run(&receiver, &id);
    let path = planned["rounds"][0]["plan"]["actions"][0]["path"]
        .as_str()
        .unwrap();
    assert!(
        path.starts_with(disk.path.to_str().unwrap()),
        "planned on node-p's disk: {planned:#}"
    );
    assert!(
        disk.path.join("old.log").exists(),
        "nothing before approval"
    );

    // From the receiver's host, which is not node-p: it approves, node-p executes.
    let home = dir.path().join("receiver");
    let approved = remedy(&home.join("state"), &home.join("remedy.toml"))
        .args(["approve", &id, "--by", "alice"])
        .output()
        .unwrap();
    assert_eq!(approved.status.code(), Some(0), "{}", describe(&approved));
    let said = String::from_utf8_lossy(&approved.stdout);
    assert!(
        said.contains("the remedy on its node executes it"),
        "{said}"
    );
    wait_for("the approved run's end", || {
        is_finished(&run(&receiver, &id))
    });
    let done = run(&receiver, &id);
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert!(!disk.path.join("old.log").exists(), "removed on node-p");
    agent.stop();
    receiver.stop();
    audit_verifies(dir.path(), "receiver");
}

#[test]
fn an_agent_without_a_shared_store_refuses_to_start_and_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("remedy.toml");
    std::fs::write(&config, "[node]\nname = \"node-1\"\n").unwrap();
    let alone = remedy(&dir.path().join("state"), &config)
        .args(["agent", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(2), "{}", describe(&alone));
    let said = String::from_utf8_lossy(&alone.stderr);
    assert!(said.contains("[store] url"), "{said}");
}

#[test]
fn failures_on_different_nodes_open_the_route_breaker_for_the_whole_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let routes = sleeper_routes("1s", "").replace("breaker_failures = 0", "breaker_failures = 2");
    let agents: Vec<Daemon> = ["node-1", "node-2", "node-3"]
        .iter()
        .map(|node| agent(dir.path(), node, &url, &routes))
        .collect();
    let receiver = receiver(dir.path(), "receiver", &url, &routes);
    for node in ["node-1", "node-2"] {
        assert_eq!(deliver(&receiver, "Sleep", node, &[]), 202);
    }
    let failed = receiver.wait_for_runs("route=sleep", 2, is_finished);
    assert!(
        failed.iter().all(|r| r["status"] == "timed-out"),
        "{failed:#?}"
    );

    // Two failures, each on its own node: the route is held in dry-run everywhere.
    let home = dir.path().join("receiver");
    wait_for("the route's breaker to open", || {
        let open = remedy(&home.join("state"), &home.join("remedy.toml"))
            .args(["routes", "breakers"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&open.stdout).contains("sleep")
    });
    assert_eq!(deliver(&receiver, "Sleep", "node-3", &[]), 202);
    let third = receiver.wait_for_runs("route=sleep&node=node-3", 1, is_finished);
    assert_eq!(third[0]["dry_run"], true, "{third:#?}");
    let why = third[0]["reason"].as_str().unwrap();
    assert!(
        why.contains("circuit breaker of route `sleep` is open"),
        "{why}"
    );
    for agent in agents {
        agent.stop();
    }
    receiver.stop();
}
