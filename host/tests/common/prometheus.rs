//! A real Prometheus (Debian's `prometheus`, installed by scripts/test)
//! scraping itself every second, with every query it answers logged.

use super::daemon::{free_addr, try_request};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "prometheus";

pub struct Prometheus {
    pub addr: SocketAddr,
    /// Every query Prometheus evaluated, one JSON line each.
    pub query_log: PathBuf,
    child: Child,
}

impl Prometheus {
    /// Start Prometheus in `dir` and wait until it has scraped itself once.
    pub fn start(dir: &Path) -> Prometheus {
        let addr = free_addr();
        let query_log = dir.join("queries.log");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  query_log_file: {}\n\
                 scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['{addr}']\n",
                query_log.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {BINARY}: {e}; install Debian's prometheus (scripts/test does)"
                )
            });
        let prometheus = Prometheus {
            addr,
            query_log,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !prometheus.has_scraped() {
            assert!(
                Instant::now() < deadline,
                "{BINARY} did not scrape itself in 60 s:\n{}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    fn has_scraped(&self) -> bool {
        matches!(
            try_request(self.addr, "GET", "/api/v1/query?query=up", &[], b""),
            Ok((200, body)) if body.contains("\"value\"")
        )
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The queries Prometheus evaluated so far.
    pub fn queries(&self) -> String {
        std::fs::read_to_string(&self.query_log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
