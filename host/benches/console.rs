//! The console after a storm: a real `remedy serve` admits and runs one
//! dry-run disk-cleanup run per alert (10,000 by default), then a person
//! opens the pages: the runs page (its 200 newest runs, the chart of the
//! day counted over all of them, the approvals badge), the same filtered,
//! one run's page (rounds, timeline, audit records with their chain) and
//! the approvals page. Each is asked for many times on one keep-alive
//! loopback connection, so the time is the server's plus a loopback round
//! trip. Then the weight of the console's embedded stylesheet and script.
//!
//! `cargo bench -p remedy --bench console` (REMEDY_BENCH_RUNS and
//! REMEDY_BENCH_REQUESTS to change the history and the samples).

mod common;

use base64::Engine;
use common::{Connection, READER, assert_runs, drain, env_or, load, percentile, start_daemon};
use std::time::{Duration, Instant};

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run this too: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runs = env_or("REMEDY_BENCH_RUNS", 10_000);
    let requests = env_or("REMEDY_BENCH_REQUESTS", 200);
    let dir = tempfile::tempdir().unwrap();
    let (addr, _daemon) = start_daemon(dir.path(), "");
    let started = Instant::now();
    load(&[addr], runs, 1, 4);
    drain(addr, started);
    assert_runs(&[addr], runs);

    let mut connection = Connection::open(addr);
    let credentials = format!("{}:{}", READER.0, READER.1);
    let reader = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    let (_, listing) = connection.request_as(&reader, "GET", "/v1/runs?limit=1", b"");
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let newest = listing["runs"][0]["id"].as_str().unwrap().to_string();

    println!(
        "the console with {runs} runs in the store (SQLite), {requests} requests a page, one keep-alive client"
    );
    let pages = [
        (
            "runs page (200 newest, the day's chart)",
            "/ui/".to_string(),
        ),
        (
            "runs page filtered (outcome, last hour)",
            "/ui/?outcome=escalated&since=1h".to_string(),
        ),
        ("one run's page", format!("/ui/runs/{newest}")),
        ("approvals page", "/ui/approvals".to_string()),
    ];
    for (what, path) in &pages {
        let mut get = || {
            let asked = Instant::now();
            let (status, page) = connection.request_as(&reader, "GET", path, b"");
            assert_eq!(status, 200, "{path}: {page}");
            (asked.elapsed(), page.len())
        };
        // The first answer proves the password (bcrypt); later ones are cached.
        let (_, bytes) = get();
        let mut times: Vec<Duration> = (0..requests).map(|_| get().0).collect();
        times.sort();
        println!(
            "  {what:<42} p50 {:>6.2} ms  p99 {:>6.2} ms  {:>4} KiB",
            percentile(&times, 0.50).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            bytes / 1024
        );
    }
    let mut weigh = |file: &str| {
        let (status, body) =
            connection.request_as(&reader, "GET", &format!("/ui/static/{file}"), b"");
        assert_eq!(status, 200, "{file}");
        body.len()
    };
    let (css, js) = (weigh("remedy.css"), weigh("remedy.js"));
    println!(
        "  assets: remedy.css {css} B + remedy.js {js} B = {} B, nothing else is loaded",
        css + js
    );
}
