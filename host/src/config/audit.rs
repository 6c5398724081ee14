//! `[audit]`: signed checkpoints of the audit chain. The signing key is a
//! file kept outside the state directory (`remedy audit keygen` makes one),
//! so someone who can write the database cannot sign a rewritten chain.

use super::parse_duration;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    /// The ed25519 private key (PKCS#8 PEM) checkpoints are signed with.
    signing_key_file: Option<PathBuf>,
    /// Sign after this many new records (default 1000).
    checkpoint_every: Option<u64>,
    /// Sign new records at least this often (default 10m).
    checkpoint_interval: Option<String>,
}

/// How the audit chain is signed, when it is.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    pub signing_key_file: Option<PathBuf>,
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            signing_key_file: None,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(600),
        }
    }
}

pub(super) fn validate_audit(
    raw: RawAudit,
    base: &Path,
    state_dir: Option<&Path>,
    problems: &mut Vec<String>,
) -> AuditConfig {
    let defaults = AuditConfig::default();
    let key = raw.signing_key_file.map(|file| base.join(file));
    if let (Some(key), Some(state)) = (&key, state_dir)
        && key.starts_with(state)
    {
        problems.push(format!(
            "[audit] signing_key_file {} is inside state_dir: keep the key where whoever can \
             write the state cannot read it",
            key.display()
        ));
    }
    if raw.checkpoint_every == Some(0) {
        problems.push("[audit] checkpoint_every must be at least 1".into());
    }
    let interval = match raw.checkpoint_interval.as_deref().map(parse_duration) {
        None => defaults.checkpoint_interval,
        Some(Ok(interval)) if interval >= Duration::from_secs(1) => interval,
        Some(Ok(_)) => {
            problems.push("[audit] checkpoint_interval must be at least 1s".into());
            defaults.checkpoint_interval
        }
        Some(Err(e)) => {
            problems.push(format!("[audit] checkpoint_interval: {e}"));
            defaults.checkpoint_interval
        }
    };
    AuditConfig {
        signing_key_file: key,
        checkpoint_every: raw
            .checkpoint_every
            .unwrap_or(defaults.checkpoint_every)
            .max(1),
        checkpoint_interval: interval,
    }
}
