//! `remedy approve RUN` and `remedy reject RUN`: decide on a plan that an
//! `approve` route recorded. Approving executes exactly that plan, here and
//! now (unless a running `remedy serve` takes it first); anything else the
//! plugin proposes is refused.

use super::run::{Output, print_report};
use super::{Cli, UsageError, exit, load_plugin, plugin_config};
use crate::run::{RunRequest, drive, started_record};
use crate::store::{ApprovalError, ClaimRules, ClaimedRun};
use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
The plan's hash is shown by `remedy runs show RUN`; the approval is audited
with who approved it and when. A plan older than approval_ttl (default 1h)
can no longer be approved.

Example:
  remedy runs list --status awaiting-approval
  remedy approve 01a1fe0b --by alice")]
pub struct ApproveArgs {
    /// Run id (or a unique prefix) awaiting approval
    run: String,
    /// Who approves [default: $SUDO_USER or $USER]
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// Run id (or a unique prefix) awaiting approval
    run: String,
    /// Who rejects [default: $SUDO_USER or $USER]
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Why, for the audit trail
    #[arg(long, default_value = "no reason given")]
    reason: String,
}

fn who(by: &Option<String>) -> String {
    let user = by
        .clone()
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown user".into());
    format!("{user} via the command line")
}

fn refused(error: ApprovalError) -> anyhow::Error {
    match error {
        ApprovalError::Store(e) => e.into(),
        usage @ (ApprovalError::NotFound(_) | ApprovalError::NotAwaiting { .. }) => {
            UsageError(usage.to_string()).into()
        }
        expired @ ApprovalError::Expired { .. } => anyhow::anyhow!(expired),
    }
}

pub fn approve(cli: &Cli, args: &ApproveArgs) -> Result<u8> {
    let config = cli.load_config()?;
    let store = cli.open_store(&config)?;
    let approved = store
        .approve(&args.run, &who(&args.by), config.approval_ttl)
        .map_err(refused)?;
    eprintln!(
        "run {} approved: plan {} ({} actions)",
        approved.id,
        &approved.plan_hash[..16],
        approved.actions
    );
    if store.is_shared() {
        // The fleet's agents take it from the shared queue: the one on the
        // run's node executes it, with that node's own grants.
        println!(
            "run {} is queued; the remedy on its node executes it",
            approved.id
        );
        return Ok(exit::SUCCESS);
    }
    let plugin_config = plugin_config(&config, &approved.plugin)?;
    let engine = cli.engine(&config)?;
    let plugin = load_plugin(&engine, plugin_config)?;
    let started = |claimed: &ClaimedRun| {
        started_record(
            Some(&plugin),
            &claimed.plugin,
            false,
            false,
            claimed.approved.as_deref(),
        )
    };
    let Some(claimed) = store
        .claim(&approved.id, &ClaimRules::default(), started)?
        .taken()
    else {
        println!(
            "run {} is being executed by a running remedy serve",
            approved.id
        );
        return Ok(exit::SUCCESS);
    };
    let route = claimed
        .route
        .as_deref()
        .and_then(|name| config.routes.iter().find(|r| r.name == name));
    let max_rounds = route
        .and_then(|r| r.max_rounds)
        .unwrap_or(plugin_config.max_rounds);
    let alertmanager = crate::confirm::Alertmanager::from_settings(
        &config.alertmanager,
        engine.env().bridge.clone(),
    );
    let confirm =
        route.and_then(|route| crate::confirm::Confirm::for_route(route, alertmanager.as_ref()));
    let report = drive(
        &engine,
        &store,
        claimed.id.clone(),
        RunRequest {
            plugin: &plugin,
            alert: claimed.alert,
            params: claimed.params,
            dry_run: false,
            approval: false,
            approved: claimed.approved,
            max_rounds,
            node: config.node.recheck(claimed.node),
            confirm,
            record: false,
            // Approved by hand, executed here: this command waits between rounds.
            park: false,
            resumed: claimed.resumed,
        },
    )?;
    print_report(args.output, &plugin, &report, &store)
}

pub fn reject(cli: &Cli, args: &RejectArgs) -> Result<u8> {
    let config = cli.load_config()?;
    let store = cli.open_store(&config)?;
    store
        .reject(&args.run, &who(&args.by), &args.reason)
        .map_err(refused)?;
    println!("run {} rejected: nothing was executed", args.run);
    Ok(exit::SUCCESS)
}
