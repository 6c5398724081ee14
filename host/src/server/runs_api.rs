//! The runs API: `GET /v1/runs`, `GET /v1/runs/ID`, and approving or
//! rejecting a plan that waits for a human.

use super::Shared;
use super::api::{HttpError, authenticate, blocking};
use crate::config::parse_since;
use crate::store::{ApprovalError, RunFilter, RunStatus};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunsQuery {
    plugin: Option<String>,
    route: Option<String>,
    node: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn list_runs(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, HttpError> {
    authenticate(&shared, &headers)?;
    let Query(query) = query.map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let status = match query.outcome.as_deref() {
        None => None,
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            HttpError::new(
                StatusCode::BAD_REQUEST,
                format!("outcome={text:?}: expected one of {}", known.join(", ")),
            )
        })?),
    };
    let since = match query.since.as_deref() {
        None => None,
        Some(text) => Some(
            parse_since(text)
                .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, format!("since: {e}")))?,
        ),
    };
    let filter = RunFilter {
        plugin: query.plugin,
        route: query.route,
        node: query.node,
        status,
        since,
        limit: query.limit.unwrap_or(100).min(1000),
    };
    let runs = blocking(move || Ok(shared.ingest.list_runs(&filter)?)).await?;
    Ok(Json(json!({"runs": runs})))
}

pub(super) async fn get_run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, HttpError> {
    authenticate(&shared, &headers)?;
    let run = blocking(move || Ok(shared.ingest.get_run(&id)?)).await?;
    Ok(Json(serde_json::to_value(run).expect("runs serialise")))
}

/// What an approver may say: who they are (beyond the credentials) and why.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    by: Option<String>,
    reason: Option<String>,
}

/// Who is deciding: the name given, and the credentials it came with.
fn approver(headers: &HeaderMap, decision: &Decision) -> String {
    let credentials = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(value) if value.starts_with("Bearer ") => "bearer token".to_string(),
        Some(value) => value
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(user, _)| format!("basic auth user {user}"))
            })
            .unwrap_or_else(|| "credentials".to_string()),
        None => "no credentials (insecure_no_auth)".to_string(),
    };
    match decision
        .by
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        Some(name) => format!("{name} via HTTP with {credentials}"),
        None => format!("HTTP with {credentials}"),
    }
}

/// Authenticate a decision on a run, read its body, and name who made it.
fn decider(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Decision, String), HttpError> {
    authenticate(shared, headers)?;
    let decision = decision(body)?;
    let by = approver(headers, &decision);
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

pub(super) async fn approve_run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, HttpError> {
    let (_, by) = decider(&shared, &headers, &body)?;
    let ttl = shared.live().config.approval_ttl;
    let worker = shared.clone();
    let approver = by.clone();
    let approved = blocking(move || Ok(worker.ingest.approve(&id, &approver, ttl)?)).await?;
    shared.wake.notify_one();
    Ok(Json(json!({
        "id": approved.id,
        "status": "queued",
        "plan_hash": approved.plan_hash,
        "actions": approved.actions,
        "approved_by": by,
    })))
}

pub(super) async fn reject_run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, HttpError> {
    let (decision, by) = decider(&shared, &headers, &body)?;
    let why = decision.reason.unwrap_or_else(|| "no reason given".into());
    let worker = shared.clone();
    let rejected_id = id.clone();
    blocking(move || Ok(worker.ingest.reject(&rejected_id, &by, &why)?)).await?;
    Ok(Json(json!({ "id": id, "status": "cancelled" })))
}
