//! A few MiB held in the state directory for the day its disk fills: the
//! first write that fails for want of space deletes the reserve and is tried
//! once more, so remedy can still record how its runs ended. The reserve is
//! made again when the store is next opened with room for it.

use super::sql::DbError;
use std::path::{Path, PathBuf};

/// What the reserve holds.
const BYTES: u64 = 4 << 20;

/// Where the reserve of the store in `dir` is.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join("reserve")
}

/// The reserve at `path`, made when missing. A disk too full to hold it is
/// noted, not an error: the store still opens.
pub(super) fn keep(path: PathBuf) -> PathBuf {
    if !path.exists()
        && let Err(e) = allocate(&path)
    {
        let _ = std::fs::remove_file(&path);
        tracing::warn!(
            "no room for the {BYTES}-byte reserve at {}: {e}",
            path.display()
        );
    }
    path
}

fn allocate(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // Blocks really taken, not a sparse promise: deleting it frees them.
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, BYTES)?;
    file.sync_all()
}

/// Whether `error` may be a disk out of space: SQLite's "full", or an I/O
/// error writing (which is how growing its shared memory fails). Releasing
/// the reserve for another I/O error costs nothing but the reserve.
pub(super) fn out_of_space(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{DiskFull, SystemIoFailure};
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _) if matches!(e.code, DiskFull | SystemIoFailure)
    )
}

/// The same, for a store error.
pub(super) fn is_out_of_space(error: &DbError) -> bool {
    matches!(error, DbError::Sqlite(e) if out_of_space(e))
}

/// Delete the reserve at `path`; whether there was one to give.
pub(super) fn release(path: &Path) -> bool {
    let released = std::fs::remove_file(path).is_ok();
    if released {
        tracing::error!(
            "the state store cannot write, its disk likely full: released remedy's {BYTES}-byte \
             reserve ({}) to record what is happening; free space on it",
            path.display()
        );
    }
    released
}
