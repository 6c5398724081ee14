//! A real `remedy serve` process on a loopback port, and a raw HTTP/1.1
//! client that can send exactly the bytes a test wants (invalid UTF-8,
//! lying Content-Length, chunked bodies).

use super::{PLUGIN_DIR, remedy};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-7c1f";

/// The node a test daemon runs as. Its alerts name it in the `node` label
/// ([`alert`] adds it), so `instance` stays free for what a test wants.
pub const NODE: &str = "test-node";

/// A route `echo` sending `Echo` alerts to the echo plugin.
pub const ECHO_ROUTE: &str = r#"
[[route]]
name = "echo"
matchers = ['alertname="Echo"']
plugin = "echo"
"#;

/// A route `panicky` sending `Panic` alerts to the hostile plugin, whose
/// every run panics, in apply mode: `failures` failed runs within an hour
/// open its breaker (0: never).
pub fn panicky_route(failures: u32) -> String {
    format!(
        r#"
[[route]]
name = "panicky"
matchers = ['alertname="Panic"']
plugin = "hostile"
mode = "apply"
params = {{ attack = "panic" }}
breaker_failures = {failures}
breaker_window = "1h"
"#
    )
}

/// A person on call, who may read runs and decide on plans.
pub const ONCALL: (&str, &str) = ("oncall", "pager-at-3am");
/// A person who may only read.
pub const VIEWER: (&str, &str) = ("viewer", "look-dont-touch");

/// The `Authorization` value of a user's basic auth.
pub fn basic_auth((user, password): (&str, &str)) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `users.toml` in `dir` with ONCALL (read, decide) and VIEWER (read),
/// hashed at bcrypt's lowest cost so the tests stay quick.
pub fn write_users(dir: &Path) {
    let hash = |(_, password): (&str, &str)| bcrypt::hash(password, 4).unwrap();
    std::fs::write(
        dir.join("users.toml"),
        format!(
            "[basic_auth_users]\n{} = \"{}\"\n{} = \"{}\"\n\n[roles]\n{} = [\"read\", \"decide\"]\n{} = [\"read\"]\n",
            ONCALL.0,
            hash(ONCALL),
            VIEWER.0,
            hash(VIEWER),
            ONCALL.0,
            VIEWER.0
        ),
    )
    .unwrap();
}

/// A config for `remedy serve` with the test plugins and `routes`, a token
/// file, and `server` lines added to the `[server]` table.
pub fn serve_config(dir: &Path, addr: SocketAddr, server: &str, routes: &str) -> PathBuf {
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    write_users(dir);
    let config = format!(
        r#"
[node]
name = "{NODE}"
label = "node"

[server]
listen = "{addr}"
token_file = "token"
users_file = "users.toml"
{server}

[[plugin]]
name = "echo"
source = "{plugins}/echo.wasm"

[[plugin]]
name = "hostile"
source = "{plugins}/hostile.wasm"
timeout = "60s"
[plugin.grants]
fs_read = ["{dir}"]
proc = ["read"]

{routes}
"#,
        plugins = PLUGIN_DIR,
        dir = dir.display(),
    );
    let path = dir.join("remedy.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A plugin and route `brief`: alerts named `Brief` run the hostile plugin's
/// endless loop, which its `timeout` ends (as `timed-out`).
pub fn brief_loop_route(timeout: &str) -> String {
    hostile_route("brief", "Brief", "loop", timeout)
}

/// The hostile plugin as `{route}-plugin` with `timeout`, and a route `route`
/// that sends alerts named `alertname` to it with `attack`.
pub fn hostile_route(route: &str, alertname: &str, attack: &str, timeout: &str) -> String {
    format!(
        r#"
[[plugin]]
name = "{route}-plugin"
source = "{PLUGIN_DIR}/hostile.wasm"
timeout = "{timeout}"
[plugin.grants]
fs_read = ["/tmp"]
proc = ["read"]

[[route]]
name = "{route}"
matchers = ['alertname="{alertname}"']
plugin = "{route}-plugin"
params = {{ attack = "{attack}" }}
"#
    )
}

/// The tmp-reaper plugin reaping `reap`, and a route `reap` that sends
/// `TmpFull` alerts to it in `approve` mode.
pub fn reaper_approve_route(reap: &Path) -> String {
    reaper_route(reap, "approve")
}

/// The tmp-reaper plugin reaping files older than a day in `reap`, and a
/// route `reap` that sends `TmpFull` alerts to it in `mode`.
pub fn reaper_route(reap: &Path, mode: &str) -> String {
    format!(
        r#"{}
[[route]]
name = "reap"
matchers = ['alertname="TmpFull"']
plugin = "tmp-reaper"
mode = "{mode}"
"#,
        super::reaper_plugin("tmp-reaper", reap, "1d")
    )
}

pub struct Daemon {
    pub addr: SocketAddr,
    pub state: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Start `remedy serve` and wait until `/-/ready` answers 200.
    pub fn start(state: &Path, config: &Path, addr: SocketAddr) -> Daemon {
        Daemon::launch(state, config, addr, &["serve".to_string()])
    }

    /// Start `remedy agent` with health and metrics on `addr`, and wait
    /// until it is ready.
    pub fn agent(state: &Path, config: &Path, addr: SocketAddr) -> Daemon {
        let args = ["agent".to_string(), format!("--listen={addr}")];
        Daemon::launch(state, config, addr, &args)
    }

    fn launch(state: &Path, config: &Path, addr: SocketAddr, args: &[String]) -> Daemon {
        let role = &args[0];
        let log = state.with_extension(format!("{}.log", addr.port()));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = remedy(state, config)
            .args(args)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("remedy starts");
        let mut daemon = Daemon {
            addr,
            state: state.to_path_buf(),
            config: config.to_path_buf(),
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = daemon.child().try_wait().unwrap() {
                panic!("remedy {role} exited with {status}:\n{}", daemon.log());
            }
            if let Ok((200, _)) = try_request(addr, "GET", "/-/ready", &[], b"") {
                return daemon;
            }
            assert!(
                Instant::now() < deadline,
                "remedy {role} not ready in 60 s:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the daemon is running")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&mut self) -> u32 {
        self.child().id()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill_9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit; returns how long it took.
    pub fn stop(mut self) -> Duration {
        let started = Instant::now();
        let mut child = self.child.take().unwrap();
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "remedy serve exited with {status}:\n{}",
            self.log()
        );
        started.elapsed()
    }

    pub fn post_alerts(&self, body: &[u8]) -> (u16, String) {
        self.request(
            "POST",
            "/v1/alerts",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            body,
        )
    }

    /// Post a `Panic` alert that fired at `started` and wait until every
    /// run of the route `panicky` has failed and ended.
    pub fn fail_panicky_once(&self, started: &str) {
        let alert = firing(&[("alertname", "Panic")], started);
        assert_eq!(self.post_alerts(&webhook("r", &[alert])).0, 202);
        self.wait_for_runs("route=panicky", 1, is_finished);
    }

    /// GET as the person on call.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &[("Authorization", &basic_auth(ONCALL))], b"")
    }

    /// POST as the person on call: approve, reject, reload.
    pub fn decide(&self, path: &str, body: &[u8]) -> (u16, String) {
        self.request(
            "POST",
            path,
            &[("Authorization", &basic_auth(ONCALL))],
            body,
        )
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let (status, answer) = try_request(self.addr, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()));
        super::openapi::check_answer(method, path, status, &answer);
        (status, answer)
    }

    /// The runs `/v1/runs` lists for `query`.
    pub fn runs(&self, query: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.get(&format!("/v1/runs?{query}"));
        assert_eq!(status, 200, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        value["runs"].as_array().unwrap().clone()
    }

    /// Wait until `/v1/runs?{query}` lists runs all satisfying `done`, at least `count` of them.
    pub fn wait_for_runs(
        &self,
        query: &str,
        count: usize,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let runs = self.runs(query);
            if runs.len() >= count && runs.iter().all(&done) {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "runs for {query:?} did not settle: {runs:#?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The value of one sample of `/metrics`, such as `remedy_queue_depth`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let (status, text) = self.request("GET", "/metrics", &[], b"");
        assert_eq!(status, 200);
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn is_finished(run: &serde_json::Value) -> bool {
    !matches!(
        run["status"].as_str(),
        Some("queued" | "running" | "waiting")
    )
}

/// One request on a fresh connection; the answer's status and body.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    }) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    raw_exchange(addr, &[head.as_bytes(), body].concat())
}

/// Send `bytes` as they are and parse the answer.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    // Write while reading: the server may answer (413) before reading everything.
    let mut writer = stream.try_clone()?;
    let bytes = bytes.to_vec();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let _ = sending.join();
    if answer.is_empty() {
        read?;
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// An Alertmanager webhook body (version 4) holding `alerts`.
pub fn webhook(receiver: &str, alerts: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": "4",
        "groupKey": format!("{{}}:{{receiver=\"{receiver}\"}}"),
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test:9093",
        "alerts": alerts,
    }))
    .unwrap()
}

/// A firing alert with these labels, started at `starts_at`.
pub fn firing(labels: &[(&str, &str)], starts_at: &str) -> serde_json::Value {
    alert("firing", labels, starts_at)
}

/// An alert with these labels, about this test's node unless they name another.
pub fn alert(status: &str, labels: &[(&str, &str)], starts_at: &str) -> serde_json::Value {
    let mut labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    labels
        .entry("node")
        .or_insert_with(|| serde_json::Value::from(NODE));
    serde_json::json!({
        "status": status,
        "labels": labels,
        "annotations": {"summary": "test"},
        "startsAt": starts_at,
        "endsAt": if status == "resolved" { "2026-11-21T12:00:00Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "http://prometheus.test/graph",
        "fingerprint": "0000000000000000",
    })
}
