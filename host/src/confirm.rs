//! Acting only on a live alert. Webhooks arrive late, out of order and more
//! than once; a disk may have been cleaned by hand, an API restarted by its
//! owner, while the run waited in the queue or for approval. So just before
//! a round's actions execute, remedy asks Alertmanager whether the alert
//! that started the run still fires, and acts only if it does.

use crate::contract::Alert;
use crate::sys::bridge::Bridge;
use crate::sys::tls::LazyHttpClient;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `[alertmanager]` in the config: where remedy asks whether an alert
/// still fires.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSettings {
    /// Alertmanager's address, such as `http://127.0.0.1:9093`.
    pub url: Option<String>,
    /// A file holding a bearer token Alertmanager (or its proxy) expects.
    pub token_file: Option<PathBuf>,
}

impl AlertmanagerSettings {
    /// The settings with `token_file` relative to the config's directory,
    /// and every problem with them.
    pub fn validated(self, base: &std::path::Path, problems: &mut Vec<String>) -> Self {
        if let Some(url) = &self.url {
            match url::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                Ok(_) => problems.push(format!(
                    "[alertmanager] url = {url:?}: must be http or https"
                )),
                Err(e) => problems.push(format!("[alertmanager] url = {url:?}: {e}")),
            }
        }
        if self.token_file.is_some() && self.url.is_none() {
            problems.push("[alertmanager] token_file is set without a url".into());
        }
        AlertmanagerSettings {
            token_file: self.token_file.map(|file| base.join(file)),
            ..self
        }
    }
}

/// What a route does when Alertmanager cannot say whether its alert fires.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Unconfirmed {
    /// Execute nothing: the run ends escalated, for a human to decide.
    #[default]
    Refuse,
    /// Act as if the alert still fired.
    Proceed,
}

/// How a run confirms its alert before each round's actions.
#[derive(Clone)]
pub struct Confirm {
    pub alertmanager: Arc<Alertmanager>,
    pub unconfirmed: Unconfirmed,
}

impl Confirm {
    /// How a run of `route` confirms its alert: `None` unless the route
    /// requires a firing alert.
    pub fn for_route(
        route: &crate::config::RouteConfig,
        alertmanager: Option<&Arc<Alertmanager>>,
    ) -> Option<Confirm> {
        let alertmanager = alertmanager.filter(|_| route.require_firing)?;
        Some(Confirm {
            alertmanager: alertmanager.clone(),
            unconfirmed: route.unconfirmed,
        })
    }
}

/// What Alertmanager says of an alert.
#[derive(Debug, PartialEq)]
pub enum Firing {
    Yes,
    /// Resolved, or no longer known to Alertmanager: why.
    No(String),
    /// Alertmanager could not be asked: why.
    Unknown(String),
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// A client of Alertmanager's API, made on first use.
pub struct Alertmanager {
    url: String,
    token_file: Option<PathBuf>,
    bridge: Arc<Bridge>,
    client: LazyHttpClient,
}

/// An alert as `GET /api/v2/alerts` lists it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    labels: BTreeMap<String, String>,
    ends_at: Option<String>,
}

impl Alertmanager {
    /// The Alertmanager `settings` name, if they name one.
    pub fn from_settings(
        settings: &AlertmanagerSettings,
        bridge: Arc<Bridge>,
    ) -> Option<Arc<Alertmanager>> {
        let url = settings.url.as_deref()?;
        Some(Arc::new(Alertmanager::new(
            url,
            settings.token_file.clone(),
            bridge,
        )))
    }

    pub fn new(url: &str, token_file: Option<PathBuf>, bridge: Arc<Bridge>) -> Alertmanager {
        Alertmanager {
            url: url.trim_end_matches('/').to_string(),
            token_file,
            bridge,
            client: LazyHttpClient::new(TIMEOUT),
        }
    }

    /// Whether `alert` (by its exact label set) is firing now.
    pub fn firing(&self, alert: &Alert) -> Firing {
        match self.listed(alert) {
            Err(why) => Firing::Unknown(format!(
                "cannot ask Alertmanager at {} whether the alert still fires: {why}",
                self.url
            )),
            Ok(listed) => {
                let labels: BTreeMap<&str, &str> = alert
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let now = SystemTime::now();
                let live = listed.iter().any(|a| {
                    let same = a.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                    same.eq(labels.iter().map(|(k, v)| (*k, *v)))
                        && a.ends_at.as_deref().is_none_or(|end| {
                            humantime::parse_rfc3339_weak(end).map_or(true, |end| end > now)
                        })
                });
                if live {
                    Firing::Yes
                } else {
                    Firing::No(format!(
                        "the alert no longer fires: Alertmanager at {} has resolved it",
                        self.url
                    ))
                }
            }
        }
    }

    /// The alerts Alertmanager lists with `alert`'s labels, whatever their
    /// silencing or inhibition.
    fn listed(&self, alert: &Alert) -> Result<Vec<Listed>, String> {
        let client = self.client.get()?.clone();
        let token = match &self.token_file {
            Some(file) => Some(crate::sys::read_token("[alertmanager] token_file", file)?),
            None => None,
        };
        let mut query: Vec<(&str, String)> = ["active", "silenced", "inhibited", "unprocessed"]
            .map(|state| (state, "true".to_string()))
            .to_vec();
        query.extend(
            alert
                .labels
                .iter()
                .filter(|(name, _)| plain_name(name))
                .map(|(name, value)| ("filter", format!("{name}=\"{}\"", quoted(value)))),
        );
        let url = format!("{}/api/v2/alerts", self.url);
        let request = async move {
            let mut request = client.get(url).query(&query);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let answer = request.send().await?.error_for_status()?;
            answer.json::<Vec<Listed>>().await
        };
        match self.bridge.block_on(request) {
            Ok(Ok(Ok(listed))) => Ok(listed),
            Ok(Ok(Err(e))) => Err(e.without_url().to_string()),
            Ok(Err(past)) => Err(past.to_string()),
            Err(why) => Err(why),
        }
    }
}

/// A label name Alertmanager's classic matchers take unquoted; the others
/// are left out of the filter, and the label sets compared afterwards.
fn plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `value` inside a double-quoted matcher.
fn quoted(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
