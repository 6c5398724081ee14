//! One module per capability: its grant, its read interface, its actions.
//! Capabilities never call each other; the engine links their read interfaces
//! and the executor combines their actions.

pub mod fs;
pub mod log;
pub mod proc;

use serde::{Deserialize, Serialize};

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
