//! Sustained webhook load on a real `remedy serve`: alerts per second, the
//! 202 latency at p50/p99, how fast the queue drains with a real plugin
//! (disk-cleanup, dry-run), and the daemon's RSS idle and under load.
//!
//! Then the same alerts posted to two receivers sharing one PostgreSQL, as
//! behind Alertmanager's HA pair.
//!
//! `cargo bench -p remedy --bench serve` (REMEDY_BENCH_ALERTS, REMEDY_BENCH_CLIENTS to change the load).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/common/postgres.rs"]
mod postgres;

const TOKEN: &str = "bench-token";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Connection {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer
            .write_all(&[head.as_bytes(), body].concat())
            .unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (_, text) = Connection::open(addr).request("GET", "/metrics", b"");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `remedy serve` on a free port with the bench's route, and `store`
/// appended to its config (empty: SQLite in its own state directory).
fn start_daemon(dir: &std::path::Path, store: &str) -> (SocketAddr, Daemon) {
    start_remedy(dir, "serve", "bench-node", store)
}

/// `remedy serve` or `remedy agent` (`role`) as node `node`.
fn start_remedy(
    dir: &std::path::Path,
    role: &str,
    node: &str,
    store: &str,
) -> (SocketAddr, Daemon) {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let config = dir.join("remedy.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[node]
name = "{node}"
label = "node"

[server]
listen = "{addr}"
token_file = "token"
max_queued = 1000000

[[plugin]]
name = "disk-cleanup"
source = "builtin:disk-cleanup"
[plugin.grants]
fs_read = ["/orchestrator", "/var/lib/nomad", "/var/log"]
fs_remove = ["/orchestrator/sandbox", "/orchestrator/template", "/var/lib/nomad/alloc", "/var/log"]
proc = ["read"]
nomad = ["read"]
docker = ["read"]

[nomad]
address = "http://127.0.0.1:9"
retries = 0

[docker]
socket = "/nonexistent/remedy-bench/docker.sock"

[[route]]
name = "disk"
matchers = ['alertname="DiskSpaceLow"']
plugin = "disk-cleanup"
mode = "dry-run"

{store}
"#
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_remedy"))
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg(role)
        .args((role == "agent").then(|| format!("--listen={addr}")))
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "remedy {role} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    (addr, daemon)
}

/// `alerts` distinct alerts from `clients` keep-alive clients, each alert
/// posted to every receiver in turn (as Alertmanager's HA pair does): the
/// latency of every answer, and how long accepting them all took.
fn load(receivers: &[SocketAddr], alerts: usize, clients: usize) -> (Vec<Duration>, Duration) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let next = next.clone();
            let receivers = receivers.to_vec();
            std::thread::spawn(move || {
                let mut connections: Vec<Connection> =
                    receivers.iter().map(|addr| Connection::open(*addr)).collect();
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= alerts as u64 {
                        return latencies;
                    }
                    let body = format!(
                        r#"{{"version":"4","receiver":"remedy","status":"firing","groupKey":"{{}}:{{alertname=\"DiskSpaceLow\"}}","alerts":[{{"status":"firing","labels":{{"alertname":"DiskSpaceLow","node":"bench-node","instance":"volume-{n}","mountpoint":"/"}},"annotations":{{}},"startsAt":"2026-11-21T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"x"}}]}}"#
                    );
                    for connection in &mut connections {
                        let sent = Instant::now();
                        let (status, answer) =
                            connection.request("POST", "/v1/alerts", body.as_bytes());
                        latencies.push(sent.elapsed());
                        assert_eq!(status, 202, "{answer}");
                    }
                }
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    latencies.sort();
    (latencies, started.elapsed())
}

fn print_acceptance(alerts: usize, latencies: &[Duration], accepting: Duration) {
    println!(
        "  accepted   {:>8.0} alerts/s   ({alerts} in {:.2} s)",
        alerts as f64 / accepting.as_secs_f64(),
        accepting.as_secs_f64()
    );
    println!(
        "  202 latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(latencies, 0.50).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}

fn print_remediation(finished: f64, drained: Duration, by: &str) {
    println!(
        "  remediated {:>8.0} runs/s     ({finished} runs{by} finished {:.2} s after the first alert)",
        finished / drained.as_secs_f64(),
        drained.as_secs_f64()
    );
}

/// The runs this receiver carried to their end.
fn finished_runs(addr: SocketAddr) -> f64 {
    // disk-cleanup dry-run on this host's disks: nothing to do, or a plan
    // that escalates when the disk is full of files it may not touch.
    ["succeeded", "nothing-to-do", "escalated"]
        .iter()
        .map(|outcome| {
            metric(
                addr,
                &format!(
                    "remedy_runs_total{{plugin=\"disk-cleanup\",route=\"disk\",outcome=\"{outcome}\",node=\"bench-node\"}}"
                ),
            )
        })
        .sum()
}

/// Wait until no run is queued or executing; how long after `started`.
fn drain(addr: SocketAddr, started: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(1800);
    while metric(addr, "remedy_queue_depth") > 0.0 || metric(addr, "remedy_runs_executing") > 0.0 {
        assert!(Instant::now() < deadline, "the queue did not drain");
        std::thread::sleep(Duration::from_millis(200));
    }
    started.elapsed()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run this too: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let alerts = env_or("REMEDY_BENCH_ALERTS", 20_000);
    let clients = env_or("REMEDY_BENCH_CLIENTS", 8);
    // REMEDY_BENCH_ONLY=sqlite|postgresql|agent runs one of the three.
    let only = std::env::var("REMEDY_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only == name;
    if wanted("sqlite") {
        one_receiver_on_sqlite(alerts, clients);
    }
    if wanted("postgresql") {
        two_receivers_on_postgresql(alerts, clients);
    }
    if wanted("agent") {
        receiver_to_agent(env_or("REMEDY_BENCH_AGENT_ALERTS", 500));
    }
}

/// A receiver and an agent on one PostgreSQL: alerts about the agent's node
/// posted one at a time, 20 a second, as a fleet sees them outside a storm.
/// How long from admission (the 202) to the agent starting the run, woken
/// by `NOTIFY`: each run's recorded `queue_ms`.
fn receiver_to_agent(alerts: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("[store]\nurl = \"{}\"\n", postgres::fresh_database());
    let (receiver, _r) = start_remedy(&dir.path().join("r"), "serve", "receiver", &store);
    let (agent, _a) = start_remedy(&dir.path().join("a"), "agent", "bench-node", &store);
    let mut connection = Connection::open(receiver);
    let started = Instant::now();
    for n in 0..alerts {
        let body = format!(
            r#"{{"version":"4","receiver":"remedy","status":"firing","groupKey":"{{}}:{{alertname=\"DiskSpaceLow\"}}","alerts":[{{"status":"firing","labels":{{"alertname":"DiskSpaceLow","node":"bench-node","instance":"volume-{n}","mountpoint":"/"}},"annotations":{{}},"startsAt":"2026-11-21T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"x"}}]}}"#
        );
        let (status, answer) = connection.request("POST", "/v1/alerts", body.as_bytes());
        assert_eq!(status, 202, "{answer}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drain(receiver, started);
    drain(agent, started);
    let (status, listing) = connection.request("GET", &format!("/v1/runs?limit={alerts}"), b"");
    assert_eq!(status, 200, "{listing}");
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let mut waits: Vec<Duration> = listing["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| Duration::from_millis(run["queue_ms"].as_u64().expect("every run started")))
        .collect();
    assert_eq!(waits.len(), alerts, "every alert must become one run");
    waits.sort();
    println!("a receiver and an agent on PostgreSQL, {alerts} alerts about the agent's node, 20/s");
    println!(
        "  202 to the agent starting the run  p50 {} ms  p99 {} ms  max {} ms",
        percentile(&waits, 0.50).as_millis(),
        percentile(&waits, 0.99).as_millis(),
        waits.last().unwrap().as_millis()
    );
}

fn one_receiver_on_sqlite(alerts: usize, clients: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (addr, daemon) = start_daemon(dir.path(), "");
    let pid = daemon.0.id();
    let idle_rss = rss_kib(pid, "VmRSS:");
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid, "VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let (latencies, accepting) = load(&[addr], alerts, clients);
    let drained = drain(addr, started);
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let finished = finished_runs(addr);
    assert_eq!(finished as usize, alerts, "every alert must become one run");
    let hwm = rss_kib(pid, "VmHWM:");

    println!(
        "remedy serve on SQLite, {alerts} alerts (one per request), {clients} keep-alive clients, disk-cleanup dry-run"
    );
    print_acceptance(alerts, &latencies, accepting);
    print_remediation(finished, drained, "");
    println!(
        "  RSS idle {:.1} MiB, peak under load {:.1} MiB (VmHWM {:.1} MiB)",
        idle_rss as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}

/// Two receivers on one PostgreSQL (a throwaway local cluster), every alert
/// posted to both: one admits it, the other answers it is a duplicate.
fn two_receivers_on_postgresql(alerts: usize, clients: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("[store]\nurl = \"{}\"\n", postgres::fresh_database());
    let (a, _a) = start_daemon(&dir.path().join("a"), &store);
    let (b, _b) = start_daemon(&dir.path().join("b"), &store);
    let started = Instant::now();
    let (latencies, accepting) = load(&[a, b], alerts, clients);
    let drained = drain(a, started).max(drain(b, started));
    let finished = finished_runs(a) + finished_runs(b);
    assert_eq!(finished as usize, alerts, "every alert must become one run");
    println!(
        "remedy serve on PostgreSQL, two receivers, {alerts} alerts each posted to both, {clients} keep-alive clients"
    );
    print_acceptance(alerts, &latencies, accepting);
    print_remediation(finished, drained, " by both,");
}
