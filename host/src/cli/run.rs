//! `remedy run PLUGIN`: plan (and with --apply, execute) one remediation now.

use super::{
    Cli, UsageError, exit, load_plugin, output, parse_pair, plugin_config, read_alert_file,
};
use crate::alert::{fingerprint, manual_alert};
use crate::node::RunsOn;
use crate::run::{RunRequest, resolve_params, run_by_hand};
use crate::store::RunStatus;
use crate::world::{Redaction, World};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  remedy run disk-cleanup                      plan only (same as --dry-run)
  remedy run disk-cleanup --param target_used_percent=70 --label mountpoint=/data
  remedy run disk-cleanup --alert alert.json --apply
  remedy run disk-cleanup --output json | jq .actions
  remedy run disk-cleanup --record incident.json    keep what it saw, to replay with
                                                    remedy plugins test")]
pub struct RunArgs {
    /// Plugin to run, as named in the config
    plugin: String,

    /// Plan and record, change nothing (the default)
    #[arg(long, conflicts_with = "apply")]
    dry_run: bool,

    /// Execute the plan, action by action, each checked and recorded first
    #[arg(long)]
    apply: bool,

    /// The alert to remediate: an Alertmanager webhook payload holding one alert, or one alert, as JSON
    #[arg(long, value_name = "FILE")]
    alert: Option<PathBuf>,

    /// Alert label; repeat for more. Added to (or overriding) the labels of --alert
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_pair)]
    labels: Vec<(String, String)>,

    /// Plugin parameter; repeat for more. Overrides the config's params
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_pair)]
    params: Vec<(String, String)>,

    /// Stop after this many plan-and-execute rounds [default: the plugin's max_rounds]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    max_rounds: Option<u32>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,

    /// Record the world as the plugin saw it (each round's incident and every read with its answer) and its plans, to replay with `remedy plugins test`
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,

    /// In the recording, hide the values of labels, annotations and params whose names match this regex
    #[arg(long, value_name = "REGEX", default_value = Redaction::DEFAULT, requires = "record")]
    redact: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

pub fn run(cli: &Cli, args: &RunArgs) -> Result<u8> {
    let config = cli.load_config()?;
    let plugin_config = plugin_config(&config, &args.plugin)?;
    let store = cli.open_store(&config)?;
    let engine = cli.engine(&config)?;
    let plugin = load_plugin(&engine, plugin_config)?;

    let mut alert = match &args.alert {
        Some(path) => read_alert_file(path)?,
        None => manual_alert(BTreeMap::new()),
    };
    if !args.labels.is_empty() || args.alert.is_none() {
        let mut labels: BTreeMap<String, String> = alert.labels.into_iter().collect();
        labels.extend(args.labels.iter().cloned());
        alert.fingerprint = fingerprint(&labels);
        alert.labels = labels.into_iter().collect();
    }
    let given: BTreeMap<String, String> = args.params.iter().cloned().collect();
    let params = resolve_params(&plugin, &plugin_config.params, &given).map_err(UsageError)?;

    // Asked to sign the trail, a run that could not would leave it unsigned.
    let signer = (config.audit.signing_key_file.as_deref())
        .map(crate::store::read_signing_key)
        .transpose()
        .map_err(|e| UsageError(format!("[audit] signing_key_file: {e}")))?;
    let redaction = Redaction::new(&args.redact)
        .map_err(|e| UsageError(format!("--redact {:?}: {e}", args.redact)))?;
    let dry_run = !args.apply;
    // A plugin granted anything on this node acts only for alerts about it.
    let runs_on = RunsOn::for_plugin(&plugin_config.grants.on_this_node());
    let alert_labels = alert.labels.clone();
    let result = run_by_hand(
        &engine,
        &store,
        RunRequest {
            plugin: &plugin,
            alert,
            params,
            dry_run,
            max_rounds: args.max_rounds.unwrap_or(plugin_config.max_rounds),
            approval: false,
            approved: None,
            node: config
                .node
                .place(runs_on, &alert_labels, crate::node::From::ByHand),
            // By hand, the operator is the judge of whether the alert holds.
            confirm: None,
            record: args.record.is_some(),
            park: false,
            resumed: false,
        },
    );
    let report = match result {
        Ok(report) => report,
        Err(aborted) => {
            if args.output == Output::Text {
                print!("{}", output::rounds(&aborted.rounds));
            }
            return Err(aborted.into());
        }
    };
    if let Some(key) = &signer {
        store.checkpoint(key)?;
    }
    if let Some(path) = &args.record {
        let node = engine.env().node_name.to_string();
        let world = World::of_run(&plugin, &node, &report.rounds, &redaction);
        world.save(path)?;
        eprintln!(
            "recorded {} rounds and {} reads to {}; replay with: remedy plugins test {} --world {}",
            world.rounds.len(),
            world.reads(),
            path.display(),
            plugin.name,
            path.display()
        );
    }
    print_report(args.output, &plugin, &report, &store)
}

/// Print a finished run as asked, and give its exit status.
pub fn print_report(
    format: Output,
    plugin: &crate::engine::LoadedPlugin,
    report: &crate::run::RunReport,
    store: &crate::store::Store,
) -> Result<u8> {
    match format {
        Output::Text => print!("{}", output::run_report(plugin, report)),
        Output::Json => {
            let detail = store.get_run(&report.id)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&detail).context("encoding the run")?
            );
        }
    }
    Ok(status_code(report.status))
}

pub fn status_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded => exit::SUCCESS,
        RunStatus::NothingToDo => exit::NOTHING_TO_DO,
        RunStatus::Escalated => exit::ESCALATED,
        RunStatus::Denied => exit::DENIED,
        RunStatus::Failed
        | RunStatus::TimedOut
        | RunStatus::Trapped
        | RunStatus::Interrupted
        // A run started by hand never queues, waits for approval or parks.
        | RunStatus::Running
        | RunStatus::Queued
        | RunStatus::Cancelled
        | RunStatus::AwaitingApproval
        | RunStatus::Waiting => exit::FAILED,
    }
}
