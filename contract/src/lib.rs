//! remedy's plugin contract, for both of its sides: the WIT package (in
//! `wit/`, read by the host's and the SDK's bindgen) and the facts each side
//! states about it in Rust. The host and the SDK generate their own Rust
//! types from the WIT, so a fact that names those types is handed over as
//! a table: each side passes a macro of its own that turns the table into
//! code for its types. No dependencies, so it builds for plugins too.

/// The WIT package every remedy interface belongs to.
pub const PACKAGE: &str = "remedy:plugin@0.1.0";

/// Calls `$emit! { Variant => "kind-name", ... }` with every action of the
/// contract: the `action` variant case and the kind name plugins declare in
/// `action-kinds`, operators grant and the audit trail records.
#[macro_export]
macro_rules! with_action_kinds {
    ($emit:ident) => {
        $emit! {
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
        }
    };
}

/// Calls `$emit! { Variant => "target-name", ... }` with every
/// `docker-prune-target`: the enum case and the name used in params and plans.
#[macro_export]
macro_rules! with_docker_prune_targets {
    ($emit:ident) => {
        $emit! {
            StoppedContainers => "stopped-containers",
            DanglingImages => "dangling-images",
            UnusedImages => "unused-images",
            BuildCache => "build-cache",
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

    #[test]
    fn every_action_kind_is_named_once() {
        macro_rules! names {
            ($($variant:ident => $name:literal),* $(,)?) => { [$($name),*] };
        }
        let kinds = with_action_kinds!(names);
        let mut unique = kinds.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), kinds.len());
        assert!(
            kinds
                .iter()
                .all(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        );
    }

    #[test]
    fn the_tables_match_the_wit() {
        let types = include_str!("../wit/types.wit");
        macro_rules! names {
            ($($variant:ident => $name:literal),* $(,)?) => { [$($name),*] };
        }
        for kind in with_action_kinds!(names) {
            assert!(
                types.contains(&format!("{kind}(")),
                "`{kind}` is no action case in types.wit"
            );
        }
        for target in with_docker_prune_targets!(names) {
            assert!(
                types.contains(target),
                "`{target}` is no docker-prune-target in types.wit"
            );
        }
    }
}
