//! `kmod-load` and `nbd-disconnect`: the grant checks, and the programs
//! that load a module and disconnect an orphaned device.

use super::{KmodGrant, KmodRight, KmodSettings, module, nbd_devices, valid_module};
use crate::caps::Refusal;
use crate::contract::{KmodLoad, NbdDisconnect};
use std::path::Path;
use std::process::Command;

/// A contract action that the kernel carries out.
pub enum KmodAction<'a> {
    Load(&'a KmodLoad),
    NbdDisconnect(&'a NbdDisconnect),
}

/// Why `action` is outside `grant`, if it is.
pub(super) fn check_grant(action: &KmodAction<'_>, grant: &KmodGrant) -> Result<(), String> {
    match action {
        KmodAction::Load(load) => check_load_grant(load, grant),
        KmodAction::NbdDisconnect(_) => check_disconnect_grant(grant),
    }
}

/// Why loading `load` is outside `grant`, if it is.
fn check_load_grant(load: &KmodLoad, grant: &KmodGrant) -> Result<(), String> {
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

fn check_disconnect_grant(grant: &KmodGrant) -> Result<(), String> {
    if grant.rights.contains(&KmodRight::NbdDisconnect) {
        Ok(())
    } else {
        Err(r#"no kmod `nbd-disconnect` grant; the operator adds it to kmod = [...]"#.into())
    }
}

fn run_program(program: &Path, args: &[String]) -> Result<(), Refusal> {
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
pub(super) fn load(
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
    run_program(&settings.modprobe(), &args)?;
    if module(&settings.sysfs(), &load.module).is_none() {
        return Err(Refusal::Failed(format!(
            "{line} succeeded, but {} does not show the module",
            settings.sysfs().join("module").join(&load.module).display()
        )));
    }
    Ok(format!("ran {line}"))
}

/// Disconnect the device if it is still the orphan the plugin saw.
pub(super) fn disconnect(
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
    run_program(&settings.nbd_client(), &args)?;
    Ok(format!("disconnected {}", node.display()))
}
