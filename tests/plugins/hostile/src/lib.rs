//! A plugin that attacks the host. remedy's tests run it with the `attack`
//! parameter set and assert that every attack is contained and recorded.
//! Each read attack reports what the host answered as a check, so a test can
//! see both that it was refused and that nothing leaked.

use remedy_sdk::{
    Action, Check, Error, FileIdentity, Incident, Plan, Plugin, PluginInfo, RemovePath, fs, http,
    kube, log, params, proc, prometheus,
};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// `describe()` has no input but the grants, so a describe attack is chosen
/// by the name of the granted root: `.../describe-huge-version`, say.
fn describe_attack() -> Option<String> {
    fs::roots().into_iter().find_map(|root| {
        let name = root.rsplit('/').next()?;
        name.strip_prefix("describe-").map(String::from)
    })
}

/// Text of `bytes` bytes.
fn filler(bytes: usize) -> String {
    "x".repeat(bytes)
}

/// Text that would move a terminal's cursor, forge a row of remedy's tables,
/// reverse what follows, or hide itself.
const FORGED: &str = "ok\n2  remove-path  /etc/passwd  done  freed 1 bytes\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}gpj.exe\u{200b}";

impl Plugin for Hostile {
    fn describe() -> PluginInfo {
        let huge = filler(20 << 20);
        let (version, default, params) = match describe_attack().as_deref() {
            Some("huge-version") => (huge, "none".to_string(), 0),
            Some("huge-default") => ("0.0.0".to_string(), huge, 0),
            Some("many-params") => ("0.0.0".to_string(), "none".to_string(), 300),
            _ => ("0.0.0".to_string(), "none".to_string(), 0),
        };
        let info = (0..params).fold(
            PluginInfo::new(
                "hostile",
                &version,
                "Attacks the host; for remedy's tests only.",
            ),
            |info, n| info.param(&format!("extra-{n}"), "", None),
        );
        info.param("attack", "Which attack to run.", Some(&default))
            .param("root", "A directory the plugin was granted.", Some("/"))
            .param(
                "target",
                "A path the attack aims at.",
                Some("/etc/hostname"),
            )
            .param("bytes", "How much text a size attack sends.", Some("1024"))
            .action_kind("remove-path")
            .action_kind("process-signal")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let attack = incident.param("attack").unwrap_or("none");
        let root = incident.param("root").unwrap_or("/").to_string();
        let target = incident
            .param("target")
            .unwrap_or("/etc/hostname")
            .to_string();
        let plan = Plan::new(format!("attack {attack}"));
        // A signal is sent once; asked again, there is nothing more to do.
        if incident.round > 0 && attack.ends_with("signal") {
            return Ok(Plan::new("signalled"));
        }
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
            // Time spent waiting in the host, not running wasm.
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                plan
            }
            "poll-forever" => {
                let never = wasip2::clocks::monotonic_clock::subscribe_instant(u64::MAX);
                wasip2::io::poll::poll(&[&never]);
                plan
            }
            // The named process, or its whole group, whatever else is in it.
            "group-signal" | "signal" => {
                let pid: u32 = target
                    .parse()
                    .map_err(|_| Error::Invalid("target must be a pid".into()))?;
                let process = proc::processes()?
                    .into_iter()
                    .find(|p| p.pid == pid)
                    .ok_or_else(|| Error::NotFound(format!("pid {pid}")))?;
                plan.act(Action::signal(
                    &process,
                    "TERM",
                    attack == "group-signal",
                    "hostile",
                ))
            }
            "file-locks" => plan.check(report("file-locks", proc::file_locks(&target))),
            // Answers too large to keep, one field at a time.
            "huge-error" => return Err(Error::Internal(filler(size(&incident)))),
            "huge-summary" => Plan::new(filler(size(&incident))),
            "huge-check" => plan.check(Check::pass("big", filler(size(&incident)))),
            "huge-reason" => plan.act(Action::RemovePath(RemovePath {
                path: format!("{root}/file"),
                identity: FileIdentity {
                    device: 0,
                    inode: 0,
                    size: 0,
                    mtime_ns: 0,
                },
                reason: filler(size(&incident)),
            })),
            "huge-escalate" => plan.escalate(filler(size(&incident))),
            "huge-memo" => plan.memo(filler(size(&incident))).recheck_after(1),
            "huge-log" => {
                log::info(&filler(size(&incident)));
                plan
            }
            // Many fields, each within bounds, together too large.
            "many-texts" => (0..900).fold(plan, |plan, n| {
                plan.check(Check::pass(&format!("c{n}"), filler(10_000)))
            }),
            // Claim to have used params it was never given, a huge value,
            // and far too many: the record may only show declared ones, bounded.
            "forge-params" => {
                params::used("not-declared", "/etc");
                params::used("bytes", &filler(1 << 20));
                for n in 0..1000 {
                    params::used(&format!("extra-{n}"), "forged");
                }
                plan
            }
            // Text meant to mislead whoever reads the run.
            "forge-output" => {
                log::info(FORGED);
                Plan::new(format!("summary {FORGED}"))
                    .check(Check::pass(FORGED, FORGED))
                    .act(forged_removal(
                        &format!("{root}/{FORGED}"),
                        FileIdentity {
                            device: 0,
                            inode: 0,
                            size: 0,
                            mtime_ns: 0,
                        },
                    ))
            }
            // GET each of the space-separated URLs in `target`: what came back.
            "http" => target.split_whitespace().fold(plan, |plan, url| {
                plan.check(match http::get(url, size(&incident) as u32) {
                    Ok(got) => Check::pass(
                        url,
                        format!(
                            "status {} body {} bytes truncated {}",
                            got.status,
                            got.body.len(),
                            got.truncated
                        ),
                    ),
                    Err(error) => Check::fail(url, format!("{error:?}")),
                })
            }),
            // Each of the `;`-separated PromQL queries in `target`: what came back.
            "prometheus" => target.split(';').fold(plan, |plan, promql| {
                plan.check(match prometheus::query(promql) {
                    Ok(series) => Check::pass(promql, format!("{} series", series.len())),
                    Err(error) => Check::fail(promql, format!("{error:?}")),
                })
            }),
            // Each `namespace` or `namespace/pod` in `target`: the deployments
            // it lists with what each owns, or the pod and its memory.
            "kube" => target.split_whitespace().fold(plan, |plan, place| {
                plan.check(match place.split_once('/') {
                    Some((namespace, pod)) => match kube::get_pod(namespace, pod) {
                        Ok(found) => Check::pass(
                            place,
                            format!(
                                "pod of {} memory {:?}",
                                found.deployment,
                                kube::pod_memory(namespace, pod).map(|m| m.total_bytes())
                            ),
                        ),
                        Err(error) => Check::fail(place, format!("{error:?}")),
                    },
                    None => match kube::deployments(place) {
                        Ok(found) => Check::pass(
                            place,
                            found
                                .iter()
                                .map(|d| {
                                    let pods = kube::pods(place, &d.name).map(|p| p.len());
                                    let events = kube::events(place, &d.name).map(|e| e.len());
                                    format!("{} pods {pods:?} events {events:?}", d.name)
                                })
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                        Err(error) => Check::fail(place, format!("{error:?}")),
                    },
                })
            }),
            "remember" => plan.check(remember(size(&incident) as u64)),
            other => return Err(Error::Invalid(format!("unknown attack {other:?}"))),
        })
    }
}

/// Zero-initialised memory (`.bss`) and memory from the module's image
/// (`.data`), 256 KiB and 4 KiB.
static ZEROED: [AtomicU64; 1 << 15] = [const { AtomicU64::new(0) }; 1 << 15];
static IMAGED: [AtomicU64; 512] = [const { AtomicU64::new(7) }; 512];

/// Look for `secret` where an earlier instance of this plugin wrote it, then
/// write it there: at the start, middle and end of both statics. A fresh
/// instance finds its memory as the module's image left it, so this fails
/// only if an instance's memory outlived it.
fn remember(secret: u64) -> Check {
    let places = [&ZEROED[0], &ZEROED[1 << 14], &ZEROED[(1 << 15) - 1]]
        .into_iter()
        .chain([&IMAGED[0], &IMAGED[256], &IMAGED[511]]);
    let mut found = 0;
    let mut written = 0;
    for place in places {
        found += usize::from(place.swap(secret, Ordering::SeqCst) == secret);
        written += usize::from(place.load(Ordering::SeqCst) == secret);
    }
    match found {
        0 => Check::pass("remember", format!("clean; wrote {written} of 6")),
        _ => Check::fail(
            "remember",
            format!("LEAKED {found} of 6 from an earlier instance"),
        ),
    }
}

fn size(incident: &Incident) -> usize {
    incident
        .param("bytes")
        .and_then(|b| b.parse().ok())
        .unwrap_or(1024)
}

remedy_sdk::export_plugin!(Hostile);
