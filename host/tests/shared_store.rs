//! Two receivers on one PostgreSQL, as behind Alertmanager's HA pair: each
//! delivery goes to both, and each alert is admitted, run and audited
//! exactly once in the shared store. Losing one receiver loses nothing.

mod common;

use common::daemon::{Daemon, ECHO_ROUTE, firing, is_finished, serve_config, webhook};
use common::ports::free_addr;
use common::postgres::{Cluster, fresh_database};
use common::{describe, remedy};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A receiver with its own state directory (its compiled plugins) and the
/// shared store.
fn receiver(dir: &Path, name: &str, store_url: &str) -> (PathBuf, Daemon) {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let addr = free_addr();
    let config = serve_config(&home, addr, "", ECHO_ROUTE);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[store]\nurl = \"{store_url}\"\n")).unwrap();
    let daemon = Daemon::start(&home.join("state"), &config, addr);
    (config, daemon)
}

fn echo(n: usize) -> Value {
    firing(
        &[("alertname", "Echo"), ("n", &n.to_string())],
        "2026-11-21T10:00:00Z",
    )
}

fn outcomes(body: &str) -> Vec<String> {
    let answer: Value = serde_json::from_str(body).unwrap();
    answer["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcomes"][0]["outcome"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_alert_delivered_to_both_receivers_runs_once_and_the_trail_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database();
    let (config, a) = receiver(dir.path(), "a", &url);
    let (_, b) = receiver(dir.path(), "b", &url);

    // The same deliveries reach both receivers at once, as from an HA pair.
    let alerts: Vec<Value> = (0..20).map(echo).collect();
    let body = webhook("r", &alerts);
    let (to_a, to_b) = std::thread::scope(|s| {
        let to_a = s.spawn(|| a.post_alerts(&body));
        let to_b = s.spawn(|| b.post_alerts(&body));
        (to_a.join().unwrap(), to_b.join().unwrap())
    });
    assert_eq!((to_a.0, to_b.0), (202, 202), "{to_a:?} {to_b:?}");
    let (from_a, from_b) = (outcomes(&to_a.1), outcomes(&to_b.1));
    for (n, pair) in from_a.iter().zip(&from_b).enumerate() {
        let mut pair = [pair.0.as_str(), pair.1.as_str()];
        pair.sort();
        assert_eq!(pair, ["duplicate", "queued"], "alert {n}");
    }

    let runs = a.wait_for_runs("route=echo&limit=1000", 20, is_finished);
    assert_eq!(runs.len(), 20, "{runs:#?}");
    assert!(
        runs.iter().all(|r| r["status"] == "nothing-to-do"),
        "{runs:#?}"
    );
    assert_eq!(
        b.runs("route=echo&limit=1000").len(),
        20,
        "one history, seen from both"
    );

    // Losing a receiver loses nothing: the other keeps admitting and running.
    a.kill_9();
    let (status, answer) = b.post_alerts(&webhook("r", &[echo(99)]));
    assert_eq!(status, 202, "{answer}");
    let runs = b.wait_for_runs("route=echo&limit=1000", 21, is_finished);
    assert!(
        runs.iter().all(|r| r["status"] == "nothing-to-do"),
        "{runs:#?}"
    );

    let verify = remedy(&dir.path().join("a/state"), &config)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    b.stop(); // SIGTERM: a clean exit, its connections closed
}

#[test]
fn while_postgresql_is_down_receivers_answer_503_and_after_it_returns_nothing_is_lost() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (_, receiver) = receiver(dir.path(), "r", &cluster.fresh_database());
    let first = webhook("r", &[echo(1)]);
    assert_eq!(receiver.post_alerts(&first).0, 202);
    receiver.wait_for_runs("route=echo", 1, is_finished);

    cluster.stop();
    let during = webhook("r", &[echo(2)]);
    let (status, answer) = receiver.post_alerts(&during);
    assert_eq!(status, 503, "Alertmanager retries a 503: {answer}");
    assert_eq!(receiver.request("GET", "/-/ready", &[], b"").0, 503);

    cluster.restart();
    // Alertmanager's retry: admitted now, and run once.
    let (status, answer) = receiver.post_alerts(&during);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(outcomes(&answer), ["queued"]);
    let runs = receiver.wait_for_runs("route=echo", 2, is_finished);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert!(
        runs.iter().all(|r| r["status"] == "nothing-to-do"),
        "{runs:#?}"
    );
    assert_eq!(receiver.request("GET", "/-/ready", &[], b"").0, 200);
}

#[test]
fn a_store_over_tls_verifies_postgresqls_certificate() {
    let certs = tempfile::tempdir().unwrap();
    common::certs::make_certificates(certs.path());
    let cluster = Cluster::start_with_tls(certs.path());
    let url = format!("{}?sslmode=require", cluster.fresh_database());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("remedy.toml");
    let runs = |store: &str| {
        std::fs::write(&config, store).unwrap();
        remedy(&dir.path().join("state"), &config)
            .args(["runs", "list"])
            .output()
            .unwrap()
    };

    let ca = certs.path().join("ca.crt");
    let trusted = runs(&format!(
        "[store]\nurl = \"{url}\"\nca_file = \"{}\"\n",
        ca.display()
    ));
    assert_eq!(trusted.status.code(), Some(0), "{}", describe(&trusted));

    // The system's roots do not know the test CA: refused, and said so.
    let untrusted = runs(&format!("[store]\nurl = \"{url}\"\n"));
    assert_ne!(untrusted.status.code(), Some(0), "{}", describe(&untrusted));
    let said = String::from_utf8_lossy(&untrusted.stderr).to_lowercase();
    assert!(said.contains("certificate"), "{said}");

    // Without TLS the server refuses the connection.
    let plain = runs(&format!(
        "[store]\nurl = \"{}\"\n",
        url.replace("sslmode=require", "sslmode=disable")
    ));
    assert_ne!(plain.status.code(), Some(0), "{}", describe(&plain));
}
