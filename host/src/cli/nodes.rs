//! `remedy nodes`: the remedy processes of a fleet, as the store has heard
//! from them.

use super::output::table;
use super::run::Output;
use super::{Cli, exit};
use anyhow::Result;
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Every remedy serve and remedy agent records a heartbeat in the store every
[store] heartbeat; one heard from within [store] lease is live and executes
runs. A node with no live remedy gets no runs: those queued for it escalate
after [store] unattended_after. The plugins column shows each one's sha256
prefix, so a node that runs another build of a plugin stands out.")]
pub struct NodesArgs {
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

pub fn nodes(cli: &Cli, args: &NodesArgs) -> Result<u8> {
    let config = cli.load_config()?;
    let store = cli.open_store(&config)?;
    let seen = store.members(config.store.fleet.lease)?;
    if args.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&seen)?);
        return Ok(exit::SUCCESS);
    }
    let rows: Vec<Vec<String>> = seen
        .iter()
        .map(|m| {
            let plugins: Vec<String> = m
                .plugins
                .iter()
                .map(|(name, sha)| format!("{name}@{}", &sha[..sha.len().min(12)]))
                .collect();
            let silent = Duration::from_secs(m.silent_ms / 1000);
            vec![
                m.node.clone(),
                m.role.clone(),
                if m.live { "live" } else { "gone" }.into(),
                format!("{} ago", humantime::format_duration(silent)),
                m.version.clone(),
                m.process.clone(),
                plugins.join(" "),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "NODE",
                "ROLE",
                "STATE",
                "HEARTBEAT",
                "VERSION",
                "PROCESS",
                "PLUGINS"
            ],
            &rows
        )
    );
    Ok(exit::SUCCESS)
}
