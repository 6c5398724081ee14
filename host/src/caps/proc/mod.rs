//! `proc`: the processes on this host and the files they hold, read from procfs.

mod act;
mod grant;
mod read;

pub use grant::{ProcGrant, ProcRight};
pub use read::{
    InUseScan, ProcReader, file_locks, files_in_use, listeners, parse_listen_line, parse_lock_line,
    parse_maps_line, processes,
};

use crate::caps::journal::Journal;
use super::{Act, Capability, allowed, HostEnv, Refusal};
use crate::contract::ProcessSignal;
use crate::sys::procfs::PROC_ROOT;
use std::path::Path;
use wasmtime::component::{HasSelf, Linker};

/// The processes on this host.
pub struct Proc;

impl Capability for Proc {
    const NAME: &'static str = "proc";
    const NODE_LOCAL: bool = true;
    type Grant = ProcGrant;
    type Reader = ProcReader;

    fn missing(grant: &ProcGrant) -> Option<&'static str> {
        (!grant.rights.contains(&ProcRight::Read)).then_some(r#"proc = ["read"]"#)
    }

    fn problems(grant: &ProcGrant) -> Vec<String> {
        grant.problems()
    }

    fn reader(grant: &ProcGrant, _: &HostEnv, journal: Journal) -> ProcReader {
        let mut reader = ProcReader::new(
            PROC_ROOT,
            grant.rights.contains(&ProcRight::Read),
            grant.locks.clone(),
        );
        reader.journal = journal;
        reader
    }

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut ProcReader,
    ) -> wasmtime::Result<()> {
        crate::contract::proc::add_to_linker::<T, HasSelf<ProcReader>>(linker, get)
    }

    fn denials(reader: ProcReader) -> Vec<String> {
        reader.denials.into_lines()
    }
}

impl Act for Proc {
    type Action<'a> = &'a ProcessSignal;

    fn allowed_kinds(grant: &ProcGrant) -> Vec<&'static str> {
        let signals = !grant.signals.is_empty() && !grant.exes.is_empty();
        allowed(signals, "process-signal")
    }

    fn check_grant(signal: &&ProcessSignal, grant: &ProcGrant, _: &HostEnv) -> Result<(), String> {
        act::check_grant(signal, &grant.signals, &grant.exes)
    }

    fn perform(
        signal: &&ProcessSignal,
        grant: &ProcGrant,
        _: &HostEnv,
        dry_run: bool,
    ) -> Result<String, Refusal> {
        act::send_signal(Path::new(PROC_ROOT), signal, &grant.exes, dry_run)
    }
}

#[cfg(test)]
mod tests {
    use super::act::exe_matches;
    use super::*;
    use crate::contract::ApiError;
    use crate::sys::procfs::{namespace_inode, parse_stat};
    use std::io;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    #[test]
    fn stat_fields_survive_hostile_command_names() {
        let stat =
            "4242 (evil) 1 2 (x) S 77 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        assert_eq!(parse_stat(stat), Some((77, 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn namespace_links() {
        assert_eq!(namespace_inode("net:[4026531840]"), Some(4026531840));
        assert_eq!(namespace_inode("net:4026531840"), None);
    }

    #[test]
    fn maps_lines() {
        let line = "7f1c2a000000-7f1c2a021000 r--p 00000000 fd:01 1311 /usr/lib/libc.so.6";
        assert_eq!(
            parse_maps_line(line),
            Some((rustix::fs::makedev(0xfd, 1), 1311))
        );
        assert_eq!(
            parse_maps_line("7ffd-7ffe rw-p 00000000 00:00 0 [stack]").map(|m| m.1),
            Some(0)
        );
        assert_eq!(parse_maps_line("short line"), None);
    }

    #[test]
    fn exe_globs_stay_within_a_segment() {
        let pattern = "/fc-versions/*/firecracker";
        assert!(exe_matches(
            pattern,
            "/fc-versions/v1.10.1_1fcdaec/firecracker"
        ));
        assert!(!exe_matches(pattern, "/fc-versions/a/b/firecracker"));
        assert!(!exe_matches(pattern, "/fc-versions/v1/firecracker2"));
        assert!(!exe_matches(pattern, "/tmp/fc-versions/v1/firecracker"));
        assert!(exe_matches("/usr/bin/sleep", "/usr/bin/sleep"));
        assert!(!exe_matches("/usr/bin/sleep", "/usr/bin/sleepy"));
        assert!(exe_matches("/opt/*-bin/fc*", "/opt/x-bin/fc-1"));
        assert!(!exe_matches("/opt/*", "/opt"));
        assert!(exe_matches("/opt/*", "/opt/"));
        assert!(exe_matches("/a/*b*b*", "/a/xbyb"));
        assert!(!exe_matches("/a/*b*b*c", "/a/xbyb"));
        let long = format!("/a/{}", "b".repeat(16 * 1024));
        assert!(!exe_matches("/a/*b*b*b*b*c", &long));
    }

    #[test]
    fn file_locks_need_the_grant_and_an_absolute_path() {
        use crate::contract::proc::Host;
        let granted = vec![PathBuf::from("/nonexistent/remedy.lock")];
        let denied = ProcReader::new(PROC_ROOT, false, granted.clone())
            .file_locks("/nonexistent/remedy.lock".into());
        assert!(matches!(denied, Err(ApiError::Denied(_))), "{denied:?}");
        let mut reader = ProcReader::new(PROC_ROOT, true, granted);
        let relative = reader.file_locks("orchestrator.lock".into());
        assert!(
            matches!(relative, Err(ApiError::Invalid(_))),
            "{relative:?}"
        );
        let missing = reader.file_locks("/nonexistent/remedy.lock".into());
        assert!(matches!(missing, Err(ApiError::NotFound(_))), "{missing:?}");
    }

    #[test]
    fn file_locks_outside_the_grant_say_nothing_of_the_file() {
        use crate::contract::proc::Host;
        let mut reader = ProcReader::new(PROC_ROOT, true, vec![PathBuf::from("/run/x.lock")]);
        let answer = |reader: &mut ProcReader, path: &str| match reader.file_locks(path.into()) {
            Err(ApiError::Denied(why)) => why.replace(path, "PATH"),
            other => panic!("{path}: {other:?}"),
        };
        let existing = answer(&mut reader, "/etc/hostname");
        let missing = answer(&mut reader, "/nonexistent/remedy.lock");
        let locked_dir = answer(&mut reader, "/proc/self/exe");
        assert_eq!(existing, missing);
        assert_eq!(existing, locked_dir);
        assert_eq!(
            reader.denials.into_lines().len(),
            3,
            "each refusal is recorded"
        );
    }

    #[test]
    fn lock_lines() {
        let (file, lock) =
            parse_lock_line("1: FLOCK  ADVISORY  WRITE 4242 fd:01:1311 0 EOF").unwrap();
        assert_eq!(file, (0xfd, 1, 1311));
        assert_eq!(
            (lock.kind.as_str(), lock.exclusive, lock.pid),
            ("flock", true, Some(4242))
        );
        let (_, ofd) = parse_lock_line("2: OFDLCK ADVISORY  READ  -1 00:2f:7 0 EOF").unwrap();
        assert_eq!(
            (ofd.kind.as_str(), ofd.exclusive, ofd.pid),
            ("ofd", false, None)
        );
        assert!(parse_lock_line("1: -> FLOCK  ADVISORY  WRITE 4243 fd:01:1311 0 EOF").is_none());
        assert!(parse_lock_line("3: LEASE  ACTIVE    READ 99 fd:01:5 0 EOF").is_none());
        assert!(parse_lock_line("garbage").is_none());
    }

    #[test]
    fn finds_a_lock_this_process_holds() {
        use rustix::fs::{FlockOperation, flock};
        let file = tempfile::NamedTempFile::new().unwrap();
        let proc = Path::new("/proc");
        assert!(file_locks(proc, file.path()).unwrap().is_empty());
        flock(file.as_file(), FlockOperation::LockExclusive).unwrap();
        let locks = file_locks(proc, file.path()).unwrap();
        assert_eq!(locks.len(), 1, "{locks:?}");
        assert_eq!(locks[0].pid, Some(std::process::id()));
        assert!(locks[0].exclusive);
        flock(file.as_file(), FlockOperation::Unlock).unwrap();
        assert!(file_locks(proc, file.path()).unwrap().is_empty());
        let gone = file_locks(proc, Path::new("/nonexistent/remedy.lock")).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id();
        let all = processes(Path::new("/proc")).unwrap();
        let own = all
            .iter()
            .find(|p| p.pid == me)
            .expect("own process listed");
        assert!(own.start_time > 0);
        assert!(!own.exe.is_empty());
        assert!(own.netns_inode > 0);
    }

    #[test]
    fn finds_a_file_this_process_holds() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let meta = file.as_file().metadata().unwrap();
        let scan = files_in_use(Path::new("/proc"), meta.dev()).unwrap();
        assert_eq!(scan.held.get(&meta.ino()), Some(&std::process::id()));
        assert!(!scan.uninspected.contains(&std::process::id()));
    }

    #[test]
    fn listen_lines_of_both_families() {
        let v4 = "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            parse_listen_line(v4, 3000),
            Some((123456, "127.0.0.1:3000".into()))
        );
        assert_eq!(parse_listen_line(v4, 3001), None, "another port");
        let established = v4.replacen(" 0A ", " 01 ", 1);
        assert_eq!(parse_listen_line(&established, 3000), None, "not listening");
        let v6 = "   1: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0";
        assert_eq!(parse_listen_line(v6, 3000), Some((777, "[::]:3000".into())));
        assert_eq!(parse_listen_line("  sl  local_address rem_address   st", 3000), None);
    }

    #[test]
    fn finds_who_listens_on_a_port_and_only_with_the_grant() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let mut reader = ProcReader::new(PROC_ROOT, true, vec![]);
        let found = crate::contract::proc::Host::listeners(&mut reader, port).unwrap();
        let me = std::process::id();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, me);
        assert_eq!(found[0].address, format!("127.0.0.1:{port}"));
        assert_eq!(
            Some(found[0].start_time),
            crate::sys::procfs::start_time(Path::new(PROC_ROOT), me)
        );
        drop(socket);
        let gone = crate::contract::proc::Host::listeners(&mut reader, port).unwrap();
        assert!(gone.is_empty(), "{gone:?}");

        let mut ungranted = ProcReader::new(PROC_ROOT, false, vec![]);
        assert!(matches!(
            crate::contract::proc::Host::listeners(&mut ungranted, port),
            Err(ApiError::Denied(_))
        ));
    }
}
