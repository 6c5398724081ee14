//! Circuit breakers: a route whose runs keep failing is opened (its runs
//! only plan) until a human resets it. Opening and resetting are audited.

use super::sql::args;
use super::{RunStatus, Store, StoreError, now_ms};
use std::time::Duration;

impl Store {
    /// Failed runs of `route` created within `window`, with the newest reason.
    pub fn recent_failures(
        &self,
        route: &str,
        window: Duration,
    ) -> Result<(u32, Option<String>), StoreError> {
        let since = now_ms() - window.as_millis() as i64;
        let list = RunStatus::failures_sql();
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT count(*),
                            (SELECT reason FROM runs WHERE route = ?1 AND created_ms >= ?2
                               AND status IN ({list}) ORDER BY created_ms DESC LIMIT 1)
                     FROM runs WHERE route = ?1 AND created_ms >= ?2 AND status IN ({list})"
                ),
                args![route, since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
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

    /// Open `route`'s breaker; false if it was open already.
    pub fn open_breaker(&self, route: &str, reason: &str) -> Result<bool, StoreError> {
        self.in_tx(|c| {
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
