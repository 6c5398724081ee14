//! Chaos: `remedy serve` is killed with SIGKILL at random moments while
//! alerts keep coming, and restarted after each kill. Each alert's run
//! restarts a Nomad allocation (a Nomad double counts every restart from
//! outside remedy), parks, and confirms the allocation healthy in a later
//! round. Afterwards:
//!
//! - every alert answered 202 has exactly one run, and every run ended in
//!   a recorded state;
//! - no allocation was restarted twice, and every restart has its recorded
//!   intent (a run cut between intent and result ends `interrupted`);
//! - `remedy audit verify` passes.
//!
//! The suite runs a short version. `scripts/chaos` runs a long one through
//! REMEDY_CHAOS_ALERTS and REMEDY_CHAOS_KILLS (REMEDY_CHAOS_SEED repeats a
//! run's kill times).

mod common;

use common::daemon::{Daemon, NODE, TOKEN, firing, serve_config, try_request, webhook};
use common::nomad_double::NomadDouble;
use common::ports::free_addr;
use remedy::store::{RunFilter, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: enough randomness for kill times, and repeatable.
struct Dice(u64);

impl Dice {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

fn job(n: u64) -> String {
    format!("chaos-{n}")
}

/// The world: one allocation of its own job per alert, on this node.
fn nomad(alerts: u64) -> NomadDouble {
    let nomad = NomadDouble::start();
    let mut world = nomad.world();
    let here = world.add_node(NODE);
    world.local_node = here.clone();
    // Slow enough that a kill can land between any two steps of a run.
    world.latency = Duration::from_millis(20);
    for n in 0..alerts {
        world.add_job("default", &job(n), "system", &["task"]);
        world.place("default", &job(n), &here);
    }
    drop(world);
    nomad
}

fn routes(nomad: &NomadDouble) -> String {
    format!(
        r#"
[nomad]
address = "{}"
timeout = "2s"
retries = 0

[[plugin]]
name = "nomad-restart"
source = "builtin:nomad-restart"
params = {{ confirm_after = "1s" }}
[plugin.grants]
nomad = ["read", "restart"]
nomad_namespaces = ["default"]
nomad_jobs = ["chaos-[0-9]+"]

[[route]]
name = "restart"
matchers = ['alertname="OrchestratorDown"']
plugin = "nomad-restart"
mode = "apply"
"#,
        nomad.address()
    )
}

/// Post each alert, as Alertmanager does, until it is answered 202.
fn post_every_alert(addr: std::net::SocketAddr, alerts: u64, done: Arc<AtomicBool>) {
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    for n in 0..alerts {
        let alert = firing(
            &[
                ("alertname", "OrchestratorDown"),
                ("node", NODE),
                ("job", &job(n)),
            ],
            "2026-11-26T10:00:00Z",
        );
        let body = webhook("chaos", &[alert]);
        while !matches!(
            try_request(addr, "POST", "/v1/alerts", &headers, &body),
            Ok((202, _))
        ) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // A steady trickle, so the kills find runs at every step.
        std::thread::sleep(Duration::from_millis(100));
    }
    done.store(true, Ordering::SeqCst);
}

/// The step remedy had last taken when it died, from the last audit record
/// it wrote since it started: `effect` when an intent's restart reached
/// Nomad and its result was never recorded; `restart` when it had written
/// nothing since it started.
fn phase_at_kill(state: &std::path::Path, since_ms: i64, nomad: &NomadDouble) -> &'static str {
    let records = Store::open(state).unwrap().audit_since(since_ms).unwrap();
    let Some(last) = records.last() else {
        return "restart";
    };
    match last.kind.as_str() {
        "alert" | "run-created" => "admission",
        "run-started" | "run-resumed" => "claim",
        "plan" => "plan",
        "intent" => {
            let body = last.body.to_string();
            let world = nomad.world();
            let reached =
                |a: &&common::nomad_double::Alloc| body.contains(&a.id) && a.restarts() > 0;
            match world.allocs.iter().any(|a| reached(&a)) {
                true => "effect",
                false => "intent",
            }
        }
        "result" => "result",
        "parked" => "park",
        "finished" => "end",
        _ => "other",
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn kill_9_at_random_points_loses_nothing_and_executes_nothing_twice() {
    let alerts = env_or("REMEDY_CHAOS_ALERTS", 40);
    let kills = env_or("REMEDY_CHAOS_KILLS", 12);
    let seed = env_or("REMEDY_CHAOS_SEED", now_ms() as u64) | 1;
    eprintln!("chaos: {alerts} alerts, {kills} kills, REMEDY_CHAOS_SEED={seed}");
    let mut dice = Dice(seed);
    let nomad = nomad(alerts);
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "workers = 4", &routes(&nomad));
    let state = dir.path().join("state");
    let mut daemon = Daemon::start(&state, &config, addr);

    let posted = Arc::new(AtomicBool::new(false));
    let poster = {
        let posted = posted.clone();
        std::thread::spawn(move || post_every_alert(addr, alerts, posted))
    };
    let mut phases: BTreeMap<&str, u32> = BTreeMap::new();
    let mut since = now_ms();
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(50 + dice.below(500)));
        daemon.kill_9();
        *phases
            .entry(phase_at_kill(&state, since, &nomad))
            .or_default() += 1;
        since = now_ms();
        daemon = Daemon::start(&state, &config, addr);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !posted.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the alerts were not all accepted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    poster.join().unwrap();
    let runs = daemon.wait_for_runs(
        "route=restart&limit=1000",
        alerts as usize,
        common::daemon::is_finished,
    );
    eprintln!("kill points hit, by the step last recorded: {phases:?}");

    // Every alert answered 202 has exactly one run.
    let store = Store::open(&state).unwrap();
    let summaries = store
        .list_runs(&RunFilter {
            limit: 10_000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(summaries.len(), alerts as usize, "{runs:#?}");
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    let mut jobs = std::collections::BTreeSet::new();
    let world = nomad.world();
    for summary in &summaries {
        *outcomes.entry(summary.status.as_str().into()).or_default() += 1;
        let run = store.get_run(&summary.id).unwrap();
        let job = run
            .alert
            .labels
            .iter()
            .find(|(name, _)| name == "job")
            .map(|(_, job)| job.clone())
            .unwrap();
        let alloc = world.allocs.iter().find(|a| a.job_id == job).unwrap();
        jobs.insert(job.clone());
        let intents = run.actions.len();
        let done = run.actions.iter().filter(|a| a.status == "done").count();
        // Never twice; never without its intent; a recorded success really
        // happened; one that happened unrecorded (cut between the request
        // and its result) left its run `interrupted`, for a person to check.
        let restarts = alloc.restarts() as usize;
        assert!(restarts <= 1, "{job} restarted {restarts} times");
        assert!(intents <= 1, "{job}: {intents} intents");
        assert!(restarts <= intents, "{job} restarted without an intent");
        assert!(done <= restarts, "{job}: recorded done, never restarted");
        if restarts > done {
            assert_eq!(summary.status.as_str(), "interrupted", "{job}");
        }
    }
    drop(world);
    eprintln!("runs by outcome: {outcomes:?}");
    assert!(
        outcomes
            .keys()
            .all(|s| ["succeeded", "interrupted", "escalated"].contains(&s.as_str())),
        "{outcomes:?}"
    );
    assert_eq!(jobs.len(), alerts as usize, "one run for each alert");

    let verify = common::remedy(&state, &config)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
