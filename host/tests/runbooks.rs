//! The first users' twelve alerts (`examples/e2b/`): each goes to the route
//! its runbook calls for, the config is valid, and the rules and the
//! Alertmanager config pass Prometheus's and Alertmanager's own checkers.
//! diagnose, the route for what only a human decides, runs its checks
//! against a real Prometheus and a health endpoint, and escalates with them.

mod common;

use common::{describe, remedy};
use std::path::{Path, PathBuf};
use std::process::Command;

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/e2b")
        .join(file)
}

/// The routes an alert with `labels` matches, in order.
fn routes_for(state: &Path, labels: &[(&str, &str)]) -> Vec<String> {
    let mut command = remedy(state, &example("remedy.toml"));
    command.args(["routes", "test"]);
    for (name, value) in labels {
        command.arg("--label").arg(format!("{name}={value}"));
    }
    let output = command.output().unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "{}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells.get(2) == Some(&"MATCH")).then(|| cells[1].to_string())
        })
        .collect()
}

/// An alert's name, its other labels, and the routes it should take.
type Expected = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

#[test]
fn each_of_the_twelve_alerts_goes_to_the_route_its_runbook_calls_for() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let node = ("instance", "node-7:9100");
    let table: [Expected; 12] = [
        ("APIHighCPU", &[("job", "api")], &["api-pressure-report"]),
        ("APIHighMemory", &[("job", "api")], &["api-high-memory"]),
        ("APIHighErrorRate", &[("job", "api")], &["api-error-rate"]),
        (
            "APISlowResponse",
            &[("job", "api")],
            &["api-pressure-report"],
        ),
        ("APIDown", &[("job", "api")], &["api-down"]),
        (
            "OrchestratorHighCPU",
            &[("job", "orchestrator")],
            &["orchestrator-pressure-gc", "orchestrator-pressure-report"],
        ),
        (
            "OrchestratorHighMemory",
            &[("job", "orchestrator")],
            &["orchestrator-pressure-gc", "orchestrator-pressure-report"],
        ),
        (
            "OrchestratorDown",
            &[("job", "orchestrator")],
            &["orchestrator-down"],
        ),
        ("SandboxHighFailureRate", &[], &["sandbox-report"]),
        ("TooManySandboxes", &[], &["too-many-sandboxes"]),
        ("DiskSpaceLow", &[("mountpoint", "/")], &["disk-space-low"]),
        (
            "DiskSpaceCritical",
            &[("mountpoint", "/")],
            &["disk-space-critical"],
        ),
    ];
    for (alertname, extra, expected) in table {
        let mut labels = vec![("alertname", alertname), node];
        labels.extend_from_slice(extra);
        assert_eq!(routes_for(&state, &labels), expected, "{alertname}");
    }
    assert!(
        routes_for(&state, &[("alertname", "SomethingElse"), node]).is_empty(),
        "an alert of no runbook goes nowhere"
    );
}

#[test]
fn the_examples_pass_remedys_prometheuss_and_alertmanagers_checks() {
    let dir = tempfile::tempdir().unwrap();
    let check = remedy(&dir.path().join("state"), &example("remedy.toml"))
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", describe(&check));
    let rules = std::fs::read_to_string(example("rules.yml")).unwrap();
    assert_eq!(rules.matches("- alert: ").count(), 12, "twelve rules");
    for (tool, args) in [
        ("promtool", vec!["check", "rules"]),
        ("amtool", vec!["check-config"]),
    ] {
        let file = if tool == "promtool" {
            example("rules.yml")
        } else {
            example("alertmanager.yml")
        };
        let output = Command::new(tool)
            .args(&args)
            .arg(&file)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {tool}: {e}; scripts/test installs prometheus and prometheus-alertmanager")
            });
        assert!(output.status.success(), "{tool}: {}", describe(&output));
    }
}

#[test]
fn diagnose_runs_the_runbooks_checks_and_escalates_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = common::prometheus::Prometheus::start(dir.path());
    let (healthy, _) = common::answering("200 OK");
    let (failing, _) = common::answering("503 Service Unavailable");
    let config = dir.path().join("remedy.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[prometheus]
url = "{url}"

[[plugin]]
name = "diagnose"
source = "builtin:diagnose"
params = {{ health = "http://{healthy}/health,http://{failing}/health", queries = 'up=up{{job="prometheus"}};missing=up{{job="nothing"}}', disks = "/", runbook = "page the API owner" }}
[plugin.grants]
http_urls = ["http://{healthy}/health", "http://{failing}/health"]
prometheus = ["read"]
prometheus_metrics = ["up"]
fs_read = ["{dir}"]
"#,
            url = prometheus.url(),
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let (code, run) = common::run_json(
        &dir.path().join("state"),
        &config,
        "diagnose",
        &["--label", "alertname=APIHighCPU"],
    );
    assert_eq!(code, 4, "escalated: {run:#}");
    let why = run["reason"].as_str().unwrap();
    assert!(
        why.starts_with("APIHighCPU: 5 checks, 2 not passing")
            && why.contains("page the API owner"),
        "{why}"
    );
    let checks = &run["rounds"][0]["plan"]["checks"];
    let status_of = |name: &str| -> String {
        let check = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {checks:#}"));
        format!(
            "{} {}",
            check["status"].as_str().unwrap(),
            check["detail"].as_str().unwrap()
        )
    };
    assert!(status_of(&format!("health http://{healthy}/health")).starts_with("pass status 200"));
    assert!(status_of(&format!("health http://{failing}/health")).starts_with("fail status 503"));
    assert!(
        status_of("up").starts_with(r#"pass up{job="prometheus"}: {instance="#),
        "{checks:#}"
    );
    assert!(status_of("missing").starts_with("warn"), "{checks:#}");
    assert!(status_of("disk /").contains("% used"), "{checks:#}");
    assert!(
        run["rounds"][0]["plan"]["actions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// `count` processes of a copy of `sleep` at `exe`, as sandboxes would run.
fn sandboxes(exe: &Path, count: usize) -> Vec<common::Reaped> {
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let sleep =
        String::from_utf8(Command::new("which").arg("sleep").output().unwrap().stdout).unwrap();
    std::fs::copy(sleep.trim(), exe).unwrap();
    (0..count)
        .map(|_| common::Reaped(Command::new(exe).arg("600").spawn().unwrap()))
        .collect()
}

fn alive(processes: &mut [common::Reaped]) -> usize {
    let mut running = 0;
    for process in processes {
        if process.0.try_wait().unwrap().is_none() {
            running += 1;
        }
    }
    running
}

#[test]
fn sandbox_reaper_stops_expired_sandboxes_a_share_a_round_and_pages_above_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let fc = dir.path().join("fc-versions/v1/firecracker");
    let mut fleet = sandboxes(&fc, 4);
    let mut decoy = sandboxes(&dir.path().join("bin/other"), 1);
    std::thread::sleep(std::time::Duration::from_millis(1500)); // a second old, past 0s
    let config = |escalate_above: usize| {
        let path = dir.path().join("remedy.toml");
        std::fs::write(
            &path,
            format!(
                r#"
[[plugin]]
name = "sandbox-reaper"
source = "builtin:sandbox-reaper"
params = {{ exes = "{pattern}", max_lifetime = "0s", share = "50", settle = "1", escalate_above = "{escalate_above}" }}
[plugin.grants]
proc = ["read"]
proc_signals = ["TERM"]
proc_exes = ["{pattern}"]
"#,
                pattern = dir.path().join("fc-versions/*/firecracker").display()
            ),
        )
        .unwrap();
        path
    };
    let state = dir.path().join("state");

    let (code, paged) = common::run_json(&state, &config(3), "sandbox-reaper", &["--apply"]);
    assert_eq!(code, 4, "four active, above three: {paged:#}");
    assert!(
        paged["reason"]
            .as_str()
            .unwrap()
            .contains("4 sandboxes active, above 3")
    );
    assert_eq!(alive(&mut fleet), 4, "nothing stopped when paging");

    let (_, planned) = common::run_json(&state, &config(200), "sandbox-reaper", &["--dry-run"]);
    let actions = planned["rounds"][0]["plan"]["actions"].as_array().unwrap();
    assert_eq!(
        actions.len(),
        2,
        "half of four in the first round: {planned:#}"
    );
    assert!(
        actions
            .iter()
            .all(|a| a["kind"] == "process-signal" && a["signal"] == "TERM")
    );
    assert_eq!(alive(&mut fleet), 4, "a dry-run stops nothing");

    let (code, run) = common::run_json(&state, &config(200), "sandbox-reaper", &["--apply"]);
    assert_eq!(
        (code, run["status"].as_str()),
        (0, Some("succeeded")),
        "{run:#}"
    );
    let rounds = run["rounds"].as_array().unwrap().len();
    let stopped: Vec<usize> = (0..rounds)
        .map(|round| {
            let actions = run["actions"].as_array().unwrap();
            actions
                .iter()
                .filter(|a| a["round"] == round && a["status"] == "done")
                .count()
        })
        .collect();
    assert_eq!(
        stopped,
        [2, 1, 1, 0],
        "a share of what is left each round: {run:#}"
    );
    assert_eq!(alive(&mut fleet), 0, "every expired sandbox stopped");
    assert_eq!(alive(&mut decoy), 1, "another program is never touched");
}
