//! Sustained webhook load on a real `remedy serve`: alerts per second, the
//! 202 latency at p50/p99, how fast the queue drains with a real plugin
//! (disk-cleanup, dry-run), the daemon's RSS idle and under load, and the
//! bytes it writes to storage per alert (a figure a slow day does not move).
//!
//! Then the same alerts posted to two receivers sharing one PostgreSQL, as
//! behind Alertmanager's HA pair; a receiver and an agent; a storm in
//! which every alert comes twice; and a thousand runs parked between
//! rounds.
//!
//! `cargo bench -p remedy --bench serve` (REMEDY_BENCH_ALERTS, REMEDY_BENCH_CLIENTS to change the load).

mod common;

use common::{
    Connection, Peak, assert_runs, drain, env_or, load, load_of, metric, payload, payload_of,
    percentile, print_machine_speed, rss_kib, start_daemon, start_remedy, storage_writes,
};
use std::time::{Duration, Instant};

#[path = "../tests/common/postgres.rs"]
mod postgres;

#[path = "../tests/common/ports.rs"]
mod ports;

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

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run this too: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let alerts = env_or("REMEDY_BENCH_ALERTS", 20_000);
    let clients = env_or("REMEDY_BENCH_CLIENTS", 8);
    // REMEDY_BENCH_ONLY=sqlite|postgresql|agent|duplicates|parked runs one of them.
    let only = std::env::var("REMEDY_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only == name;
    print_machine_speed();
    if wanted("sqlite") {
        one_receiver_on_sqlite(alerts, 1, clients);
        one_receiver_on_sqlite(alerts, 50, clients);
    }
    if wanted("postgresql") {
        two_receivers_on_postgresql(alerts, clients);
    }
    if wanted("agent") {
        receiver_to_agent(env_or("REMEDY_BENCH_AGENT_ALERTS", 500));
    }
    if wanted("duplicates") {
        duplicate_storm(env_or("REMEDY_BENCH_DELIVERIES", 100_000));
    }
    if wanted("parked") {
        parked_runs(env_or("REMEDY_BENCH_PARKED", 1_000));
    }
}

/// `deliveries` posts, one alert each, every alert posted twice in a row
/// (the two copies often at once, from two clients, as both members of
/// Alertmanager's HA pair would): the peak RSS, and exactly one run per
/// alert.
fn duplicate_storm(deliveries: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (addr, daemon) = start_daemon(dir.path(), "");
    let pid = daemon.0.id();
    let peak = Peak::start(move || rss_kib(pid, "VmRSS:"));
    let started = Instant::now();
    let (latencies, accepting) = load_of(&[addr], deliveries, 1, 8, |k| k / 2);
    let drained = drain(addr, started);
    let peak = peak.stop();
    let finished = assert_runs(&[addr], deliveries / 2);
    println!(
        "remedy serve on SQLite, {deliveries} deliveries of {} alerts, each twice, 8 clients",
        deliveries / 2
    );
    print_acceptance(deliveries, &latencies, accepting);
    print_remediation(finished, drained, "");
    println!("  peak RSS {:.1} MiB", peak as f64 / 1024.0);
}

/// `runs` runs that watch, each parked for ten minutes after its first
/// round: the daemon's threads and RSS idle, once a few runs are parked
/// (the first runs read back code and plugin pages start-up gave back, a
/// cost paid once, not per parked run), and with all of them parked.
fn parked_runs(runs: usize) {
    const WARM_UP: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let (addr, daemon) = start_daemon(dir.path(), "");
    let pid = daemon.0.id();
    let idle = Memory::of(pid);
    let mut connection = Connection::open(addr);
    park(&mut connection, addr, 0..WARM_UP);
    let warm = Memory::of(pid);
    park(&mut connection, addr, WARM_UP..WARM_UP + runs as u64);
    let parked = Memory::of(pid);
    // The blocking threads that admitted the alerts linger 10 s, then go.
    std::thread::sleep(Duration::from_secs(12));
    let settled = Memory::of(pid);
    println!("{runs} runs parked on a 10-minute recheck (4 workers), after {WARM_UP} parked first");
    println!(
        "  threads {} idle, {} after the first {WARM_UP}, {} once all were parked, {} 12 s later",
        idle.threads, warm.threads, parked.threads, settled.threads
    );
    println!(
        "  RSS {} idle, {} after the first {WARM_UP}, {} once all were parked, {} 12 s later",
        mib(idle.rss),
        mib(warm.rss),
        mib(parked.rss),
        mib(settled.rss)
    );
    for (what, before) in [
        (format!("the first {WARM_UP}"), &warm),
        ("idle".into(), &idle),
    ] {
        println!(
            "  over {what}: +{} of which anonymous memory +{}, code and other file pages +{}",
            mib(parked.rss - before.rss),
            mib(parked.anon - before.anon),
            mib((parked.rss - parked.anon) - (before.rss - before.anon))
        );
    }
}

/// Post alerts `numbers` to the Watch route and wait until every run
/// parked so far is parked.
fn park(connection: &mut Connection, addr: std::net::SocketAddr, numbers: std::ops::Range<u64>) {
    for first in numbers.clone().step_by(50) {
        let body = payload_of("Watch", first..(first + 50).min(numbers.end));
        let (status, answer) = connection.request("POST", "/v1/alerts", body.as_bytes());
        assert_eq!(status, 202, "{answer}");
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while metric(addr, "remedy_runs_waiting") < numbers.end as f64 {
        assert!(Instant::now() < deadline, "the runs were not all parked");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A process's threads and resident memory, in KiB.
struct Memory {
    threads: i64,
    rss: i64,
    anon: i64,
}

impl Memory {
    fn of(pid: u32) -> Memory {
        Memory {
            threads: rss_kib(pid, "Threads:") as i64,
            rss: rss_kib(pid, "VmRSS:") as i64,
            anon: rss_kib(pid, "RssAnon:") as i64,
        }
    }
}

fn mib(kib: i64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
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
    for n in 0..alerts as u64 {
        let body = payload(n..n + 1);
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

fn one_receiver_on_sqlite(alerts: usize, batch: usize, clients: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (addr, daemon) = start_daemon(dir.path(), "");
    let pid = daemon.0.id();
    let idle_rss = rss_kib(pid, "VmRSS:");
    let peak = Peak::start(move || rss_kib(pid, "VmRSS:"));
    let written_before = storage_writes(pid);
    let started = Instant::now();
    let (latencies, accepting) = load(&[addr], alerts, batch, clients);
    let drained = drain(addr, started);
    let peak = peak.stop();
    let finished = assert_runs(&[addr], alerts);
    let written = storage_writes(pid) - written_before;
    let hwm = rss_kib(pid, "VmHWM:");

    println!(
        "remedy serve on SQLite, {alerts} alerts ({batch} per request), {clients} keep-alive clients, disk-cleanup dry-run"
    );
    print_acceptance(alerts, &latencies, accepting);
    print_remediation(finished, drained, "");
    println!(
        "  RSS idle {:.1} MiB, peak under load {:.1} MiB (VmHWM {:.1} MiB)",
        idle_rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "  written to storage {:.1} KiB per alert, admitted and run",
        written as f64 / 1024.0 / alerts as f64
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
    let (latencies, accepting) = load(&[a, b], alerts, 1, clients);
    let drained = drain(a, started).max(drain(b, started));
    let finished = assert_runs(&[a, b], alerts);
    println!(
        "remedy serve on PostgreSQL, two receivers, {alerts} alerts each posted to both, {clients} keep-alive clients"
    );
    print_acceptance(alerts, &latencies, accepting);
    print_remediation(finished, drained, " by both,");
}
