//! Config reload on SIGHUP and POST /-/reload: a valid config switches the
//! routes over, an invalid one is refused with the reason while the running
//! config keeps serving, and both are audited.

mod common;

use common::daemon::{Daemon, firing, panicky_route, serve_config, try_request, webhook};
use common::ports::free_addr;
use common::remedy;
use std::time::{Duration, Instant};

fn route(name: &str, alertname: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\nmatchers = ['alertname=\"{alertname}\"']\nplugin = \"echo\"\n"
    )
}

fn outcome(daemon: &Daemon, alertname: &str, starts_at: &str) -> String {
    let (status, body) = daemon.post_alerts(&webhook(
        "r",
        &[firing(&[("alertname", alertname)], starts_at)],
    ));
    assert_eq!(status, 202, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    reply["alerts"][0]["outcomes"][0]["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn reload(daemon: &Daemon, authorization: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    try_request(daemon.addr, "POST", "/-/reload", &headers, b"").unwrap()
}

#[test]
fn reload_switches_routes_refuses_a_bad_config_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &route("first", "First"));
    let original = std::fs::read_to_string(&config).unwrap();
    let mut daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    assert_eq!(
        outcome(&daemon, "Second", "2026-11-21T10:00:00Z"),
        "unrouted"
    );

    // Credentials as for every other endpoint.
    std::fs::write(
        &config,
        format!("{original}\n{}", route("second", "Second")),
    )
    .unwrap();
    assert_eq!(reload(&daemon, None).0, 401);
    assert_eq!(
        outcome(&daemon, "Second", "2026-11-21T10:01:00Z"),
        "unrouted"
    );

    let bearer = common::daemon::basic_auth(common::daemon::ONCALL);
    let (status, body) = reload(&daemon, Some(&bearer));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"second\""), "{body}");
    assert_eq!(outcome(&daemon, "Second", "2026-11-21T10:02:00Z"), "queued");
    assert_eq!(
        daemon.metric("remedy_config_last_reload_successful"),
        Some(1.0)
    );

    // Invalid: a route naming a plugin that does not exist.
    let broken = format!("{original}\n[[route]]\nname = \"third\"\nplugin = \"nope\"\n");
    std::fs::write(&config, &broken).unwrap();
    let (status, body) = reload(&daemon, Some(&bearer));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("the running config stays"), "{body}");
    assert!(
        body.contains(r#"plugin = \"nope\" is not a configured [[plugin]]"#),
        "{body}"
    );
    assert_eq!(
        daemon.metric("remedy_config_last_reload_successful"),
        Some(0.0)
    );
    // Still the config that was loaded last: both routes serve.
    assert_eq!(outcome(&daemon, "First", "2026-11-21T10:03:00Z"), "queued");
    assert_eq!(outcome(&daemon, "Second", "2026-11-21T10:04:00Z"), "queued");

    // Not even TOML: the same.
    std::fs::write(&config, "[[route]\n").unwrap();
    let (status, body) = reload(&daemon, Some(&bearer));
    assert_eq!(status, 500, "{body}");
    assert_eq!(outcome(&daemon, "Second", "2026-11-21T10:05:00Z"), "queued");

    // SIGHUP reloads too: back to only the first route.
    std::fs::write(&config, &original).unwrap();
    let pid = daemon.pid();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while daemon.metric("remedy_config_last_reload_successful") != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        outcome(&daemon, "Second", "2026-11-21T10:06:00Z"),
        "unrouted"
    );
    assert_eq!(outcome(&daemon, "First", "2026-11-21T10:07:00Z"), "queued");

    daemon.stop();
    let audit = remedy(&dir.path().join("state"), &config)
        .args(["audit", "export"])
        .output()
        .unwrap();
    let kinds: Vec<String> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"].as_str().unwrap().starts_with("config-"))
        .map(|r| {
            format!(
                "{} {}",
                r["kind"].as_str().unwrap(),
                r["body"]["trigger"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "config-reloaded POST /-/reload",
            "config-reload-failed POST /-/reload",
            "config-reload-failed POST /-/reload",
            "config-reloaded SIGHUP",
        ]
    );
}

#[test]
fn a_reloaded_breaker_rule_counts_from_the_next_run_s_end() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &panicky_route(0));
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let breaker_open = "remedy_circuit_breaker_open{route=\"panicky\"}";
    daemon.fail_panicky_once("2026-11-21T10:00:00Z");
    daemon.fail_panicky_once("2026-11-21T10:01:00Z");
    assert_eq!(
        daemon.metric(breaker_open),
        Some(0.0),
        "no rule, no breaker"
    );

    // Three failures within the hour now open it: the next end is the third.
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        original.replace(&panicky_route(0), &panicky_route(3)),
    )
    .unwrap();
    let bearer = common::daemon::basic_auth(common::daemon::ONCALL);
    let (status, body) = reload(&daemon, Some(&bearer));
    assert_eq!(status, 200, "{body}");
    daemon.fail_panicky_once("2026-11-21T10:02:00Z");
    assert_eq!(
        daemon.metric(breaker_open),
        Some(1.0),
        "opened by the reloaded rule:\n{}",
        daemon.log()
    );
}
