//! The HTTP API's OpenAPI document: valid OpenAPI 3.1 by a kept validator
//! (openapi-spec-validator), served as built, and true to the handlers.
//! Every answer the daemon tests read is held against it
//! (`common::openapi::check_answer`); here every documented operation is
//! exercised, and the check itself is shown to catch what it must.

mod common;

use common::daemon::{
    Daemon, ONCALL, basic_auth, firing, is_finished, reaper_approve_route, serve_config, webhook,
};
use common::openapi::{SEEN, check_answer, document, operations};
use common::ports::free_addr;
use common::{DAY, aged_file};
use serde_json::Value;

#[test]
fn the_document_is_valid_openapi_and_served_as_built() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", "");
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let (status, body) = daemon.request("GET", "/v1/openapi.json", &[], b"");
    assert_eq!(status, 200, "the document needs no credentials: {body}");
    let served: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(&served, document());

    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &body).unwrap();
    let validated = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
        .arg(&file)
        .output()
        .expect("python3 runs openapi-spec-validator (scripts/test installs it)");
    assert!(
        validated.status.success(),
        "openapi-spec-validator (pip install openapi-spec-validator; scripts/test does) refused the document:\n{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let reap = dir.path().join("reap");
    std::fs::create_dir(&reap).unwrap();
    aged_file(&reap.join("old.log"), 4096, 30 * DAY);
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &reaper_approve_route(&reap));
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let oncall = basic_auth(ONCALL);
    let auth: &[(&str, &str)] = &[("Authorization", &oncall)];

    let alerts: Vec<Value> = ["a", "b"]
        .map(|n| {
            firing(
                &[("alertname", "TmpFull"), ("n", n)],
                "2026-11-21T10:00:00Z",
            )
        })
        .to_vec();
    assert_eq!(daemon.post_alerts(&webhook("r", &alerts)).0, 202);
    assert_eq!(daemon.post_alerts(b"not a webhook").0, 400);
    let runs = daemon.wait_for_runs("route=reap", 2, is_finished);
    let ids: Vec<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(
        runs.iter().all(|r| r["status"] == "awaiting-approval"),
        "both runs should await approval: {runs:#?}\n{}",
        daemon.log()
    );
    assert_eq!(daemon.get(&format!("/v1/runs/{}", ids[0])).0, 200);
    assert_eq!(daemon.get("/v1/runs/0000dead").0, 404);
    assert_eq!(daemon.get("/v1/runs?outcome=bogus").0, 400);

    let decide = |id: &str, verb: &str, body: &str| {
        daemon.request(
            "POST",
            &format!("/v1/runs/{id}/{verb}"),
            auth,
            body.as_bytes(),
        )
    };
    assert_eq!(decide(ids[0], "approve", r#"{"by": "alice"}"#).0, 200);
    assert_eq!(decide(ids[0], "approve", "").0, 409);
    assert_eq!(decide(ids[1], "reject", r#"{"reason": "not now"}"#).0, 200);
    assert_eq!(decide(ids[1], "reject", "not json").0, 400);
    daemon.wait_for_runs("route=reap", 2, is_finished);

    assert_eq!(daemon.request("POST", "/-/reload", auth, b"").0, 200);
    assert_eq!(daemon.request("POST", "/-/reload", &[], b"").0, 401);
    for path in ["/-/healthy", "/-/ready", "/metrics", "/v1/openapi.json"] {
        assert_eq!(daemon.request("GET", path, &[], b"").0, 200, "{path}");
    }
    let unknown = daemon.request("GET", "/v1/nothing-here", auth, b"");
    assert_eq!(unknown.0, 404, "{unknown:?}");
    assert!(unknown.1.contains("/v1/openapi.json"), "{unknown:?}");
    let wrong_method = daemon.request("DELETE", "/v1/runs", auth, b"");
    assert_eq!(wrong_method.0, 405, "{wrong_method:?}");

    let seen = SEEN.lock().unwrap().clone();
    let unexercised: Vec<String> = operations().difference(&seen).cloned().collect();
    assert!(
        unexercised.is_empty(),
        "documented but never answered here: {unexercised:?}"
    );
}

#[test]
fn the_check_catches_undocumented_fields_statuses_and_values() {
    let refused = |method: &str, path: &str, status: u16, body: &str| {
        let caught = std::panic::catch_unwind(|| check_answer(method, path, status, body));
        assert!(
            caught.is_err(),
            "{method} {path} {status} {body} passed the check"
        );
    };
    let run = r#"{"id": "r1", "plugin": "p", "trigger": "webhook", "route": null, "node": null,
        "dry_run": false, "status": "succeeded", "reason": null, "created_at": "t",
        "queue_ms": null, "duration_ms": null}"#;
    check_answer("GET", "/v1/runs", 200, &format!(r#"{{"runs": [{run}]}}"#));

    let extra_field = run.replace(r#""id": "r1""#, r#""id": "r1", "secret": 1"#);
    refused(
        "GET",
        "/v1/runs",
        200,
        &format!(r#"{{"runs": [{extra_field}]}}"#),
    );
    let rust_value = run.replace("succeeded", "Succeeded");
    refused(
        "GET",
        "/v1/runs",
        200,
        &format!(r#"{{"runs": [{rust_value}]}}"#),
    );
    refused(
        "GET",
        "/v1/runs",
        418,
        r#"{"kind": "bad-request", "message": "m"}"#,
    );
    refused(
        "GET",
        "/v1/runs",
        400,
        r#"{"status": "error", "error": "m"}"#,
    );
    refused(
        "GET",
        "/v1/runs",
        400,
        r#"{"kind": "BadRequest", "message": "m"}"#,
    );
    refused("DELETE", "/v1/runs", 200, "{}");
    refused(
        "POST",
        "/v1/alerts",
        202,
        r#"{"status": "accepted", "alerts": [{"fingerprint": "f", "status": "firing",
            "outcomes": [{"outcome": "queued", "route": "r"}]}]}"#,
    );
}
