//! {{ p.name }}: a remedy plugin. It reads how full the filesystem holding
//! `path` is, and warns above `warn_above` percent.
//!
//! A plugin looks through the host's read interfaces (`remedy_sdk::fs`,
//! `proc`, `nomad`, `docker`, `http`, `prometheus`, ...), within the grants
//! in `remedy.toml`, and answers with a plan: checks, and actions for remedy
//! to check and carry out. It changes nothing itself.

use remedy_sdk::{Check, Error, Incident, Plan, Plugin, PluginInfo, fs, parse_percent};

pub struct {{ p.type_name }};

impl Plugin for {{ p.type_name }} {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "{{ p.name }}",
            "0.1.0",
            "Reads how full a filesystem is and warns above a threshold.",
        )
        .param("path", "A path on the filesystem to read.", Some("/tmp"))
        .param("warn_above", "Percent used above which it warns.", Some("90"))
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let path = incident.param("path").unwrap_or("/tmp");
        let warn_above = parse_percent(incident.param("warn_above").unwrap_or("90"))
            .map_err(|why| Error::Invalid(format!("parameter `warn_above`: {why}")))?;
        let usage = fs::usage(path)?;
        let size = (usage.used_bytes + usage.available_bytes).max(1);
        let used = usage.used_bytes as f64 * 100.0 / size as f64;
        Ok(Plan::new(format!("{path} is {used:.0} % used")).check(judge(used, warn_above)))
    }
}

/// The verdict on a filesystem `used` percent full: plain Rust, so it is
/// tested natively below, without the host.
pub fn judge(used: f64, warn_above: f64) -> Check {
    let detail = format!("{used:.0} % used, warn above {warn_above:.0} %");
    if used > warn_above {
        Check::warn("usage", detail)
    } else {
        Check::pass("usage", detail)
    }
}

remedy_sdk::export_plugin!({{ p.type_name }});

#[cfg(test)]
mod tests {
    use super::*;
    use remedy_sdk::CheckStatus;

    #[test]
    fn it_warns_only_above_the_threshold() {
        assert_eq!(judge(90.0, 90.0).status, CheckStatus::Pass);
        assert_eq!(judge(90.5, 90.0).status, CheckStatus::Warn);
        assert_eq!(judge(75.0, 90.0).detail, "75 % used, warn above 90 %");
    }
}
