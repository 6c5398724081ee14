//! Circuit breakers: a route whose runs keep failing is opened (its runs
//! only plan) until a human resets it. Opening and resetting are audited.

use super::sql::{Db, Result as DbResult, args};
use super::{RunStatus, Store, StoreError, now_ms};
use std::collections::HashMap;
use std::time::Duration;

/// When a route's failing runs open its breaker: `failures` failed runs
/// created within `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerRule {
    pub failures: u32,
    pub window: Duration,
}

/// A breaker a run's end opened: its route and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedBreaker {
    pub route: String,
    pub reason: String,
}

impl Store {
    /// The breaker rule of each route, as the config in force says. A
    /// failing run's end opens its route's breaker in the transaction that
    /// records the end, so no run claimed after that end finds it shut.
    pub fn set_breaker_rules(&self, rules: HashMap<String, BreakerRule>) {
        *self
            .breaker_rules
            .write()
            .unwrap_or_else(|p| p.into_inner()) = rules;
    }

    /// The breakers runs' ends have opened since the last call, to be told.
    pub fn take_opened_breakers(&self) -> Vec<OpenedBreaker> {
        std::mem::take(&mut *super::lock(&self.opened))
    }

    /// Remember a breaker a committed end opened, for `take_opened_breakers`.
    pub(super) fn opened_breaker(&self, opened: Option<OpenedBreaker>) {
        if let Some(opened) = opened {
            super::lock(&self.opened).push(opened);
        }
    }

    /// The rule of `route`, if it has one that can open its breaker.
    pub(super) fn breaker_rule(&self, route: &str) -> Option<BreakerRule> {
        let rules = self.breaker_rules.read().unwrap_or_else(|p| p.into_inner());
        rules.get(route).copied().filter(|rule| rule.failures > 0)
    }

    /// The open breaker of `route`: its reason.
    pub fn breaker(&self, route: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_opt(
                "SELECT reason FROM breakers WHERE route = ?1",
                args![route],
                |r| r.get(0),
            )
        })
    }

    /// Every open breaker: (route, opened at, reason).
    pub fn breakers(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.with(|c| {
            c.query_map(
                "SELECT route, opened_ms, reason FROM breakers ORDER BY route",
                &[],
                |r| Ok((r.get(0)?, super::rfc3339(r.get(1)?), r.get(2)?)),
            )
        })
    }

    /// Close `route`'s breaker for `by`; false if it was not open.
    pub fn reset_breaker(&self, route: &str, by: &str) -> Result<bool, StoreError> {
        self.in_tx(|c| {
            let closed = c.execute("DELETE FROM breakers WHERE route = ?1", args![route])? == 1;
            if closed {
                super::audit::append(
                    c,
                    "breaker-reset",
                    None,
                    &serde_json::json!({ "route": route, "by": by }),
                )?;
            }
            Ok(closed)
        })
    }
}

/// Open `route`'s breaker, audited; false if it was open already.
fn open(c: &mut dyn Db, route: &str, reason: &str) -> DbResult<bool> {
    let opened = c.execute(
        "INSERT INTO breakers (route, opened_ms, reason) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        args![route, now_ms(), reason],
    )? == 1;
    if opened {
        let body = serde_json::json!({ "route": route, "reason": reason });
        super::audit::append(c, "breaker-opened", None, &body)?;
    }
    Ok(opened)
}

/// After a run of `route` ended a failure: open the route's breaker if
/// `rule` says this failure is one too many.
pub(super) fn trip_if_due(
    c: &mut dyn Db,
    route: &str,
    rule: BreakerRule,
) -> DbResult<Option<OpenedBreaker>> {
    let since = now_ms() - rule.window.as_millis() as i64;
    let list = RunStatus::failures_sql();
    let (failures, last): (u32, Option<String>) = c.query_row(
        &format!(
            "SELECT count(*),
                    (SELECT reason FROM runs WHERE route = ?1 AND created_ms >= ?2
                       AND status IN ({list}) ORDER BY created_ms DESC LIMIT 1)
             FROM runs WHERE route = ?1 AND created_ms >= ?2 AND status IN ({list})"
        ),
        args![route, since],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if failures < rule.failures {
        return Ok(None);
    }
    let reason = format!(
        "{failures} failed runs within {}; last: {}",
        humantime::format_duration(rule.window),
        last.unwrap_or_default()
    );
    let opened = open(c, route, &reason)?;
    Ok(opened.then(|| OpenedBreaker {
        route: route.to_string(),
        reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::AlertStatus;
    use crate::store::tests::{empty_plan, new_run};
    use crate::store::{NewRound, NewRun, queue::tests::alert};

    const RULE: BreakerRule = BreakerRule {
        failures: 2,
        window: Duration::from_secs(3600),
    };

    /// A run of `route` in `store`, started, so that it can end.
    fn run_of(store: &Store, id: &str, route: &str) {
        let alert = alert("f", AlertStatus::Firing);
        let run = NewRun {
            route: Some(route),
            ..new_run(id, &alert)
        };
        store.create_run(&run).unwrap();
    }

    fn with_rules(store: &Store) {
        let rules = [
            ("guarded".to_string(), RULE),
            (
                "unguarded".to_string(),
                BreakerRule {
                    failures: 0,
                    ..RULE
                },
            ),
        ];
        store.set_breaker_rules(rules.into());
    }

    #[test]
    fn the_failure_one_too_many_opens_the_breaker_with_its_own_end() {
        super::super::each_backend(|open| {
            let store = open();
            with_rules(&store);
            run_of(&store, "0190-a", "guarded");
            store
                .finish_run("0190-a", RunStatus::Failed, "first")
                .unwrap();
            assert_eq!(store.breaker("guarded").unwrap(), None, "one is not enough");
            run_of(&store, "0190-b", "guarded");
            store
                .finish_run("0190-b", RunStatus::Succeeded, "ok")
                .unwrap();
            assert_eq!(
                store.breaker("guarded").unwrap(),
                None,
                "a success is not one"
            );
            assert!(store.take_opened_breakers().is_empty());

            run_of(&store, "0190-c", "guarded");
            store
                .finish_run("0190-c", RunStatus::TimedOut, "second")
                .unwrap();
            // Open as the end returns: no claim after the end can find it shut.
            let reason = store.breaker("guarded").unwrap().expect("open");
            assert!(
                reason.starts_with("2 failed runs within 1h") && reason.ends_with("second"),
                "{reason}"
            );
            let opened = store.take_opened_breakers();
            assert_eq!(
                opened,
                [OpenedBreaker {
                    route: "guarded".into(),
                    reason
                }]
            );
            assert!(store.take_opened_breakers().is_empty(), "told once");

            run_of(&store, "0190-d", "guarded");
            store
                .finish_run("0190-d", RunStatus::Failed, "third")
                .unwrap();
            assert!(store.take_opened_breakers().is_empty(), "open already");
            let audit = store.audit_since(0).unwrap();
            let audited = audit.iter().filter(|r| r.kind == "breaker-opened").count();
            assert_eq!(audited, 1, "opened once, audited once");
        });
    }

    #[test]
    fn a_route_without_a_breaker_rule_stays_shut_however_often_it_fails() {
        super::super::each_backend(|open| {
            let store = open();
            with_rules(&store);
            for (n, route) in ["unguarded", "unknown"].iter().enumerate() {
                for m in 0..3 {
                    let id = format!("0190-{n}{m}");
                    run_of(&store, &id, route);
                    store.finish_run(&id, RunStatus::Failed, "no").unwrap();
                }
                assert_eq!(store.breaker(route).unwrap(), None, "{route}");
            }
            assert!(store.take_opened_breakers().is_empty());
        });
    }

    #[test]
    fn a_round_that_settles_a_run_failed_opens_it_too() {
        super::super::each_backend(|open| {
            let store = open();
            with_rules(&store);
            let plan = empty_plan("refused");
            for id in ["0190-a", "0190-b"] {
                run_of(&store, id, "guarded");
                let round = NewRound {
                    number: 0,
                    plan: &plan,
                    logs: &[],
                    instantiate: Duration::ZERO,
                    planning: Duration::ZERO,
                };
                let ending = Some((RunStatus::Denied, "denied"));
                store.record_round(id, &round, ending).unwrap();
            }
            assert!(store.breaker("guarded").unwrap().is_some());
            assert_eq!(store.take_opened_breakers().len(), 1);
        });
    }
}
