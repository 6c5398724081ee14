//! Loopback ports for the servers the tests start. The kernel may give a
//! port just released to the next bind, so two tests starting together,
//! in one process or in test binaries running side by side
//! (`scripts/run-tests`), could both be handed it: one server then cannot
//! listen, and its test talks to the other's. A port handed out is held by
//! a lock on a file named after it, in a directory every test process
//! shares, until the process that took it exits.
#![allow(dead_code)] // the store's unit tests and each test binary use their own part

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

/// A loopback address with a port no other test process holds.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A loopback port no other test process holds.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind a loopback port")
            .port();
        if hold(port) {
            return port;
        }
    }
}

/// Takes `port`'s lock for the rest of this process: false when a process,
/// this one included, holds it already.
fn hold(port: u16) -> bool {
    // Kept open, so the locks last as long as the process; the kernel drops
    // them when it exits, however it exits. The files are never removed:
    // removing one could let two processes lock two files of one name.
    static HELD: Mutex<Vec<(u16, File)>> = Mutex::new(Vec::new());
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if held.iter().any(|(taken, _)| *taken == port) {
        return false;
    }
    let dir = std::env::temp_dir().join("remedy-test-ports");
    std::fs::create_dir_all(&dir).expect("create the test ports' lock directory");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(port.to_string()))
        .expect("open a test port's lock file");
    match file.try_lock() {
        Ok(()) => held.push((port, file)),
        Err(std::fs::TryLockError::WouldBlock) => return false,
        Err(std::fs::TryLockError::Error(e)) => panic!("lock a test port's file: {e}"),
    }
    true
}
