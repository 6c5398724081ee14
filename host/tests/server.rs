//! `remedy serve` as Alertmanager sees it: a real process on a loopback
//! port, real HTTP, the real store. Every test starts its own daemon.

mod common;

use common::daemon::{
    Daemon, ECHO_ROUTE, TOKEN, alert, brief_loop_route, firing, is_finished, panicky_route,
    raw_exchange, reaper_approve_route, serve_config, webhook,
};
use common::ports::free_addr;
use common::{DAY, aged_file, describe, remedy};
use remedy::store::{RunFilter, RunStatus, Store};
use serde_json::{Value, json};
use std::time::Duration;

/// A run that keeps executing until its plugin's 60 s deadline.
const SLOW_ROUTE: &str = r#"
[[route]]
name = "slow"
matchers = ['alertname="Slow"']
plugin = "hostile"
params = { attack = "loop" }
"#;

fn start(server: &str, routes: &str) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, server, routes);
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    (dir, daemon)
}

fn runs_in_store(state: &std::path::Path) -> Vec<remedy::store::RunSummary> {
    Store::open(state)
        .unwrap()
        .list_runs(&RunFilter {
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
}

fn echo(n: &str) -> Value {
    firing(
        &[("alertname", "Echo"), ("instance", "node-1"), ("n", n)],
        "2026-11-21T10:00:00Z",
    )
}

fn outcomes(body: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    value["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["outcomes"].as_array().unwrap().clone())
        .map(|o| o["outcome"].as_str().unwrap().to_string())
        .collect()
}

/// A bad request: what it is, its headers, its body, and the status it must get.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);

#[test]
fn bad_requests_get_the_right_4xx_and_the_daemon_keeps_serving() {
    let (_dir, daemon) = start("max_body = \"64KiB\"\nmax_alerts = 10", ECHO_ROUTE);
    let bearer = format!("Bearer {TOKEN}");
    let auth: &[(&str, &str)] = &[("Authorization", &bearer)];
    let valid = webhook("r", &[echo("1")]);
    let many_labels: Vec<(String, String)> = (0..200)
        .map(|i| (format!("l{i}"), "v".to_string()))
        .collect();
    let mut huge = vec![("alertname", "Echo")];
    huge.extend(many_labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut invalid_utf8 = webhook("r", &[echo("utf8")]);
    let at = invalid_utf8.windows(4).position(|w| w == b"utf8").unwrap();
    invalid_utf8[at..at + 4].copy_from_slice(b"\xff\xfe\xfd\xfc");
    let eleven: Vec<Value> = (0..11).map(|i| echo(&i.to_string())).collect();
    let oversized = webhook(
        "r",
        &[firing(
            &[("alertname", "Echo"), ("big", &"x".repeat(70_000))],
            "2026-11-21T10:00:00Z",
        )],
    );

    let cases: Vec<Case> = vec![
        ("no credentials", vec![], valid.clone(), 401),
        ("wrong token", vec![("Authorization", "Bearer nope")], valid.clone(), 401),
        ("token as basic auth", vec![("Authorization", "Basic dGVzdC10b2tlbi03YzFm")], valid.clone(), 401),
        ("token without scheme", vec![("Authorization", TOKEN)], valid.clone(), 401),
        ("truncated JSON", auth.to_vec(), valid[..valid.len() / 2].to_vec(), 400),
        ("not JSON", auth.to_vec(), b"hello".to_vec(), 400),
        ("empty body", auth.to_vec(), Vec::new(), 400),
        ("version as a number", auth.to_vec(), br#"{"version":4,"alerts":[]}"#.to_vec(), 400),
        ("unknown version", auth.to_vec(), br#"{"version":"3","alerts":[]}"#.to_vec(), 400),
        ("alerts not a list", auth.to_vec(), br#"{"version":"4","alerts":"x"}"#.to_vec(), 400),
        ("label value a number", auth.to_vec(), br#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":1},"startsAt":"2026-11-21T10:00:00Z"}]}"#.to_vec(), 400),
        ("no alertname", auth.to_vec(), webhook("r", &[firing(&[("instance", "a")], "2026-11-21T10:00:00Z")]), 400),
        ("unknown status", auth.to_vec(), webhook("r", &[alert("pending", &[("alertname", "Echo")], "2026-11-21T10:00:00Z")]), 400),
        ("invalid UTF-8", auth.to_vec(), invalid_utf8, 400),
        ("200 labels", auth.to_vec(), webhook("r", &[firing(&huge, "2026-11-21T10:00:00Z")]), 400),
        ("11 alerts, max_alerts 10", auth.to_vec(), webhook("r", &eleven), 400),
        ("70 KB body, max_body 64 KiB", auth.to_vec(), oversized.clone(), 413),
    ];
    for (name, headers, body, expected) in &cases {
        let (status, answer) = daemon.request("POST", "/v1/alerts", headers, body);
        assert_eq!(status, *expected, "{name}: {answer}");
        let kind = match expected {
            401 => "unauthorized",
            413 => "too-large",
            _ => "bad-request",
        };
        let refusal: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(refusal["kind"], kind, "{name}: {answer}");
    }

    // A chunked body has no length to refuse up front; it is cut off at the limit.
    let mut chunked = format!(
        "POST /v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for piece in oversized.chunks(8192) {
        chunked.extend(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend(piece);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    assert_eq!(
        raw_exchange(daemon.addr, &chunked).unwrap().0,
        413,
        "chunked oversized body"
    );
    assert!(raw_exchange(daemon.addr, b"GARBAGE\r\n\r\n").unwrap().0 >= 400);

    let (status, _) = daemon.request("GET", "/v1/runs", &[], b"");
    assert_eq!(status, 401, "the run history needs credentials too");
    assert_eq!(daemon.get("/v1/runs?outcome=bogus").0, 400);
    assert_eq!(daemon.get("/v1/runs?since=yesterday-ish").0, 400);
    assert_eq!(daemon.get("/v1/runs/0000dead").0, 404);

    // Unknown fields are Alertmanager's to add; they are ignored.
    let mut extra: Value = serde_json::from_slice(&valid).unwrap();
    extra["somethingNew"] = json!({"a": 1});
    extra["alerts"][0]["alsoNew"] = json!(true);
    let (status, answer) = daemon.post_alerts(&serde_json::to_vec(&extra).unwrap());
    assert_eq!(status, 202, "{answer}");
    assert_eq!(outcomes(&answer), ["queued"]);
    assert_eq!(daemon.request("GET", "/-/healthy", &[], b"").0, 200);

    assert_eq!(
        daemon.metric("remedy_webhook_requests_total{code=\"401\"}"),
        Some(4.0)
    );
    assert_eq!(
        daemon.metric("remedy_webhook_requests_total{code=\"400\"}"),
        Some(12.0)
    );
    assert_eq!(
        daemon.metric("remedy_webhook_requests_total{code=\"413\"}"),
        Some(2.0)
    );
    assert_eq!(
        runs_in_store(&daemon.state).len(),
        1,
        "no refused request left a run behind"
    );
}

/// Deterministic mutations of a valid payload: every answer is 202, 400 or
/// 413, never a 5xx or a dropped connection, and the daemon keeps serving.
#[test]
fn mutated_payloads_never_break_the_daemon() {
    let (_dir, daemon) = start("", ECHO_ROUTE);
    let valid = webhook("r", &[echo("1"), echo("2")]);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let mut body = valid.clone();
        for _ in 0..1 + next() % 4 {
            if body.is_empty() {
                break;
            }
            let at = (next() as usize) % body.len();
            match next() % 4 {
                0 => body[at] = next() as u8,
                1 => {
                    body.remove(at);
                }
                2 => body.insert(at, b"{}[]\",:\\0"[(next() % 9) as usize]),
                _ => body.truncate(at),
            }
        }
        let (status, answer) = daemon.post_alerts(&body);
        assert!(
            matches!(status, 202 | 400 | 413),
            "round {round}: {status} {answer}\n{}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(daemon.request("GET", "/-/ready", &[], b"").0, 200);
}

#[test]
fn the_same_alert_delivered_fifty_times_is_one_run_even_after_a_restart() {
    let (dir, daemon) = start("", ECHO_ROUTE);
    let alert = echo("dup");
    // Two Alertmanager replicas send the same alert under their own receiver and group key.
    let replicas = [
        webhook("replica-a", std::slice::from_ref(&alert)),
        webhook("replica-b", &[alert]),
    ];
    let deliver = |daemon: &Daemon| {
        std::thread::scope(|scope| {
            let senders: Vec<_> = (0..5)
                .map(|sender| {
                    let replicas = &replicas;
                    scope.spawn(move || {
                        (0..10)
                            .flat_map(|i| {
                                outcomes(&{
                                    let (status, body) =
                                        daemon.post_alerts(&replicas[(sender + i) % 2]);
                                    assert_eq!(status, 202, "{body}");
                                    body
                                })
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            senders
                .into_iter()
                .flat_map(|s| s.join().unwrap())
                .collect::<Vec<_>>()
        })
    };
    let first = deliver(&daemon);
    assert_eq!(
        first.iter().filter(|o| *o == "queued").count(),
        1,
        "{first:?}"
    );
    assert_eq!(first.iter().filter(|o| *o == "duplicate").count(), 49);
    let runs = daemon.wait_for_runs("route=echo", 1, is_finished);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "nothing-to-do", "{:#}", runs[0]);
    assert_eq!(runs[0]["trigger"], "webhook");
    assert_eq!(
        daemon.metric("remedy_alerts_received_total{status=\"firing\",outcome=\"duplicate\"}"),
        Some(49.0)
    );

    let (state, config, addr) = (daemon.state.clone(), daemon.config.clone(), daemon.addr);
    daemon.stop();
    let daemon = Daemon::start(&state, &config, addr);
    let again = deliver(&daemon);
    assert!(again.iter().all(|o| o == "duplicate"), "{again:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.runs("").len(), 1);
    drop(dir);
}

/// Concurrent requests are admitted in shared commits, each request whole
/// or not at all, as if they came one by one: exactly `max_queued` are
/// queued, every other gets its 503, and each admitted alert is one run.
#[test]
fn concurrent_requests_past_the_queue_limit_are_refused_one_by_one() {
    let (_dir, daemon) = start(
        "workers = 1\nmax_queued = 20",
        &format!("{SLOW_ROUTE}{ECHO_ROUTE}"),
    );
    let slow = firing(
        &[("alertname", "Slow"), ("instance", "node-1")],
        "2026-11-21T10:00:00Z",
    );
    assert_eq!(daemon.post_alerts(&webhook("r", &[slow])).0, 202);
    // The target is busy: every echo run for node-1 stays queued.
    daemon.wait_for_runs("route=slow", 1, |r| r["status"] == "running");
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..8)
            .map(|sender| {
                let daemon = &daemon;
                scope.spawn(move || {
                    (0..5)
                        .map(|i| {
                            daemon.post_alerts(&webhook("r", &[echo(&format!("{sender}-{i}"))]))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|s| s.join().unwrap())
            .collect()
    });
    let accepted: Vec<&String> = answers
        .iter()
        .filter(|(s, _)| *s == 202)
        .map(|(_, b)| b)
        .collect();
    let refused: Vec<&String> = answers
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, b)| b)
        .collect();
    assert_eq!((accepted.len(), refused.len()), (20, 20), "{answers:?}");
    assert!(
        accepted.iter().all(|body| outcomes(body) == ["queued"]),
        "{accepted:?}"
    );
    assert!(
        refused.iter().all(|body| body.contains("limit is 20")),
        "{refused:?}"
    );
    assert_eq!(daemon.metric("remedy_queue_depth"), Some(20.0));
    assert_eq!(
        daemon.runs("route=echo").len(),
        20,
        "a refused request left no run"
    );
    let intact = Store::open(&daemon.state).unwrap().verify_audit().unwrap();
    assert!(
        intact.is_ok(),
        "the audit chain holds across the shared commits"
    );
}

/// A run watching between rounds is parked in the store and frees its
/// worker: one worker holds three watching runs at once. Parked runs
/// survive a kill -9 and finish after the restart, each round shown the
/// memo of the one before.
#[test]
fn watching_runs_are_parked_free_their_worker_and_survive_a_restart() {
    let route = r#"
[[route]]
name = "watch"
matchers = ['alertname="Watch"']
plugin = "echo"
params = { watch = "2", recheck = "3" }
"#;
    let (_dir, daemon) = start("workers = 1", route);
    let alerts: Vec<Value> = (1..=3)
        .map(|n| {
            let instance = format!("node-{n}");
            firing(
                &[("alertname", "Watch"), ("instance", &instance)],
                "2026-11-21T10:00:00Z",
            )
        })
        .collect();
    assert_eq!(daemon.post_alerts(&webhook("r", &alerts)).0, 202);
    // One worker: were it waiting on its thread, one run at most would be watching.
    let waiting = daemon.wait_for_runs("route=watch", 3, |r| r["status"] == "waiting");
    for run in &waiting {
        let reason = run["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("watching: echo; next round at "),
            "{run:#}"
        );
    }
    assert_eq!(daemon.metric("remedy_runs_executing"), Some(0.0));
    assert_eq!(daemon.metric("remedy_runs_waiting"), Some(3.0));

    let (state, config, addr) = (daemon.state.clone(), daemon.config.clone(), daemon.addr);
    daemon.kill_9();
    let daemon = Daemon::start(&state, &config, addr);
    let ended = daemon.wait_for_runs("route=watch", 3, is_finished);
    let store = Store::open(&state).unwrap();
    for run in &ended {
        assert_eq!(
            run["status"], "nothing-to-do",
            "memo and rounds carried over: {run:#}"
        );
        let id = run["id"].as_str().unwrap();
        assert_eq!(store.get_run(id).unwrap().rounds.len(), 3, "{run:#}");
        let kinds: Vec<String> = store
            .audit_of_run(id)
            .unwrap()
            .into_iter()
            .map(|r| r.kind)
            .collect();
        let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
        assert_eq!((count("parked"), count("run-resumed")), (2, 2), "{kinds:?}");
    }
}

#[test]
fn kill_9_loses_no_accepted_alert_and_marks_the_executing_run_interrupted() {
    // Four workers, but every alert names the same instance: one run at a time.
    let (_dir, daemon) = start("workers = 4", &format!("{SLOW_ROUTE}{ECHO_ROUTE}"));
    let slow = firing(
        &[("alertname", "Slow"), ("instance", "node-1")],
        "2026-11-21T10:00:00Z",
    );
    assert_eq!(daemon.post_alerts(&webhook("r", &[slow])).0, 202);
    daemon.wait_for_runs("route=slow", 1, |r| r["status"] == "running");

    let (status, body) =
        daemon.post_alerts(&webhook("r", &[echo("1"), echo("2"), echo("3"), echo("4")]));
    assert_eq!(status, 202, "{body}");
    // The fourth alert resolves before its run could start: its run is cancelled.
    let resolved = alert(
        "resolved",
        &[("alertname", "Echo"), ("instance", "node-1"), ("n", "4")],
        "2026-11-21T10:00:00Z",
    );
    let (status, body) = daemon.post_alerts(&webhook("r", &[resolved]));
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["alerts"][0]["outcomes"][0]["cancelled"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    std::thread::sleep(Duration::from_millis(300));
    let echoes = daemon.runs("route=echo");
    let statuses: Vec<&str> = echoes
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "queued").count(),
        3,
        "the target is busy, so they wait: {statuses:?}"
    );
    assert!(statuses.contains(&"cancelled"));
    assert_eq!(daemon.metric("remedy_queue_depth"), Some(3.0));

    let (state, config, addr) = (daemon.state.clone(), daemon.config.clone(), daemon.addr);
    daemon.kill_9();
    let before: Vec<RunStatus> = runs_in_store(&state).iter().map(|r| r.status).collect();
    assert_eq!(
        before.iter().filter(|s| **s == RunStatus::Running).count(),
        1
    );

    let daemon = Daemon::start(&state, &config, addr);
    let slow_run = &daemon.runs("route=slow")[0];
    assert_eq!(slow_run["status"], "interrupted", "{slow_run:#}");
    assert!(
        slow_run["reason"]
            .as_str()
            .unwrap()
            .contains("was not executed again"),
        "{slow_run:#}"
    );
    let echoes = daemon.wait_for_runs("route=echo", 4, is_finished);
    let mut statuses: Vec<&str> = echoes
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            "cancelled",
            "nothing-to-do",
            "nothing-to-do",
            "nothing-to-do"
        ]
    );
    assert_eq!(
        daemon.runs("route=slow").len(),
        1,
        "the interrupted run was not re-run"
    );
}

#[test]
fn sigterm_lets_the_executing_run_finish_and_keeps_the_queue() {
    let routes = format!("{}{ECHO_ROUTE}", brief_loop_route("2s"));
    let (_dir, daemon) = start("workers = 1", &routes);
    let brief = firing(
        &[("alertname", "Brief"), ("instance", "node-1")],
        "2026-11-21T10:00:00Z",
    );
    assert_eq!(
        daemon.post_alerts(&webhook("r", &[brief, echo("1")])).0,
        202
    );
    daemon.wait_for_runs("route=brief", 1, |r| r["status"] == "running");

    let state = daemon.state.clone();
    let took = daemon.stop();
    assert!(took < Duration::from_secs(15), "stopped in {took:?}");
    let runs = runs_in_store(&state);
    let status = |route: &str| {
        runs.iter()
            .find(|r| r.route.as_deref() == Some(route))
            .unwrap()
            .status
    };
    assert_eq!(
        status("brief"),
        RunStatus::TimedOut,
        "it ran to its own end: {runs:#?}"
    );
    assert_eq!(
        status("echo"),
        RunStatus::Queued,
        "queued runs wait for the next start"
    );
}

#[test]
fn a_run_past_the_shutdown_grace_is_marked_interrupted() {
    let (_dir, daemon) = start("shutdown_grace = \"500ms\"", SLOW_ROUTE);
    let slow = firing(&[("alertname", "Slow")], "2026-11-21T10:00:00Z");
    assert_eq!(daemon.post_alerts(&webhook("r", &[slow])).0, 202);
    daemon.wait_for_runs("route=slow", 1, |r| r["status"] == "running");
    let state = daemon.state.clone();
    daemon.stop();
    let runs = runs_in_store(&state);
    assert_eq!(runs[0].status, RunStatus::Interrupted);
    assert!(
        runs[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("shutdown grace"),
        "{runs:#?}"
    );
}

#[test]
fn the_circuit_breaker_holds_a_failing_route_in_dry_run_until_reset() {
    let (dir, daemon) = start("", &panicky_route(2));
    let breaker_open = "remedy_circuit_breaker_open{route=\"panicky\"}";
    daemon.fail_panicky_once("2026-11-21T10:00:00Z");
    assert_eq!(
        daemon.metric(breaker_open),
        Some(0.0),
        "one failure is not two"
    );
    daemon.fail_panicky_once("2026-11-21T10:01:00Z");
    // Opened with the second failure's end: no run claimed after it can
    // find the breaker shut.
    assert_eq!(
        daemon.metric(breaker_open),
        Some(1.0),
        "open as the run reads ended"
    );
    daemon.fail_panicky_once("2026-11-21T10:02:00Z");
    let runs = daemon.runs("route=panicky");
    assert_eq!(runs.len(), 3);
    let oldest_first: Vec<&Value> = runs.iter().rev().collect();
    assert_eq!(oldest_first[0]["dry_run"], false);
    assert_eq!(oldest_first[1]["dry_run"], false);
    assert_eq!(oldest_first[2]["dry_run"], true, "{:#}", oldest_first[2]);
    let reason = oldest_first[2]["reason"].as_str().unwrap();
    assert!(
        reason.contains("circuit breaker of route `panicky` is open"),
        "{reason}"
    );
    assert!(reason.contains("2 failed runs within 1h"), "{reason}");
    assert_eq!(daemon.metric(breaker_open), Some(1.0));

    let config = dir.path().join("remedy.toml");
    let listed = remedy(&daemon.state, &config)
        .args(["routes", "breakers"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("panicky"),
        "{}",
        describe(&listed)
    );
    let reset = remedy(&daemon.state, &config)
        .args(["routes", "reset", "panicky"])
        .output()
        .unwrap();
    assert!(reset.status.success(), "{}", describe(&reset));
    assert_eq!(daemon.metric(breaker_open), Some(0.0));
    let unknown = remedy(&daemon.state, &config)
        .args(["routes", "reset", "nope"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));
}

#[test]
fn an_approve_route_plans_and_waits_without_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let reap = dir.path().join("reap");
    std::fs::create_dir(&reap).unwrap();
    let old = reap.join("old.log");
    aged_file(&old, 4096, 30 * DAY);
    let routes = reaper_approve_route(&reap);
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &routes);
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let alert = firing(&[("alertname", "TmpFull")], "2026-11-21T10:00:00Z");
    assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
    let runs = daemon.wait_for_runs("route=reap", 1, is_finished);
    assert_eq!(runs[0]["status"], "awaiting-approval", "{:#}", runs[0]);
    let (status, body) = daemon.get(&format!("/v1/runs/{}", runs[0]["id"].as_str().unwrap()));
    assert_eq!(status, 200);
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["actions"][0]["status"], "planned", "{detail:#}");
    assert!(
        detail["actions"][0]["action"]
            .to_string()
            .contains("old.log")
    );
    assert!(old.exists(), "nothing runs before approval");
    assert_eq!(
        daemon.metric(
            "remedy_runs_total{plugin=\"tmp-reaper\",route=\"reap\",outcome=\"awaiting-approval\",node=\"test-node\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn serve_refuses_to_start_without_credentials_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("remedy.toml");
    std::fs::write(&config, format!("[server]\nlisten = \"{}\"\n", free_addr())).unwrap();
    let output = remedy(&dir.path().join("state"), &config)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("token_file or basic_auth"), "{stderr}");

    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{}\"\ntoken_file = \"missing\"\n",
            free_addr()
        ),
    )
    .unwrap();
    let output = remedy(&dir.path().join("state"), &config)
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("token_file: cannot read") && stderr.contains("missing"),
        "{stderr}"
    );
}

#[test]
fn tls_with_client_certificates_admits_only_certified_clients() {
    let dir = tempfile::tempdir().unwrap();
    common::certs::make_certificates(dir.path());
    let addr = free_addr();
    let tls = "tls = { cert_file = \"server.crt\", key_file = \"server.key\", client_ca_file = \"ca.crt\" }";
    let config = serve_config(dir.path(), addr, tls, ECHO_ROUTE);
    let mut child = remedy(&dir.path().join("state"), &config)
        .arg("serve")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, webhook("r", &[echo("tls")])).unwrap();
    let url = format!("https://{addr}/v1/alerts");
    let curl = |client_cert: bool| {
        let mut command = std::process::Command::new("curl");
        command
            .current_dir(dir.path())
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                "ca.crt",
            ])
            .args([
                "-H",
                &format!("Authorization: Bearer {TOKEN}"),
                "--data-binary",
                "@body.json",
            ]);
        if client_cert {
            command.args(["--cert", "client.crt", "--key", "client.key"]);
        }
        command
            .arg(&url)
            .output()
            .expect("curl runs (scripts/test installs it)")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let accepted = loop {
        let output = curl(true);
        if output.status.success() {
            break output;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no TLS answer: {}",
            describe(&output)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(String::from_utf8_lossy(&accepted.stdout), "202");
    let refused = curl(false);
    assert!(
        !refused.status.success(),
        "a client without a certificate got in: {}",
        describe(&refused)
    );
    let plain = std::net::TcpStream::connect(addr).map(|_| ());
    assert!(plain.is_ok(), "the listener is still up");
    let _ = child.kill();
    let _ = child.wait();
}
