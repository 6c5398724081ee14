//! disk-cleanup: free space on one filesystem until its usage is back under a target.
//!
//! Owner-managed cleanup comes first, in a round of its own: Nomad's client
//! GC of terminal allocations (`nomad_gc`) and a Docker prune of stopped
//! containers and dangling images (`docker_prune`), never volumes. Whatever
//! is still needed after that is freed from files, in tiers, each oldest
//! modification first:
//! 1. leaked sandbox files (`sandbox_dirs`),
//! 2. caches (`cache_dirs`),
//! 3. rotated logs older than `log_min_age` (`log_dirs`).
//!
//! A file is never proposed when a process has it open or mapped, when it was
//! modified within `grace`, when it lives on another filesystem, when it has
//! other hard links, or when it is not a regular file (symlinks are never
//! followed). Selection stops as soon as the target is reached. After the host
//! deletes, the next round looks again and stops, or proposes more.

mod select;

use remedy_sdk::{
    Action, Check, DockerPruneTarget, Error, Incident, Plan, Plugin, PluginInfo, docker,
    format_bytes, fs, grants, node, nomad, params, parse_duration, parse_percent, proc,
};
use select::{Candidate, Skips, Tier};
use std::collections::HashSet;

struct DiskCleanup;

const TIERS: [(Tier, &str); 3] = [
    (Tier::Sandbox, "sandbox_dirs"),
    (Tier::Cache, "cache_dirs"),
    (Tier::Logs, "log_dirs"),
];

impl Plugin for DiskCleanup {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "disk-cleanup",
            env!("CARGO_PKG_VERSION"),
            "Frees space on a filesystem in tiers (leaked sandbox files, caches, rotated logs), \
             oldest first, until usage is under the target. Never touches open, mapped, recent \
             or hard-linked files, and never follows symlinks.",
        )
        .param(
            "target_used_percent",
            "Stop once the filesystem is at most this full (as df's Use%).",
            Some("80"),
        )
        .param(
            "mountpoint",
            "Filesystem to free; the alert's `mountpoint` label takes precedence.",
            Some("/"),
        )
        .param(
            "mountpoint_prefix",
            "A prefix the alert's mount points carry that this host's do not \
             (node_exporter's --path.rootfs, such as /host); removed before use.",
            Some(""),
        )
        .param(
            "sandbox_dirs",
            "Comma-separated directories of sandbox files that outlive their sandbox.",
            Some("/orchestrator/sandbox"),
        )
        .param(
            "cache_dirs",
            "Comma-separated cache directories.",
            Some("/orchestrator/template"),
        )
        .param(
            "log_dirs",
            "Comma-separated directories holding rotated logs (name ends in .N, .gz, .xz, .zst, .bz2 or .old).",
            Some("/var/lib/nomad/alloc,/var/log"),
        )
        .param(
            "grace",
            "Never touch sandbox or cache files modified more recently than this.",
            Some("1h"),
        )
        .param(
            "log_min_age",
            "Only rotated logs not modified for this long.",
            Some("7d"),
        )
        .param(
            "nomad_gc",
            "Before deleting files, ask this node's Nomad client to collect terminal allocations (true/false).",
            Some("true"),
        )
        .param(
            "docker_prune",
            "Before deleting files, prune these from the local Docker engine (comma-separated \
             stopped-containers, dangling-images, unused-images, build-cache; empty: none).",
            Some("stopped-containers,dangling-images"),
        )
        .param(
            "docker_prune_older_than",
            "Only prune Docker leftovers at least this old.",
            Some("1h"),
        )
        .action_kind("nomad-client-gc")
        .action_kind("docker-prune")
        .action_kind("remove-path")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let target = incident.param_with("target_used_percent", parse_percent)?;
        let grace = incident.param_with("grace", parse_duration)?;
        let log_min_age = incident.param_with("log_min_age", parse_duration)?;
        let mountpoint = host_mount_point(
            incident.label_or_param("mountpoint").unwrap_or("/"),
            incident.param("mountpoint_prefix").unwrap_or(""),
        );
        if incident.param("mountpoint") != Some(mountpoint.as_str()) {
            params::used("mountpoint", &mountpoint);
        }
        // Measured first, so that a directory is on it by device, not only
        // by the mount point's name, and so a full filesystem with nothing
        // to clean on it is reported rather than passed over.
        let measured = fs::usage(&mountpoint);

        let mut plan = Plan::new("");
        let mut dirs = Vec::new();
        let mut usage = None;
        for (tier, param) in TIERS {
            for dir in incident.param_list(param) {
                match fs::usage(&dir) {
                    Ok(found) if on_the_same_filesystem(&found, &measured, &mountpoint) => {
                        usage.get_or_insert(found);
                        dirs.push((tier, dir));
                    }
                    Ok(found) => {
                        plan = plan.check(Check::skipped(
                            &dir,
                            format!("on {}, not on {mountpoint}", found.mount_point),
                        ))
                    }
                    Err(Error::NotFound(_)) => {
                        plan = plan.check(Check::skipped(&dir, "not present on this host"))
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        let Some(usage) = usage else {
            return Ok(nothing_configured_on(plan, &mountpoint, measured, target));
        };

        let freed_before: u64 = incident.history.iter().map(|r| r.bytes_freed()).sum();
        let to_free = select::bytes_to_free(&usage, target);
        let percent = select::used_percent(&usage);
        plan = plan.check(usage_check(&mountpoint, &usage, target, to_free));
        if to_free == 0 {
            plan.summary = if freed_before > 0 {
                format!(
                    "target reached: {mountpoint} at {percent:.1}% after freeing {}",
                    format_bytes(freed_before)
                )
            } else {
                format!("{mountpoint} at {percent:.1}%, under the {target}% target")
            };
            return Ok(plan);
        }

        // The owners' own cleanup goes first, in a round of its own; the next
        // round measures again and picks files only for what is still needed.
        if incident.round == 0 {
            let (checks, actions) = owner_tier(&incident)?;
            plan.checks.extend(checks);
            if !actions.is_empty() {
                plan.summary = format!(
                    "{mountpoint} needs {} freed: owner-managed cleanup first ({} actions); \
                     files are chosen next round from what is still needed",
                    format_bytes(to_free),
                    actions.len()
                );
                plan.actions = actions;
                return Ok(plan);
            }
        }

        // Without knowing which files are in use nothing is safe to delete.
        let in_use: HashSet<u64> = match proc::files_in_use(usage.device) {
            Ok(scan) => {
                if !scan.uninspected_pids.is_empty() {
                    plan = plan.check(Check::warn(
                        "files in use",
                        format!(
                            "could not inspect {} process(es) (pids {:?}); the host still refuses \
                             to remove any file in use when it acts",
                            scan.uninspected_pids.len(),
                            &scan.uninspected_pids[..scan.uninspected_pids.len().min(8)]
                        ),
                    ));
                }
                scan.files.into_iter().map(|f| f.inode).collect()
            }
            Err(error) => {
                plan.summary = format!("{mountpoint} needs {} freed", format_bytes(to_free));
                return Ok(plan
                    .check(Check::fail("files in use", error.describe()))
                    .escalate("cannot tell which files are in use, so nothing is safe to delete"));
            }
        };

        let now = now_secs();
        let mut candidates: Vec<Candidate> = Vec::new();
        // A file under two configured directories (the same one in two
        // tiers, or one inside another) is planned once, in its first tier.
        let mut taken: HashSet<String> = HashSet::new();
        for (tier, dir) in &dirs {
            let mut skips = Skips::default();
            for entry in fs::walk_files(dir)? {
                if taken.contains(&entry.path) {
                    continue;
                }
                let min_age = if *tier == Tier::Logs {
                    log_min_age
                } else {
                    grace
                };
                match select::judge(*tier, &entry, usage.device, &in_use, now, min_age) {
                    Ok(()) => {
                        skips.accept();
                        taken.insert(entry.path.clone());
                        candidates.push(Candidate { tier: *tier, entry });
                    }
                    Err(reason) => skips.count(reason),
                }
            }
            plan = plan.check(Check::pass(dir, format!("{} tier: {skips}", tier.label())));
        }

        let selection = select::oldest_first(candidates, to_free);
        plan = plan.check(if selection.reaches_target {
            Check::pass(
                "selection",
                format!(
                    "{} files, {} to free, oldest first",
                    selection.files.len(),
                    format_bytes(selection.bytes)
                ),
            )
        } else {
            Check::warn(
                "selection",
                format!(
                    "all {} eligible files free only {} of the {} needed",
                    selection.files.len(),
                    format_bytes(selection.bytes),
                    format_bytes(to_free)
                ),
            )
        });

        if selection.files.is_empty() {
            plan.summary = format!(
                "{mountpoint} at {percent:.1}% and nothing is safe to delete{}",
                if freed_before > 0 {
                    format!(" after freeing {}", format_bytes(freed_before))
                } else {
                    String::new()
                }
            );
            return Ok(plan.escalate(format!(
                "{mountpoint} is {percent:.1}% used, above the {target}% target, and no file is safe to delete"
            )));
        }
        if !grants::allows("remove-path") {
            plan.summary = format!("{mountpoint} at {percent:.1}%: files could be deleted");
            return Ok(plan.escalate(format!(
                "{} files would free {}, but this plugin is granted no fs_remove",
                selection.files.len(),
                format_bytes(selection.bytes)
            )));
        }
        plan.summary = format!(
            "delete {} files to free {} on {mountpoint} ({percent:.1}% used, target {target}%)",
            selection.files.len(),
            format_bytes(selection.bytes)
        );
        for Candidate { tier, entry } in &selection.files {
            let age = now.saturating_sub(entry.identity.mtime_secs());
            plan = plan.act(Action::remove_file(
                entry,
                format!("{}, unmodified for {}", tier.name(), select::human_age(age)),
            ));
        }
        Ok(plan)
    }
}

/// How full the filesystem is, on which node, against the target, and
/// (when `to_free` is not 0) how much is to be freed.
fn usage_check(mountpoint: &str, usage: &fs::DiskUsage, target: f64, to_free: u64) -> Check {
    let to_free = if to_free > 0 {
        format!(": {} to free", format_bytes(to_free))
    } else {
        String::new()
    };
    Check::pass(
        "usage",
        format!(
            "{mountpoint} on {} is {:.1}% used ({} of {}), target {target}%{to_free}",
            node::name(),
            select::used_percent(usage),
            format_bytes(usage.used_bytes),
            format_bytes(usage.used_bytes + usage.available_bytes)
        ),
    )
}

/// The alert's mount point as this host names it: without `prefix`.
fn host_mount_point(alerted: &str, prefix: &str) -> String {
    match alerted.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() && rest.is_empty() => "/".to_string(),
        Some(rest) if !prefix.is_empty() && rest.starts_with('/') => rest.to_string(),
        _ => alerted.to_string(),
    }
}

/// Whether `found` (a configured directory's filesystem) is the one at
/// `mountpoint`: the same device when it could be measured, else the same name.
fn on_the_same_filesystem(
    found: &fs::DiskUsage,
    measured: &Result<fs::DiskUsage, Error>,
    mountpoint: &str,
) -> bool {
    match measured {
        Ok(measured) => measured.device == found.device,
        Err(_) => found.mount_point == mountpoint,
    }
}

/// No configured directory is on the filesystem: say how full it is, and
/// escalate when it is over the target or cannot be measured, since a human
/// has to free it.
fn nothing_configured_on(
    plan: Plan,
    mountpoint: &str,
    measured: Result<fs::DiskUsage, Error>,
    target: f64,
) -> Plan {
    let usage = match measured {
        Ok(usage) => usage,
        Err(error) => {
            let mut plan = plan;
            plan.summary = format!("no directory to clean is on {mountpoint}");
            return plan.escalate(format!(
                "no directory remedy may clean is on {mountpoint}, and its usage cannot be \
                 read: {}",
                error.describe()
            ));
        }
    };
    let percent = select::used_percent(&usage);
    // Nothing configured can free any of it, so no amount "to free" is given.
    let mut plan = plan.check(usage_check(mountpoint, &usage, target, 0));
    plan.summary = format!("no directory to clean is on {mountpoint} ({percent:.1}% used)");
    if select::bytes_to_free(&usage, target) == 0 {
        return plan;
    }
    plan.escalate(format!(
        "{mountpoint} is {percent:.1}% used, above the {target}% target, and no directory \
         remedy may clean is on it"
    ))
}

/// Nomad client GC and Docker prunes, as the params ask and as far as Nomad
/// and Docker can be reached: an unreachable one is a skipped check.
fn owner_tier(incident: &Incident) -> Result<(Vec<Check>, Vec<Action>), Error> {
    let mut checks = Vec::new();
    let mut actions = Vec::new();
    let gc = incident.param_with("nomad_gc", |v| {
        v.parse::<bool>()
            .map_err(|_| "expected true or false".to_string())
    })?;
    if gc && !grants::allows("nomad-client-gc") {
        checks.push(Check::skipped(
            "nomad",
            "no client GC: not granted (add \"gc\" to nomad = [...] to collect first)",
        ));
    } else if gc {
        match nomad::local_node() {
            Ok(node) => {
                checks.push(Check::pass("nomad", format!("client node {}", node.name)));
                actions.push(Action::client_gc(
                    &node,
                    "terminal allocations keep their directories until collected",
                ));
            }
            Err(error) => checks.push(Check::skipped(
                "nomad",
                format!("no client GC: {}", error.describe()),
            )),
        }
    }
    let older_than = incident.param_with("docker_prune_older_than", parse_duration)?;
    for name in incident.param_list("docker_prune") {
        let target = DockerPruneTarget::parse(&name)
            .map_err(|why| Error::Invalid(format!("parameter `docker_prune`: {why}")))?;
        if !grants::allows("docker-prune") {
            checks.push(Check::skipped(
                &format!("docker {name}"),
                "not pruned: not granted (add \"prune\" to docker = [...])",
            ));
            continue;
        }
        match docker::prune_candidates(target, older_than) {
            Ok(found) if found.is_empty() => {
                checks.push(Check::pass(&format!("docker {name}"), "nothing to prune"))
            }
            Ok(found) => {
                let bytes: u64 = found.iter().filter_map(|c| c.bytes).sum();
                checks.push(Check::warn(
                    &format!("docker {name}"),
                    format!("{} to prune, {}", found.len(), format_bytes(bytes)),
                ));
                actions.push(Action::docker_prune(
                    target,
                    older_than,
                    format!("{} {name}, {}", found.len(), format_bytes(bytes)),
                ));
            }
            Err(error) => checks.push(Check::skipped(
                &format!("docker {name}"),
                format!("not pruned: {}", error.describe()),
            )),
        }
    }
    Ok((checks, actions))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

remedy_sdk::export_plugin!(DiskCleanup);

#[cfg(test)]
mod tests {
    use super::host_mount_point;

    #[test]
    fn a_prefix_the_exporter_adds_is_removed() {
        assert_eq!(
            host_mount_point("/host/orchestrator", "/host"),
            "/orchestrator"
        );
        assert_eq!(host_mount_point("/host", "/host"), "/");
        assert_eq!(host_mount_point("/hostile", "/host"), "/hostile");
        assert_eq!(host_mount_point("/data", "/host"), "/data");
        assert_eq!(host_mount_point("/data", ""), "/data");
    }
}
