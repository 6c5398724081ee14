//! remedy behind a real Alertmanager (Debian's `prometheus-alertmanager`,
//! installed by scripts/test): alerts posted to Alertmanager's API arrive as
//! real webhooks with real retries.

mod common;

use common::alertmanager::Alertmanager;
use common::daemon::{Daemon, NODE, brief_loop_route, firing, is_finished, serve_config, webhook};
use common::ports::free_addr;
use common::{DAY, aged_file};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// tmp-reaper on `reap` in `mode`, routed `TmpFull`, with Alertmanager at
/// `alertmanager` and `route` lines added to the route.
fn reaper_asking(
    dir: &Path,
    addr: SocketAddr,
    reap: &Path,
    mode: &str,
    alertmanager: &str,
    route: &str,
) -> PathBuf {
    let routes = format!("{}{route}\n", common::daemon::reaper_route(reap, mode));
    let config = serve_config(dir, addr, "", &routes);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[alertmanager]\nurl = \"{alertmanager}\"\n{text}"),
    )
    .unwrap();
    config
}

#[test]
fn an_approved_plan_whose_alert_resolved_meanwhile_is_cancelled_not_executed() {
    let dir = tempfile::tempdir().unwrap();
    let reap = dir.path().join("reap");
    aged_file(&reap.join("old.log"), 4096, 30 * DAY);
    let addr = free_addr();
    let alertmanager = Alertmanager::start(dir.path(), &[addr]);
    let url = format!("http://{}", alertmanager.addr);
    let config = reaper_asking(dir.path(), addr, &reap, "approve", &url, "");
    let remedy = Daemon::start(&dir.path().join("state"), &config, addr);
    let approve = |id: &str| remedy.decide(&format!("/v1/runs/{id}/approve"), b"");

    let gone = json!({"alertname": "TmpFull", "node": NODE, "n": "1"});
    alertmanager.post_alert(gone.clone());
    let waiting = remedy.wait_for_runs("route=reap", 1, is_finished);
    assert_eq!(waiting[0]["status"], "awaiting-approval", "{waiting:#?}");
    // Fixed by hand meanwhile: Prometheus resolves the alert, then someone approves.
    alertmanager.resolve_alert(gone);
    assert_eq!(approve(waiting[0]["id"].as_str().unwrap()).0, 200);
    let ended = remedy.wait_for_runs("route=reap", 1, is_finished);
    assert_eq!(ended[0]["status"], "cancelled", "{ended:#?}");
    let why = ended[0]["reason"].as_str().unwrap();
    assert!(
        why.contains("no longer fires") && why.contains("nothing was executed"),
        "{why}"
    );
    assert!(reap.join("old.log").exists(), "nothing was removed");

    // The same, approved while its alert still fires: it runs.
    alertmanager.post_alert(json!({"alertname": "TmpFull", "node": NODE, "n": "2"}));
    let both = remedy.wait_for_runs("route=reap", 2, is_finished);
    let second = both
        .iter()
        .find(|r| r["status"] == "awaiting-approval")
        .unwrap();
    assert_eq!(approve(second["id"].as_str().unwrap()).0, 200);
    let done = remedy.wait_for_runs("route=reap&outcome=succeeded", 1, is_finished);
    assert_eq!(done.len(), 1, "{done:#?}");
    assert!(
        !reap.join("old.log").exists(),
        "removed while the alert fired"
    );
}

#[test]
fn when_alertmanager_cannot_be_asked_a_route_refuses_unless_it_says_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let reap = dir.path().join("reap");
    aged_file(&reap.join("old.log"), 4096, 30 * DAY);
    let nobody = format!("http://{}", free_addr());
    for (policy, status, kept) in [
        ("", "escalated", true),
        ("unconfirmed = \"proceed\"", "succeeded", false),
    ] {
        let home = dir.path().join(if kept { "refuse" } else { "proceed" });
        std::fs::create_dir_all(&home).unwrap();
        let addr = free_addr();
        let config = reaper_asking(&home, addr, &reap, "apply", &nobody, policy);
        let remedy = Daemon::start(&home.join("state"), &config, addr);
        let alert = firing(&[("alertname", "TmpFull")], "2026-11-26T10:00:00Z");
        assert_eq!(remedy.post_alerts(&webhook("r", &[alert])).0, 202);
        let runs = remedy.wait_for_runs("route=reap", 1, is_finished);
        assert_eq!(runs[0]["status"], status, "{policy}: {runs:#?}");
        if kept {
            let why = runs[0]["reason"].as_str().unwrap();
            assert!(
                why.contains("cannot ask Alertmanager") && why.contains("refuses"),
                "{why}"
            );
        }
        assert_eq!(reap.join("old.log").exists(), kept, "{policy}");
    }
}
