//! Signing the audit chain while remedy serves (`[audit] signing_key_file`):
//! a checkpoint once `checkpoint_every` records are unsigned, or once
//! `checkpoint_interval` has passed with any unsigned, and one more when
//! remedy stops, after its last run is recorded.

use super::Shared;
use crate::config::AuditConfig;
use ed25519_dalek::SigningKey;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How often the trail's head is looked at, at most.
const LOOK_EVERY: Duration = Duration::from_secs(5);

pub(super) struct Checkpoints {
    signer: Arc<Signer>,
    task: JoinHandle<()>,
}

struct Signer {
    shared: Arc<Shared>,
    key: SigningKey,
}

impl Signer {
    /// Sign the head now; the record it covers, when there was something new.
    fn sign(&self) -> Option<i64> {
        match self.shared.ingest.checkpoint(&self.key) {
            Ok(covered) => {
                if let Some(seq) = covered {
                    tracing::info!(covers = seq, "signed an audit checkpoint");
                }
                covered
            }
            Err(e) => {
                tracing::error!("cannot write an audit checkpoint: {e}");
                None
            }
        }
    }
}

impl Checkpoints {
    /// Start signing with `key`, read from the config by [`signing_key`].
    pub(super) fn start(
        shared: &Arc<Shared>,
        key: Option<SigningKey>,
        audit: &AuditConfig,
    ) -> Option<Checkpoints> {
        let key = key?;
        let signer = Arc::new(Signer {
            shared: shared.clone(),
            key,
        });
        let task = tokio::spawn(sign_periodically(
            signer.clone(),
            audit.checkpoint_every,
            audit.checkpoint_interval,
        ));
        Some(Checkpoints { signer, task })
    }

    /// Stop, signing what the last runs recorded.
    pub(super) async fn finish(self) {
        self.task.abort();
        let signer = self.signer;
        let _ = tokio::task::spawn_blocking(move || signer.sign()).await;
    }
}

/// The key the config names. One that cannot be read stops remedy from
/// starting: it was asked to sign.
pub(super) fn signing_key(audit: &AuditConfig) -> Result<Option<SigningKey>, String> {
    audit
        .signing_key_file
        .as_deref()
        .map(|file| {
            crate::store::read_signing_key(file)
                .map_err(|e| format!("[audit] signing_key_file: {e}"))
        })
        .transpose()
}

async fn sign_periodically(signer: Arc<Signer>, every: u64, interval: Duration) {
    let head = |signer: &Arc<Signer>| {
        let signer = signer.clone();
        async move {
            tokio::task::spawn_blocking(move || signer.shared.ingest.audit_head_seq())
                .await
                .ok()
                .and_then(Result::ok)
        }
    };
    let Some(mut signed_through) = head(&signer).await else {
        return;
    };
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(LOOK_EVERY.min(interval)).await;
        let Some(now) = head(&signer).await else {
            continue;
        };
        let unsigned = (now - signed_through).max(0) as u64;
        if unsigned >= every || (unsigned > 0 && since.elapsed() >= interval) {
            let task_signer = signer.clone();
            if let Ok(Some(covered)) = tokio::task::spawn_blocking(move || task_signer.sign()).await
            {
                // The checkpoint is a record of its own, and needs no signing.
                signed_through = covered + 1;
            }
            since = Instant::now();
        }
    }
}
