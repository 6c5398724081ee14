//! The local Docker engine as this host configures it, connected on first
//! use, and the listings both reads and actions start from.

use super::{DEFAULT_SOCKET, DEFAULT_TIMEOUT, DockerGrant, MAX_ITEMS, RESTART_STOP_SECS};
use crate::contract::DockerPruneTarget;
use crate::contract::docker::PruneCandidate;
use crate::sys::bridge::Bridge;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `[docker]` in the config.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, schemars::JsonSchema)]
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

    pub(super) fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(DEFAULT_TIMEOUT)
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
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            DockerError::Engine { status, .. } => *status,
        }
    }
}

/// The local engine as configured; connected (and the API version
/// negotiated) on first use.
pub struct DockerEngine {
    settings: DockerSettings,
    client: Mutex<Option<bollard::Docker>>,
    bridge: Arc<Bridge>,
}

impl DockerEngine {
    pub fn new(settings: DockerSettings, bridge: Arc<Bridge>) -> Self {
        DockerEngine {
            settings,
            client: Mutex::new(None),
            bridge,
        }
    }

    pub(super) fn error(&self, detail: String, status: Option<u16>) -> DockerError {
        DockerError::Engine {
            socket: self.settings.socket().display().to_string(),
            detail,
            status,
        }
    }

    pub(super) fn describe_failure(&self, error: BollardError) -> DockerError {
        match error {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => self.error(format!("{status_code}: {message}"), Some(status_code)),
            BollardError::RequestTimeoutError => self.error(
                format!(
                    "no answer within {}",
                    humantime::format_duration(self.settings.timeout())
                ),
                None,
            ),
            other => self.error(
                format!("{other} (is dockerd running? [docker] socket sets where remedy looks)"),
                None,
            ),
        }
    }

    /// Run one exchange with the engine, bounded by the configured timeout.
    pub(super) fn call<T, F>(
        &self,
        exchange: impl FnOnce(bollard::Docker) -> F,
    ) -> Result<T, DockerError>
    where
        F: Future<Output = Result<T, BollardError>>,
    {
        self.call_within(Duration::ZERO, exchange)
    }

    /// Like `call`, for an exchange the engine itself takes `extra` longer to
    /// answer (a restart waits for the container to stop).
    pub(super) fn call_within<T, F>(
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
    pub(super) const EVERY_CONTAINER: DockerGrant = DockerGrant {
        rights: Vec::new(),
        labels: Vec::new(),
    };

    pub(super) fn granted_containers(
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

    pub(super) fn images(&self) -> Result<Vec<bollard::models::ImageSummary>, DockerError> {
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
                    .granted_containers(&DockerEngine::EVERY_CONTAINER, true, false)?
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

pub(super) fn tags(repo_tags: &[String]) -> Vec<String> {
    repo_tags
        .iter()
        .filter(|t| t.as_str() != "<none>:<none>")
        .cloned()
        .collect()
}

pub(super) fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

pub(super) fn container_name(c: &bollard::models::ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| short_id(c.id.as_deref().unwrap_or_default()))
}
