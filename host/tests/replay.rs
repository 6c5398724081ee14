//! Record and replay: a real disk-cleanup dry-run on a real tmpfs is
//! recorded, the tmpfs is taken away, and the recording is replayed through
//! the real engine: the same plan, byte for byte. A changed parameter shows
//! exactly the actions it changes; a recording tampered to widen its grants,
//! or made by another plugin, is refused; a read not in it is named.

mod common;

use common::daemon::{Daemon, firing, is_finished, reaper_route, serve_config, webhook};
use common::ports::free_addr;
use common::{DAY, OFFLINE_SERVICES, Tmpfs, aged_file, describe, reaper_plugin, remedy};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

/// A config granting disk-cleanup exactly `root`, with tmp-reaper beside it.
fn config(dir: &Path, root: &Path) -> PathBuf {
    let r = root.display();
    let config = dir.join("remedy.toml");
    let text = format!(
        r#"
[[plugin]]
name = "disk-cleanup"
source = "builtin:disk-cleanup"
params = {{ mountpoint = "{r}", sandbox_dirs = "{r}/sandbox", cache_dirs = "{r}/cache", log_dirs = "{r}/logs", target_used_percent = "60" }}
[plugin.grants]
fs_read = ["{r}"]
fs_remove = ["{r}/cache", "{r}/logs", "{r}/sandbox"]
proc = ["read"]
nomad = ["read"]
docker = ["read"]
{OFFLINE_SERVICES}
{reaper}"#,
        reaper = reaper_plugin("tmp-reaper", root, "1d")
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn remedy_in(dir: &Path, config: &Path, args: &[&str]) -> Output {
    remedy(&dir.join("state"), config)
        .args(args)
        .output()
        .unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", describe(output)))
}

/// The paths of the actions of a plan.
fn paths(plan: &Value) -> BTreeSet<String> {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_string())
        .collect()
}

/// A 16 MiB tmpfs at about 81 %, recorded by a dry-run, then unmounted.
/// The directory, config, recording, and the run as it printed itself.
fn recorded() -> (tempfile::TempDir, PathBuf, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("incident.json");
    let disk = Tmpfs::mount("16m");
    for n in 0..10u32 {
        aged_file(
            &disk.path.join(format!("cache/c{n:02}")),
            MIB,
            (20 - n) * DAY,
        );
    }
    aged_file(&disk.path.join("logs/app.log.1"), MIB, 30 * DAY);
    std::fs::create_dir(disk.path.join("sandbox")).unwrap();
    let config = config(dir.path(), &disk.path);
    let world_arg = world.display().to_string();
    let run = [
        "run",
        "disk-cleanup",
        "--output",
        "json",
        "--record",
        &world_arg,
        "--label",
        "api_token=hunter2",
    ];
    let output = remedy_in(dir.path(), &config, &run);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let run = json(&output);
    assert!(
        !run["rounds"][0]["plan"]["actions"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{run:#}"
    );
    drop(disk);
    (dir, config, world, run)
}

#[test]
fn a_recorded_dry_run_replays_to_the_same_plan_after_its_disk_is_gone() {
    let (dir, config, world, run) = recorded();
    let world_arg = world.display().to_string();
    let recording: Value = serde_json::from_str(&std::fs::read_to_string(&world).unwrap()).unwrap();
    assert_eq!(
        recording["redacted"],
        serde_json::json!(["label api_token"])
    );
    let text = std::fs::read_to_string(&world).unwrap();
    assert!(!text.contains("hunter2"), "the secret label is redacted");
    assert_eq!(
        std::fs::metadata(&world).unwrap().permissions().mode() & 0o077,
        0,
        "only its owner may read a recording"
    );

    let output = remedy_in(
        dir.path(),
        &config,
        &[
            "plugins",
            "test",
            "disk-cleanup",
            "--world",
            &world_arg,
            "--output",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let replayed = json(&output);
    let plan = |value: &Value| serde_json::to_string(value).unwrap();
    assert_eq!(plan(&replayed[0]["plan"]), plan(&run["rounds"][0]["plan"]));
    assert_eq!(
        plan(&replayed[0]["plan"]),
        plan(&recording["rounds"][0]["plan"])
    );

    // The plugin as a .wasm file, under the same configured grants: the same.
    let wasm = Path::new(env!("REMEDY_PLUGIN_WASM_DIR")).join("disk_cleanup.wasm");
    let wasm = wasm.display().to_string();
    let output = remedy_in(
        dir.path(),
        &config,
        &["plugin", "test", &wasm, "--world", &world_arg],
    );
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let diffed = remedy_in(
        dir.path(),
        &config,
        &[
            "plugins",
            "diff",
            "disk-cleanup",
            &wasm,
            "--world",
            &world_arg,
        ],
    );
    assert_eq!(diffed.status.code(), Some(0), "{}", describe(&diffed));
    assert!(String::from_utf8_lossy(&diffed.stdout).contains("plan alike"));
}

#[test]
fn a_changed_parameter_shows_exactly_the_actions_it_changes() {
    let (dir, config, world, run) = recorded();
    let world_arg = world.display().to_string();
    let args = [
        "plugins",
        "test",
        "disk-cleanup",
        "--world",
        &world_arg,
        "--output",
        "json",
        "--param",
        "target_used_percent=40",
    ];
    let output = remedy_in(dir.path(), &config, &args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the plans differ: {}",
        describe(&output)
    );
    let before = paths(&run["rounds"][0]["plan"]);
    let after = paths(&json(&output)[0]["plan"]);
    assert!(
        before.is_subset(&after) && after.len() > before.len(),
        "{before:?} {after:?}"
    );

    let diff = String::from_utf8_lossy(&output.stderr);
    let changed = |sign: char| -> BTreeSet<String> {
        diff.lines()
            .filter(|line| line.starts_with(sign) && line.contains("\"path\""))
            .map(|line| line.split('"').nth(3).unwrap().to_string())
            .collect()
    };
    let added: BTreeSet<String> = after.difference(&before).cloned().collect();
    assert_eq!(changed('+'), added, "{diff}");
    assert!(
        changed('-').is_empty(),
        "no planned removal changed: {diff}"
    );
}

#[test]
fn a_tampered_recording_or_another_plugins_is_refused() {
    let (dir, config, world, _) = recorded();
    let original = std::fs::read_to_string(&world).unwrap();
    let world_arg = world.display().to_string();
    let test = |plugin: &str| {
        remedy_in(
            dir.path(),
            &config,
            &["plugins", "test", plugin, "--world", &world_arg],
        )
    };

    // Grants widened in the file: the config's grants decide, and differ.
    let mut widened: Value = serde_json::from_str(&original).unwrap();
    widened["grants"]["fs_remove"] = serde_json::json!(["/"]);
    std::fs::write(&world, widened.to_string()).unwrap();
    let output = test("disk-cleanup");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("other grants") && error.contains("fs_remove"),
        "{error}"
    );

    // Another plugin's recording.
    std::fs::write(&world, &original).unwrap();
    let output = test("tmp-reaper");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("recorded by plugin `disk-cleanup`, not by `tmp-reaper`"),
        "{error}"
    );

    // A read taken out of the recording is named when the plugin asks for it.
    let mut trimmed: Value = serde_json::from_str(&original).unwrap();
    let reads = trimmed["rounds"][0]["reads"].as_array_mut().unwrap();
    reads.retain(|read| read["call"] != "proc.files-in-use");
    std::fs::write(&world, trimmed.to_string()).unwrap();
    let output = test("disk-cleanup");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("unavailable: proc.files-in-use(")
            && shown.contains("is not in the recording"),
        "{shown}"
    );
}

#[test]
fn a_route_records_each_runs_world_for_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let reap = tempfile::tempdir().unwrap();
    aged_file(&reap.path().join("old.tmp"), 4096, 3 * DAY);
    let worlds = dir.path().join("worlds");
    let routes =
        reaper_route(reap.path(), "dry-run") + &format!("record = \"{}\"\n", worlds.display());
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &routes);
    let daemon = Daemon::start(&dir.path().join("state"), &config, addr);
    let alert = firing(&[("alertname", "TmpFull")], "2026-11-26T10:00:00Z");
    assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
    let runs = daemon.wait_for_runs("route=reap", 1, is_finished);
    let id = runs[0]["id"].as_str().unwrap();
    // Written right after the run's end is recorded (which is what the API
    // shows), and before its notifications.
    let world = worlds.join(format!("{id}.json"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !world.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(world.exists(), "no recording at {}", world.display());
    drop(daemon);

    std::fs::remove_file(reap.path().join("old.tmp")).unwrap();
    let world_arg = world.display().to_string();
    let output = remedy_in(
        dir.path(),
        &config,
        &[
            "plugins",
            "test",
            "tmp-reaper",
            "--world",
            &world_arg,
            "--output",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let planned = paths(&json(&output)[0]["plan"]);
    let old = reap.path().join("old.tmp").display().to_string();
    assert_eq!(
        planned,
        BTreeSet::from([old]),
        "the file as recorded, though gone now"
    );
}
