//! `kube`: deployments, their replica sets and pods in Kubernetes, scoped
//! by namespace, deployment name and labels, and the Kubernetes actions the
//! executor may perform: a rollback, a restart, and a pod deleted with
//! preconditions. Tested against a double of the API server
//! (`tests/common/kube_double.rs`); no API server can run on CI.

mod act;
pub mod client;
mod cluster;
mod grant;
mod quantity;
mod read;

pub use act::KubeAction;
pub use client::{KubeApi, KubeError, KubeSettings};
pub use grant::{KubeGrant, KubeRight};
pub use read::KubeReader;

use super::{Act, Capability, HostEnv, Refusal};
use crate::caps::journal::Journal;
use wasmtime::component::{HasSelf, Linker};

/// Deployments, replica sets and pods in Kubernetes.
pub struct Kube;

impl Capability for Kube {
    const NAME: &'static str = "kube";
    const NODE_LOCAL: bool = false;
    type Grant = KubeGrant;
    type Reader = KubeReader;

    fn missing(grant: &KubeGrant) -> Option<&'static str> {
        (!grant.rights.contains(&KubeRight::Read)).then_some(r#"kube = ["read"]"#)
    }

    fn problems(grant: &KubeGrant) -> Vec<String> {
        grant.problems()
    }

    fn reader(grant: &KubeGrant, env: &HostEnv, journal: Journal) -> KubeReader {
        let mut reader = KubeReader::new(env.kube.clone(), grant.clone());
        reader.journal = journal;
        reader
    }

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut KubeReader,
    ) -> wasmtime::Result<()> {
        crate::contract::kube::add_to_linker::<T, HasSelf<KubeReader>>(linker, get)
    }

    fn denials(reader: KubeReader) -> Vec<String> {
        reader.denials.into_lines()
    }
}

impl Act for Kube {
    type Action<'a> = KubeAction<'a>;

    fn allowed_kinds(grant: &KubeGrant) -> Vec<&'static str> {
        [
            (KubeRight::Rollback, "k8s-rollback-deployment"),
            (KubeRight::Restart, "k8s-restart-deployment"),
            (KubeRight::DeletePod, "k8s-delete-pod"),
        ]
        .into_iter()
        .filter(|(right, _)| grant.rights.contains(right))
        .map(|(_, kind)| kind)
        .collect()
    }

    fn check_grant(action: &KubeAction<'_>, grant: &KubeGrant, _: &HostEnv) -> Result<(), String> {
        act::check_grant(action, grant)
    }

    fn perform(
        action: &KubeAction<'_>,
        grant: &KubeGrant,
        env: &HostEnv,
        dry_run: bool,
    ) -> Result<String, Refusal> {
        act::perform(&env.kube, action, grant, dry_run)
    }
}

#[cfg(test)]
mod tests {
    use super::act::check_grant;
    use super::*;
    use crate::contract::{K8sDeletePod, K8sDeploymentRef, K8sRollbackDeployment};
    use crate::sys::patterns::Patterns;
    use std::collections::BTreeMap;

    fn grant(rights: &[KubeRight], namespaces: &[&str], names: &[&str]) -> KubeGrant {
        KubeGrant {
            rights: rights.to_vec(),
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            names: Patterns::try_from(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap(),
            labels: vec!["remedy.io/managed=true".into()],
        }
    }

    fn rollback(namespace: &str, name: &str) -> K8sRollbackDeployment {
        K8sRollbackDeployment {
            deployment: K8sDeploymentRef {
                namespace: namespace.into(),
                name: name.into(),
                uid: "u".into(),
                resource_version: "1".into(),
                revision: 3,
            },
            to_revision: 2,
            to_uid: "r".into(),
            reason: String::new(),
        }
    }

    #[test]
    fn names_are_anchored_and_namespaces_default_to_default() {
        let grant = grant(&[KubeRight::Rollback], &[], &["api(-v[0-9]+)?"]);
        let check = |ns: &str, name: &str| check_grant(&KubeAction::Rollback(&rollback(ns, name)), &grant);
        assert!(check("default", "api").is_ok());
        assert!(check("default", "api-v2").is_ok());
        let refused = check("default", "api-evil").unwrap_err();
        assert!(refused.contains("kube_names"), "{refused}");
        assert!(check("default", "my-api").is_err());
        let refused = check("prod", "api").unwrap_err();
        assert!(refused.contains("kube_namespaces"), "{refused}");
    }

    #[test]
    fn each_action_needs_its_own_right() {
        let grant = grant(&[KubeRight::Read, KubeRight::Rollback], &["prod"], &[]);
        assert!(check_grant(&KubeAction::Rollback(&rollback("prod", "api")), &grant).is_ok());
        let pod = K8sDeletePod {
            namespace: "prod".into(),
            deployment: "api".into(),
            name: "api-1".into(),
            uid: "u".into(),
            resource_version: "1".into(),
            reason: String::new(),
        };
        let refused = check_grant(&KubeAction::DeletePod(&pod), &grant).unwrap_err();
        assert!(refused.contains("`delete-pod`"), "{refused}");
        assert_eq!(Kube::allowed_kinds(&grant), vec!["k8s-rollback-deployment"]);
    }

    #[test]
    fn the_label_selector_must_hold() {
        let grant = grant(&[KubeRight::Read], &["prod"], &[]);
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(grant.check_labels("prod", "api", &labels(&[("remedy.io/managed", "true")])).is_ok());
        let refused = grant
            .check_labels("prod", "api", &labels(&[("remedy.io/managed", "false")]))
            .unwrap_err();
        assert!(refused.contains("kube_labels"), "{refused}");
    }
}
