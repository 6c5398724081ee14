//! `remedy config check` and `remedy config show`.

use super::{Cli, exit, load_plugin};
use crate::builtin;
use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the config, then load every plugin against its grants
    Check,
    /// Print the built-in default config, a starting point for your own
    Show,
}

pub fn config(cli: &Cli, command: &ConfigCommand) -> Result<u8> {
    match command {
        ConfigCommand::Show => {
            print!("{}", builtin::DEFAULT_CONFIG);
            Ok(exit::SUCCESS)
        }
        ConfigCommand::Check => {
            let config = cli.load_config()?;
            let engine = cli.engine(&config)?;
            let mut failures = 0;
            for plugin in &config.plugins {
                match load_plugin(&engine, plugin) {
                    Ok(loaded) => println!(
                        "ok    plugin {} {} ({})",
                        loaded.name, loaded.info.version, plugin.source
                    ),
                    Err(error) => {
                        failures += 1;
                        println!("FAIL  plugin {}: {error:#}", plugin.name);
                    }
                }
            }
            if failures == 0 {
                println!(
                    "config {} is valid: {} plugins",
                    config.origin,
                    config.plugins.len()
                );
                Ok(exit::SUCCESS)
            } else {
                println!(
                    "config {}: {failures} plugin(s) cannot be loaded",
                    config.origin
                );
                Ok(exit::USAGE)
            }
        }
    }
}
