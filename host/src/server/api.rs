//! The HTTP surface: `POST /v1/alerts`, the run history, metrics and the
//! Prometheus-style health endpoints.

use super::Shared;
use super::metrics::{AlertLabels, CodeLabels, RouteLabels, observe};
use crate::alert::{PayloadLimits, fingerprint, parse_webhook};
use crate::config::{Mode, parse_since};
use crate::contract::{Alert, AlertStatus};
use crate::router::routes_for;
use crate::run::new_run_id;
use crate::store::{
    Admission, AdmitError, ApprovalError, Candidate, Incoming, NewRun, RunFilter, RunPlacement,
    RunStatus, StoreError,
};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/alerts", post(post_alerts))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/runs/{id}/approve", post(approve_run))
        .route("/v1/runs/{id}/reject", post(reject_run))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/-/reload", post(reload).put(reload))
        .with_state(shared)
}

/// A refusal, as JSON `{"status": "error", "error": ...}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
    challenge: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// remedy cannot take the alerts now; Alertmanager will retry.
    fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(10),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"status": "error", "error": self.message}));
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, seconds.into());
        }
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::UnknownRun(_) => ApiError::new(StatusCode::NOT_FOUND, error.to_string()),
            StoreError::AmbiguousRun(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, error.to_string())
            }
            other => {
                tracing::error!("state store: {other}");
                ApiError::unavailable(format!("the state store failed: {other}"))
            }
        }
    }
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if shared.credentials.allows(given) {
        return Ok(());
    }
    Err(ApiError {
        challenge: Some(shared.credentials.challenge()),
        ..ApiError::new(
            StatusCode::UNAUTHORIZED,
            if given.is_some() {
                "the credentials are not valid"
            } else {
                "credentials required: send the bearer token or basic auth set in remedy's [server] config"
            },
        )
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        ))
    })
}

async fn post_alerts(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = match accept(shared.clone(), &headers, body).await {
        Ok(accepted) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
        Err(error) => {
            if error.status.is_server_error() {
                tracing::warn!(status = %error.status, "webhook not accepted: {}", error.message);
            } else {
                tracing::info!(status = %error.status, "webhook refused: {}", error.message);
            }
            error.into_response()
        }
    };
    let code = response.status().as_u16();
    shared
        .metrics
        .requests
        .get_or_create(&CodeLabels { code })
        .inc();
    if code == 202 {
        observe(&shared.metrics.accept_seconds, started.elapsed());
    }
    response
}

async fn accept(shared: Arc<Shared>, headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    if shared.is_stopping() {
        return Err(ApiError::unavailable("remedy is shutting down"));
    }
    // Credentials before the body: a stranger cannot make remedy read megabytes.
    authenticate(&shared, headers)?;
    let limit = shared.server.max_body;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than max_body ({limit} bytes) in remedy's [server] config"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(too_large()),
        Err(error) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {error}"),
            ));
        }
    };
    let limits = PayloadLimits {
        max_alerts: shared.server.max_alerts,
        ..PayloadLimits::default()
    };
    let (_, alerts) = parse_webhook(&body, &limits).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("not an Alertmanager webhook (version 4): {e}"),
        )
    })?;
    let admitted = {
        let shared = shared.clone();
        blocking(move || admit(&shared, alerts)).await?
    };
    shared.wake.notify_one();
    Ok(admitted)
}

/// Route every alert and admit the batch in one transaction.
fn admit(shared: &Shared, mut alerts: Vec<Alert>) -> Result<Value, ApiError> {
    let live = shared.live();
    let server = &shared.server;
    for alert in &mut alerts {
        // Computed, not taken from the sender: a forged fingerprint could
        // otherwise cancel the queued runs of another alert.
        let labels: BTreeMap<String, String> = alert.labels.iter().cloned().collect();
        alert.fingerprint = fingerprint(&labels);
    }
    struct Placed<'r> {
        route: &'r super::ReadyRoute,
        run_id: String,
        placement: RunPlacement,
    }
    let placed: Vec<Vec<Placed<'_>>> = alerts
        .iter()
        .map(|alert| {
            if alert.status == AlertStatus::Resolved {
                return Vec::new();
            }
            routes_for(&live.config.routes, &alert.labels)
                .into_iter()
                .filter_map(|config| live.route(&config.name))
                .map(|route| Placed {
                    route,
                    run_id: new_run_id(),
                    placement: RunPlacement {
                        fingerprint: Some(alert.fingerprint.clone()),
                        group_key: Some(label_key(&alert.labels, &route.config.group_by)),
                        target: Some(label_key(&alert.labels, &server.target_labels))
                            .filter(|key| key != "{}"),
                        approval: route.config.mode == Mode::Approve,
                    },
                })
                .collect()
        })
        .collect();
    let batch: Vec<Incoming<'_>> = alerts
        .iter()
        .zip(&placed)
        .map(|(alert, placed)| match alert.status {
            AlertStatus::Resolved => Incoming::Resolved { alert },
            AlertStatus::Firing => Incoming::Firing {
                alert,
                candidates: placed
                    .iter()
                    .map(|p| Candidate {
                        run: NewRun {
                            id: &p.run_id,
                            plugin: &p.route.plugin.name,
                            plugin_version: &p.route.plugin.info.version,
                            plugin_sha256: &p.route.plugin.sha256,
                            trigger: "webhook",
                            route: Some(&p.route.config.name),
                            dry_run: p.route.config.mode != Mode::Apply,
                            alert,
                            params: &p.route.params,
                        },
                        placement: p.placement.clone(),
                        cooldown: p.route.config.cooldown,
                    })
                    .collect(),
            },
        })
        .collect();
    let admitted = shared
        .ingest
        .admit(&batch, server.max_queued)
        .map_err(|error| match error {
            AdmitError::QueueFull { .. } => ApiError::unavailable(error.to_string()),
            AdmitError::Store(store) => ApiError::from(store),
        })?;

    let mut report = Vec::with_capacity(alerts.len());
    for (alert, admissions) in alerts.iter().zip(&admitted) {
        let status = match alert.status {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        };
        let outcomes: Vec<Value> = admissions
            .iter()
            .map(|admission| {
                shared
                    .metrics
                    .alerts
                    .get_or_create(&AlertLabels {
                        status,
                        outcome: admission.outcome(),
                    })
                    .inc();
                describe(admission)
            })
            .collect();
        tracing::info!(
            fingerprint = %alert.fingerprint,
            status,
            outcomes = %admissions.iter().map(Admission::outcome).collect::<Vec<_>>().join(","),
            "alert received"
        );
        report.push(
            json!({"fingerprint": alert.fingerprint, "status": status, "outcomes": outcomes}),
        );
    }
    Ok(json!({"status": "accepted", "alerts": report}))
}

/// `{"instance":"a","mountpoint":"/"}` for the named labels the alert has.
fn label_key(labels: &[(String, String)], names: &[String]) -> String {
    let picked: BTreeMap<&str, &str> = names
        .iter()
        .filter_map(|name| {
            labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(n, v)| (n.as_str(), v.as_str()))
        })
        .collect();
    serde_json::to_string(&picked).expect("string maps serialise")
}

fn describe(admission: &Admission) -> Value {
    let outcome = admission.outcome();
    match admission {
        Admission::Queued { route, run_id } => {
            json!({"outcome": outcome, "route": route, "run": run_id})
        }
        Admission::Duplicate { route } => json!({"outcome": outcome, "route": route}),
        Admission::CoolingDown { route, last_run } => {
            json!({"outcome": outcome, "route": route, "last_run": last_run})
        }
        Admission::Unrouted => json!({"outcome": outcome}),
        Admission::Resolved { cancelled } => json!({"outcome": outcome, "cancelled": cancelled}),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    plugin: Option<String>,
    route: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

async fn list_runs(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&shared, &headers)?;
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let status = match query.outcome.as_deref() {
        None => None,
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("outcome={text:?}: expected one of {}", known.join(", ")),
            )
        })?),
    };
    let since = match query.since.as_deref() {
        None => None,
        Some(text) => Some(
            parse_since(text)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("since: {e}")))?,
        ),
    };
    let filter = RunFilter {
        plugin: query.plugin,
        route: query.route,
        status,
        since,
        limit: query.limit.unwrap_or(100).min(1000),
    };
    let runs = blocking(move || Ok(shared.ingest.list_runs(&filter)?)).await?;
    Ok(Json(json!({"runs": runs})))
}

async fn get_run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
) -> Result<(Decision, String), ApiError> {
    authenticate(shared, headers)?;
    let decision = decision(body)?;
    let by = approver(headers, &decision);
    Ok((decision, by))
}

fn decision(body: &[u8]) -> Result<Decision, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON like {{\"by\": \"alice\", \"reason\": \"...\"}}: {e}"),
        )
    })
}

impl From<ApprovalError> for ApiError {
    fn from(error: ApprovalError) -> ApiError {
        let status = match &error {
            ApprovalError::Store(e) => {
                return ApiError::unavailable(format!("the state store failed: {e}"));
            }
            ApprovalError::NotFound(_) => StatusCode::NOT_FOUND,
            ApprovalError::NotAwaiting { .. } => StatusCode::CONFLICT,
            ApprovalError::Expired { .. } => StatusCode::GONE,
        };
        ApiError::new(status, error.to_string())
    }
}

async fn approve_run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
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

async fn reject_run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let (decision, by) = decider(&shared, &headers, &body)?;
    let why = decision.reason.unwrap_or_else(|| "no reason given".into());
    let worker = shared.clone();
    let rejected_id = id.clone();
    blocking(move || Ok(worker.ingest.reject(&rejected_id, &by, &why)?)).await?;
    Ok(Json(json!({ "id": id, "status": "cancelled" })))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let text = blocking(move || {
        let metrics = &shared.metrics;
        metrics.queue_depth.set(shared.ingest.queue_depth()? as i64);
        let open = shared.ingest.breakers()?;
        for route in &shared.live().routes {
            let is_open = open.iter().any(|(name, ..)| *name == route.config.name);
            metrics
                .breaker_open
                .get_or_create(&RouteLabels {
                    route: route.config.name.clone(),
                })
                .set(i64::from(is_open));
        }
        Ok(metrics.encode())
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Reload the config, as SIGHUP does. An invalid config is refused with 500
/// and the reason (as in Prometheus), and the running one stays.
async fn reload(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authenticate(&shared, &headers)?;
    blocking(move || {
        shared
            .reload("POST /-/reload")
            .map(|summary| Json(json!({ "reloaded": true, "config": summary })))
            .map_err(|why| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("failed to reload config, the running config stays: {why}"),
                )
            })
    })
    .await
}

async fn healthy() -> &'static str {
    "remedy is healthy.\n"
}

async fn ready(State(shared): State<Arc<Shared>>) -> Result<&'static str, ApiError> {
    if shared.is_stopping() {
        return Err(ApiError::unavailable("remedy is shutting down"));
    }
    blocking(move || Ok(shared.ingest.queue_depth()?)).await?;
    Ok("remedy is ready.\n")
}
