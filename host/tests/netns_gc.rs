//! netns-gc end to end: the real `remedy` binary against real named network
//! namespaces, a real `flock` held as the orchestrator's lock, and stand-in
//! firecracker processes (a copy of `sleep` named `firecracker`).
//!
//! The tests share `/var/run/netns`, so they run one at a time.

mod common;

use common::netns::{Namespaces, sh, sleeper_in};
use common::{Reaped, describe, run_json};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A directory with `bin/firecracker` (a copy of `sleep`) and a config whose
/// grants cover this test's slots and that executable.
struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let sleep = std::fs::canonicalize("/usr/bin/sleep").unwrap();
        std::fs::copy(sleep, dir.path().join("bin/firecracker")).unwrap();
        Scene { dir }
    }

    fn firecracker(&self) -> PathBuf {
        self.dir.path().join("bin/firecracker")
    }

    fn lock_file(&self) -> PathBuf {
        self.dir.path().join("orchestrator.lock")
    }

    /// A firecracker with no orchestrator above it.
    fn orphan(&self) -> Reaped {
        Reaped(Command::new(self.firecracker()).arg("300").spawn().unwrap())
    }

    /// `flock LOCK firecracker 300`: an orchestrator holding its lock, with a
    /// sandbox below it. Its own process group, so both go when it is dropped.
    fn orchestrator(&self) -> Orchestrator {
        std::fs::write(self.lock_file(), "").unwrap();
        let child = Command::new("flock")
            .arg(self.lock_file())
            .arg(self.firecracker())
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while remedy::caps::proc::file_locks(Path::new("/proc"), &self.lock_file())
            .unwrap()
            .is_empty()
        {
            assert!(
                started.elapsed().as_secs() < 10,
                "flock never took the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Orchestrator(child)
    }

    /// The config, with `params` (`, key = "value"...`) added to the plugin's.
    fn write_config(&self, params: &str) -> PathBuf {
        let config = self.dir.path().join("remedy.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[[plugin]]
name = "netns-gc"
source = "builtin:netns-gc"
max_rounds = 6
params = {{ lock_file = "{lock}"{params} }}
[plugin.grants]
netns = ["read", "delete"]
# Foreign names are granted on purpose: the plugin itself must leave them alone.
netns_names = ["ns-0?321[0-9][0-9]", "lab-321[0-9][0-9]"]
netns_links = ["veth-321[0-9][0-9]"]
proc = ["read"]
proc_locks = ["{lock}"]
proc_signals = ["TERM"]
proc_exes = ["{}"]
"#,
                self.firecracker().display(),
                lock = self.lock_file().display(),
            ),
        )
        .unwrap();
        config
    }

    /// `remedy run netns-gc ARGS` with scans a second apart.
    fn run(&self, params: &str, args: &[&str]) -> (i32, Value) {
        let config = self.write_config(&format!(r#", rescan_after = "1s"{params}"#));
        run_json(&self.dir.path().join("state"), &config, "netns-gc", args)
    }
}

struct Orchestrator(std::process::Child);

impl Orchestrator {
    /// The firecracker it started.
    fn sandbox(&self) -> u32 {
        let all = remedy::caps::proc::processes(Path::new("/proc")).unwrap();
        all.iter()
            .find(|p| p.ppid == self.0.id())
            .map(|p| p.pid)
            .expect("the orchestrator's firecracker runs")
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_raw(self.0.id() as i32).unwrap(),
            rustix::process::Signal::KILL,
        );
        let _ = self.0.wait();
    }
}

/// `(kind, what it names, status)` of each action the run recorded, by round.
fn actions(run: &Value) -> Vec<(u64, String, String)> {
    run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let body = &a["action"];
            let kind = body["kind"].as_str().unwrap();
            let target = match kind {
                "netns-delete" => format!(
                    "{} link={}",
                    body["name"].as_str().unwrap(),
                    body["host_link"].as_str().unwrap_or("-")
                ),
                "process-signal" => {
                    format!("pid {} {}", body["pid"], body["signal"].as_str().unwrap())
                }
                other => panic!("unexpected action {other}"),
            };
            (
                a["round"].as_u64().unwrap(),
                format!("{kind} {target}"),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn alive(child: &mut Reaped) -> bool {
    child.0.try_wait().unwrap().is_none()
}

#[test]
fn stopped_orchestrator_unused_namespaces_and_orphans_are_collected_exactly() {
    let _firecrackers = common::firecracker_lock();
    let scene = Scene::new();
    let mut spaces = Namespaces(Vec::new());
    for name in ["ns-32101", "ns-32102", "ns-32103", "ns-032104", "lab-32105"] {
        spaces.add(name);
    }
    sh("ip link add veth-32101 type veth peer name eth0 netns ns-32101");
    let _inside = sleeper_in("ns-32102");
    let mut orphan = scene.orphan();
    let pid = orphan.0.id();

    // One round only sees each namespace once: never enough to act on.
    let (code, once) = scene.run("", &["--apply", "--max-rounds", "1"]);
    assert_eq!(
        (code, once["status"].as_str()),
        (4, Some("escalated")),
        "{once:#}"
    );
    assert!(
        once["reason"].as_str().unwrap().contains("still watching"),
        "{once:#}"
    );
    assert!(actions(&once).is_empty(), "{once:#}");

    let (code, dry) = scene.run("", &["--dry-run"]);
    assert_eq!(
        (code, dry["status"].as_str()),
        (0, Some("succeeded")),
        "{dry:#}"
    );
    assert_eq!(
        actions(&dry),
        [
            (
                1,
                format!("process-signal pid {pid} TERM"),
                "planned".into()
            ),
            (
                1,
                "netns-delete ns-32101 link=veth-32101".into(),
                "planned".into()
            ),
            (1, "netns-delete ns-32103 link=-".into(), "planned".into()),
        ],
        "{dry:#}"
    );
    assert!(alive(&mut orphan));
    for name in ["ns-32101", "ns-32102", "ns-32103", "ns-032104", "lab-32105"] {
        assert!(Namespaces::exists(name), "the dry-run removed {name}");
    }
    assert!(Path::new("/sys/class/net/veth-32101").exists());

    let (code, applied) = scene.run("", &["--apply"]);
    assert_eq!(
        (code, applied["status"].as_str()),
        (0, Some("succeeded")),
        "{applied:#}"
    );
    assert!(
        actions(&applied)
            .iter()
            .all(|(_, _, status)| status == "done"),
        "{applied:#}"
    );
    assert_eq!(actions(&applied).len(), 3, "{applied:#}");
    assert!(!Namespaces::exists("ns-32101") && !Namespaces::exists("ns-32103"));
    assert!(!Path::new("/sys/class/net/veth-32101").exists());
    for kept in ["ns-32102", "ns-032104", "lab-32105"] {
        assert!(Namespaces::exists(kept), "{kept} was deleted");
    }
    assert_eq!(orphan.0.wait().unwrap().signal(), Some(libc::SIGTERM));
}

#[test]
fn running_orchestrator_keeps_its_namespaces_and_sandboxes_and_a_leak_escalates() {
    let _firecrackers = common::firecracker_lock();
    let scene = Scene::new();
    let mut spaces = Namespaces(Vec::new());
    for slot in 32111..=32114 {
        spaces.add(&format!("ns-{slot}"));
    }
    let orchestrator = scene.orchestrator();
    let sandbox = orchestrator.sandbox();
    let mut orphan = scene.orphan();
    let pid = orphan.0.id();

    // Four unused against a pool of 2 is a leak of 2, past a threshold of 1.
    let limits = r#", pool_size = "2", leak_threshold = "1""#;
    let (code, run) = scene.run(limits, &["--apply"]);
    assert_eq!(
        (code, run["status"].as_str()),
        (4, Some("escalated")),
        "{run:#}"
    );
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("4 unused namespaces, 2 more than its pool of 2"),
        "{run:#}"
    );
    assert_eq!(
        actions(&run),
        [(1, format!("process-signal pid {pid} TERM"), "done".into())],
        "only the orphan is signalled: {run:#}"
    );
    assert_eq!(orphan.0.wait().unwrap().signal(), Some(libc::SIGTERM));
    assert!(
        remedy::sys::procfs::start_time(Path::new("/proc"), sandbox).is_some(),
        "the orchestrator's own sandbox was signalled"
    );
    for slot in 32111..=32114 {
        assert!(Namespaces::exists(&format!("ns-{slot}")));
    }

    // Within the threshold: nothing to do, and still nothing deleted.
    let (code, calm) = scene.run(r#", pool_size = "2", leak_threshold = "5""#, &["--apply"]);
    assert_eq!(
        (code, calm["status"].as_str()),
        (3, Some("nothing-to-do")),
        "{calm:#}"
    );
    assert!(actions(&calm).is_empty(), "{calm:#}");
    for slot in 32111..=32114 {
        assert!(Namespaces::exists(&format!("ns-{slot}")));
    }
}

#[test]
fn namespaces_that_change_between_the_two_scans_wait_for_two_more() {
    let _firecrackers = common::firecracker_lock();
    let scene = Scene::new();
    let mut spaces = Namespaces(Vec::new());
    for slot in 32121..=32123 {
        spaces.add(&format!("ns-{slot}"));
    }
    let config = scene.write_config(r#", rescan_after = "2s""#);
    let mut child = common::remedy(&scene.dir.path().join("state"), &config)
        .args(["run", "netns-gc", "--apply", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first scan is done when remedy says it is waiting for the next.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("next round in") {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "remedy ended early: {seen}"
        );
        seen.push_str(&line);
    }
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    // Between the scans: 32121 is re-created under its name, 32122 gains a process.
    spaces.add("ns-32121");
    let recreated = Namespaces::inode("ns-32121");
    let _inside = sleeper_in("ns-32122");

    let output = child.wait_with_output().unwrap();
    let _ = drain.join();
    let run: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", describe(&output)));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(
        actions(&run),
        [
            (1, "netns-delete ns-32123 link=-".into(), "done".into()),
            (2, "netns-delete ns-32121 link=-".into(), "done".into()),
        ],
        "{run:#}"
    );
    let second = run["actions"][1]["action"]["inode"].as_u64();
    assert_eq!(
        second,
        Some(recreated),
        "deleted on the strength of two scans of the new one"
    );
    assert!(Namespaces::exists("ns-32122"));
}

#[test]
fn the_default_config_dry_run_plans_only_orchestrator_namespaces() {
    let _firecrackers = common::firecracker_lock();
    let mut spaces = Namespaces(Vec::new());
    spaces.add("ns-32131");
    spaces.add("ns-032132");
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_remedy"))
        .args(["run", "netns-gc", "--dry-run", "--param", "rescan_after=1s"])
        .arg("--state-dir")
        .arg(state.path())
        .env_remove("REMEDY_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        text.contains("orchestrator  stopped: /orchestrator.lock"),
        "{}",
        describe(&output)
    );
    let planned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("netns-delete") && l.contains("planned"))
        .collect();
    assert!(
        planned.iter().any(|l| l.contains("netns ns-32131 ")),
        "{}",
        describe(&output)
    );
    assert!(!text.contains("ns-032132 "), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("next round in 1s"),
        "{}",
        describe(&output)
    );
    assert!(Namespaces::exists("ns-32131") && Namespaces::exists("ns-032132"));
}
