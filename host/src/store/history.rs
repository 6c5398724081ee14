//! Reading runs back: the history list with its filters, one run in full,
//! and run ids by prefix.

use super::sql::{Result as DbResult, Row, ToValue, Value, args};
use super::{RunStatus, Store, StoreError, rfc3339, system_ms};
use crate::contract::{Action, Alert, Plan};
use serde::Serialize;
use std::time::SystemTime;
use utoipa::ToSchema;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub plugin: String,
    pub trigger: String,
    pub route: Option<String>,
    /// The node the run is for; `None` when any node may execute it.
    pub node: Option<String>,
    pub dry_run: bool,
    pub status: RunStatus,
    pub reason: Option<String>,
    pub created_at: String,
    /// Time spent queued before a worker took it.
    pub queue_ms: Option<u64>,
    /// From start (or creation, if it never started) to finish.
    pub duration_ms: Option<u64>,
    /// Who approved its plan, on an `approve` route.
    pub approved_by: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActionRecord {
    pub round: u32,
    pub seq: u32,
    #[schema(schema_with = crate::json::action_kind)]
    pub kind: String,
    #[serde(serialize_with = "crate::json::with::action")]
    #[schema(value_type = crate::json::ActionJson)]
    pub action: Action,
    /// `intent` until the result is recorded.
    #[schema(schema_with = crate::json::action_status)]
    pub status: String,
    pub detail: String,
    pub duration_us: Option<u64>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RoundRecord {
    pub round: u32,
    #[serde(serialize_with = "crate::json::with::plan")]
    #[schema(value_type = crate::json::PlanJson)]
    pub plan: Plan,
    pub instantiate_us: u64,
    pub plan_us: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub plugin_version: String,
    pub plugin_sha256: String,
    #[serde(serialize_with = "crate::json::with::alert")]
    #[schema(value_type = crate::json::AlertJson)]
    pub alert: Alert,
    /// The parameters the run used, alert-derived ones included.
    #[serde(serialize_with = "crate::json::with::pairs")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub params: Vec<(String, String)>,
    pub rounds: Vec<RoundRecord>,
    pub actions: Vec<ActionRecord>,
    pub logs: Vec<LoggedLine>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LoggedLine {
    pub round: u32,
    pub level: String,
    pub message: String,
}

/// Filters for [`Store::list_runs`].
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub plugin: Option<String>,
    pub route: Option<String>,
    pub node: Option<String>,
    pub status: Option<RunStatus>,
    /// Only runs created at or after this time.
    pub since: Option<SystemTime>,
    pub limit: u32,
}

/// The runs a [`RunFilter`] chooses: ?1 plugin, ?2 status, ?3 route,
/// ?4 created since (ms), ?5 node. Each query adds its own ?6.
const CHOSEN: &str = "(CAST(?1 AS TEXT) IS NULL OR plugin = ?1)
    AND (CAST(?2 AS TEXT) IS NULL OR status = ?2)
    AND (CAST(?3 AS TEXT) IS NULL OR route = ?3) AND created_ms >= ?4
    AND (CAST(?5 AS TEXT) IS NULL OR node = ?5)";

/// How many runs of one outcome were created in one slice of time.
#[derive(Clone, Debug, PartialEq)]
pub struct RunCount {
    /// Which slice, counted from the filter's `since`.
    pub slice: u32,
    pub status: RunStatus,
    pub runs: u64,
}

impl Store {
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let rows = self.with(|c| {
            c.query_map(
                &format!(
                    "SELECT {SUMMARY_COLUMNS} FROM runs WHERE {CHOSEN}
                     ORDER BY created_ms DESC, id DESC LIMIT ?6"
                ),
                &chosen(filter, i64::from(filter.limit)),
                summary_row,
            )
        })?;
        rows.into_iter().map(|row| self.summary(row)).collect()
    }

    /// How many runs `filter` chooses, its limit aside.
    pub fn count_runs(&self, filter: &RunFilter) -> Result<u64, StoreError> {
        // One slice longer than any store's history.
        let all_time = std::time::Duration::from_millis(i64::MAX as u64);
        let counts = self.runs_over_time(filter, all_time)?;
        Ok(counts.iter().map(|count| count.runs).sum())
    }

    /// The runs `filter` chooses (its limit aside), counted by outcome in
    /// slices of `slice` from its `since`: what a chart of runs over time shows.
    pub fn runs_over_time(
        &self,
        filter: &RunFilter,
        slice: std::time::Duration,
    ) -> Result<Vec<RunCount>, StoreError> {
        let width = (slice.as_millis() as i64).max(1);
        let rows = self.with(|c| {
            c.query_map(
                &format!(
                    "SELECT (created_ms - ?4) / ?6 AS slice, status, COUNT(*) FROM runs
                     WHERE {CHOSEN} GROUP BY slice, status ORDER BY slice"
                ),
                &chosen(filter, width),
                |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?)),
            )
        })?;
        rows.into_iter()
            .map(|(slice, status, runs)| {
                Ok(RunCount {
                    slice: slice.max(0) as u32,
                    status: self.status(&status, "a counted run")?,
                    runs: runs.max(0) as u64,
                })
            })
            .collect()
    }

    fn status(&self, text: &str, whose: &str) -> Result<RunStatus, StoreError> {
        RunStatus::parse(text).ok_or_else(|| StoreError::Corrupt {
            store: self.location.clone(),
            detail: format!("{whose} has unknown status {text:?}"),
        })
    }

    fn summary(&self, row: SummaryRow) -> Result<RunSummary, StoreError> {
        let status = self.status(&row.status, &format!("run {}", row.id))?;
        Ok(RunSummary {
            id: row.id,
            plugin: row.plugin,
            trigger: row.trigger,
            route: row.route,
            node: row.node,
            dry_run: row.dry_run,
            status,
            reason: row.reason,
            created_at: rfc3339(row.created_ms),
            queue_ms: row.started_ms.map(|s| (s - row.created_ms).max(0) as u64),
            duration_ms: row
                .finished_ms
                .map(|f| (f - row.started_ms.unwrap_or(row.created_ms)).max(0) as u64),
            approved_by: row.approved_by,
        })
    }

    /// A run by its id or an unambiguous prefix of it.
    /// The full id of the one run whose id starts with `id_or_prefix`.
    pub fn resolve_run(&self, id_or_prefix: &str) -> Result<String, StoreError> {
        let pattern = format!("{}%", id_or_prefix.replace(['%', '_'], ""));
        let mut ids = self.with(|c| {
            c.query_map(
                "SELECT id FROM runs WHERE id LIKE ?1 LIMIT 2",
                args![pattern],
                |r| r.get::<String>(0),
            )
        })?;
        match ids.len() {
            0 => Err(StoreError::UnknownRun(id_or_prefix.into())),
            1 => Ok(ids.remove(0)),
            _ => Err(StoreError::AmbiguousRun(id_or_prefix.into())),
        }
    }

    pub fn get_run(&self, id_or_prefix: &str) -> Result<RunDetail, StoreError> {
        let id = self.resolve_run(id_or_prefix)?;
        let (row, version, sha, alert, params) = self
            .with(|c| {
                c.query_opt(
                    &format!(
                        "SELECT {SUMMARY_COLUMNS}, plugin_version, plugin_sha256, alert, params
                         FROM runs WHERE id = ?1"
                    ),
                    args![id],
                    |r| {
                        Ok((
                            summary_row(r)?,
                            r.get::<String>(SUMMARY_WIDTH)?,
                            r.get::<String>(SUMMARY_WIDTH + 1)?,
                            r.get::<String>(SUMMARY_WIDTH + 2)?,
                            r.get::<String>(SUMMARY_WIDTH + 3)?,
                        ))
                    },
                )
            })?
            .ok_or_else(|| StoreError::UnknownRun(id.clone()))?;

        Ok(RunDetail {
            summary: self.summary(row)?,
            plugin_version: version,
            plugin_sha256: sha,
            alert: self.decode(&id, "alert", &alert)?,
            params: self.decode(&id, "params", &params)?,
            rounds: self.rounds_of(&id)?,
            actions: self.actions_of(&id)?,
            logs: self.logs_of(&id)?,
        })
    }

    pub(super) fn rounds_of(&self, id: &str) -> Result<Vec<RoundRecord>, StoreError> {
        let rows = self.with(|c| {
            c.query_map(
                "SELECT round, plan, instantiate_us, plan_us FROM rounds WHERE run_id = ?1 ORDER BY round",
                args![id],
                |r| Ok((r.get::<u32>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?, r.get::<i64>(3)?)),
            )
        })?;
        rows.into_iter()
            .map(|(round, plan, instantiate_us, plan_us)| {
                Ok(RoundRecord {
                    round,
                    plan: self.decode(id, "plan", &plan)?,
                    instantiate_us: instantiate_us.max(0) as u64,
                    plan_us: plan_us.max(0) as u64,
                })
            })
            .collect()
    }

    pub(super) fn actions_of(&self, id: &str) -> Result<Vec<ActionRecord>, StoreError> {
        let rows = self.with(|c| {
            c.query_map(
                "SELECT round, seq, kind, action, status, detail, duration_us
                 FROM actions WHERE run_id = ?1 ORDER BY round, seq",
                args![id],
                |r| {
                    Ok((
                        r.get::<u32>(0)?,
                        r.get::<u32>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<String>(4)?,
                        r.get::<String>(5)?,
                        r.get::<Option<i64>>(6)?,
                    ))
                },
            )
        })?;
        rows.into_iter()
            .map(|(round, seq, kind, action, status, detail, took)| {
                Ok(ActionRecord {
                    round,
                    seq,
                    kind,
                    action: self.decode(id, "action", &action)?,
                    status,
                    detail,
                    duration_us: took.map(|t| t.max(0) as u64),
                })
            })
            .collect()
    }

    fn logs_of(&self, id: &str) -> Result<Vec<LoggedLine>, StoreError> {
        self.with(|c| {
            c.query_map(
                "SELECT round, level, message FROM logs WHERE run_id = ?1 ORDER BY round, seq",
                args![id],
                |r| {
                    Ok(LoggedLine {
                        round: r.get(0)?,
                        level: r.get(1)?,
                        message: r.get(2)?,
                    })
                },
            )
        })
    }
}

/// The arguments of [`CHOSEN`] for `filter`, and the query's own ?6.
fn chosen(filter: &RunFilter, sixth: i64) -> [Value; 6] {
    [
        filter.plugin.to_value(),
        filter.status.map(RunStatus::as_str).to_value(),
        filter.route.to_value(),
        filter.since.map_or(0, system_ms).to_value(),
        filter.node.to_value(),
        sixth.to_value(),
    ]
}

const SUMMARY_COLUMNS: &str = "id, plugin, trigger, route, dry_run, status, reason, created_ms, started_ms, finished_ms, node, approved_by";
const SUMMARY_WIDTH: usize = 12;

struct SummaryRow {
    id: String,
    plugin: String,
    trigger: String,
    route: Option<String>,
    dry_run: bool,
    status: String,
    reason: Option<String>,
    created_ms: i64,
    started_ms: Option<i64>,
    finished_ms: Option<i64>,
    node: Option<String>,
    approved_by: Option<String>,
}

fn summary_row(r: &Row) -> DbResult<SummaryRow> {
    Ok(SummaryRow {
        id: r.get(0)?,
        plugin: r.get(1)?,
        trigger: r.get(2)?,
        route: r.get(3)?,
        dry_run: r.get(4)?,
        status: r.get(5)?,
        reason: r.get(6)?,
        created_ms: r.get(7)?,
        started_ms: r.get(8)?,
        finished_ms: r.get(9)?,
        node: r.get(10)?,
        approved_by: r.get(11)?,
    })
}
