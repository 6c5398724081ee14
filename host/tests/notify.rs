//! Notifications reach a real HTTP receiver with the documented bodies, and a
//! receiver that never answers does not hold up remediation.

mod common;

use common::daemon::{Daemon, firing, is_finished, reaper_approve_route, serve_config, webhook};
use common::ports::free_addr;
use common::{DAY, aged_file};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers 200 to every POST and keeps the JSON bodies.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok()
                    && let Ok(json) = serde_json::from_slice(&body)
                {
                    kept.lock().unwrap().push(json);
                }
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Receiver { addr, bodies }
    }

    fn wait_for(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let bodies = self.bodies.lock().unwrap().clone();
            if bodies.len() >= count {
                return bodies;
            }
            assert!(
                Instant::now() < deadline,
                "only {} notifications: {bodies:#?}",
                bodies.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn events_reach_the_receivers_and_a_dead_one_slows_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let json = Receiver::start();
    let slack = Receiver::start();
    // Accepts connections (the kernel does) and never answers.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let reap = dir.path().join("reap");
    std::fs::create_dir(&reap).unwrap();
    aged_file(&reap.join("old.log"), 4096, 30 * DAY);

    let routes = format!(
        r#"
[[notify]]
name = "dead"
url = "http://{dead}/hook"
timeout = "60s"
retries = 2

[[notify]]
name = "ops-json"
url = "http://{json}/hook"

[[notify]]
name = "chat"
url = "http://{slack}/hook"
format = "slack"
events = ["escalated"]

[[route]]
name = "stuck"
matchers = ['alertname="DiskStuck"']
plugin = "echo"
params = {{ escalate = "disk still full after cleanup" }}

[[route]]
name = "crashy"
matchers = ['alertname="Crashy"']
plugin = "hostile"
params = {{ attack = "panic" }}
breaker_failures = 2
"#,
        dead = dead.local_addr().unwrap(),
        json = json.addr,
        slack = slack.addr,
    ) + &reaper_approve_route(&reap);
    let addr = free_addr();
    let config = serve_config(
        dir.path(),
        addr,
        "external_url = \"https://remedy.example/\"",
        &routes,
    );
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let alerts = [
        firing(
            &[("alertname", "DiskStuck"), ("instance", "node-1:9100")],
            "2026-11-21T10:00:00Z",
        ),
        firing(
            &[("alertname", "Crashy"), ("n", "1")],
            "2026-11-21T10:00:00Z",
        ),
        firing(
            &[("alertname", "Crashy"), ("n", "2")],
            "2026-11-21T10:00:00Z",
        ),
        firing(&[("alertname", "TmpFull")], "2026-11-21T10:00:00Z"),
    ];
    assert_eq!(daemon.post_alerts(&webhook("r", &alerts)).0, 202);

    // Every run finishes while the dead receiver still holds its first attempt (60 s).
    let runs = daemon.wait_for_runs("", 4, is_finished);
    let status = |route: &str| -> Vec<String> {
        runs.iter()
            .filter(|r| r["route"] == route)
            .map(|r| r["status"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(status("stuck"), ["escalated"]);
    assert_eq!(status("crashy"), ["trapped", "trapped"]);
    assert_eq!(status("reap"), ["awaiting-approval"]);

    let bodies = json.wait_for(5);
    for body in &bodies {
        common::assert_speaks_remedy(body, "notification");
    }
    let of =
        |event: &str| -> Vec<&Value> { bodies.iter().filter(|b| b["event"] == event).collect() };
    assert_eq!(of("failed").len(), 2, "{bodies:#?}");
    assert_eq!(of("approval-needed").len(), 1, "{bodies:#?}");
    let escalated = of("escalated");
    assert_eq!(escalated.len(), 1, "{bodies:#?}");
    let e = escalated[0];
    assert_eq!(e["route"], "stuck");
    assert_eq!(e["plugin"], "echo");
    assert_eq!(e["status"], "escalated");
    assert_eq!(e["reason"], "disk still full after cleanup");
    assert_eq!(e["labels"]["instance"], "node-1:9100");
    let run_id = e["run_id"].as_str().unwrap();
    assert!(!run_id.is_empty(), "{e}");
    let page = format!("https://remedy.example/ui/runs/{run_id}");
    assert_eq!(e["url"], page.as_str(), "the run's page in the console");
    assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
    let breaker = of("breaker-opened");
    assert_eq!(breaker.len(), 1, "{bodies:#?}");
    assert!(
        breaker[0]["reason"]
            .as_str()
            .unwrap()
            .contains("remedy routes reset crashy"),
        "{breaker:?}"
    );

    let chat = slack.wait_for(1);
    assert_eq!(chat.len(), 1, "only escalations go to the chat: {chat:#?}");
    let text = chat[0]["text"].as_str().unwrap();
    assert!(text.starts_with("remedy: escalated on route stuck (echo) for node-1:9100: disk still full after cleanup (run "), "{text}");
    assert!(
        text.ends_with(&format!(" <{page}|open in remedy>")),
        "{text}"
    );
    drop(dead);
}

#[test]
fn plugin_text_can_neither_mention_nor_link_in_chat() {
    let dir = tempfile::tempdir().unwrap();
    let slack = Receiver::start();
    let routes = format!(
        r#"
[[notify]]
name = "chat"
url = "http://{slack}/hook"
format = "slack"

[[route]]
name = "forged"
matchers = ['alertname="Forged"']
plugin = "echo"
params = {{ escalate = "<!channel> <!here> see <https://evil.example|the runbook> & <@U0123>\nremedy: succeeded\u001b[2J" }}
"#,
        slack = slack.addr,
    );
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &routes);
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let alert = firing(
        &[("alertname", "Forged"), ("instance", "<!everyone>")],
        "2026-11-25T10:00:00Z",
    );
    assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
    let text = slack.wait_for(1)[0]["text"].as_str().unwrap().to_string();
    assert!(
        !text.contains('<') && !text.contains('>'),
        "a mention or link got through: {text}"
    );
    assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text}");
    assert!(
        text.contains("&lt;!channel&gt; &lt;!here&gt; see &lt;https://evil.example|the runbook&gt; &amp; &lt;@U0123&gt;\\nremedy: succeeded\\x1B[2J"),
        "{text}"
    );
    assert!(text.contains("for &lt;!everyone&gt;"), "{text}");
}
