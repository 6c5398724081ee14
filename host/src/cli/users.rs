//! `remedy hash-password`: the bcrypt hash of a password, for a user of
//! `[server] users_file`.

use super::{UsageError, exit};
use anyhow::Result;
use std::io::BufRead;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Reads the password from the first line of standard input, so it stays out of
the shell's history and the process list, and prints its bcrypt hash:

  remedy hash-password < /dev/tty        # type it, then Enter
  printf '%s\\n' \"$PASSWORD\" | remedy hash-password

Put the hash in the users file that [server] users_file names, with the
user's roles (post, read, decide):

  [basic_auth_users]
  alice = \"$2b$12$...\"

  [roles]
  alice = [\"read\", \"decide\"]")]
pub struct HashPasswordArgs {
    /// bcrypt cost: each step doubles the work of checking a guess (4 to 31)
    #[arg(long, default_value_t = bcrypt::DEFAULT_COST)]
    cost: u32,
}

pub fn hash_password(args: &HashPasswordArgs) -> Result<u8> {
    if !(4..=31).contains(&args.cost) {
        return Err(UsageError(format!("--cost {}: use 4 to 31", args.cost)).into());
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(UsageError("no password on standard input".into()).into());
    }
    println!("{}", bcrypt::hash(password, args.cost)?);
    Ok(exit::SUCCESS)
}
