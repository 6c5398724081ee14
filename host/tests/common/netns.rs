//! Real named network namespaces (`ip netns`) and processes inside them,
//! removed again however a test ends.

use super::Reaped;
use std::path::Path;
use std::process::Command;

pub fn sh(command: &str) {
    let status = Command::new("sh").arg("-c").arg(command).status().unwrap();
    assert!(status.success(), "`{command}` failed");
}

/// Named namespaces this test creates, removed again however it ends.
pub struct Namespaces(pub Vec<String>);

impl Namespaces {
    pub fn add(&mut self, name: &str) {
        sh(&format!(
            "ip netns del {name} 2>/dev/null; ip netns add {name}"
        ));
        if !self.0.iter().any(|n| n == name) {
            self.0.push(name.to_string());
        }
    }

    pub fn inode(name: &str) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(Path::new("/var/run/netns").join(name))
            .unwrap()
            .ino()
    }

    pub fn exists(name: &str) -> bool {
        Path::new("/var/run/netns").join(name).exists()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            if Namespaces::exists(name) {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
            }
        }
    }
}

/// `sleep` inside namespace `name`.
pub fn sleeper_in(name: &str) -> Reaped {
    let child = Command::new("ip")
        .args(["netns", "exec", name, "sleep", "300"])
        .spawn()
        .unwrap();
    // `ip netns exec` enters the namespace and then runs sleep in the same process.
    std::thread::sleep(std::time::Duration::from_millis(300));
    Reaped(child)
}
