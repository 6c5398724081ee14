//! Shared by the integration tests: real filesystems, real processes, the
//! real `remedy` binary, and the plugins the build compiled to wasm.
#![allow(dead_code)] // each test binary uses its own part of this

use remedy::caps::docker::{DockerGrant, DockerRight, DockerSettings};
use remedy::caps::fs::FsGrant;
use remedy::caps::nomad::{NomadGrant, NomadRight, NomadSettings};
use remedy::caps::proc::{ProcGrant, ProcRight};
use remedy::caps::{Grants, HostEnv};
use remedy::engine::limits::PluginLimits;
use remedy::engine::{LoadedPlugin, PluginEngine, PluginSpec};
use remedy::store::Store;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, SystemTime};

pub mod alertmanager;
pub mod browser;
pub mod certs;
pub mod daemon;
pub mod dockerd;
pub mod fake_api;
pub mod kube_double;
pub mod netns;
pub mod nomad_double;
pub mod openapi;
pub mod ports;
pub mod postgres;
pub mod prometheus;
pub mod python;

/// Config sections that point Nomad and Docker at nothing, so a test never
/// reaches a real agent or engine the machine happens to run.
pub const OFFLINE_SERVICES: &str = r#"
[nomad]
address = "http://127.0.0.1:9"
retries = 0

[docker]
socket = "/nonexistent/remedy-test/docker.sock"
"#;

/// Connections to the same nothing, for library-level tests.
pub fn offline_env() -> HostEnv {
    HostEnv::new(
        NomadSettings {
            address: Some("http://127.0.0.1:9".into()),
            retries: Some(0),
            ..Default::default()
        },
        DockerSettings {
            socket: Some("/nonexistent/remedy-test/docker.sock".into()),
            ..Default::default()
        },
    )
}

/// A contract interface as the host and `plugins inspect` name it:
/// `remedy:plugin/fs@0.2.0` for `fs`.
pub fn interface(name: &str) -> String {
    let (package, version) = remedy::contract::PACKAGE.split_once('@').unwrap();
    format!("{package}/{name}@{version}")
}

/// Where the build put the compiled plugins.
pub const PLUGIN_DIR: &str = env!("REMEDY_PLUGIN_WASM_DIR");

/// A compiled plugin from this build: `disk_cleanup`, `echo`, `hostile`.
pub fn wasm(name: &str) -> Vec<u8> {
    let path = Path::new(env!("REMEDY_PLUGIN_WASM_DIR")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A size-limited tmpfs mounted for one test and unmounted when dropped.
/// Needs root (CI runs as root); fails the test loudly otherwise.
pub struct Tmpfs {
    _holder: tempfile::TempDir,
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let holder = tempfile::tempdir().unwrap();
        let path = holder.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs at {} failed: these tests need root and mount(8)",
            path.display()
        );
        Tmpfs {
            _holder: holder,
            path,
        }
    }

    /// `(used, available)` bytes, as df counts them.
    pub fn usage(&self) -> (u64, u64) {
        let vfs = rustix::fs::statvfs(&self.path).unwrap();
        let used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
        (used, vfs.f_bavail * vfs.f_frsize)
    }

    pub fn used_percent(&self) -> f64 {
        let (used, available) = self.usage();
        used as f64 * 100.0 / (used + available) as f64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Write `size` bytes to `path` and date its modification `age` ago.
pub fn aged_file(path: &Path, size: usize, age: Duration) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, vec![0x5a; size]).unwrap();
    set_age(path, age);
}

pub fn set_age(path: &Path, age: Duration) {
    let file = File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

pub const DAY: Duration = Duration::from_secs(86_400);

/// A child process, killed and reaped however the test ends.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `sleep` whose stdin is `path`: a live process holding the file open.
pub fn hold_open(path: &Path) -> Reaped {
    let child = Command::new("sleep")
        .arg("600")
        .stdin(File::open(path).unwrap())
        .spawn()
        .expect("spawn sleep");
    Reaped(child)
}

/// The `remedy` binary built for these tests.
pub fn remedy(state: &Path, config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_remedy"));
    command
        .arg("--state-dir")
        .arg(state)
        .arg("--config")
        .arg(config)
        .env_remove("REMEDY_CONFIG")
        .env_remove("REMEDY_STATE_DIR");
    command
}

/// `remedy run PLUGIN --output json ARGS`: its exit code and the run it printed.
pub fn run_json(
    state: &Path,
    config: &Path,
    plugin: &str,
    args: &[&str],
) -> (i32, serde_json::Value) {
    let output = remedy(state, config)
        .args(["run", plugin, "--output", "json"])
        .args(args)
        .output()
        .unwrap();
    let run = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", describe(&output)));
    (output.status.code().unwrap(), run)
}

/// Held by a test while it runs processes named `firecracker`. The plugins
/// that look after them scan every process of the host, so two such tests,
/// in one binary or in binaries side by side (`scripts/run-tests`), would
/// each see the other's. A lock on a file every test process shares, taken
/// when free; it goes with the returned file.
pub fn firecracker_lock() -> File {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("remedy-test-firecracker.lock"))
        .expect("open the tests' firecracker lock file");
    file.lock().expect("lock the tests' firecracker lock file");
    file
}

/// Serve `app` on a loopback port from a thread of its own, for the
/// doubles of outside services: its address and the thread.
pub fn serve_in_thread(app: axum::Router) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (addr, server)
}

/// The routes of the config at `config` that an alert with `labels`
/// matches, in order, as `remedy routes test` says.
pub fn routes_for(state: &Path, config: &Path, labels: &[(&str, &str)]) -> Vec<String> {
    let mut command = remedy(state, config);
    command.args(["routes", "test"]);
    for (name, value) in labels {
        command.arg("--label").arg(format!("{name}={value}"));
    }
    let output = command.output().unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "{}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells.get(2) == Some(&"MATCH")).then(|| cells[1].to_string())
        })
        .collect()
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Grants to read and remove below `root`, to read processes, and to read
/// Nomad and Docker (which disk-cleanup's owner tier imports).
pub fn grants_under(root: &Path) -> Grants {
    Grants {
        fs: FsGrant {
            read: vec![root.to_path_buf()],
            remove: vec![root.to_path_buf()],
        },
        proc: ProcGrant {
            rights: vec![ProcRight::Read],
            ..Default::default()
        },
        nomad: NomadGrant {
            rights: vec![NomadRight::Read],
            ..Default::default()
        },
        docker: DockerGrant {
            rights: vec![DockerRight::Read],
            ..Default::default()
        },
        ..Default::default()
    }
}

/// An engine, a store and their directories, for library-level tests.
pub struct Host {
    pub engine: PluginEngine,
    pub store: Store,
    pub dir: tempfile::TempDir,
}

impl Host {
    pub fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        Host {
            engine: PluginEngine::new(Some(dir.path().join("compiled")))
                .unwrap()
                .with_env(offline_env()),
            store: Store::open(&dir.path().join("state")).unwrap(),
            dir,
        }
    }

    /// The executor under `grants`, for a plugin that declared `kinds`.
    pub fn executor<'a>(
        &'a self,
        grants: &'a Grants,
        kinds: &'a [String],
    ) -> remedy::executor::Executor<'a> {
        remedy::executor::Executor {
            store: &self.store,
            grants,
            env: self.engine.env(),
            declared_kinds: kinds,
            approved: None,
        }
    }

    pub fn load(&self, wasm_name: &str, grants: Grants, limits: PluginLimits) -> LoadedPlugin {
        self.engine
            .load(PluginSpec {
                name: wasm_name.replace('_', "-"),
                wasm: wasm(wasm_name).into(),
                sha256_pin: None,
                grants,
                limits,
            })
            .unwrap_or_else(|e| panic!("load {wasm_name}: {e}"))
    }
}

/// A dry-run of one round of `plugin` with `params`, by hand, for a
/// manual alert with no labels: change what a test needs with `..`.
pub fn by_hand(
    plugin: &LoadedPlugin,
    params: Vec<(String, String)>,
) -> remedy::run::RunRequest<'_> {
    remedy::run::RunRequest {
        plugin,
        alert: remedy::alert::manual_alert(Default::default()),
        params,
        dry_run: true,
        max_rounds: 1,
        node: Default::default(),
        confirm: None,
        record: false,
        park: false,
        resumed: false,
        approval: false,
        approved: None,
    }
}

/// A read-only mapping of the first `len` bytes of a file whose descriptor
/// is already closed, so only the mapping holds the file. Unmapped on drop.
pub struct Mapping {
    addr: *mut std::ffi::c_void,
    len: usize,
}

impl Mapping {
    pub fn of(path: &Path, len: usize) -> Mapping {
        let file = File::open(path).unwrap();
        // SAFETY: a private read-only mapping, never dereferenced by the tests.
        let addr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::PRIVATE,
                &file,
                0,
            )
        }
        .unwrap();
        Mapping { addr, len }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `of`.
        let _ = unsafe { rustix::mm::munmap(self.addr, self.len) };
    }
}

/// Fail unless `json` speaks remedy, not Rust: every key is lowercase
/// (`snake_case` or `kebab-case`) apart from the names inside labels,
/// annotations and params, and no text holds Rust's debug formatting (`::`,
/// `Some(`, `Name { field: ... }`) or a CamelCase enum value (`Firing`).
pub fn assert_speaks_remedy(json: &serde_json::Value, at: &str) {
    use serde_json::Value;
    let user_maps = ["labels", "annotations", "params", "parameters"];
    match json {
        Value::Object(map) => {
            for (key, value) in map {
                assert!(
                    key.chars().all(|c| c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || c == '_'
                        || c == '-'),
                    "{at}: key {key:?} is not remedy's"
                );
                if !user_maps.contains(&key.as_str()) {
                    assert_speaks_remedy(value, &format!("{at}.{key}"));
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                assert_speaks_remedy(item, &format!("{at}[{index}]"));
            }
        }
        Value::String(text) => {
            let debug_struct = text
                .split_whitespace()
                .zip(text.split_whitespace().skip(1))
                .any(|(word, next)| {
                    next == "{" && word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                });
            assert!(
                !text.contains("::") && !text.contains("Some(") && !debug_struct,
                "{at}: {text:?} holds Rust's debug formatting"
            );
            let camel = text.len() > 1
                && text.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && text.chars().all(|c| c.is_ascii_alphabetic())
                && text.chars().skip(1).any(|c| c.is_ascii_lowercase());
            assert!(!camel, "{at}: {text:?} reads like a Rust enum value");
        }
        _ => {}
    }
}

/// The example tmp-reaper plugin as `[[plugin]] name`, reaping files older
/// than `max_age` in `reap`, with the grants that takes.
pub fn reaper_plugin(name: &str, reap: &Path, max_age: &str) -> String {
    format!(
        r#"
[[plugin]]
name = "{name}"
source = "{PLUGIN_DIR}/tmp_reaper.wasm"
params = {{ dirs = "{reap}", max_age = "{max_age}" }}
[plugin.grants]
fs_read = ["{reap}"]
fs_remove = ["{reap}"]
proc = ["read"]
"#,
        reap = reap.display()
    )
}

/// Record run `id` as running in this process, for tests that hand actions
/// to the executor directly: its intents and results belong to a run.
pub fn running_run(store: &Store, id: &str) -> String {
    let alert = remedy::alert::manual_alert(Default::default());
    store
        .create_run(&remedy::store::NewRun {
            id,
            plugin: "test",
            plugin_version: "0",
            plugin_sha256: "0",
            trigger: "test",
            route: None,
            dry_run: false,
            alert: &alert,
            params: &[],
            node: None,
        })
        .unwrap();
    id.to_string()
}

/// A tiny HTTP server answering `status` (body `ok`) to every request, and
/// keeping the paths it was asked for: a health endpoint a test controls.
pub fn answering(
    status: &'static str,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut first = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut first).unwrap_or(0);
            while reader.read_line(&mut String::new()).unwrap_or(0) > 2 {}
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            seen.lock().unwrap().push(path);
            let answer =
                format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (addr, asked)
}
