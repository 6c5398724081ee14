//! Plugins written in Python (componentize-py and remedy's Python SDK),
//! built by this test from their source, loaded from their .wasm with
//! grants, and run by the real `remedy` on a real tmpfs: the example
//! old-logs plugin plans, then removes, exactly the old rotated logs no
//! process holds; and a Python plugin is held to the same grants, identity
//! checks, deadline and memory cap as a Rust one.

mod common;

use common::{DAY, Tmpfs, aged_file, hold_open};
use remedy::contract::{Action, ActionStatus};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const OLD_LOGS: &str = "examples/plugins/old-logs-py";
const HOSTILE: &str = "tests/plugins/hostile-py";
const KIB: usize = 1024;

fn write_config(dir: &Path, plugins: &str) -> PathBuf {
    let config = dir.join("remedy.toml");
    std::fs::write(&config, format!("{plugins}{}", common::OFFLINE_SERVICES)).unwrap();
    config
}

/// old-logs over `root/logs`, granted to read `root` and remove in `root/logs`.
fn old_logs(root: &Path) -> String {
    let r = root.display();
    format!(
        r#"
[[plugin]]
name = "old-logs"
source = "{wasm}"
params = {{ dirs = "{r}/logs", max_age = "7d" }}
[plugin.grants]
fs_read = ["{r}"]
fs_remove = ["{r}/logs"]
proc = ["read"]
"#,
        wasm = common::python::plugin(OLD_LOGS).display()
    )
}

fn run(dir: &Path, config: &Path, args: &[&str]) -> (i32, Value) {
    common::run_json(&dir.join("state"), config, args[0], &args[1..])
}

fn planned_paths(run: &Value) -> Vec<String> {
    run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"]["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn old_logs_in_python_plans_then_removes_exactly_the_old_rotated_logs_no_one_holds() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount("8m");
    let logs = disk.path.join("logs");
    let at = |name: &str| logs.join(name).display().to_string();
    aged_file(&logs.join("app.log"), 64 * KIB, Duration::from_secs(60));
    aged_file(&logs.join("app.log.1"), 64 * KIB, 30 * DAY);
    aged_file(&logs.join("app.log.2.gz"), 64 * KIB, 40 * DAY);
    aged_file(&logs.join("app.log.3"), 64 * KIB, 2 * DAY);
    aged_file(&logs.join("held.log.1"), 64 * KIB, 50 * DAY);
    let _holder = hold_open(&logs.join("held.log.1"));
    let config = write_config(dir.path(), &old_logs(&disk.path));

    let (code, planned) = run(dir.path(), &config, &["old-logs"]);
    assert_eq!(code, 0, "{planned:#}");
    assert_eq!(planned["dry_run"], true);
    // Oldest first; the held one is warned about, the young and current kept.
    assert_eq!(
        planned_paths(&planned),
        [at("app.log.2.gz"), at("app.log.1")]
    );
    let checks = planned["rounds"][0]["plan"]["checks"].to_string();
    assert!(checks.contains("held open by pid"), "{checks}");
    assert!(logs.join("app.log.1").exists() && logs.join("app.log.2.gz").exists());

    let (code, applied) = run(dir.path(), &config, &["old-logs", "--apply"]);
    assert_eq!(code, 0, "{applied:#}");
    assert_eq!(applied["status"], "succeeded", "{applied:#}");
    assert_eq!(
        planned_paths(&applied),
        [at("app.log.2.gz"), at("app.log.1")]
    );
    assert!(!logs.join("app.log.1").exists() && !logs.join("app.log.2.gz").exists());
    for kept in ["app.log", "app.log.3", "held.log.1"] {
        assert!(logs.join(kept).exists(), "{kept} must stay");
    }
    let last = applied["rounds"].as_array().unwrap().last().unwrap();
    assert_eq!(
        last["plan"]["summary"], "removed 2 of 2 rotated logs",
        "{applied:#}"
    );
}

/// hostile-py doing `what`, granted to read `root` and remove in `root/ok`.
fn hostile(root: &Path, what: &str, path: &Path, limits: &str) -> String {
    let r = root.display();
    format!(
        r#"
[[plugin]]
name = "hostile-py"
source = "{wasm}"
params = {{ do = "{what}", path = "{path}" }}
{limits}
[plugin.grants]
fs_read = ["{r}"]
fs_remove = ["{r}/ok"]
"#,
        wasm = common::python::plugin(HOSTILE).display(),
        path = path.display()
    )
}

#[test]
fn a_python_plugin_is_denied_outside_its_grants_and_stopped_at_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let outside = root.join("keep/precious");
    aged_file(&outside, KIB, DAY);

    let config = write_config(dir.path(), &hostile(&root, "remove", &outside, ""));
    let (code, denied) = run(dir.path(), &config, &["hostile-py", "--apply"]);
    assert_eq!(code, 5, "denied: {denied:#}");
    assert_eq!(denied["status"], "denied");
    assert!(outside.exists(), "nothing outside fs_remove is removed");

    let config = write_config(
        dir.path(),
        &hostile(&root, "loop", &outside, "timeout = \"2s\""),
    );
    let (_, looped) = run(dir.path(), &config, &["hostile-py"]);
    assert_eq!(looped["status"], "timed-out", "{looped:#}");

    let config = write_config(
        dir.path(),
        &hostile(&root, "bomb", &outside, "memory = \"96MiB\""),
    );
    let (_, bombed) = run(dir.path(), &config, &["hostile-py"]);
    assert_eq!(bombed["status"], "trapped", "{bombed:#}");
    let why = bombed["reason"].as_str().unwrap();
    assert!(why.contains("memory cap of 100663296 bytes"), "{why}");
}

#[test]
fn a_file_replaced_after_a_python_plugin_planned_is_stale() {
    use remedy::engine::PluginSpec;
    use remedy::run::{resolve_params, run_by_hand};
    use std::collections::BTreeMap;

    let disk = Tmpfs::mount("4m");
    let rotated = disk.path.join("logs/app.log.1");
    aged_file(&rotated, 64 * KIB, 30 * DAY);
    let host = common::Host::new();
    let grants = common::grants_under(&disk.path);
    let wasm = std::fs::read(common::python::plugin(OLD_LOGS)).unwrap();
    let plugin = host
        .engine
        .load(PluginSpec {
            name: "old-logs".into(),
            wasm: wasm.into(),
            sha256_pin: None,
            grants: grants.clone(),
            limits: Default::default(),
        })
        .unwrap();
    let given = BTreeMap::from([(
        "dirs".to_string(),
        disk.path.join("logs").display().to_string(),
    )]);
    let params = resolve_params(&plugin, &BTreeMap::new(), &given).unwrap();
    let planned = run_by_hand(&host.engine, &host.store, common::by_hand(&plugin, params)).unwrap();
    let actions = planned.rounds[0].plan.clone().unwrap().actions;
    assert!(
        matches!(&actions[..], [Action::RemovePath(r)] if Path::new(&r.path) == rotated),
        "{actions:?}"
    );

    // Replaced by a new file under the same name, same size and age.
    std::fs::remove_file(&rotated).unwrap();
    aged_file(&rotated, 64 * KIB, 30 * DAY);
    common::running_run(&host.store, "apply-later");
    let kinds = ["remove-path".to_string()];
    let executor = host.executor(&grants, &kinds);
    let results = executor.execute("apply-later", 0, &actions, false).unwrap();
    assert_eq!(
        results[0].status,
        ActionStatus::Stale,
        "{}",
        results[0].detail
    );
    assert!(rotated.exists(), "the new file stays");
}

#[test]
fn a_plugin_built_against_a_contract_version_this_host_does_not_speak_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wit = common::python::contract(dir.path());
    for file in std::fs::read_dir(&wit).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace(remedy::contract::PACKAGE, "remedy:plugin@9.0.0"),
        )
        .unwrap();
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(HOSTILE);
    let wasm = common::python::build(&source, &wit, dir.path());
    let config = write_config(
        dir.path(),
        &format!(
            "[[plugin]]\nname = \"future\"\nsource = \"{}\"\n",
            wasm.display()
        ),
    );
    let output = common::remedy(&dir.path().join("state"), &config)
        .args(["run", "future"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        common::describe(&output)
    );
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("it imports remedy:plugin/"), "{error}");
    let speaks = format!(
        "@9.0.0, and this remedy speaks {}",
        remedy::contract::PACKAGE
    );
    assert!(error.contains(&speaks), "{error}");
}

#[test]
fn a_new_version_is_compared_with_the_old_on_the_same_recorded_incident() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount("4m");
    let logs = disk.path.join("logs");
    aged_file(&logs.join("a.log.1"), 64 * KIB, 30 * DAY);
    aged_file(&logs.join("b.log.1"), 64 * KIB, 20 * DAY);
    let config = write_config(dir.path(), &old_logs(&disk.path));
    let world = dir.path().join("incident.json").display().to_string();
    let remedy = |args: &[&str]| {
        common::remedy(&dir.path().join("state"), &config)
            .args(args)
            .output()
            .unwrap()
    };
    let recorded = remedy(&["run", "old-logs", "--record", &world]);
    assert_eq!(
        recorded.status.code(),
        Some(0),
        "{}",
        common::describe(&recorded)
    );
    drop(disk);

    // The plan as a file to hold it to: --expect passes, then catches a change.
    let planned = remedy(&[
        "plugins", "test", "old-logs", "--world", &world, "--output", "json",
    ]);
    assert_eq!(
        planned.status.code(),
        Some(0),
        "{}",
        common::describe(&planned)
    );
    let expected = dir.path().join("plan.json");
    std::fs::write(&expected, &planned.stdout).unwrap();
    let expect = expected.display().to_string();
    let held = remedy(&[
        "plugins", "test", "old-logs", "--world", &world, "--expect", &expect,
    ]);
    assert_eq!(held.status.code(), Some(0), "{}", common::describe(&held));
    let text = String::from_utf8_lossy(&planned.stdout).replace("a.log.1", "c.log.1");
    std::fs::write(&expected, text).unwrap();
    let caught = remedy(&[
        "plugins", "test", "old-logs", "--world", &world, "--expect", &expect,
    ]);
    assert_eq!(
        caught.status.code(),
        Some(1),
        "{}",
        common::describe(&caught)
    );
    let diff = String::from_utf8_lossy(&caught.stderr);
    assert!(
        diff.contains("the plans differ from") && diff.contains("-") && diff.contains("c.log.1"),
        "{diff}"
    );

    // A new version that removes the newest first, on the same incident.
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(OLD_LOGS);
    let newer = dir.path().join("old-logs-newest-first");
    std::fs::create_dir(&newer).unwrap();
    let app = std::fs::read_to_string(source.join("app.py")).unwrap();
    let changed = app.replace(
        "key=lambda e: e.identity.mtime_ns)",
        "key=lambda e: -e.identity.mtime_ns)",
    );
    assert_ne!(app, changed, "the example sorts oldest first");
    std::fs::write(newer.join("app.py"), changed).unwrap();
    let new_wasm = common::python::build(&newer, &common::python::contract(dir.path()), dir.path());
    let old_wasm = common::python::plugin(OLD_LOGS).display().to_string();
    let new_wasm = new_wasm.display().to_string();
    let same = remedy(&["plugins", "diff", &old_wasm, &old_wasm, "--world", &world]);
    assert_eq!(same.status.code(), Some(0), "{}", common::describe(&same));
    let differ = remedy(&["plugins", "diff", &old_wasm, &new_wasm, "--world", &world]);
    assert_eq!(
        differ.status.code(),
        Some(1),
        "{}",
        common::describe(&differ)
    );
    let diff = String::from_utf8_lossy(&differ.stdout);
    let moved = |sign: char, name: &str| {
        diff.lines()
            .any(|l| l.starts_with(sign) && l.contains(name))
    };
    assert!(
        moved('-', "a.log.1") && moved('+', "a.log.1"),
        "the order changed: {diff}"
    );
}
