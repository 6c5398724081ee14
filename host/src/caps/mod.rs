//! One module per capability: its grant, its read interface, its actions.
//! Capabilities never call each other; the engine links their read interfaces
//! and the executor combines their actions.

pub mod fs;
pub mod log;
pub mod proc;

use crate::contract::ApiError;
use serde::{Deserialize, Serialize};

/// Refusals a capability made during one call into a plugin, kept (bounded)
/// so the run record shows every attempt to step outside the grants, whatever
/// the plugin itself reports.
#[derive(Debug, Default)]
pub struct Denials {
    seen: Vec<String>,
    more: u64,
}

impl Denials {
    const KEPT: usize = 100;

    /// Pass `result` through, noting it when it is a denial.
    pub fn note<T>(&mut self, interface: &str, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(ApiError::Denied(why)) = &result {
            if self.seen.len() < Self::KEPT {
                self.seen.push(format!("{interface}: {why}"));
            } else {
                self.more += 1;
            }
        }
        result
    }

    pub fn into_lines(self) -> Vec<String> {
        let mut lines = self.seen;
        if self.more > 0 {
            lines.push(format!("{} more denials", self.more));
        }
        lines
    }
}

/// What the operator lets one plugin see and do (`[plugin.grants]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Directories the plugin may read below.
    #[serde(default)]
    pub fs_read: Vec<std::path::PathBuf>,
    /// Directories below which `remove-path` may unlink files.
    #[serde(default)]
    pub fs_remove: Vec<std::path::PathBuf>,
    /// `["read"]` lets the plugin list processes and the files they hold.
    #[serde(default)]
    pub proc: Vec<proc::ProcRight>,
}

impl Grants {
    /// The config line that would grant the WIT interface `interface`, or
    /// `None` when it is granted (or needs no grant, like `log`).
    pub fn missing_for(&self, interface: &str) -> Option<&'static str> {
        match interface {
            "fs" if self.fs_read.is_empty() => Some(r#"fs_read = ["/some/dir"]"#),
            "proc" if !self.proc.contains(&proc::ProcRight::Read) => Some(r#"proc = ["read"]"#),
            _ => None,
        }
    }
}
