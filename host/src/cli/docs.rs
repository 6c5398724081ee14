//! `remedy completions SHELL` and `remedy man`: generated from the
//! commands' own definitions, so they never fall behind them.

use super::{Cli, exit};
use anyhow::Result;
use clap::CommandFactory;

/// Completions for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "remedy", &mut std::io::stdout());
    Ok(exit::SUCCESS)
}

/// The man page, as roff, on stdout.
pub fn man() -> Result<u8> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(exit::SUCCESS)
}
