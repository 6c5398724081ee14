//! `remedy plugins new NAME`: a ready plugin project in Rust or Python,
//! which builds and passes its tests as generated. Templates are in
//! `host/templates/scaffold/`; the recorded world its test replays is made
//! here from the same numbers the skeleton's check shows.

use super::{Cli, UsageError, exit};
use crate::caps::Grants;
use crate::caps::journal::{Answer, HostCall};
use crate::contract::fs::DiskUsage;
use crate::contract::{Check, CheckStatus, Incident, Plan};
use crate::world::{self, RecordedPlugin, World};
use anyhow::{Context, Result};
use askama::Template;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  remedy plugins new disk-watch                 a Rust project in ./disk-watch
  remedy plugins new disk-watch --lang python   the same plugin in Python
Then follow the README it writes: build, test, run.")]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and dashes
    name: String,

    /// The language to write it in
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,

    /// Where to create it [default: ./NAME]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// The Rust SDK to depend on, a path [default: remedy's own source, when this remedy was built from it; else remedy-sdk from crates.io]
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
}

/// What every file of a project is made from.
struct Project {
    name: String,
    /// The name as a Rust crate and wasm file: dashes as underscores.
    crate_name: String,
    /// The name as a type: `disk-watch` is `DiskWatch`.
    type_name: String,
    /// The Rust SDK dependency line.
    sdk: String,
    /// The `[plugin.grants]` lines.
    grants: String,
}

/// One template struct per generated file, each made from the [`Project`].
macro_rules! scaffold_files {
    ($($template:ident => $path:literal),* $(,)?) => {
        $(
            #[derive(Template)]
            #[template(path = $path, escape = "none")]
            struct $template<'a> {
                p: &'a Project,
            }

            impl<'a> From<&'a Project> for $template<'a> {
                fn from(p: &'a Project) -> Self {
                    $template { p }
                }
            }
        )*
    };
}

scaffold_files! {
    RustManifest => "scaffold/rust/Cargo.toml",
    RustLib => "scaffold/rust/src/lib.rs",
    RustConfig => "scaffold/rust/remedy.toml",
    RustReadme => "scaffold/rust/README.md",
    PythonApp => "scaffold/python/app.py",
    PythonConfig => "scaffold/python/remedy.toml",
    PythonReadme => "scaffold/python/README.md",
}

/// What the skeleton may read: the filesystem holding `/tmp`.
const GRANTS: &str = "fs_read = [\"/tmp\"]";

pub fn new(_cli: &Cli, args: &NewArgs) -> Result<u8> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_some()) {
        return Err(UsageError(format!(
            "{} already exists and is not empty; choose another --dir",
            dir.display()
        ))
        .into());
    }
    let project = Project {
        name: args.name.clone(),
        crate_name: args.name.replace('-', "_"),
        type_name: type_name(&args.name),
        sdk: sdk_dependency(args.sdk.as_deref()),
        grants: GRANTS.to_string(),
    };
    let mut files: Vec<(PathBuf, String)> = match args.lang {
        Lang::Rust => vec![
            ("Cargo.toml".into(), RustManifest::from(&project).render()?),
            ("src/lib.rs".into(), RustLib::from(&project).render()?),
            ("remedy.toml".into(), RustConfig::from(&project).render()?),
            ("README.md".into(), RustReadme::from(&project).render()?),
            (".gitignore".into(), "/target\n".into()),
        ],
        Lang::Python => python_files(&project)?,
    };
    let world = example_world(&project.name)?;
    files.push((
        "tests/world.json".into(),
        serde_json::to_string_pretty(&world)? + "\n",
    ));
    for (path, text) in &files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir))
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "created {} ({} plugin, {} files); next: cd {} and follow its README.md",
        dir.display(),
        match args.lang {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
        },
        files.len(),
        dir.display()
    );
    Ok(exit::SUCCESS)
}

fn python_files(project: &Project) -> Result<Vec<(PathBuf, String)>> {
    let mut files = vec![
        ("app.py".into(), PythonApp::from(project).render()?),
        ("remedy.toml".into(), PythonConfig::from(project).render()?),
        ("README.md".into(), PythonReadme::from(project).render()?),
        (
            "remedy_sdk/__init__.py".into(),
            include_str!("../../../plugins/sdk-python/remedy_sdk/__init__.py").into(),
        ),
        (".gitignore".into(), "*.wasm\n__pycache__/\n".into()),
    ];
    for (name, text) in remedy_contract::WIT_FILES {
        files.push((Path::new("wit").join(name), text.to_string()));
    }
    Ok(files)
}

fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        return Ok(());
    }
    Err(UsageError(format!(
        "{name:?} is not a plugin name: lowercase letters, digits and dashes, starting with a letter, at most 64"
    ))
    .into())
}

fn type_name(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// remedy's own SDK when this remedy was built from its source and the
/// source is still there, else the published crate.
fn sdk_dependency(given: Option<&Path>) -> String {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
    let path = given
        .map(Path::to_path_buf)
        .or_else(|| built_from.canonicalize().ok());
    match path {
        Some(path) => {
            // A TOML string, quoted and escaped as TOML says.
            let quoted = toml::Value::String(path.display().to_string());
            format!("remedy-sdk = {{ path = {quoted} }}")
        }
        None => format!("remedy-sdk = \"{}\"", env!("CARGO_PKG_VERSION")),
    }
}

/// A recorded world for the skeleton: `/tmp` on a filesystem 75 % full,
/// and the plan the skeleton makes of it, check for check.
fn example_world(name: &str) -> Result<World> {
    let grants: Grants = toml::from_str(GRANTS)?;
    let params = vec![
        ("path".to_string(), "/tmp".to_string()),
        ("warn_above".to_string(), "90".to_string()),
    ];
    let gib: u64 = 1 << 30;
    let usage = DiskUsage {
        mount_point: "/tmp".into(),
        device: 43,
        total_bytes: 10 * gib,
        available_bytes: 10 * gib / 4,
        used_bytes: 30 * gib / 4,
    };
    let plan = Plan {
        summary: "/tmp is 75 % used".into(),
        checks: vec![Check {
            name: "usage".into(),
            status: CheckStatus::Pass,
            detail: "75 % used, warn above 90 %".into(),
        }],
        actions: Vec::new(),
        escalate: None,
        recheck_after_secs: None,
        memo: None,
    };
    Ok(World {
        remedy_world: world::FORMAT,
        plugin: RecordedPlugin {
            name: name.into(),
            component: name.into(),
            version: "0.1.0".into(),
            sha256: String::new(),
        },
        node: "example-node".into(),
        grants,
        recorded_at: "2026-01-01T00:00:00Z".into(),
        redacted: Vec::new(),
        rounds: vec![world::Round {
            incident: Incident {
                run_id: "example".into(),
                alert: crate::alert::manual_alert(Default::default()),
                params,
                dry_run: true,
                round: 0,
                history: Vec::new(),
                recent: Vec::new(),
                memo: None,
            },
            reads: vec![HostCall {
                call: "fs.usage".into(),
                args: vec!["/tmp".into()],
                answer: Answer::Ok(serde_json::to_value(usage)?),
            }],
            reads_not_kept: 0,
            plan: Some(crate::json::plan(&plan)),
            failure: None,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_spelled_for_each_language() {
        assert!(check_name("disk-watch2").is_ok());
        for bad in [
            "",
            "Disk",
            "2disk",
            "disk_watch",
            "disk watch",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(type_name("disk-watch"), "DiskWatch");
    }
}
