//! Outgoing notifications: escalations, plans awaiting approval, failed runs
//! and circuit-breaker trips, posted to webhooks as generic JSON or as a
//! Slack-compatible body. A run never waits for them: events go through a
//! bounded queue, and each delivery (with its timeout and retries) runs on
//! its own task, so a dead receiver delays only itself.

use super::metrics::Metrics;
pub use crate::config::EventKind;
use crate::config::{NotifyConfig, NotifyFormat};
use serde::Serialize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// Events waiting to be sent; past this, new ones are dropped and counted.
const QUEUE: usize = 1024;
/// Deliveries in flight at once, over all receivers.
const IN_FLIGHT: usize = 64;

/// What happened, as the generic JSON body carries it.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub event: EventKind,
    pub at: String,
    pub run_id: Option<String>,
    pub plugin: Option<String>,
    pub route: Option<String>,
    pub status: Option<String>,
    pub reason: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The run's page in the console, when `[server] external_url` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Event {
    pub fn new(event: EventKind, reason: impl Into<String>) -> Event {
        Event {
            event,
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            run_id: None,
            plugin: None,
            route: None,
            status: None,
            reason: reason.into(),
            labels: Default::default(),
            url: None,
        }
    }

    /// One line for a chat channel.
    fn text(&self) -> String {
        let mut text = format!("remedy: {}", self.event.as_str());
        if let Some(route) = &self.route {
            text.push_str(&format!(" on route {route}"));
        }
        if let Some(plugin) = &self.plugin {
            text.push_str(&format!(" ({plugin})"));
        }
        if let Some(instance) = self.labels.get("instance") {
            text.push_str(&format!(" for {instance}"));
        }
        text.push_str(&format!(": {}", self.reason));
        if let Some(run) = &self.run_id {
            text.push_str(&format!(" (run {run})"));
        }
        text
    }

    fn body(&self, format: NotifyFormat) -> serde_json::Value {
        match format {
            NotifyFormat::Json => serde_json::to_value(self).unwrap_or_default(),
            NotifyFormat::Slack => {
                let mut text = crate::text::slack(&self.text());
                // remedy's own link, after the escaping that keeps plugin text from linking.
                if let Some(url) = &self.url {
                    text.push_str(&format!(" <{url}|open in remedy>"));
                }
                serde_json::json!({ "text": text })
            }
        }
    }
}

/// The sending side; cheap to call from any thread. Idle until started.
pub struct Notifier {
    queue: OnceLock<mpsc::Sender<Event>>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    pub fn idle(metrics: Arc<Metrics>) -> Notifier {
        Notifier {
            queue: OnceLock::new(),
            metrics,
        }
    }

    /// Start delivering to `sinks` on the current tokio runtime; events
    /// about a run link to its page under `external_url`.
    pub fn start(&self, sinks: Vec<NotifyConfig>, external_url: Option<String>) {
        if sinks.is_empty() {
            return;
        }
        let client = match reqwest::Client::builder()
            .use_preconfigured_tls(super::tls::client_config())
            .user_agent(concat!("remedy/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                return tracing::error!("notifications are off: cannot build the HTTP client: {e}");
            }
        };
        let (queue, mut events) = mpsc::channel::<Event>(QUEUE);
        if self.queue.set(queue).is_err() {
            return;
        }
        let sinks: Arc<[NotifyConfig]> = sinks.into();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            while let Some(mut event) = events.recv().await {
                if let (Some(base), Some(run)) = (&external_url, &event.run_id) {
                    event.url = Some(format!("{base}/ui/runs/{run}"));
                }
                for sink in sinks.iter().filter(|s| s.events.contains(&event.event)) {
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let (client, sink, metrics) = (client.clone(), sink.clone(), metrics.clone());
                    let body = event.body(sink.format);
                    tokio::spawn(async move {
                        let outcome = deliver(&client, &sink, &body).await;
                        metrics.notification(&sink.name, outcome);
                        drop(slot);
                    });
                }
            }
        });
    }

    /// Queue `event`; never blocks. A full queue drops it, counted and logged.
    pub fn send(&self, event: Event) {
        let Some(queue) = self.queue.get() else {
            return;
        };
        if let Err(e) = queue.try_send(event) {
            self.metrics.notification("(queue)", "dropped");
            tracing::warn!("notification dropped: {e}");
        }
    }
}

/// Post `body` with the sink's timeout, retrying with backoff.
async fn deliver(
    client: &reqwest::Client,
    sink: &NotifyConfig,
    body: &serde_json::Value,
) -> &'static str {
    for attempt in 0..=sink.retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 << (attempt - 1).min(5))).await;
        }
        let sent = client
            .post(&sink.url)
            .timeout(sink.timeout)
            .json(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return "sent",
            Ok(response) => {
                tracing::warn!(sink = %sink.name, attempt, "notification answered {}", response.status())
            }
            Err(e) => tracing::warn!(sink = %sink.name, attempt, "notification not delivered: {e}"),
        }
    }
    "failed"
}
