//! The audit trail against real tampering: records edited, deleted,
//! reordered or cut off in the state database are each found by
//! `remedy audit verify`, which names the first bad record.

mod common;

use common::{OFFLINE_SERVICES, describe, remedy};
use std::path::{Path, PathBuf};
use std::process::Output;

struct Trail {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Trail {
    /// Three recorded runs of disk-cleanup over an empty directory.
    fn new() -> Trail {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let d = data.display();
        let config = dir.path().join("remedy.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[[plugin]]
name = "disk-cleanup"
source = "builtin:disk-cleanup"
params = {{ sandbox_dirs = "{d}", cache_dirs = "{d}", log_dirs = "{d}", target_used_percent = "100" }}
[plugin.grants]
fs_read = ["{d}"]
proc = ["read"]
nomad = ["read"]
docker = ["read"]
{OFFLINE_SERVICES}"#
            ),
        )
        .unwrap();
        let trail = Trail { dir, config };
        for _ in 0..3 {
            let output = trail.remedy(&trail.state(), &["run", "disk-cleanup", "--dry-run"]);
            assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
        }
        trail
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn remedy(&self, state: &Path, args: &[&str]) -> Output {
        remedy(state, &self.config).args(args).output().unwrap()
    }

    /// A copy of the state, tampered with by `sql`, and what `audit verify` says about it.
    fn verify_after(&self, name: &str, sql: &str) -> (i32, String) {
        let copy = self.dir.path().join(name);
        std::fs::create_dir(&copy).unwrap();
        for file in ["state.db", "state.db-wal", "state.db-shm"] {
            if self.state().join(file).exists() {
                std::fs::copy(self.state().join(file), copy.join(file)).unwrap();
            }
        }
        let db = rusqlite::Connection::open(copy.join("state.db")).unwrap();
        db.execute_batch(sql).unwrap();
        drop(db);
        let output = self.remedy(&copy, &["audit", "verify"]);
        (
            output.status.code().unwrap(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }
}

#[test]
fn each_kind_of_tampering_is_found_and_the_first_bad_record_named() {
    let trail = Trail::new();
    let output = trail.remedy(&trail.state(), &["audit", "verify"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("intact: 12 records"),
        "{}",
        describe(&output)
    );

    let cases = [
        (
            "edited",
            r#"UPDATE audit SET body = replace(body, 'dry_run":true', 'dry_run":false') WHERE seq = 6"#,
            "audit record 6: edited",
        ),
        (
            "deleted",
            "DELETE FROM audit WHERE seq = 5",
            "audit record 5: missing",
        ),
        (
            "reordered",
            "UPDATE audit SET seq = -1 WHERE seq = 7; UPDATE audit SET seq = 7 WHERE seq = 8; UPDATE audit SET seq = 8 WHERE seq = -1;",
            "audit record 7: does not follow record 6",
        ),
        (
            "truncated",
            "DELETE FROM audit WHERE seq > 9",
            "audit record 10: missing: the trail was cut off after record 9",
        ),
    ];
    for (name, sql, expected) in cases {
        let (code, said) = trail.verify_after(name, sql);
        assert_eq!(code, 1, "{name}: {said}");
        assert!(
            said.contains(expected),
            "{name}: expected {expected:?} in {said}"
        );
    }
}

#[test]
fn a_runs_records_show_and_export_with_plugin_hash_and_grants() {
    let trail = Trail::new();
    let listed = trail.remedy(&trail.state(), &["runs", "list", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let id = runs[0]["id"].as_str().unwrap();

    let shown = trail.remedy(&trail.state(), &["audit", "show", id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    for kind in ["run-created", "run-started", "plan", "finished"] {
        assert!(text.contains(kind), "no {kind} record:\n{text}");
    }

    let exported = trail.remedy(
        &trail.state(),
        &["audit", "export", "--format", "jsonl", "--since", "1h"],
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&exported.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    let started = lines.iter().find(|l| l["kind"] == "run-started").unwrap();
    assert_eq!(
        started["body"]["plugin_sha256"].as_str().unwrap().len(),
        64,
        "{started}"
    );
    assert_eq!(
        started["body"]["grants"]["proc"],
        serde_json::json!(["read"]),
        "{started}"
    );
    // Each record names the one before it.
    for pair in lines.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let future = trail.remedy(
        &trail.state(),
        &["audit", "export", "--since", "2099-01-01T00:00:00Z"],
    );
    assert!(future.stdout.is_empty());
}
