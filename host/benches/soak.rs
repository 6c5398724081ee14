//! A long steady load on a real `remedy serve` with short retention: does
//! it stay flat? 1,000 alerts a second for ten minutes, one per request
//! from 8 keep-alive clients, half of them new DiskSpaceLow alerts (each a
//! disk-cleanup dry-run) and half re-sends of one from about ten seconds
//! before, as Alertmanager repeats a firing alert. Retention keeps a minute
//! of runs, alerts and audit records.
//!
//! Every 10 s it samples the daemon's RSS and the database's size (file and
//! write-ahead log); at the end it reports the RSS slope after the first
//! two minutes (the first retention has to pass before pruning starts),
//! the database's range over the same span, and every answer that was not
//! a 202. Then the queue drains and every new alert must have become one
//! run.
//!
//! `cargo bench -p remedy --bench soak` (REMEDY_SOAK_SECS, REMEDY_SOAK_RATE
//! to change the load).

mod common;

use common::{Connection, assert_runs, drain, env_or, payload, percentile, rss_kib, start_daemon};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RETENTION: &str = "[store.retention]\nruns = \"1m\"\nalerts = \"1m\"\naudit = \"1m\"\n";
const CLIENTS: u64 = 8;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const WARM_UP: Duration = Duration::from_secs(120);
/// A re-sent alert is the new one sent this many sends before.
const RESENT_FROM: u64 = 10_000;

/// The alert of send `k`: even sends are new alerts, odd ones re-send the
/// alert of about ten seconds before (a new one at the start).
fn alert_of(k: u64) -> u64 {
    match k % 2 {
        0 => k / 2,
        _ => (k / 2).saturating_sub(RESENT_FROM / 2),
    }
}

struct Sample {
    at: Duration,
    rss_kib: u64,
    db_bytes: u64,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds = env_or("REMEDY_SOAK_SECS", 600) as u64;
    let rate = env_or("REMEDY_SOAK_RATE", 1_000) as u64;
    let dir = tempfile::tempdir().unwrap();
    let (addr, daemon) = start_daemon(dir.path(), RETENTION);
    let pid = daemon.0.id();
    let db = dir.path().join("state");
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (stop, sent, refused, latencies) = (
                stop.clone(),
                sent.clone(),
                refused.clone(),
                latencies.clone(),
            );
            std::thread::spawn(move || {
                let mut connection = Connection::open(addr);
                // Each client sends every CLIENTS-th send, on its own clock.
                let interval = Duration::from_secs_f64(CLIENTS as f64 / rate as f64);
                let mut mine = Vec::new();
                let mut k = client;
                while !stop.load(Ordering::Relaxed) {
                    let due = started + interval.mul_f64((k / CLIENTS) as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let n = alert_of(k);
                    let body = payload(n..n + 1);
                    let asked = Instant::now();
                    let (status, _) = connection.request("POST", "/v1/alerts", body.as_bytes());
                    mine.push(asked.elapsed());
                    if status != 202 {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    k += CLIENTS;
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(SAMPLE_EVERY);
        let sample = Sample {
            at: started.elapsed(),
            rss_kib: rss_kib(pid, "VmRSS:"),
            db_bytes: database_bytes(&db),
        };
        println!(
            "  {:>4.0} s  RSS {:>5.1} MiB  database {:>6.1} MiB  {} sent  queue {}",
            sample.at.as_secs_f64(),
            sample.rss_kib as f64 / 1024.0,
            sample.db_bytes as f64 / 1_048_576.0,
            sent.load(Ordering::Relaxed),
            common::metric(addr, "remedy_queue_depth")
        );
        samples.push(sample);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let sends = sent.load(Ordering::Relaxed);
    drain(addr, started);
    report(&samples, sends, seconds, &latencies.lock().unwrap());
    let refused = refused.load(Ordering::Relaxed);
    assert_eq!(refused, 0, "every alert must be answered 202");
    let unique = (0..sends).filter(|k| k % 2 == 0).count();
    let runs = assert_runs(&[addr], unique);
    println!("  runs {runs:.0}: one per new alert, none for a re-sent one");
}

/// The database file and its write-ahead log.
fn database_bytes(state: &Path) -> u64 {
    ["state.db", "state.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(state.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn report(samples: &[Sample], sends: u64, seconds: u64, latencies: &[Duration]) {
    let mut latencies = latencies.to_vec();
    latencies.sort();
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.at >= WARM_UP).collect();
    let points: Vec<(f64, f64)> = settled
        .iter()
        .map(|s| (s.at.as_secs_f64() / 60.0, s.rss_kib as f64 / 1024.0))
        .collect();
    let db: Vec<f64> = settled
        .iter()
        .map(|s| s.db_bytes as f64 / 1_048_576.0)
        .collect();
    let (low, high) = db
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), &d| (l.min(d), h.max(d)));
    println!(
        "remedy serve on SQLite, {sends} alerts in {seconds} s ({:.0}/s, half re-sent), retention 1m",
        sends as f64 / seconds as f64
    );
    println!(
        "  202 latency p50 {:.2} ms  p99 {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    let last_half = &points[points.len() / 2..];
    println!(
        "  after {} s: RSS slope {:+.3} MiB/min ({:.1} to {:.1} MiB), {:+.3} MiB/min over the last half; \
         database {low:.1} to {high:.1} MiB",
        WARM_UP.as_secs(),
        slope(&points),
        points.first().map_or(0.0, |p| p.1),
        points.last().map_or(0.0, |p| p.1),
        slope(last_half),
    );
}

/// The least-squares slope of `points`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in points {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    if den == 0.0 { 0.0 } else { num / den }
}
