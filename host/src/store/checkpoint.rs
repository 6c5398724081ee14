//! Signed checkpoints of the audit chain. The hash chain shows a record was
//! edited, deleted or reordered, but someone who can write the database can
//! also rewrite the chain after the edit and hash it all again. A checkpoint
//! is an audit record holding an ed25519 signature over the chain's head
//! (its record number and hash), made with a key kept outside the state
//! directory: rewriting what a checkpoint covers breaks the signature, which
//! no one without the key can make again.

use super::audit::{self, Anchor, Broken};
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

/// What a prune signs: the last record it removed, and that record's hash.
/// Not a checkpoint's words, so neither can be passed off as the other.
fn prune_message(through: i64, hash: &str) -> String {
    format!("remedy audit prune v1\nthrough {through}\nhash {hash}\n")
}

/// `key`'s name and its signature over `message`, as a record carries them.
fn signature(key: &SigningKey, message: &str) -> (String, String) {
    let signature = key.sign(message.as_bytes());
    (
        key_id(&key.verifying_key()),
        base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
    )
}

/// The body of a `pruned` record, signed when remedy holds a key.
pub(super) fn prune_body(anchor: &Anchor, key: Option<&SigningKey>) -> serde_json::Value {
    let mut body = serde_json::json!({ "through": anchor.through, "hash": anchor.hash });
    if let Some(key) = key {
        let (id, signature) = signature(key, &prune_message(anchor.through, &anchor.hash));
        body["key"] = id.into();
        body["signature"] = signature.into();
    }
    body
}

/// Why `body` does not carry `key`'s signature over `message`, if it does not.
fn check_signature(
    body: &serde_json::Value,
    key: &VerifyingKey,
    message: &str,
) -> Result<(), String> {
    let (Some(id), Some(signature)) = (body["key"].as_str(), body["signature"].as_str()) else {
        return Err("no signature: someone who can write the database may have made it".into());
    };
    if id != key_id(key) {
        return Err(format!(
            "made with key {id}, not with this public key ({})",
            key_id(key)
        ));
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok());
    if signature.is_some_and(|s| key.verify(message.as_bytes(), &s).is_ok()) {
        Ok(())
    } else {
        Err("the signature does not hold: forged or edited".into())
    }
}

/// A short name for a public key, so a checkpoint says which key made it.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
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
        self.in_tx(|c| {
            let Some((seq, hash, kind)) = c.query_opt(
                "SELECT a.seq, a.hash, a.kind FROM heads h JOIN audit a ON a.seq = h.audit_seq \
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
            let (id, signature) = signature(key, &message(seq, &hash));
            let body = serde_json::json!({
                "covers": seq,
                "hash": hash,
                "key": id,
                "signature": signature,
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
    /// checkpoint and prune: made by `key`, a checkpoint signing the hash
    /// the chain holds for the record it covers (unless retention removed
    /// that record since), a prune signing where the chain now starts. At
    /// least one checkpoint must hold.
    pub fn verify_signed(&self, key: &VerifyingKey) -> Result<Result<Signed, Broken>, StoreError> {
        let intact = match self.verify_audit()? {
            Ok(intact) => intact,
            Err(broken) => return Ok(Err(broken)),
        };
        let pruned_through = intact.pruned_through.unwrap_or(0);
        let listed = self.with(|c| {
            c.query_map(
                "SELECT seq, kind, body FROM audit WHERE kind IN (?1, ?2) ORDER BY seq",
                args![KIND, audit::PRUNED],
                |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
            )
        })?;
        let mut covered = 0;
        let mut checkpoints = 0;
        for (seq, kind, body) in &listed {
            let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let checked = if kind == audit::PRUNED {
                check_prune(&body, key)
            } else {
                checkpoints += 1;
                self.check_checkpoint(&body, key, pruned_through)?
                    .map(|covers| covered = covers)
            };
            if let Err(why) = checked {
                return Ok(Err(Broken { seq: *seq, why }));
            }
        }
        if checkpoints == 0 {
            return Ok(Err(Broken {
                seq: 0,
                why: "no checkpoint signed by this key: nothing shows the chain was not rewritten"
                    .into(),
            }));
        }
        let last = listed.last().map_or(0, |(seq, ..)| *seq);
        Ok(Ok(Signed {
            checkpoints,
            covered,
            unsigned_tail: self.audit_head_seq()? - last,
        }))
    }

    /// The record a checkpoint (its `body`) covers, or why it does not
    /// hold. One covering a record retention removed is checked for its
    /// signature alone.
    fn check_checkpoint(
        &self,
        body: &serde_json::Value,
        key: &VerifyingKey,
        pruned_through: i64,
    ) -> Result<Result<i64, String>, StoreError> {
        let (Some(covers), Some(signed_hash)) = (body["covers"].as_i64(), body["hash"].as_str())
        else {
            return Ok(Err("a checkpoint without covers and hash".into()));
        };
        if let Err(why) = check_signature(body, key, &message(covers, signed_hash)) {
            return Ok(Err(format!("the checkpoint over record {covers}: {why}")));
        }
        if covers <= pruned_through {
            return Ok(Ok(covers));
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

/// Why a `pruned` record is not one remedy made with `key`, if it is not.
fn check_prune(body: &serde_json::Value, key: &VerifyingKey) -> Result<(), String> {
    let (Some(through), Some(hash)) = (body["through"].as_i64(), body["hash"].as_str()) else {
        return Err("a prune without through and hash".into());
    };
    check_signature(body, key, &prune_message(through, hash))
        .map_err(|why| format!("the prune through record {through}: {why}"))
}
