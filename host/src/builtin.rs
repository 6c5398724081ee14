//! What ships inside the `remedy` binary: the first-party plugins and the
//! default config, so `remedy run disk-cleanup --dry-run` works anywhere.

/// The default config; every plugin in it is safe to dry-run on any host.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// First-party plugins built into the binary, by name.
pub const NAMES: [&str; 1] = ["disk-cleanup"];

static DISK_CLEANUP: &[u8] = include_bytes!(concat!(
    env!("REMEDY_PLUGIN_WASM_DIR"),
    "/disk_cleanup.wasm"
));

pub fn wasm(name: &str) -> Option<&'static [u8]> {
    match name {
        "disk-cleanup" => Some(DISK_CLEANUP),
        _ => None,
    }
}
