//! Any bytes as the plan a plugin hands back, in the store's encoding: the
//! engine's bounds refuse what is too large, and the executor's judgement
//! (the one it records and a replay shows) never panics and holds a plan
//! whole or not at all. An action it lets through is one the grants and the
//! declared kinds name; one it refuses is refused on its own too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remedy::caps::{Grants, HostEnv};
use remedy::contract::{Action, ActionStatus, Plan};
use remedy::executor::refusals;
use std::sync::LazyLock;

/// Grants of every capability with actions, each scoped.
const GRANTS: &str = r#"
fs_read = ["/data"]
fs_remove = ["/data/logs"]
proc = ["read"]
proc_signals = ["TERM"]
proc_exes = ["/usr/bin/api"]
nomad = ["read", "restart", "revert"]
nomad_jobs = ["api"]
netns = ["read", "delete"]
netns_names = ["ns-[0-9]+"]
kmod = ["read", "load"]
kmod_modules = ["nbd"]
kube = ["read", "rollback", "delete-pod"]
kube_namespaces = ["shop"]
kube_names = ["api"]
"#;

struct Judge {
    grants: Grants,
    env: HostEnv,
    declared: Vec<String>,
}

static JUDGE: LazyLock<Judge> = LazyLock::new(|| Judge {
    grants: toml::from_str(GRANTS).expect("the grants parse"),
    // Services that are not there: the judgement must not need them.
    env: HostEnv::new(
        remedy::caps::nomad::NomadSettings {
            address: Some("http://127.0.0.1:9".into()),
            retries: Some(0),
            ..Default::default()
        },
        remedy::caps::docker::DockerSettings {
            socket: Some("/nonexistent/remedy-fuzz/docker.sock".into()),
            ..Default::default()
        },
    ),
    // Every kind but one, so an undeclared kind is judged too.
    declared: Action::KINDS
        .iter()
        .filter(|kind| **kind != "nbd-disconnect")
        .map(|kind| kind.to_string())
        .collect(),
});

fuzz_target!(|bytes: &[u8]| {
    let Ok(plan) = serde_json::from_slice::<Plan>(bytes) else {
        return;
    };
    if remedy::engine::limits::validate_plan(&plan).is_err() {
        return;
    }
    let judge = &*JUDGE;
    let alone = |action: &Action| {
        refusals(std::slice::from_ref(action), &judge.grants, &judge.env, &judge.declared, None)
    };
    for action in &plan.actions {
        let _ = (action.target(), action.reason(), action.kind());
    }
    match refusals(&plan.actions, &judge.grants, &judge.env, &judge.declared, None) {
        None => {
            let allowed = judge.grants.allowed_kinds();
            for action in &plan.actions {
                assert!(alone(action).is_none(), "allowed in a plan, refused alone");
                assert!(allowed.contains(&action.kind()), "{} is not granted", action.kind());
                assert!(judge.declared.iter().any(|k| k == action.kind()));
            }
        }
        Some(judged) => {
            assert_eq!(judged.len(), plan.actions.len(), "one verdict per action");
            assert!(judged.iter().any(|(status, _)| *status == ActionStatus::Denied));
            for ((status, why), action) in judged.iter().zip(&plan.actions) {
                assert!(!why.is_empty());
                match status {
                    ActionStatus::Denied => assert!(alone(action).is_some(), "denied only in company"),
                    ActionStatus::Skipped => assert!(alone(action).is_none(), "skipped yet refused"),
                    other => panic!("a refused plan's action judged {other:?}"),
                }
            }
        }
    }
});
