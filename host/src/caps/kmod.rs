//! `kmod`: kernel modules and nbd devices as sysfs shows them, loading a
//! module (`modprobe`) and disconnecting an orphaned nbd device. The sysfs
//! root and both programs come from config, so they can be pointed at a
//! prepared tree where the kernel has no modules.

use super::{Denials, Refusal};
use crate::contract::kmod::{Module, NbdDevice};
use crate::contract::{ApiError, KmodLoad, NbdDisconnect};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

const MAX_PARAMETER_BYTES: u64 = 4096;
const MAX_DEVICES: usize = 65_536;

/// `[kmod]` in the config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KmodSettings {
    /// Where sysfs is mounted.
    pub sysfs: Option<PathBuf>,
    /// Loads a module: called as `modprobe MODULE KEY=VALUE...`.
    pub modprobe: Option<PathBuf>,
    /// Disconnects a device: called as `nbd-client -d /dev/nbdN`.
    pub nbd_client: Option<PathBuf>,
    /// Where the device nodes are.
    pub dev: Option<PathBuf>,
}

impl KmodSettings {
    pub fn sysfs(&self) -> PathBuf {
        self.sysfs.clone().unwrap_or_else(|| PathBuf::from("/sys"))
    }
    fn modprobe(&self) -> PathBuf {
        self.modprobe
            .clone()
            .unwrap_or_else(|| PathBuf::from("modprobe"))
    }
    fn nbd_client(&self) -> PathBuf {
        self.nbd_client
            .clone()
            .unwrap_or_else(|| PathBuf::from("nbd-client"))
    }
    fn dev(&self) -> PathBuf {
        self.dev.clone().unwrap_or_else(|| PathBuf::from("/dev"))
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KmodRight {
    /// Link the `kmod` read interface.
    Read,
    /// `kmod-load`.
    Load,
    /// `nbd-disconnect`.
    NbdDisconnect,
}

/// The part of a plugin's grants that concerns kernel modules.
#[derive(Clone, Debug, Default)]
pub struct KmodGrant {
    pub rights: Vec<KmodRight>,
    /// Modules it may load.
    pub modules: Vec<String>,
    /// Parameters it may pass: `name` (any value) or `name=value`.
    pub parameters: Vec<String>,
}

fn valid_module(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

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
    std::fs::read_to_string("/proc/self/mountinfo")
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
}

impl KmodReader {
    pub fn new(settings: KmodSettings, grant: &KmodGrant) -> Self {
        KmodReader {
            settings,
            granted: grant.rights.contains(&KmodRight::Read),
            denials: Denials::default(),
        }
    }

    fn require_read(&mut self, call: &str) -> Result<(), ApiError> {
        self.denials.require_read(call, "kmod", self.granted)
    }
}

impl crate::contract::kmod::Host for KmodReader {
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

/// Why loading `load` is outside `grant`, if it is.
pub fn check_load_grant(load: &KmodLoad, grant: &KmodGrant) -> Result<(), String> {
    if !grant.rights.contains(&KmodRight::Load) {
        return Err(r#"no kmod `load` grant; the operator adds it to kmod = [...]"#.into());
    }
    if !valid_module(&load.module) || !grant.modules.contains(&load.module) {
        return Err(format!(
            "module {:?} is not granted (kmod_modules = {:?})",
            load.module, grant.modules
        ));
    }
    for (key, value) in &load.parameters {
        let allowed = grant
            .parameters
            .iter()
            .any(|p| p == key || *p == format!("{key}={value}"));
        let plain = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.,".contains(c))
        };
        if !allowed || !plain(key) || !plain(value) {
            return Err(format!(
                "parameter {key}={value} is not granted (kmod_params = {:?})",
                grant.parameters
            ));
        }
    }
    Ok(())
}

pub fn check_disconnect_grant(grant: &KmodGrant) -> Result<(), String> {
    if grant.rights.contains(&KmodRight::NbdDisconnect) {
        Ok(())
    } else {
        Err(r#"no kmod `nbd-disconnect` grant; the operator adds it to kmod = [...]"#.into())
    }
}

fn run(program: &Path, args: &[String]) -> Result<(), Refusal> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Refusal::Failed(format!("cannot run {}: {e}", program.display())))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Refusal::Failed(format!(
            "{} {} exited with {}: {}",
            program.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Load the module unless it is loaded already (then the plan is stale).
///
/// An effect: only the executor calls it.
pub(crate) fn load(
    settings: &KmodSettings,
    load: &KmodLoad,
    dry_run: bool,
) -> Result<String, Refusal> {
    if module(&settings.sysfs(), &load.module).is_some() {
        return Err(Refusal::Stale(format!(
            "module {} is loaded already",
            load.module
        )));
    }
    let mut args = vec![load.module.clone()];
    args.extend(load.parameters.iter().map(|(k, v)| format!("{k}={v}")));
    let line = format!("{} {}", settings.modprobe().display(), args.join(" "));
    if dry_run {
        return Ok(format!("would run {line}"));
    }
    run(&settings.modprobe(), &args)?;
    if module(&settings.sysfs(), &load.module).is_none() {
        return Err(Refusal::Failed(format!(
            "{line} succeeded, but {} does not show the module",
            settings.sysfs().join("module").join(&load.module).display()
        )));
    }
    Ok(format!("ran {line}"))
}

/// Disconnect the device if it is still the orphan the plugin saw.
///
/// An effect: only the executor calls it.
pub(crate) fn disconnect(
    settings: &KmodSettings,
    planned: &NbdDisconnect,
    dry_run: bool,
) -> Result<String, Refusal> {
    let stale = Refusal::Stale;
    let devices = nbd_devices(settings).map_err(|e| Refusal::Failed(e.to_string()))?;
    let Some(device) = devices.iter().find(|d| d.index == planned.index) else {
        return Err(stale(format!("nbd{} is gone", planned.index)));
    };
    match device.owner_pid {
        None => {
            return Err(stale(format!(
                "nbd{} is disconnected already",
                planned.index
            )));
        }
        Some(pid) if pid != planned.owner_pid => {
            return Err(stale(format!(
                "nbd{} is served by pid {pid} now, not {}",
                planned.index, planned.owner_pid
            )));
        }
        Some(_) if device.owner_alive => {
            return Err(stale(format!(
                "nbd{}'s owner {} is alive: not an orphan",
                planned.index, planned.owner_pid
            )));
        }
        Some(_) => {}
    }
    if !device.holders.is_empty() || device.mounted {
        return Err(stale(format!(
            "nbd{} is in use (holders {:?}, mounted {})",
            planned.index, device.holders, device.mounted
        )));
    }
    let node = settings.dev().join(format!("nbd{}", planned.index));
    let args = vec!["-d".to_string(), node.display().to_string()];
    if dry_run {
        return Ok(format!(
            "would run {} -d {}",
            settings.nbd_client().display(),
            node.display()
        ));
    }
    run(&settings.nbd_client(), &args)?;
    Ok(format!("disconnected {}", node.display()))
}
