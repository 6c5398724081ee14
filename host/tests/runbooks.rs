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

fn routes_for(state: &Path, labels: &[(&str, &str)]) -> Vec<String> {
    common::routes_for(state, &example("remedy.toml"), labels)
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
        // The rule sums by instance: the alert carries no job label.
        ("APIHighErrorRate", &[], &["api-error-rate"]),
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
    common::prometheus::check_rules_and_alertmanager(
        &example("rules.yml"),
        &example("alertmanager.yml"),
    );
}

#[test]
fn diagnose_runs_the_runbooks_checks_and_escalates_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = common::prometheus::Prometheus::start(dir.path());
    let (healthy, _) = common::answering("200 OK");
    let (failing, _) = common::answering("503 Service Unavailable");
    // Disks of known usage, not this machine's root, whose fill varies.
    let roomy = common::Tmpfs::mount("4m");
    let full = common::Tmpfs::mount("4m");
    std::fs::write(full.path.join("ballast"), vec![1u8; 3_800_000]).unwrap();
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
params = {{ health = "http://{healthy}/health,http://{failing}/health", queries = 'up=up{{job="prometheus"}};missing=up{{job="nothing"}}', disks = "{roomy},{full}", runbook = "page the API owner" }}
[plugin.grants]
http_urls = ["http://{healthy}/health", "http://{failing}/health"]
prometheus = ["read"]
prometheus_metrics = ["up"]
fs_read = ["{roomy}", "{full}"]
"#,
            url = prometheus.url(),
            roomy = roomy.path.display(),
            full = full.path.display(),
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
        why.starts_with("APIHighCPU: 6 checks, 3 not passing")
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
    let disk = |tmpfs: &common::Tmpfs| status_of(&format!("disk {}", tmpfs.path.display()));
    assert!(disk(&roomy).starts_with("pass 0.0 % used"), "{checks:#}");
    assert!(disk(&full).starts_with("warn 9"), "{checks:#}");
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
    let _firecrackers = common::firecracker_lock();
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

/// A copy of busybox as `nc` at `exe`, listening on `port`: a stale
/// process holding the port the API needs.
fn port_holder(exe: &Path, port: u16) -> common::Reaped {
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::copy("/bin/busybox", exe).expect("busybox-static (scripts/test installs it)");
    let holder = Command::new(exe)
        .args(["-l", "-p", &port.to_string()])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let listening = format!(":{port:04X} ");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let listens = || {
        ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
            std::fs::read_to_string(table)
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains(&listening) && l.contains(" 0A "))
        })
    };
    while !listens() {
        assert!(std::time::Instant::now() < deadline, "nc never listened");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    common::Reaped(holder)
}

#[test]
fn service_restart_stops_only_an_allowed_holder_of_the_port_then_restarts_and_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let nomad = common::nomad_double::NomadDouble::start();
    let alloc = {
        let mut world = nomad.world();
        let here = world.add_node("node-a");
        world.local_node = here.clone();
        world.add_job("default", "api", "service", &["web"]);
        let alloc = world.place("default", "api", &here);
        // Nomad cannot start it: its port is taken.
        let task = world.alloc_mut(&alloc).tasks.get_mut("web").unwrap();
        task.state = "pending".into();
        alloc
    };
    let api = common::fake_api::FakeApi::start();
    api.set(|a| a.up = false);
    let port = common::ports::free_addr().port();
    let stale = dir.path().join("opt/api-v41/nc");
    let mut holder = vec![port_holder(&stale, port)];
    let config = |holders: &str| {
        let path = dir.path().join("remedy.toml");
        std::fs::write(
            &path,
            format!(
                r#"
[nomad]
address = "{nomad}"
retries = 0

[[plugin]]
name = "service-restart"
source = "builtin:service-restart"
max_rounds = 20
params = {{ job = "api", health = "{health}", port = "{port}", holders = "{holders}", confirm_every = "1s", confirm_within = "15s" }}
[plugin.grants]
http_urls = ["{health}"]
nomad = ["read", "restart"]
nomad_jobs = ["api"]
proc = ["read"]
proc_signals = ["TERM"]
proc_exes = ["{opt}/*/nc"]
"#,
                nomad = nomad.address(),
                health = api.health_url(),
                opt = dir.path().join("opt").display(),
            ),
        )
        .unwrap();
        path
    };
    let state = dir.path().join("state");
    let actions = |run: &serde_json::Value| run["rounds"][0]["plan"]["actions"].clone();

    // Not an allowed holder: a human decides, and nothing is touched.
    let (code, run) = common::run_json(&state, &config(""), "service-restart", &["--apply"]);
    assert_eq!(code, 4, "escalated: {run:#}");
    let why = run["reason"].as_str().unwrap();
    assert!(
        why.contains(&format!("port {port} is held by pid {}", holder[0].0.id())),
        "{why}"
    );
    assert_eq!(alive(&mut holder), 1);
    assert_eq!(nomad.world().alloc(&alloc).restarts(), 0);

    // Allowed: the dry-run plans the signal, then the restart.
    let allowed = config(&format!("{}/*/nc", dir.path().join("opt").display()));
    let (_, planned) = common::run_json(&state, &allowed, "service-restart", &["--dry-run"]);
    let plan = actions(&planned);
    assert_eq!(plan[0]["kind"], "process-signal", "{planned:#}");
    assert_eq!(plan[0]["pid"], holder[0].0.id(), "{planned:#}");
    assert_eq!(plan[1]["kind"], "nomad-restart-alloc", "{planned:#}");
    assert_eq!(alive(&mut holder), 1, "a dry-run stops nothing");

    // Applied: exactly that plan runs; "Nomad" starts the API once the
    // port is free and the allocation restarted, and the run confirms it.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while nomad.world().alloc(&alloc).restarts() == 0 {
                assert!(std::time::Instant::now() < deadline, "never restarted");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            api.set(|a| a.up = true);
        });
        let (code, run) = common::run_json(&state, &allowed, "service-restart", &["--apply"]);
        assert_eq!(code, 0, "{run:#}");
        assert_eq!(actions(&run), plan, "the dry-run's plan is what ran");
        let rounds = run["rounds"].as_array().unwrap();
        assert_eq!(
            rounds.last().unwrap()["plan"]["summary"],
            "recovery confirmed",
            "{run:#}"
        );
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(alive(&mut holder), 0, "the stale holder was stopped");
    assert_eq!(nomad.world().alloc(&alloc).restarts(), 1);
}
