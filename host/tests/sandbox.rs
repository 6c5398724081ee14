//! A hostile plugin against the host: every escape is denied and recorded,
//! every limit holds, and the host keeps serving other runs meanwhile.

mod common;

use common::{Host, grants_under};
use remedy::caps::Grants;
use remedy::caps::log::LogLimits;
use remedy::contract::{Action, ActionStatus, Check, CheckStatus, FileIdentity, RemovePath};
use remedy::engine::limits::PluginLimits;
use remedy::engine::{LoadError, LoadedPlugin, PluginSpec};
use remedy::run::{RunAborted, RunReport, RunRequest, run_by_hand};
use remedy::store::RunStatus;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SECRET: &str = "TOP-SECRET-remedy-test";

/// `granted/` (the plugin's root) with a file and symlinks pointing into
/// `outside/`, which holds a secret.
struct Playground {
    dir: tempfile::TempDir,
}

impl Playground {
    fn new() -> Playground {
        let dir = tempfile::tempdir().unwrap();
        let granted = dir.path().join("granted");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(granted.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), SECRET).unwrap();
        std::fs::write(granted.join("file"), "mine").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), granted.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, granted.join("dirlink")).unwrap();
        std::os::unix::fs::symlink("../../outside/secret", granted.join("sub/rel")).unwrap();
        Playground { dir }
    }
    fn granted(&self) -> PathBuf {
        self.dir.path().join("granted")
    }
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }
}

fn attack(
    host: &Host,
    plugin: &LoadedPlugin,
    attack: &str,
    target: &Path,
    dry_run: bool,
) -> RunReport {
    let params = vec![
        ("attack".to_string(), attack.to_string()),
        ("root".to_string(), "/".to_string()),
        ("target".to_string(), target.display().to_string()),
    ];
    run_by_hand(
        &host.engine,
        &host.store,
        RunRequest {
            dry_run,
            max_rounds: 3,
            ..common::by_hand(plugin, params)
        },
    )
    .unwrap_or_else(|aborted| panic!("{aborted}"))
}

/// The check named `name` in the plan of the run's first round.
fn first_round_check<'r>(report: &'r RunReport, name: &str) -> &'r Check {
    let plan = report.rounds[0]
        .plan
        .as_ref()
        .expect("a first round with a plan");
    let found = plan.checks.iter().find(|c| c.name == name);
    found.unwrap_or_else(|| panic!("no check named {name} in the first round's plan"))
}

/// The default limits but for the timeout: only a backstop here (the test
/// of timeouts sets its own), so it is long enough that a machine busy with
/// other tests never cuts a run short.
fn backstop_limits() -> PluginLimits {
    PluginLimits {
        timeout: Duration::from_secs(10),
        memory: 32 << 20,
        log: LogLimits::default(),
    }
}

fn assert_ended(report: &RunReport, status: RunStatus, reason: &str) {
    assert_eq!(report.status, status, "{}", report.reason);
    assert!(report.reason.contains(reason), "{}", report.reason);
}

fn denied_lines(report: &RunReport) -> Vec<String> {
    report.rounds[0]
        .logs
        .iter()
        .filter(|l| l.level == "denied")
        .map(|l| l.message.clone())
        .collect()
}

#[test]
fn reads_cannot_escape_the_granted_root() {
    let place = Playground::new();
    let host = Host::new();
    let plugin = host.load("hostile", grants_under(&place.granted()), backstop_limits());
    let g = place.granted().display().to_string();
    let escapes = [
        format!("{g}/../outside/secret"),
        format!("{g}/sub/../../outside/secret"),
        place.outside().join("secret").display().to_string(),
        "outside/secret".to_string(),
        format!("{g}/link"),
        format!("{g}/dirlink/secret"),
        format!("{g}/sub/rel"),
        "/etc/hostname".to_string(),
        "/proc/self/environ".to_string(),
    ];
    for target in &escapes {
        let report = attack(&host, &plugin, "read", Path::new(target), true);
        let plan = report.rounds[0].plan.as_ref().unwrap();
        let read = plan.checks.iter().find(|c| c.name == "read-file").unwrap();
        assert_eq!(
            read.status,
            CheckStatus::Pass,
            "{target}: read-file got {}",
            read.detail
        );
        assert!(read.detail.contains("Denied"), "{target}: {}", read.detail);
        for check in &plan.checks {
            assert!(
                !check.detail.contains(SECRET),
                "{target}: secret leaked via {}",
                check.name
            );
            if check.name != "stat" {
                assert_eq!(
                    check.status,
                    CheckStatus::Pass,
                    "{target}: {} got {}",
                    check.name,
                    check.detail
                );
            }
        }
        assert!(
            !denied_lines(&report).is_empty(),
            "{target}: the host must record its denials"
        );
    }
    // A symlink may be looked at as a symlink, which shows nothing of its target.
    let report = attack(&host, &plugin, "read", &place.granted().join("link"), true);
    let stat = report.rounds[0]
        .plan
        .as_ref()
        .unwrap()
        .checks
        .iter()
        .find(|c| c.name == "stat")
        .cloned()
        .unwrap();
    assert!(stat.detail.contains("FileKind::Symlink"), "{}", stat.detail);
    assert!(
        stat.detail.contains(&format!(
            "size: {}",
            place.outside().join("secret").as_os_str().len()
        )),
        "{}",
        stat.detail
    );
}

#[test]
fn removal_outside_fs_remove_is_denied_and_recorded() {
    let place = Playground::new();
    let host = Host::new();
    // It may read everywhere in the playground, but remove only below granted/.
    let mut grants = Grants::default();
    grants.fs.read = vec![place.dir.path().to_path_buf()];
    grants.fs.remove = vec![place.granted()];
    grants.proc.rights = vec![remedy::caps::proc::ProcRight::Read];
    let plugin = host.load("hostile", grants, backstop_limits());
    let g = place.granted().display().to_string();
    for target in [
        place.outside().join("secret").display().to_string(),
        format!("{g}/../outside/secret"),
        g.clone(), // the root itself
    ] {
        let report = attack(&host, &plugin, "remove", Path::new(&target), false);
        assert_eq!(
            report.status,
            RunStatus::Denied,
            "{target}: {}",
            report.reason
        );
        let result = &report.rounds[0].results[0];
        assert_eq!(result.status, ActionStatus::Denied);
        let stored = host.store.get_run(&report.id).unwrap();
        assert_eq!(stored.actions[0].status, "denied", "the denial is recorded");
        assert_eq!(stored.summary.status, RunStatus::Denied);
    }
    assert_eq!(
        std::fs::read_to_string(place.outside().join("secret")).unwrap(),
        SECRET
    );
    assert!(place.granted().exists());
}

#[test]
fn forged_identities_and_symlinks_are_refused_at_execution() {
    let place = Playground::new();
    let host = Host::new();
    let plugin = host.load("hostile", grants_under(&place.granted()), backstop_limits());

    // The right path with a made-up inode.
    let report = attack(
        &host,
        &plugin,
        "forge",
        &place.granted().join("file"),
        false,
    );
    let result = &report.rounds[0].results[0];
    assert_eq!(result.status, ActionStatus::Stale, "{}", result.detail);
    assert!(
        result.detail.contains("changed since it was planned"),
        "{}",
        result.detail
    );
    assert!(place.granted().join("file").exists());

    // A symlink inside the root, with the link's own (real) identity.
    for link in ["link", "dirlink/secret", "sub/rel"] {
        let report = attack(&host, &plugin, "remove", &place.granted().join(link), false);
        for result in report.rounds.iter().flat_map(|r| &r.results) {
            assert_ne!(
                result.status,
                ActionStatus::Done,
                "{link}: {}",
                result.detail
            );
        }
    }
    assert!(std::fs::symlink_metadata(place.granted().join("link")).is_ok());
    assert_eq!(
        std::fs::read_to_string(place.outside().join("secret")).unwrap(),
        SECRET
    );
}

#[test]
fn interfaces_without_a_grant_load_but_every_call_is_denied_naming_the_fix() {
    let place = Playground::new();
    let host = Host::new();
    let plugin = host.load("hostile", Grants::default(), backstop_limits());
    let ungranted: Vec<&str> = plugin
        .ungranted()
        .iter()
        .map(|(import, _)| *import)
        .collect();
    assert!(
        ungranted.contains(&common::interface("fs").as_str())
            && ungranted.contains(&common::interface("proc").as_str()),
        "{ungranted:?}"
    );

    let processes = attack(&host, &plugin, "processes", &place.granted(), true);
    let check = first_round_check(&processes, "processes");
    assert!(
        check.detail.contains("Denied") && check.detail.contains("the operator adds proc = ["),
        "{}",
        check.detail
    );
    assert_eq!(denied_lines(&processes).len(), 1);

    let read = attack(&host, &plugin, "read", &place.granted().join("file"), true);
    let plan = read.rounds[0].plan.as_ref().unwrap();
    for check in &plan.checks {
        assert!(
            check.detail.contains("Denied") && !check.detail.contains("mine"),
            "{}: {}",
            check.name,
            check.detail
        );
    }
    assert_eq!(denied_lines(&read).len(), plan.checks.len());
}

#[test]
fn a_component_imports_only_the_interfaces_its_code_calls() {
    let host = Host::new();
    let echo = host.load("echo", Grants::default(), backstop_limits());
    let mut remedy_imports: Vec<&str> = echo
        .imports
        .iter()
        .map(String::as_str)
        .filter(|i| i.starts_with("remedy:"))
        .collect();
    remedy_imports.sort();
    assert_eq!(
        remedy_imports,
        [common::interface("log"), common::interface("types")]
    );
}

#[test]
fn a_pinned_sha256_must_match() {
    let host = Host::new();
    let error = host
        .engine
        .load(PluginSpec {
            name: "echo".into(),
            wasm: common::wasm("echo").into(),
            sha256_pin: Some("0".repeat(64)),
            grants: Grants::default(),
            limits: backstop_limits(),
        })
        .err()
        .unwrap();
    assert!(matches!(error, LoadError::Sha256Mismatch { .. }), "{error}");
}

#[test]
fn limits_stop_the_plugin_and_the_host_keeps_serving() {
    let place = Playground::new();
    let host = Host::new();
    let loop_limits = PluginLimits {
        timeout: Duration::from_secs(3),
        ..backstop_limits()
    };
    let looping = host.load("hostile", grants_under(&place.granted()), loop_limits);
    let bounded = host.load("hostile", grants_under(&place.granted()), backstop_limits());
    let echo = host.load("echo", Grants::default(), backstop_limits());
    let target = place.granted().join("file");

    std::thread::scope(|scope| {
        let spinning = scope.spawn(|| attack(&host, &looping, "loop", &target, true));
        let hoarding = scope.spawn(|| attack(&host, &bounded, "memory", &target, true));
        let flooding = scope.spawn(|| attack(&host, &bounded, "log-flood", &target, true));

        // While the loop spins, other runs go through.
        for n in 0..5 {
            let report = run_by_hand(
                &host.engine,
                &host.store,
                RunRequest {
                    alert: remedy::alert::manual_alert([("n".to_string(), n.to_string())].into()),
                    ..common::by_hand(&echo, vec![])
                },
            )
            .unwrap();
            assert_eq!(report.status, RunStatus::NothingToDo, "{}", report.reason);
        }
        assert!(
            !spinning.is_finished(),
            "echo runs completed while the loop was still spinning"
        );

        assert_ended(
            &spinning.join().unwrap(),
            RunStatus::TimedOut,
            "timed out after 3s",
        );
        assert_ended(
            &hoarding.join().unwrap(),
            RunStatus::Trapped,
            "memory cap of 33554432 bytes",
        );

        let flooded = flooding.join().unwrap();
        assert_eq!(flooded.status, RunStatus::NothingToDo, "{}", flooded.reason);
        let logs = &flooded.rounds[0].logs;
        let limits = LogLimits::default();
        assert!(
            logs.len() <= limits.max_lines + 1,
            "{} lines kept",
            logs.len()
        );
        assert!(logs.last().unwrap().message.contains("more lines dropped"));
        let stored = host.store.get_run(&flooded.id).unwrap();
        assert_eq!(
            stored.logs.len(),
            logs.len(),
            "the store keeps the bounded log"
        );
    });
}

#[test]
fn panics_and_oversized_plans_fail_the_run_not_the_host() {
    let place = Playground::new();
    let host = Host::new();
    let plugin = host.load("hostile", grants_under(&place.granted()), backstop_limits());
    let target = place.granted().join("file");

    let panicked = attack(&host, &plugin, "panic", &target, true);
    assert_ended(
        &panicked,
        RunStatus::Trapped,
        "hostile plugin panicked on purpose",
    );
    let huge = attack(&host, &plugin, "huge-plan", &target, true);
    assert_ended(&huge, RunStatus::Failed, "at most 10000");
    let unknown = attack(&host, &plugin, "no-such-attack", &target, true);
    assert_ended(&unknown, RunStatus::Failed, "unknown attack");
}

/// Every call gets a fresh instance: nothing a run wrote into its memory,
/// in zeroed pages or in pages of the module's image, is there for the
/// next run of the same plugin, however its slot's memory was reset.
#[test]
fn a_run_finds_nothing_an_earlier_run_left_in_memory() {
    let place = Playground::new();
    let host = Host::new();
    let plugin = host.load("hostile", grants_under(&place.granted()), backstop_limits());
    for run in 0..3 {
        let report = attack(&host, &plugin, "remember", &place.granted(), true);
        let check = first_round_check(&report, "remember");
        assert_eq!(
            check.status,
            CheckStatus::Pass,
            "run {run}: {}",
            check.detail
        );
        assert_eq!(check.detail, "clean; wrote 6 of 6", "run {run}");
    }
}

fn removal_of(path: &Path) -> Action {
    let meta = std::fs::symlink_metadata(path).unwrap();
    use std::os::unix::fs::MetadataExt;
    Action::RemovePath(RemovePath {
        path: path.display().to_string(),
        identity: FileIdentity {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        },
        reason: "test".into(),
    })
}

#[test]
fn undeclared_action_kinds_are_denied() {
    let place = Playground::new();
    let host = Host::new();
    common::running_run(&host.store, "undeclared");
    let grants = grants_under(&place.granted());
    let executor = host.executor(&grants, &[]);
    let results = executor
        .execute(
            "undeclared",
            0,
            &[removal_of(&place.granted().join("file"))],
            false,
        )
        .unwrap();
    assert_eq!(results[0].status, ActionStatus::Denied);
    assert!(
        results[0].detail.contains("did not declare"),
        "{}",
        results[0].detail
    );
    assert!(place.granted().join("file").exists());
}

#[test]
fn two_runs_racing_for_the_same_files_remove_each_once() {
    let place = Playground::new();
    let host = Host::new();
    let files: Vec<PathBuf> = (0..50)
        .map(|n| {
            let path = place.granted().join(format!("race-{n}"));
            std::fs::write(&path, vec![1u8; 4096]).unwrap();
            path
        })
        .collect();
    // Two alerts about one disk: both plugins planned the same files.
    let plan: Vec<Action> = files.iter().map(|p| removal_of(p)).collect();
    let grants = grants_under(&place.granted());
    let kinds = ["remove-path".to_string()];
    let results: Vec<Vec<remedy::contract::ActionResult>> = std::thread::scope(|scope| {
        let racers: Vec<_> = ["race-a", "race-b"]
            .into_iter()
            .map(|id| {
                common::running_run(&host.store, id);
                let (host, grants, plan, kinds) = (&host, &grants, &plan, &kinds);
                scope.spawn(move || {
                    let executor = host.executor(grants, kinds);
                    executor.execute(id, 0, plan, false).unwrap()
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (n, file) in files.iter().enumerate() {
        let statuses: Vec<ActionStatus> = results.iter().map(|r| r[n].status).collect();
        let done = statuses
            .iter()
            .filter(|s| **s == ActionStatus::Done)
            .count();
        assert_eq!(done, 1, "{}: {statuses:?}", file.display());
        assert!(statuses.contains(&ActionStatus::Stale), "{statuses:?}");
        assert!(!file.exists());
    }
}

#[test]
fn one_denied_action_stops_the_whole_plan() {
    let place = Playground::new();
    let host = Host::new();
    common::running_run(&host.store, "mixed");
    let grants = grants_under(&place.granted());
    let kinds = ["remove-path".to_string()];
    let executor = host.executor(&grants, &kinds);
    let actions = [
        removal_of(&place.granted().join("file")),
        removal_of(&place.outside().join("secret")),
    ];
    let results = executor.execute("mixed", 0, &actions, false).unwrap();
    assert_eq!(results[0].status, ActionStatus::Skipped);
    assert_eq!(results[1].status, ActionStatus::Denied);
    assert!(
        place.granted().join("file").exists(),
        "nothing runs when any action is denied"
    );
}

#[test]
fn an_unwritable_store_stops_everything_before_it_acts() {
    let place = Playground::new();
    let host = Host::new();
    let file = place.granted().join("file");

    // Mid-run: the run exists, then the disk fills or turns read-only.
    common::running_run(&host.store, "failing");
    host.store.simulate_write_failure().unwrap();
    let grants = grants_under(&place.granted());
    let kinds = ["remove-path".to_string()];
    let executor = host.executor(&grants, &kinds);
    let error = executor
        .execute("failing", 0, &[removal_of(&file)], false)
        .unwrap_err();
    assert!(error.to_string().contains("state.db"), "{error}");
    assert!(file.exists(), "no intent record, no action");

    // Whole run: refused before the plugin is even asked.
    let plugin = host.load("hostile", grants_under(&place.granted()), backstop_limits());
    let params = vec![
        ("attack".to_string(), "remove".to_string()),
        ("target".to_string(), file.display().to_string()),
    ];
    let aborted: Box<RunAborted> = run_by_hand(
        &host.engine,
        &host.store,
        RunRequest {
            dry_run: false,
            ..common::by_hand(&plugin, params)
        },
    )
    .unwrap_err();
    assert!(
        aborted.to_string().contains("nothing more was executed"),
        "{aborted}"
    );
    assert!(file.exists());
}

#[test]
fn compiled_plugins_are_cached_across_restarts_and_bad_cache_files_recompiled() {
    use remedy::engine::PluginEngine;
    use remedy::engine::cache::CacheUse;
    let dir = tempfile::tempdir().unwrap();
    let load = |engine: &PluginEngine| {
        engine
            .load(PluginSpec {
                name: "echo".into(),
                wasm: common::wasm("echo").into(),
                sha256_pin: None,
                grants: Grants::default(),
                limits: backstop_limits(),
            })
            .unwrap()
    };
    let first = PluginEngine::new(Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(load(&first).cache, CacheUse::Compiled);
    drop(first);

    let restarted = PluginEngine::new(Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(
        load(&restarted).cache,
        CacheUse::Hit,
        "a restart must not recompile"
    );

    // A truncated or garbled cache file is ignored and replaced, never run.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"\x7fELF not really").unwrap();
    }
    let recovered = PluginEngine::new(Some(dir.path().to_path_buf())).unwrap();
    let plugin = load(&recovered);
    assert_eq!(plugin.cache, CacheUse::Compiled);
    assert_eq!(plugin.info.name, "echo");
    assert_eq!(load(&recovered).cache, CacheUse::Hit);

    // A cache that cannot take the file (a directory in its place): the
    // plugin is compiled again and runs from memory, its describe call
    // answered.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
    }
    let uncached = PluginEngine::new(Some(dir.path().to_path_buf())).unwrap();
    let plugin = load(&uncached);
    assert_eq!(plugin.cache, CacheUse::Compiled);
    assert_eq!(plugin.info.name, "echo");
}
