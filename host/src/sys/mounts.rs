//! The mount table of remedy's mount namespace, read again only when it
//! has changed.
//!
//! Reading `/proc/self/mountinfo` makes the kernel print every mount, and
//! each dry-run that sizes a filesystem needs its mount point. The kernel
//! flags an open mountinfo with `POLLPRI` once a mount is added, removed or
//! changed in the namespace, so one file kept open and a poll that does not
//! wait tell whether the copy read last is still the table.

use rustix::event::{PollFd, PollFlags, Timespec};
use std::fs::File;
use std::io::{self, Read, Seek};
use std::sync::{Arc, Mutex, PoisonError};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The open table and the text last read from it.
struct Table {
    file: File,
    text: Arc<str>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// The text of `/proc/self/mountinfo` as it is now.
pub fn mountinfo() -> io::Result<Arc<str>> {
    let mut table = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(current) = table.as_ref()
        && !changed(&current.file)?
    {
        return Ok(current.text.clone());
    }
    // Taken out first, so that a failed read leaves nothing to trust.
    let mut file = match table.take() {
        Some(stale) => stale.file,
        None => File::open(MOUNTINFO)?,
    };
    let text: Arc<str> = read_from_start(&mut file)?.into();
    *table = Some(Table {
        file,
        text: text.clone(),
    });
    Ok(text)
}

/// Whether a mount changed since the file was opened or last polled. The
/// flag is cleared by this poll, so a change made after it, even during
/// the read that follows, is flagged again for the next call.
fn changed(file: &File) -> io::Result<bool> {
    let mut fds = [PollFd::new(file, PollFlags::PRI)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&now))?;
    Ok(fds[0].revents().intersects(PollFlags::PRI | PollFlags::ERR))
}

fn read_from_start(file: &mut File) -> io::Result<String> {
    file.rewind()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounted_at(text: &str, dir: &std::path::Path) -> bool {
        let dir = dir.to_str().unwrap();
        text.lines().any(|line| line.split(' ').nth(4) == Some(dir))
    }

    #[test]
    fn the_table_is_the_kernel_s_and_is_read_again_after_a_mount_and_an_unmount() {
        assert!(mounted_at(&mountinfo().unwrap(), std::path::Path::new("/")));

        let dir = tempfile::tempdir().unwrap();
        let tmpfs = rustix::mount::MountFlags::empty();
        rustix::mount::mount("remedy-test", dir.path(), "tmpfs", tmpfs, c"size=1m")
            .expect("mounting a tmpfs needs root, as the test suite runs");
        let mounted = mountinfo().unwrap();
        rustix::mount::unmount(dir.path(), rustix::mount::UnmountFlags::empty()).unwrap();
        assert!(
            mounted_at(&mounted, dir.path()),
            "the new mount is not in the table"
        );

        let unmounted = mountinfo().unwrap();
        assert!(
            !mounted_at(&unmounted, dir.path()),
            "the unmount is not in the table"
        );
    }
}
