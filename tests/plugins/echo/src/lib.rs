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
        Ok(incident
            .alert
            .labels
            .iter()
            .fold(plan, |plan, (name, value)| {
                plan.check(Check::pass(name, value.clone()))
            }))
    }
}

remedy_sdk::export_plugin!(Echo);
