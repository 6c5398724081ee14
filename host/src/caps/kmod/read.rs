//! The `kmod` read interface: modules and nbd devices as sysfs shows them.

use super::{KmodGrant, KmodRight, KmodSettings, valid_module};
use crate::caps::Denials;
use crate::contract::ApiError;
use crate::contract::kmod::{Module, NbdDevice};
use std::path::Path;

const MAX_PARAMETER_BYTES: u64 = 4096;
const MAX_DEVICES: usize = 65_536;

fn read_trimmed(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_PARAMETER_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text.trim().to_string())
}

/// The module `name` if sysfs shows it loaded, with its parameters.
pub fn module(sysfs: &Path, name: &str) -> Option<Module> {
    if !valid_module(name) {
        return None;
    }
    let dir = sysfs.join("module").join(name);
    if !dir.is_dir() {
        return None;
    }
    let mut parameters: Vec<(String, String)> = std::fs::read_dir(dir.join("parameters"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let key = e.file_name().to_str()?.to_string();
            Some((key, read_trimmed(&e.path())?))
        })
        .collect();
    parameters.sort();
    Some(Module {
        name: name.to_string(),
        parameters,
    })
}

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

fn mounted_devices() -> Vec<String> {
    crate::sys::mounts::mountinfo()
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            // After the " - " separator: fstype, then the mount source.
            let (_, tail) = line.split_once(" - ")?;
            tail.split_whitespace().nth(1).map(String::from)
        })
        .collect()
}

/// Every `nbdN` in sysfs, by index.
pub fn nbd_devices(settings: &KmodSettings) -> std::io::Result<Vec<NbdDevice>> {
    let block = settings.sysfs().join("block");
    let mounted = mounted_devices();
    let mut devices = Vec::new();
    for entry in std::fs::read_dir(&block)? {
        let entry = entry?;
        let Some(index) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("nbd"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        let owner_pid = read_trimmed(&dir.join("pid")).and_then(|p| p.parse().ok());
        let mut holders: Vec<String> = std::fs::read_dir(dir.join("holders"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|h| h.file_name().to_str().map(String::from))
            .collect();
        holders.sort();
        let node = settings.dev().join(format!("nbd{index}"));
        devices.push(NbdDevice {
            index,
            owner_alive: owner_pid.is_some_and(alive),
            owner_pid,
            size_sectors: read_trimmed(&dir.join("size"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            holders,
            mounted: mounted.iter().any(|m| Path::new(m) == node),
        });
        if devices.len() >= MAX_DEVICES {
            break;
        }
    }
    devices.sort_by_key(|d| d.index);
    Ok(devices)
}

/// The `kmod` read interface of one plugin instance.
pub struct KmodReader {
    settings: KmodSettings,
    granted: bool,
    pub denials: Denials,
    /// Where its calls go: the world, kept or not, or a recording.
    pub journal: crate::caps::journal::Journal,
}

impl KmodReader {
    pub fn new(settings: KmodSettings, grant: &KmodGrant) -> Self {
        KmodReader {
            settings,
            granted: grant.rights.contains(&KmodRight::Read),
            denials: Denials::default(),
            journal: Default::default(),
        }
    }

    fn require_read(&mut self, call: &str) -> Result<(), ApiError> {
        self.denials.require_read(call, "kmod", self.granted)
    }
}

journaled! {
    "kmod", KmodReader: crate::contract::kmod::Host {
        fn loaded_module(&mut self, name: String) -> Result<Option<Module>, ApiError> {
            self.require_read("kmod.module")?;
            Ok(module(&self.settings.sysfs(), &name))
        }

        fn nbd_devices(&mut self) -> Result<Vec<NbdDevice>, ApiError> {
            self.require_read("kmod.nbd-devices")?;
            nbd_devices(&self.settings).map_err(|e| {
                ApiError::NotFound(format!("{}/block: {e}", self.settings.sysfs().display()))
            })
        }
    }
}
