//! Plugin authors' paths, run as written: every command of
//! docs/writing-a-plugin.md, and the test commands of the README each
//! `remedy plugins new` project carries, in Rust and in Python. Each
//! generated project builds with cargo or componentize-py and passes its
//! tests as generated.

mod common;

use std::path::Path;
use std::process::{Command, Output};

/// The ```sh blocks of a Markdown text, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// `script` in bash (each command echoed, the first failure fatal) in
/// `dir`, with this build's `remedy` first on the PATH and its own state.
fn run_script(dir: &Path, script: &str) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_remedy")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .args(["-euxo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("REMEDY_STATE_DIR", dir.join(".remedy-state"))
        // The projects build into their own target/, where their
        // remedy.toml looks for the component.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("REMEDY_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn the_plugin_tutorial_runs_as_written() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/writing-a-plugin.md");
    let blocks = sh_blocks(&std::fs::read_to_string(doc).unwrap());
    assert!(blocks.len() >= 8, "the tutorial's commands: {blocks:?}");
    let dir = tempfile::tempdir().unwrap();
    let output = run_script(dir.path(), &blocks.concat());
    let shown = common::describe(&output);
    assert!(output.status.success(), "{shown}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // What the tutorial says each step shows.
    assert!(
        stdout.contains("nothing-to-do") && stdout.contains("exit 3"),
        "{shown}"
    );
    assert!(
        stdout.contains("outside the granted") && stdout.contains("exit 1"),
        "{shown}"
    );
    assert!(stderr.contains("recorded 1 rounds and 1 reads"), "{shown}");
    assert!(
        stderr.contains("every round planned as the recording says"),
        "{shown}"
    );
    assert!(
        stderr.contains("the plans differ from the recording"),
        "{shown}"
    );
    assert!(stdout.contains("warn   usage"), "{shown}");
}

#[test]
fn new_projects_build_and_pass_their_tests_as_generated() {
    let dir = tempfile::tempdir().unwrap();
    for (name, lang) in [("probe", "rust"), ("probe-py", "python")] {
        let created = common::remedy(&dir.path().join("state"), Path::new("/dev/null"))
            .args(["plugins", "new", name, "--lang", lang])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(created.status.success(), "{}", common::describe(&created));
        let project = dir.path().join(name);
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        let test = sh_blocks(&readme).into_iter().next().expect("a test block");
        let output = run_script(&project, &test);
        assert!(
            output.status.success(),
            "{lang}: {}",
            common::describe(&output)
        );
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(
            said.contains("every round planned as the recording says"),
            "{said}"
        );
    }

    let again = common::remedy(&dir.path().join("state"), Path::new("/dev/null"))
        .args(["plugins", "new", "probe"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing project is never overwritten"
    );
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already exists"), "{said}");
}
