//! Read-only filesystem access below the roots the operator granted (`fs_read`).
//!
//! ```no_run
//! use remedy_sdk::{Check, Error, fs, format_bytes};
//!
//! /// How full the filesystem holding `path` is, as a check.
//! fn usage_check(path: &str) -> Result<Check, Error> {
//!     let usage = fs::usage(path)?;
//!     let used = usage.used_bytes as f64 * 100.0 / usage.total_bytes.max(1) as f64;
//!     let detail = format!("{used:.1} % used, {} free", format_bytes(usage.available_bytes));
//!     Ok(if used > 90.0 { Check::warn("usage", detail) } else { Check::pass("usage", detail) })
//! }
//! ```

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
