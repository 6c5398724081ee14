//! The HTTP API's OpenAPI document, generated from the handlers' own
//! annotations and the types they answer with, served at `/v1/openapi.json`.

use super::{api, runs_api, webhook};
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "remedy",
        description = "Alertmanager alerts in; sandboxed plugins plan; remedy checks grants, executes and records. \
                       Every refusal is `{kind, message}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        webhook::post_alerts,
        runs_api::list_runs,
        runs_api::get_run,
        runs_api::approve_run,
        runs_api::reject_run,
        api::metrics,
        api::healthy,
        api::ready,
        api::reload,
        document,
    ),
    modifiers(&Credentials),
    tags(
        (name = "alerts", description = "Alertmanager's webhook"),
        (name = "runs", description = "Run history and approvals"),
        (name = "operations", description = "Health, readiness, metrics and reload"),
    )
)]
pub struct ApiDoc;

/// The credentials `[server]` takes: Alertmanager's bearer token or basic
/// auth, which post alerts only, and the users of `users_file`.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = |scheme, about: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(scheme)
                    .description(Some(about))
                    .build(),
            )
        };
        components.add_security_scheme(
            "bearer",
            scheme(
                HttpAuthScheme::Bearer,
                "Alertmanager's token (`[server] token_file`): posts alerts, nothing else.",
            ),
        );
        components.add_security_scheme(
            "basic",
            scheme(
                HttpAuthScheme::Basic,
                "Alertmanager's basic auth (`[server] basic_auth`, posts alerts only), or a user \
                 of `[server] users_file` with the roles post, read or decide.",
            ),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of remedy's HTTP API", body = Object)))]
pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
