//! service-restart's decisions, apart from the host calls, so they are
//! tested natively.

use remedy_sdk::proc::{Listener, exe_matches};

/// The memory thresholds, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub restart_above: u64,
    pub escalate_above: u64,
}

/// What the first look found.
#[derive(Debug)]
pub struct Seen {
    /// The health endpoint answered 2xx.
    pub answers: bool,
    /// Resident memory, when a query for it is configured and answered.
    pub rss: Option<u64>,
    /// A task of this node's allocation was ended by the OOM killer.
    pub oom_killed: bool,
}

#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Nothing to restart: it answers and its memory is below the threshold.
    Fine,
    /// Restart this node's allocation, for this reason.
    Restart(String),
    /// Past the runbook's escalation condition: a human decides.
    Escalate(String),
}

/// The runbook: past the escalation threshold or OOM-killed, page; not
/// answering or above the restart threshold, restart; else leave it.
pub fn verdict(seen: &Seen, memory: Memory) -> Verdict {
    if seen.oom_killed {
        return Verdict::Escalate(
            "the OOM killer ended it: a restart would only wait for the next one".into(),
        );
    }
    if let Some(rss) = seen.rss
        && rss > memory.escalate_above
    {
        return Verdict::Escalate(format!(
            "resident memory {} is above {}: a human decides",
            bytes(rss),
            bytes(memory.escalate_above)
        ));
    }
    if !seen.answers {
        return Verdict::Restart("its health endpoint does not answer".into());
    }
    match seen.rss {
        Some(rss) if rss > memory.restart_above => Verdict::Restart(format!(
            "resident memory {} is above {}",
            bytes(rss),
            bytes(memory.restart_above)
        )),
        _ => Verdict::Fine,
    }
}

/// Who holds the service's port while its task is not running.
#[derive(Debug, PartialEq)]
pub enum Port<'a> {
    Free,
    /// Every holder's executable is one the operator allows to be stopped.
    HeldByAllowed(Vec<&'a Listener>),
    /// A holder the operator did not allow: a human decides.
    HeldByOther(&'a Listener),
}

pub fn port<'a>(listeners: &'a [Listener], allowed_exes: &[String]) -> Port<'a> {
    if listeners.is_empty() {
        return Port::Free;
    }
    match listeners
        .iter()
        .find(|l| !allowed_exes.iter().any(|p| exe_matches(p, &l.exe)))
    {
        Some(other) => Port::HeldByOther(other),
        None => Port::HeldByAllowed(listeners.iter().collect()),
    }
}

/// The port of an `http://host:port/...` URL: explicit, or the scheme's.
pub fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let port = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once("]:").map(|(_, port)| port),
        None => host_port.rsplit_once(':').map(|(_, port)| port),
    };
    match (port, scheme) {
        (Some(port), _) => port.parse().ok(),
        (None, "http") => Some(80),
        (None, "https") => Some(443),
        (None, _) => None,
    }
}

pub fn bytes(n: u64) -> String {
    remedy_sdk::format_bytes(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;
    const LIMITS: Memory = Memory {
        restart_above: 3_400_000_000,
        escalate_above: 3_800_000_000,
    };

    fn seen(answers: bool, rss: Option<u64>, oom_killed: bool) -> Seen {
        Seen {
            answers,
            rss,
            oom_killed,
        }
    }

    #[test]
    fn the_runbook_in_order() {
        assert_eq!(verdict(&seen(true, Some(GB), false), LIMITS), Verdict::Fine);
        assert_eq!(verdict(&seen(true, None, false), LIMITS), Verdict::Fine);
        assert!(matches!(
            verdict(&seen(false, None, false), LIMITS),
            Verdict::Restart(why) if why.contains("does not answer")
        ));
        assert!(matches!(
            verdict(&seen(true, Some(3_500_000_000), false), LIMITS),
            Verdict::Restart(why) if why.contains("above")
        ));
        // Past 95 % or OOM-killed: page, even when it also does not answer.
        assert!(matches!(
            verdict(&seen(false, Some(3_900_000_000), false), LIMITS),
            Verdict::Escalate(why) if why.contains("a human decides")
        ));
        assert!(matches!(
            verdict(&seen(true, Some(GB), true), LIMITS),
            Verdict::Escalate(why) if why.contains("OOM")
        ));
    }

    fn listener(pid: u32, exe: &str) -> Listener {
        Listener {
            pid,
            start_time: 7,
            exe: exe.into(),
            address: "0.0.0.0:3000".into(),
        }
    }

    #[test]
    fn only_allowed_holders_are_stopped() {
        let allowed = vec!["/opt/api/*/api".to_string()];
        assert_eq!(port(&[], &allowed), Port::Free);
        let stale = [listener(10, "/opt/api/v41/api")];
        assert_eq!(port(&stale, &allowed), Port::HeldByAllowed(vec![&stale[0]]));
        let mixed = [
            listener(10, "/opt/api/v41/api"),
            listener(11, "/usr/bin/nc"),
        ];
        assert_eq!(port(&mixed, &allowed), Port::HeldByOther(&mixed[1]));
        assert_eq!(
            port(&stale, &[]),
            Port::HeldByOther(&stale[0]),
            "none allowed"
        );
    }

    #[test]
    fn ports_of_health_urls() {
        assert_eq!(url_port("http://127.0.0.1:3000/health"), Some(3000));
        assert_eq!(url_port("http://api.internal/health"), Some(80));
        assert_eq!(url_port("https://api.internal/health"), Some(443));
        assert_eq!(url_port("http://[::1]:3000/health"), Some(3000));
        assert_eq!(url_port("http://[::1]/health"), Some(80));
        assert_eq!(url_port("not a url"), None);
    }
}
