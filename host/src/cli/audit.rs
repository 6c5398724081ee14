//! `remedy audit`: check the hash-chained audit trail, show a run's records,
//! export records for a log pipeline.

use super::{Cli, UsageError, exit, output::table};
use crate::store::AuditRecord;
use anyhow::Result;
use clap::Subcommand;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record against the chain and the head. Exits 0 when the
    /// trail is intact, 1 naming the first record that was edited, deleted,
    /// reordered or cut off.
    #[command(after_help = "\
The hash chain alone cannot tell a chain rewritten and hashed again by
someone who can write the database. With --public-key, every signed
checkpoint must hold too: made with that key, over the hash the chain
still has for the record it covers.")]
    Verify {
        /// Also check the signed checkpoints against this public key (from `remedy audit keygen`)
        #[arg(long, value_name = "FILE")]
        public_key: Option<std::path::PathBuf>,
    },
    /// Make a key pair for signing checkpoints: FILE (private, 0600) and FILE.pub
    #[command(after_help = "\
Keep FILE where whoever can write the state directory cannot read it, and
name it in the config:
  [audit]
  signing_key_file = \"/etc/remedy/audit.key\"
remedy serve then signs the chain's head every checkpoint_every records or
checkpoint_interval, and when it stops; remedy run signs at the end of a run.")]
    Keygen {
        /// Where to write the private key; the public key goes beside it as FILE.pub
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Sign the chain's head now with `[audit] signing_key_file`
    Checkpoint,
    /// The audit records of one run, oldest first
    Show {
        /// Run id (or a unique prefix)
        run: String,
    },
    /// Print records as JSON lines, oldest first, for shipping to a log pipeline
    #[command(
        after_help = "Example:\n  remedy audit export --format jsonl --since 24h >> /var/log/remedy-audit.jsonl"
    )]
    Export {
        /// Output format
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Only records at or after this time: RFC 3339 or an age such as 2h
        #[arg(long, value_parser = crate::config::parse_since)]
        since: Option<SystemTime>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line
    Jsonl,
}

pub fn audit(cli: &Cli, command: &AuditCommand) -> Result<u8> {
    match command {
        // Making a key needs no config and no store.
        AuditCommand::Keygen { out } => keygen(out),
        AuditCommand::Checkpoint => checkpoint(cli),
        AuditCommand::Verify {
            public_key: Some(file),
        } => verify_signed(cli, file),
        AuditCommand::Verify { public_key: None } => verify(cli),
        AuditCommand::Show { run } => show(cli, run),
        AuditCommand::Export { format, since } => export(cli, *format, *since),
    }
}

fn open(cli: &Cli) -> Result<(crate::config::Config, crate::store::Store)> {
    let config = cli.load_config()?;
    let store = cli.open_store(&config)?;
    Ok((config, store))
}

fn checkpoint(cli: &Cli) -> Result<u8> {
    let (config, store) = open(cli)?;
    let Some(file) = &config.audit.signing_key_file else {
        return Err(UsageError(
            "no [audit] signing_key_file in the config; `remedy audit keygen` makes one".into(),
        )
        .into());
    };
    let key = crate::store::read_signing_key(file).map_err(UsageError)?;
    match store.checkpoint(&key)? {
        Some(seq) => println!("signed the chain through record {seq}"),
        None => println!("nothing new to sign: the newest record is a checkpoint"),
    }
    Ok(exit::SUCCESS)
}

fn verify_signed(cli: &Cli, public_key: &std::path::Path) -> Result<u8> {
    let key = crate::store::read_public_key(public_key).map_err(UsageError)?;
    let (_, store) = open(cli)?;
    match store.verify_signed(&key)? {
        Ok(signed) => {
            println!(
                "audit trail intact and signed: {} checkpoints by key {}, covering records \
                 through {}; {} newer records not signed yet",
                signed.checkpoints,
                crate::store::key_id(&key),
                signed.covered,
                signed.unsigned_tail
            );
            Ok(exit::SUCCESS)
        }
        Err(broken) => {
            println!("audit trail NOT PROVEN at {broken}");
            Ok(exit::FAILED)
        }
    }
}

fn verify(cli: &Cli) -> Result<u8> {
    let (_, store) = open(cli)?;
    match store.verify_audit()? {
        Ok(intact) => {
            let pruned = intact
                .pruned_through
                .map(|through| format!(" after records 1-{through}, removed by retention"))
                .unwrap_or_default();
            println!(
                "audit trail intact: {} records{pruned}, head {}",
                intact.records,
                intact.head.as_deref().unwrap_or("(empty)")
            );
            Ok(exit::SUCCESS)
        }
        Err(broken) => {
            println!("audit trail BROKEN at {broken}");
            Ok(exit::FAILED)
        }
    }
}

fn show(cli: &Cli, run: &str) -> Result<u8> {
    let (_, store) = open(cli)?;
    let id = store.resolve_run(run)?;
    let rows: Vec<Vec<String>> = store
        .audit_of_run(&id)?
        .iter()
        .map(|r| vec![r.seq.to_string(), r.at.clone(), r.kind.clone(), brief(r)])
        .collect();
    println!("audit records of run {id}:");
    print!("{}", table(&["SEQ", "AT", "KIND", "RECORD"], &rows));
    Ok(exit::SUCCESS)
}

fn export(cli: &Cli, format: ExportFormat, since: Option<SystemTime>) -> Result<u8> {
    let ExportFormat::Jsonl = format;
    let (_, store) = open(cli)?;
    let since_ms = since
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let mut out = std::io::stdout().lock();
    for record in store.audit_since(since_ms)? {
        let line = serde_json::to_string(&record)?;
        match writeln!(out, "{line}") {
            // The reader (`head`, a closed pipe) has all it wants.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            other => other?,
        }
    }
    Ok(exit::SUCCESS)
}

/// A new key pair, never over an existing file.
fn keygen(out: &std::path::Path) -> Result<u8> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let public_path = std::path::PathBuf::from(format!("{}.pub", out.display()));
    let (private, public) = crate::store::new_key_pair().map_err(anyhow::Error::msg)?;
    for (path, text, mode) in [
        (out, &private, 0o600),
        (public_path.as_path(), &public, 0o644),
    ] {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| {
                UsageError(format!(
                    "{}: {e}; remedy never overwrites a key",
                    path.display()
                ))
            })?;
        file.write_all(text.as_bytes())?;
    }
    println!(
        "wrote the signing key to {} and its public key to {}",
        out.display(),
        public_path.display()
    );
    Ok(exit::SUCCESS)
}

/// One line of a record's body for the table.
fn brief(record: &AuditRecord) -> String {
    const WIDTH: usize = 120;
    let text = record.body.to_string();
    match text.char_indices().nth(WIDTH) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
