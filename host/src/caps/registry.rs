//! The registry of capabilities: the `registry!` macro that `caps/mod.rs`
//! calls with every capability, once. The module of each, the grants of a
//! plugin, the readers of one plugin instance and the dispatch of actions
//! are all made from that list, so a capability added to it is linked,
//! validated, listed and executed without another edit. The one other place
//! that names capabilities is [`CapAction::of`], the exhaustive mapping from
//! the contract's action kinds to the capability that carries each one out.

use super::{CapAction, Grants, Readers};
use crate::contract::Action;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Declares each `module: Capability` and makes [`Grants`], [`Readers`] and
/// [`CapAction`] from the list.
macro_rules! registry {
    ($($field:ident: $cap:ident),* $(,)?) => {
        $(pub mod $field;)*
        $(pub use $field::$cap;)*

        /// What the operator lets one plugin see and do (`[plugin.grants]`),
        /// one part per capability. Written flat: each key belongs to the
        /// capability whose name it starts with.
        #[derive(Clone, Debug, Default, PartialEq, Serialize)]
        pub struct Grants {
            $(#[serde(flatten)] pub $field: <$cap as Capability>::Grant,)*
        }

        impl Grants {
            /// Every capability's name: its WIT interface and the first word of its grant keys.
            pub const CAPABILITIES: &[&str] = &[$($cap::NAME),*];

            /// The config line that would grant the WIT interface `interface`,
            /// or `None` when it is granted (or is no capability, like `log`).
            pub fn missing_for(&self, interface: &str) -> Option<&'static str> {
                $(if interface == $cap::NAME {
                    return $cap::missing(&self.$field);
                })*
                None
            }

            /// The capabilities whose read interface these grants open.
            pub fn readable(&self) -> Vec<&'static str> {
                let mut names = Vec::new();
                $(if $cap::missing(&self.$field).is_none() {
                    names.push($cap::NAME);
                })*
                names
            }

            /// The capabilities these grants give on this node's own things:
            /// a plugin holding any of them runs only on its alert's node.
            pub fn on_this_node(&self) -> Vec<&'static str> {
                let mut names = Vec::new();
                $(if $cap::NODE_LOCAL && self.$field != Default::default() {
                    names.push($cap::NAME);
                })*
                names
            }

            /// The kinds of action these grants allow at all.
            pub fn allowed_kinds(&self) -> Vec<&'static str> {
                let mut kinds = Vec::new();
                $(kinds.extend($cap::allowed_kinds(&self.$field));)*
                kinds
            }

            /// Every problem with these grants, each naming its key.
            pub fn problems(&self) -> Vec<String> {
                let mut problems = Vec::new();
                $(problems.extend($cap::problems(&self.$field));)*
                problems
            }

            fn from_parts(mut parts: BTreeMap<&'static str, registry::GrantKeys>) -> Result<Self, String> {
                let mut grants = Grants::default();
                $(if let Some(keys) = parts.remove($cap::NAME) {
                    grants.$field = serde_json::from_value(serde_json::Value::Object(keys))
                        .map_err(|e| format!("grants: {e}"))?;
                })*
                Ok(grants)
            }
        }

        /// `[plugin.grants]` as one flat table: every capability's keys.
        impl schemars::JsonSchema for Grants {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                "Grants".into()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let mut properties = serde_json::Map::new();
                $(if let Some(serde_json::Value::Object(keys)) =
                    <$cap as Capability>::Grant::json_schema(generator).get("properties")
                {
                    properties.extend(keys.clone());
                })*
                schemars::json_schema!({
                    "type": "object",
                    "properties": properties,
                    "additionalProperties": false
                })
            }
        }

        /// The read interfaces of one plugin instance, scoped by its grants.
        pub struct Readers {
            $($field: <$cap as Capability>::Reader,)*
        }

        impl Readers {
            /// Readers scoped by `grants`, their calls going through `journal`.
            pub fn new(grants: &Grants, env: &HostEnv, journal: &journal::Journal) -> Self {
                Readers { $($field: $cap::reader(&grants.$field, env, journal.clone()),)* }
            }

            /// Link every capability's read interface.
            pub fn link<T: HasReaders + Send + 'static>(
                linker: &mut Linker<T>,
            ) -> wasmtime::Result<()> {
                $($cap::link(linker, |t: &mut T| &mut t.readers().$field)?;)*
                Ok(())
            }

            /// Every call a reader refused.
            pub fn denials(self) -> Vec<String> {
                let mut lines = Vec::new();
                $(lines.extend($cap::denials(self.$field));)*
                lines
            }
        }

        /// An action as the capability that carries it out. A read-only
        /// capability's case holds `Infallible`: it is never made.
        #[allow(dead_code)]
        pub(crate) enum CapAction<'a> {
            $($cap(<$cap as Act>::Action<'a>),)*
        }

        impl CapAction<'_> {
            /// Why `grants` do not cover this action, if they do not.
            pub(crate) fn check_grant(&self, grants: &Grants, env: &HostEnv) -> Result<(), String> {
                match self {
                    $(CapAction::$cap(action) => $cap::check_grant(action, &grants.$field, env),)*
                }
            }

            /// Re-check the object and, unless `dry_run`, act on it.
            pub(crate) fn perform(
                &self,
                grants: &Grants,
                env: &HostEnv,
                dry_run: bool,
            ) -> Result<String, Refusal> {
                match self {
                    $(CapAction::$cap(action) => {
                        $cap::perform(action, &grants.$field, env, dry_run)
                    })*
                }
            }
        }
    };
}

impl<'a> CapAction<'a> {
    /// The capability that carries out `action`. Every kind of the contract
    /// maps to exactly one (the match has no catch-all), and this is the only
    /// way to a capability's effects.
    pub(crate) fn of(action: &'a Action) -> Self {
        use super::{docker::DockerAction, kmod::KmodAction, kube::KubeAction, nomad::NomadAction};
        match action {
            Action::RemovePath(a) => CapAction::Fs(a),
            Action::NetnsDelete(a) => CapAction::Netns(a),
            Action::ProcessSignal(a) => CapAction::Proc(a),
            Action::KmodLoad(a) => CapAction::Kmod(KmodAction::Load(a)),
            Action::NbdDisconnect(a) => CapAction::Kmod(KmodAction::NbdDisconnect(a)),
            Action::NomadRestartAlloc(a) => CapAction::Nomad(NomadAction::Restart(a)),
            Action::NomadStopAlloc(a) => CapAction::Nomad(NomadAction::Stop(a)),
            Action::NomadEvaluateJob(a) => CapAction::Nomad(NomadAction::Evaluate(a)),
            Action::NomadRevertJob(a) => CapAction::Nomad(NomadAction::Revert(a)),
            Action::NomadClientGc(a) => CapAction::Nomad(NomadAction::Gc(a)),
            Action::DockerPrune(a) => CapAction::Docker(DockerAction::Prune(a)),
            Action::DockerRestartContainer(a) => CapAction::Docker(DockerAction::Restart(a)),
            Action::K8sRollbackDeployment(a) => CapAction::Kube(KubeAction::Rollback(a)),
            Action::K8sRestartDeployment(a) => CapAction::Kube(KubeAction::Restart(a)),
            Action::K8sDeletePod(a) => CapAction::Kube(KubeAction::DeletePod(a)),
        }
    }
}

/// Whatever holds a plugin instance's [`Readers`] (the engine's context).
pub trait HasReaders {
    fn readers(&mut self) -> &mut Readers;
}

pub(super) type GrantKeys = serde_json::Map<String, serde_json::Value>;

/// `[plugin.grants]` is one flat table; each key goes to the capability it
/// is named after, which then reads its own keys strictly.
impl<'de> Deserialize<'de> for Grants {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let keys = BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?;
        let mut parts: BTreeMap<&'static str, GrantKeys> = BTreeMap::new();
        for (key, value) in keys {
            let owner = owner_of(&key).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown grant `{key}`; grant keys start with a capability's name: {}",
                    Grants::CAPABILITIES.join(", ")
                ))
            })?;
            parts.entry(owner).or_default().insert(key, value);
        }
        Grants::from_parts(parts).map_err(serde::de::Error::custom)
    }
}

/// The capability a grant key belongs to: `nomad_jobs` is Nomad's.
fn owner_of(key: &str) -> Option<&'static str> {
    Grants::CAPABILITIES
        .iter()
        .copied()
        .filter(|name| {
            key.strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
        })
        .max_by_key(|name| name.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_goes_to_the_capability_it_is_named_after() {
        let grants: Grants = toml::from_str(
            r#"
            fs_read = ["/data"]
            proc = ["read"]
            proc_signals = ["TERM"]
            nomad_jobs = ["orchestrator"]
            "#,
        )
        .unwrap();
        assert_eq!(grants.fs.read, vec![std::path::PathBuf::from("/data")]);
        assert_eq!(grants.proc.signals, vec!["TERM".to_string()]);
        assert_eq!(grants.nomad.jobs.sources(), vec!["orchestrator"]);
        assert_eq!(grants.missing_for("proc"), None);
        assert_eq!(grants.missing_for("nomad"), Some(r#"nomad = ["read"]"#));
    }

    #[test]
    fn an_unknown_or_misspelt_key_is_refused_by_name() {
        for (text, named) in [
            ("fsread = []", "unknown grant `fsread`"),
            ("fs_raed = []", "unknown field `fs_raed`"),
            ("kmod_module = []", "unknown field `kmod_module`"),
        ] {
            let error = toml::from_str::<Grants>(text).unwrap_err().to_string();
            assert!(error.contains(named), "{text}: {error}");
        }
    }

    #[test]
    fn the_allowed_kinds_are_the_contracts_and_full_grants_allow_them_all() {
        let full: Grants = toml::from_str(
            r#"
            fs_read = ["/data"]
            fs_remove = ["/data"]
            proc_signals = ["TERM"]
            proc_exes = ["/bin/x"]
            nomad = ["restart", "stop", "evaluate", "revert", "gc"]
            docker = ["prune", "restart"]
            netns = ["delete"]
            netns_names = ["ns-.*"]
            kmod = ["load", "nbd-disconnect"]
            kmod_modules = ["nbd"]
            kube = ["rollback", "restart", "delete-pod"]
            "#,
        )
        .unwrap();
        let mut allowed = full.allowed_kinds();
        allowed.sort();
        let mut kinds = Action::KINDS.to_vec();
        kinds.sort();
        assert_eq!(allowed, kinds);
        assert!(Grants::default().allowed_kinds().is_empty());
    }

    #[test]
    fn grants_serialize_flat_with_their_config_keys() {
        let json = serde_json::to_value(Grants::default()).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        for key in [
            "fs_read",
            "proc_exes",
            "nomad_jobs",
            "docker_labels",
            "kmod_params",
        ] {
            assert!(
                keys.iter().any(|k| *k == key),
                "{key} missing from {keys:?}"
            );
        }
    }
}
