//! `proc`, `proc_locks`, `proc_signals` and `proc_exes`: reading processes,
//! the lock files whose locks may be reported, and which processes may be
//! signalled with what.

use super::super::unclean_paths;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProcRight {
    Read,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcGrant {
    /// `["read"]` lets the plugin list processes and the files they hold.
    #[serde(default, rename = "proc")]
    pub rights: Vec<ProcRight>,
    /// Files whose locks `proc.file-locks` may report (absolute paths); a
    /// daemon's lock file tells whether it runs.
    #[serde(default, rename = "proc_locks")]
    pub locks: Vec<PathBuf>,
    /// Signals `process-signal` may send (`TERM`, `KILL`, ...).
    #[serde(default, rename = "proc_signals")]
    pub signals: Vec<String>,
    /// Executables whose processes `process-signal` may signal: absolute paths,
    /// where `*` stands for any part of one path segment (`/fc-versions/*/firecracker`).
    #[serde(default, rename = "proc_exes")]
    pub exes: Vec<PathBuf>,
}

impl ProcGrant {
    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = unclean_paths("proc_exes", &self.exes);
        problems.extend(unclean_paths("proc_locks", &self.locks));
        problems
    }
}
