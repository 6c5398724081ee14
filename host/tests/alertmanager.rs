//! remedy behind a real Alertmanager (Debian's `prometheus-alertmanager`,
//! installed by scripts/test): alerts posted to Alertmanager's API arrive as
//! real webhooks with real retries.

mod common;

use common::alertmanager::Alertmanager;
use common::daemon::{
    Daemon, NODE, brief_loop_route, firing, free_addr, is_finished, serve_config, webhook,
};
use serde_json::json;
use std::time::Duration;

const ECHO_ROUTE: &str = r#"
[[route]]
name = "echo"
matchers = ['alertname="EchoFromAlertmanager"']
plugin = "echo"
"#;

#[test]
fn an_alert_posted_to_alertmanager_becomes_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", ECHO_ROUTE);
    let remedy = Daemon::start(&dir.path().join("state"), &config, addr);
    let alertmanager = Alertmanager::start(dir.path(), &[addr]);

    alertmanager.post_alert(
        json!({"alertname": "EchoFromAlertmanager", "instance": "node-1:9100", "node": NODE}),
    );
    let runs = remedy.wait_for_runs("route=echo", 1, is_finished);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["plugin"], "echo");
    assert_eq!(runs[0]["status"], "nothing-to-do");
    let (_, body) = remedy.get(&format!("/v1/runs/{}", runs[0]["id"].as_str().unwrap()));
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    let labels = detail["alert"]["labels"].to_string();
    assert!(labels.contains("node-1:9100"), "{detail:#}");
    // The echo plugin answers with the labels it was given, as checks.
    assert!(
        detail["rounds"][0]["plan"]["checks"]
            .to_string()
            .contains("EchoFromAlertmanager")
    );
    assert_eq!(
        remedy
            .metric("remedy_runs_total{plugin=\"echo\",route=\"echo\",outcome=\"nothing-to-do\",node=\"test-node\"}"),
        Some(1.0)
    );
    assert_eq!(
        remedy.metric("remedy_alerts_received_total{status=\"firing\",outcome=\"queued\"}"),
        Some(1.0)
    );
}

#[test]
fn alertmanager_retries_through_503s_and_the_alert_still_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let routes = format!("{}{ECHO_ROUTE}", brief_loop_route("3s"));
    // One worker and room for one queued run: two slow runs fill remedy up.
    let config = serve_config(dir.path(), addr, "workers = 1\nmax_queued = 1", &routes);
    let remedy = Daemon::start(&dir.path().join("state"), &config, addr);
    let alertmanager = Alertmanager::start(dir.path(), &[addr]);
    let brief = |n| firing(&[("alertname", "Brief"), ("n", n)], "2026-11-21T10:00:00Z");
    assert_eq!(remedy.post_alerts(&webhook("direct", &[brief("1")])).0, 202);
    remedy.wait_for_runs("route=brief", 1, |r| r["status"] == "running");
    assert_eq!(remedy.post_alerts(&webhook("direct", &[brief("2")])).0, 202);
    assert_eq!(remedy.metric("remedy_queue_depth"), Some(1.0));

    alertmanager.post_alert(
        json!({"alertname": "EchoFromAlertmanager", "instance": "node-2:9100", "node": NODE}),
    );
    let runs = remedy.wait_for_runs("route=echo", 1, is_finished);
    let refused = remedy
        .metric("remedy_webhook_requests_total{code=\"503\"}")
        .unwrap_or(0.0);
    assert!(
        refused >= 1.0,
        "Alertmanager never met a full queue:\n{}",
        remedy.log()
    );
    std::thread::sleep(Duration::from_secs(3)); // room for any late retry
    let runs_after = remedy.runs("route=echo");
    assert_eq!(runs_after.len(), 1, "{runs_after:#?}");
    assert_eq!(runs[0]["id"], runs_after[0]["id"]);
    assert_eq!(runs_after[0]["status"], "nothing-to-do");
}
