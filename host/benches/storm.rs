//! An alert storm against remedy and against adnanh/webhook (Debian
//! `webhook`, the receiver Alertmanager's maintainers point users to),
//! side by side in one run.
//!
//! Eight keep-alive connections post unique alerts, one per request, for
//! ten seconds. Each receiver then has until everything it accepted is
//! handled, or two minutes. Handled means: for remedy, a disk-cleanup
//! dry-run ended in a recorded state; for webhook, its shell script (which
//! looks at the alert's disk with `df`, as the dry-run does) ran to its end.
//! Reported for each: alerts accepted, alerts handled per second from the
//! first alert to the last one handled (to the end of the two minutes when
//! some never were), what was still unhandled at the end, and the peak RSS
//! of the receiver and every process it started.
//!
//! `cargo bench -p remedy --bench storm` (REMEDY_BENCH_STORM_SECS to change
//! the storm's length).

mod common;

use common::{Connection, env_or, finished_runs, payload, start_daemon};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
const GRACE: Duration = Duration::from_secs(120);

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let storm = Duration::from_secs(env_or("REMEDY_BENCH_STORM_SECS", 10) as u64);
    println!(
        "a {}-second storm of unique alerts, {CLIENTS} connections, one alert per request",
        storm.as_secs()
    );
    let dir = tempfile::tempdir().unwrap();
    let (addr, daemon) = start_daemon(&dir.path().join("remedy"), "");
    let remedy = Receiver {
        addr,
        path: "/v1/alerts",
        pid: daemon.0.id(),
        handled: Box::new(move || finished_runs(addr) as u64),
    };
    report("remedy", remedy.storm(storm));
    drop(daemon);

    let (addr, webhook, log) = start_webhook(&dir.path().join("webhook"));
    let webhook = Receiver {
        addr,
        path: "/hooks/alert",
        pid: webhook.0.id(),
        handled: Box::new(move || {
            std::fs::read_to_string(&log).map_or(0, |text| text.lines().count() as u64)
        }),
    };
    report("webhook", webhook.storm(storm));
}

struct Receiver {
    addr: SocketAddr,
    path: &'static str,
    pid: u32,
    handled: Box<dyn Fn() -> u64>,
}

struct Outcome {
    accepted: u64,
    handled: u64,
    /// From the first alert to the last handled (or the end of the grace).
    took: Duration,
    peak_rss_kib: u64,
}

impl Receiver {
    fn storm(&self, length: Duration) -> Outcome {
        let pid = self.pid;
        let peak = common::Peak::start(move || tree_rss_kib(pid));
        let started = Instant::now();
        let accepted = post_for(self.addr, self.path, length);
        let deadline = Instant::now() + GRACE;
        let (mut handled, mut last_change, mut last) = (0, Instant::now(), 0);
        while handled < accepted && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            handled = (self.handled)();
            if handled != last {
                (last, last_change) = (handled, Instant::now());
            }
        }
        let peak_rss_kib = peak.stop();
        // What was never handled counts against the rate: the time is then
        // all the time given.
        let end = if handled >= accepted {
            last_change
        } else {
            Instant::now()
        };
        Outcome {
            accepted,
            handled,
            took: end - started,
            peak_rss_kib,
        }
    }
}

/// Post unique alerts from every client until `length` has passed: how
/// many were accepted (any 2xx).
fn post_for(addr: SocketAddr, path: &'static str, length: Duration) -> u64 {
    let next = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + length;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let mut connection = Connection::open(addr);
                let mut accepted = 0;
                while Instant::now() < until {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let (status, answer) =
                        connection.request("POST", path, payload(n..n + 1).as_bytes());
                    assert!((200..300).contains(&status), "{status}: {answer}");
                    accepted += 1;
                }
                accepted
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).sum()
}

fn report(name: &str, outcome: Outcome) {
    let Outcome {
        accepted,
        handled,
        took,
        peak_rss_kib,
    } = outcome;
    println!(
        "  {name:<8} accepted {accepted:>7}  handled {handled:>7} in {:>6.1} s = {:>7.0}/s  \
         unhandled at the end {:>5.1} %  peak RSS {:>6.1} MiB",
        took.as_secs_f64(),
        handled as f64 / took.as_secs_f64(),
        100.0 * (accepted - handled.min(accepted)) as f64 / accepted.max(1) as f64,
        peak_rss_kib as f64 / 1024.0
    );
}

/// `webhook` on a free port with one hook running a script per alert; the
/// script appends the alert's instance to the returned log when it is done.
fn start_webhook(dir: &std::path::Path) -> (SocketAddr, common::Daemon, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let log = dir.join("handled.log");
    let script = dir.join("handle.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ndf -P / >/dev/null\necho \"$1\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&script, executable).unwrap();
    let hooks = dir.join("hooks.json");
    let hook = serde_json::json!([{
        "id": "alert",
        "execute-command": script,
        "command-working-directory": dir,
        "pass-arguments-to-command": [{"source": "payload", "name": "alerts.0.labels.instance"}],
    }]);
    std::fs::write(&hooks, hook.to_string()).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("webhook")
        .arg("-hooks")
        .arg(&hooks)
        .args(["-ip", "127.0.0.1", "-port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("webhook (Debian package `webhook`) runs");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "webhook did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (addr, common::Daemon(child), log)
}

/// Resident memory of `pid` and all its descendants.
fn tree_rss_kib(pid: u32) -> u64 {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The parent is the second field after the parenthesised name.
        if let Some(parent) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
        {
            parents.push((child, parent));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree.iter().map(|pid| common::rss_kib(*pid, "VmRSS:")).sum()
}
