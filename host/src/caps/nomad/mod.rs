//! `nomad`: jobs and allocations seen through Nomad's HTTP API, scoped by
//! namespace and job id, and the Nomad actions the executor may perform.

mod act;
pub mod api;
pub mod client;
mod grant;
mod read;
mod service;

pub use act::NomadAction;
pub use client::{NomadClient, NomadError, NomadSettings};
pub use grant::{NomadGrant, NomadRight};
pub use read::NomadReader;
pub use service::NomadApi;
use service::segment;

use crate::caps::journal::Journal;
use super::{Act, Capability, HostEnv, Refusal};
use wasmtime::component::{HasSelf, Linker};

/// Jobs and allocations in Nomad.
pub struct Nomad;

impl Capability for Nomad {
    const NAME: &'static str = "nomad";
    const NODE_LOCAL: bool = false;
    type Grant = NomadGrant;
    type Reader = NomadReader;

    fn missing(grant: &NomadGrant) -> Option<&'static str> {
        (!grant.rights.contains(&NomadRight::Read)).then_some(r#"nomad = ["read"]"#)
    }

    fn problems(grant: &NomadGrant) -> Vec<String> {
        grant.problems()
    }

    fn reader(grant: &NomadGrant, env: &HostEnv, journal: Journal) -> NomadReader {
        let mut reader = NomadReader::new(env.nomad.clone(), grant.clone());
        reader.journal = journal;
        reader
    }

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut NomadReader,
    ) -> wasmtime::Result<()> {
        crate::contract::nomad::add_to_linker::<T, HasSelf<NomadReader>>(linker, get)
    }

    fn denials(reader: NomadReader) -> Vec<String> {
        reader.denials.into_lines()
    }
}

impl Act for Nomad {
    type Action<'a> = NomadAction<'a>;

    fn allowed_kinds(grant: &NomadGrant) -> Vec<&'static str> {
        [
            (NomadRight::Restart, "nomad-restart-alloc"),
            (NomadRight::Stop, "nomad-stop-alloc"),
            (NomadRight::Evaluate, "nomad-evaluate-job"),
            (NomadRight::Revert, "nomad-revert-job"),
            (NomadRight::Gc, "nomad-client-gc"),
        ]
        .into_iter()
        .filter(|(right, _)| grant.rights.contains(right))
        .map(|(_, kind)| kind)
        .collect()
    }

    fn check_grant(
        action: &NomadAction<'_>,
        grant: &NomadGrant,
        _: &HostEnv,
    ) -> Result<(), String> {
        act::check_grant(action, grant)
    }

    fn perform(
        action: &NomadAction<'_>,
        _: &NomadGrant,
        env: &HostEnv,
        dry_run: bool,
    ) -> Result<String, Refusal> {
        act::perform(&env.nomad, action, dry_run)
    }
}

#[cfg(test)]
mod tests {
    use super::act::check_grant;
    use super::*;
    use crate::contract::NomadClientGc;
    use crate::sys::patterns::Patterns;

    fn grant(namespaces: &[&str], jobs: &[&str]) -> NomadGrant {
        NomadGrant {
            rights: vec![NomadRight::Read, NomadRight::Restart],
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            jobs: Patterns::try_from(jobs.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap(),
        }
    }

    #[test]
    fn job_patterns_are_anchored() {
        let grant = grant(&[], &["orchestrator(-[0-9a-f]{16})?"]);
        assert!(grant.check_job("default", "orchestrator").is_ok());
        assert!(
            grant
                .check_job("default", "orchestrator-0123456789abcdef")
                .is_ok()
        );
        assert!(grant.check_job("default", "orchestrator-evil").is_err());
        assert!(grant.check_job("default", "my-orchestrator").is_err());
        assert_eq!(grant.jobs.sources(), vec!["orchestrator(-[0-9a-f]{16})?"]);
    }

    #[test]
    fn namespaces_default_to_default_only() {
        let grant = grant(&[], &[]);
        assert!(grant.check_job("default", "anything").is_ok());
        let refused = grant.check_job("prod", "anything").unwrap_err();
        assert!(refused.contains("nomad_namespaces"), "{refused}");
    }

    #[test]
    fn rights_are_checked_per_action_kind() {
        let grant = grant(&["default"], &[]);
        let gc = NomadClientGc {
            node_id: "n".into(),
            reason: String::new(),
        };
        let refused = check_grant(&NomadAction::Gc(&gc), &grant).unwrap_err();
        assert!(refused.contains("`gc`"), "{refused}");
    }

    #[test]
    fn ids_cannot_change_the_request_path() {
        assert_eq!(
            segment("../../v1/acl/tokens"),
            "..%2F..%2Fv1%2Facl%2Ftokens"
        );
        assert_eq!(segment("a?b#c"), "a%3Fb%23c");
        assert_eq!(segment("orchestrator-1f"), "orchestrator-1f");
        // Left as is, and refused whole by the client before any request.
        assert_eq!(segment(".."), "..");
    }
}
