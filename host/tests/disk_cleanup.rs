//! disk-cleanup end to end: the real `remedy` binary, the bundled plugin, a
//! real 16 MiB tmpfs filled past its target, and real processes holding files.

mod common;

use common::{DAY, OFFLINE_SERVICES, Tmpfs, aged_file, describe, hold_open, remedy};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TARGET_PERCENT: f64 = 50.0;
const MIB: usize = 1 << 20;

/// A tmpfs at ~81%: eleven cache files of 1 MiB aged 25 to 11 days, one
/// fresh cache file, one very old rotated log, a symlink out of the root, and
/// a config granting disk-cleanup exactly this filesystem.
struct Scene {
    fs: Tmpfs,
    state: tempfile::TempDir,
    config: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let fs = Tmpfs::mount("16m");
        let root = &fs.path;
        aged_file(&root.join("cache/sub/deep"), MIB, 25 * DAY);
        for n in 0..10u32 {
            aged_file(&root.join(format!("cache/c{n:02}")), MIB, (20 - n) * DAY);
        }
        aged_file(&root.join("cache/fresh"), MIB, Duration::from_secs(60));
        aged_file(&root.join("logs/app.log.1"), MIB, 30 * DAY);
        std::os::unix::fs::symlink("/etc/hostname", root.join("cache/link")).unwrap();
        std::fs::create_dir(root.join("sandbox")).unwrap();

        let state = tempfile::tempdir().unwrap();
        let config = state.path().join("remedy.toml");
        let r = root.display();
        std::fs::write(
            &config,
            format!(
                r#"
[[plugin]]
name = "disk-cleanup"
source = "builtin:disk-cleanup"
params = {{ mountpoint = "{r}", sandbox_dirs = "{r}/sandbox", cache_dirs = "{r}/cache", log_dirs = "{r}/logs", target_used_percent = "{TARGET_PERCENT}" }}
[plugin.grants]
fs_read = ["{r}"]
fs_remove = ["{r}/cache", "{r}/logs", "{r}/sandbox"]
proc = ["read"]
nomad = ["read"]
docker = ["read"]
{OFFLINE_SERVICES}"#
            ),
        )
        .unwrap();
        Scene { fs, state, config }
    }

    fn run(&self, extra: &[&str]) -> (i32, Value) {
        common::run_json(
            &self.state.path().join("state"),
            &self.config,
            "disk-cleanup",
            extra,
        )
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.fs.path.join(relative)
    }

    /// What an independent reading of the rules selects: files by tier
    /// (cache before logs) and age, minus `excluded`, until the target is met.
    fn expected_selection(&self, excluded: &[&str]) -> Vec<PathBuf> {
        let mut order = vec!["cache/sub/deep".to_string()];
        order.extend((0..10).map(|n| format!("cache/c{n:02}")));
        order.push("logs/app.log.1".into());
        let (used, available) = self.fs.usage();
        let allowed = ((used + available) as f64 * TARGET_PERCENT / 100.0).floor() as u64;
        let mut to_free = used.saturating_sub(allowed) as i64;
        let mut selected = Vec::new();
        for name in order.iter().filter(|n| !excluded.contains(&n.as_str())) {
            if to_free <= 0 {
                break;
            }
            let path = self.path(name);
            to_free -= (std::fs::metadata(&path).unwrap().blocks() * 512) as i64;
            selected.push(path);
        }
        selected
    }
}

fn action_paths(run: &Value, round: usize) -> Vec<PathBuf> {
    run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["round"] == round)
        .map(|a| PathBuf::from(a["action"]["path"].as_str().unwrap()))
        .collect()
}

fn statuses(run: &Value) -> Vec<String> {
    run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap().to_string())
        .collect()
}

fn all_exist(paths: &[PathBuf]) -> bool {
    paths.iter().all(|p| p.exists())
}

#[test]
fn dry_run_plans_oldest_first_exactly_to_the_target_and_changes_nothing() {
    let scene = Scene::new();
    let before = scene.fs.usage();
    assert!(
        scene.fs.used_percent() > 75.0,
        "scene must start above target"
    );
    let expected = scene.expected_selection(&[]);

    let (code, run) = scene.run(&[]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["dry_run"], true);
    assert_eq!(action_paths(&run, 0), expected);
    assert!(statuses(&run).iter().all(|s| s == "planned"), "{run:#}");
    assert_eq!(
        scene.fs.usage(),
        before,
        "a dry-run must not change the filesystem"
    );
    assert!(all_exist(&expected));

    // The explicit flag means the same.
    let (code, again) = scene.run(&["--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(action_paths(&again, 0), expected);
}

#[test]
fn a_file_under_two_configured_directories_is_planned_once() {
    let scene = Scene::new();
    let root = scene.fs.path.display().to_string();
    let cache = format!("{root}/cache");
    // The cache also as the sandbox tier, the whole root as the log tier,
    // and a target no cleanup reaches, so every eligible file is planned.
    let (code, run) = scene.run(&[
        "--param",
        &format!("sandbox_dirs={cache}"),
        "--param",
        &format!("log_dirs={root}"),
        "--param",
        "target_used_percent=0",
    ]);
    assert_eq!(code, 0, "{run:#}");
    let planned = action_paths(&run, 0);
    let unique: std::collections::BTreeSet<&PathBuf> = planned.iter().collect();
    assert_eq!(
        unique.len(),
        planned.len(),
        "a file planned twice: {planned:?}"
    );
    let mut eligible = vec![scene.path("cache/sub/deep"), scene.path("logs/app.log.1")];
    eligible.extend((0..10).map(|n| scene.path(&format!("cache/c{n:02}"))));
    assert_eq!(unique, eligible.iter().collect(), "{run:#}");
}

#[test]
fn apply_deletes_exactly_the_planned_files_and_reaches_the_target() {
    let scene = Scene::new();
    let (_, plan) = scene.run(&[]);
    let planned = action_paths(&plan, 0);
    assert!(!planned.is_empty());

    let (code, run) = scene.run(&["--apply"]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(
        action_paths(&run, 0),
        planned,
        "apply executes the plan dry-run showed"
    );
    assert!(statuses(&run).iter().all(|s| s == "done"), "{run:#}");
    assert_eq!(
        run["rounds"].as_array().unwrap().len(),
        2,
        "second round confirms the target"
    );
    assert!(action_paths(&run, 1).is_empty());

    for path in &planned {
        assert!(!path.exists(), "{} should be gone", path.display());
    }
    for kept in ["cache/fresh", "logs/app.log.1", "cache/c09"] {
        assert!(scene.path(kept).exists(), "{kept} must survive");
    }
    assert!(std::fs::symlink_metadata(scene.path("cache/link")).is_ok());
    assert!(Path::new("/etc/hostname").exists());
    assert!(
        scene.fs.used_percent() <= TARGET_PERCENT,
        "usage {:.1}% after apply",
        scene.fs.used_percent()
    );
}

#[test]
fn files_open_or_mapped_by_live_processes_are_never_proposed() {
    let scene = Scene::new();
    let _held = hold_open(&scene.path("cache/sub/deep"));
    let _mapping = common::Mapping::of(&scene.path("cache/c00"), MIB);

    let expected = scene.expected_selection(&["cache/sub/deep", "cache/c00"]);
    let (code, run) = scene.run(&[]);
    assert_eq!(code, 0, "{run:#}");
    let planned = action_paths(&run, 0);
    assert_eq!(planned, expected);
    assert!(!planned.contains(&scene.path("cache/sub/deep")));
    assert!(!planned.contains(&scene.path("cache/c00")));
    let checks = run["rounds"][0]["plan"]["checks"].to_string();
    assert!(
        checks.contains("2 skipped (open or mapped by a process)"),
        "{checks}"
    );

    // Applying keeps its hands off them too.
    let (code, applied) = scene.run(&["--apply"]);
    assert_eq!(code, 0, "{applied:#}");
    assert!(scene.path("cache/sub/deep").exists());
    assert!(scene.path("cache/c00").exists());
}

#[test]
fn nothing_runs_when_the_state_store_cannot_be_written() {
    let scene = Scene::new();
    let state = Tmpfs::mount("1m");
    std::fs::create_dir(state.path.join("state")).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&state.path)
        .status()
        .unwrap();
    assert!(status.success());
    let before = scene.fs.usage();

    let output = remedy(&state.path.join("state"), &scene.config)
        .args(["run", "disk-cleanup", "--apply"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open the state store"), "{stderr}");
    assert!(stderr.contains("nothing is run"), "{stderr}");
    assert_eq!(scene.fs.usage(), before);
}

#[test]
fn text_output_shows_checks_and_plan_and_says_nothing_changed() {
    let scene = Scene::new();
    let output = remedy(&scene.state.path().join("state"), &scene.config)
        .args(["run", "disk-cleanup"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    // The plugin sees the node it runs on; without [node] name, the host's name.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let on_this_node = format!(" on {} is ", host.trim());
    for needle in [
        "disk-cleanup 0.1.0 · dry-run",
        "CHECK",
        "usage",
        &on_this_node,
        "remove-path",
        "planned",
        "cache, unmodified for 25d",
        "nothing was changed; run again with --apply",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }

    // ... and the run is in the history.
    let list = remedy(&scene.state.path().join("state"), &scene.config)
        .args(["runs", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("disk-cleanup") && list.contains("dry-run"),
        "{list}"
    );
}

/// Plan first, then change the world, then execute that plan: a replaced file
/// fails the identity check; files opened or mapped since fail the lease.
#[test]
fn apply_refuses_files_replaced_opened_or_mapped_after_planning() {
    use remedy::contract::{Action, ActionStatus};
    use remedy::run::{resolve_params, run_by_hand};
    use std::collections::BTreeMap;

    let scene = Scene::new();
    let host = common::Host::new();
    let root = scene.fs.path.clone();
    let mut grants = common::grants_under(&root);
    grants.fs.remove = vec![root.join("cache"), root.join("logs")];
    let plugin = host.load("disk_cleanup", grants.clone(), Default::default());
    let r = root.display();
    let given: BTreeMap<String, String> = [
        ("mountpoint", r.to_string()),
        ("sandbox_dirs", format!("{r}/sandbox")),
        ("cache_dirs", format!("{r}/cache")),
        ("log_dirs", format!("{r}/logs")),
        ("target_used_percent", TARGET_PERCENT.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let params = resolve_params(&plugin, &BTreeMap::new(), &given).unwrap();
    let planned = run_by_hand(&host.engine, &host.store, common::by_hand(&plugin, params)).unwrap();
    let actions = planned.rounds[0].plan.clone().unwrap().actions;
    assert!(actions.len() >= 4, "{actions:?}");
    let path_of = |action: &Action| match action {
        Action::RemovePath(remove) => PathBuf::from(&remove.path),
        other => panic!("offline, disk-cleanup proposes only files, not {other:?}"),
    };

    // 0: replaced by a new file under the same name, same size and age.
    let replaced = path_of(&actions[0]);
    std::fs::remove_file(&replaced).unwrap();
    aged_file(&replaced, MIB, 25 * DAY);
    // 1: opened by a process that started after planning.
    let _holder = hold_open(&path_of(&actions[1]));
    // 2: mapped by this process, its descriptor already closed.
    let _mapping = common::Mapping::of(&path_of(&actions[2]), MIB);

    common::running_run(&host.store, "apply-later");
    let kinds = ["remove-path".to_string()];
    let executor = host.executor(&grants, &kinds);
    let results = executor.execute("apply-later", 0, &actions, false).unwrap();

    let refused = |n: usize, needle: &str| {
        assert_eq!(
            results[n].status,
            ActionStatus::Stale,
            "{}",
            results[n].detail
        );
        assert!(results[n].detail.contains(needle), "{}", results[n].detail);
    };
    refused(0, "changed since it was planned");
    refused(1, "in use");
    refused(2, "in use");
    for result in &results[3..] {
        assert_eq!(result.status, ActionStatus::Done, "{}", result.detail);
    }
    for action in &actions[..3] {
        assert!(
            path_of(action).exists(),
            "{} must survive",
            path_of(action).display()
        );
    }
    for action in &actions[3..] {
        assert!(!path_of(action).exists());
    }
}

#[test]
fn a_full_filesystem_with_nothing_configured_on_it_escalates_with_its_usage() {
    // A filesystem no configured directory is on, outside every fs_read root,
    // above the target: measured (a mount point's sizes need no grant) and
    // escalated, never "nothing to do".
    let full = Tmpfs::mount("4m");
    aged_file(&full.path.join("ballast"), 3 << 20, 2 * DAY);
    let scene = Scene::new();
    let output = remedy(&scene.state.path().join("state"), &scene.config)
        .args(["run", "disk-cleanup", "--output", "json"])
        .args(["--label", &format!("mountpoint={}", full.path.display())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    let run: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("% used, above the 50% target") && reason.contains("no directory"),
        "{reason}"
    );
    let checks = run["rounds"][0]["plan"]["checks"].to_string();
    assert!(
        checks.contains("usage") && checks.contains("MiB"),
        "{checks}"
    );
}
