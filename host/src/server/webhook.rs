//! `POST /v1/alerts`: Alertmanager's webhook. Credentials, size and payload
//! are checked, each alert is routed, and the whole batch is admitted in one
//! transaction, shared with the requests arriving with it, before the 202.

use super::Shared;
use super::api::{ErrorBody, HttpError, authorize};
use super::auth::Role;
use super::dispatch::{Ended, notify};
use super::metrics::{AlertLabels, CodeLabels, observe};
use crate::alert::{PayloadLimits, fingerprint, parse_webhook};
use crate::config::Mode;
use crate::contract::{Alert, AlertStatus};
use crate::router::routes_for;
use crate::run::new_run_id;
use crate::store::{Admission, Admitted, Candidate, Incoming, NewRun, RunPlacement, RunStatus};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// The answer to a delivery: what became of each alert, on each route.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Accepted {
    #[schema(schema_with = accepted)]
    status: &'static str,
    alerts: Vec<AlertAdmitted>,
}

/// What became of one alert.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct AlertAdmitted {
    /// Computed by remedy from the labels.
    fingerprint: String,
    #[schema(schema_with = crate::json::alert_status)]
    status: &'static str,
    outcomes: Vec<Admission>,
}

fn accepted() -> utoipa::openapi::schema::Object {
    crate::json::one_of(["accepted"])
}

#[utoipa::path(post, path = "/v1/alerts", tag = "alerts",
    request_body(content = Object, description = "Alertmanager's webhook payload (version 4)"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 202, description = "Every alert is admitted durably: queued, escalated, or recorded as a duplicate, cooling down, unrouted or resolved", body = Accepted),
        (status = 400, description = "The body is not an Alertmanager webhook payload", body = ErrorBody),
        (status = 401, description = "Missing or wrong credentials", body = ErrorBody),
        (status = 403, description = "The caller does not have the `post` role", body = ErrorBody),
        (status = 413, description = "The body is larger than max_body", body = ErrorBody),
        (status = 503, description = "Shutting down, the queue is full, or the state store cannot be written; Alertmanager retries", body = ErrorBody),
    ))]
pub(super) async fn post_alerts(
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

async fn accept(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, HttpError> {
    if shared.is_stopping() {
        return Err(HttpError::unavailable("remedy is shutting down"));
    }
    // Credentials before the body: a stranger cannot make remedy read megabytes.
    authorize(&shared, headers, Role::Post)?;
    let limit = shared.server.max_body;
    let too_large = || {
        HttpError::new(
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
            return Err(HttpError::new(
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
        HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("not an Alertmanager webhook (version 4): {e}"),
        )
    })?;
    let admitted = admit(&shared, alerts).await?;
    shared.wake.notify_one();
    shared.changed();
    Ok(admitted)
}

/// Admit the request's alerts, whole, in the next group commit: requests
/// arriving together share one durable commit, and each is answered only
/// once its own alerts are durable.
async fn admit(shared: &Arc<Shared>, mut alerts: Vec<Alert>) -> Result<Accepted, HttpError> {
    for alert in &mut alerts {
        // Computed, not taken from the sender: a forged fingerprint could
        // otherwise cancel the queued runs of another alert.
        let labels: BTreeMap<String, String> = alert.labels.iter().cloned().collect();
        alert.fingerprint = fingerprint(&labels);
    }
    let committer = shared.clone();
    let (alerts, admitted) = shared
        .admissions
        .submit(alerts, move |group| commit(&committer, group))
        .await
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the commit of this request failed; it was not admitted",
            )
        })?;
    let alerts = alerts
        .iter()
        .zip(admitted?)
        .map(|(alert, admissions)| report(shared, alert, admissions))
        .collect();
    Ok(Accepted {
        status: "accepted",
        alerts,
    })
}

/// One request's alerts and what became of them.
pub(super) type Answer = (Vec<Alert>, Result<Admitted, HttpError>);

/// Route the alerts of every request in `group` and admit them in one
/// transaction: a request that would overfill the queue gets its 503 and the
/// others go on; a store error gives each its 503.
fn commit(shared: &Shared, group: Vec<Vec<Alert>>) -> Vec<Answer> {
    let live = shared.live();
    let from = match shared.fleet {
        Some(_) => crate::node::From::Fleet,
        None => crate::node::From::Webhook,
    };
    let placed: Vec<Vec<Vec<Placed<'_>>>> = group
        .iter()
        .map(|alerts| {
            alerts
                .iter()
                .map(|alert| place(&live, &shared.server.target_labels, alert, from))
                .collect()
        })
        .collect();
    let batches: Vec<Vec<Incoming<'_>>> = group
        .iter()
        .zip(&placed)
        .map(|(alerts, placed)| {
            alerts
                .iter()
                .zip(placed)
                .map(|(a, p)| incoming(a, p))
                .collect()
        })
        .collect();
    let requests: Vec<&[Incoming<'_>]> = batches.iter().map(Vec::as_slice).collect();
    let answers: Vec<_> = match shared
        .ingest
        .admit_group(&requests, shared.server.max_queued)
    {
        Ok(answers) => answers
            .into_iter()
            .map(|answer| answer.map_err(|full| HttpError::unavailable(full.to_string())))
            .collect(),
        Err(error) => vec![Err(HttpError::from(error)); group.len()],
    };
    drop(batches);
    drop(placed);
    group.into_iter().zip(answers).collect()
}

/// A run a firing alert would start on one of its routes.
struct Placed<'r> {
    route: &'r super::ReadyRoute,
    run_id: String,
    placement: RunPlacement,
    /// The node the run is for, and why this node must not execute it.
    node: crate::node::Placement,
}

/// The runs `alert` would start: one per matching route; none once resolved.
fn place<'r>(
    live: &'r super::Live,
    target_labels: &[String],
    alert: &Alert,
    from: crate::node::From,
) -> Vec<Placed<'r>> {
    if alert.status == AlertStatus::Resolved {
        return Vec::new();
    }
    routes_for(&live.config.routes, &alert.labels)
        .into_iter()
        .filter_map(|config| live.route(&config.name))
        .map(|route| Placed {
            route,
            run_id: new_run_id(),
            node: live
                .config
                .node
                .place(route.config.runs_on, &alert.labels, from),
            placement: RunPlacement {
                fingerprint: Some(alert.fingerprint.clone()),
                group_key: Some(label_key(&picked(&alert.labels, &route.config.group_by))),
                target: Some(picked(&alert.labels, target_labels))
                    .filter(|labels| !labels.is_empty())
                    .map(|labels| label_key(&labels)),
                approval: route.config.mode == Mode::Approve,
            },
        })
        .collect()
}

/// `alert` as the queue admits it: resolved, or firing with its candidate runs.
fn incoming<'a>(alert: &'a Alert, placed: &'a [Placed<'_>]) -> Incoming<'a> {
    match alert.status {
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
                        node: p.node.node.as_deref(),
                    },
                    placement: p.placement.clone(),
                    cooldown: p.route.config.cooldown,
                    refusal: p.node.refusal.clone(),
                })
                .collect(),
        },
    }
}

/// What became of `alert`, counted in the metrics, logged, and answered.
fn report(shared: &Shared, alert: &Alert, admissions: Vec<Admission>) -> AlertAdmitted {
    let status = alert.status.as_str();
    for admission in &admissions {
        if let Admission::Escalated {
            route,
            run_id,
            reason,
        } = admission
        {
            notify_escalated(shared, alert, route, run_id, reason);
        }
        shared
            .metrics
            .alerts
            .get_or_create(&AlertLabels {
                status,
                outcome: admission.outcome(),
            })
            .inc();
    }
    tracing::info!(
        fingerprint = %alert.fingerprint,
        status,
        outcomes = %admissions.iter().map(Admission::outcome).collect::<Vec<_>>().join(","),
        "alert received"
    );
    AlertAdmitted {
        fingerprint: alert.fingerprint.clone(),
        status,
        outcomes: admissions,
    }
}

/// Tell people that a run was recorded and not executed here.
fn notify_escalated(shared: &Shared, alert: &Alert, route: &str, run_id: &str, reason: &str) {
    let live = shared.live();
    let plugin = live.route(route).map_or("", |r| r.plugin.name.as_str());
    let ended = Ended {
        run_id,
        plugin,
        route,
        status: RunStatus::Escalated,
    };
    let labels = alert.labels.iter().cloned().collect();
    notify(shared, &ended, reason.to_string(), labels);
}

/// `{"instance":"a","mountpoint":"/"}` for the named labels the alert has.
/// The values the alert has for `names`, by name.
fn picked<'a>(labels: &'a [(String, String)], names: &[String]) -> BTreeMap<&'a str, &'a str> {
    names
        .iter()
        .filter_map(|name| {
            labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(n, v)| (n.as_str(), v.as_str()))
        })
        .collect()
}

/// Picked labels as a stable key (JSON, names sorted).
fn label_key(picked: &BTreeMap<&str, &str>) -> String {
    serde_json::to_string(picked).expect("string maps serialise")
}
