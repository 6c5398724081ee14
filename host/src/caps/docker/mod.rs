//! `docker`: containers and images of the local engine, scoped by a label
//! selector, and the Docker actions the executor may perform. Volumes are
//! never touched.

mod act;
mod client;
mod grant;
mod read;

pub use act::DockerAction;
pub use client::{DockerEngine, DockerError, DockerSettings};
use client::{container_name, tags};
pub use grant::{DockerGrant, DockerRight};
pub use read::DockerReader;

use crate::caps::journal::Journal;
use super::{Act, Capability, allowed, HostEnv, Refusal};
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};

/// Containers and images of the local Docker engine.
pub struct Docker;

impl Capability for Docker {
    const NAME: &'static str = "docker";
    const NODE_LOCAL: bool = true;
    type Grant = DockerGrant;
    type Reader = DockerReader;

    fn missing(grant: &DockerGrant) -> Option<&'static str> {
        (!grant.rights.contains(&DockerRight::Read)).then_some(r#"docker = ["read"]"#)
    }

    fn problems(grant: &DockerGrant) -> Vec<String> {
        grant.problems()
    }

    fn reader(grant: &DockerGrant, env: &HostEnv, journal: Journal) -> DockerReader {
        let mut reader = DockerReader::new(env.docker.clone(), grant.clone());
        reader.journal = journal;
        reader
    }

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut DockerReader,
    ) -> wasmtime::Result<()> {
        crate::contract::docker::add_to_linker::<T, HasSelf<DockerReader>>(linker, get)
    }

    fn denials(reader: DockerReader) -> Vec<String> {
        reader.denials.into_lines()
    }
}

impl Act for Docker {
    type Action<'a> = DockerAction<'a>;

    fn allowed_kinds(grant: &DockerGrant) -> Vec<&'static str> {
        let mut kinds = allowed(grant.rights.contains(&DockerRight::Prune), "docker-prune");
        kinds.extend(allowed(
            grant.rights.contains(&DockerRight::Restart),
            "docker-restart-container",
        ));
        kinds
    }

    fn check_grant(
        action: &DockerAction<'_>,
        grant: &DockerGrant,
        env: &HostEnv,
    ) -> Result<(), String> {
        act::check_grant(&env.docker, action, grant)
    }

    fn perform(
        action: &DockerAction<'_>,
        grant: &DockerGrant,
        env: &HostEnv,
        dry_run: bool,
    ) -> Result<String, Refusal> {
        act::perform(&env.docker, action, grant, dry_run)
    }
}

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds a restarted container gets to stop before it is killed.
const RESTART_STOP_SECS: i32 = 10;
const MAX_ITEMS: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::act::check_grant;
    use super::*;
    use crate::contract::{DockerPrune, DockerPruneTarget};
    use std::collections::HashMap;

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
        let docker = DockerEngine::new(DockerSettings::default(), Default::default());
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
}
