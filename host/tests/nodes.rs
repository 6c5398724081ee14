//! Node identity: a run for one node never executes on another. A single
//! remedy on SQLite records an alert about another node as escalated, with
//! the reason, and acts only on alerts about itself; `remedy run` does the
//! same; a route cannot send a plugin that touches this node's things to
//! alerts about other nodes.

mod common;

use common::daemon::{Daemon, NODE, firing, is_finished, reaper_route, serve_config, webhook};
use common::ports::free_addr;
use common::{DAY, aged_file, describe, reaper_plugin, remedy};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A directory with two files older than tmp-reaper's one-day limit.
fn reap_dir(dir: &Path) -> PathBuf {
    let reap = dir.join("reap");
    for name in ["old-1.log", "old-2.log"] {
        aged_file(&reap.join(name), 4096, 30 * DAY);
    }
    reap
}

fn remaining(reap: &Path) -> usize {
    std::fs::read_dir(reap).unwrap().count()
}

#[test]
fn an_alert_about_another_node_is_recorded_with_the_reason_and_never_acted_on() {
    let dir = tempfile::tempdir().unwrap();
    let reap = reap_dir(dir.path());
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &reaper_route(&reap, "apply"));
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);

    let other = firing(
        &[("alertname", "TmpFull"), ("node", "node-b")],
        "2026-11-21T10:00:00Z",
    );
    let mut unnamed = firing(
        &[("alertname", "TmpFull"), ("n", "2")],
        "2026-11-21T10:00:00Z",
    );
    unnamed["labels"].as_object_mut().unwrap().remove("node");
    let (code, body) = daemon.post_alerts(&webhook("direct", &[other, unnamed]));
    assert_eq!(code, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    for alert in answer["alerts"].as_array().unwrap() {
        assert_eq!(alert["outcomes"][0]["outcome"], "escalated", "{answer:#}");
    }

    let runs = daemon.wait_for_runs("route=reap", 2, is_finished);
    let about_b = runs
        .iter()
        .find(|r| r["node"] == "node-b")
        .expect("a run for node-b");
    let reason = about_b["reason"].as_str().unwrap();
    assert_eq!(about_b["status"], "escalated");
    assert!(
        reason.contains("about node-b") && reason.contains(&format!("runs on {NODE}")),
        "{reason}"
    );
    let unknown = runs
        .iter()
        .find(|r| r["node"].is_null())
        .expect("a run for no node");
    assert_eq!(unknown["status"], "escalated");
    assert!(
        unknown["reason"]
            .as_str()
            .unwrap()
            .contains("no `node` label"),
        "{unknown:#}"
    );
    for run in &runs {
        let (code, detail) = daemon.get(&format!("/v1/runs/{}", run["id"].as_str().unwrap()));
        assert_eq!(code, 200, "{detail}");
        let detail: Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(
            detail["rounds"],
            Value::Array(vec![]),
            "the plugin never ran"
        );
    }
    assert_eq!(remaining(&reap), 2, "nothing was removed");
    assert_eq!(daemon.runs("node=node-b").len(), 1);
    assert_eq!(
        daemon.metric("remedy_alerts_received_total{status=\"firing\",outcome=\"escalated\"}"),
        Some(2.0)
    );

    // An alert about this node runs as before.
    let mine = firing(
        &[("alertname", "TmpFull"), ("n", "3")],
        "2026-11-21T10:00:00Z",
    );
    assert_eq!(daemon.post_alerts(&webhook("direct", &[mine])).0, 202);
    let runs = daemon.wait_for_runs("route=reap", 3, is_finished);
    let ran = runs
        .iter()
        .find(|r| r["node"] == NODE)
        .expect("a run for this node");
    assert_eq!(ran["status"], "succeeded", "{ran:#}");
    assert_eq!(remaining(&reap), 0);

    let verify = remedy(&dir.path().join("state"), &config)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", describe(&verify));
}

/// A config for `remedy run` on `node-a` with tmp-reaper reaping `reap`.
fn node_a_config(dir: &Path, reap: &Path, extra: &str) -> PathBuf {
    let path = dir.join("remedy.toml");
    let text = format!(
        "[node]\nname = \"node-a\"\n{}{extra}",
        reaper_plugin("tmp-reaper", reap, "1d")
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn remedy_run_acts_only_for_alerts_about_its_own_node() {
    let dir = tempfile::tempdir().unwrap();
    let reap = reap_dir(dir.path());
    let config = node_a_config(dir.path(), &reap, "");
    let state = dir.path().join("state");
    let run = |labels: &[&str]| {
        let mut command = remedy(&state, &config);
        command.args(["run", "tmp-reaper", "--apply", "--output", "json"]);
        for label in labels {
            command.args(["--label", label]);
        }
        command.output().unwrap()
    };

    let elsewhere = run(&["instance=node-b:9100"]);
    assert_eq!(elsewhere.status.code(), Some(4), "{}", describe(&elsewhere));
    let report: Value = serde_json::from_slice(&elsewhere.stdout).unwrap();
    assert_eq!(report["status"], "escalated");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("about node-b") && reason.contains("runs on node-a"),
        "{reason}"
    );
    assert_eq!(remaining(&reap), 2, "nothing was removed");

    let here = run(&["instance=NODE-A:9100"]);
    assert_eq!(here.status.code(), Some(0), "{}", describe(&here));
    assert_eq!(remaining(&reap), 0);

    // Run by hand without an alert naming a node: it is about this node.
    aged_file(&reap.join("old-3.log"), 4096, 30 * DAY);
    let unnamed = run(&[]);
    assert_eq!(unnamed.status.code(), Some(0), "{}", describe(&unnamed));
    assert_eq!(remaining(&reap), 0);
}

#[test]
fn a_plugin_granted_this_nodes_files_cannot_run_for_any_node() {
    let dir = tempfile::tempdir().unwrap();
    let reap = reap_dir(dir.path());
    let route = r#"
[[route]]
name = "reap"
matchers = ['alertname="TmpFull"']
plugin = "tmp-reaper"
runs_on = "any-node"
"#;
    let config = node_a_config(dir.path(), &reap, route);
    let check = remedy(&dir.path().join("state"), &config)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2), "{}", describe(&check));
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("runs_on = \"any-node\"") && text.contains("granted fs, proc"),
        "{text}"
    );

    let bad_pattern = node_a_config(dir.path(), &reap, "")
        .to_string_lossy()
        .to_string();
    let text = std::fs::read_to_string(&bad_pattern).unwrap();
    std::fs::write(
        &bad_pattern,
        text.replace(
            "name = \"node-a\"",
            "name = \"node-a\"\npattern = 'node-[0-9]+'",
        ),
    )
    .unwrap();
    let check = remedy(&dir.path().join("state"), Path::new(&bad_pattern))
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2), "{}", describe(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("has no capture group"),
        "{}",
        describe(&check)
    );
}
