//! A throwaway PostgreSQL for the tests: Debian's `postgresql` server,
//! a cluster made by `initdb` in a temporary directory and run as the
//! `postgres` user on a free loopback port, one per test process, and a
//! fresh database for each store a test asks for. The server dies with the
//! test process. Without the package (`scripts/test` installs it), or
//! without root, the tests fail and say so.
#![allow(dead_code)] // the store's unit tests and each test binary use their own part

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

// A sibling module wherever this file is included: in `common` in the test
// binaries, in `store` in the store's unit tests, beside it in the serve bench.
use super::ports;

pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
    pid: Mutex<u32>,
    /// Server settings beyond the defaults, as `-c name=value`.
    settings: Vec<String>,
}

/// The cluster of this test process, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// A new, empty database on this process's shared cluster: its URL.
pub fn fresh_database() -> String {
    cluster().fresh_database()
}

fn server_bin(program: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join(program).exists())
        .collect();
    versions.sort();
    versions.pop().map(|bin| bin.join(program)).unwrap_or_else(|| {
        panic!("PostgreSQL's {program} is not installed: apt-get install postgresql (scripts/test does)")
    })
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> (u32, u32) {
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: getpwnam returns a pointer into static storage or null; it is
    // read at once, before any other call could overwrite it.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !entry.is_null(),
        "no `postgres` user: apt-get install postgresql (scripts/test does)"
    );
    // SAFETY: checked non-null above.
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

fn as_postgres(program: &Path) -> Command {
    let (uid, gid) = postgres_user();
    let mut command = Command::new(program);
    command.uid(uid).gid(gid).stdin(Stdio::null());
    command
}

impl Cluster {
    /// A new cluster of its own, for a test that stops and starts it.
    pub fn start() -> Cluster {
        Cluster::start_with(Vec::new())
    }

    /// A cluster that takes only TLS connections, with `certs`' server.crt
    /// and server.key (see `certs::make_certificates`), which it is given:
    /// PostgreSQL reads them as its own user.
    pub fn start_with_tls(certs: &Path) -> Cluster {
        let (uid, gid) = postgres_user();
        for file in [
            Path::new(""),
            Path::new("server.crt"),
            Path::new("server.key"),
        ] {
            std::os::unix::fs::chown(certs.join(file), Some(uid), Some(gid)).unwrap();
        }
        let key = certs.join("server.key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let cluster = Cluster::start_with(vec![
            "ssl=on".into(),
            format!("ssl_cert_file={}", certs.join("server.crt").display()),
            format!("ssl_key_file={}", key.display()),
        ]);
        // Plain connections are refused; only the superuser's setup stays local.
        let hba = cluster.dir.join("data/pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        cluster.psql("SELECT pg_reload_conf()");
        cluster
    }

    fn start_with(settings: Vec<String>) -> Cluster {
        assert!(
            rustix::process::geteuid().is_root(),
            "the PostgreSQL tests start a server as the postgres user, so they run as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("remedy-postgres-")
            .tempdir()
            .unwrap()
            .keep();
        let (uid, gid) = postgres_user();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        let initdb = as_postgres(&server_bin("initdb"))
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(dir.join("data"))
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let cluster = Cluster {
            port: ports::free_port(),
            dir,
            pid: Mutex::new(0),
            settings,
        };
        cluster.run_server();
        cluster
    }

    /// Start the server on the cluster's port and wait until it takes connections.
    fn run_server(&self) {
        let mut server = as_postgres(&server_bin("postgres"));
        server
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=200"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("server.log"))
                    .unwrap(),
            );
        // The server dies with the test process. The signal is asked for
        // after the switch to the postgres user, which would clear it.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            server.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // Spawned from a thread that lives as long as the process: the
        // death signal follows the thread that forked, not the process.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let child = server.spawn();
            let started = child.is_ok();
            let _ = sender.send(child.map(|c| c.id()));
            if started {
                loop {
                    std::thread::park();
                }
            }
        });
        let pid = receiver.recv().unwrap().expect("postgres starts");
        *self.pid.lock().unwrap() = pid;
        remove_at_exit(pid, &self.dir);
        self.wait_until_ready();
    }

    /// Stop the server at once, as a crash or a failover would.
    pub fn stop(&self) {
        let pid = *self.pid.lock().unwrap() as libc::pid_t;
        // SAFETY: our own child, signalled and reaped.
        unsafe {
            libc::kill(pid, libc::SIGQUIT); // immediate shutdown
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }

    /// Start the stopped server again, with the same data and port.
    pub fn restart(&self) {
        self.run_server();
    }

    /// A new, empty database on this cluster: its URL.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "remedy_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql(&format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let local = postgres::Config::new()
                .user("postgres")
                .dbname("postgres")
                .host_path(&self.dir)
                .port(self.port)
                .connect(postgres::NoTls);
            if local.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start; its log:\n{}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run one statement as the superuser, over the cluster's local socket.
    pub fn psql(&self, statement: &str) {
        let mut client = postgres::Config::new()
            .user("postgres")
            .dbname("postgres")
            .host_path(&self.dir)
            .port(self.port)
            .connect(postgres::NoTls)
            .expect("the test cluster takes connections");
        client
            .batch_execute(statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

/// Stop every server and remove its files when the test process exits.
fn remove_at_exit(pid: u32, dir: &Path) {
    static SERVERS: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());
    extern "C" fn clean_up() {
        let servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
        for (pid, dir) in servers.iter() {
            let pid = *pid as libc::pid_t;
            // SAFETY: our own children, killed and reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let mut servers = SERVERS.lock().unwrap();
    if servers.is_empty() {
        // SAFETY: registers a plain function to run at exit.
        unsafe { libc::atexit(clean_up) };
    }
    servers.push((pid, dir.to_path_buf()));
}
