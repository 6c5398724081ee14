//! The runs API: `GET /v1/runs`, `GET /v1/runs/ID`, and approving or
//! rejecting a plan that waits for a human.

use super::Shared;
use super::api::{ErrorBody, HttpError, authorize, blocking};
use super::auth::{Caller, Role};
use crate::config::parse_since;
use crate::store::{ApprovalError, RunDetail, RunFilter, RunStatus, RunSummary};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Filters on the run history; any unknown one is refused.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RunsQuery {
    /// Only runs of this plugin.
    plugin: Option<String>,
    /// Only runs of this route.
    route: Option<String>,
    /// Only runs for this node.
    node: Option<String>,
    /// Only runs that ended (or stand) so, e.g. `succeeded`, `escalated`.
    #[param(value_type = Option<RunStatus>)]
    outcome: Option<String>,
    /// Only runs created since: a duration (`1h`) or an RFC 3339 time.
    since: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// Runs, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct RunList {
    runs: Vec<RunSummary>,
}

#[utoipa::path(get, path = "/v1/runs", tag = "runs",
    params(RunsQuery),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Runs matching the filters, newest first", body = RunList),
        (status = 400, description = "An unknown filter or a value that does not parse", body = ErrorBody),
        (status = 401, description = "Missing or wrong credentials", body = ErrorBody),
        (status = 403, description = "The caller does not have the `read` role", body = ErrorBody),
        (status = 503, description = "The state store cannot be read", body = ErrorBody),
    ))]
pub(super) async fn list_runs(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunList>, HttpError> {
    authorize(&shared, &headers, Role::Read)?;
    let Query(query) = query.map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let filter = run_filter(
        [&query.plugin, &query.route, &query.node].map(Option::as_deref),
        query.outcome.as_deref(),
        query.since.as_deref(),
        query.limit.unwrap_or(100).min(1000),
    )
    .map_err(|why| HttpError::new(StatusCode::BAD_REQUEST, why))?;
    let runs = blocking(move || Ok(shared.ingest.list_runs(&filter)?)).await?;
    Ok(Json(RunList { runs }))
}

#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "A run id, or a prefix naming one run")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The run in full: alert, params used, every round's plan, actions and logs", body = RunDetail),
        (status = 400, description = "The prefix names more than one run", body = ErrorBody),
        (status = 401, description = "Missing or wrong credentials", body = ErrorBody),
        (status = 403, description = "The caller does not have the `read` role", body = ErrorBody),
        (status = 404, description = "No run has that id", body = ErrorBody),
        (status = 503, description = "The state store cannot be read", body = ErrorBody),
    ))]
pub(super) async fn get_run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, HttpError> {
    authorize(&shared, &headers, Role::Read)?;
    let run = blocking(move || Ok(shared.ingest.get_run(&id)?)).await?;
    Ok(Json(run))
}

/// The store's filter for what a caller typed: `[plugin, route, node]`, an
/// outcome and a `since`; blank means no filter. `Err` names what does not
/// parse. For the API and the console alike.
pub(super) fn run_filter(
    [plugin, route, node]: [Option<&str>; 3],
    outcome: Option<&str>,
    since: Option<&str>,
    limit: u32,
) -> Result<RunFilter, String> {
    fn given(text: Option<&str>) -> Option<&str> {
        text.map(str::trim).filter(|t| !t.is_empty())
    }
    let status = match given(outcome) {
        None => None,
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            format!("outcome={text:?}: expected one of {}", known.join(", "))
        })?),
    };
    let since = match given(since) {
        None => None,
        Some(text) => Some(parse_since(text).map_err(|e| format!("since: {e}"))?),
    };
    Ok(RunFilter {
        plugin: given(plugin).map(str::to_string),
        route: given(route).map(str::to_string),
        node: given(node).map(str::to_string),
        status,
        since,
        limit,
    })
}

/// What an approver may say: who they are (beyond the credentials) and why.
/// The body may also be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Decision {
    /// Who decides; recorded with the credentials it came with.
    by: Option<String>,
    /// Why; recorded with a rejection.
    reason: Option<String>,
}

/// An approved plan, queued to run exactly as approved.
#[derive(Serialize, ToSchema)]
pub(super) struct ApprovedRun {
    id: String,
    status: RunStatus,
    /// The sha256 of the plan that was approved; a different plan is refused.
    plan_hash: String,
    /// How many actions the approved plan holds.
    actions: usize,
    approved_by: String,
}

/// A rejected plan: the run is cancelled and nothing runs.
#[derive(Serialize, ToSchema)]
pub(super) struct RejectedRun {
    id: String,
    status: RunStatus,
}

/// The refusals both decisions share, for the OpenAPI document only: the
/// handlers answer with `HttpError`, whose status picks the case.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum DecisionRefused {
    /// The body is not a decision
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing or wrong credentials
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller does not have the `decide` role
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No run has that id
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The run is not awaiting approval
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The approval window has passed; the run was cancelled
    #[response(status = 410)]
    Gone(ErrorBody),
    /// The state store cannot be written
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Who is deciding: the user their credentials prove, and the name they
/// gave when it is another (a shared account, a bot acting for someone).
fn approver(caller: &Caller, decision: &Decision) -> String {
    let given = decision
        .by
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    match (caller, given) {
        (Caller::User { name, .. }, Some(by)) if by != name => format!("{by} via user {name}"),
        (Caller::User { name, .. }, _) => name.clone(),
        (caller, Some(by)) => format!("{by} via {}", caller.describe()),
        (caller, None) => caller.describe(),
    }
}

/// Authenticate a decision on a run, read its body, and name who made it.
fn decider(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Decision, String), HttpError> {
    let caller = authorize(shared, headers, Role::Decide)?;
    let decision = decision(body)?;
    let by = approver(&caller, &decision);
    Ok((decision, by))
}

fn decision(body: &[u8]) -> Result<Decision, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON like {{\"by\": \"alice\", \"reason\": \"...\"}}: {e}"),
        )
    })
}

impl From<ApprovalError> for HttpError {
    fn from(error: ApprovalError) -> HttpError {
        let status = match &error {
            ApprovalError::Store(e) => {
                return HttpError::unavailable(format!("the state store failed: {e}"));
            }
            ApprovalError::NotFound(_) => StatusCode::NOT_FOUND,
            ApprovalError::NotAwaiting { .. } => StatusCode::CONFLICT,
            ApprovalError::Expired { .. } => StatusCode::GONE,
        };
        HttpError::new(status, error.to_string())
    }
}

#[utoipa::path(post, path = "/v1/runs/{id}/approve", tag = "runs",
    params(("id" = String, Path, description = "A run awaiting approval, or a prefix naming it")),
    request_body(content = Option<Decision>, description = "Who approves; may be empty"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Approved and queued", body = ApprovedRun),
        DecisionRefused,
    ))]
pub(super) async fn approve_run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ApprovedRun>, HttpError> {
    let (_, by) = decider(&shared, &headers, &body)?;
    let approved = approve(&shared, &id, &by).await?;
    Ok(Json(ApprovedRun {
        id: approved.id,
        status: RunStatus::Queued,
        plan_hash: approved.plan_hash,
        actions: approved.actions,
        approved_by: by,
    }))
}

#[utoipa::path(post, path = "/v1/runs/{id}/reject", tag = "runs",
    params(("id" = String, Path, description = "A run awaiting approval, or a prefix naming it")),
    request_body(content = Option<Decision>, description = "Who rejects and why; may be empty"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Rejected; the run is cancelled", body = RejectedRun),
        DecisionRefused,
    ))]
pub(super) async fn reject_run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<RejectedRun>, HttpError> {
    let (decision, by) = decider(&shared, &headers, &body)?;
    let why = decision.reason.unwrap_or_else(|| "no reason given".into());
    reject(&shared, &id, &by, &why).await?;
    Ok(Json(RejectedRun {
        id,
        status: RunStatus::Cancelled,
    }))
}

/// Approve run `id` for `by` within the approval's time limit, and wake a
/// worker to execute it: for the API and the console alike.
pub(super) async fn approve(
    shared: &Arc<Shared>,
    id: &str,
    by: &str,
) -> Result<crate::store::Approved, HttpError> {
    let ttl = shared.live().config.approval_ttl;
    let (worker, id, by) = (shared.clone(), id.to_string(), by.to_string());
    let approved = blocking(move || Ok(worker.ingest.approve(&id, &by, ttl)?)).await?;
    shared.wake.notify_one();
    shared.changed();
    Ok(approved)
}

/// Reject run `id` for `by`, saying `why`: nothing of its plan runs.
pub(super) async fn reject(
    shared: &Arc<Shared>,
    id: &str,
    by: &str,
    why: &str,
) -> Result<(), HttpError> {
    let (worker, id, by, why) = (
        shared.clone(),
        id.to_string(),
        by.to_string(),
        why.to_string(),
    );
    blocking(move || Ok(worker.ingest.reject(&id, &by, &why)?)).await?;
    shared.changed();
    Ok(())
}
