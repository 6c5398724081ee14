//! Per-alert overhead. `cargo bench -p remedy --bench dispatch`
//!
//! - `plan/echo`: a fresh instance of a small pre-instantiated plugin plus
//!   one `plan` call: what every round of every run pays.
//! - `plan/disk-cleanup`: the same for the bundled plugin planning against
//!   directories that do not exist (no filesystem work).
//! - beside them, the median of a fork+exec of `/bin/true`, and the ratio.
//! - `cli/run disk-cleanup --dry-run`: the whole command, process start to
//!   exit, with the compiled-plugin cache warm.

use criterion::{Criterion, criterion_group, criterion_main};
use remedy::caps::Grants;
use remedy::contract::{Alert, AlertStatus, Incident};
use remedy::engine::{PluginEngine, PluginSpec};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("REMEDY_PLUGIN_WASM_DIR")).join(format!("{name}.wasm"))).unwrap()
}

fn incident(params: Vec<(String, String)>) -> Incident {
    Incident {
        run_id: "bench".into(),
        alert: Alert {
            status: AlertStatus::Firing,
            labels: vec![
                ("alertname".into(), "DiskSpaceLow".into()),
                ("instance".into(), "node-1:9100".into()),
            ],
            annotations: vec![],
            starts_at: "2026-11-21T10:00:00Z".into(),
            ends_at: None,
            fingerprint: "1854b7fffc770620".into(),
        },
        params,
        dry_run: true,
        round: 0,
        history: vec![],
        recent: vec![],
        memo: None,
    }
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn dispatch(c: &mut Criterion) {
    let cache = tempfile::tempdir().unwrap();
    let engine = PluginEngine::new(Some(cache.path().to_path_buf())).unwrap();
    eprintln!("pooling allocator: {}", engine.uses_pooling());

    let echo = engine
        .load(PluginSpec {
            name: "echo".into(),
            wasm: wasm("echo").into(),
            sha256_pin: None,
            grants: Grants::default(),
            limits: Default::default(),
        })
        .unwrap();
    let echo_incident = incident(vec![]);
    let (mut instantiate, mut call) = (Duration::ZERO, Duration::ZERO);
    const SAMPLES: u32 = 2_000;
    let mut dispatches = Vec::with_capacity(SAMPLES as usize);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let done = engine.plan(&echo, &echo_incident);
        dispatches.push(started.elapsed());
        instantiate += done.instantiate;
        call += done.call;
    }
    eprintln!(
        "plan/echo breakdown: instantiate {:?}, plan call {:?} (mean of {SAMPLES})",
        instantiate / SAMPLES,
        call / SAMPLES
    );
    // The same measure of the cheapest thing a script-per-alert receiver
    // does: start a process.
    let forks: Vec<Duration> = (0..SAMPLES / 4)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new("/bin/true").status().unwrap();
            assert!(status.success());
            started.elapsed()
        })
        .collect();
    let (dispatch, fork) = (p50(dispatches), p50(forks));
    eprintln!(
        "plan/echo p50 {dispatch:?}; fork+exec of /bin/true p50 {fork:?}: dispatch is {:.0}x faster",
        fork.as_secs_f64() / dispatch.as_secs_f64()
    );
    let no_grants = Grants::default();
    let limits = Default::default();
    let live = remedy::caps::journal::Journal::live();
    c.bench_function("context/new", |b| {
        b.iter(|| remedy::engine::RunContext::new(&no_grants, &limits, engine.env(), &live))
    });
    c.bench_function("plan/echo", |b| {
        b.iter(|| engine.plan(&echo, &echo_incident).result.unwrap())
    });

    let cleanup = engine
        .load(PluginSpec {
            name: "disk-cleanup".into(),
            wasm: wasm("disk_cleanup").into(),
            sha256_pin: None,
            grants: toml::from_str(
                r#"
                fs_read = ["/nonexistent-remedy-bench"]
                proc = ["read"]
                nomad = ["read"]
                docker = ["read"]
                "#,
            )
            .unwrap(),
            limits: Default::default(),
        })
        .unwrap();
    let params = ["sandbox_dirs", "cache_dirs", "log_dirs"]
        .map(|p| (p.to_string(), "/nonexistent-remedy-bench/x".to_string()));
    let mut cleanup_params = params.to_vec();
    cleanup_params.extend([
        ("target_used_percent".into(), "80".into()),
        ("grace".into(), "1h".into()),
        ("log_min_age".into(), "7d".into()),
    ]);
    let cleanup_incident = incident(cleanup_params);
    c.bench_function("plan/disk-cleanup", |b| {
        b.iter(|| engine.plan(&cleanup, &cleanup_incident).result.unwrap())
    });
}

fn cli(c: &mut Criterion) {
    let state = tempfile::tempdir().unwrap();
    let run = || {
        let status = Command::new(env!("CARGO_BIN_EXE_remedy"))
            .args(["run", "disk-cleanup", "--dry-run", "--state-dir"])
            .arg(state.path())
            .env_remove("REMEDY_CONFIG")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        // 0 (planned) or 3 (nothing to do), depending on this machine's disk.
        assert!(matches!(status.code(), Some(0 | 3)), "{status}");
    };
    run(); // fills the compiled-plugin cache
    let mut group = c.benchmark_group("cli");
    group.sample_size(30);
    group.bench_function("run disk-cleanup --dry-run", |b| b.iter(run));
    group.finish();
}

criterion_group!(benches, dispatch, cli);
criterion_main!(benches);
