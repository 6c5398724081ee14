//! What ships inside the `remedy` binary: the first-party plugins and the
//! default config, so `remedy run disk-cleanup --dry-run` works anywhere.

use crate::engine::Wasm;

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

/// A built-in's wasm and the sha256 the build computed of it (build.rs).
macro_rules! embedded {
    ($stem:literal) => {
        Wasm::embedded(
            include_bytes!(concat!(env!("REMEDY_PLUGIN_WASM_DIR"), "/", $stem, ".wasm")),
            env!(concat!("REMEDY_PLUGIN_SHA256_", $stem)),
        )
    };
}

pub fn wasm(name: &str) -> Option<Wasm> {
    match name {
        "disk-cleanup" => Some(embedded!("disk_cleanup")),
        "nomad-restart" => Some(embedded!("nomad_restart")),
        "docker-prune" => Some(embedded!("docker_prune")),
        "nbd-reload" => Some(embedded!("nbd_reload")),
        "netns-gc" => Some(embedded!("netns_gc")),
        "diagnose" => Some(embedded!("diagnose")),
        "sandbox-reaper" => Some(embedded!("sandbox_reaper")),
        "service-restart" => Some(embedded!("service_restart")),
        "rollback" => Some(embedded!("rollback")),
        "k8s-rollback" => Some(embedded!("k8s_rollback")),
        "k8s-pod-restart" => Some(embedded!("k8s_pod_restart")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_built_in_s_digest_is_that_of_its_bytes() {
        for name in NAMES {
            let builtin = wasm(name).unwrap();
            let bytes = builtin.bytes().to_vec();
            assert_eq!(builtin.sha256(), Wasm::from(bytes).sha256(), "{name}");
        }
    }
}
