//! Read-only filesystem access below the roots the operator granted (`fs_read`).

use crate::Error;
pub use crate::bindings::remedy::plugin::fs::{
    DiskUsage, Entry, FileKind, read_dir, read_file, roots, stat, usage,
};

/// Every regular file below `root`, depth first. Symlinks are reported by the
/// host as symlinks and never followed, so the walk cannot leave `root`.
/// Directories that vanish during the walk are skipped.
pub fn walk_files(root: &str) -> Result<Vec<Entry>, Error> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_string()];
    while let Some(dir) = pending.pop() {
        let entries = match read_dir(&dir) {
            Ok(entries) => entries,
            Err(Error::NotFound(_)) if dir != root => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            match entry.kind {
                FileKind::Directory => pending.push(entry.path),
                FileKind::File => files.push(entry),
                FileKind::Symlink | FileKind::Other => {}
            }
        }
    }
    Ok(files)
}
