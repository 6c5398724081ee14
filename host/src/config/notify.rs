//! `[[notify]]`: webhooks told about escalations, plans awaiting approval,
//! failed runs and circuit-breaker trips.

use super::parse_duration;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Escalated,
    ApprovalNeeded,
    Failed,
    BreakerOpened,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Escalated,
        EventKind::ApprovalNeeded,
        EventKind::Failed,
        EventKind::BreakerOpened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Escalated => "escalated",
            EventKind::ApprovalNeeded => "approval-needed",
            EventKind::Failed => "failed",
            EventKind::BreakerOpened => "breaker-opened",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyFormat {
    /// The event as a JSON object.
    Json,
    /// `{"text": "..."}`, which Slack and compatible chat webhooks accept.
    Slack,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    name: String,
    url: Option<String>,
    /// A file holding the URL, for URLs that are secrets (Slack's are).
    url_file: Option<PathBuf>,
    format: Option<NotifyFormat>,
    events: Option<Vec<EventKind>>,
    timeout: Option<String>,
    retries: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct NotifyConfig {
    pub name: String,
    pub url: String,
    pub format: NotifyFormat,
    pub events: Vec<EventKind>,
    /// Per attempt.
    pub timeout: Duration,
    pub retries: u32,
}

pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_NOTIFY_RETRIES: u32 = 3;

pub(super) fn validate_notify(
    raw: Vec<RawNotify>,
    base: &Path,
    problems: &mut Vec<String>,
) -> Vec<NotifyConfig> {
    let mut sinks: Vec<NotifyConfig> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (index, raw) in raw.into_iter().enumerate() {
        let at = format!("[[notify]] #{} `{}`", index + 1, raw.name);
        let before = problems.len();
        if !names.insert(raw.name.clone()) {
            problems.push(format!("{at}: name is used by an earlier [[notify]]"));
        }
        let url = match (raw.url, &raw.url_file) {
            (Some(url), None) => url,
            (None, Some(file)) => {
                let path = base.join(file);
                match std::fs::read_to_string(&path) {
                    Ok(text) => text.trim().to_string(),
                    Err(e) => {
                        problems.push(format!("{at}: url_file {}: {e}", path.display()));
                        String::new()
                    }
                }
            }
            _ => {
                problems.push(format!("{at}: set exactly one of url and url_file"));
                String::new()
            }
        };
        if problems.len() == before && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!("{at}: the URL must start with http:// or https://"));
        }
        let timeout = match raw.timeout.as_deref().map(parse_duration) {
            None => DEFAULT_NOTIFY_TIMEOUT,
            Some(Ok(t)) if t >= Duration::from_millis(100) => t,
            Some(Ok(_)) => {
                problems.push(format!("{at}: timeout must be at least 100ms"));
                DEFAULT_NOTIFY_TIMEOUT
            }
            Some(Err(e)) => {
                problems.push(format!("{at}: timeout: {e}"));
                DEFAULT_NOTIFY_TIMEOUT
            }
        };
        let retries = raw.retries.unwrap_or(DEFAULT_NOTIFY_RETRIES);
        if retries > 10 {
            problems.push(format!("{at}: retries: at most 10"));
        }
        if problems.len() == before {
            sinks.push(NotifyConfig {
                name: raw.name,
                url,
                format: raw.format.unwrap_or(NotifyFormat::Json),
                events: raw.events.unwrap_or_else(|| EventKind::ALL.to_vec()),
                timeout,
                retries,
            });
        }
    }
    sinks
}
