//! docker-prune: free space on the Docker engine, or clear exited
//! containers, by the targets in `targets`. Volumes are never touched.
//!
//! Each target becomes one `docker-prune` action; the host removes exactly
//! what `docker.prune-candidates` lists when it acts, which is what the plan's
//! checks show. The next round reports and stops.

use remedy_sdk::docker::{self, PruneCandidate};
use remedy_sdk::{
    Action, ActionStatus, Check, DockerPruneTarget, Error, Incident, Plan, Plugin, PluginInfo,
    format_bytes, parse_duration,
};

struct DockerPrune;

impl Plugin for DockerPrune {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "docker-prune",
            env!("CARGO_PKG_VERSION"),
            "Prunes stopped containers, dangling or unused images and build cache of the local \
             Docker engine, oldest past a minimum age; never volumes.",
        )
        .param(
            "targets",
            "Comma-separated: stopped-containers, dangling-images, unused-images, build-cache.",
            Some("stopped-containers,dangling-images"),
        )
        .param(
            "older_than",
            "Only what was created (or, for build cache, last used) at least this long ago.",
            Some("24h"),
        )
        .action_kind("docker-prune")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let older_than = incident.param_with("older_than", parse_duration)?;
        let targets = incident
            .param_list("targets")
            .iter()
            .map(|t| DockerPruneTarget::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| Error::Invalid(format!("parameter `targets`: {why}")))?;
        if incident.round > 0 {
            return Ok(report(&incident));
        }
        let mut plan = Plan::new("");
        let mut freed = 0;
        let mut proposed = 0;
        for target in targets {
            let candidates = docker::prune_candidates(target, older_than)?;
            let name = target.name();
            if candidates.is_empty() {
                plan = plan.check(Check::pass(name, "nothing to prune"));
                continue;
            }
            let bytes: u64 = candidates.iter().filter_map(|c| c.bytes).sum();
            freed += bytes;
            proposed += 1;
            plan = plan
                .check(Check::warn(name, describe(&candidates)))
                .act(Action::docker_prune(
                    target,
                    older_than,
                    format!(
                        "{} {name} older than {}",
                        candidates.len(),
                        incident.param("older_than").unwrap_or_default()
                    ),
                ));
        }
        plan.summary = if proposed == 0 {
            "nothing to prune".to_string()
        } else {
            format!(
                "prune {proposed} kinds of Docker leftovers, freeing at least {}",
                format_bytes(freed)
            )
        };
        Ok(plan)
    }
}

fn describe(candidates: &[PruneCandidate]) -> String {
    const SHOWN: usize = 20;
    let mut names: Vec<&str> = candidates
        .iter()
        .take(SHOWN)
        .map(|c| c.name.as_str())
        .collect();
    let more = candidates.len().saturating_sub(SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let bytes: u64 = candidates.iter().filter_map(|c| c.bytes).sum();
    names.sort_unstable();
    format!(
        "{} ({}{more}), {}",
        candidates.len(),
        names.join(", "),
        format_bytes(bytes)
    )
}

/// What the host did with this run's prunes.
fn report(incident: &Incident) -> Plan {
    let lines: Vec<String> = incident
        .history
        .iter()
        .filter(|r| r.status == ActionStatus::Done)
        .map(|r| r.detail.clone())
        .collect();
    Plan::new(if lines.is_empty() {
        "nothing was pruned".to_string()
    } else {
        lines.join("; ")
    })
}

remedy_sdk::export_plugin!(DockerPrune);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_summarised_with_their_size() {
        let c = |name: &str, bytes| PruneCandidate {
            id: name.into(),
            name: name.into(),
            bytes,
        };
        let text = describe(&[c("b", Some(2 << 20)), c("a", None)]);
        assert_eq!(text, "2 (a, b), 2.0 MiB");
    }
}
