//! A real Docker engine for one test: Debian's `dockerd` (installed by
//! `scripts/test`) on its own socket, data and exec roots, with no networking
//! and the vfs storage driver, and a test image imported from a busybox rootfs
//! (no registry is reachable).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "remedy-test/busybox:1";
const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";

pub struct Dockerd {
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Dockerd {
    /// Start an engine and import the test image; panics, saying what to
    /// install, when that cannot be done.
    pub fn start() -> Dockerd {
        assert!(
            Path::new(DOCKERD).exists() && Path::new(DOCKER).exists(),
            "{DOCKERD} and {DOCKER} are needed: install Debian's docker.io (scripts/test does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("rd")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path();
        let log = std::fs::File::create(root.join("dockerd.log")).unwrap();
        let child = Command::new(DOCKERD)
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--storage-driver=vfs"])
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("x"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", root.join("docker.sock").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let engine = Dockerd { dir, child };
        let started = Instant::now();
        while !engine.docker(&["version"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "dockerd did not come up within 60s; its log:\n{}",
                engine.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        engine.import_image();
        engine
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// The docker CLI against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .output()
            .unwrap()
    }

    /// Like `docker`, but the command must succeed; returns its stdout.
    pub fn must(&self, args: &[&str]) -> String {
        let output = self.docker(args);
        assert!(
            output.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn import_image(&self) {
        let rootfs = self.dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect(
                "busybox is needed for the test image: install busybox-static (scripts/test does)",
            );
        std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep", "true"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let tar = self.dir.path().join("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success(), "tar of the test rootfs failed");
        self.must(&["import", &tar.display().to_string(), IMAGE]);
    }

    /// A container that ran `/bin/true` and exited.
    pub fn exited(&self, name: &str, labels: &[&str]) -> String {
        let id = self.create(name, labels, &["/bin/true"]);
        self.must(&["start", "--attach", name]);
        id
    }

    /// A container running `sleep`.
    pub fn running(&self, name: &str, labels: &[&str]) -> String {
        let id = self.create(name, labels, &["/bin/sleep", "600"]);
        self.must(&["start", name]);
        id
    }

    fn create(&self, name: &str, labels: &[&str], command: &[&str]) -> String {
        let mut args = vec!["create", "--name", name, "--network", "none"];
        for label in labels {
            args.extend(["--label", label]);
        }
        args.push(IMAGE);
        args.extend(command);
        self.must(&args)
    }

    /// Names of every container, running or not.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .must(&["ps", "-a", "--format", "{{.Names}}"])
            .lines()
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the engine process this test started.
        unsafe { libc::kill(self.pid(), signal) };
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        for name in self.names_quietly() {
            let _ = self.docker(&["rm", "-f", &name]);
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dockerd {
    fn names_quietly(&self) -> Vec<String> {
        let output = self.docker(&["ps", "-aq"]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(String::from)
            .collect()
    }
}
