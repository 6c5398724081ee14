//! `docker-prune` and `docker-restart-container`: the grant checks, and
//! each action re-checked against the engine as it is now.

use super::{DockerEngine, DockerError, DockerGrant, DockerRight, RESTART_STOP_SECS};
use crate::caps::Refusal;
use remedy_contract::format_bytes;
use crate::contract::{DockerPrune, DockerPruneTarget, DockerRestartContainer};
use bollard::query_parameters::{
    InspectContainerOptions, PruneBuildOptions, RemoveContainerOptions, RemoveImageOptions,
    RestartContainerOptions,
};
use std::collections::HashMap;
use std::time::Duration;

/// A contract action that Docker carries out.
pub enum DockerAction<'a> {
    Prune(&'a DockerPrune),
    Restart(&'a DockerRestartContainer),
}

/// Why `action` is outside `grant`, if it is. A restart names one container,
/// so its labels are looked up: outside the selector is a denial, not a
/// failure. When the engine cannot be asked, `perform` checks again.
pub(super) fn check_grant(
    docker: &DockerEngine,
    action: &DockerAction<'_>,
    grant: &DockerGrant,
) -> Result<(), String> {
    match action {
        DockerAction::Prune(prune) => {
            grant.check_right(DockerRight::Prune, "prune")?;
            // Images and build cache belong to no container, so a label
            // selector cannot scope them: their prune reaches the whole engine.
            let host_wide = prune.target != DockerPruneTarget::StoppedContainers;
            if host_wide && !grant.labels.is_empty() {
                return Err(format!(
                    "a prune of {} reaches the whole engine, but this grant is limited to \
                     containers labelled {:?} (docker_labels); grant it without docker_labels",
                    prune_target_name(prune.target),
                    grant.labels
                ));
            }
            Ok(())
        }
        DockerAction::Restart(restart) => {
            grant.check_right(DockerRight::Restart, "restart")?;
            match container_labels(docker, &restart.id) {
                Ok(labels) if !grant.selects(&labels) => Err(outside(restart, grant)),
                _ => Ok(()),
            }
        }
    }
}

fn outside(restart: &DockerRestartContainer, grant: &DockerGrant) -> String {
    format!(
        "container {} is outside the granted label selector (docker_labels = {:?})",
        restart.name, grant.labels
    )
}

fn container_labels(
    docker: &DockerEngine,
    id: &str,
) -> Result<HashMap<String, String>, DockerError> {
    let id = id.to_string();
    let inspected = docker.call(|d| async move {
        d.inspect_container(&id, None::<InspectContainerOptions>)
            .await
    })?;
    Ok(inspected.config.and_then(|c| c.labels).unwrap_or_default())
}

/// Re-check `action` against the engine as it is now and, unless `dry_run`, carry it out.
pub(super) fn perform(
    docker: &DockerEngine,
    action: &DockerAction<'_>,
    grant: &DockerGrant,
    dry_run: bool,
) -> Result<String, Refusal> {
    match action {
        DockerAction::Restart(restart) => {
            let labels = container_labels(docker, &restart.id).map_err(|e| match e.status() {
                Some(404) => Refusal::Stale(format!("container {} is gone: {e}", restart.name)),
                _ => Refusal::Failed(e.to_string()),
            })?;
            if !grant.selects(&labels) {
                return Err(Refusal::Stale(outside(restart, grant)));
            }
            if dry_run {
                return Ok(format!("would restart container {}", restart.name));
            }
            let id = restart.id.clone();
            let stopping = Duration::from_secs(RESTART_STOP_SECS as u64);
            docker
                .call_within(stopping, |d| async move {
                    d.restart_container(
                        &id,
                        Some(RestartContainerOptions {
                            t: Some(RESTART_STOP_SECS),
                            ..Default::default()
                        }),
                    )
                    .await
                })
                .map_err(|e| Refusal::Failed(e.to_string()))?;
            Ok(format!("restarted container {}", restart.name))
        }
        DockerAction::Prune(prune) => prune_now(docker, prune, grant, dry_run),
    }
}

fn prune_now(
    docker: &DockerEngine,
    prune: &DockerPrune,
    grant: &DockerGrant,
    dry_run: bool,
) -> Result<String, Refusal> {
    let failed = |e: DockerError| Refusal::Failed(e.to_string());
    let candidates = docker
        .prune_candidates(grant, prune.target, prune.older_than_secs)
        .map_err(failed)?;
    let what = prune_target_name(prune.target);
    if prune.target == DockerPruneTarget::BuildCache {
        if dry_run {
            return Ok(format!(
                "would prune build cache unused for {}s",
                prune.older_than_secs
            ));
        }
        let until = format!("{}s", prune.older_than_secs);
        let reply = docker
            .call(|d| async move {
                let filters = HashMap::from([("until".to_string(), vec![until])]);
                d.prune_build(Some(PruneBuildOptions {
                    filters: Some(filters),
                    ..Default::default()
                }))
                .await
            })
            .map_err(failed)?;
        return Ok(format!(
            "pruned build cache, {} freed",
            format_bytes(reply.space_reclaimed.unwrap_or(0).max(0) as u64)
        ));
    }
    let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
    let total: u64 = candidates.iter().filter_map(|c| c.bytes).sum();
    if dry_run {
        return Ok(format!(
            "would remove {} {what} ({}), freeing {}",
            candidates.len(),
            names.join(", "),
            format_bytes(total)
        ));
    }
    // One by one and never forced: a container started again since the
    // listing, or an image a new container now uses, is refused by the engine.
    let mut removed = Vec::new();
    let mut refused = Vec::new();
    let mut freed = 0;
    for candidate in &candidates {
        let id = candidate.id.clone();
        let result = match prune.target {
            DockerPruneTarget::StoppedContainers => docker.call(|d| async move {
                d.remove_container(&id, Some(RemoveContainerOptions::default()))
                    .await
            }),
            _ => docker.call(|d| async move {
                d.remove_image(&id, Some(RemoveImageOptions::default()), None)
                    .await
                    .map(drop)
            }),
        };
        match result {
            Ok(()) => {
                removed.push(candidate.name.as_str());
                freed += candidate.bytes.unwrap_or(0);
            }
            Err(e) => refused.push(format!("{}: {e}", candidate.name)),
        }
    }
    let summary = format!(
        "removed {} {what} ({}), {} freed",
        removed.len(),
        removed.join(", "),
        format_bytes(freed)
    );
    if refused.is_empty() {
        Ok(summary)
    } else {
        Err(Refusal::Failed(format!(
            "{summary}; not removed: {}",
            refused.join("; ")
        )))
    }
}

/// What a prune target removes, in words.
fn prune_target_name(target: DockerPruneTarget) -> &'static str {
    match target {
        DockerPruneTarget::StoppedContainers => "stopped containers",
        DockerPruneTarget::DanglingImages => "dangling images",
        DockerPruneTarget::UnusedImages => "unused images",
        DockerPruneTarget::BuildCache => "build cache",
    }
}
