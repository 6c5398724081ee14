//! remedy behind a real Alertmanager (Debian's `prometheus-alertmanager`,
//! installed by scripts/test): alerts posted to Alertmanager's API arrive as
//! real webhooks with real retries.

mod common;

use common::daemon::{
    Daemon, TOKEN, brief_loop_route, firing, free_addr, is_finished, serve_config, try_request,
    webhook,
};
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "prometheus-alertmanager";

struct Alertmanager {
    addr: SocketAddr,
    child: Child,
}

impl Alertmanager {
    /// Start Alertmanager with one receiver: remedy at `remedy`, with the test token.
    fn start(dir: &Path, remedy: SocketAddr) -> Alertmanager {
        let token = dir.join("am-token");
        std::fs::write(&token, TOKEN).unwrap();
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                r#"
route:
  receiver: remedy
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: remedy
    webhook_configs:
      - url: http://{remedy}/v1/alerts
        send_resolved: true
        http_config:
          authorization:
            credentials_file: {token}
"#,
                token = token.display()
            ),
        )
        .unwrap();
        let addr = free_addr();
        let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {BINARY}: {e}; install Debian's prometheus-alertmanager (scripts/test does)")
            });
        let mut alertmanager = Alertmanager { addr, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(try_request(addr, "GET", "/-/ready", &[], b""), Ok((200, _))) {
            if let Some(status) = alertmanager.child.try_wait().unwrap() {
                panic!(
                    "{BINARY} exited with {status}:\n{}",
                    std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "{BINARY} not ready in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        alertmanager
    }

    /// Post one alert to Alertmanager's API, as Prometheus would.
    fn post_alert(&self, mut labels: serde_json::Value) {
        labels["node"] = json!(common::daemon::NODE);
        let body = serde_json::to_vec(&json!([{
            "labels": labels,
            "annotations": {"summary": "posted by remedy's test"},
            "generatorURL": "http://prometheus.test/graph",
        }]))
        .unwrap();
        let (status, answer) = try_request(
            self.addr,
            "POST",
            "/api/v2/alerts",
            &[("Content-Type", "application/json")],
            &body,
        )
        .unwrap();
        assert_eq!(status, 200, "Alertmanager refused the alert: {answer}");
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let alertmanager = Alertmanager::start(dir.path(), addr);

    alertmanager
        .post_alert(json!({"alertname": "EchoFromAlertmanager", "instance": "node-1:9100"}));
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
    let alertmanager = Alertmanager::start(dir.path(), addr);
    let brief = |n| firing(&[("alertname", "Brief"), ("n", n)], "2026-11-21T10:00:00Z");
    assert_eq!(remedy.post_alerts(&webhook("direct", &[brief("1")])).0, 202);
    remedy.wait_for_runs("route=brief", 1, |r| r["status"] == "running");
    assert_eq!(remedy.post_alerts(&webhook("direct", &[brief("2")])).0, 202);
    assert_eq!(remedy.metric("remedy_queue_depth"), Some(1.0));

    alertmanager
        .post_alert(json!({"alertname": "EchoFromAlertmanager", "instance": "node-2:9100"}));
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
