//! The first users' alerts end to end, with every component real except
//! Nomad: node_exporter and a small API the test controls are scraped by
//! Prometheus, which evaluates the rules of `examples/e2b/rules.yml` (with
//! second-long `for:` and rate windows) and alerts Alertmanager, which
//! delivers to `remedy serve`; remedy acts through its plugins on a real
//! tmpfs and on the Nomad double.

mod common;

use common::daemon::{Daemon, TOKEN, is_finished, try_request};
use common::fake_api::FakeApi;
use common::nomad_double::NomadDouble;
use common::ports::free_addr;
use common::prometheus::{NodeExporter, Prometheus, Setup};
use common::{Tmpfs, aged_file};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DAY: Duration = Duration::from_secs(86_400);
const NODE: &str = "node-a";

/// The example rules, made quick: `for:` of a second and rate windows of
/// five, and the disk rules about `mountpoint` (a tmpfs) instead of `/`.
fn quick_rules(dir: &Path, mountpoint: &Path) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/e2b/rules.yml");
    let text = std::fs::read_to_string(example).unwrap();
    let for_clause = regex::Regex::new(r"for: \d+m").unwrap();
    let window = regex::Regex::new(r"\[\d+m\]").unwrap();
    let text = for_clause.replace_all(&text, "for: 1s");
    let text = window.replace_all(&text, "[5s]");
    let text = text
        .replace(
            r#"mountpoint="/""#,
            &format!(r#"mountpoint="{}""#, mountpoint.display()),
        )
        .replace(r#"fstype!~"tmpfs|overlay""#, r#"fstype!~"overlay""#);
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, text).unwrap();
    rules
}

struct Chain {
    _dir: tempfile::TempDir,
    disk: Tmpfs,
    api: FakeApi,
    nomad: NomadDouble,
    alloc: String,
    alertmanager: common::alertmanager::Alertmanager,
    _prometheus: Prometheus,
    _exporter: NodeExporter,
    remedy: Daemon,
}

impl Chain {
    fn start() -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let disk = Tmpfs::mount("8m");
        let api = FakeApi::start();
        let nomad = NomadDouble::start();
        let alloc = {
            let mut world = nomad.world();
            let here = world.add_node(NODE);
            world.local_node = here.clone();
            world.add_job("default", "api", "service", &["web"]);
            world.deploy("default", "api", "v1", true);
            world.deploy("default", "api", "v2-broken", false);
            world.place("default", "api", &here)
        };
        let addr = free_addr();
        let alertmanager = common::alertmanager::Alertmanager::start(dir.path(), &[addr]);
        let exporter = NodeExporter::start(dir.path());
        let rules = quick_rules(dir.path(), &disk.path);
        let prometheus = Prometheus::start_with(
            dir.path(),
            Setup {
                targets: &[
                    ("api", api.addr, &format!("{NODE}:3000")),
                    ("node", exporter.addr, &format!("{NODE}:9100")),
                ],
                rules: Some(&rules),
                alertmanager: Some(alertmanager.addr),
            },
        );
        let config = config(
            dir.path(),
            addr,
            &disk.path,
            &api,
            &nomad,
            &alertmanager,
            &prometheus,
        );
        let remedy = Daemon::start(&dir.path().join("state"), &config, addr);
        Chain {
            _dir: dir,
            disk,
            api,
            nomad,
            alloc,
            alertmanager,
            _prometheus: prometheus,
            _exporter: exporter,
            remedy,
        }
    }

    /// Whether Alertmanager holds an active alert named `alertname`.
    fn firing(&self, alertname: &str) -> bool {
        let path = format!("/api/v2/alerts?active=true&filter=alertname%3D%22{alertname}%22");
        match try_request(self.alertmanager.addr, "GET", &path, &[], b"") {
            Ok((200, body)) => body.trim() != "[]",
            other => panic!("Alertmanager answered {other:?}"),
        }
    }

    fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen in 90 s; runs: {:#?}\n{}",
                self.remedy.runs(""),
                self.remedy.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn approve(&self, id: &str) {
        let (status, body) = self.remedy.decide(&format!("/v1/runs/{id}/approve"), b"");
        assert_eq!(status, 200, "{body}");
    }

    fn api_versions(&self) -> Vec<u64> {
        let world = self.nomad.world();
        let job = world.job("default", "api").unwrap();
        job.versions.iter().map(|v| v.version).collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn config(
    dir: &Path,
    addr: SocketAddr,
    disk: &Path,
    api: &FakeApi,
    nomad: &NomadDouble,
    alertmanager: &common::alertmanager::Alertmanager,
    prometheus: &Prometheus,
) -> PathBuf {
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    common::daemon::write_users(dir);
    let d = disk.display();
    let text = format!(
        r#"
[node]
name = "{NODE}"
label = "instance"

[server]
listen = "{addr}"
token_file = "token"
users_file = "users.toml"

[alertmanager]
url = "http://{am}"

[prometheus]
url = "{prom}"

[nomad]
address = "{nomad}"
retries = 0

[[plugin]]
name = "disk-cleanup"
source = "builtin:disk-cleanup"
params = {{ cache_dirs = "{d}/cache", log_dirs = "", sandbox_dirs = "", target_used_percent = "50" }}
[plugin.grants]
fs_read = ["{d}"]
fs_remove = ["{d}/cache"]
proc = ["read"]

[[plugin]]
name = "service-restart"
source = "builtin:service-restart"
max_rounds = 40
params = {{ job = "api", health = "{health}", confirm_every = "1s", confirm_within = "60s" }}
[plugin.grants]
http_urls = ["{health}"]
nomad = ["read", "restart"]
nomad_jobs = ["api"]
proc = ["read"]

[[plugin]]
name = "rollback"
source = "builtin:rollback"
max_rounds = 40
params = {{ job = "api", error_ratio = 'sum(rate(http_requests_total{{job="api",code=~"5.."}}[5s])) / sum(rate(http_requests_total{{job="api"}}[5s]))', confirm_every = "1s", confirm_within = "60s", revert_cooldown = "0s" }}
[plugin.grants]
nomad = ["read", "revert"]
nomad_jobs = ["api"]
prometheus = ["read"]
prometheus_metrics = ["http_requests_total"]

[[route]]
name = "disk-space-low"
matchers = ['alertname="DiskSpaceLow"']
plugin = "disk-cleanup"
mode = "apply"

[[route]]
name = "api-down"
matchers = ['alertname="APIDown"']
plugin = "service-restart"
mode = "apply"

[[route]]
name = "api-error-rate"
matchers = ['alertname="APIHighErrorRate"']
plugin = "rollback"
mode = "approve"
"#,
        am = alertmanager.addr,
        prom = prometheus.url(),
        nomad = nomad.address(),
        health = api.health_url(),
    );
    let path = dir.join("remedy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_first_users_alerts_are_remedied_end_to_end() {
    let chain = Chain::start();
    disk_space_low_is_cleaned_and_resolves(&chain);
    api_down_is_restarted_through_nomad_and_confirmed(&chain);
    a_rollback_approved_after_its_alert_resolved_is_not_acted_on(&chain);
    a_rollback_approved_while_firing_reverts_and_watches_the_errors_fall(&chain);
}

/// (a) A full filesystem: node_exporter → DiskSpaceLow → disk-cleanup
/// frees it below the target, and the alert resolves.
fn disk_space_low_is_cleaned_and_resolves(chain: &Chain) {
    let cache = chain.disk.path.join("cache");
    for n in 0..7 {
        aged_file(&cache.join(format!("chunk-{n}")), 1 << 20, 30 * DAY);
    }
    assert!(
        chain.disk.used_percent() > 85.0,
        "{}",
        chain.disk.used_percent()
    );
    let runs = chain
        .remedy
        .wait_for_runs("route=disk-space-low", 1, is_finished);
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    assert!(
        chain.disk.used_percent() <= 50.0,
        "{}",
        chain.disk.used_percent()
    );
    chain.wait_until("DiskSpaceLow resolving", || !chain.firing("DiskSpaceLow"));
}

/// (b) The API stops answering: APIDown → service-restart restarts this
/// node's allocation through Nomad; "Nomad" brings the API back, and the
/// run confirms it answers three times in a row.
fn api_down_is_restarted_through_nomad_and_confirmed(chain: &Chain) {
    chain.api.set(|api| api.up = false);
    std::thread::scope(|scope| {
        // What Nomad's restart does for the real API: it answers again.
        scope.spawn(|| {
            chain.wait_until("the restart", || {
                chain.nomad.world().alloc(&chain.alloc).restarts() > 0
            });
            chain.api.set(|api| api.up = true);
        });
        let runs = chain.remedy.wait_for_runs("route=api-down", 1, is_finished);
        assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    });
    assert!(chain.api.is_up());
    assert_eq!(chain.nomad.world().alloc(&chain.alloc).restarts(), 1);
    let run = run_detail(chain, "route=api-down");
    let rounds = run["rounds"].as_array().unwrap();
    let first = &rounds[0]["plan"];
    assert_eq!(
        first["actions"][0]["kind"], "nomad-restart-alloc",
        "{first:#}"
    );
    let last = &rounds.last().unwrap()["plan"];
    assert!(
        last["summary"] == "recovery confirmed"
            && last["checks"].to_string().contains("3 good in a row of 3"),
        "{run:#}"
    );
    chain.wait_until("APIDown resolving", || !chain.firing("APIDown"));
}

/// (c) Failing requests: APIHighErrorRate → rollback plans the revert and
/// awaits approval; the errors stop and the alert resolves; the approval
/// that comes afterwards is cancelled, and Nomad is not touched.
fn a_rollback_approved_after_its_alert_resolved_is_not_acted_on(chain: &Chain) {
    let before = chain.api_versions();
    chain.api.set(|api| api.failing_percent = 12);
    let waiting = chain
        .remedy
        .wait_for_runs("route=api-error-rate", 1, is_finished);
    assert_eq!(waiting[0]["status"], "awaiting-approval", "{waiting:#?}");
    let run = run_detail(chain, "route=api-error-rate");
    let plan = &run["rounds"][0]["plan"];
    assert_eq!(plan["actions"][0]["kind"], "nomad-revert-job", "{plan:#}");
    assert_eq!(plan["actions"][0]["to_version"], 1, "{plan:#}");

    chain.api.set(|api| api.failing_percent = 0);
    chain.wait_until("APIHighErrorRate resolving", || {
        !chain.firing("APIHighErrorRate")
    });
    chain.approve(waiting[0]["id"].as_str().unwrap());
    let ended = chain
        .remedy
        .wait_for_runs("route=api-error-rate", 1, is_finished);
    assert_eq!(ended[0]["status"], "cancelled", "{ended:#?}");
    assert!(
        ended[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no longer fires"),
        "{ended:#?}"
    );
    assert_eq!(chain.api_versions(), before, "nothing was reverted");
}

/// (d) The same approved while it fires: the job is reverted, "Nomad"
/// places the stable version, the errors fall, and the run watches them
/// stay below the threshold before it ends.
fn a_rollback_approved_while_firing_reverts_and_watches_the_errors_fall(chain: &Chain) {
    chain.api.set(|api| api.failing_percent = 12);
    let waiting = chain.remedy.wait_for_runs("route=api-error-rate", 2, |r| {
        r["status"] == "cancelled" || is_finished(r)
    });
    let next = waiting
        .iter()
        .find(|r| r["status"] == "awaiting-approval")
        .unwrap_or_else(|| panic!("no second plan: {waiting:#?}"));
    std::thread::scope(|scope| {
        // The reverted version serves without errors.
        scope.spawn(|| {
            chain.wait_until("the revert", || chain.api_versions().len() > 3);
            chain.api.set(|api| api.failing_percent = 0);
        });
        chain.approve(next["id"].as_str().unwrap());
        let done =
            chain
                .remedy
                .wait_for_runs("route=api-error-rate&outcome=succeeded", 1, is_finished);
        assert_eq!(done.len(), 1, "{done:#?}");
    });
    let versions = chain.api_versions();
    assert_eq!(versions, [0, 1, 2, 3], "one revert, to a new version 3");
}

/// The full record of the one run `query` lists.
fn run_detail(chain: &Chain, query: &str) -> serde_json::Value {
    let runs = chain.remedy.runs(query);
    let id = runs.last().unwrap()["id"].as_str().unwrap().to_string();
    let (status, body) = chain.remedy.get(&format!("/v1/runs/{id}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}
