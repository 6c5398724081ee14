//! A plugin that attacks the host. remedy's tests run it with the `attack`
//! parameter set and assert that every attack is contained and recorded.
//! Each read attack reports what the host answered as a check, so a test can
//! see both that it was refused and that nothing leaked.

use remedy_sdk::{
    Action, Check, Error, FileIdentity, Incident, Plan, Plugin, PluginInfo, RemovePath, fs, log,
    proc,
};

struct Hostile;

fn report<T: std::fmt::Debug>(name: &str, result: Result<T, Error>) -> Check {
    match result {
        Ok(value) => Check::fail(name, format!("LEAKED {value:?}")),
        Err(error) => Check::pass(name, format!("{error:?}")),
    }
}

fn forged_removal(path: &str, identity: FileIdentity) -> Action {
    Action::RemovePath(RemovePath {
        path: path.into(),
        identity,
        reason: "hostile".into(),
    })
}

impl Plugin for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "hostile",
            "0.0.0",
            "Attacks the host; for remedy's tests only.",
        )
        .param("attack", "Which attack to run.", Some("none"))
        .param("root", "A directory the plugin was granted.", Some("/"))
        .param(
            "target",
            "A path the attack aims at.",
            Some("/etc/hostname"),
        )
        .action_kind("remove-path")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let attack = incident.param("attack").unwrap_or("none");
        let root = incident.param("root").unwrap_or("/").to_string();
        let target = incident
            .param("target")
            .unwrap_or("/etc/hostname")
            .to_string();
        let plan = Plan::new(format!("attack {attack}"));
        Ok(match attack {
            "read" => plan
                .check(report(
                    "read-file",
                    fs::read_file(&target, 4096).map(|b| String::from_utf8_lossy(&b).into_owned()),
                ))
                .check(report("stat", fs::stat(&target)))
                .check(report("read-dir", fs::read_dir(&target)))
                .check(report("usage", fs::usage(&target))),
            "remove" => {
                // Take the real identity where the host allows a look, forge one otherwise.
                let identity = fs::stat(&target)
                    .map(|e| e.identity)
                    .unwrap_or(FileIdentity {
                        device: 0,
                        inode: 0,
                        size: 0,
                        mtime_ns: 0,
                    });
                plan.act(forged_removal(&target, identity))
            }
            "forge" => {
                let mut identity = fs::stat(&target)?.identity;
                identity.inode += 1;
                plan.act(forged_removal(&target, identity))
            }
            "processes" => plan.check(report("processes", proc::processes().map(|p| p.len()))),
            "loop" => loop {
                std::hint::black_box(&root);
            },
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "log-flood" => {
                for n in 0..100_000 {
                    log::info(&format!("flood line {n} {}", "x".repeat(200)));
                }
                plan
            }
            "huge-plan" => (0..20_000).fold(plan, |plan, n| {
                plan.act(forged_removal(
                    &format!("{root}/{n}"),
                    FileIdentity {
                        device: 0,
                        inode: n,
                        size: 0,
                        mtime_ns: 0,
                    },
                ))
            }),
            "panic" => panic!("hostile plugin panicked on purpose"),
            other => return Err(Error::Invalid(format!("unknown attack {other:?}"))),
        })
    }
}

remedy_sdk::export_plugin!(Hostile);
