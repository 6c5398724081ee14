//! `remedy runs list` and `remedy runs show ID`.

use super::output::{ACTION_COLUMNS, action_row, checks, table};
use super::run::Output;
use super::{Cli, UsageError, exit};
use crate::store::{RoundRecord, RunDetail, RunFilter, RunStatus};
use crate::text::one_line;
use anyhow::Result;
use clap::Subcommand;
use std::fmt::Write;
use std::time::SystemTime;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs, newest first
    List {
        /// Only runs of this plugin
        #[arg(long)]
        plugin: Option<String>,
        /// Only runs started by this route
        #[arg(long)]
        route: Option<String>,
        /// Only runs for this node
        #[arg(long)]
        node: Option<String>,
        /// Only runs in this state: succeeded, nothing-to-do, escalated, failed, denied, timed-out, trapped, interrupted, running, queued, cancelled, awaiting-approval, waiting
        #[arg(long, value_parser = parse_status)]
        status: Option<RunStatus>,
        /// Only runs created since: a time (2026-11-21T08:00:00Z) or an age (2h)
        #[arg(long, value_parser = crate::config::parse_since)]
        since: Option<SystemTime>,
        /// How many
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// One run: alert, params, every round's plan, every action and its result, logs
    Show {
        /// Run id, or an unambiguous prefix of it
        id: String,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

fn parse_status(text: &str) -> Result<RunStatus, String> {
    RunStatus::parse(text).ok_or_else(|| {
        let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown status {text:?}; one of {}", all.join(", "))
    })
}

pub fn runs(cli: &Cli, command: &RunsCommand) -> Result<u8> {
    let config = cli.load_config()?;
    let store = cli.open_store(&config)?;
    match command {
        RunsCommand::List {
            plugin,
            route,
            node,
            status,
            since,
            limit,
            output,
        } => {
            let runs = store.list_runs(&RunFilter {
                plugin: plugin.clone(),
                route: route.clone(),
                node: node.clone(),
                status: *status,
                since: *since,
                limit: *limit,
            })?;
            if *output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(exit::SUCCESS);
            }
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        r.created_at.clone(),
                        r.plugin.clone(),
                        r.route.clone().unwrap_or_else(|| r.trigger.clone()),
                        r.node.clone().unwrap_or_else(|| "any".into()),
                        if r.dry_run { "dry-run" } else { "apply" }.into(),
                        r.status.as_str().into(),
                        r.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "ID", "CREATED", "PLUGIN", "ROUTE", "NODE", "MODE", "STATUS", "REASON"
                    ],
                    &rows
                )
            );
            Ok(exit::SUCCESS)
        }
        RunsCommand::Show { id, output } => {
            let run = store.get_run(id).map_err(|e| UsageError(e.to_string()))?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&run)?),
                Output::Text => print!("{}", show(&run)),
            }
            Ok(exit::SUCCESS)
        }
    }
}

fn show(run: &RunDetail) -> String {
    let mut out = header(run);
    for round in &run.rounds {
        out.push_str(&round_section(run, round));
    }
    for line in &run.logs {
        let _ = writeln!(
            out,
            "log round {} {:<6} {}",
            line.round + 1,
            line.level,
            one_line(&line.message)
        );
    }
    out
}

/// Who ran what, when, on which alert and params, and how it ended.
fn header(run: &RunDetail) -> String {
    let s = &run.summary;
    let mut out = String::new();
    let _ = writeln!(out, "run       {}", s.id);
    let _ = writeln!(
        out,
        "plugin    {} {} (sha256 {})",
        s.plugin,
        one_line(&run.plugin_version),
        run.plugin_sha256
    );
    let route = s.route.as_ref().map(|r| format!(" · route {r}"));
    let mode = if s.dry_run { "dry-run" } else { "apply" };
    let node = s.node.as_deref().unwrap_or("any");
    let _ = writeln!(
        out,
        "trigger   {}{} · {mode} · node {}",
        s.trigger,
        route.unwrap_or_default(),
        one_line(node)
    );
    let queued = s
        .queue_ms
        .filter(|q| *q > 0)
        .map(|q| format!(" · queued {q} ms"));
    let took = s.duration_ms.map(|d| format!(" · took {d} ms"));
    let _ = writeln!(
        out,
        "created   {}{}{}",
        s.created_at,
        queued.unwrap_or_default(),
        took.unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "alert     {{{}}} {} fingerprint {}",
        pairs(&run.alert.labels, "=\"", "\"").join(", "),
        run.alert.status.as_str(),
        run.alert.fingerprint
    );
    let _ = writeln!(out, "params    {}", pairs(&run.params, "=", "").join(" "));
    let _ = writeln!(
        out,
        "status    {}: {}\n",
        s.status.as_str(),
        one_line(s.reason.as_deref().unwrap_or(""))
    );
    out
}

/// `key=value` for each pair, both shown as one safe line.
fn pairs(pairs: &[(String, String)], between: &str, after: &str) -> Vec<String> {
    pairs
        .iter()
        .map(|(k, v)| format!("{}{between}{}{after}", one_line(k), one_line(v)))
        .collect()
}

/// One round: its summary, checks, actions and escalation.
fn round_section(run: &RunDetail, round: &RoundRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "round {}: {} (instantiate {} µs, plan {} µs)",
        round.round + 1,
        one_line(&round.plan.summary),
        round.instantiate_us,
        round.plan_us
    );
    if !round.plan.checks.is_empty() {
        out.push_str(&checks(&round.plan.checks));
    }
    let actions: Vec<Vec<String>> = run
        .actions
        .iter()
        .filter(|a| a.round == round.round)
        .map(|a| action_row(a.seq as usize, &a.action, &a.status, &a.detail))
        .collect();
    if !actions.is_empty() {
        out.push_str(&table(&ACTION_COLUMNS, &actions));
    }
    if let Some(why) = &round.plan.escalate {
        let _ = writeln!(out, "  escalate: {}", one_line(why));
    }
    out.push('\n');
    out
}
