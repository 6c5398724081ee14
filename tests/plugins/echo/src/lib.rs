//! Echoes its incident back as checks and logs one line. It calls only the
//! `log` host interface, so its component must import nothing else.

use remedy_sdk::{Check, Error, Incident, Plan, Plugin, PluginInfo, log};

struct Echo;

impl Plugin for Echo {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "echo",
            "0.0.0",
            "Echoes its incident; for remedy's tests only.",
        )
        .param("say", "Summary to answer with.", Some("echo"))
        .param("escalate", "When not empty, escalate with this.", Some(""))
        .param("log", "When not empty, log this line too.", Some(""))
        .param("watch", "Rounds to look again before ending.", Some("0"))
        .param("recheck", "Seconds between those rounds.", Some("1"))
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        log::info(&format!("round {}", incident.round));
        if let Some(line) = incident.param("log").filter(|l| !l.is_empty()) {
            log::warn(line);
        }
        let mut plan = Plan::new(incident.param("say").unwrap_or("echo"));
        if let Some(why) = incident.param("escalate").filter(|w| !w.is_empty()) {
            plan = plan.escalate(why);
        }
        plan = watch(plan, &incident);
        Ok(incident
            .alert
            .labels
            .iter()
            .fold(plan, |plan, (name, value)| {
                plan.check(Check::pass(name, value.clone()))
            }))
    }
}

/// With `watch`, look again `watch` times, each round leaving a memo the
/// next must be shown: escalate when it is not.
fn watch(plan: Plan, incident: &Incident) -> Plan {
    let number = |name| incident.param(name).and_then(|v| v.parse::<u32>().ok());
    let (rounds, recheck) = (number("watch").unwrap_or(0), number("recheck").unwrap_or(1));
    if rounds == 0 {
        return plan;
    }
    let expected = incident
        .round
        .checked_sub(1)
        .map(|last| format!("watched {last}"));
    if incident.memo != expected {
        return plan.escalate(format!(
            "memo lost: expected {expected:?}, got {:?}",
            incident.memo
        ));
    }
    if incident.round >= rounds {
        return plan;
    }
    plan.memo(format!("watched {}", incident.round))
        .recheck_after(recheck)
}

remedy_sdk::export_plugin!(Echo);
