//! The audit trail: every decision and action as a hash chain. Each record
//! carries the hash of the one before it, and the newest record's number and
//! hash are kept apart as the head, so editing, deleting, reordering or
//! cutting off records is found by `verify`.

use super::sql::{Db, Result as DbResult, Row, ToValue, args};
use super::{Store, StoreError, now_ms, rfc3339};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The kind of record that anchors the chain after its oldest part was
/// removed by retention (`store/retention.rs`).
pub(super) const PRUNED: &str = "pruned";

/// Where the chain starts after a prune: the last record removed.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Anchor {
    pub through: i64,
    pub hash: String,
}

/// One audit record as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    #[serde(skip)]
    pub at_ms: i64,
    pub kind: String,
    pub run_id: Option<String>,
    pub body: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// What `verify` found when the chain holds.
#[derive(Debug, PartialEq)]
pub struct Intact {
    pub records: u64,
    pub head: Option<String>,
    /// The records up to this one were removed by retention.
    pub pruned_through: Option<i64>,
}

/// The first record that breaks the chain, and how.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("audit record {seq}: {why}")]
pub struct Broken {
    pub seq: i64,
    pub why: String,
}

pub(super) fn hash(
    seq: i64,
    at_ms: i64,
    kind: &str,
    run_id: Option<&str>,
    body: &str,
    prev: &str,
) -> String {
    let mut digest = Sha256::new();
    for part in [
        seq.to_string().as_str(),
        &at_ms.to_string(),
        kind,
        run_id.unwrap_or(""),
        body,
        prev,
    ] {
        // Length-prefixed, so no two different records hash the same text.
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    format!("{:x}", digest.finalize())
}

/// The end of run `id`, with its status and reason, inside the caller's
/// transaction: every way a run ends writes this one record.
pub(super) fn append_finished(
    c: &mut dyn Db,
    id: &str,
    status: super::RunStatus,
    reason: &str,
) -> DbResult<()> {
    let mut chain = Chain::open(c)?;
    chain.append_finished(c, id, status, reason)?;
    chain.close(c)
}

/// Append a record inside the caller's transaction, so the audit and the
/// state it describes are committed together or not at all.
pub(super) fn append(
    c: &mut dyn Db,
    kind: &str,
    run_id: Option<&str>,
    body: &(impl serde::Serialize + ?Sized),
) -> DbResult<()> {
    let mut chain = Chain::open(c)?;
    chain.append(c, kind, run_id, body)?;
    chain.close(c)
}

/// The chain as one transaction extends it: its head read at the start and
/// written at the end, however many records come between (an admission
/// appends two per alert). Rolling back to a savepoint rolls back a copy
/// taken there too.
#[derive(Clone)]
pub(super) struct Chain {
    seq: i64,
    hash: String,
    extended: bool,
}

impl Chain {
    pub(super) fn open(c: &mut dyn Db) -> DbResult<Chain> {
        let (seq, hash) = head(c)?.unwrap_or((0, GENESIS.to_string()));
        Ok(Chain {
            seq,
            hash,
            extended: false,
        })
    }

    /// Append a record after the last. `body` is written as JSON straight
    /// from its type: building a `serde_json::Value` first cost an
    /// admission a fifth of its commit.
    pub(super) fn append(
        &mut self,
        c: &mut dyn Db,
        kind: &str,
        run_id: Option<&str>,
        body: &(impl serde::Serialize + ?Sized),
    ) -> DbResult<()> {
        let seq = self.seq + 1;
        let at = now_ms();
        let body = super::to_json(body);
        let hash = hash(seq, at, kind, run_id, &body, &self.hash);
        c.execute(
            "INSERT INTO audit (seq, at_ms, kind, run_id, body, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![seq, at, kind, run_id, body, self.hash, hash],
        )?;
        (self.seq, self.hash, self.extended) = (seq, hash, true);
        Ok(())
    }

    pub(super) fn append_finished(
        &mut self,
        c: &mut dyn Db,
        id: &str,
        status: super::RunStatus,
        reason: &str,
    ) -> DbResult<()> {
        let body = serde_json::json!({ "status": status.as_str(), "reason": reason });
        self.append(c, "finished", Some(id), &body)
    }

    /// Write the head, if any record was appended.
    pub(super) fn close(self, c: &mut dyn Db) -> DbResult<()> {
        if !self.extended {
            return Ok(());
        }
        c.execute(
            "UPDATE heads SET audit_seq = ?1, audit_hash = ?2 WHERE id = 1",
            args![self.seq, self.hash],
        )?;
        Ok(())
    }
}

/// The newest record's number and hash, as kept apart from the records.
pub(super) fn head(c: &mut dyn Db) -> DbResult<Option<(i64, String)>> {
    c.query_opt(
        "SELECT audit_seq, audit_hash FROM heads WHERE id = 1",
        &[],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
}

fn record(row: &Row) -> DbResult<(AuditRecord, String)> {
    let at_ms: i64 = row.get(1)?;
    let text: String = row.get(4)?;
    Ok((
        AuditRecord {
            seq: row.get(0)?,
            at: rfc3339(at_ms),
            at_ms,
            kind: row.get(2)?,
            run_id: row.get(3)?,
            body: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone())),
            prev_hash: row.get(5)?,
            hash: row.get(6)?,
        },
        text,
    ))
}

const COLUMNS: &str = "seq, at_ms, kind, run_id, body, prev_hash, hash";

impl Store {
    /// Append one audit record on its own (config reloads, approvals, breakers).
    pub fn audit(
        &self,
        kind: &str,
        run_id: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.in_tx(|c| append(c, kind, run_id, body))
    }

    /// Walk the whole chain, from its first record or from where the last
    /// prune left it, a page at a time; the first record that does not hold
    /// is named.
    pub fn verify_audit(&self) -> Result<Result<Intact, Broken>, StoreError> {
        const PAGE: u32 = 10_000;
        let anchor = match self.with(anchor)? {
            Ok(anchor) => anchor,
            Err(broken) => return Ok(Err(broken)),
        };
        let pruned_through = anchor.as_ref().map(|a| a.through);
        let (mut expected_seq, mut prev) = match anchor {
            Some(Anchor { through, hash }) => (through + 1, hash),
            None => (1, GENESIS.to_string()),
        };
        let mut after = expected_seq - 1;
        loop {
            let page = self.with(|c| {
                c.query_map(
                    &format!("SELECT {COLUMNS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                    args![after, PAGE],
                    record,
                )
            })?;
            for (r, text) in &page {
                if let Some(broken) = check_link(r, text, expected_seq, &prev) {
                    return Ok(Err(broken));
                }
                prev.clone_from(&r.hash);
                expected_seq += 1;
            }
            match page.last() {
                Some((r, _)) if page.len() == PAGE as usize => after = r.seq,
                _ => break,
            }
        }
        let last = expected_seq - 1;
        // A PostgreSQL store starts with a head of 0 (the genesis): no records.
        let head = self.with(head)?.filter(|(seq, _)| *seq > 0);
        Ok(match head {
            None if last == 0 => Ok(Intact {
                records: 0,
                head: None,
                pruned_through,
            }),
            None => Err(Broken {
                seq: last,
                why: "the head (newest record's number and hash) is missing".into(),
            }),
            Some((seq, _)) if seq > last => Err(Broken {
                seq: last + 1,
                why: format!("missing: the trail was cut off after record {last}; it had {seq}"),
            }),
            Some((seq, hash)) if seq != last || hash != prev => Err(Broken {
                seq: last,
                why: format!("does not match the head (record {seq}, {hash})"),
            }),
            Some((_, hash)) => Ok(Intact {
                records: (last - pruned_through.unwrap_or(0)) as u64,
                head: Some(hash),
                pruned_through,
            }),
        })
    }

    /// The records of one run, oldest first.
    pub fn audit_of_run(&self, run_id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_where("run_id = ?1", run_id.to_string())
    }

    /// Every record at or after `since_ms`, oldest first.
    pub fn audit_since(&self, since_ms: i64) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_where("at_ms >= ?1", since_ms)
    }

    fn audit_where(
        &self,
        condition: &str,
        value: impl ToValue,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.with(|c| {
            c.query_map(
                &format!("SELECT {COLUMNS} FROM audit WHERE {condition} ORDER BY seq"),
                args![value],
                |row| record(row).map(|(r, _)| r),
            )
        })
    }
}

/// Where the newest `pruned` record says the chain now starts, if the
/// chain was ever pruned; a `pruned` record that cannot anchor it breaks it.
fn anchor(c: &mut dyn Db) -> DbResult<Result<Option<Anchor>, Broken>> {
    let newest = c.query_opt(
        "SELECT seq, body FROM audit WHERE kind = ?1 ORDER BY seq DESC LIMIT 1",
        args![PRUNED],
        |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)),
    )?;
    let Some((seq, body)) = newest else {
        return Ok(Ok(None));
    };
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    Ok(match (body["through"].as_i64(), body["hash"].as_str()) {
        (Some(through), Some(hash)) if through < seq => Ok(Some(Anchor {
            through,
            hash: hash.to_string(),
        })),
        _ => Err(Broken {
            seq,
            why: "a pruned record that does not say, before itself, where the chain starts".into(),
        }),
    })
}

/// Why record `r` (stored as `text`) does not follow the chain so far.
fn check_link(r: &AuditRecord, text: &str, expected_seq: i64, prev: &str) -> Option<Broken> {
    let broken = |why: String| Some(Broken { seq: r.seq, why });
    if r.seq != expected_seq {
        return Some(Broken {
            seq: expected_seq,
            why: format!("missing: the next record is {}", r.seq),
        });
    }
    if r.prev_hash != prev {
        return broken(format!(
            "does not follow record {}: records were deleted, reordered or replaced",
            r.seq - 1
        ));
    }
    let actual = hash(
        r.seq,
        r.at_ms,
        &r.kind,
        r.run_id.as_deref(),
        text,
        &r.prev_hash,
    );
    if actual != r.hash {
        return broken("edited: its contents do not match its hash".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store_with(open: &dyn Fn() -> Store, records: usize) -> Store {
        let store = open();
        for n in 0..records {
            store
                .audit("test", Some("run-1"), &json!({ "n": n }))
                .unwrap();
        }
        store
    }

    fn tamper(store: &Store, sql: &str) {
        store.with(|c| c.batch(sql)).unwrap();
    }

    fn broken(store: &Store) -> Broken {
        store.verify_audit().unwrap().unwrap_err()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        super::super::each_backend(|open| {
            let store = store_with(open, 5);
            let intact = store.verify_audit().unwrap().unwrap();
            assert_eq!(intact.records, 5);
            assert_eq!(store.audit_of_run("run-1").unwrap().len(), 5);
        });
    }

    #[test]
    fn an_edited_record_is_named() {
        super::super::each_backend(|open| {
            let store = store_with(open, 5);
            tamper(
                &store,
                r#"UPDATE audit SET body = '{"n":99}' WHERE seq = 3"#,
            );
            let found = broken(&store);
            assert_eq!(found.seq, 3);
            assert!(found.why.contains("edited"), "{found}");
        });
    }

    #[test]
    fn an_edit_that_rehashes_its_record_breaks_the_next_one() {
        super::super::each_backend(|open| {
            let store = store_with(open, 5);
            let r = &store.audit_of_run("run-1").unwrap()[2];
            let body = r#"{"n":99}"#;
            let rehashed = hash(3, r.at_ms, "test", Some("run-1"), body, &r.prev_hash);
            tamper(
                &store,
                &format!("UPDATE audit SET body = '{body}', hash = '{rehashed}' WHERE seq = 3"),
            );
            let found = broken(&store);
            assert_eq!(found.seq, 4);
            assert!(found.why.contains("does not follow record 3"), "{found}");
        });
    }

    #[test]
    fn deleted_reordered_and_truncated_records_are_found() {
        super::super::each_backend(|open| {
            let store = store_with(open, 5);
            tamper(&store, "DELETE FROM audit WHERE seq = 2");
            let found = broken(&store);
            assert_eq!(found.seq, 2);
            assert!(found.why.contains("missing"), "{found}");

            let store = store_with(open, 5);
            tamper(
                &store,
                "UPDATE audit SET seq = -1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3;
                 UPDATE audit SET seq = 3 WHERE seq = -1;",
            );
            let found = broken(&store);
            assert_eq!(found.seq, 2, "{found}");

            let store = store_with(open, 5);
            tamper(&store, "DELETE FROM audit WHERE seq >= 4");
            let found = broken(&store);
            assert_eq!(found.seq, 4);
            assert!(found.why.contains("cut off after record 3"), "{found}");
        });
    }
}
