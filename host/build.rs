//! Builds the plugin crates for `wasm32-wasip2` so the binary can embed the
//! first-party ones and the tests can load the test-only ones.
//!
//! A nested cargo with its own target directory: sharing the outer one would
//! wait on the lock the outer build holds.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Workspace packages built to wasm; the first ones are embedded in `remedy`.
const PLUGINS: &[&str] = &[
    "disk-cleanup",
    "nomad-restart",
    "docker-prune",
    "nbd-reload",
    "netns-gc",
    "diagnose",
    "sandbox-reaper",
    "service-restart",
    "rollback",
    "k8s-rollback",
    "k8s-pod-restart",
    "echo",
    "hostile",
    "tmp-reaper",
];
const PROFILE: &str = "plugin";
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/remedy-<hash>/out; keep the plugins beside it.
    let target_dir = out_dir.ancestors().nth(3).unwrap().join("wasm-plugins");

    pack_relative_relocations();
    println!("cargo:rerun-if-env-changed=REMEDY_PREBUILT_PLUGINS");
    if let Some(dir) = env::var_os("REMEDY_PREBUILT_PLUGINS") {
        // Plugins built earlier, e.g. by a stable build for a nightly fuzz build.
        let dir = PathBuf::from(dir);
        check_built(&dir);
        println!("cargo:rustc-env=REMEDY_PLUGIN_WASM_DIR={}", dir.display());
        return;
    }

    for watched in [
        "contract",
        "plugins",
        "tests/plugins",
        "examples/plugins",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    ensure_target();

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
    check_built(&wasm_dir);
    println!(
        "cargo:rustc-env=REMEDY_PLUGIN_WASM_DIR={}",
        wasm_dir.display()
    );
}

/// Checks every plugin is there and hands the binary each one's sha256, so
/// remedy need not read an embedded plugin to know which one it is.
fn check_built(wasm_dir: &Path) {
    for package in PLUGINS {
        let stem = package.replace('-', "_");
        let file = wasm_dir.join(format!("{stem}.wasm"));
        assert!(exists(&file), "no plugin at {}", file.display());
        let bytes = std::fs::read(&file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        println!("cargo:rustc-env=REMEDY_PLUGIN_SHA256_{stem}={digest}");
    }
}

/// remedy is a position-independent executable, so the loader relocates each
/// pointer in its tables at start; as one `.rela.dyn` entry of 24 bytes each,
/// those entries were 1.7 MB of the file, all read at every start and kept
/// mapped. Packed (`DT_RELR`, glibc 2.36 and later) they take a few KB.
fn pack_relative_relocations() {
    let target = |key: &str| env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_OS") == "linux" && target("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// rust-toolchain.toml names the wasm target, but rustup only installs it by
/// itself where auto-install is on; install it here so a first build works.
fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if libdir.as_deref().is_some_and(Path::is_dir) {
        return;
    }
    let installed = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        panic!(
            "the {TARGET} target is not installed and rustup could not add it: run `rustup target add {TARGET}`"
        );
    }
    println!(
        "cargo:warning=installed the {TARGET} target with rustup (rust-toolchain.toml asks for it)"
    );
}

fn exists(path: &Path) -> bool {
    path.metadata().map(|m| m.len() > 0).unwrap_or(false)
}
