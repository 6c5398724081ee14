//! The `docker` read interface, scoped by the label selector.

use super::{DockerEngine, DockerError, DockerGrant, DockerRight, MAX_ITEMS, container_name, tags};
use crate::caps::Denials;
use crate::contract::docker::{Container, Image, PruneCandidate};
use crate::contract::{ApiError, DockerPruneTarget};
use std::collections::HashSet;
use std::sync::Arc;

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
    docker: Arc<DockerEngine>,
    grant: DockerGrant,
    pub denials: Denials,
    /// Where its calls go: the world, kept or not, or a recording.
    pub journal: crate::caps::journal::Journal,
}

impl DockerReader {
    pub fn new(docker: Arc<DockerEngine>, grant: DockerGrant) -> Self {
        DockerReader {
            docker,
            grant,
            denials: Denials::default(),
            journal: Default::default(),
        }
    }

    fn read<T>(
        &mut self,
        call: &str,
        read: impl FnOnce(&DockerEngine, &DockerGrant) -> Result<T, DockerError>,
    ) -> Result<T, ApiError> {
        let allowed = self.grant.check_right(DockerRight::Read, "read");
        self.denials.guard(call, allowed, || {
            read(&self.docker, &self.grant).map_err(to_api)
        })
    }
}

journaled! {
    "docker", DockerReader: crate::contract::docker::Host {
        fn containers(&mut self, all: bool) -> Result<Vec<Container>, ApiError> {
            self.read("docker.containers", |d, g| container_records(d, g, all))
        }

        fn images(&mut self) -> Result<Vec<Image>, ApiError> {
            self.read("docker.images", |d, _| {
                let used: HashSet<String> = d
                    .granted_containers(&DockerEngine::EVERY_CONTAINER, true, false)?
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
}

fn container_records(
    docker: &DockerEngine,
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
