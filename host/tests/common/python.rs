//! Python plugins, built by the tests with componentize-py (PyPI;
//! scripts/test installs it) from their `app.py`, remedy's Python SDK
//! (`plugins/sdk-python`) and remedy's WIT (`contract/wit`).

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
    let wasm = build(&Path::new(WORKSPACE).join(dir));
    built.push((dir.to_string(), wasm.clone()));
    wasm
}

fn build(source: &Path) -> PathBuf {
    let name = source.file_name().unwrap().to_string_lossy().into_owned();
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python");
    std::fs::create_dir_all(&out_dir).unwrap();
    // Built aside and renamed: other test binaries may build it meanwhile.
    let building = out_dir.join(format!("{name}.{}.wasm", std::process::id()));
    let output = Command::new("componentize-py")
        .arg("-d")
        .arg(Path::new(WORKSPACE).join("contract/wit"))
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
        super::describe(&output)
    );
    let wasm = out_dir.join(format!("{name}.wasm"));
    std::fs::rename(&building, &wasm).unwrap();
    wasm
}
