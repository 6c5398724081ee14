//! The HTTP surface: the routes, refusals as JSON, authentication, metrics,
//! reload and the Prometheus-style health endpoints. The webhook is in
//! `webhook.rs`, the runs API in `runs_api.rs`.

use super::metrics::RouteLabels;
use super::{Shared, runs_api, webhook};
use crate::store::StoreError;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/alerts", post(webhook::post_alerts))
        .route("/v1/runs", get(runs_api::list_runs))
        .route("/v1/runs/{id}", get(runs_api::get_run))
        .route("/v1/runs/{id}/approve", post(runs_api::approve_run))
        .route("/v1/runs/{id}/reject", post(runs_api::reject_run))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/-/reload", post(reload).put(reload))
        .with_state(shared)
}

/// A refusal, as JSON `{"status": "error", "error": ...}`.
#[derive(Debug)]
pub(super) struct HttpError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    retry_after: Option<u32>,
    challenge: Option<&'static str>,
}

impl HttpError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// remedy cannot take the alerts now; Alertmanager will retry.
    pub(super) fn unavailable(message: impl Into<String>) -> HttpError {
        HttpError {
            retry_after: Some(10),
            ..HttpError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }
}

impl IntoResponse for HttpError {
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

impl From<StoreError> for HttpError {
    fn from(error: StoreError) -> HttpError {
        match error {
            StoreError::UnknownRun(_) => HttpError::new(StatusCode::NOT_FOUND, error.to_string()),
            StoreError::AmbiguousRun(_) => {
                HttpError::new(StatusCode::BAD_REQUEST, error.to_string())
            }
            other => {
                tracing::error!("state store: {other}");
                HttpError::unavailable(format!("the state store failed: {other}"))
            }
        }
    }
}

pub(super) fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<(), HttpError> {
    let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if shared.credentials.allows(given) {
        return Ok(());
    }
    Err(HttpError {
        challenge: Some(shared.credentials.challenge()),
        ..HttpError::new(
            StatusCode::UNAUTHORIZED,
            if given.is_some() {
                "the credentials are not valid"
            } else {
                "credentials required: send the bearer token or basic auth set in remedy's [server] config"
            },
        )
    })
}

pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HttpError> + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        ))
    })
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Result<Response, HttpError> {
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
) -> Result<Json<Value>, HttpError> {
    authenticate(&shared, &headers)?;
    blocking(move || {
        shared
            .reload("POST /-/reload")
            .map(|summary| Json(json!({ "reloaded": true, "config": summary })))
            .map_err(|why| {
                HttpError::new(
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

async fn ready(State(shared): State<Arc<Shared>>) -> Result<&'static str, HttpError> {
    if shared.is_stopping() {
        return Err(HttpError::unavailable("remedy is shutting down"));
    }
    blocking(move || Ok(shared.ingest.queue_depth()?)).await?;
    Ok("remedy is ready.\n")
}
