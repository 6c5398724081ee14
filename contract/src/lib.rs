//! remedy's plugin contract, for both of its sides: the WIT package (in
//! `wit/`, read by the host's and the SDK's bindgen) and the facts each side
//! states about it in Rust. The host and the SDK generate their own Rust
//! types from the WIT, so a fact that names those types is handed over as
//! a table: each side passes a macro of its own that turns the table into
//! code for its types. No dependencies, so it builds for plugins too.

/// The WIT package every remedy interface belongs to.
pub const PACKAGE: &str = "remedy:plugin@0.2.0";

/// The package's files, `(name, text)`: what `remedy plugins wit` prints,
/// and what a plugin in another language is built against.
pub const WIT_FILES: &[(&str, &str)] = &[
    ("world.wit", include_str!("../wit/world.wit")),
    ("types.wit", include_str!("../wit/types.wit")),
    ("log.wit", include_str!("../wit/log.wit")),
    ("node.wit", include_str!("../wit/node.wit")),
    ("grants.wit", include_str!("../wit/grants.wit")),
    ("params.wit", include_str!("../wit/params.wit")),
    ("fs.wit", include_str!("../wit/fs.wit")),
    ("proc.wit", include_str!("../wit/proc.wit")),
    ("nomad.wit", include_str!("../wit/nomad.wit")),
    ("docker.wit", include_str!("../wit/docker.wit")),
    ("netns.wit", include_str!("../wit/netns.wit")),
    ("kmod.wit", include_str!("../wit/kmod.wit")),
    ("http.wit", include_str!("../wit/http.wit")),
    ("prometheus.wit", include_str!("../wit/prometheus.wit")),
    ("kube.wit", include_str!("../wit/kube.wit")),
];

/// Gives the contract's `action` type (each side's bindgen names it
/// `Action`) `KINDS` and `kind()`, from the one table of action kinds: the
/// kind names plugins declare in `action-kinds`, operators grant and the
/// audit trail records. A table that misses a case of the type, or names
/// one it does not have, does not compile.
#[macro_export]
macro_rules! impl_action_kinds {
    ($action:ident) => {
        $crate::__impl_action_kinds! {
            $action;
            RemovePath => "remove-path",
            NetnsDelete => "netns-delete",
            ProcessSignal => "process-signal",
            KmodLoad => "kmod-load",
            NbdDisconnect => "nbd-disconnect",
            NomadRestartAlloc => "nomad-restart-alloc",
            NomadStopAlloc => "nomad-stop-alloc",
            NomadEvaluateJob => "nomad-evaluate-job",
            NomadRevertJob => "nomad-revert-job",
            NomadClientGc => "nomad-client-gc",
            DockerPrune => "docker-prune",
            DockerRestartContainer => "docker-restart-container",
            K8sRollbackDeployment => "k8s-rollback-deployment",
            K8sRestartDeployment => "k8s-restart-deployment",
            K8sDeletePod => "k8s-delete-pod",
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __impl_action_kinds {
    ($action:ident; $($variant:ident => $name:literal),* $(,)?) => {
        impl $action {
            /// Every kind of action this version of the contract has.
            pub const KINDS: &'static [&'static str] = &[$($name),*];

            /// The kind name plugins declare in `action-kinds`, operators
            /// grant and plans show.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($action::$variant(_) => $name,)*
                }
            }
        }
    };
}

/// Gives the contract's `docker-prune-target` type `ALL` and `name()`, from
/// the one table of prune targets and the names params and plans use.
#[macro_export]
macro_rules! impl_docker_prune_targets {
    ($target:ident) => {
        $crate::__impl_docker_prune_targets! {
            $target;
            StoppedContainers => "stopped-containers",
            DanglingImages => "dangling-images",
            UnusedImages => "unused-images",
            BuildCache => "build-cache",
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __impl_docker_prune_targets {
    ($target:ident; $($variant:ident => $name:literal),* $(,)?) => {
        impl $target {
            /// Every prune target, in the contract's order.
            pub const ALL: &'static [$target] = &[$($target::$variant),*];

            /// The name used in params and plans: `stopped-containers`, ...
            pub fn name(self) -> &'static str {
                match self {
                    $($target::$variant => $name,)*
                }
            }
        }
    };
}

/// Gives the contract's `error` type `describe()`, the words people read:
/// `unavailable: cannot reach Nomad`.
#[macro_export]
macro_rules! impl_error_describe {
    ($error:ident) => {
        impl $error {
            /// `invalid: parameter ...`: the kind, then the message.
            pub fn describe(&self) -> String {
                let (kind, message) = match self {
                    $error::Denied(m) => ("denied", m),
                    $error::NotFound(m) => ("not found", m),
                    $error::Invalid(m) => ("invalid", m),
                    $error::Unavailable(m) => ("unavailable", m),
                    $error::Internal(m) => ("internal error", m),
                };
                format!("{kind}: {message}")
            }
        }
    };
}

/// A byte count as people read it: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A published version is frozen (`wit/README.md`): this fingerprint of
    /// its files only changes with the version in `PACKAGE`.
    #[test]
    fn the_published_package_is_frozen() {
        let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
        for (name, text) in WIT_FILES {
            for byte in [name.as_bytes(), b"\0", text.as_bytes(), b"\0"].concat() {
                fnv = (fnv ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
            }
        }
        assert_eq!(
            (PACKAGE, format!("{fnv:#x}")),
            ("remedy:plugin@0.2.0", "0x10e86f5e68fe09e5".to_string()),
            "remedy:plugin@0.2.0 is published: change the WIT in a new version, never in place"
        );
    }

    #[test]
    fn every_wit_file_of_the_package_is_embedded_as_it_is() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = WIT_FILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
        for (name, text) in WIT_FILES {
            assert!(text.starts_with(&format!("package {PACKAGE};")), "{name}");
        }
    }

    #[test]
    fn bytes_are_shown_in_the_largest_whole_unit() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(3 << 20), "3.0 MiB");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(2 << 20), "2.0 MiB");
        assert_eq!(format_bytes(3 << 30), "3.0 GiB");
        assert_eq!(format_bytes(5 << 50), "5120.0 TiB");
    }

    /// The contract's two enums as a bindgen would make them.
    #[allow(dead_code)]
    enum Action {
        RemovePath(()),
        NetnsDelete(()),
        ProcessSignal(()),
        KmodLoad(()),
        NbdDisconnect(()),
        NomadRestartAlloc(()),
        NomadStopAlloc(()),
        NomadEvaluateJob(()),
        NomadRevertJob(()),
        NomadClientGc(()),
        DockerPrune(()),
        DockerRestartContainer(()),
        K8sRollbackDeployment(()),
        K8sRestartDeployment(()),
        K8sDeletePod(()),
    }
    crate::impl_action_kinds!(Action);

    #[derive(Clone, Copy)]
    enum DockerPruneTarget {
        StoppedContainers,
        DanglingImages,
        UnusedImages,
        BuildCache,
    }
    crate::impl_docker_prune_targets!(DockerPruneTarget);

    #[test]
    fn every_action_kind_is_named_once() {
        let mut unique = Action::KINDS.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), Action::KINDS.len());
        assert!(Action::RemovePath(()).kind() == "remove-path");
        // WIT identifiers: lowercase words of letters and digits, joined by `-`.
        assert!(Action::KINDS.iter().all(|k| {
            k.split('-').all(|word| {
                word.starts_with(|c: char| c.is_ascii_lowercase())
                    && word
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
        }));
    }

    #[test]
    fn the_tables_match_the_wit() {
        let types = include_str!("../wit/types.wit");
        for kind in Action::KINDS {
            assert!(
                types.contains(&format!("{kind}(")),
                "`{kind}` is no action case in types.wit"
            );
        }
        for target in DockerPruneTarget::ALL {
            let name = target.name();
            assert!(
                types.contains(name),
                "`{name}` is no docker-prune-target in types.wit"
            );
        }
    }
}
