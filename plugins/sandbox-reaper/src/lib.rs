//! sandbox-reaper: for TooManySandboxes, stop the Firecracker sandboxes
//! that outlived their maximum lifetime, oldest first, never more than a
//! share of the active ones a round, each signalled as exactly the process
//! seen (pid, start time, executable). Above the escalation count a human
//! is paged instead: that many sandboxes is a fault, not an expiry.

use remedy_sdk::proc::{self, Process, exe_matches};
use remedy_sdk::{
    Action, Check, Error, Incident, Plan, Plugin, PluginInfo, parse_duration, parse_percent,
};

struct SandboxReaper;

impl Plugin for SandboxReaper {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "sandbox-reaper",
            env!("CARGO_PKG_VERSION"),
            "Stops Firecracker sandboxes past their maximum lifetime, oldest first, a bounded \
             share a round; escalates when too many are active.",
        )
        .param(
            "exes",
            "Comma-separated executables of sandbox processes; `*` matches within one path segment.",
            Some("/fc-versions/*/firecracker,/usr/local/bin/firecracker,/usr/bin/firecracker"),
        )
        .param("max_lifetime", "Stop sandboxes older than this.", Some("24h"))
        .param(
            "share",
            "At most this percentage of the active sandboxes stopped a round.",
            Some("25"),
        )
        .param(
            "escalate_above",
            "More active sandboxes than this page a human instead.",
            Some("200"),
        )
        .param("signal", "The signal that stops one.", Some("TERM"))
        .param("settle", "Seconds to wait before looking again.", Some("5"))
        .action_kind("process-signal")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let rules = Rules::of(&incident)?;
        let sandboxes: Vec<Process> = proc::processes()?
            .into_iter()
            .filter(|p| {
                rules
                    .exes
                    .iter()
                    .any(|pattern| exe_matches(pattern, &p.exe))
            })
            .collect();
        let active = sandboxes.len();
        let count = Check::pass("active", format!("{active} sandboxes"));
        if active > rules.escalate_above {
            return Ok(Plan::new(format!("{active} sandboxes active"))
                .check(count)
                .escalate(format!(
                    "{active} sandboxes active, above {}: a fault to look into, not sandboxes to expire",
                    rules.escalate_above
                )));
        }
        let chosen = choose(&sandboxes, &rules);
        let expired = sandboxes
            .iter()
            .filter(|p| p.age_secs > rules.max_lifetime)
            .count();
        let mut plan = Plan::new(format!(
            "{expired} of {active} sandboxes past {} s; stopping {}",
            rules.max_lifetime,
            chosen.len()
        ))
        .check(count);
        if chosen.is_empty() {
            return Ok(plan.check(Check::pass("expired", "none past the maximum lifetime")));
        }
        for sandbox in chosen {
            let why = format!(
                "sandbox running for {} s, past {} s",
                sandbox.age_secs, rules.max_lifetime
            );
            plan = plan.act(Action::signal(sandbox, &rules.signal, false, why));
        }
        // Look again once they had time to exit: the next share, or done.
        Ok(plan.recheck_after(rules.settle))
    }
}

/// The parameters, checked.
pub struct Rules {
    pub exes: Vec<String>,
    pub max_lifetime: u64,
    pub share: f64,
    pub escalate_above: usize,
    pub signal: String,
    pub settle: u32,
}

impl Rules {
    fn of(incident: &Incident) -> Result<Rules, Error> {
        let count = |text: &str| text.trim().parse::<u64>().map_err(|e| e.to_string());
        Ok(Rules {
            exes: incident.param_list("exes"),
            max_lifetime: incident.param_with("max_lifetime", parse_duration)?,
            share: incident.param_with("share", parse_percent)?,
            escalate_above: incident.param_with("escalate_above", count)? as usize,
            signal: incident.param("signal").unwrap_or("TERM").to_string(),
            settle: incident.param_with("settle", count)?.min(600) as u32,
        })
    }
}

/// The expired sandboxes to stop this round: oldest first, at most `share`
/// of the active ones (at least one, when any expired).
pub fn choose<'p>(sandboxes: &'p [Process], rules: &Rules) -> Vec<&'p Process> {
    let mut expired: Vec<&Process> = sandboxes
        .iter()
        .filter(|p| p.age_secs > rules.max_lifetime)
        .collect();
    expired.sort_by_key(|p| std::cmp::Reverse(p.age_secs));
    let most = ((sandboxes.len() as f64 * rules.share / 100.0).ceil() as usize).max(1);
    expired.truncate(most);
    expired
}

remedy_sdk::export_plugin!(SandboxReaper);

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(pid: u32, age_secs: u64) -> Process {
        Process {
            pid,
            ppid: 1,
            start_time: u64::from(pid),
            age_secs,
            exe: "/fc-versions/v1.7/firecracker".into(),
            cmdline: Vec::new(),
            netns_inode: 0,
        }
    }

    fn rules(share: f64) -> Rules {
        Rules {
            exes: vec!["/fc-versions/*/firecracker".into()],
            max_lifetime: 3600,
            share,
            escalate_above: 200,
            signal: "TERM".into(),
            settle: 5,
        }
    }

    #[test]
    fn the_oldest_expired_go_first_and_never_more_than_the_share() {
        let all: Vec<Process> = [(1, 10), (2, 7200), (3, 90_000), (4, 3601), (5, 5000)]
            .map(|(pid, age)| sandbox(pid, age))
            .to_vec();
        let pids =
            |share| -> Vec<u32> { choose(&all, &rules(share)).iter().map(|p| p.pid).collect() };
        assert_eq!(pids(40.0), [3, 2], "two of five a round, oldest first");
        assert_eq!(pids(100.0), [3, 2, 5, 4], "never the young one");
        assert_eq!(pids(1.0), [3], "at least one when any expired");
        assert!(choose(&all[..1], &rules(100.0)).is_empty());
    }
}
