//! Python plugins, built by the tests with componentize-py (PyPI;
//! scripts/test installs it) from their `app.py`, remedy's Python SDK
//! (`plugins/sdk-python`) and the WIT `remedy plugins wit --out` writes,
//! as a Python author builds them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The component built from the `app.py` in `dir` (relative to the
/// workspace), built once per test binary: its path.
pub fn plugin(dir: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, wasm)) = built.iter().find(|(d, _)| d == dir) {
        return wasm.clone();
    }
    let out = out_dir();
    let wasm = build(&Path::new(WORKSPACE).join(dir), &contract(&out), &out);
    built.push((dir.to_string(), wasm.clone()));
    wasm
}

/// Where built plugins go, kept between runs for people to look at.
pub fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The contract this remedy speaks, written into `dir/wit-PID`.
pub fn contract(dir: &Path) -> PathBuf {
    let wit = dir.join(format!("wit-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_remedy"))
        .args(["plugins", "wit", "--out"])
        .arg(&wit)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    wit
}

/// `source`'s app.py built against the WIT in `wit`, into `out`.
pub fn build(source: &Path, wit: &Path, out: &Path) -> PathBuf {
    let name = source.file_name().unwrap().to_string_lossy().into_owned();
    // Built aside and renamed: other test binaries may build it meanwhile.
    let building = out.join(format!("{name}.{}.wasm", std::process::id()));
    let output = Command::new("componentize-py")
        .arg("-d")
        .arg(wit)
        .args(["-w", "plugin", "componentize", "-p"])
        .arg(source)
        .arg("-p")
        .arg(Path::new(WORKSPACE).join("plugins/sdk-python"))
        .arg("app")
        .arg("-o")
        .arg(&building)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run componentize-py: {e}; scripts/test installs it (pip install componentize-py)")
        });
    assert!(
        output.status.success(),
        "componentize-py could not build {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = out.join(format!("{name}.wasm"));
    std::fs::rename(&building, &wasm).unwrap();
    wasm
}
