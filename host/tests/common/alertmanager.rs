//! A real Alertmanager (Debian's `prometheus-alertmanager`, installed by
//! scripts/test) sending its webhooks to remedy.

use super::daemon::{TOKEN, try_request};
use super::ports::free_addr;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "prometheus-alertmanager";

pub struct Alertmanager {
    pub addr: SocketAddr,
    child: Child,
}

impl Alertmanager {
    /// Start Alertmanager with one receiver whose webhooks go to every
    /// remedy in `remedies` (as to an HA pair), with the test token.
    pub fn start(dir: &Path, remedies: &[SocketAddr]) -> Alertmanager {
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
{targets}"#,
                targets = remedies
                    .iter()
                    .map(|remedy| format!(
                        "      - url: http://{remedy}/v1/alerts\n        send_resolved: true\n        http_config:\n          authorization:\n            credentials_file: {}\n",
                        token.display()
                    ))
                    .collect::<String>()
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
    pub fn post_alert(&self, labels: serde_json::Value) {
        self.post(json!({
            "labels": labels,
            "annotations": {"summary": "posted by remedy's test"},
            "generatorURL": "http://prometheus.test/graph",
        }));
    }

    /// Post the alert with `labels` as resolved a second ago, as Prometheus
    /// does once its rule stops firing.
    pub fn resolve_alert(&self, labels: serde_json::Value) {
        let ended = std::time::SystemTime::now() - Duration::from_secs(1);
        self.post(json!({
            "labels": labels,
            "annotations": {"summary": "posted by remedy's test"},
            "endsAt": humantime::format_rfc3339_seconds(ended).to_string(),
        }));
    }

    fn post(&self, alert: serde_json::Value) {
        let body = serde_json::to_vec(&json!([alert])).unwrap();
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
