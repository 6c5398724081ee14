//! The netns, process and kmod actions through the executor, against real
//! network namespaces (`ip netns`), real processes, and a prepared sysfs tree
//! with stand-in modprobe and nbd-client programs (this kernel has no
//! loadable modules and no nbd).

mod common;

use common::Reaped;
use common::netns::{Namespaces, sh, sleeper_in};

use remedy::caps::kmod::KmodSettings;
use remedy::caps::netns::NetnsSettings;
use remedy::caps::{Grants, HostEnv};
use remedy::contract::{
    Action, ActionResult, ActionStatus, KmodLoad, NbdDisconnect, NetnsDelete, ProcessSignal,
};
use remedy::executor::Executor;
use remedy::store::Store;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A store with one run to hang action records on.
fn store_with_run(dir: &Path) -> Store {
    let store = Store::open(dir).unwrap();
    common::running_run(&store, "run");
    store
}

fn execute(
    store: &Store,
    grants: &Grants,
    env: &HostEnv,
    action: Action,
    dry_run: bool,
) -> ActionResult {
    let kinds: Vec<String> = remedy::contract::Action::KINDS
        .iter()
        .map(|k| k.to_string())
        .collect();
    let executor = Executor {
        store,
        grants,
        env,
        declared_kinds: &kinds,
        approved: None,
    };
    executor
        .execute("run", 0, &[action], dry_run)
        .unwrap()
        .remove(0)
}

fn netns_grants() -> Grants {
    toml::from_str(
        r#"
netns = ["read", "delete"]
netns_names = ["ns-[0-9]+"]
netns_links = ["veth-ns-[0-9]+"]
"#,
    )
    .unwrap()
}

#[test]
fn namespaces_are_listed_by_use_and_deleted_only_as_planned() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_run(dir.path());
    let env = HostEnv::default();
    let grants = netns_grants();
    let mut made = Namespaces(Vec::new());
    for name in [
        "ns-31001",
        "ns-31002",
        "ns-31004",
        "ns-31005",
        "remedy-foreign-31003",
    ] {
        made.add(name);
    }
    sh("ip link add veth-ns-31001 type veth peer name eth0 netns ns-31001");
    let _inside = sleeper_in("ns-31002");

    let listed = remedy::caps::netns::namespaces(
        Path::new("/var/run/netns"),
        Path::new("/proc"),
        &grants.netns,
    )
    .unwrap();
    let ours: Vec<(&str, bool)> = listed
        .iter()
        .filter(|n| n.name.starts_with("ns-310"))
        .map(|n| (n.name.as_str(), n.pids.is_empty()))
        .collect();
    assert_eq!(
        ours,
        [
            ("ns-31001", true),
            ("ns-31002", false),
            ("ns-31004", true),
            ("ns-31005", true)
        ]
    );
    assert!(
        !listed.iter().any(|n| n.name.starts_with("remedy-foreign")),
        "foreign names are never listed"
    );

    let delete = |name: &str, inode: u64, link: Option<&str>| {
        Action::NetnsDelete(NetnsDelete {
            name: name.into(),
            inode,
            host_link: link.map(Into::into),
            reason: "test".into(),
        })
    };
    let run = |action: Action, dry_run: bool| execute(&store, &grants, &env, action, dry_run);

    // A foreign name, or a link outside netns_links, is denied.
    let foreign = run(
        delete(
            "remedy-foreign-31003",
            Namespaces::inode("remedy-foreign-31003"),
            None,
        ),
        false,
    );
    assert_eq!(foreign.status, ActionStatus::Denied, "{foreign:?}");
    let bad_link = run(
        delete("ns-31001", Namespaces::inode("ns-31001"), Some("eth0")),
        false,
    );
    assert_eq!(bad_link.status, ActionStatus::Denied, "{bad_link:?}");
    assert!(Namespaces::exists("remedy-foreign-31003"));

    // Dry-run: planned, nothing deleted.
    let planned = run(
        delete(
            "ns-31001",
            Namespaces::inode("ns-31001"),
            Some("veth-ns-31001"),
        ),
        true,
    );
    assert_eq!(planned.status, ActionStatus::Planned, "{planned:?}");
    assert!(
        planned
            .detail
            .contains("host link veth-ns-31001, then namespace ns-31001"),
        "{planned:?}"
    );
    assert!(Namespaces::exists("ns-31001"));

    // Apply: the host link first, then the namespace.
    let done = run(
        delete(
            "ns-31001",
            Namespaces::inode("ns-31001"),
            Some("veth-ns-31001"),
        ),
        false,
    );
    assert_eq!(done.status, ActionStatus::Done, "{done:?}");
    assert!(!Namespaces::exists("ns-31001"));
    assert!(
        !Path::new("/sys/class/net/veth-ns-31001").exists(),
        "the host link is left"
    );

    // In use: refused.
    let busy = run(
        delete("ns-31002", Namespaces::inode("ns-31002"), None),
        false,
    );
    assert_eq!(busy.status, ActionStatus::Stale, "{busy:?}");
    assert!(busy.detail.contains("in use"), "{busy:?}");

    // Re-created under the same name between plan and apply: refused.
    let planned_inode = Namespaces::inode("ns-31004");
    made.add("ns-31004");
    let recreated = run(delete("ns-31004", planned_inode, None), false);
    assert_eq!(recreated.status, ActionStatus::Stale, "{recreated:?}");
    assert!(recreated.detail.contains("re-created"), "{recreated:?}");
    assert!(Namespaces::exists("ns-31004"));

    // Gains a process between plan and apply: refused.
    let planned_inode = Namespaces::inode("ns-31005");
    let _late = sleeper_in("ns-31005");
    let gained = run(delete("ns-31005", planned_inode, None), false);
    assert_eq!(gained.status, ActionStatus::Stale, "{gained:?}");
    assert!(Namespaces::exists("ns-31005"));
}

fn start_time(pid: u32) -> u64 {
    remedy::sys::procfs::start_time(Path::new("/proc"), pid).unwrap()
}

#[test]
fn signals_go_only_to_the_planned_granted_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_run(dir.path());
    let env = HostEnv::default();
    let sleep = std::fs::canonicalize("/usr/bin/sleep").unwrap();
    let grants: Grants = toml::from_str(&format!(
        "proc = [\"read\"]\nproc_signals = [\"TERM\"]\nproc_exes = [\"{}\"]\n",
        sleep.display()
    ))
    .unwrap();
    let mut child = Command::new(&sleep).arg("300").spawn().unwrap();
    let pid = child.id();
    let signal = |start: u64, exe: &Path, name: &str| {
        Action::ProcessSignal(ProcessSignal {
            pid,
            start_time: start,
            exe: exe.display().to_string(),
            signal: name.into(),
            process_group: false,
            reason: "test".into(),
        })
    };
    let run = |action: Action| execute(&store, &grants, &env, action, false);

    let not_granted = run(signal(
        start_time(pid),
        Path::new("/usr/bin/firecracker"),
        "TERM",
    ));
    assert_eq!(not_granted.status, ActionStatus::Denied, "{not_granted:?}");
    assert!(not_granted.detail.contains("proc_exes"), "{not_granted:?}");
    let kill = run(signal(start_time(pid), &sleep, "KILL"));
    assert_eq!(kill.status, ActionStatus::Denied, "{kill:?}");

    // The pid as another process would hold it: same number, another start time.
    let reused = run(signal(start_time(pid) + 1, &sleep, "TERM"));
    assert_eq!(reused.status, ActionStatus::Stale, "{reused:?}");
    assert!(
        reused.detail.contains("belongs to another process"),
        "{reused:?}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the process was signalled"
    );

    let planned_start = start_time(pid);
    let sent = run(signal(planned_start, &sleep, "TERM"));
    assert_eq!(sent.status, ActionStatus::Done, "{sent:?}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));

    // Exited since: refused, whoever has the pid now.
    let gone = run(signal(planned_start, &sleep, "TERM"));
    assert_eq!(gone.status, ActionStatus::Stale, "{gone:?}");
}

/// A sysfs tree with nbd0 served by a live process, nbd1 an orphan, nbd2 an
/// orphan something holds, nbd3 disconnected; and stand-in programs.
struct Sysfs {
    dir: tempfile::TempDir,
    _server: Reaped,
}

impl Sysfs {
    fn new() -> Sysfs {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let server = Reaped(Command::new("sleep").arg("300").spawn().unwrap());
        let mut gone = Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        for (index, pid) in [
            (0, Some(server.0.id())),
            (1, Some(dead)),
            (2, Some(dead)),
            (3, None),
        ] {
            let block = root.join(format!("sys/block/nbd{index}"));
            std::fs::create_dir_all(block.join("holders")).unwrap();
            std::fs::write(block.join("size"), "2097152\n").unwrap();
            if let Some(pid) = pid {
                std::fs::write(block.join("pid"), format!("{pid}\n")).unwrap();
            }
        }
        std::fs::create_dir_all(root.join("sys/block/nbd2/holders/dm-0")).unwrap();
        std::fs::create_dir_all(root.join("sys/module")).unwrap();
        let script = |name: &str, body: &str| {
            let path = root.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        // modprobe MODULE KEY=VALUE...: the module appears with its parameters.
        script(
            "modprobe",
            &format!(
                "m={root}/sys/module/$1; shift; mkdir -p $m/parameters\nfor kv; do echo \"${{kv#*=}}\" > $m/parameters/${{kv%%=*}}; done",
                root = root.display()
            ),
        );
        // nbd-client -d /dev/nbdN: the device is no longer connected.
        script(
            "nbd-client",
            &format!(
                "[ \"$1\" = -d ] && rm {}/sys/block/$(basename $2)/pid",
                root.display()
            ),
        );
        Sysfs {
            dir,
            _server: server,
        }
    }

    fn settings(&self) -> KmodSettings {
        let root = self.dir.path();
        KmodSettings {
            sysfs: Some(root.join("sys")),
            modprobe: Some(root.join("modprobe")),
            nbd_client: Some(root.join("nbd-client")),
            dev: None,
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }
}

#[test]
fn modules_load_only_as_allowed_and_only_orphaned_nbd_devices_disconnect() {
    let sysfs = Sysfs::new();
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_run(dir.path());
    let env = HostEnv::default().with_paths(NetnsSettings::default(), sysfs.settings());
    let grants: Grants = toml::from_str(
        r#"
kmod = ["read", "load", "nbd-disconnect"]
kmod_modules = ["nbd"]
kmod_params = ["nbds_max"]
netns = ["read"]
"#,
    )
    .unwrap();
    let run = |action: Action, dry_run: bool| execute(&store, &grants, &env, action, dry_run);

    let devices = remedy::caps::kmod::nbd_devices(&sysfs.settings()).unwrap();
    let orphans: Vec<u32> = devices
        .iter()
        .filter(|d| d.owner_pid.is_some() && !d.owner_alive && d.holders.is_empty() && !d.mounted)
        .map(|d| d.index)
        .collect();
    assert_eq!(orphans, [1], "{devices:#?}");
    assert!(
        devices[0].owner_alive && devices[2].holders == ["dm-0"] && devices[3].owner_pid.is_none()
    );

    let load = |module: &str, params: &[(&str, &str)]| {
        Action::KmodLoad(KmodLoad {
            module: module.into(),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            reason: "test".into(),
        })
    };
    assert_eq!(
        run(load("nbd", &[("max_part", "8")]), false).status,
        ActionStatus::Denied
    );
    assert_eq!(run(load("evil", &[]), false).status, ActionStatus::Denied);
    assert_eq!(
        run(load("nbd", &[("nbds_max", "4096; reboot")]), false).status,
        ActionStatus::Denied
    );
    let planned = run(load("nbd", &[("nbds_max", "4096")]), true);
    assert_eq!(planned.status, ActionStatus::Planned, "{planned:?}");
    assert!(!sysfs.path("sys/module/nbd").exists());
    let loaded = run(load("nbd", &[("nbds_max", "4096")]), false);
    assert_eq!(loaded.status, ActionStatus::Done, "{loaded:?}");
    assert_eq!(
        std::fs::read_to_string(sysfs.path("sys/module/nbd/parameters/nbds_max"))
            .unwrap()
            .trim(),
        "4096"
    );
    let module = remedy::caps::kmod::module(&sysfs.path("sys"), "nbd").unwrap();
    assert_eq!(
        module.parameters,
        [("nbds_max".to_string(), "4096".to_string())]
    );
    assert_eq!(
        run(load("nbd", &[("nbds_max", "4096")]), false).status,
        ActionStatus::Stale
    );

    let disconnect = |index: u32, owner: u32| {
        Action::NbdDisconnect(NbdDisconnect {
            index,
            owner_pid: owner,
            reason: "test".into(),
        })
    };
    let owner = |index: usize| devices[index].owner_pid.unwrap();
    let alive = run(disconnect(0, owner(0)), false);
    assert_eq!(alive.status, ActionStatus::Stale, "{alive:?}");
    let held = run(disconnect(2, owner(2)), false);
    assert_eq!(held.status, ActionStatus::Stale, "{held:?}");
    let wrong_owner = run(disconnect(1, owner(1) + 1), false);
    assert_eq!(wrong_owner.status, ActionStatus::Stale, "{wrong_owner:?}");
    let done = run(disconnect(1, owner(1)), false);
    assert_eq!(done.status, ActionStatus::Done, "{done:?}");
    assert!(!sysfs.path("sys/block/nbd1/pid").exists());
    assert!(sysfs.path("sys/block/nbd0/pid").exists() && sysfs.path("sys/block/nbd2/pid").exists());
}

/// nbd-reload end to end: the prepared sysfs tree and the Nomad test double.
#[test]
fn nbd_reload_loads_the_module_frees_orphans_and_restarts_only_this_nodes_orchestrator() {
    use common::nomad_double::NomadDouble;
    let sysfs = Sysfs::new();
    let nomad = NomadDouble::start();
    let job = "orchestrator-0123456789abcdef";
    let (here, there) = {
        let mut w = nomad.world();
        let here = w.add_node("node-1");
        let there = w.add_node("node-2");
        w.local_node = here.clone();
        w.add_job("default", job, "system", &["orchestrator"]);
        (
            w.place("default", job, &here),
            w.place("default", job, &there),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("remedy.toml");
    let write_config_granting = |params: &str, nomad_rights: &str| {
        let s = sysfs.settings();
        std::fs::write(
            &config,
            format!(
                r#"
[nomad]
address = "{}"

[kmod]
sysfs = "{}"
modprobe = "{}"
nbd_client = "{}"

[[plugin]]
name = "nbd-reload"
source = "builtin:nbd-reload"
params = {{ confirm_after = "1s"{params} }}
[plugin.grants]
kmod = ["read", "load", "nbd-disconnect"]
kmod_modules = ["nbd"]
kmod_params = ["nbds_max=4096"]
nomad = [{nomad_rights}]
nomad_jobs = ["orchestrator(-[0-9a-f]{{16}})?"]
proc = ["read"]
"#,
                nomad.address(),
                s.sysfs.unwrap().display(),
                s.modprobe.unwrap().display(),
                s.nbd_client.unwrap().display(),
            ),
        )
        .unwrap();
    };
    let write_config = |params: &str| write_config_granting(params, r#""read", "restart", "stop""#);
    let run =
        |args: &[&str]| common::run_json(&dir.path().join("state"), &config, "nbd-reload", args);
    let kinds = |run: &serde_json::Value| -> Vec<String> {
        run["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{} {}",
                    a["action"]["kind"].as_str().unwrap(),
                    a["status"].as_str().unwrap()
                )
            })
            .collect()
    };

    // Without the grants to restart the orchestrator, the fix cannot finish:
    // the plugin escalates, naming what is missing, and proposes nothing.
    write_config_granting("", r#""read""#);
    let (code, short) = run(&["--apply"]);
    assert_eq!(code, 4, "{short:#}");
    let reason = short["reason"].as_str().unwrap();
    assert!(reason.contains("nomad-restart-alloc"), "{reason}");
    assert!(short["actions"].as_array().unwrap().is_empty(), "{short:#}");
    assert!(!sysfs.path("sys/module/nbd").exists());
    assert!(nomad.world().writes().is_empty());

    // A parameter value outside the allowlist (nbds_max=4096 only) is denied.
    write_config(r#", nbds_max = "65536""#);
    let (_, denied) = run(&["--apply"]);
    assert_eq!(denied["status"], "denied", "{denied:#}");
    assert!(!sysfs.path("sys/module/nbd").exists());
    assert!(nomad.world().writes().is_empty());

    // Module missing: load it with the allowlisted parameter, restart here, confirm.
    write_config("");
    let (_, dry) = run(&["--dry-run"]);
    assert_eq!(
        kinds(&dry),
        ["kmod-load planned", "nomad-restart-alloc planned"],
        "{dry:#}"
    );
    let (code, applied) = run(&["--apply"]);
    assert_eq!(code, 0, "{applied:#}");
    assert_eq!(applied["status"], "succeeded", "{applied:#}");
    assert_eq!(
        kinds(&applied),
        ["kmod-load done", "nomad-restart-alloc done"],
        "{applied:#}"
    );
    assert_eq!(
        std::fs::read_to_string(sysfs.path("sys/module/nbd/parameters/nbds_max"))
            .unwrap()
            .trim(),
        "4096"
    );
    let restarts = |alloc: &str| nomad.world().alloc(alloc).restarts();
    assert_eq!(
        (restarts(&here), restarts(&there)),
        (1, 0),
        "only this node's allocation restarts"
    );

    // Module loaded, the orchestrator dead: only the orphan is disconnected, and the dead allocation is replaced.
    nomad.change(|w| w.alloc_mut(&here).client = "failed".into());
    let (code, second) = run(&["--apply"]);
    assert_eq!(code, 0, "{second:#}");
    assert_eq!(
        kinds(&second),
        ["nbd-disconnect done", "nomad-stop-alloc done"],
        "{second:#}"
    );
    assert!(second["actions"][0]["action"]["index"] == 1, "{second:#}");
    assert!(!sysfs.path("sys/block/nbd1/pid").exists());
    assert!(sysfs.path("sys/block/nbd0/pid").exists() && sysfs.path("sys/block/nbd2/pid").exists());
    let writes = nomad
        .world()
        .writes()
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>();
    assert!(writes.iter().all(|w| !w.contains(&there)), "{writes:?}");
}
