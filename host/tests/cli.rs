//! The command line: exit codes, errors that name what to fix, and the
//! subcommands around `run`.

mod common;

use common::{describe, remedy};
use std::path::{Path, PathBuf};
use std::process::Output;

/// disk-cleanup allowed to read /tmp, for tests about routes and config.
fn disk_cleanup_reading_tmp() -> String {
    format!(
        r#"
[[plugin]]
name = "disk-cleanup"
source = "builtin:disk-cleanup"
[plugin.grants]
fs_read = ["/tmp"]
proc = ["read"]
nomad = ["read"]
docker = ["read"]
{}"#,
        common::OFFLINE_SERVICES
    )
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn with_config(config: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("remedy.toml"), config).unwrap();
        Setup { dir }
    }

    /// A config like the built-in one, but reading only an empty directory.
    fn quiet() -> Setup {
        let setup = Setup::with_config("");
        let data = setup.dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let d = data.display();
        std::fs::write(
            setup.config(),
            format!(
                r#"
[[plugin]]
name = "disk-cleanup"
source = "builtin:disk-cleanup"
params = {{ sandbox_dirs = "{d}", cache_dirs = "{d}", log_dirs = "{d}", target_used_percent = "100" }}
[plugin.grants]
fs_read = ["{d}"]
proc = ["read"]
nomad = ["read"]
docker = ["read"]
{}"#,
                common::OFFLINE_SERVICES
            ),
        )
        .unwrap();
        setup
    }

    /// tmp-reaper as `reaper`, with one file older than its 7d limit below `dir`.
    fn reaping_one_old_file(dir: &Path) -> Setup {
        let scratch = dir.join("scratch");
        common::aged_file(&scratch.join("old.log"), 10, 30 * common::DAY);
        Setup::with_config(&common::reaper_plugin("reaper", &scratch, "7d"))
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("remedy.toml")
    }

    fn remedy(&self, args: &[&str]) -> Output {
        remedy(&self.dir.path().join("state"), &self.config())
            .args(args)
            .output()
            .unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn nothing_to_do_exits_3_and_is_recorded() {
    let setup = Setup::quiet();
    let output = setup.remedy(&["run", "disk-cleanup"]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert!(
        stdout(&output).contains("100%"),
        "the run says the filesystem is under its 100% target: {}",
        describe(&output)
    );

    let list = setup.remedy(&["runs", "list", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["status"], "nothing-to-do");

    let show = setup.remedy(&["runs", "show", &id[..13]]);
    assert_eq!(show.status.code(), Some(0), "{}", describe(&show));
    for needle in [&id[..], "disk-cleanup", "nothing-to-do", "round 1"] {
        assert!(
            stdout(&show).contains(needle),
            "missing {needle}: {}",
            describe(&show)
        );
    }
    let missing = setup.remedy(&["runs", "show", "no-such-run"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("no run matches"),
        "{}",
        describe(&missing)
    );
}

#[test]
fn usage_errors_exit_2_and_name_the_fix() {
    let setup = Setup::quiet();
    let cases: &[(&[&str], &str)] = &[
        (&["run", "no-such-plugin"], "no plugin `no-such-plugin`"),
        (
            &["run", "disk-cleanup", "--param", "nope=1"],
            "has no param `nope`",
        ),
        (
            &["run", "disk-cleanup", "--param", "novalue"],
            "expected KEY=VALUE",
        ),
        (
            &["run", "disk-cleanup", "--apply", "--dry-run"],
            "cannot be used with",
        ),
        (
            &["run", "disk-cleanup", "--alert", "/nonexistent.json"],
            "--alert /nonexistent.json",
        ),
        (&["runs", "list", "--status", "exploded"], "unknown status"),
    ];
    for (args, needle) in cases {
        let output = setup.remedy(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            describe(&output)
        );
        assert!(
            stderr(&output).contains(needle),
            "{args:?}: {}",
            describe(&output)
        );
    }
}

#[test]
fn a_bad_param_value_is_a_failed_run_naming_the_param() {
    let setup = Setup::quiet();
    let output = setup.remedy(&["run", "disk-cleanup", "--param", "target_used_percent=lots"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stdout(&output).contains("target_used_percent"),
        "{}",
        describe(&output)
    );
}

#[test]
fn alert_files_are_read_and_labels_apply() {
    let setup = Setup::quiet();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/am-webhook-firing.json");
    // The fixture's alert is about host-a; a label makes it about this host,
    // where disk-cleanup may run.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let about_this_host = format!("instance={}:9100", host.trim());
    let output = setup.remedy(&[
        "run",
        "disk-cleanup",
        "--alert",
        fixture.to_str().unwrap(),
        "--label",
        "mountpoint=/elsewhere",
        "--label",
        &about_this_host,
        "--output",
        "json",
    ]);
    // No such filesystem here: nothing configured is on it and it cannot be
    // measured, so a human has to look.
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    let run: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let labels = run["alert"]["labels"].to_string();
    assert!(
        labels.contains("ContainerUnhealthy") && labels.contains("/elsewhere"),
        "{labels}"
    );
    assert!(
        run["reason"].as_str().unwrap().contains("/elsewhere"),
        "the alert's mountpoint wins: {run:#}"
    );
    // ... and the records say so: the params used, not the default `/`.
    let params = run["params"].to_string();
    assert_eq!(run["params"]["mountpoint"], "/elsewhere", "{params}");
    let id = run["id"].as_str().unwrap();
    let shown = stdout(&setup.remedy(&["runs", "show", id]));
    assert!(shown.contains("mountpoint=/elsewhere"), "{shown}");
    let audit = stdout(&setup.remedy(&["audit", "show", id]));
    assert!(
        audit.contains("params-used") && audit.contains("/elsewhere"),
        "{audit}"
    );

    let garbage = setup.dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"alerts\": [1, 2]}").unwrap();
    let output = setup.remedy(&["run", "disk-cleanup", "--alert", garbage.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("not an Alertmanager webhook payload"),
        "{}",
        describe(&output)
    );
}

#[test]
fn config_check_loads_every_plugin_and_reports_each_problem() {
    let good = Setup::quiet();
    let output = good.remedy(&["config", "check"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        stdout(&output).contains("ok    plugin disk-cleanup"),
        "{}",
        describe(&output)
    );

    // An import its grants leave out loads (its calls are denied), and says so.
    let ungranted = Setup::with_config(
        "[[plugin]]\nname = \"disk-cleanup\"\nsource = \"builtin:disk-cleanup\"\n[plugin.grants]\nfs_read = [\"/tmp\"]\n",
    );
    let output = ungranted.remedy(&["config", "check"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    for import in ["proc", "nomad", "docker"] {
        let note = format!(
            "note  plugin disk-cleanup: {} is not granted, so its calls are denied; {import} = [\"read\"] allows it",
            common::interface(import)
        );
        assert!(stdout(&output).contains(&note), "{}", describe(&output));
    }
    let inspect = ungranted.remedy(&["plugins", "inspect", "disk-cleanup"]);
    assert!(
        stdout(&inspect).contains(&format!(
            r#"{}  (not granted: calls are denied; proc = ["read"] allows it)"#,
            common::interface("proc")
        )),
        "{}",
        describe(&inspect)
    );

    let broken = Setup::with_config(
        "[[plugin]]\nname = \"x\"\nsource = \"missing.wasm\"\ntimeout = \"soon\"\n[plugin.grants]\nfs_remove = [\"/data\"]\n",
    );
    let output = broken.remedy(&["config", "check"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains("remedy.toml") && text.contains("timeout") && text.contains("fs_read"),
        "{text}"
    );

    let missing_file = Setup::with_config("[[plugin]]\nname = \"x\"\nsource = \"missing.wasm\"\n");
    let output = missing_file.remedy(&["config", "check"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stdout(&output).contains("missing.wasm"),
        "{}",
        describe(&output)
    );
}

#[test]
fn plugins_inspect_shows_identity_imports_and_grants() {
    let setup = Setup::quiet();
    let output = setup.remedy(&["plugins", "inspect", "disk-cleanup"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = stdout(&output);
    for needle in [
        "sha256:",
        &common::interface("fs"),
        &common::interface("proc"),
        "remove-path",
        "target_used_percent",
        "fs_read",
    ] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
    assert!(
        !text.contains("remedy:plugin/log"),
        "disk-cleanup never logs, so never imports log"
    );

    let list = setup.remedy(&["plugins", "list"]);
    assert_eq!(list.status.code(), Some(0), "{}", describe(&list));
    assert!(stdout(&list).contains("disk-cleanup"));
}

#[test]
fn the_built_in_default_runs_without_any_config() {
    let state = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_remedy"))
        .args(["run", "disk-cleanup", "--dry-run", "--state-dir"])
        .arg(state.path())
        .env_remove("REMEDY_CONFIG")
        .output()
        .unwrap();
    // Planned (0), nothing to do (3) or escalated (4: a full disk with nothing
    // safe to delete), depending on this machine's disk; never a change.
    assert!(
        matches!(output.status.code(), Some(0 | 3 | 4)),
        "{}",
        describe(&output)
    );
    assert!(stdout(&output).contains("dry-run"), "{}", describe(&output));

    let show = std::process::Command::new(env!("CARGO_BIN_EXE_remedy"))
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(stdout(&show).contains("builtin:disk-cleanup"));
}

#[test]
fn without_the_pooling_allocator_plugins_still_run() {
    // 16 GiB of address space: too little for the instance pool, plenty for one instance.
    let setup = Setup::quiet();
    let binary = env!("CARGO_BIN_EXE_remedy");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 16777216 && exec '{binary}' -v --state-dir '{}' --config '{}' run disk-cleanup",
            setup.dir.path().join("state").display(),
            setup.config().display()
        ))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert!(
        stderr(&output).contains("pooling allocator unavailable"),
        "{}",
        describe(&output)
    );
}

#[test]
fn help_teaches_exit_codes_and_examples() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_remedy"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Exit codes:") && stdout(&help).contains("escalated"));
    let run_help = std::process::Command::new(env!("CARGO_BIN_EXE_remedy"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(
        stdout(&run_help).contains("Examples:"),
        "{}",
        describe(&run_help)
    );
}

#[test]
fn routes_test_explains_each_route() {
    let base = disk_cleanup_reading_tmp();
    let setup = Setup::with_config(&format!(
        r#"{base}
[[route]]
name = "critical-only"
matchers = ['alertname="DiskSpaceLow"', 'severity="critical"']
plugin = "disk-cleanup"
mode = "apply"

[[route]]
name = "disk"
matchers = ['{{alertname=~"DiskSpace(Low|Critical)"}}']
plugin = "disk-cleanup"
params = {{ target_used_percent = "70" }}

[[route]]
name = "never"
plugin = "disk-cleanup"
"#
    ));
    let output = setup.remedy(&[
        "routes",
        "test",
        "--label",
        "alertname=DiskSpaceLow",
        "--label",
        "severity=warning",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = stdout(&output);
    let line = |route: &str| {
        text.lines()
            .find(|l| l.contains(route))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("critical-only")
            .contains(r#"severity="critical" does not match severity = "warning""#),
        "{text}"
    );
    assert!(
        line(" disk ").contains("MATCH") && line(" disk ").contains("dry-run"),
        "{text}"
    );
    assert!(line("never").contains("not tried"), "{text}");

    let none = setup.remedy(&["routes", "test", "--label", "alertname=APIDown"]);
    assert_eq!(
        none.status.code(),
        Some(0),
        "the catch-all route takes it: {}",
        describe(&none)
    );

    let check = setup.remedy(&["config", "check"]);
    assert_eq!(check.status.code(), Some(0), "{}", describe(&check));
    assert!(
        stdout(&check).contains("ok    route disk -> disk-cleanup (dry-run, 1 matcher)"),
        "{}",
        describe(&check)
    );
}

#[test]
fn config_check_refuses_route_params_the_plugin_does_not_take() {
    let base = disk_cleanup_reading_tmp();
    let setup = Setup::with_config(&format!(
        r#"{base}
[[route]]
name = "typo"
plugin = "disk-cleanup"
params = {{ target_percent = "70" }}
"#
    ));
    let output = setup.remedy(&["config", "check"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stdout(&output)
            .contains("FAIL  route typo: plugin `disk-cleanup` has no param `target_percent`"),
        "{}",
        describe(&output)
    );
}

#[test]
fn the_example_config_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/remedy.toml");
    let state = tempfile::tempdir().unwrap();
    let output = remedy(state.path(), &example)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        stdout(&output).contains("3 plugins, 4 routes"),
        "{}",
        describe(&output)
    );
}

/// The sha256 of a plugin the build made, as a config pins it: computed
/// here rather than with remedy's own helper, so that the test checks it.
fn built_plugin_sha256(file: &str) -> String {
    use sha2::Digest;
    let wasm = Path::new(env!("REMEDY_PLUGIN_WASM_DIR")).join(file);
    sha2::Sha256::digest(std::fs::read(&wasm).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A built-in's pin is checked against the digest the build computed of the
/// embedded bytes, which a start does not read: the wrong pin is refused,
/// the right one runs.
#[test]
fn a_pinned_built_in_runs_only_under_its_own_sha256() {
    // The quiet disk-cleanup, with a pin.
    let pinned = |pin: &str| {
        let setup = Setup::quiet();
        let source = "source = \"builtin:disk-cleanup\"\n";
        let config = std::fs::read_to_string(setup.config()).unwrap();
        assert!(config.contains(source));
        let config = config.replacen(source, &format!("{source}sha256 = \"{pin}\"\n"), 1);
        std::fs::write(setup.config(), config).unwrap();
        setup
    };
    let wrong = pinned(&"0".repeat(64));
    let output = wrong.remedy(&["run", "disk-cleanup", "--dry-run"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("but the config pins"),
        "{}",
        describe(&output)
    );

    let right = pinned(&built_plugin_sha256("disk_cleanup.wasm"));
    let output = right.remedy(&["run", "disk-cleanup", "--dry-run"]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
}

/// A third-party plugin from a .wasm file, pinned by sha256, end to end.
#[test]
fn a_plugin_from_a_pinned_wasm_file_runs_and_applies() {
    let wasm = Path::new(env!("REMEDY_PLUGIN_WASM_DIR")).join("tmp_reaper.wasm");
    let sha256 = built_plugin_sha256("tmp_reaper.wasm");
    let work = tempfile::tempdir().unwrap();
    let scratch = work.path().join("scratch");
    common::aged_file(&scratch.join("old/a.log"), 10, 30 * common::DAY);
    common::aged_file(&scratch.join("b.tmp"), 10, 20 * common::DAY);
    common::aged_file(&scratch.join("fresh.tmp"), 10, common::DAY);
    common::aged_file(&scratch.join("held.tmp"), 10, 40 * common::DAY);
    let _holder = common::hold_open(&scratch.join("held.tmp"));

    let config = |pin: &str| {
        format!(
            r#"
[[plugin]]
name = "reaper"
source = "{}"
sha256 = "{pin}"
params = {{ dirs = "{s}", max_age = "7d" }}
[plugin.grants]
fs_read = ["{s}"]
fs_remove = ["{s}"]
proc = ["read"]
"#,
            wasm.display(),
            s = scratch.display()
        )
    };
    let wrong = Setup::with_config(&config(&"0".repeat(64)));
    let output = wrong.remedy(&["run", "reaper"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("but the config pins"),
        "{}",
        describe(&output)
    );

    let setup = Setup::with_config(&config(&sha256));
    let output = setup.remedy(&["run", "reaper", "--apply"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(!scratch.join("old/a.log").exists());
    assert!(!scratch.join("b.tmp").exists());
    assert!(scratch.join("fresh.tmp").exists());
    assert!(
        scratch.join("held.tmp").exists(),
        "a file held open is never reaped"
    );
}

#[test]
fn verbose_logs_are_remedys_own_and_runs_show_every_actions_reason() {
    let setup = Setup::quiet();
    // A cold compile: cranelift and wasmtime log plenty at debug.
    let output = setup.remedy(&["-vv", "run", "disk-cleanup"]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let log = stderr(&output);
    assert!(log.contains("DEBUG") || log.contains("INFO"), "{log}");
    for line in log.lines() {
        assert!(
            !line.contains("cranelift") && !line.contains("wasmtime"),
            "a library's line under -vv: {line}"
        );
    }

    // runs show gives each action's reason, as remedy run does.
    let work = tempfile::tempdir().unwrap();
    let reaper = Setup::reaping_one_old_file(work.path());
    let run = reaper.remedy(&["run", "reaper", "--output", "json"]);
    let run: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let shown = stdout(&reaper.remedy(&["runs", "show", run["id"].as_str().unwrap()]));
    assert!(
        shown.contains("untouched for longer than max_age"),
        "runs show lacks the action's reason:\n{shown}"
    );
}

#[test]
fn the_built_in_default_serves_with_a_token_file_given_on_the_command_line() {
    use common::daemon::{firing, try_request, webhook};
    use common::ports::free_addr;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "built-in-serve-token\n").unwrap();
    let addr = free_addr();
    let serve = |token_file: Option<&Path>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_remedy"));
        command
            .env_remove("REMEDY_CONFIG")
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["serve", "--listen", &addr.to_string()])
            .stderr(std::process::Stdio::piped());
        if let Some(file) = token_file {
            command.arg("--token-file").arg(file);
        }
        command.spawn().unwrap()
    };

    // Without credentials the built-in default refuses to serve, naming the fix.
    let refused = serve(None).wait_with_output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("token_file"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let _daemon = common::Reaped(serve(Some(&token)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !matches!(try_request(addr, "GET", "/-/ready", &[], b""), Ok((200, _))) {
        assert!(std::time::Instant::now() < deadline, "not ready in 60 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let body = webhook(
        "remedy",
        &[firing(&[("alertname", "Unrouted")], "2026-11-21T10:00:00Z")],
    );
    let post = |authorization: &str| {
        let headers = [
            ("Authorization", authorization),
            ("Content-Type", "application/json"),
        ];
        try_request(addr, "POST", "/v1/alerts", &headers, &body)
            .unwrap()
            .0
    };
    assert_eq!(post("Bearer wrong"), 401);
    assert_eq!(post("Bearer built-in-serve-token"), 202);
}

#[test]
fn completions_and_the_man_page_cover_every_subcommand() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_remedy"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    let man = run(&["man"]);
    for subcommand in ["run", "serve", "runs", "routes", "approve", "audit", "node"] {
        assert!(
            bash.contains(subcommand),
            "bash completion lacks {subcommand}"
        );
        assert!(man.contains(subcommand), "the man page lacks {subcommand}");
    }
    assert!(
        man.starts_with(".ie") && man.contains(".TH remedy 1"),
        "{man}"
    );
    // The completion script is valid bash.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("remedy.bash");
    std::fs::write(&script, &bash).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", describe(&check));
}

#[test]
fn json_output_and_the_audit_trail_speak_remedy_not_rust() {
    let work = tempfile::tempdir().unwrap();
    let reaper = Setup::reaping_one_old_file(work.path());
    let output = reaper.remedy(&["run", "reaper", "--apply", "--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let run: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    common::assert_speaks_remedy(&run, "run");
    assert_eq!(run["alert"]["status"], "firing");
    assert_eq!(run["rounds"][0]["plan"]["checks"][0]["status"], "pass");
    assert_eq!(run["actions"][0]["action"]["kind"], "remove-path");
    assert_eq!(run["params"]["max_age"], "7d");

    let export = reaper.remedy(&["audit", "export"]);
    assert_eq!(export.status.code(), Some(0), "{}", describe(&export));
    let records = stdout(&export);
    assert!(records.lines().count() >= 5, "{records}");
    for line in records.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = record["kind"].as_str().unwrap_or("record").to_string();
        common::assert_speaks_remedy(&record, &kind);
    }
}

#[test]
fn config_check_reports_five_independent_mistakes_at_once() {
    let setup = Setup::with_config(&format!(
        r#"
[[plugin]]
name = "typo"
source = "builtin:disk-cleanup"
timout = "30s"

[[plugin]]
name = "remover"
source = "builtin:disk-cleanup"
[plugin.grants]
fs_read = ["/data"]
fs_remove = ["/elsewhere"]
proc = ["read"]
nomad = ["read"]
docker = ["read"]

[[plugin]]
name = "ungranted"
source = "builtin:disk-cleanup"
[plugin.grants]
fs_read = ["/data"]
nomad = ["read"]
docker = ["read"]

[[route]]
name = "bad-matcher"
matchers = ['alertname=~"("']
plugin = "ungranted"

[[route]]
name = "ghost"
plugin = "ghost"

[[route]]
name = "typo-route"
plugin = "typo"

[[route]]
name = "misspelt-param"
plugin = "ungranted"
[route.params]
target_percent = "80"
{}"#,
        common::OFFLINE_SERVICES
    ));
    let output = setup.remedy(&["config", "check"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let text = stdout(&output);
    for mistake in [
        "unknown field `timout`",
        "fs_remove = \"/elsewhere\" is not below any fs_read root",
        "bad-matcher",
        "plugin = \"ghost\" is not a configured [[plugin]]",
        "has no param `target_percent`",
    ] {
        assert!(text.contains(mistake), "missing {mistake:?}:\n{text}");
    }
    assert!(text.contains("5 problem(s)"), "{text}");
    assert!(
        text.contains("line "),
        "the first mistake has its line: {text}"
    );
}

#[test]
fn the_config_schema_accepts_the_examples_and_refuses_a_misspelt_key() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_remedy"))
        .args(["config", "schema"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let as_json = |toml_text: &str| -> serde_json::Value {
        let table: toml::Table = toml::from_str(toml_text).unwrap();
        serde_json::to_value(table).unwrap()
    };
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/remedy.toml"),
    )
    .unwrap();
    let builtin = stdout(
        &std::process::Command::new(env!("CARGO_BIN_EXE_remedy"))
            .args(["config", "show"])
            .output()
            .unwrap(),
    );
    // The configs the fleet's Nomad jobs render, their template values filled in.
    let fleet = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy/fleet.nomad.hcl"),
    )
    .unwrap();
    let template = regex::Regex::new(r"\{\{[^}]*\}\}").unwrap();
    let rendered: Vec<String> = fleet
        .split("<<-EOT\n")
        .skip(1)
        .map(|rest| {
            template
                .replace_all(rest.split("EOT").next().unwrap(), "x")
                .into_owned()
        })
        .collect();
    assert_eq!(rendered.len(), 2, "the receivers' config and the agents'");
    for (name, text) in [
        ("examples/remedy.toml", &example),
        ("built-in default", &builtin),
        ("examples/deploy/fleet.nomad.hcl, receivers", &rendered[0]),
        ("examples/deploy/fleet.nomad.hcl, agents", &rendered[1]),
    ] {
        let errors: Vec<String> = validator
            .iter_errors(&as_json(text))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    for misspelt in [
        example.replace("approval_ttl", "aproval_ttl"),
        example.replacen("fs_read", "fs_raed", 1),
        example.replacen("matchers", "matcher", 1),
    ] {
        assert!(
            !validator.is_valid(&as_json(&misspelt)),
            "accepted a misspelt key"
        );
    }
}

#[test]
fn hash_password_hashes_stdin_for_the_users_file_and_refuses_nothing() {
    use std::io::Write;
    let hash = |input: &str, args: &[&str]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_remedy"))
            .arg("hash-password")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // remedy may refuse its arguments before it reads: the pipe is then closed.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        child.wait_with_output().unwrap()
    };
    let out = hash("correct horse\n", &["--cost", "4"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let hashed = String::from_utf8(out.stdout).unwrap();
    assert!(hashed.starts_with("$2b$04$"), "{hashed}");
    assert!(bcrypt::verify("correct horse", hashed.trim()).unwrap());
    assert!(!bcrypt::verify("correct horse\n", hashed.trim()).unwrap());
    let empty = hash("\n", &[]);
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no password"));
    assert_eq!(hash("x\n", &["--cost", "3"]).status.code(), Some(2));
}

#[test]
fn plugins_wit_prints_and_writes_the_contract_this_remedy_speaks() {
    let dir = tempfile::tempdir().unwrap();
    let printed = remedy(&dir.path().join("state"), Path::new("/dev/null"))
        .args(["plugins", "wit"])
        .output()
        .unwrap();
    assert!(printed.status.success(), "{}", describe(&printed));
    let text = String::from_utf8_lossy(&printed.stdout);
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contract/wit");
    for file in std::fs::read_dir(&wit).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "wit") {
            let source = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.contains(&source),
                "{} is not printed whole",
                path.display()
            );
        }
    }
    let out = dir.path().join("wit");
    let written = remedy(&dir.path().join("state"), Path::new("/dev/null"))
        .args(["plugins", "wit", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(written.status.success(), "{}", describe(&written));
    assert_eq!(
        std::fs::read_to_string(out.join("world.wit")).unwrap(),
        std::fs::read_to_string(wit.join("world.wit")).unwrap()
    );
}

#[test]
fn the_sdk_crate_carries_its_own_wit_so_it_can_be_published() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
    let lib = std::fs::read_to_string(sdk.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("path: \"wit\""),
        "the SDK's bindgen reads its own wit/"
    );
    let listed = std::process::Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "-p", "remedy-sdk"])
        .current_dir(&sdk)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", describe(&listed));
    let files = String::from_utf8_lossy(&listed.stdout);
    for name in [
        "wit/world.wit",
        "wit/types.wit",
        "wit/fs.wit",
        "wit/README.md",
    ] {
        assert!(
            files.lines().any(|line| line == name),
            "{name} not packaged:\n{files}"
        );
    }
}

#[test]
fn a_state_directory_on_a_full_disk_still_records_the_run_through_its_reserve() {
    let disk = common::Tmpfs::mount("8m");
    let state = disk.path.join("state");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("remedy.toml");
    let plugin = common::reaper_plugin("tmp-reaper", dir.path(), "1d");
    std::fs::write(&config, plugin).unwrap();
    // Nothing old to reap: each run ends nothing-to-do (exit 3), recorded.
    let run = || {
        remedy(&state, &config)
            .args(["run", "tmp-reaper"])
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(first.status.code(), Some(3), "{}", describe(&first));
    assert!(state.join("reserve").exists(), "the store keeps a reserve");

    // Fill every last block.
    let mut ballast = std::fs::File::create(disk.path.join("ballast")).unwrap();
    let block = vec![7u8; 64 * 1024];
    while std::io::Write::write_all(&mut ballast, &block).is_ok() {}
    let _ = std::io::Write::write_all(&mut ballast, &[7u8; 512]);
    drop(ballast);

    let second = run();
    assert_eq!(second.status.code(), Some(3), "{}", describe(&second));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("released remedy's"), "{said}");
    assert!(!state.join("reserve").exists());
    let listed = remedy(&state, &config)
        .args(["runs", "list", "--output", "json"])
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        runs.as_array().map(Vec::len),
        Some(2),
        "both runs are recorded: {runs:#}"
    );
}
