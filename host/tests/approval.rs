//! Approvals bound to the plan: an `approve` route records a plan and waits;
//! approving (CLI or HTTP) executes exactly that plan with identities checked
//! again, anything else the plugin proposes is refused, an old approval is
//! refused, and who decided is audited.

mod common;

use common::daemon::{
    Daemon, ONCALL, TOKEN, VIEWER, basic_auth, firing, is_finished, reaper_approve_route,
    serve_config, try_request, webhook,
};
use common::ports::free_addr;
use common::{DAY, aged_file, describe, remedy};
use serde_json::Value;
use std::path::PathBuf;

struct Scene {
    dir: tempfile::TempDir,
    reap: PathBuf,
    config: PathBuf,
    daemon: Option<Daemon>,
    run_id: String,
}

impl Scene {
    /// A tmp-reaper `approve` route; one alert leaves a run awaiting approval
    /// with a plan to remove `old-1.log` and `old-2.log`.
    fn awaiting(server_extra: &str, top_extra: &str) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let reap = dir.path().join("reap");
        std::fs::create_dir(&reap).unwrap();
        for name in ["old-1.log", "old-2.log"] {
            aged_file(&reap.join(name), 4096, 30 * DAY);
        }
        let routes = reaper_approve_route(&reap);
        let addr = free_addr();
        let config = serve_config(dir.path(), addr, server_extra, &routes);
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{top_extra}\n{text}")).unwrap();
        let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
        let alert = firing(&[("alertname", "TmpFull")], "2026-11-21T10:00:00Z");
        assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
        let runs = daemon.wait_for_runs("route=reap", 1, is_finished);
        assert_eq!(runs[0]["status"], "awaiting-approval", "{:#}", runs[0]);
        let run_id = runs[0]["id"].as_str().unwrap().to_string();
        Scene {
            dir,
            reap,
            config,
            daemon: Some(daemon),
            run_id,
        }
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().unwrap()
    }

    fn stop_daemon(&mut self) {
        self.daemon.take().unwrap().stop();
    }

    fn remedy(&self, args: &[&str]) -> std::process::Output {
        remedy(&self.dir.path().join("state"), &self.config)
            .args(args)
            .output()
            .unwrap()
    }

    fn post(&self, path: &str, authorization: Option<&str>, body: &str) -> (u16, String) {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(value) = authorization {
            headers.push(("Authorization", value));
        }
        try_request(self.daemon().addr, "POST", path, &headers, body.as_bytes()).unwrap()
    }
}

#[test]
fn the_approved_plan_is_applied_exactly_and_anything_else_is_refused() {
    let mut scene = Scene::awaiting("", "");
    scene.stop_daemon();
    // After the plan was made: one planned file is replaced by another under
    // its name, and a new file appears that the plugin will also want to remove.
    let replaced = scene.reap.join("old-2.log");
    std::fs::remove_file(&replaced).unwrap();
    aged_file(&replaced, 4096, 30 * DAY);
    let late = scene.reap.join("late.log");
    aged_file(&late, 4096, 30 * DAY);

    let output = scene.remedy(&[
        "approve",
        &scene.run_id,
        "--by",
        "alice",
        "--output",
        "json",
    ]);
    let run: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", describe(&output)));
    let actions = run["actions"].as_array().unwrap();
    let status_of = |name: &str, round: u64| {
        actions
            .iter()
            .find(|a| a["round"] == round && a["action"].to_string().contains(name))
            .map(|a| a["status"].as_str().unwrap().to_string())
    };
    // Round 0 was the plan awaiting approval; round 1 executes exactly it.
    assert_eq!(
        status_of("old-1.log", 1).as_deref(),
        Some("done"),
        "{run:#}"
    );
    assert_eq!(
        status_of("old-2.log", 1).as_deref(),
        Some("stale"),
        "{run:#}"
    );
    assert_eq!(status_of("late.log", 1), None, "{run:#}");
    assert!(!scene.reap.join("old-1.log").exists());
    assert!(
        replaced.exists(),
        "a file replaced since the plan was removed"
    );
    // Then the plugin looks again and proposes the new file: not approved.
    assert_eq!(
        status_of("late.log", 2).as_deref(),
        Some("denied"),
        "{run:#}"
    );
    assert!(late.exists());
    assert_eq!(run["status"], "denied", "{run:#}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("not in the approved plan"),
        "{run:#}"
    );
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));

    // Deciding again is refused: it is no longer awaiting approval.
    let again = scene.remedy(&["approve", &scene.run_id]);
    assert_eq!(again.status.code(), Some(2), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not awaiting approval"),
        "{}",
        describe(&again)
    );

    // Who approved, and which plan, is in the audit trail.
    let audit = scene.remedy(&["audit", "show", &scene.run_id]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains("approval-requested") && text.contains("approved"),
        "{text}"
    );
    assert!(text.contains("alice via the command line"), "{text}");
    assert_eq!(scene.remedy(&["audit", "verify"]).status.code(), Some(0));
}

#[test]
fn an_expired_approval_is_refused_and_closes_the_run() {
    let mut scene = Scene::awaiting("", "approval_ttl = \"1s\"");
    scene.stop_daemon();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let output = scene.remedy(&["approve", &scene.run_id]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("expired") && stderr.contains("approval_ttl"),
        "{stderr}"
    );
    assert!(scene.reap.join("old-1.log").exists());
    let shown = scene.remedy(&["runs", "show", &scene.run_id, "--output", "json"]);
    let run: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(run["status"], "cancelled", "{run:#}");
}

#[test]
fn approving_over_http_needs_credentials_and_then_runs_in_the_daemon() {
    let scene = Scene::awaiting("", "");
    let approve = format!("/v1/runs/{}/approve", scene.run_id);

    let (status, body) = scene.post(&approve, None, "");
    assert_eq!(status, 401, "{body}");
    let (status, body) = scene.post(&approve, Some("Bearer wrong"), "");
    assert_eq!(status, 401, "{body}");
    assert!(scene.reap.join("old-1.log").exists());

    let bearer = basic_auth(ONCALL);
    let (status, body) = scene.post(&approve, Some(&bearer), r#"{"by": "bob"}"#);
    assert_eq!(status, 200, "{body}");
    let approved: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(approved["status"], "queued");
    assert_eq!(approved["approved_by"], "bob via user oncall");
    assert_eq!(approved["plan_hash"].as_str().unwrap().len(), 64);

    let runs = scene.daemon().wait_for_runs("route=reap", 1, is_finished);
    assert_eq!(runs[0]["status"], "succeeded", "{:#}", runs[0]);
    assert!(!scene.reap.join("old-1.log").exists() && !scene.reap.join("old-2.log").exists());

    let (status, body) = scene.post(&approve, Some(&bearer), "");
    assert_eq!(status, 409, "{body}");
    let (status, body) = scene.post("/v1/runs/no-such-run/approve", Some(&bearer), "");
    assert_eq!(status, 404, "{body}");
    let (status, body) = scene.post(&approve, Some(&bearer), "not json");
    assert_eq!(status, 400, "{body}");
}

#[test]
fn only_a_user_with_the_decide_role_decides_and_alertmanagers_token_never_does() {
    let mut scene = Scene::awaiting("", "");
    let approve = format!("/v1/runs/{}/approve", scene.run_id);
    let reject = format!("/v1/runs/{}/reject", scene.run_id);
    let token = format!("Bearer {TOKEN}");
    let viewer = basic_auth(VIEWER);
    for path in [approve.as_str(), reject.as_str(), "/-/reload"] {
        for (who, authorization) in [("the token", &token), ("the viewer", &viewer)] {
            let (status, body) = scene.post(path, Some(authorization), r#"{"by": "mallory"}"#);
            assert_eq!(status, 403, "{who} on {path}: {body}");
            assert!(body.contains("`decide` role"), "{who} on {path}: {body}");
        }
    }
    let read = |authorization: &str| {
        try_request(
            scene.daemon().addr,
            "GET",
            "/v1/runs",
            &[("Authorization", authorization)],
            b"",
        )
        .unwrap()
    };
    let (status, body) = read(&token);
    assert_eq!(status, 403, "the token only posts alerts: {body}");
    let (status, body) = read(&viewer);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&scene.run_id), "{body}");
    let (status, _) = read(&basic_auth((VIEWER.0, "guess")));
    assert_eq!(status, 401);
    let alert = firing(
        &[("alertname", "TmpFull"), ("n", "2")],
        "2026-11-21T10:00:00Z",
    );
    let (status, body) = scene.post(
        "/v1/alerts",
        Some(&viewer),
        &String::from_utf8(webhook("r", &[alert])).unwrap(),
    );
    assert_eq!(status, 403, "reading is not posting: {body}");

    // Nothing the refused callers sent changed anything.
    let runs = scene.daemon().runs("route=reap");
    assert_eq!(runs[0]["status"], "awaiting-approval", "{:#}", runs[0]);
    assert!(scene.reap.join("old-1.log").exists());

    let (status, body) = scene.post(&approve, Some(&basic_auth(ONCALL)), "");
    assert_eq!(status, 200, "{body}");
    let runs = scene.daemon().wait_for_runs("route=reap", 1, is_finished);
    assert_eq!(runs[0]["status"], "succeeded", "{:#}", runs[0]);
    scene.stop_daemon();
    let audit = scene.remedy(&["audit", "show", &scene.run_id]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains("oncall") && !text.contains("mallory"),
        "{text}"
    );
}

#[test]
fn a_rejected_plan_executes_nothing() {
    let scene = Scene::awaiting("", "");
    let bearer = basic_auth(ONCALL);
    let reject = format!("/v1/runs/{}/reject", scene.run_id);
    let (status, body) = scene.post(&reject, None, "");
    assert_eq!(status, 401, "{body}");
    let (status, body) = scene.post(
        &reject,
        Some(&bearer),
        r#"{"by": "carol", "reason": "wrong host"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = scene.post(
        &format!("/v1/runs/{}/approve", scene.run_id),
        Some(&bearer),
        "",
    );
    assert_eq!(status, 409, "{body}");
    let runs = scene.daemon().runs("route=reap");
    assert_eq!(runs[0]["status"], "cancelled", "{:#}", runs[0]);
    assert!(
        runs[0]["reason"]
            .as_str()
            .unwrap()
            .contains("rejected by carol"),
        "{:#}",
        runs[0]
    );
    assert!(scene.reap.join("old-1.log").exists());
}
