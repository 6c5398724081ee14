//! What ships inside the `remedy` binary: the first-party plugins and the
//! default config, so `remedy run disk-cleanup --dry-run` works anywhere.

/// The default config; every plugin in it is safe to dry-run on any host.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// First-party plugins built into the binary, by name.
pub const NAMES: [&str; 11] = [
    "disk-cleanup",
    "nomad-restart",
    "docker-prune",
    "nbd-reload",
    "netns-gc",
    "diagnose",
    "sandbox-reaper",
    "service-restart",
    "rollback",
    "k8s-rollback",
    "k8s-pod-restart",
];

macro_rules! plugin_wasm {
    ($file:literal) => {
        include_bytes!(concat!(env!("REMEDY_PLUGIN_WASM_DIR"), "/", $file))
    };
}

pub fn wasm(name: &str) -> Option<&'static [u8]> {
    match name {
        "disk-cleanup" => Some(plugin_wasm!("disk_cleanup.wasm")),
        "nomad-restart" => Some(plugin_wasm!("nomad_restart.wasm")),
        "docker-prune" => Some(plugin_wasm!("docker_prune.wasm")),
        "nbd-reload" => Some(plugin_wasm!("nbd_reload.wasm")),
        "netns-gc" => Some(plugin_wasm!("netns_gc.wasm")),
        "diagnose" => Some(plugin_wasm!("diagnose.wasm")),
        "sandbox-reaper" => Some(plugin_wasm!("sandbox_reaper.wasm")),
        "service-restart" => Some(plugin_wasm!("service_restart.wasm")),
        "rollback" => Some(plugin_wasm!("rollback.wasm")),
        "k8s-rollback" => Some(plugin_wasm!("k8s_rollback.wasm")),
        "k8s-pod-restart" => Some(plugin_wasm!("k8s_pod_restart.wasm")),
        _ => None,
    }
}
