//! `fs_read` and `fs_remove`: the directories a plugin may read below and
//! remove files below.

use super::super::unclean_paths;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsGrant {
    /// Directories the plugin may read below.
    #[serde(default, rename = "fs_read")]
    pub read: Vec<PathBuf>,
    /// Directories below which `remove-path` may unlink files.
    #[serde(default, rename = "fs_remove")]
    pub remove: Vec<PathBuf>,
}

impl FsGrant {
    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = unclean_paths("fs_read", &self.read);
        problems.extend(unclean_paths("fs_remove", &self.remove));
        for root in &self.remove {
            if !self.read.iter().any(|read| root.starts_with(read)) {
                problems.push(format!(
                    "grants.fs_remove = {:?} is not below any fs_read root; a plugin must be able \
                     to look at what it proposes to remove, so add it to fs_read",
                    root.display()
                ));
            }
        }
        problems
    }
}
