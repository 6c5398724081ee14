//! `remedy config check` and `remedy config show`.

use super::{Cli, exit, load_plugin};
use crate::builtin;
use crate::run::resolve_params;
use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the config, then load every plugin against its grants
    Check,
    /// Print the built-in default config, a starting point for your own
    Show,
    /// Print the config's JSON Schema, for editors that check TOML
    /// (Even Better TOML: put `#:schema ./remedy.schema.json` at the top)
    Schema,
}

pub fn config(cli: &Cli, command: &ConfigCommand) -> Result<u8> {
    match command {
        ConfigCommand::Show => {
            print!("{}", builtin::DEFAULT_CONFIG);
            Ok(exit::SUCCESS)
        }
        ConfigCommand::Schema => {
            println!("{:#}", crate::config::schema());
            Ok(exit::SUCCESS)
        }
        ConfigCommand::Check => {
            // Every problem at once: those in the file, then those only
            // loading its (otherwise valid) plugins shows.
            let crate::config::Checked { config, problems } = cli.check_config()?;
            for problem in &problems {
                println!("FAIL  {problem}");
            }
            let engine = cli.engine(&config)?;
            let mut failures = problems.len();
            let mut loaded = Vec::new();
            for plugin in &config.plugins {
                match load_plugin(&engine, plugin) {
                    Ok(plugin_loaded) => {
                        println!(
                            "ok    plugin {} {} ({})",
                            plugin_loaded.name, plugin_loaded.info.version, plugin.source
                        );
                        for (import, grant) in plugin_loaded.ungranted() {
                            println!(
                                "note  plugin {}: {import} is not granted, so its calls are denied; {grant} allows it",
                                plugin_loaded.name
                            );
                        }
                        loaded.push((plugin, plugin_loaded));
                    }
                    Err(error) => {
                        failures += 1;
                        println!("FAIL  plugin {}: {error:#}", plugin.name);
                    }
                }
            }
            for route in &config.routes {
                let Some((plugin, plugin_loaded)) =
                    loaded.iter().find(|(p, _)| p.name == route.plugin)
                else {
                    continue; // its plugin failed above
                };
                match resolve_params(plugin_loaded, &plugin.params, &route.params) {
                    Ok(_) => println!(
                        "ok    route {} -> {} ({}, {})",
                        route.name,
                        route.plugin,
                        route.mode.as_str(),
                        crate::text::counted(route.matchers.len(), "matcher")
                    ),
                    Err(error) => {
                        failures += 1;
                        println!("FAIL  route {}: {error}", route.name);
                    }
                }
            }
            if failures == 0 {
                println!(
                    "config {} is valid: {} plugins, {} routes",
                    config.origin,
                    config.plugins.len(),
                    config.routes.len()
                );
                Ok(exit::SUCCESS)
            } else {
                println!("config {}: {failures} problem(s)", config.origin);
                Ok(exit::USAGE)
            }
        }
    }
}
