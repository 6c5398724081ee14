//! A run's timeline, read from its audit records: when it was created and
//! started, when each round planned, each action executed, a person
//! decided, and the run ended. The times are the ones remedy committed to
//! the chain, not estimates, and the drawing is SVG made here, so it needs
//! no script and obeys the console's CSP (classes, no inline style).

use super::pages::shown;
use crate::store::AuditRecord;
use std::collections::HashMap;
use std::time::Duration;

/// The drawing's width in SVG units; positions are fractions of it.
const WIDTH: u32 = 1000;

/// A stretch of the run: a round, or a wait for a decision.
pub struct Stretch {
    pub x: u32,
    pub width: u32,
    /// `round` or `waiting`, for the stylesheet.
    pub class: &'static str,
    pub label: String,
}

/// One moment of the run, as a line of the table and a tick on the drawing.
pub struct Moment {
    pub x: u32,
    /// From the run's creation.
    pub offset: String,
    pub at: String,
    /// The action's status or the decision, for the stylesheet; empty otherwise.
    pub class: String,
    pub what: String,
}

pub struct Timeline {
    pub stretches: Vec<Stretch>,
    pub moments: Vec<Moment>,
    /// From creation to the end, or to now while the run goes on.
    pub span: String,
    /// The drawing's width, [`WIDTH`].
    pub width: u32,
}

impl Timeline {
    /// The timeline of a run from its records, oldest first; `now_ms` ends
    /// a run that has not ended yet.
    pub fn of(records: &[AuditRecord], now_ms: i64) -> Option<Timeline> {
        let start = records.first()?.at_ms;
        let end = records
            .iter()
            .rfind(|r| ends(r))
            .map_or(now_ms, |r| r.at_ms)
            .max(start);
        let x =
            |at: i64| ((at - start) as f64 * f64::from(WIDTH) / (end - start).max(1) as f64) as u32;
        let mut actions = HashMap::new();
        let moments = records
            .iter()
            .map(|record| Moment {
                // A tick at the very end still shows whole.
                x: x(record.at_ms).min(WIDTH - 3),
                offset: offset(record.at_ms - start),
                at: record.at.clone(),
                class: class_of(record),
                what: shown(&describe(record, &mut actions)),
            })
            .collect();
        Some(Timeline {
            stretches: stretches(records, end)
                .into_iter()
                .map(|(from, to, class, label)| Stretch {
                    x: x(from),
                    width: x(to).saturating_sub(x(from)).max(1),
                    class,
                    label,
                })
                .collect(),
            moments,
            span: offset(end - start),
            width: WIDTH,
        })
    }
}

/// `(from, to, class, label)` of each round, from its plan to the next
/// round's, of each wait for a decision, and of each time parked.
fn stretches(records: &[AuditRecord], end: i64) -> Vec<(i64, i64, &'static str, String)> {
    let mut found = Vec::new();
    let plans: Vec<&AuditRecord> = records.iter().filter(|r| r.kind == "plan").collect();
    for (i, plan) in plans.iter().enumerate() {
        let to = plans.get(i + 1).map_or(end, |next| next.at_ms);
        let round = plan.body["round"].as_u64().unwrap_or(i as u64) + 1;
        found.push((plan.at_ms, to, "round", format!("round {round}")));
    }
    let decided = ["approved", "rejected", "approval-expired"];
    for (i, asked) in records.iter().enumerate() {
        if asked.kind == "approval-requested" {
            let to = records[i..]
                .iter()
                .find(|r| decided.contains(&r.kind.as_str()) || ends(r))
                .map_or(end, |r| r.at_ms);
            found.push((asked.at_ms, to, "waiting", "awaiting approval".into()));
        }
        if asked.kind == "parked" {
            let to = records[i..]
                .iter()
                .find(|r| r.kind == "run-resumed" || ends(r))
                .map_or(end, |r| r.at_ms);
            found.push((asked.at_ms, to, "waiting", "parked, watching".into()));
        }
    }
    found
}

/// Whether `record` ends the run. A plan awaiting approval ends its first
/// stretch with a `finished` record too, but the run goes on once decided.
fn ends(record: &AuditRecord) -> bool {
    record.kind == "finished" && record.body["status"] != "awaiting-approval"
}

fn class_of(record: &AuditRecord) -> String {
    match record.kind.as_str() {
        "result" => record.body["status"].as_str().unwrap_or_default().into(),
        "finished" => record.body["status"].as_str().unwrap_or_default().into(),
        "approved" | "rejected" => record.kind.clone(),
        _ => String::new(),
    }
}

/// What a record says happened, in a few words. `actions` remembers each
/// executed action's `(round, number, kind)` so its result can name it.
fn describe(record: &AuditRecord, actions: &mut HashMap<i64, (u64, u64, String)>) -> String {
    let body = &record.body;
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_string();
    match record.kind.as_str() {
        "run-created" => "created".into(),
        "run-started" => "a worker started it".into(),
        "run-resumed" => "a worker resumed it".into(),
        "parked" => format!(
            "parked after round {}: {}; next round due {}",
            body["round"].as_u64().unwrap_or_default() + 1,
            text("summary"),
            text("due")
        ),
        "params-used" => "took parameters from the alert".into(),
        "plan" => {
            let plan = &body["plan"];
            let count = plan["actions"].as_array().map_or(0, Vec::len);
            format!(
                "round {} planned {}: {}",
                body["round"].as_u64().unwrap_or_default() + 1,
                crate::text::counted(count, "action"),
                plan["summary"].as_str().unwrap_or_default()
            )
        }
        "intent" => {
            let named = (
                body["round"].as_u64().unwrap_or_default() + 1,
                body["seq"].as_u64().unwrap_or_default() + 1,
                body["action"]["kind"]
                    .as_str()
                    .unwrap_or("action")
                    .to_string(),
            );
            let line = format!(
                "round {} action {}: executing {}",
                named.0, named.1, named.2
            );
            actions.insert(body["action_id"].as_i64().unwrap_or_default(), named);
            line
        }
        "result" => match actions.get(&body["action_id"].as_i64().unwrap_or_default()) {
            Some((round, number, kind)) => format!(
                "round {round} action {number} ({kind}): {}, {}",
                text("status"),
                text("detail")
            ),
            None => format!("an action: {}, {}", text("status"), text("detail")),
        },
        "approval-requested" => format!(
            "asked for approval of {}",
            crate::text::counted(
                body["actions"].as_u64().unwrap_or_default() as usize,
                "action"
            )
        ),
        "approved" => format!("approved by {}", text("by")),
        "rejected" => format!("rejected by {}: {}", text("by"), text("why")),
        "finished" if !ends(record) => text("reason"),
        "finished" => format!("ended {}: {}", text("status"), text("reason")),
        other => other.replace('-', " "),
    }
}

/// A time since the run's creation, as precise as it is useful.
fn offset(ms: i64) -> String {
    let ms = ms.max(0) as u64;
    match ms {
        0..1000 => format!("+{ms} ms"),
        1000..60_000 => format!("+{:.1} s", ms as f64 / 1000.0),
        _ => format!(
            "+{}",
            humantime::format_duration(Duration::from_secs(ms / 1000))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(at_ms: i64, kind: &str, body: serde_json::Value) -> AuditRecord {
        AuditRecord {
            seq: at_ms,
            at: format!("at {at_ms}"),
            at_ms,
            kind: kind.into(),
            run_id: Some("r".into()),
            body,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn plan(at_ms: i64, round: u64, summary: &str, actions: usize) -> AuditRecord {
        let actions = vec![json!({ "kind": "remove-path" }); actions];
        let body = json!({ "round": round, "plan": { "summary": summary, "actions": actions } });
        record(at_ms, "plan", body)
    }

    /// Created at 1000, a round acting at 1100, a recheck round 30 s
    /// later, ended at 41,000.
    fn watched_run() -> Vec<AuditRecord> {
        vec![
            record(1_000, "run-created", json!({})),
            record(1_050, "run-started", json!({})),
            plan(1_100, 0, "free /data", 1),
            record(
                1_120,
                "intent",
                json!({ "action_id": 7, "round": 0, "seq": 0, "action": { "kind": "remove-path" } }),
            ),
            record(
                1_130,
                "result",
                json!({ "action_id": 7, "status": "done", "detail": "freed 3 MiB" }),
            ),
            plan(31_100, 1, "usage back to 60 %", 0),
            record(
                41_000,
                "finished",
                json!({ "status": "succeeded", "reason": "recovered" }),
            ),
        ]
    }

    #[test]
    fn rounds_stretch_from_their_plan_to_the_next_and_the_end() {
        let timeline = Timeline::of(&watched_run(), 99_999).unwrap();
        let rounds: Vec<(u32, u32, &str)> = timeline
            .stretches
            .iter()
            .map(|s| (s.x, s.width, s.label.as_str()))
            .collect();
        // 40 s wide: 100 ms is 2.5 units, 30.1 s is 752.5.
        assert_eq!(rounds, [(2, 750, "round 1"), (752, 248, "round 2")]);
        assert_eq!(timeline.span, "+40.0 s");
    }

    #[test]
    fn each_record_is_a_moment_that_names_what_happened() {
        let timeline = Timeline::of(&watched_run(), 99_999).unwrap();
        let lines: Vec<String> = timeline
            .moments
            .iter()
            .map(|m| format!("{} [{}] {}", m.offset, m.class, m.what))
            .collect();
        assert_eq!(
            lines,
            [
                "+0 ms [] created",
                "+50 ms [] a worker started it",
                "+100 ms [] round 1 planned 1 action: free /data",
                "+120 ms [] round 1 action 1: executing remove-path",
                "+130 ms [done] round 1 action 1 (remove-path): done, freed 3 MiB",
                "+30.1 s [] round 2 planned 0 actions: usage back to 60 %",
                "+40.0 s [succeeded] ended succeeded: recovered",
            ]
        );
    }

    #[test]
    fn a_run_still_going_ends_now_and_a_wait_for_a_decision_is_drawn() {
        let records = vec![
            record(0, "run-created", json!({})),
            plan(100, 0, "restart api", 1),
            record(200, "approval-requested", json!({ "actions": 1 })),
        ];
        let timeline = Timeline::of(&records, 1_000).unwrap();
        let waiting = &timeline.stretches[1];
        assert_eq!(
            (waiting.class, waiting.x, waiting.width),
            ("waiting", 200, 800)
        );
        assert_eq!(timeline.span, "+1.0 s");
        assert_eq!(timeline.moments[2].what, "asked for approval of 1 action");
    }

    #[test]
    fn a_plan_awaiting_approval_pauses_the_run_and_the_decision_resumes_it() {
        let awaiting =
            json!({ "status": "awaiting-approval", "reason": "awaiting approval: 1 action" });
        let records = vec![
            record(0, "run-created", json!({})),
            plan(100, 0, "restart api", 1),
            record(200, "approval-requested", json!({ "actions": 1 })),
            record(210, "finished", awaiting),
            record(600, "approved", json!({ "by": "oncall" })),
            plan(700, 1, "the approved plan", 1),
            record(
                1_000,
                "finished",
                json!({ "status": "succeeded", "reason": "done" }),
            ),
        ];
        let timeline = Timeline::of(&records, 99_999).unwrap();
        assert_eq!(timeline.span, "+1.0 s");
        let waiting = &timeline.stretches[2];
        assert_eq!(
            (waiting.class, waiting.x, waiting.width),
            ("waiting", 200, 400)
        );
        assert_eq!(timeline.moments[3].what, "awaiting approval: 1 action");
        assert_eq!(timeline.moments[4].class, "approved");
    }

    #[test]
    fn a_parked_run_is_drawn_waiting_until_a_worker_resumes_it() {
        let parked = json!({ "round": 0, "due": "10:00:01Z", "summary": "restarted; confirming" });
        let records = vec![
            record(0, "run-created", json!({})),
            plan(100, 0, "restart api", 0),
            record(200, "parked", parked),
            record(700, "run-resumed", json!({})),
            plan(800, 1, "api healthy", 0),
            record(
                1_000,
                "finished",
                json!({ "status": "succeeded", "reason": "ok" }),
            ),
        ];
        let timeline = Timeline::of(&records, 99_999).unwrap();
        let parked = &timeline.stretches[2];
        assert_eq!(
            (parked.class, parked.x, parked.width, parked.label.as_str()),
            ("waiting", 200, 500, "parked, watching")
        );
        let said: Vec<&str> = timeline.moments[2..4]
            .iter()
            .map(|m| m.what.as_str())
            .collect();
        assert_eq!(
            said,
            [
                "parked after round 1: restarted; confirming; next round due 10:00:01Z",
                "a worker resumed it"
            ]
        );
    }

    #[test]
    fn what_a_plugin_wrote_reaches_the_page_as_one_line() {
        let records = vec![plan(0, 0, "line one\nline two", 0)];
        let timeline = Timeline::of(&records, 0).unwrap();
        assert!(!timeline.moments[0].what.contains('\n'));
        assert!(Timeline::of(&[], 0).is_none());
    }
}
