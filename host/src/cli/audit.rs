//! `remedy audit`: check the hash-chained audit trail, show a run's records,
//! export records for a log pipeline.

use super::{Cli, exit, output::table};
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
    Verify,
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
    let config = cli.load_config()?;
    let store = cli.open_store(&config)?;
    match command {
        AuditCommand::Verify => match store.verify_audit()? {
            Ok(intact) => {
                println!(
                    "audit trail intact: {} records, head {}",
                    intact.records,
                    intact.head.as_deref().unwrap_or("(empty)")
                );
                Ok(exit::SUCCESS)
            }
            Err(broken) => {
                println!("audit trail BROKEN at {broken}");
                Ok(exit::FAILED)
            }
        },
        AuditCommand::Show { run } => {
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
        AuditCommand::Export { format, since } => {
            let ExportFormat::Jsonl = format;
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
    }
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
