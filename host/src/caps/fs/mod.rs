//! `fs`: reads below the granted roots, and the `remove-path` action.
//!
//! Every path a plugin names is absolute and is split into a granted root and
//! a relative rest; `..` is refused outright. The rest is resolved with
//! cap-std from a directory handle on the root, so no symlink can lead out of
//! it. Removal goes further and follows no symlink at all.

mod act;
mod grant;
mod read;

pub use grant::FsGrant;
pub use read::FsReader;

use crate::caps::journal::Journal;
use super::{Act, Capability, allowed, HostEnv, Refusal};
use crate::contract::{FileIdentity, RemovePath};
use cap_std::fs::{Metadata, MetadataExt};
use std::path::{Component, Path, PathBuf};
use wasmtime::component::{HasSelf, Linker};

/// Files below granted roots.
pub struct Fs;

impl Capability for Fs {
    const NAME: &'static str = "fs";
    const NODE_LOCAL: bool = true;
    type Grant = FsGrant;
    type Reader = FsReader;

    fn missing(grant: &FsGrant) -> Option<&'static str> {
        grant
            .read
            .is_empty()
            .then_some(r#"fs_read = ["/some/dir"]"#)
    }

    fn problems(grant: &FsGrant) -> Vec<String> {
        grant.problems()
    }

    fn reader(grant: &FsGrant, _: &HostEnv, journal: Journal) -> FsReader {
        let mut reader = FsReader::new(&grant.read);
        reader.journal = journal;
        reader
    }

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut FsReader,
    ) -> wasmtime::Result<()> {
        crate::contract::fs::add_to_linker::<T, HasSelf<FsReader>>(linker, get)
    }

    fn denials(reader: FsReader) -> Vec<String> {
        reader.denials.into_lines()
    }
}

impl Act for Fs {
    type Action<'a> = &'a RemovePath;

    fn allowed_kinds(grant: &FsGrant) -> Vec<&'static str> {
        allowed(!grant.remove.is_empty(), "remove-path")
    }

    fn check_grant(remove: &&RemovePath, grant: &FsGrant, _: &HostEnv) -> Result<(), String> {
        act::check_grant(remove, &grant.remove)
    }

    fn perform(
        remove: &&RemovePath,
        grant: &FsGrant,
        _: &HostEnv,
        dry_run: bool,
    ) -> Result<String, Refusal> {
        act::remove_file(remove, &grant.remove, dry_run)
    }
}

/// Bounds on what one call returns.
pub const MAX_DIR_ENTRIES: usize = 100_000;
pub const MAX_READ_BYTES: u32 = 1 << 20;
const MAX_PATH_BYTES: usize = 4096;

/// Split an absolute path into the longest granted root that holds it and the
/// rest relative to that root.
pub fn split_under<'r>(path: &str, roots: &'r [PathBuf]) -> Result<(&'r Path, PathBuf), String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("path longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{} contains `..`", path.display()));
    }
    roots
        .iter()
        .filter_map(|root| Some((root.as_path(), path.strip_prefix(root).ok()?)))
        .max_by_key(|(root, _)| root.as_os_str().len())
        .map(|(root, rest)| (root, rest.to_path_buf()))
        .ok_or_else(|| format!("{} is outside the granted directories", path.display()))
}

pub fn identity(meta: &Metadata) -> FileIdentity {
    FileIdentity {
        device: meta.dev(),
        inode: meta.ino(),
        size: meta.len(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
    }
}

#[cfg(test)]
mod tests {
    use super::act::check_grant as check_remove_grant;
    use super::read::unescape_mount;
    use super::*;
    use crate::contract::ApiError;
    use crate::contract::fs::FileKind;
    use crate::contract::fs::Host;

    fn roots(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn split_picks_the_deepest_root() {
        let granted = roots(&["/data", "/data/cache"]);
        let (root, rest) = split_under("/data/cache/a/b", &granted).unwrap();
        assert_eq!(
            (root, rest.as_path()),
            (Path::new("/data/cache"), Path::new("a/b"))
        );
        assert_eq!(split_under("/data", &granted).unwrap().1, PathBuf::new());
    }

    #[test]
    fn split_refuses_escapes() {
        let granted = roots(&["/data"]);
        for bad in [
            "/data/../etc/passwd",
            "/data/a/../../etc",
            "data/x",
            "../data/x",
            "/database/x",
            "/etc/passwd",
            "/data/x\0y",
            "",
        ] {
            assert!(
                split_under(bad, &granted).is_err(),
                "{bad:?} must be refused"
            );
        }
        assert!(split_under(&format!("/data/{}", "a".repeat(5000)), &granted).is_err());
    }

    #[test]
    fn remove_grant_excludes_the_root_itself() {
        let remove = |path: &str| RemovePath {
            path: path.into(),
            identity: FileIdentity {
                device: 0,
                inode: 0,
                size: 0,
                mtime_ns: 0,
            },
            reason: String::new(),
        };
        let granted = roots(&["/data/cache"]);
        assert!(check_remove_grant(&remove("/data/cache/x"), &granted).is_ok());
        assert!(check_remove_grant(&remove("/data/cache"), &granted).is_err());
        assert!(check_remove_grant(&remove("/data/other"), &granted).is_err());
    }

    #[test]
    fn symlinks_cannot_lead_out_of_a_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("file-link"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("dir-link")).unwrap();
        std::os::unix::fs::symlink("../../../../../../..", root.path().join("up")).unwrap();
        let base = root.path().display().to_string();
        let mut reader = FsReader::new(&[root.path().to_path_buf()]);

        for path in ["file-link", "dir-link/secret", "up/etc/passwd"] {
            let result = reader.read_file(format!("{base}/{path}"), 100);
            assert!(
                matches!(result, Err(ApiError::Denied(_))),
                "{path}: {result:?}"
            );
        }
        assert!(matches!(
            reader.read_dir(format!("{base}/dir-link")),
            Err(ApiError::Denied(_))
        ));
        // lstat reports the link itself, which reveals nothing of the target.
        let link = reader.stat(format!("{base}/file-link")).unwrap();
        assert_eq!(link.kind, FileKind::Symlink);
    }

    #[test]
    fn missing_roots_read_as_not_found() {
        let mut reader = FsReader::new(&roots(&["/nonexistent-remedy-root"]));
        assert!(matches!(
            reader.stat("/nonexistent-remedy-root/x".into()),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn mount_escapes_are_decoded() {
        assert_eq!(unescape_mount(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape_mount(r"/plain"), "/plain");
        assert_eq!(unescape_mount(r"/trail\04"), r"/trail\04");
    }

    #[test]
    fn usage_answers_for_mount_points_outside_the_roots_and_nothing_else() {
        let granted = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut reader = FsReader::new(&[granted.path().to_path_buf()]);
        let root = reader.usage("/".into()).expect("/ is a mount point");
        assert_eq!(root.mount_point, "/");
        assert!(root.total_bytes > 0);
        let link = outside.path().join("to-root");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let outside = outside.path().display().to_string();
        for refused in [
            reader.usage(outside.clone()).err(),
            reader.usage(link.display().to_string()).err(),
            reader.usage("/proc/self".into()).err(),
            reader.read_dir("/".into()).err(),
            reader.stat("/".into()).err(),
            reader.usage("/./".into()).err(),
        ] {
            assert!(matches!(refused, Some(ApiError::Denied(_))), "{refused:?}");
        }
        assert!(reader.usage(granted.path().display().to_string()).is_ok());
    }
}
