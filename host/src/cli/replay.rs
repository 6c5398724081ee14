//! `remedy plugins test` and `remedy plugins diff`: replay a recorded world
//! (`remedy run --record`) with a plugin, and compare the plans it makes.

use super::{Cli, UsageError, exit, load_plugin, output, parse_pair, plugin_config};
use crate::caps::HostEnv;
use crate::config::{Config, Source};
use crate::engine::{LoadedPlugin, PluginEngine};
use crate::text::one_line;
use crate::world::{self, Replayed, World};
use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(after_help = "\
The plugin runs in the real engine with the limits and grants the config gives
it; every read is answered from the recording, and a read that is not in it
fails as unavailable, naming the call. Nothing on this host is read or changed.

Exit status: 0 when every round's plan is the expected one (by default, the
recorded one), 1 when one differs (the difference is shown), 2 on a usage error.

Examples:
  remedy run disk-cleanup --record incident.json
  remedy plugins test disk-cleanup --world incident.json
  remedy plugins test ./target/disk-cleanup.wasm --world incident.json --param keep_days=3
  remedy plugins test disk-cleanup --world incident.json --output json > plan.json
  remedy plugins test disk-cleanup --world incident.json --expect plan.json")]
pub struct TestArgs {
    /// The plugin: a configured name, or a .wasm file (then the config's grants
    /// and limits for the recorded plugin apply)
    plugin: String,

    /// The recorded world, from `remedy run --record`
    #[arg(long, value_name = "FILE")]
    world: PathBuf,

    /// Replace a recorded parameter; repeat for more
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_pair)]
    params: Vec<(String, String)>,

    /// The plans expected, as `--output json` prints them [default: the recorded plans]
    #[arg(long, value_name = "PLAN.json")]
    expect: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = super::run::Output::Text)]
    output: super::run::Output,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Both plugins replay the same recorded world under the config's grants and
limits for the recorded plugin. Exit status: 0 when they plan alike, 1 when
they differ (the difference is shown).

Example:
  remedy plugins diff disk-cleanup ./new/disk-cleanup.wasm --world incident.json")]
pub struct DiffArgs {
    /// The plugin as it is: a configured name or a .wasm file
    old: String,
    /// The plugin as it would be: a configured name or a .wasm file
    new: String,
    /// The recorded world, from `remedy run --record`
    #[arg(long, value_name = "FILE")]
    world: PathBuf,
    /// Replace a recorded parameter, for both; repeat for more
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_pair)]
    params: Vec<(String, String)>,
}

pub fn test(cli: &Cli, args: &TestArgs) -> Result<u8> {
    let world = World::load(&args.world)?;
    let config = cli.load_config()?;
    let engine = replay_engine(cli, &config, &world)?;
    let plugin = plugin_for(&engine, &config, &args.plugin, &world)?;
    let replayed = world::replay(&engine, &plugin, &world, &args.params)?;
    let outcomes = outcomes(&replayed);
    let (expected, source) = match &args.expect {
        Some(path) => (read_expected(path)?, path.display().to_string()),
        None => (recorded_outcomes(&world), "the recording".to_string()),
    };
    let difference = world::diff(&expected, &outcomes, (&source, "this replay"));
    match args.output {
        super::run::Output::Json => println!("{}", serde_json::to_string_pretty(&outcomes)?),
        super::run::Output::Text => print!("{}", report(&plugin, &world, &replayed)),
    }
    match difference {
        None => {
            eprintln!("every round planned as {source} says");
            Ok(exit::SUCCESS)
        }
        Some(diff) => {
            eprintln!("the plans differ from {source}:\n{diff}");
            Ok(exit::FAILED)
        }
    }
}

pub fn diff(cli: &Cli, args: &DiffArgs) -> Result<u8> {
    let world = World::load(&args.world)?;
    let config = cli.load_config()?;
    let engine = replay_engine(cli, &config, &world)?;
    let mut plans = Vec::new();
    for given in [&args.old, &args.new] {
        let plugin = plugin_for(&engine, &config, given, &world)?;
        let replayed = world::replay(&engine, &plugin, &world, &args.params)?;
        plans.push(outcomes(&replayed));
    }
    match world::diff(&plans[0], &plans[1], (&args.old, &args.new)) {
        None => {
            println!("{} and {} plan alike on this world", args.old, args.new);
            Ok(exit::SUCCESS)
        }
        Some(diff) => {
            print!("{diff}");
            Ok(exit::FAILED)
        }
    }
}

/// The config's engine, its plugins told they run on the recorded node.
/// Nothing it reaches is asked: every read is answered from the recording.
fn replay_engine(cli: &Cli, config: &Config, world: &World) -> Result<PluginEngine> {
    Ok(cli
        .engine(config)?
        .with_env(HostEnv::default().named(&world.node)))
}

/// `given` loaded with the config's grants and limits for the plugin that
/// made the recording: a configured name, or a .wasm file standing in for it.
fn plugin_for(
    engine: &PluginEngine,
    config: &Config,
    given: &str,
    world: &World,
) -> Result<LoadedPlugin> {
    let is_file = given.ends_with(".wasm") || Path::new(given).is_file();
    if !is_file {
        return load_plugin(engine, plugin_config(config, given)?);
    }
    let recorded = &world.plugin.name;
    let mut configured = plugin_config(config, recorded)
        .with_context(|| {
            format!(
                "a replay takes the grants and limits of `{recorded}`, which recorded the world"
            )
        })?
        .clone();
    configured.source = Source::File(PathBuf::from(given));
    configured.sha256 = None;
    load_plugin(engine, &configured)
}

fn outcomes(replayed: &[Replayed]) -> Value {
    Value::Array(replayed.iter().map(Replayed::outcome).collect())
}

fn recorded_outcomes(world: &World) -> Value {
    let rounds = world
        .rounds
        .iter()
        .map(|round| world::outcome(round.plan.as_ref(), round.failure.as_deref()));
    Value::Array(rounds.collect())
}

fn read_expected(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("--expect {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        UsageError(format!(
            "--expect {}: not the JSON `remedy plugins test --output json` prints: {e}",
            path.display()
        ))
        .into()
    })
}

/// The replay as a dry-run shows a run, with what the recording held that
/// the plugin did not ask for.
fn report(plugin: &LoadedPlugin, world: &World, replayed: &[Replayed]) -> String {
    let mut out = format!(
        "{} {} replayed on the world recorded {} on node {} by {} {} ({} rounds, {} reads)\n\n",
        plugin.name,
        one_line(&plugin.info.version),
        world.recorded_at,
        one_line(&world.node),
        world.plugin.name,
        one_line(&world.plugin.version),
        world.rounds.len(),
        world.reads(),
    );
    for replay in replayed {
        out.push_str(&output::rounds(std::slice::from_ref(&replay.report)));
        if let Some(failure) = &replay.failure {
            out.push_str(&format!("  failed: {}\n", one_line(failure)));
        }
        if !replay.unasked.is_empty() {
            out.push_str(&format!(
                "  {} recorded reads were not asked for, first {}\n",
                replay.unasked.len(),
                replay.unasked[0].call
            ));
        }
    }
    out
}
