//! Signed checkpoints of the audit chain. The hash chain shows a record was
//! edited, deleted or reordered, but someone who can write the database can
//! also rewrite the chain after the edit and hash it all again. A checkpoint
//! is an audit record holding an ed25519 signature over the chain's head
//! (its record number and hash), made with a key kept outside the state
//! directory: rewriting what a checkpoint covers breaks the signature, which
//! no one without the key can make again.

use super::audit::{self, Broken};
use super::sql::args;
use super::{Store, StoreError};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The kind of a checkpoint's audit record.
pub const KIND: &str = "checkpoint";

/// What a checkpoint signs: the record it covers, and that record's hash.
fn message(seq: i64, hash: &str) -> String {
    format!("remedy audit checkpoint v1\nrecord {seq}\nhash {hash}\n")
}

/// A short name for a public key, so a checkpoint says which key made it.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The signing key in `path` (PKCS#8 PEM, as `remedy audit keygen` writes).
pub fn read_signing_key(path: &std::path::Path) -> Result<SigningKey, String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    SigningKey::from_pkcs8_pem(&text)
        .map_err(|e| format!("{}: not an ed25519 private key in PEM: {e}", path.display()))
}

/// The public key in `path` (SubjectPublicKeyInfo PEM).
pub fn read_public_key(path: &std::path::Path) -> Result<VerifyingKey, String> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    VerifyingKey::from_public_key_pem(&text)
        .map_err(|e| format!("{}: not an ed25519 public key in PEM: {e}", path.display()))
}

/// A new signing key: its private and public halves as PEM.
pub fn new_key_pair() -> Result<(String, String), String> {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?
        .to_string();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    Ok((private, public))
}

/// What a signed verification found when the chain holds.
#[derive(Debug, PartialEq)]
pub struct Signed {
    pub checkpoints: u64,
    /// The newest record a valid checkpoint covers.
    pub covered: i64,
    /// Records after the last checkpoint, which no signature covers yet.
    pub unsigned_tail: i64,
}

impl Store {
    /// Sign the chain's head into a checkpoint record, unless the head is
    /// already a checkpoint (nothing new to cover). Returns the record covered.
    pub fn checkpoint(&self, key: &SigningKey) -> Result<Option<i64>, StoreError> {
        let id = key_id(&key.verifying_key());
        self.in_tx(|c| {
            let Some((seq, hash, kind)) = c.query_opt(
                "SELECT a.seq, a.hash, a.kind FROM audit_head h JOIN audit a ON a.seq = h.seq \
                 WHERE h.id = 1",
                &[],
                |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
            )?
            else {
                return Ok(None);
            };
            if kind == KIND {
                return Ok(None);
            }
            let signature = key.sign(message(seq, &hash).as_bytes());
            let body = serde_json::json!({
                "covers": seq,
                "hash": hash,
                "key": id,
                "signature": base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
            });
            audit::append(c, KIND, None, &body)?;
            Ok(Some(seq))
        })
    }

    /// The newest audit record's number; 0 for an empty trail.
    pub fn audit_head_seq(&self) -> Result<i64, StoreError> {
        Ok(self.with(audit::head)?.map_or(0, |(seq, _)| seq))
    }

    /// The chain as [`Store::verify_audit`] checks it, and then every
    /// checkpoint: made by `key`, and signing the hash the chain holds for
    /// the record it covers. At least one checkpoint must hold.
    pub fn verify_signed(&self, key: &VerifyingKey) -> Result<Result<Signed, Broken>, StoreError> {
        let intact = match self.verify_audit()? {
            Ok(intact) => intact,
            Err(broken) => return Ok(Err(broken)),
        };
        let listed = self.with(|c| {
            c.query_map(
                "SELECT seq, body FROM audit WHERE kind = ?1 ORDER BY seq",
                args![KIND],
                |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)),
            )
        })?;
        let mut covered = 0;
        for (seq, body) in &listed {
            let covers = self.check_checkpoint(body, key)?;
            match covers {
                Ok(covers) => covered = covers,
                Err(why) => return Ok(Err(Broken { seq: *seq, why })),
            }
        }
        if listed.is_empty() {
            return Ok(Err(Broken {
                seq: 0,
                why: "no checkpoint signed by this key: nothing shows the chain was not rewritten"
                    .into(),
            }));
        }
        let last = listed.last().map_or(0, |(seq, _)| *seq);
        Ok(Ok(Signed {
            checkpoints: listed.len() as u64,
            covered,
            unsigned_tail: intact.records as i64 - last,
        }))
    }

    /// The record a checkpoint (its `body`) covers, or why it does not hold.
    fn check_checkpoint(
        &self,
        body: &str,
        key: &VerifyingKey,
    ) -> Result<Result<i64, String>, StoreError> {
        let Ok(body) = serde_json::from_str::<serde_json::Value>(body) else {
            return Ok(Err("a checkpoint that is not JSON".into()));
        };
        let (Some(covers), Some(signed_hash), Some(id), Some(signature)) = (
            body["covers"].as_i64(),
            body["hash"].as_str(),
            body["key"].as_str(),
            body["signature"].as_str(),
        ) else {
            return Ok(Err(
                "a checkpoint without covers, hash, key and signature".into()
            ));
        };
        if id != key_id(key) {
            return Ok(Err(format!(
                "a checkpoint made with key {id}, not with this public key ({})",
                key_id(key)
            )));
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok());
        let valid = signature.is_some_and(|s| {
            key.verify(message(covers, signed_hash).as_bytes(), &s)
                .is_ok()
        });
        if !valid {
            return Ok(Err(format!(
                "the signature over record {covers} does not hold: the checkpoint was forged or edited"
            )));
        }
        let chain_hash: Option<String> = self.with(|c| {
            c.query_opt(
                "SELECT hash FROM audit WHERE seq = ?1",
                args![covers],
                |r| r.get(0),
            )
        })?;
        Ok(match chain_hash {
            Some(hash) if hash == signed_hash => Ok(covers),
            Some(hash) => Err(format!(
                "it signed record {covers} with hash {signed_hash}, and the chain now holds {hash}: \
                 the records up to {covers} were rewritten"
            )),
            None => Err(format!("it signed record {covers}, which is gone")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// Rewrite record `seq`'s body and hash the chain again from there, as
    /// someone who can write the database (but has no key) would.
    fn rewrite(store: &Store, seq: i64, body: &str) {
        let rows = store
            .with(|c| {
                c.query_map(
                    "SELECT seq, at_ms, kind, run_id, body, prev_hash FROM audit WHERE seq >= ?1 ORDER BY seq",
                    args![seq],
                    |r| {
                        Ok((
                            r.get::<i64>(0)?,
                            r.get::<i64>(1)?,
                            r.get::<String>(2)?,
                            r.get::<Option<String>>(3)?,
                            r.get::<String>(4)?,
                            r.get::<String>(5)?,
                        ))
                    },
                )
            })
            .unwrap();
        let mut prev: Option<String> = None;
        for (n, at, kind, run, old_body, old_prev) in rows {
            let text = if n == seq { body.to_string() } else { old_body };
            let prev_hash = prev.clone().unwrap_or(old_prev);
            let hash = audit::hash(n, at, &kind, run.as_deref(), &text, &prev_hash);
            store
                .with(|c| {
                    c.execute(
                        "UPDATE audit SET body = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
                        args![n, text, prev_hash, hash],
                    )?;
                    c.execute(
                        "UPDATE audit_head SET hash = ?2 WHERE seq = ?1",
                        args![n, hash],
                    )
                })
                .unwrap();
            prev = Some(hash);
        }
    }

    #[test]
    fn a_chain_rewritten_and_hashed_again_passes_the_hash_check_but_not_the_signatures() {
        super::super::each_backend(|open| {
            let store = open();
            let signer = key(7);
            for n in 0..3 {
                store
                    .audit("test", None, &serde_json::json!({ "n": n }))
                    .unwrap();
            }
            assert_eq!(store.checkpoint(&signer).unwrap(), Some(3));
            assert_eq!(
                store.checkpoint(&signer).unwrap(),
                None,
                "nothing new to cover"
            );
            store
                .audit("test", None, &serde_json::json!({ "n": 3 }))
                .unwrap();
            let public = signer.verifying_key();
            let signed = store.verify_signed(&public).unwrap().unwrap();
            assert_eq!(
                signed,
                Signed {
                    checkpoints: 1,
                    covered: 3,
                    unsigned_tail: 1
                }
            );
            let stranger = key(8).verifying_key();
            let why = store.verify_signed(&stranger).unwrap().unwrap_err().why;
            assert!(why.contains("not with this public key"), "{why}");

            rewrite(&store, 2, r#"{"n":"rewritten"}"#);
            assert!(
                store.verify_audit().unwrap().is_ok(),
                "the hash chain alone is fooled"
            );
            let broken = store.verify_signed(&public).unwrap().unwrap_err();
            assert_eq!(broken.seq, 4, "{broken:?}");
            assert!(
                broken.why.contains("records up to 3 were rewritten"),
                "{}",
                broken.why
            );
        });
    }

    #[test]
    fn a_chain_without_a_checkpoint_proves_nothing() {
        super::super::each_backend(|open| {
            let store = open();
            store.audit("test", None, &serde_json::json!({})).unwrap();
            let why = store
                .verify_signed(&key(1).verifying_key())
                .unwrap()
                .unwrap_err()
                .why;
            assert!(why.contains("no checkpoint"), "{why}");
        });
    }
}
