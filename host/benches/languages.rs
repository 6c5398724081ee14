//! A Python plugin beside a Rust one doing the same job: the example
//! old-logs (Python, componentize-py) and tmp-reaper (Rust), each over the
//! same directory of 200 files. For each: the component's size, its first
//! load (compile and `describe`), a load from the compiled cache, and the
//! instantiate and `plan` times of a round, the median of many.
//!
//! `cargo bench -p remedy --bench languages` (REMEDY_BENCH_ROUNDS to change the samples).

#[path = "../tests/common/python.rs"]
mod python;

use remedy::caps::Grants;
use remedy::contract::Incident;
use remedy::engine::{PluginEngine, PluginSpec};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run this too: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds: usize = std::env::var("REMEDY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let old = SystemTime::now() - Duration::from_secs(30 * 86400);
    for n in 0..200 {
        let file = std::fs::File::create(logs.join(format!("app.log.{n}"))).unwrap();
        file.set_modified(old).unwrap();
    }
    let grants: Grants = toml::from_str(&format!(
        "fs_read = [\"{0}\"]\nfs_remove = [\"{0}\"]\nproc = [\"read\"]\n",
        logs.display()
    ))
    .unwrap();
    let rust = Path::new(env!("REMEDY_PLUGIN_WASM_DIR")).join("tmp_reaper.wasm");
    let python = python::plugin("examples/plugins/old-logs-py");
    println!("one round over 200 old files, median of {rounds}; release build, pooling allocator");
    println!(
        "  {:<22} {:>9} {:>12} {:>12} {:>12} {:>10}",
        "plugin", "size", "first load", "cached load", "instantiate", "plan"
    );
    for (name, wasm) in [("tmp-reaper (Rust)", rust), ("old-logs (Python)", python)] {
        measure(
            name,
            &std::fs::read(wasm).unwrap(),
            &grants,
            &logs,
            dir.path(),
            rounds,
        );
    }
}

fn measure(name: &str, wasm: &[u8], grants: &Grants, logs: &Path, dir: &Path, rounds: usize) {
    let cache = dir.join(format!("compiled-{}", name.len()));
    let spec = || PluginSpec {
        name: name.into(),
        wasm: wasm.to_vec().into(),
        sha256_pin: None,
        grants: grants.clone(),
        limits: Default::default(),
    };
    let started = Instant::now();
    PluginEngine::new(Some(cache.clone()))
        .unwrap()
        .load(spec())
        .unwrap();
    let first = started.elapsed();
    let engine = PluginEngine::new(Some(cache)).unwrap();
    let started = Instant::now();
    let plugin = engine.load(spec()).unwrap();
    let cached = started.elapsed();

    let params = vec![
        ("dirs".to_string(), logs.display().to_string()),
        ("max_age".to_string(), "7d".to_string()),
    ];
    let incident = Incident {
        run_id: "bench".into(),
        alert: remedy::alert::manual_alert(Default::default()),
        params,
        dry_run: true,
        round: 0,
        history: Vec::new(),
        recent: Vec::new(),
        memo: None,
    };
    let mut instantiate = Vec::new();
    let mut plan = Vec::new();
    for _ in 0..rounds {
        let call = engine.plan(&plugin, &incident);
        let planned = call.result.expect("the plugin plans");
        assert_eq!(planned.actions.len(), 200, "{}", planned.summary);
        instantiate.push(call.instantiate);
        plan.push(call.call);
    }
    println!(
        "  {name:<22} {:>7.1} MiB {:>9.0} ms {:>9.1} ms {:>9.0} µs {:>7.2} ms",
        wasm.len() as f64 / f64::from(1 << 20),
        first.as_secs_f64() * 1e3,
        cached.as_secs_f64() * 1e3,
        median(&mut instantiate).as_secs_f64() * 1e6,
        median(&mut plan).as_secs_f64() * 1e3,
    );
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
