//! `remedy routes test`: which route and plugin an alert would go to, and
//! why; `remedy routes breakers` and `remedy routes reset`: the circuit breakers.

use super::{Cli, UsageError, exit, output::table, parse_pair, read_alert_file};
use crate::config::RouteConfig;
use crate::node::NodeIdentity;
use crate::router::{Verdict, evaluate};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Show which routes an alert with these labels takes, and why each other route does not.
    /// Exits 0 when some route matches, 3 when none does.
    #[command(
        after_help = "Example:\n  remedy routes test --label alertname=DiskSpaceLow --label instance=node-1:9100"
    )]
    Test {
        /// Alert label; repeat for more
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_pair)]
        labels: Vec<(String, String)>,
        /// Take the labels from an alert file (webhook payload with one alert, or one alert)
        #[arg(long, value_name = "FILE")]
        alert: Option<PathBuf>,
    },
    /// List the routes whose circuit breaker is open (held in dry-run), and why
    Breakers,
    /// Close a route's circuit breaker: its runs execute in the route's own mode again
    Reset {
        /// Route name, as in the config
        route: String,
    },
}

pub fn routes(cli: &Cli, command: &RoutesCommand) -> Result<u8> {
    let (labels, alert) = match command {
        RoutesCommand::Test { labels, alert } => (labels, alert),
        RoutesCommand::Breakers => return breakers(cli),
        RoutesCommand::Reset { route } => return reset(cli, route),
    };
    let config = cli.load_config()?;
    let mut all = match alert {
        Some(path) => read_alert_file(path)?.labels,
        None => Vec::new(),
    };
    for (name, value) in labels {
        all.retain(|(existing, _)| existing != name);
        all.push((name.clone(), value.clone()));
    }
    all.sort();

    let shown: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    println!(
        "alert {{{}}} in the {} config:",
        shown.join(", "),
        config.origin
    );
    let verdicts = evaluate(&config.routes, &all);
    let rows: Vec<Vec<String>> = verdicts
        .iter()
        .enumerate()
        .map(|(index, (route, verdict))| {
            vec![
                (index + 1).to_string(),
                route.name.clone(),
                verdict.word().to_string(),
                route.plugin.clone(),
                route.mode.as_str().to_string(),
                runs_where(&config.node, route, &all),
                verdict.explain(route, &all),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["#", "ROUTE", "RESULT", "PLUGIN", "MODE", "RUNS ON", "WHY"],
            &rows
        )
    );
    if verdicts.iter().any(|(_, v)| matches!(v, Verdict::Matched)) {
        Ok(exit::SUCCESS)
    } else {
        println!("no route matches: remedy would not remediate such an alert");
        Ok(exit::NOTHING_TO_DO)
    }
}

fn breakers(cli: &Cli) -> Result<u8> {
    let config = cli.load_config()?;
    let open = cli.open_store(&config)?.breakers()?;
    if open.is_empty() {
        println!("no circuit breaker is open");
        return Ok(exit::SUCCESS);
    }
    let rows: Vec<Vec<String>> = open
        .into_iter()
        .map(|(route, since, reason)| vec![route, since, reason])
        .collect();
    print!("{}", table(&["ROUTE", "OPEN SINCE", "WHY"], &rows));
    Ok(exit::SUCCESS)
}

fn reset(cli: &Cli, route: &str) -> Result<u8> {
    let config = cli.load_config()?;
    if !config.routes.iter().any(|r| r.name == route) {
        let known: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        return Err(UsageError(format!(
            "no route `{route}` in the {} config; routes: {}",
            config.origin,
            known.join(", ")
        ))
        .into());
    }
    if cli
        .open_store(&config)?
        .reset_breaker(route, "remedy routes reset")?
    {
        println!("circuit breaker of route `{route}` closed: its runs use the route's mode again");
    } else {
        println!("circuit breaker of route `{route}` was not open");
    }
    Ok(exit::SUCCESS)
}

/// Where a run of `route` for an alert with `labels` would execute.
fn runs_where(node: &NodeIdentity, route: &RouteConfig, labels: &[(String, String)]) -> String {
    let placement = node.place(route.runs_on, labels, crate::node::From::Webhook);
    match (placement.node, placement.refusal) {
        (None, None) => "any node".into(),
        (Some(node), None) => format!("{node} (here)"),
        (Some(node), Some(_)) => format!("{node}: not here, escalated"),
        (None, Some(_)) => "unknown node: escalated".into(),
    }
}
