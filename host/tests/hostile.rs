//! A hostile plugin loaded from its `.wasm` with narrow grants, through the
//! real `remedy` binary: one test per class of attack, several variants each.
//! Every run must end as it should within its deadline plus a small slack,
//! change nothing outside the grant, record the refusal, and leave an audit
//! trail that verifies.

mod common;

use common::daemon::{
    Daemon, firing, hostile_route, is_finished, reaper_route, serve_config, webhook,
};
use common::ports::free_addr;
use common::{DAY, PLUGIN_DIR, Reaped, aged_file, describe, remedy, run_json};
use serde_json::Value;
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What a run may take beyond its plugin's deadline: process start, plugin
/// load, recording.
const SLACK: Duration = Duration::from_millis(2500);

/// A granted directory, a directory outside the grant, and a config that
/// loads the hostile plugin with `fs_read`/`fs_remove` on the first only.
struct Trial {
    dir: tempfile::TempDir,
    root: &'static str,
}

impl Trial {
    fn new() -> Trial {
        Trial::with_root("granted")
    }

    /// With the granted directory named `root`.
    fn with_root(root: &'static str) -> Trial {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(root)).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/secret"), "secret").unwrap();
        Trial { dir, root }
    }

    fn granted(&self) -> PathBuf {
        self.dir.path().join(self.root)
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The config: the plugin's `timeout` and `memory`, and `grants` lines
    /// added to its fs and proc grants.
    fn config(&self, timeout: &str, memory: &str, grants: &str) -> PathBuf {
        let path = self.dir.path().join("remedy.toml");
        std::fs::write(
            &path,
            format!(
                r#"
[[plugin]]
name = "hostile"
source = "{PLUGIN_DIR}/hostile.wasm"
timeout = "{timeout}"
memory = "{memory}"
max_rounds = 2
[plugin.grants]
fs_read = ["{granted}"]
fs_remove = ["{granted}"]
proc = ["read"]
{grants}
"#,
                granted = self.granted().display()
            ),
        )
        .unwrap();
        path
    }

    /// `remedy run hostile --param attack=ATTACK ARGS`: exit code, the run, and how long it took.
    fn attack(&self, config: &Path, attack: &str, args: &[&str]) -> (i32, Value, Duration) {
        let attack = format!("attack={attack}");
        let mut all = vec!["--param", &attack];
        all.extend_from_slice(args);
        let started = Instant::now();
        let (code, run) = run_json(&self.state(), config, "hostile", &all);
        (code, run, started.elapsed())
    }

    fn audit_verifies(&self, config: &Path) {
        let output = remedy(&self.state(), config)
            .args(["audit", "verify"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", describe(&output));
    }

    /// Bytes under the state directory.
    /// What the state holds, its full-disk reserve (a fixed size) aside.
    fn state_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name() != "reserve")
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.state())
    }
}

fn check_detail(run: &Value, name: &str) -> String {
    run["rounds"][0]["plan"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {run:#}"))["detail"]
        .as_str()
        .unwrap()
        .to_string()
}

// 1. A plugin's deadline is wall-clock over the whole call, host calls included.

#[test]
fn waiting_in_the_host_ends_at_the_deadline() {
    let trial = Trial::new();
    let config = trial.config("1s", "64MiB", "");
    // Sleeping and polling wait in WASI; the loop runs wasm.
    for attack in ["sleep", "poll-forever", "loop"] {
        let (code, run, took) = trial.attack(&config, attack, &[]);
        assert_eq!(code, 1, "{attack}: {run:#}");
        assert_eq!(run["status"], "timed-out", "{attack}: {run:#}");
        assert!(
            took < Duration::from_secs(1) + SLACK,
            "{attack} held the run for {took:?}"
        );
    }
    trial.audit_verifies(&config);
}

/// A FIFO at `path`.
fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[test]
fn files_that_block_or_act_when_opened_are_never_opened() {
    let trial = Trial::new();
    let config = trial.config("2s", "64MiB", "");
    let g = trial.granted();
    mkfifo(&g.join("fifo-no-writer"));
    mkfifo(&g.join("fifo-idle-writer"));
    // A writer that holds the FIFO open and never writes (O_RDWR does not wait).
    let _writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(g.join("fifo-idle-writer"))
        .unwrap();
    // /dev/null's numbers: a character device inside the grant (tests run as root).
    rustix::fs::mknodat(
        rustix::fs::CWD,
        g.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    std::fs::create_dir(g.join("dir")).unwrap();
    let cases = [
        ("fifo-no-writer", "is a FIFO, not a regular file"),
        ("fifo-idle-writer", "is a FIFO, not a regular file"),
        ("null", "is a character device, not a regular file"),
        ("dir", "is a directory, not a regular file"),
    ];
    for (name, refusal) in cases {
        let target = format!("target={}", g.join(name).display());
        let (code, run, took) = trial.attack(&config, "read", &["--param", &target]);
        assert_eq!(code, 3, "{name}: {run:#}");
        assert!(took < Duration::from_secs(2), "{name} took {took:?}");
        let read = check_detail(&run, "read-file");
        assert!(
            read.contains("Invalid") && read.contains(refusal),
            "{name}: {read}"
        );
        // Asking which filesystem holds a FIFO or a device opens nothing either.
        let usage = check_detail(&run, "usage");
        if name != "dir" {
            assert!(usage.contains(refusal), "{name}: {usage}");
        }
    }
    trial.audit_verifies(&config);
}

#[test]
fn serve_keeps_answering_while_a_plugin_waits() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let routes = hostile_route("sleep", "Sleep", "sleep", "2s")
        + r#"
[[route]]
name = "echo"
matchers = ['alertname="Echo"']
plugin = "echo"
"#;
    let config = serve_config(dir.path(), addr, "workers = 4\nper_plugin = 4", &routes);
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let sleepers: Vec<Value> = (0..3)
        .map(|n| {
            firing(
                &[("alertname", "Sleep"), ("instance", &format!("node-{n}"))],
                "2026-11-25T10:00:00Z",
            )
        })
        .collect();
    let posted = Instant::now();
    assert_eq!(daemon.post_alerts(&webhook("r", &sleepers)).0, 202);
    // While three plugins sleep, the server answers and other runs go through.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(daemon.request("GET", "/-/healthy", &[], b"").0, 200);
    let echo = firing(
        &[("alertname", "Echo"), ("instance", "node-9")],
        "2026-11-25T10:00:00Z",
    );
    assert_eq!(daemon.post_alerts(&webhook("r", &[echo])).0, 202);
    let echoed = daemon.wait_for_runs("route=echo", 1, is_finished);
    assert_eq!(echoed[0]["status"], "nothing-to-do", "{echoed:#?}");

    let slept = daemon.wait_for_runs("route=sleep", 3, is_finished);
    assert!(
        posted.elapsed() < Duration::from_secs(2) + SLACK * 2,
        "the sleeping runs took {:?}",
        posted.elapsed()
    );
    for run in &slept {
        assert_eq!(run["status"], "timed-out", "{run:#}");
    }
    assert_eq!(daemon.request("GET", "/-/healthy", &[], b"").0, 200);
    let output = remedy(&daemon.state, &config)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
}

// 2. A grant holds for every object an action touches.

/// A process of `program` in a new process group of its own, or in `group`.
fn spawn_in_group(program: &str, args: &[&str], group: i32) -> Reaped {
    Reaped(
        Command::new(program)
            .args(args)
            .process_group(group)
            .spawn()
            .unwrap(),
    )
}

fn exe_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap()
        .display()
        .to_string()
}

fn alive(child: &mut Reaped) -> bool {
    child.0.try_wait().unwrap().is_none()
}

fn signal_config(trial: &Trial, exe: &str) -> PathBuf {
    trial.config(
        "10s",
        "64MiB",
        &format!("proc_signals = [\"TERM\"]\nproc_exes = [\"{exe}\"]"),
    )
}

#[test]
fn a_group_signal_must_be_granted_for_every_member() {
    let trial = Trial::new();
    let mut sleeper = spawn_in_group("sleep", &["600"], 0);
    let group = sleeper.0.id() as i32;
    let mut tail = spawn_in_group("tail", &["-f", "/dev/null"], group);
    let config = signal_config(&trial, &exe_of(sleeper.0.id()));
    let target = format!("target={}", sleeper.0.id());

    // Apply: `tail` is in the group and not granted, so nothing is sent.
    let (code, run, _) = trial.attack(&config, "group-signal", &["--apply", "--param", &target]);
    assert_eq!(
        (code, run["status"].as_str()),
        (5, Some("denied")),
        "{run:#}"
    );
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("pid {}", tail.0.id())) && reason.contains("not granted"),
        "{reason}"
    );
    assert!(alive(&mut sleeper) && alive(&mut tail));

    // Dry-run says the same and sends nothing either.
    let (code, run, _) = trial.attack(&config, "group-signal", &["--dry-run", "--param", &target]);
    assert_eq!(
        (code, run["status"].as_str()),
        (5, Some("denied")),
        "{run:#}"
    );
    assert!(alive(&mut sleeper) && alive(&mut tail));

    // The named pid alone may be signalled: only it dies, the group lives on.
    let (code, run, _) = trial.attack(&config, "signal", &["--apply", "--param", &target]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(sleeper.0.wait().unwrap().signal(), Some(libc::SIGTERM));
    assert!(alive(&mut tail));
    trial.audit_verifies(&config);
}

#[test]
fn a_group_of_granted_processes_is_signalled_member_by_member() {
    let trial = Trial::new();
    let mut first = spawn_in_group("sleep", &["600"], 0);
    let group = first.0.id() as i32;
    let mut second = spawn_in_group("sleep", &["601"], group);
    // Outside the group: never reached, granted or not.
    let mut bystander = spawn_in_group("sleep", &["602"], 0);
    let config = signal_config(&trial, &exe_of(first.0.id()));
    let target = format!("target={}", first.0.id());

    let (code, run, _) = trial.attack(&config, "group-signal", &["--dry-run", "--param", &target]);
    assert_eq!(code, 0, "{run:#}");
    let planned = run["actions"][0]["detail"].as_str().unwrap().to_string();
    for pid in [first.0.id(), second.0.id()] {
        assert!(planned.contains(&pid.to_string()), "{planned}");
    }
    assert!(
        !planned.contains(&bystander.0.id().to_string()),
        "{planned}"
    );
    assert!(alive(&mut first) && alive(&mut second));

    let (code, run, _) = trial.attack(&config, "group-signal", &["--apply", "--param", &target]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(first.0.wait().unwrap().signal(), Some(libc::SIGTERM));
    assert_eq!(second.0.wait().unwrap().signal(), Some(libc::SIGTERM));
    assert!(alive(&mut bystander));
    trial.audit_verifies(&config);
}

// 3. Every string and list from a plugin is bounded.

#[test]
fn oversized_answers_fail_the_run_and_are_not_kept() {
    let trial = Trial::new();
    let config = trial.config("20s", "256MiB", "");
    let twenty_mb = format!("bytes={}", 20 << 20);
    let two_mb = format!("bytes={}", 2 << 20);
    let cases: [(&str, &str, &str); 7] = [
        ("huge-error", &twenty_mb, "the error.internal"),
        ("huge-summary", &twenty_mb, "plan.summary"),
        ("huge-check", &twenty_mb, "plan.checks[0].detail"),
        (
            "huge-reason",
            &twenty_mb,
            "plan.actions[0].remove-path.reason",
        ),
        ("huge-escalate", &twenty_mb, "plan.escalate"),
        ("huge-memo", &two_mb, "the memo"),
        ("many-texts", "bytes=0", "plan holds"),
    ];
    for (attack, bytes, field) in cases {
        let before = trial.state_bytes();
        let (code, run, _) = trial.attack(&config, attack, &["--param", bytes]);
        assert_eq!(
            (code, run["status"].as_str()),
            (1, Some("failed")),
            "{attack}"
        );
        let reason = run["reason"].as_str().unwrap();
        assert!(
            reason.contains(field) && reason.contains("remedy accepts at most"),
            "{attack}: {reason}"
        );
        let grew = trial.state_bytes().saturating_sub(before);
        assert!(grew < 1 << 20, "{attack} grew the state by {grew} bytes");
    }
    // A huge log line is cut, not refused: the run goes on.
    let before = trial.state_bytes();
    let (code, run, _) = trial.attack(&config, "huge-log", &["--param", &twenty_mb]);
    assert_eq!(code, 3, "{run:#}");
    assert!(run.to_string().contains("bytes cut]"), "{run:#}");
    assert!(trial.state_bytes().saturating_sub(before) < 1 << 20);
    trial.audit_verifies(&config);
}

#[test]
fn oversized_descriptions_are_refused_at_load() {
    // describe() has no input but the grants: the attack is the root's name.
    for (root, what) in [
        (
            "describe-huge-version",
            "describe().version is 20971520 bytes",
        ),
        (
            "describe-huge-default",
            "describe().params[0].default is 20971520 bytes",
        ),
        ("describe-many-params", "describe().params has 304 items"),
    ] {
        let trial = Trial::with_root(root);
        let config = trial.config("20s", "256MiB", "");
        let output = remedy(&trial.state(), &config)
            .args(["config", "check"])
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            output.status.code(),
            Some(2),
            "{root}: {}",
            describe(&output)
        );
        assert!(
            said.contains(what) && said.contains("remedy accepts at most"),
            "{root}: {said}"
        );
        assert!(said.len() < 4096, "{root}: {} bytes of output", said.len());
    }
}

// 4. Read interfaces leak nothing outside their grant.

#[test]
fn reads_outside_the_grant_say_nothing_of_what_is_there() {
    let trial = Trial::new();
    let lock = trial.granted().join("daemon.lock");
    std::fs::write(&lock, "").unwrap();
    let config = trial.config(
        "10s",
        "64MiB",
        &format!("proc_locks = [\"{}\"]", lock.display()),
    );
    let locked_outside = trial.outside().join("locked");
    std::fs::write(&locked_outside, "").unwrap();
    let _held = Reaped(
        Command::new("flock")
            .arg(&locked_outside)
            .args(["sleep", "600"])
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(200));

    let answer = |attack: &str, check: &str, path: &Path| -> String {
        let target = format!("target={}", path.display());
        let (_, run, _) = trial.attack(&config, attack, &["--param", &target]);
        check_detail(&run, check).replace(&path.display().to_string(), "PATH")
    };
    let outside = [
        trial.outside().join("secret"),
        trial.outside().join("missing"),
        locked_outside.clone(),
        PathBuf::from("/etc/hostname"),
        PathBuf::from("/nonexistent/remedy.lock"),
    ];
    for (attack, check) in [
        ("file-locks", "file-locks"),
        ("read", "read-file"),
        ("read", "stat"),
    ] {
        let answers: Vec<String> = outside.iter().map(|p| answer(attack, check, p)).collect();
        assert!(
            answers[0].contains("Denied"),
            "{attack}/{check}: {answers:?}"
        );
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{attack}/{check} answers differ outside the grant: {answers:#?}"
        );
    }
    // Inside the grant, the lock file is read as usual.
    let inside = answer("file-locks", "file-locks", &lock);
    assert!(inside.starts_with("LEAKED []"), "{inside}");
    trial.audit_verifies(&config);
}

#[test]
fn a_plugin_cannot_record_params_it_was_not_given_or_unbounded_ones() {
    let trial = Trial::new();
    let config = trial.config("10s", "64MiB", "");
    let (_, run, _) = trial.attack(&config, "forge-params", &["--dry-run"]);
    let params = run["params"].as_object().unwrap();
    assert!(!params.contains_key("not-declared"), "{params:?}");
    // Cut at 16 KiB, saying how much was cut.
    let bytes = params["bytes"].as_str().unwrap();
    let (kept, note) = bytes.split_once('…').expect("a value cut short says so");
    assert_eq!(kept.len(), 16 * 1024, "{note}");
    assert!(note.ends_with("bytes cut]"), "{note}");
    let forged = params.values().filter(|v| *v == "forged").count();
    assert!(forged <= 64, "{forged} params recorded");
    assert!(params.len() <= 64 + 3, "{} params", params.len());
    trial.audit_verifies(&config);
}

// 5. Text from a plugin cannot forge what an operator sees.

#[test]
fn plugin_text_is_shown_escaped_in_every_view() {
    let trial = Trial::new();
    let config = trial.config("10s", "64MiB", "");
    let (_, run, _) = trial.attack(&config, "forge-output", &["--dry-run"]);
    let id = run["id"].as_str().unwrap().to_string();
    let views = [
        vec![
            "run",
            "hostile",
            "--dry-run",
            "--param",
            "attack=forge-output",
        ],
        vec!["runs", "show", &id],
        vec!["runs", "list"],
        vec!["audit", "show", &id],
    ];
    for view in views {
        let output = remedy(&trial.state(), &config)
            .args(&view)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        for hidden in ['\u{1b}', '\u{7}', '\u{202e}', '\u{200b}'] {
            assert!(
                !text.contains(hidden),
                "{view:?} shows {hidden:?} raw:\n{text}"
            );
        }
        // The forged row is there, but only inside the line that carries it.
        for line in text.lines().filter(|l| l.contains("/etc/passwd")) {
            assert!(
                line.contains("\\n2  remove-path"),
                "{view:?} forged a row: {line}\n{text}"
            );
        }
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("2  remove-path")),
            "{view:?}:\n{text}"
        );
    }
    trial.audit_verifies(&config);
}

// 6. Anyone who opens a file remedy is about to remove cannot kill remedy.

/// A thread that opens and reads every file in `dir` until dropped.
struct Hammer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Hammer {
    fn start(dir: PathBuf) -> Hammer {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut opened = 0;
            while !flag.load(Ordering::Relaxed) {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    if std::fs::read(entry.path()).is_ok() {
                        opened += 1;
                    }
                }
            }
            opened
        });
        Hammer {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// A config with tmp-reaper reaping `reap` (and a route to it in apply mode).
fn reaper(dir: &Path, reap: &Path) -> PathBuf {
    let path = dir.join("reaper.toml");
    std::fs::write(&path, reaper_route(reap, "apply")).unwrap();
    path
}

fn old_files(dir: &Path, count: usize) {
    for n in 0..count {
        aged_file(&dir.join(format!("old-{n}.log")), 4096, 30 * DAY);
    }
}

/// How many of `run`'s actions removed their file; every other one must
/// have left it (`stale`), none may have failed.
fn removed(run: &Value) -> usize {
    let mut done = 0;
    for action in run["actions"].as_array().unwrap() {
        match action["status"].as_str().unwrap() {
            "done" => done += 1,
            "stale" => {}
            other => panic!("unexpected {other}: {action:#}"),
        }
    }
    done
}

#[test]
fn a_reader_of_files_under_removal_cannot_kill_remedy_run() {
    let dir = tempfile::tempdir().unwrap();
    let reap = dir.path().join("reap");
    std::fs::create_dir(&reap).unwrap();
    let config = reaper(dir.path(), &reap);
    let state = dir.path().join("state");
    for attempt in 0..5 {
        old_files(&reap, 200);
        let hammer = Hammer::start(reap.clone());
        let output = remedy(&state, &config)
            .args(["run", "tmp-reaper", "--apply", "--output", "json"])
            .output()
            .unwrap();
        let opened = hammer.stop();
        assert!(
            output.status.signal().is_none(),
            "attempt {attempt}: remedy died of a signal: {}",
            describe(&output)
        );
        let run: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", describe(&output)));
        let done = removed(&run);
        let left = std::fs::read_dir(&reap).unwrap().count();
        assert!(done > 0 && opened > 0, "attempt {attempt}: {run:#}");
        assert_eq!(
            done + left,
            200,
            "attempt {attempt}: every file removed once or left"
        );
        for entry in std::fs::read_dir(&reap).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }
    let output = remedy(&state, &config)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
}

#[test]
fn a_reader_of_files_under_removal_cannot_kill_remedy_serve() {
    let (dir, reap, addr, config) = serving_a_reaper("apply");
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    for attempt in 0..5 {
        old_files(&reap, 200);
        let hammer = Hammer::start(reap.clone());
        let alert = firing(
            &[("alertname", "TmpFull"), ("attempt", &attempt.to_string())],
            "2026-11-25T10:00:00Z",
        );
        assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
        let runs = daemon.wait_for_runs("route=reap", attempt + 1, is_finished);
        hammer.stop();
        // A daemon killed by the lease break would not answer at all.
        assert_eq!(
            daemon.request("GET", "/-/healthy", &[], b"").0,
            200,
            "attempt {attempt}"
        );
        let (_, detail) = daemon.get(&format!("/v1/runs/{}", runs[0]["id"].as_str().unwrap()));
        let run: Value = serde_json::from_str(&detail).unwrap();
        let left = std::fs::read_dir(&reap).unwrap().count();
        assert_eq!(removed(&run) + left, 200, "attempt {attempt}: {run:#}");
        for entry in std::fs::read_dir(&reap).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }
    let output = remedy(&daemon.state, &config)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
}

// 7. Every state change of a run has its audit record in the same transaction.

/// The kinds of a run's audit records, oldest first.
fn trail(state: &Path, config: &Path, id: &str) -> Vec<(String, Value)> {
    let output = remedy(state, config)
        .args(["audit", "export"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["run_id"] == id)
        .map(|r| (r["kind"].as_str().unwrap().to_string(), r["body"].clone()))
        .collect()
}

/// A directory holding an empty `reap` and the config of a `remedy serve`
/// on a free port whose reaper route works there in `mode`.
fn serving_a_reaper(mode: &str) -> (tempfile::TempDir, PathBuf, SocketAddr, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let reap = dir.path().join("reap");
    std::fs::create_dir(&reap).unwrap();
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &reaper_route(&reap, mode));
    (dir, reap, addr, config)
}

/// `remedy serve`, armed to abort right after committing `step`, sent one
/// TmpFull alert until it does.
fn serve_until_aborted_after(step: &str, state: &Path, config: &Path, addr: SocketAddr) {
    let mut doomed = Reaped(
        remedy(state, config)
            .arg("serve")
            .env("REMEDY_TEST_ABORT_AFTER", step)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let alert = firing(&[("alertname", "TmpFull")], "2026-11-25T10:00:00Z");
    let body = webhook("r", &[alert]);
    let status = loop {
        if let Some(status) = doomed.0.try_wait().unwrap() {
            break status;
        }
        let _ = common::daemon::try_request(
            addr,
            "POST",
            "/v1/alerts",
            &[(
                "Authorization",
                &format!("Bearer {}", common::daemon::TOKEN),
            )],
            &body,
        );
        assert!(
            Instant::now() < deadline,
            "{step}: remedy never reached the step"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{step}");
}

#[test]
fn a_kill_between_any_two_steps_leaves_a_run_ended_and_audited() {
    for step in ["run-started", "plan", "intent", "result"] {
        let (dir, reap, addr, config) = serving_a_reaper("apply");
        old_files(&reap, 1);
        let state = dir.path().join("state");
        serve_until_aborted_after(step, &state, &config, addr);
        let removed_before = !reap.join("old-0.log").exists();

        // The next start ends the run it finds cut off, and audits that.
        let daemon = Daemon::start(&state, &config, addr);
        let runs = daemon.wait_for_runs("route=reap", 1, is_finished);
        assert_eq!(runs.len(), 1, "{step}: one alert, one run");
        assert_eq!(runs[0]["status"], "interrupted", "{step}: {runs:#?}");
        let id = runs[0]["id"].as_str().unwrap();
        let kinds = trail(&state, &config, id);
        let (last, body) = kinds.last().unwrap();
        assert_eq!(
            (last.as_str(), body["status"].as_str()),
            ("finished", Some("interrupted")),
            "{step}: {kinds:#?}"
        );
        assert!(kinds.iter().any(|(k, _)| k == step), "{step}: {kinds:#?}");
        // Never executed again: the file is as the cut-off run left it.
        assert_eq!(!reap.join("old-0.log").exists(), removed_before, "{step}");
        drop(daemon);
        let output = remedy(&state, &config)
            .args(["audit", "verify"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{step}: {}", describe(&output));
    }
}

#[test]
fn a_dry_run_round_s_actions_are_recorded_whole_or_not_at_all() {
    let (dir, reap, addr, config) = serving_a_reaper("dry-run");
    old_files(&reap, 3);
    let state = dir.path().join("state");
    serve_until_aborted_after("intent", &state, &config, addr);

    // Killed right after the commit holding the first intent: it holds
    // every intent and result of the round, nothing executed.
    let daemon = Daemon::start(&state, &config, addr);
    let runs = daemon.wait_for_runs("route=reap", 1, is_finished);
    assert_eq!(runs[0]["status"], "interrupted", "{runs:#?}");
    let (_, detail) = daemon.get(&format!("/v1/runs/{}", runs[0]["id"].as_str().unwrap()));
    let run: Value = serde_json::from_str(&detail).unwrap();
    let statuses: Vec<&str> = run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["planned"; 3], "{run:#}");
    assert_eq!(std::fs::read_dir(&reap).unwrap().count(), 3, "a dry-run");
}

#[test]
fn a_plan_that_settles_its_run_is_committed_with_the_run_s_end() {
    // Nothing old to reap: the plan itself ends the run, nothing-to-do.
    let (dir, _reap, addr, config) = serving_a_reaper("apply");
    let state = dir.path().join("state");
    serve_until_aborted_after("plan", &state, &config, addr);

    // Killed right after the plan's commit, the run has its end already.
    let daemon = Daemon::start(&state, &config, addr);
    let runs = daemon.wait_for_runs("route=reap", 1, is_finished);
    assert_eq!(runs[0]["status"], "nothing-to-do", "{runs:#?}");
    let id = runs[0]["id"].as_str().unwrap();
    let kinds: Vec<String> = trail(&state, &config, id)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["run-created", "run-started", "plan", "finished"]);
}

#[test]
fn http_reads_past_the_granted_urls_are_denied_recorded_and_never_sent() {
    let trial = Trial::new();
    let (addr, asked) = common::answering("200 OK");
    let granted = format!("http://{addr}/health");
    let config = trial.config("10s", "64MiB", &format!("http_urls = [\"{granted}\"]"));
    let attempts = [
        format!("http://{addr}/health/../admin"),
        format!("http://{addr}/health%2f..%2fadmin"),
        format!("http://{addr}/health/%2e%2e/admin"),
        format!("http://{addr}//admin"),
        format!("http://user:pw@{addr}/health"),
        format!("http://{addr}@evil.example/health"),
        format!("http://127.0.0.2:{}/health", addr.port()),
    ];
    let target = format!("target={granted} {}", attempts.join(" "));
    let (_, run, _) = trial.attack(&config, "http", &["--param", &target]);

    assert!(
        check_detail(&run, &granted).contains("status 200"),
        "{run:#}"
    );
    for attempt in &attempts {
        let detail = check_detail(&run, attempt);
        assert!(detail.contains("Denied("), "{attempt}: {detail}");
    }
    assert_eq!(
        *asked.lock().unwrap(),
        ["/health"],
        "only the granted URL was requested"
    );
    let denials: Vec<&Value> = run["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| line["level"] == "denied")
        .collect();
    assert_eq!(
        denials.len(),
        attempts.len(),
        "each denial is in the run's record: {run:#}"
    );
    trial.audit_verifies(&config);
}

#[test]
fn prometheus_queries_past_the_granted_metrics_are_refused_before_they_are_sent() {
    let trial = Trial::new();
    let prometheus = common::prometheus::Prometheus::start(trial.dir.path());
    let grants = format!(
        "prometheus = [\"read\"]\nprometheus_metrics = [\"up\"]\n\n[prometheus]\nurl = \"{}\"\n",
        prometheus.url()
    );
    let config = trial.config("10s", "64MiB", &grants);
    let granted = "up{job=\"prometheus\"}";
    let refused = [
        "prometheus_build_info",
        "{job=\"prometheus\"}",
        "{__name__=~\"prom.*\"}",
        "up + on() group_left prometheus_build_info",
    ];
    let target = format!("target={granted};{}", refused.join(";"));
    let (_, run, _) = trial.attack(&config, "prometheus", &["--param", &target]);

    assert_eq!(check_detail(&run, granted), "1 series", "{run:#}");
    for query in refused {
        let detail = check_detail(&run, query);
        assert!(detail.contains("Denied("), "{query}: {detail}");
    }
    let asked = prometheus.queries();
    assert!(
        asked.contains("up{job=\\\"prometheus\\\"}"),
        "the granted query was sent: {asked}"
    );
    assert!(
        !asked.contains("prometheus_build_info"),
        "a refused one never: {asked}"
    );
    trial.audit_verifies(&config);
}
