//! A real Prometheus (Debian's `prometheus`, installed by scripts/test)
//! scraping itself every second, with every query it answers logged.

use super::daemon::try_request;
use super::ports::free_addr;
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

/// More for Prometheus to do than scrape itself.
#[derive(Default)]
pub struct Setup<'a> {
    /// `(job, address, instance label)` of each further target.
    pub targets: &'a [(&'a str, SocketAddr, &'a str)],
    /// A rules file, evaluated every second.
    pub rules: Option<&'a Path>,
    /// Where firing and resolved alerts go.
    pub alertmanager: Option<SocketAddr>,
}

impl Prometheus {
    /// Start Prometheus in `dir` and wait until it has scraped itself once.
    pub fn start(dir: &Path) -> Prometheus {
        Prometheus::start_with(dir, Setup::default())
    }

    /// Start Prometheus scraping itself and `setup`'s targets, evaluating
    /// its rules and alerting its Alertmanager.
    pub fn start_with(dir: &Path, setup: Setup<'_>) -> Prometheus {
        let addr = free_addr();
        let query_log = dir.join("queries.log");
        let config = dir.join("prometheus.yml");
        let mut yaml = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  query_log_file: {}\n",
            query_log.display()
        );
        if let Some(rules) = setup.rules {
            yaml += &format!("rule_files: ['{}']\n", rules.display());
        }
        if let Some(alertmanager) = setup.alertmanager {
            yaml += &format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager}']\n"
            );
        }
        yaml += &format!(
            "scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['{addr}']\n"
        );
        for (job, target, instance) in setup.targets {
            yaml += &format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n        labels: {{instance: '{instance}'}}\n"
            );
        }
        std::fs::write(&config, yaml).unwrap();
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

/// Debian's `prometheus-node-exporter` with only its filesystem collector:
/// what a node's disk alerts are computed from.
pub struct NodeExporter {
    pub addr: SocketAddr,
    child: Child,
}

impl NodeExporter {
    pub fn start(dir: &Path) -> NodeExporter {
        const EXPORTER: &str = "prometheus-node-exporter";
        let addr = free_addr();
        let log = std::fs::File::create(dir.join("node-exporter.log")).unwrap();
        let child = Command::new(EXPORTER)
            .arg(format!("--web.listen-address={addr}"))
            .args(["--collector.disable-defaults", "--collector.filesystem"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {EXPORTER}: {e}; install Debian's prometheus-node-exporter (scripts/test does)")
            });
        let exporter = NodeExporter { addr, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(try_request(addr, "GET", "/metrics", &[], b""), Ok((200, _))) {
            assert!(
                Instant::now() < deadline,
                "{EXPORTER} not answering in 30 s:\n{}",
                std::fs::read_to_string(dir.join("node-exporter.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        exporter
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `promtool check rules` on `rules` and `amtool check-config` on
/// `alertmanager`: the checks Prometheus and Alertmanager make themselves.
pub fn check_rules_and_alertmanager(rules: &Path, alertmanager: &Path) {
    for (tool, args, file) in [
        ("promtool", ["check", "rules"].as_slice(), rules),
        ("amtool", ["check-config"].as_slice(), alertmanager),
    ] {
        let output = Command::new(tool)
            .args(args)
            .arg(file)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {tool}: {e}; scripts/test installs prometheus and prometheus-alertmanager")
            });
        assert!(
            output.status.success(),
            "{tool}: {}",
            super::describe(&output)
        );
    }
}
