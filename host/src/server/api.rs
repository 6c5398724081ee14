//! The HTTP surface: the routes, refusals as JSON, authentication, metrics,
//! reload and the Prometheus-style health endpoints. The webhook is in
//! `webhook.rs`, the runs API in `runs_api.rs`.

use super::auth::{self, Caller};
use super::metrics::RouteLabels;
use super::{Role, Shared, openapi, runs_api, webhook};
use crate::store::{RunFilter, RunStatus, StoreError};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> Router {
    // An agent takes no alerts and decides nothing: health and metrics only.
    let probes = Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready));
    let routes = match shared.role {
        Role::Agent => probes,
        Role::Receiver => probes
            .route("/v1/alerts", post(webhook::post_alerts))
            .route("/v1/runs", get(runs_api::list_runs))
            .route("/v1/runs/{id}", get(runs_api::get_run))
            .route("/v1/runs/{id}/approve", post(runs_api::approve_run))
            .route("/v1/runs/{id}/reject", post(runs_api::reject_run))
            .route("/-/reload", post(reload).put(reload))
            .route("/v1/openapi.json", get(openapi::document))
            .merge(super::console::routes()),
    };
    routes
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

/// A refusal, as JSON `{"kind": ..., "message": ...}` ([`ErrorBody`]).
#[derive(Clone, Debug)]
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

    /// The refusal as JSON, its kind named by its status.
    fn body(&self) -> ErrorBody {
        let kind = ERROR_KINDS
            .iter()
            .find(|(status, _)| *status == self.status)
            .map_or("internal", |(_, kind)| kind);
        ErrorBody {
            kind,
            message: self.message.clone(),
        }
    }
}

/// Why a request was refused: a kind a program can branch on, and a
/// message for the person reading it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(super) struct ErrorBody {
    #[schema(schema_with = error_kind)]
    kind: &'static str,
    message: String,
}

/// Each refusal's kind, by its status code.
const ERROR_KINDS: [(StatusCode, &str); 9] = [
    (StatusCode::BAD_REQUEST, "bad-request"),
    (StatusCode::UNAUTHORIZED, "unauthorized"),
    (StatusCode::NOT_FOUND, "not-found"),
    (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
    (StatusCode::CONFLICT, "conflict"),
    (StatusCode::GONE, "gone"),
    (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
    (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
];

fn error_kind() -> utoipa::openapi::schema::Object {
    crate::json::one_of(ERROR_KINDS.map(|(_, kind)| kind))
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = Json(self.body());
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

async fn no_such_endpoint(uri: axum::http::Uri) -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        format!(
            "remedy has no endpoint {}; /v1/openapi.json lists them",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} does not take {method}; /v1/openapi.json lists what it takes",
            uri.path()
        ),
    )
}

/// The caller, when their credentials hold `role`: 401 for missing or
/// wrong credentials, 403 for a caller without the role.
pub(super) fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    role: auth::Role,
) -> Result<Caller, HttpError> {
    let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let Some(caller) = shared.credentials.identify(given) else {
        return Err(HttpError {
            challenge: Some(shared.credentials.challenge()),
            ..HttpError::new(
                StatusCode::UNAUTHORIZED,
                if given.is_some() {
                    "the credentials are not valid"
                } else {
                    "credentials required: Alertmanager's token or basic auth from [server], \
                     or a user of [server] users_file"
                },
            )
        });
    };
    if caller.may(role) {
        return Ok(caller);
    }
    Err(HttpError::new(
        StatusCode::FORBIDDEN,
        match &caller {
            Caller::User { name, .. } => format!(
                "user {name} may not {what}: that takes the `{role}` role in [server] users_file",
                what = role_does(role),
                role = role.name()
            ),
            _ => format!(
                "{} may only post alerts; to {} use a user of [server] users_file with the `{}` role",
                caller.describe(),
                role_does(role),
                role.name()
            ),
        },
    ))
}

fn role_does(role: auth::Role) -> &'static str {
    match role {
        auth::Role::Post => "post alerts",
        auth::Role::Read => "read runs",
        auth::Role::Decide => "decide on plans or reload the config",
    }
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

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus metrics in the OpenMetrics text format", content_type = "application/openmetrics-text", body = String),
        (status = 503, description = "The state store cannot be read", body = ErrorBody),
    ))]
pub(super) async fn metrics(State(shared): State<Arc<Shared>>) -> Result<Response, HttpError> {
    let text = blocking(move || {
        let metrics = &shared.metrics;
        metrics.queue_depth.set(shared.ingest.queue_depth()? as i64);
        let waiting = RunFilter {
            status: Some(RunStatus::Waiting),
            ..Default::default()
        };
        metrics
            .waiting
            .set(shared.ingest.count_runs(&waiting)? as i64);
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

/// The answer to a reload: the config now in force.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Reloaded {
    reloaded: bool,
    /// Where the config came from, its routes, and each plugin's sha256 and grants.
    #[schema(value_type = Object)]
    config: Value,
}

/// Reload the config, as SIGHUP does. An invalid config is refused with 500
/// and the reason (as in Prometheus), and the running one stays.
#[utoipa::path(post, path = "/-/reload", tag = "operations",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The new config is in force", body = Reloaded),
        (status = 401, description = "Missing or wrong credentials", body = ErrorBody),
        (status = 403, description = "The caller does not have the `decide` role", body = ErrorBody),
        (status = 500, description = "The new config is invalid; the running one stays", body = ErrorBody),
    ))]
pub(super) async fn reload(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Reloaded>, HttpError> {
    authorize(&shared, &headers, auth::Role::Decide)?;
    blocking(move || {
        shared
            .reload("POST /-/reload")
            .map(|config| {
                Json(Reloaded {
                    reloaded: true,
                    config,
                })
            })
            .map_err(|why| {
                HttpError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("failed to reload config, the running config stays: {why}"),
                )
            })
    })
    .await
}

#[utoipa::path(get, path = "/-/healthy", tag = "operations",
    responses((status = 200, description = "remedy is running", content_type = "text/plain", body = String)))]
pub(super) async fn healthy() -> &'static str {
    "remedy is healthy.\n"
}

#[utoipa::path(get, path = "/-/ready", tag = "operations",
    responses(
        (status = 200, description = "remedy takes alerts", content_type = "text/plain", body = String),
        (status = 503, description = "Shutting down, or the state store cannot be read", body = ErrorBody),
    ))]
pub(super) async fn ready(State(shared): State<Arc<Shared>>) -> Result<&'static str, HttpError> {
    if shared.is_stopping() {
        return Err(HttpError::unavailable("remedy is shutting down"));
    }
    blocking(move || Ok(shared.ingest.queue_depth()?)).await?;
    Ok("remedy is ready.\n")
}
