//! The web console under `/ui/`: runs, a run in full, and the plans awaiting
//! a decision, rendered on the server and readable without JavaScript.
//!
//! - People sign in with the basic auth of `[server] users_file`, and see
//!   and do what their roles allow, through the same `authorize` as the API.
//! - Deciding is a form carrying the user's CSRF token ([`csrf`]), and a
//!   cross-site request is refused before the token is even looked at.
//! - Every answer carries a strict Content-Security-Policy: no inline
//!   script or style, nothing from another origin, never framed. The one
//!   script, like the stylesheet, is embedded in the binary.

mod chart;
pub mod csrf;
mod pages;
mod timeline;

use super::Shared;
use super::api::{HttpError, authorize, blocking};
use super::auth::{Caller, Role};
use super::runs_api::{self, run_filter};
use crate::store::{RunFilter, RunStatus};
use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chart::Chart;
use pages::{
    ApprovalsPage, AuditPage, Decision, Filter, Frame, PluginView, PluginsPage, RecordView,
    RefusedPage, RouteView, RoutesPage, RunPage, RunRow, RunsPage, Tried,
};
use std::sync::Arc;
use std::time::SystemTime;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Runs shown on the runs page.
const PAGE_SIZE: u32 = 200;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(runs_page))
        .route("/ui/runs/{id}", get(run_page))
        .route("/ui/approvals", get(approvals_page))
        .route("/ui/runs/{id}/approve", post(approve))
        .route("/ui/runs/{id}/reject", post(reject))
        .route("/ui/routes", get(routes_page))
        .route("/ui/routes/{name}/reset", post(reset_breaker))
        .route("/ui/plugins", get(plugins_page))
        .route("/ui/audit", get(audit_page))
        .route("/ui/audit/export", get(audit_export))
        .route("/ui/events", get(events))
        .route("/ui/static/{file}", get(asset))
        .layer(axum::middleware::map_response(guard_headers))
}

/// What every console answer carries, whatever made it.
async fn guard_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // `no-referrer` would make the browser send `Origin: null` with our own forms.
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A refusal as a page. 401 asks the browser for basic auth, so a person
/// is prompted instead of shown an error.
struct Refused(HttpError);

impl From<HttpError> for Refused {
    fn from(error: HttpError) -> Refused {
        Refused(error)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let page = RefusedPage {
            status: self.0.status.as_u16(),
            message: self.0.message,
        };
        let mut response = (self.0.status, html(page.render())).into_response();
        if self.0.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"remedy\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

fn html(rendered: askama::Result<String>) -> Html<String> {
    Html(rendered.unwrap_or_else(|e| {
        tracing::error!("cannot render a console page: {e}");
        "<!doctype html><p>remedy cannot render this page; its log says why.".into()
    }))
}

fn user_name(caller: &Caller) -> String {
    match caller {
        Caller::User { name, .. } => name.clone(),
        other => other.describe(),
    }
}

fn frame(shared: &Shared, caller: &Caller) -> Frame {
    Frame {
        user: user_name(caller),
        pending: shared.ingest.count_runs(&waiting(0)).unwrap_or(0),
    }
}

/// The runs whose plans await a decision, `limit` of them when listed.
fn waiting(limit: u32) -> RunFilter {
    RunFilter {
        status: Some(RunStatus::AwaitingApproval),
        limit,
        ..RunFilter::default()
    }
}

/// The caller's form token, when they may decide.
fn csrf_for(shared: &Shared, caller: &Caller) -> Option<String> {
    caller
        .may(Role::Decide)
        .then(|| shared.csrf.token(&user_name(caller)))
}

/// A page for a caller with `role`: `build` makes it from the store, off
/// the async workers; any refusal is a page too.
async fn page<T: Template + Send + 'static>(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    build: impl FnOnce(&Shared, &Caller) -> Result<T, HttpError> + Send + 'static,
) -> Result<Html<String>, Refused> {
    let caller = authorize(&shared, headers, Role::Read)?;
    let page = blocking(move || build(&shared, &caller)).await?;
    Ok(html(page.render()))
}

async fn runs_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Result<Html<String>, Refused> {
    page(shared, &headers, move |shared, caller| {
        let chosen = run_filter(
            [&filter.plugin, &filter.route, &filter.node].map(|f| Some(f.as_str())),
            Some(&filter.outcome),
            Some(&filter.since),
            PAGE_SIZE,
        );
        let (runs, chart, problem) = match chosen {
            Ok(chosen) => (
                shared.ingest.list_runs(&chosen)?,
                Some(chart_of(shared, &chosen)?),
                None,
            ),
            Err(problem) => (Vec::new(), None, Some(problem)),
        };
        Ok(RunsPage {
            frame: frame(shared, caller),
            filter,
            outcomes: RunStatus::ALL.iter().map(|s| s.as_str()).collect(),
            problem,
            chart,
            runs: runs.iter().map(RunRow::of).collect(),
        })
    })
    .await
}

/// The chart of the runs `chosen` picks, over its window or the last day.
fn chart_of(shared: &Shared, chosen: &RunFilter) -> Result<Chart, HttpError> {
    let now = SystemTime::now();
    let from = chosen.since.unwrap_or(now - chart::DEFAULT_WINDOW);
    let slice = chart::slice_of(now.duration_since(from).unwrap_or_default());
    let window = RunFilter {
        since: Some(from),
        ..chosen.clone()
    };
    let counts = shared.ingest.runs_over_time(&window, slice)?;
    Ok(Chart::of(&counts, from, slice))
}

async fn run_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Html<String>, Refused> {
    page(shared, &headers, move |shared, caller| {
        let run = shared.ingest.get_run(&id)?;
        let decision = shared.ingest.awaiting(&run.summary.id)?.map(|awaiting| {
            Decision::of(
                &run.summary.id,
                &awaiting,
                shared.live().config.approval_ttl,
                csrf_for(shared, caller),
            )
        });
        let records = shared.ingest.audit_of_run(&run.summary.id)?;
        Ok(RunPage::of(frame(shared, caller), &run, decision, &records))
    })
    .await
}

async fn approvals_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Html<String>, Refused> {
    page(shared, &headers, |shared, caller| {
        let ttl = shared.live().config.approval_ttl;
        let csrf = csrf_for(shared, caller);
        let mut listed = Vec::new();
        for run in shared.ingest.list_runs(&waiting(PAGE_SIZE))? {
            if let Some(awaiting) = shared.ingest.awaiting(&run.id)? {
                let decision = Decision::of(&run.id, &awaiting, ttl, csrf.clone());
                listed.push((RunRow::of(&run), decision));
            }
        }
        Ok(ApprovalsPage {
            frame: frame(shared, caller),
            waiting: listed,
        })
    })
    .await
}

/// The routes page's test box: labels, one `name=value` a line.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct TryLabels {
    labels: String,
}

async fn routes_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<TryLabels>,
) -> Result<Html<String>, Refused> {
    page(shared, &headers, move |shared, caller| {
        let live = shared.live();
        let open: std::collections::HashMap<String, (String, String)> = shared
            .ingest
            .breakers()?
            .into_iter()
            .map(|(route, since, why)| (route, (since, why)))
            .collect();
        let routes = live
            .config
            .routes
            .iter()
            .map(|route| RouteView::of(route, open.get(&route.name).cloned()))
            .collect();
        let (tried, problem) = match parse_labels(&query.labels) {
            Ok(labels) if labels.is_empty() => (Vec::new(), None),
            Ok(labels) => (
                crate::router::evaluate(&live.config.routes, &labels)
                    .iter()
                    .map(|(route, verdict)| Tried {
                        route: route.name.clone(),
                        verdict: verdict.word(),
                        why: crate::text::one_line(&verdict.explain(route, &labels)).into_owned(),
                    })
                    .collect(),
                None,
            ),
            Err(problem) => (Vec::new(), Some(problem)),
        };
        Ok(RoutesPage {
            frame: frame(shared, caller),
            routes,
            csrf: csrf_for(shared, caller),
            labels: query.labels,
            tried,
            problem,
        })
    })
    .await
}

/// `name=value` lines; blank lines are skipped.
fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut labels = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                labels.push((name.trim().to_string(), value.trim().to_string()));
            }
            _ => {
                return Err(format!(
                    "line {}: expected name=value, got {line:?}",
                    number + 1
                ));
            }
        }
    }
    labels.sort();
    Ok(labels)
}

async fn reset_breaker(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Redirect, Refused> {
    let user = decider(&shared, &headers, &form)?;
    if shared.live().route(&name).is_none() {
        return Err(Refused(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no route is called {name}"),
        )));
    }
    let worker = shared.clone();
    blocking(move || Ok(worker.ingest.reset_breaker(&name, &user)?)).await?;
    Ok(Redirect::to("/ui/routes"))
}

async fn plugins_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Html<String>, Refused> {
    page(shared, &headers, |shared, caller| {
        let live = shared.live();
        let plugins = live
            .config
            .plugins
            .iter()
            .filter_map(|config| {
                let loaded = live.plugins.get(&config.name)?;
                Some(PluginView::of(loaded, &config.params))
            })
            .collect();
        Ok(PluginsPage {
            frame: frame(shared, caller),
            plugins,
        })
    })
    .await
}

/// Records shown on the audit page, newest first.
const AUDIT_SHOWN: usize = 100;

async fn audit_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Html<String>, Refused> {
    page(shared, &headers, |shared, caller| {
        let verdict = match shared.ingest.verify_audit()? {
            Ok(intact) => Ok((intact.records, intact.head.unwrap_or_default())),
            Err(broken) => Err(format!("at {broken}")),
        };
        let records = shared.ingest.audit_since(a_day_ago())?;
        Ok(AuditPage {
            frame: frame(shared, caller),
            verdict,
            records_shown: records
                .iter()
                .rev()
                .take(AUDIT_SHOWN)
                .map(RecordView::of)
                .collect(),
        })
    })
    .await
}

/// Where the audit page and its export start: a day back, in the store's ms.
fn a_day_ago() -> i64 {
    crate::store::now_ms() - 86_400_000
}

/// The last day's records as JSON lines, a download.
async fn audit_export(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    authorize(&shared, &headers, Role::Read)?;
    let records = blocking(move || Ok(shared.ingest.audit_since(a_day_ago())?)).await?;
    let mut lines = String::new();
    for record in &records {
        lines.push_str(&serde_json::to_string(record).unwrap_or_default());
        lines.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"remedy-audit.jsonl\"",
            ),
        ],
        lines,
    )
        .into_response())
}

/// What a decision form sends.
#[derive(serde::Deserialize)]
struct DecisionForm {
    /// Missing is refused as a wrong token is, not as a malformed form.
    #[serde(default)]
    csrf: String,
    /// The plan the person saw; a plan that changed since is refused.
    plan_hash: Option<String>,
    reason: Option<String>,
}

/// The deciding user, once the request is shown to come from remedy's own
/// page: same origin, and their form token.
fn decider(shared: &Shared, headers: &HeaderMap, form: &DecisionForm) -> Result<String, Refused> {
    let caller = authorize(shared, headers, Role::Decide)?;
    let forbidden = |why: &str| Refused(HttpError::new(StatusCode::FORBIDDEN, why));
    if let Some(why) = cross_site(headers) {
        return Err(forbidden(&format!("refused: {why}")));
    }
    let user = user_name(&caller);
    if !shared.csrf.holds(&user, &form.csrf) {
        return Err(forbidden(
            "refused: the form's token is missing or not yours; reload the page and decide again",
        ));
    }
    Ok(user)
}

/// Why the request did not come from this server's own page, if it did
/// not: the browser says so (`Sec-Fetch-Site`), or its `Origin` is another.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site @ ("cross-site" | "same-site")) = value("sec-fetch-site") {
        return Some(format!("the browser says the request is {site}"));
    }
    let origin = value("origin")?;
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    match value("host") {
        Some(host) if host == origin_host => None,
        host => Some(format!(
            "it comes from {origin}, not from this server ({})",
            host.unwrap_or("no Host header")
        )),
    }
}

async fn approve(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Redirect, Refused> {
    let user = decider(&shared, &headers, &form)?;
    if let Some(seen) = &form.plan_hash {
        let worker = shared.clone();
        let run = id.clone();
        let current = blocking(move || Ok(worker.ingest.awaiting(&run)?)).await?;
        if current.is_some_and(|now| &now.plan_hash != seen) {
            return Err(Refused(HttpError::new(
                StatusCode::CONFLICT,
                "the plan changed since the page was shown; look at it again before approving",
            )));
        }
    }
    runs_api::approve(&shared, &id, &user).await?;
    Ok(Redirect::to(&format!("/ui/runs/{id}")))
}

async fn reject(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Redirect, Refused> {
    let user = decider(&shared, &headers, &form)?;
    let why = form
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "no reason given".into());
    runs_api::reject(&shared, &id, &user, &why).await?;
    Ok(Redirect::to(&format!("/ui/runs/{id}")))
}

/// `changed` whenever a run is admitted, starts, ends or is decided on.
async fn events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Refused> {
    authorize(&shared, &headers, Role::Read)?;
    let changes = shared.changes.subscribe();
    let stream = futures_util::stream::unfold(changes, |mut changes| async move {
        use tokio::sync::broadcast::error::RecvError;
        match changes.recv().await {
            // Lagging behind only means several changes: one event says it.
            Ok(()) | Err(RecvError::Lagged(_)) => {
                let event = Event::default().event("changed").data("runs");
                Some((Ok::<_, std::convert::Infallible>(event), changes))
            }
            Err(RecvError::Closed) => None,
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The stylesheet and the script, embedded in the binary.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static str, &'static str) = match file.as_str() {
        "remedy.css" => (include_str!("../../../assets/remedy.css"), "text/css"),
        "remedy.js" => (include_str!("../../../assets/remedy.js"), "text/javascript"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
