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

/// Someone who can write the database: record `seq`'s body replaced, and
/// every hash from there on made again, as remedy makes them.
fn rewrite_and_rehash(db_path: &Path, seq: i64, body: &str) {
    use sha2::{Digest, Sha256};
    let db = rusqlite::Connection::open(db_path).unwrap();
    let mut rows: Vec<(i64, i64, String, Option<String>, String, String)> = db
        .prepare("SELECT seq, at_ms, kind, run_id, body, prev_hash FROM audit WHERE seq >= ?1 ORDER BY seq")
        .unwrap()
        .query_map([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows[0].4 = body.to_string();
    let mut prev = rows[0].5.clone();
    for (n, at, kind, run, text, _) in rows {
        let mut digest = Sha256::new();
        let (n_text, at_text) = (n.to_string(), at.to_string());
        for part in [
            &n_text,
            &at_text,
            &kind,
            run.as_deref().unwrap_or(""),
            &text,
            &prev,
        ] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        let hash = format!("{:x}", digest.finalize());
        db.execute(
            "UPDATE audit SET body = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
            rusqlite::params![n, text, prev, hash],
        )
        .unwrap();
        db.execute(
            "UPDATE heads SET audit_seq = ?1, audit_hash = ?2",
            rusqlite::params![n, hash],
        )
        .unwrap();
        prev = hash;
    }
}

#[test]
fn a_chain_rewritten_and_hashed_again_is_caught_by_its_signed_checkpoints() {
    let trail = Trail::new();
    let keys = trail.dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let key = keys.join("audit.key");
    let keygen = |key: &Path| {
        remedy(&trail.state(), Path::new("/dev/null"))
            .args(["audit", "keygen", "--out"])
            .arg(key)
            .output()
            .unwrap()
    };
    let made = keygen(&key);
    assert!(made.status.success(), "{}", describe(&made));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        keygen(&key).status.code(),
        Some(2),
        "a key is never overwritten"
    );

    // Sign from here on: each run signs the chain's head when it ends.
    let config = std::fs::read_to_string(&trail.config).unwrap();
    std::fs::write(
        &trail.config,
        format!(
            "{config}\n[audit]\nsigning_key_file = \"{}\"\n",
            key.display()
        ),
    )
    .unwrap();
    for _ in 0..2 {
        let output = trail.remedy(&trail.state(), &["run", "disk-cleanup", "--dry-run"]);
        assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    }
    let public = format!("{}.pub", key.display());
    let verify = |signed: bool| {
        let mut args = vec!["audit", "verify"];
        if signed {
            args.extend(["--public-key", public.as_str()]);
        }
        let output = trail.remedy(&trail.state(), &args);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, said) = verify(true);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("intact and signed: 2 checkpoints"), "{said}");

    rewrite_and_rehash(&trail.state().join("state.db"), 3, r#"{"rewritten":true}"#);
    let (code, said) = verify(false);
    assert_eq!(code, Some(0), "the hash chain alone is fooled: {said}");
    let (code, said) = verify(true);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("NOT PROVEN") && said.contains("were rewritten"),
        "{said}"
    );
}

/// A new signing key pair in `dir`, as `remedy audit keygen` writes it: the
/// private key's path (the public one is beside it, `.pub`).
fn keygen(dir: &Path) -> PathBuf {
    let key = dir.join("audit.key");
    let made = remedy(&dir.join("state"), Path::new("/dev/null"))
        .args(["audit", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", describe(&made));
    key
}

/// A route of Echo alerts to the echo plugin, the chain signed with `key`,
/// and `more` config after.
fn signed_echo_routes(key: &Path, more: &str) -> String {
    format!(
        "[[route]]\nname = \"echo\"\nmatchers = ['alertname=\"Echo\"']\nplugin = \"echo\"\n\n\
         [audit]\nsigning_key_file = \"{}\"\n{more}",
        key.display()
    )
}

#[test]
fn serve_signs_the_chain_when_it_stops_after_its_last_run() {
    use common::daemon::{Daemon, firing, is_finished, serve_config, webhook};
    use common::ports::free_addr;
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let routes = signed_echo_routes(&key, "");
    let addr = free_addr();
    let config = serve_config(dir.path(), addr, "", &routes);
    let state = dir.path().join("state");
    let daemon = Daemon::start(&state, &config, addr);
    let alert = firing(&[("alertname", "Echo")], "2026-11-26T10:00:00Z");
    assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
    daemon.wait_for_runs("route=echo", 1, is_finished);
    daemon.stop();

    let public = format!("{}.pub", key.display());
    let output = remedy(&state, &config)
        .args(["audit", "verify", "--public-key", &public])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(said.contains("0 newer records not signed yet"), "{said}");
}

#[test]
fn serve_prunes_history_past_its_retention_and_the_chain_still_verifies_signed() {
    use common::daemon::{Daemon, firing, is_finished, serve_config, webhook};
    use common::ports::free_addr;
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let routes = |retention: &str| signed_echo_routes(&key, retention);
    let addr = free_addr();
    let state = dir.path().join("state");
    let config = serve_config(dir.path(), addr, "", &routes(""));
    let daemon = Daemon::start(&state, &config, addr);
    for n in 0..2 {
        let alert = firing(
            &[("alertname", "Echo"), ("n", &n.to_string())],
            "2026-11-26T10:00:00Z",
        );
        assert_eq!(daemon.post_alerts(&webhook("r", &[alert])).0, 202);
    }
    daemon.wait_for_runs("route=echo", 2, is_finished);
    daemon.stop();

    // One run and its alert finished three days ago, as far as the store knows.
    let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
    let three_days = 3 * 86_400_000;
    db.execute_batch(&format!(
        "UPDATE runs SET finished_ms = finished_ms - {three_days} WHERE rowid = (SELECT MIN(rowid) FROM runs);
         UPDATE alerts SET received_ms = received_ms - {three_days} WHERE id = (SELECT MIN(id) FROM alerts);"
    ))
    .unwrap();
    drop(db);

    let retention = "[store.retention]\nruns = \"1d\"\nalerts = \"1d\"\n";
    let config = serve_config(dir.path(), addr, "", &routes(retention));
    let daemon = Daemon::start(&state, &config, addr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while daemon.runs("").len() != 1 {
        assert!(std::time::Instant::now() < deadline, "{}", daemon.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = daemon.log();
    daemon.stop();
    assert!(log.contains("pruned history past its retention"), "{log}");

    let public = format!("{}.pub", key.display());
    let output = remedy(&state, &config)
        .args(["audit", "verify", "--public-key", &public])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
}
