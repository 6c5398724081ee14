//! `remedy plugins list` and `remedy plugins inspect NAME`; `test` and
//! `diff` are in `replay.rs`.

use super::{Cli, load_plugin, output::table, plugin_config};
use crate::caps::Grants;
use crate::engine::LoadedPlugin;
use crate::engine::cache::CacheUse;
use crate::text::one_line;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::fmt::Write;

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every configured plugin, loaded and described
    List,
    /// One plugin in full: version, sha256, imports, params, actions, grants, limits
    Inspect {
        /// Plugin name, as in the config
        name: String,
    },
    /// Replay a world recorded with `remedy run --record`: the real plugin in
    /// the real engine, every read answered from the recording
    Test(super::replay::TestArgs),
    /// How two versions of a plugin plan on the same recorded world
    Diff(super::replay::DiffArgs),
    /// Create a plugin project, in Rust or Python, that builds and passes its tests
    New(super::scaffold::NewArgs),
    /// The WIT contract this remedy speaks, `remedy:plugin@0.2.0`: printed,
    /// or written as files to build a plugin against
    Wit {
        /// Write the package's .wit files into this directory instead
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
}

pub fn plugins(cli: &Cli, command: &PluginsCommand) -> Result<u8> {
    match command {
        PluginsCommand::List => list(cli),
        PluginsCommand::Inspect { name } => inspect_one(cli, name),
        PluginsCommand::Test(args) => super::replay::test(cli, args),
        PluginsCommand::Diff(args) => super::replay::diff(cli, args),
        PluginsCommand::Wit { out } => wit(out.as_deref()),
        PluginsCommand::New(args) => super::scaffold::new(cli, args),
    }
}

fn wit(out: Option<&std::path::Path>) -> Result<u8> {
    use remedy_contract::{PACKAGE, WIT_FILES};
    let Some(dir) = out else {
        for (name, text) in WIT_FILES {
            println!("// {PACKAGE}: {name}\n{text}");
        }
        return Ok(super::exit::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in WIT_FILES {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "wrote the {} files of {PACKAGE} to {}",
        WIT_FILES.len(),
        dir.display()
    );
    Ok(super::exit::SUCCESS)
}

fn list(cli: &Cli) -> Result<u8> {
    let config = cli.load_config()?;
    let engine = cli.engine(&config)?;
    let mut rows = Vec::new();
    for plugin_config in &config.plugins {
        let row = match load_plugin(&engine, plugin_config) {
            Ok(plugin) => vec![
                plugin.name.clone(),
                plugin.info.version.clone(),
                plugin_config.source.to_string(),
                plugin.info.action_kinds.join(","),
                plugin
                    .info
                    .description
                    .split(". ")
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ],
            Err(error) => vec![
                plugin_config.name.clone(),
                "-".into(),
                plugin_config.source.to_string(),
                "-".into(),
                format!("NOT LOADABLE: {error:#}"),
            ],
        };
        rows.push(row);
    }
    println!("plugins in the {} config:", config.origin);
    print!(
        "{}",
        table(&["NAME", "VERSION", "SOURCE", "ACTIONS", "ABOUT"], &rows)
    );
    Ok(super::exit::SUCCESS)
}

fn inspect_one(cli: &Cli, name: &str) -> Result<u8> {
    let config = cli.load_config()?;
    let engine = cli.engine(&config)?;
    let plugin_config = plugin_config(&config, name)?;
    let plugin = load_plugin(&engine, plugin_config)?;
    print!(
        "{}",
        inspect(
            &plugin,
            &plugin_config.source.to_string(),
            &plugin_config.params
        )
    );
    Ok(super::exit::SUCCESS)
}

fn inspect(
    plugin: &LoadedPlugin,
    source: &str,
    configured: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    let info = &plugin.info;
    let _ = writeln!(
        out,
        "name:        {} (describes itself as `{}`)",
        plugin.name, info.name
    );
    let _ = writeln!(out, "version:     {}", one_line(&info.version));
    let _ = writeln!(out, "source:      {source}");
    let _ = writeln!(out, "sha256:      {}", plugin.sha256);
    let _ = writeln!(
        out,
        "compiled:    {}",
        match plugin.cache {
            CacheUse::Hit => "from the cache",
            CacheUse::Compiled => "just now",
        }
    );
    let _ = writeln!(out, "about:       {}", one_line(&info.description));
    let _ = writeln!(out, "limits:      {}", plugin.limits);
    let _ = writeln!(out, "actions:     {}", plugin.proposes());
    out.push_str("\nimports:\n");
    for (import, missing) in plugin.imports_and_grants() {
        let note = missing
            .map(|grant| format!("  (not granted: calls are denied; {grant} allows it)"))
            .unwrap_or_default();
        let _ = writeln!(out, "  {import}{note}");
    }
    out.push_str("\nparams:\n");
    let rows: Vec<Vec<String>> = info
        .params
        .iter()
        .map(|p| {
            let value = match (configured.get(&p.name), &p.default) {
                (Some(set), _) => format!("{set} (config)"),
                (None, Some(default)) => default.clone(),
                (None, None) => "-".into(),
            };
            vec![p.name.clone(), value, p.description.clone()]
        })
        .collect();
    out.push_str(&table(&["NAME", "VALUE", "MEANING"], &rows));
    out.push_str("\ngrants:\n");
    out.push_str(&grants(&plugin.grants));
    out
}

/// Every grant key with its values, so a new kind of grant shows up here by itself.
fn grants(grants: &Grants) -> String {
    let serde_json::Value::Object(keys) = serde_json::to_value(grants).unwrap_or_default() else {
        return String::new();
    };
    let width = keys.keys().map(String::len).max().unwrap_or(0);
    keys.iter()
        .map(|(key, value)| {
            let items: Vec<String> = value
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| item.as_str().map_or_else(|| item.to_string(), String::from))
                .collect();
            let shown = match items.is_empty() {
                true if key == "nomad_namespaces" => "(none: default only)".to_string(),
                true => "(none)".to_string(),
                false => items.join(", "),
            };
            format!("  {key:width$}  {shown}\n")
        })
        .collect()
}
