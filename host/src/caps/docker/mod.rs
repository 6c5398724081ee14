//! `docker`: containers and images of the local engine, scoped by a label
//! selector, and the Docker actions the executor may perform. Volumes are
//! never touched.

use super::{Denials, Refusal};
use crate::contract::docker::{Container, Image, PruneCandidate};
use crate::contract::{ApiError, DockerPrune, DockerPruneTarget, DockerRestartContainer};
use crate::sys::bridge::Bridge;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, ListImagesOptions, PruneBuildOptions,
    RemoveContainerOptions, RemoveImageOptions, RestartContainerOptions,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds a restarted container gets to stop before it is killed.
const RESTART_STOP_SECS: i32 = 10;
const MAX_ITEMS: usize = 10_000;

/// `[docker]` in the config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DockerSettings {
    /// The engine's unix socket.
    pub socket: Option<PathBuf>,
    /// Per request ("10s"); a stuck engine fails the call instead of hanging the run.
    pub timeout: Option<String>,
}

impl DockerSettings {
    pub fn problems(&self) -> Vec<String> {
        match &self.timeout {
            Some(t) => match humantime::parse_duration(t) {
                Ok(d) if d >= Duration::from_secs(1) => Vec::new(),
                Ok(_) => vec![format!("[docker] timeout = {t:?}: at least 1s")],
                Err(e) => vec![format!("[docker] timeout = {t:?}: {e}")],
            },
            None => Vec::new(),
        }
    }

    fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }

    fn timeout(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// What a plugin may do with Docker (`docker = [...]`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DockerRight {
    /// Link the `docker` read interface.
    Read,
    /// `docker-prune`.
    Prune,
    /// `docker-restart-container`.
    Restart,
}

/// The part of a plugin's grants that concerns Docker.
#[derive(Clone, Debug, Default)]
pub struct DockerGrant {
    pub rights: Vec<DockerRight>,
    /// `key` or `key=value`; a container must carry all of them. None: every container.
    pub labels: Vec<String>,
}

impl DockerGrant {
    fn selects(&self, labels: &HashMap<String, String>) -> bool {
        self.labels
            .iter()
            .all(|wanted| match wanted.split_once('=') {
                Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
                None => labels.contains_key(wanted),
            })
    }

    fn check_right(&self, right: DockerRight, name: &str) -> Result<(), String> {
        if self.rights.contains(&right) {
            Ok(())
        } else {
            Err(format!(
                "no Docker `{name}` grant; the operator adds it to docker = [...]"
            ))
        }
    }

    fn label_filter(&self) -> HashMap<String, Vec<String>> {
        let mut filters = HashMap::new();
        if !self.labels.is_empty() {
            filters.insert("label".to_string(), self.labels.clone());
        }
        filters
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("Docker engine at {socket}: {detail}")]
    Engine {
        socket: String,
        detail: String,
        status: Option<u16>,
    },
}

impl DockerError {
    fn status(&self) -> Option<u16> {
        match self {
            DockerError::Engine { status, .. } => *status,
        }
    }
}

/// The local engine as configured; connected (and the API version
/// negotiated) on first use.
pub struct Docker {
    settings: DockerSettings,
    client: Mutex<Option<bollard::Docker>>,
    bridge: Arc<Bridge>,
}

impl Docker {
    pub fn new(settings: DockerSettings, bridge: Arc<Bridge>) -> Self {
        Docker {
            settings,
            client: Mutex::new(None),
            bridge,
        }
    }

    fn error(&self, detail: String, status: Option<u16>) -> DockerError {
        DockerError::Engine {
            socket: self.settings.socket().display().to_string(),
            detail,
            status,
        }
    }

    fn describe_failure(&self, error: BollardError) -> DockerError {
        match error {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => self.error(format!("{status_code}: {message}"), Some(status_code)),
            BollardError::RequestTimeoutError => self.error(
                format!("no answer within {:?}", self.settings.timeout()),
                None,
            ),
            other => self.error(
                format!("{other} (is dockerd running? [docker] socket sets where remedy looks)"),
                None,
            ),
        }
    }

    /// Run one exchange with the engine, bounded by the configured timeout.
    fn call<T, F>(&self, exchange: impl FnOnce(bollard::Docker) -> F) -> Result<T, DockerError>
    where
        F: Future<Output = Result<T, BollardError>>,
    {
        self.call_within(Duration::ZERO, exchange)
    }

    /// Like `call`, for an exchange the engine itself takes `extra` longer to
    /// answer (a restart waits for the container to stop).
    fn call_within<T, F>(
        &self,
        extra: Duration,
        exchange: impl FnOnce(bollard::Docker) -> F,
    ) -> Result<T, DockerError>
    where
        F: Future<Output = Result<T, BollardError>>,
    {
        let timeout = self.settings.timeout();
        let cached = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let result = self.bridge.block_on(async {
            let client = match cached {
                Some(client) => client,
                None => {
                    let socket = self.settings.socket();
                    let client = bollard::Docker::connect_with_unix(
                        &socket.to_string_lossy(),
                        // Our own deadline below bounds each call; this one only must not cut a restart short.
                        timeout.as_secs().max(1) + RESTART_STOP_SECS as u64,
                        bollard::API_DEFAULT_VERSION,
                    )?;
                    let client = tokio::time::timeout(timeout, client.negotiate_version())
                        .await
                        .map_err(|_| BollardError::RequestTimeoutError)??;
                    *self.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
                    client
                }
            };
            tokio::time::timeout(timeout + extra, exchange(client))
                .await
                .map_err(|_| BollardError::RequestTimeoutError)?
        });
        match result {
            Ok(Ok(inner)) => inner.map_err(|e| self.describe_failure(e)),
            Ok(Err(past)) => Err(self.error(past.to_string(), None)),
            Err(why) => Err(self.error(why, None)),
        }
    }

    /// No selector: only to learn which images some container uses.
    const EVERY_CONTAINER: DockerGrant = DockerGrant {
        rights: Vec::new(),
        labels: Vec::new(),
    };

    fn granted_containers(
        &self,
        grant: &DockerGrant,
        all: bool,
        size: bool,
    ) -> Result<Vec<bollard::models::ContainerSummary>, DockerError> {
        let filters = grant.label_filter();
        let listed = self.call(|d| async move {
            d.list_containers(Some(ListContainersOptions {
                all,
                size,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
        })?;
        // The engine filtered already; check again so a misread filter cannot widen the grant.
        Ok(listed
            .into_iter()
            .filter(|c| grant.selects(c.labels.as_ref().unwrap_or(&HashMap::new())))
            .take(MAX_ITEMS)
            .collect())
    }

    fn images(&self) -> Result<Vec<bollard::models::ImageSummary>, DockerError> {
        self.call(|d| async move {
            d.list_images(Some(ListImagesOptions {
                all: false,
                ..Default::default()
            }))
            .await
        })
    }

    /// What a prune of `target` would remove now: the same answer for the
    /// plugin's preview, the dry-run and the real thing.
    pub fn prune_candidates(
        &self,
        grant: &DockerGrant,
        target: DockerPruneTarget,
        older_than_secs: u64,
    ) -> Result<Vec<PruneCandidate>, DockerError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let old_enough = |created: i64| created <= now.saturating_sub(older_than_secs as i64);
        let candidates = match target {
            DockerPruneTarget::StoppedContainers => self
                .granted_containers(grant, true, true)?
                .into_iter()
                .filter(|c| {
                    let state = c.state.map(|s| s.to_string()).unwrap_or_default();
                    matches!(state.as_str(), "exited" | "created" | "dead")
                        && old_enough(c.created.unwrap_or(i64::MAX))
                })
                .map(|c| PruneCandidate {
                    id: c.id.clone().unwrap_or_default(),
                    name: container_name(&c),
                    bytes: c.size_rw.map(|b| b.max(0) as u64),
                })
                .collect(),
            DockerPruneTarget::DanglingImages | DockerPruneTarget::UnusedImages => {
                let used: HashSet<String> = self
                    .granted_containers(&Docker::EVERY_CONTAINER, true, false)?
                    .into_iter()
                    .filter_map(|c| c.image_id)
                    .collect();
                self.images()?
                    .into_iter()
                    .filter(|i| old_enough(i.created) && !used.contains(&i.id))
                    .filter(|i| {
                        target == DockerPruneTarget::UnusedImages || tags(&i.repo_tags).is_empty()
                    })
                    .map(|i| PruneCandidate {
                        name: tags(&i.repo_tags)
                            .first()
                            .cloned()
                            .unwrap_or_else(|| short_id(&i.id)),
                        id: i.id,
                        bytes: Some(i.size.max(0) as u64),
                    })
                    .collect()
            }
            // The engine cannot list build cache on every API version, so
            // it is one item whose size is learnt when it is pruned.
            DockerPruneTarget::BuildCache => vec![PruneCandidate {
                id: "build-cache".into(),
                name: format!("build cache unused for {older_than_secs}s"),
                bytes: None,
            }],
        };
        let mut candidates: Vec<PruneCandidate> = candidates.into_iter().take(MAX_ITEMS).collect();
        candidates.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(candidates)
    }
}

fn tags(repo_tags: &[String]) -> Vec<String> {
    repo_tags
        .iter()
        .filter(|t| t.as_str() != "<none>:<none>")
        .cloned()
        .collect()
}

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn container_name(c: &bollard::models::ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| short_id(c.id.as_deref().unwrap_or_default()))
}

fn to_api(error: DockerError) -> ApiError {
    let message = error.to_string();
    match error.status() {
        Some(404) => ApiError::NotFound(message),
        Some(401 | 403) => ApiError::Denied(message),
        Some(400) => ApiError::Invalid(message),
        _ => ApiError::Unavailable(message),
    }
}

/// The `docker` read interface of one plugin instance.
pub struct DockerReader {
    docker: Arc<Docker>,
    grant: DockerGrant,
    pub denials: Denials,
}

impl DockerReader {
    pub fn new(docker: Arc<Docker>, grant: DockerGrant) -> Self {
        DockerReader {
            docker,
            grant,
            denials: Denials::default(),
        }
    }

    fn read<T>(
        &mut self,
        call: &str,
        read: impl FnOnce(&Docker, &DockerGrant) -> Result<T, DockerError>,
    ) -> Result<T, ApiError> {
        let result = self
            .grant
            .check_right(DockerRight::Read, "read")
            .map_err(ApiError::Denied)
            .and_then(|()| read(&self.docker, &self.grant).map_err(to_api));
        self.denials.note(call, result)
    }
}

impl crate::contract::docker::Host for DockerReader {
    fn containers(&mut self, all: bool) -> Result<Vec<Container>, ApiError> {
        self.read("docker.containers", |d, g| container_records(d, g, all))
    }

    fn images(&mut self) -> Result<Vec<Image>, ApiError> {
        self.read("docker.images", |d, _| {
            let used: HashSet<String> = d
                .granted_containers(&Docker::EVERY_CONTAINER, true, false)?
                .into_iter()
                .filter_map(|c| c.image_id)
                .collect();
            Ok(d.images()?
                .into_iter()
                .take(MAX_ITEMS)
                .map(|i| Image {
                    in_use: used.contains(&i.id),
                    tags: tags(&i.repo_tags),
                    size_bytes: i.size.max(0) as u64,
                    created_secs: i.created,
                    id: i.id,
                })
                .collect())
        })
    }

    fn prune_candidates(
        &mut self,
        target: DockerPruneTarget,
        older_than_secs: u64,
    ) -> Result<Vec<PruneCandidate>, ApiError> {
        self.read("docker.prune-candidates", |d, g| {
            d.prune_candidates(g, target, older_than_secs)
        })
    }
}

fn container_records(
    docker: &Docker,
    grant: &DockerGrant,
    all: bool,
) -> Result<Vec<Container>, DockerError> {
    Ok(docker
        .granted_containers(grant, all, false)?
        .into_iter()
        .map(|c| {
            let mut labels: Vec<(String, String)> =
                c.labels.clone().unwrap_or_default().into_iter().collect();
            labels.sort();
            Container {
                name: container_name(&c),
                id: c.id.unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                created_secs: c.created.unwrap_or_default(),
                labels,
            }
        })
        .collect())
}

/// A contract action that Docker carries out.
pub enum DockerAction<'a> {
    Prune(&'a DockerPrune),
    Restart(&'a DockerRestartContainer),
}

/// Why `action` is outside `grant`, if it is. A restart names one container,
/// so its labels are looked up: outside the selector is a denial, not a
/// failure. When the engine cannot be asked, `perform` checks again.
pub fn check_grant(
    docker: &Docker,
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

fn container_labels(docker: &Docker, id: &str) -> Result<HashMap<String, String>, DockerError> {
    let id = id.to_string();
    let inspected = docker.call(|d| async move {
        d.inspect_container(&id, None::<InspectContainerOptions>)
            .await
    })?;
    Ok(inspected.config.and_then(|c| c.labels).unwrap_or_default())
}

/// Re-check `action` against the engine as it is now and, unless `dry_run`, carry it out.
///
/// An effect: only the executor calls it.
pub(crate) fn perform(
    docker: &Docker,
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
    docker: &Docker,
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
            bytes(reply.space_reclaimed.unwrap_or(0).max(0) as u64)
        ));
    }
    let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
    let total: u64 = candidates.iter().filter_map(|c| c.bytes).sum();
    if dry_run {
        return Ok(format!(
            "would remove {} {what} ({}), freeing {}",
            candidates.len(),
            names.join(", "),
            bytes(total)
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
        bytes(freed)
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

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_needs_every_label() {
        let grant = DockerGrant {
            rights: vec![DockerRight::Read],
            labels: vec!["remedy.managed=true".into(), "team".into()],
        };
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert!(grant.selects(&labels(&[("remedy.managed", "true"), ("team", "x")])));
        assert!(!grant.selects(&labels(&[("remedy.managed", "true")])));
        assert!(!grant.selects(&labels(&[("remedy.managed", "yes"), ("team", "x")])));
        assert!(DockerGrant::default().selects(&labels(&[])));
    }

    #[test]
    fn a_label_scoped_grant_prunes_only_containers() {
        let docker = Docker::new(DockerSettings::default(), Default::default());
        let prune = |target| DockerPrune {
            target,
            older_than_secs: 0,
            reason: String::new(),
        };
        let scoped = DockerGrant {
            rights: vec![DockerRight::Read, DockerRight::Prune],
            labels: vec!["remedy.managed=true".into()],
        };
        let whole = DockerGrant {
            labels: Vec::new(),
            ..scoped.clone()
        };
        let check = |grant: &DockerGrant, target| {
            let action = prune(target);
            check_grant(&docker, &DockerAction::Prune(&action), grant)
        };
        assert!(check(&scoped, DockerPruneTarget::StoppedContainers).is_ok());
        for host_wide in [
            DockerPruneTarget::DanglingImages,
            DockerPruneTarget::UnusedImages,
            DockerPruneTarget::BuildCache,
        ] {
            let refused = check(&scoped, host_wide).unwrap_err();
            assert!(refused.contains("reaches the whole engine"), "{refused}");
            assert!(check(&whole, host_wide).is_ok());
        }
    }

    #[test]
    fn dangling_tags_are_no_tags() {
        assert!(tags(&["<none>:<none>".into()]).is_empty());
        assert_eq!(tags(&["a:1".into()]), vec!["a:1".to_string()]);
    }

    #[test]
    fn sizes_read_like_df() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
