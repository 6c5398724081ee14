//! What remedy's benchmarks share: a `remedy serve` (or agent) on a free
//! port with a dry-run disk-cleanup route, keep-alive HTTP clients, a storm
//! of alerts, and waiting for the queue to drain.

#![allow(dead_code)] // each bench uses its own part of this

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "bench-token";
/// A person who may read the console: `(name, password)`.
pub const READER: (&str, &str) = ("reader", "bench-password");

pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn rss_kib(pid: u32, field: &str) -> u64 {
    proc_number(pid, "status", field)
}

/// Bytes process `pid` has had written to storage so far: its log and
/// database pages, not its sockets. Unlike a rate, the same work writes
/// about the same bytes on a slow day as on a fast one.
pub fn storage_writes(pid: u32) -> u64 {
    proc_number(pid, "io", "write_bytes:")
}

/// The number on the line of `/proc/PID/FILE` that starts with `field`;
/// 0 if there is none.
fn proc_number(pid: u32, file: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The highest of what `measure` reads every 20 ms, until [`Peak::stop`].
pub struct Peak {
    sampling: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Peak {
    pub fn start(measure: impl Fn() -> u64 + Send + 'static) -> Peak {
        let sampling = Arc::new(AtomicBool::new(true));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (sampling, peak) = (sampling.clone(), peak.clone());
            std::thread::spawn(move || {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(measure(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Peak {
            sampling,
            peak,
            thread,
        }
    }

    pub fn stop(self) -> u64 {
        self.sampling.store(false, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Connection {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// A request with the Alertmanager token.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        self.request_as(&format!("Bearer {TOKEN}"), method, path, body)
    }

    /// A request with `authorization` as its credentials.
    pub fn request_as(
        &mut self,
        authorization: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (u16, String) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {authorization}\r\n\
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

pub fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (_, text) = Connection::open(addr).request("GET", "/metrics", b"");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The runs `daemons` finished (`finished_runs`), which must be `expected`:
/// one per alert. A count that is off shows every outcome, to tell a run
/// that ended otherwise from one that never ran.
pub fn assert_runs(daemons: &[SocketAddr], expected: usize) -> f64 {
    let finished: f64 = daemons.iter().map(|&daemon| finished_runs(daemon)).sum();
    if finished as usize != expected {
        let outcomes: Vec<String> = daemons
            .iter()
            .map(|&daemon| runs_by_outcome(daemon))
            .collect();
        panic!(
            "every alert must become one run: {expected} alerts, {finished} runs finished; by outcome:\n{}",
            outcomes.join("\n")
        );
    }
    finished
}

fn runs_by_outcome(daemon: SocketAddr) -> String {
    let (_, text) = Connection::open(daemon).request("GET", "/metrics", b"");
    text.lines()
        .filter(|line| line.starts_with("remedy_runs_total{"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `remedy serve` on a free port with the bench's route, and `store`
/// appended to its config (empty: SQLite in its own state directory).
pub fn start_daemon(dir: &std::path::Path, store: &str) -> (SocketAddr, Daemon) {
    start_remedy(dir, "serve", "bench-node", store)
}

/// `remedy serve` or `remedy agent` (`role`) as node `node`.
pub fn start_remedy(
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
    let hash = bcrypt::hash(READER.1, 4).unwrap();
    let users = format!(
        "[basic_auth_users]\n{0} = \"{hash}\"\n[roles]\n{0} = [\"read\"]\n",
        READER.0
    );
    std::fs::write(dir.join("users.toml"), users).unwrap();
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
users_file = "users.toml"
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

# Runs that watch for ten minutes after their first round.
[[plugin]]
name = "echo"
source = "{wasm}/echo.wasm"

[[route]]
name = "watch"
matchers = ['alertname="Watch"']
plugin = "echo"
params = {{ watch = "1", recheck = "600" }}

{store}
"#,
            wasm = env!("REMEDY_PLUGIN_WASM_DIR"),
        ),
    )
    .unwrap();
    let child = Command::new(remedy_binary())
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

/// The remedy under test: this build's, or `REMEDY_BENCH_BINARY` (another
/// build measured by the same bench, as the "before" of a change).
pub fn remedy_binary() -> std::path::PathBuf {
    std::env::var_os("REMEDY_BENCH_BINARY")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_remedy").into())
}

/// `alerts` distinct alerts, `batch` to a request, from `clients`
/// keep-alive clients, each request posted to every receiver in turn (as
/// Alertmanager's HA pair does): the latency of every answer, and how long
/// accepting them all took.
pub fn load(
    receivers: &[SocketAddr],
    alerts: usize,
    batch: usize,
    clients: usize,
) -> (Vec<Duration>, Duration) {
    load_of(receivers, alerts, batch, clients, |n| n)
}

/// The same for `deliveries` posts, delivery `k` being alert `alert_of(k)`.
pub fn load_of(
    receivers: &[SocketAddr],
    deliveries: usize,
    batch: usize,
    clients: usize,
    alert_of: fn(u64) -> u64,
) -> (Vec<Duration>, Duration) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let next = next.clone();
            let receivers = receivers.to_vec();
            std::thread::spawn(move || {
                let mut connections: Vec<Connection> = receivers
                    .iter()
                    .map(|addr| Connection::open(*addr))
                    .collect();
                let mut latencies = Vec::new();
                loop {
                    let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                    if first >= deliveries as u64 {
                        return latencies;
                    }
                    let last = (first + batch as u64).min(deliveries as u64);
                    let body = payload_of("DiskSpaceLow", (first..last).map(alert_of));
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

/// A webhook payload of DiskSpaceLow alerts about volumes `numbers`, each
/// a distinct alert.
pub fn payload(numbers: std::ops::Range<u64>) -> String {
    payload_of("DiskSpaceLow", numbers)
}

/// The same for alerts named `alertname`.
pub fn payload_of(alertname: &str, numbers: impl IntoIterator<Item = u64>) -> String {
    let alerts: Vec<String> = numbers
        .into_iter()
        .map(|n| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"{alertname}","node":"bench-node","instance":"volume-{n}","mountpoint":"/"}},"annotations":{{}},"startsAt":"2026-11-21T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"x"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"version":"4","receiver":"remedy","status":"firing","groupKey":"{{}}:{{alertname=\"{alertname}\"}}","alerts":[{}]}}"#,
        alerts.join(",")
    )
}

/// The runs this receiver carried to their end.
pub fn finished_runs(addr: SocketAddr) -> f64 {
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
pub fn drain(addr: SocketAddr, started: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(1800);
    while metric(addr, "remedy_queue_depth") > 0.0 || metric(addr, "remedy_runs_executing") > 0.0 {
        assert!(Instant::now() < deadline, "the queue did not drain");
        std::thread::sleep(Duration::from_millis(200));
    }
    started.elapsed()
}

/// How fast this machine is right now, for reading a run's figures beside
/// runs from other days: the median of 200 overwrites of one 4 KiB page
/// followed by an `fdatasync`, in the directory where the benches keep
/// their state (the cost a durable commit cannot avoid), and a fixed
/// amount of hashing on one core.
pub fn print_machine_speed() {
    let scratch = tempfile::tempfile().unwrap();
    println!(
        "this machine now: a 4 KiB write + fdatasync {:.0} µs (median of 200), \
         hashing 64 MiB with SHA-256 {:.0} ms",
        median_sync(&scratch).as_secs_f64() * 1e6,
        hashing_time().as_secs_f64() * 1e3
    );
}

fn median_sync(file: &std::fs::File) -> Duration {
    use std::os::unix::fs::FileExt;
    const PAGE: usize = 4096;
    const PAGES: u64 = 64;
    // Written and synced once first, so that every measured write
    // overwrites allocated blocks, as a write-ahead log that starts over does.
    let allocated = vec![0; PAGE * PAGES as usize];
    file.write_all_at(&allocated, 0).unwrap();
    file.sync_all().unwrap();
    let page = [0x5a_u8; PAGE];
    let mut took: Vec<Duration> = (0..200u64)
        .map(|i| {
            let started = Instant::now();
            file.write_all_at(&page, (i % PAGES) * PAGE as u64).unwrap();
            file.sync_data().unwrap();
            started.elapsed()
        })
        .collect();
    took.sort();
    percentile(&took, 0.5)
}

fn hashing_time() -> Duration {
    use sha2::Digest;
    let block = vec![0xa5_u8; 1 << 20];
    let started = Instant::now();
    let mut hasher = sha2::Sha256::new();
    for _ in 0..64 {
        hasher.update(std::hint::black_box(&block));
    }
    std::hint::black_box(hasher.finalize());
    started.elapsed()
}
