//! Builds the plugin crates for `wasm32-wasip2` so the binary can embed the
//! first-party ones and the tests can load the test-only ones.
//!
//! A nested cargo with its own target directory: sharing the outer one would
//! wait on the lock the outer build holds.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Workspace packages built to wasm; the first ones are embedded in `remedy`.
const PLUGINS: &[&str] = &["disk-cleanup", "echo", "hostile"];
const PROFILE: &str = "plugin";
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/remedy-<hash>/out; keep the plugins beside it.
    let target_dir = out_dir.ancestors().nth(3).unwrap().join("wasm-plugins");

    for watched in [
        "wit",
        "plugins",
        "tests/plugins",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--quiet", "--profile", PROFILE, "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for package in PLUGINS {
        command.args(["--package", package]);
    }
    // What cargo sets for this build script describes the host build, not the plugins'.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let inherited_build_setting = key.starts_with("CARGO_")
            && key != "CARGO_HOME"
            && key != "CARGO_MAKEFLAGS"
            && !key.starts_with("CARGO_NET_")
            && !key.starts_with("CARGO_REGISTRIES_");
        if inherited_build_setting
            || matches!(
                &*key,
                "RUSTFLAGS" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTDOCFLAGS"
            )
        {
            command.env_remove(&*key);
        }
    }

    let status = command
        .status()
        .unwrap_or_else(|error| panic!("could not start cargo to build the plugins: {error}"));
    if !status.success() {
        panic!(
            "building the plugins for {TARGET} failed (see above). If the target is missing, \
             `rustup target add {TARGET}` installs it; rust-toolchain.toml asks rustup for it."
        );
    }

    let wasm_dir = target_dir.join(TARGET).join(PROFILE);
    for package in PLUGINS {
        let file = wasm_dir.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(exists(&file), "plugin build produced no {}", file.display());
    }
    println!(
        "cargo:rustc-env=REMEDY_PLUGIN_WASM_DIR={}",
        wasm_dir.display()
    );
}

fn exists(path: &Path) -> bool {
    path.metadata().map(|m| m.len() > 0).unwrap_or(false)
}
