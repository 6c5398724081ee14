//! What `GET /metrics` exposes, in the Prometheus text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub status: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub plugin: String,
    pub route: String,
    pub outcome: &'static str,
    /// The node the run executed on: this one.
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyLabels {
    pub sink: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

type Timings = Family<PluginLabels, Histogram, fn() -> Histogram>;

/// Seconds, from 100 µs to about 100 s.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

pub struct Metrics {
    registry: Registry,
    pub alerts: Family<AlertLabels, Counter>,
    pub requests: Family<CodeLabels, Counter>,
    pub runs: Family<RunLabels, Counter>,
    pub actions: Family<ActionLabels, Counter>,
    pub queue_depth: Gauge,
    pub executing: Gauge,
    /// Runs parked between rounds, watching.
    pub waiting: Gauge,
    pub breaker_open: Family<RouteLabels, Gauge>,
    /// Queued runs the route's blast radius held back when last looked at.
    pub held: Family<RouteLabels, Gauge>,
    pub notifications: Family<NotifyLabels, Counter>,
    /// 1 when the last config reload worked, 0 when it was refused.
    pub reload_ok: Gauge,
    pub reload_success_at: Gauge,
    pub accept_seconds: Histogram,
    pub queue_wait_seconds: Histogram,
    pub instantiate_seconds: Timings,
    pub plan_seconds: Timings,
    pub apply_seconds: Timings,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn notification(&self, sink: &str, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotifyLabels {
                sink: sink.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn new() -> Metrics {
        let timings = || Timings::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let metrics = Metrics {
            registry: Registry::default(),
            alerts: Family::default(),
            requests: Family::default(),
            runs: Family::default(),
            actions: Family::default(),
            queue_depth: Gauge::default(),
            waiting: Gauge::default(),
            executing: Gauge::default(),
            breaker_open: Family::default(),
            held: Family::default(),
            notifications: Family::default(),
            reload_ok: Gauge::default(),
            reload_success_at: Gauge::default(),
            accept_seconds: seconds_histogram(),
            queue_wait_seconds: seconds_histogram(),
            instantiate_seconds: timings(),
            plan_seconds: timings(),
            apply_seconds: timings(),
        };
        let mut registry = Registry::with_prefix("remedy");
        registry.register(
            "notifications",
            "Notifications by receiver and outcome (sent, failed after retries, dropped)",
            metrics.notifications.clone(),
        );
        registry.register(
            "config_last_reload_successful",
            "Whether the last config reload (SIGHUP or POST /-/reload) worked",
            metrics.reload_ok.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the config was last loaded, as a Unix time",
            metrics.reload_success_at.clone(),
        );
        registry.register(
            "alerts_received",
            "Alerts received on /v1/alerts, by status and what became of them",
            metrics.alerts.clone(),
        );
        registry.register(
            "webhook_requests",
            "Requests to /v1/alerts by HTTP status code",
            metrics.requests.clone(),
        );
        registry.register(
            "runs",
            "Finished runs by plugin, route, outcome and the node they executed on",
            metrics.runs.clone(),
        );
        registry.register(
            "actions",
            "Actions by kind and outcome",
            metrics.actions.clone(),
        );
        registry.register(
            "queue_depth",
            "Runs queued and not yet started",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "runs_executing",
            "Runs executing now",
            metrics.executing.clone(),
        );
        registry.register(
            "runs_waiting",
            "Runs parked between rounds until their next round is due",
            metrics.waiting.clone(),
        );
        registry.register(
            "circuit_breaker_open",
            "1 while a route's circuit breaker holds it in dry-run",
            metrics.breaker_open.clone(),
        );
        registry.register(
            "runs_held",
            "Queued runs of a route held back by its blast radius (max_nodes, max_nodes_per_window)",
            metrics.held.clone(),
        );
        registry.register(
            "webhook_accept_seconds",
            "Time from request to 202: parsing, routing and the durable write",
            metrics.accept_seconds.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Time runs spent queued before a worker took them",
            metrics.queue_wait_seconds.clone(),
        );
        registry.register(
            "plugin_instantiate_seconds",
            "Time to instantiate a plugin, per round",
            metrics.instantiate_seconds.clone(),
        );
        registry.register(
            "plugin_plan_seconds",
            "Time a plugin took to plan, per round",
            metrics.plan_seconds.clone(),
        );
        registry.register(
            "apply_seconds",
            "Time executing one round's actions",
            metrics.apply_seconds.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

pub fn observe(histogram: &Histogram, took: Duration) {
    histogram.observe(took.as_secs_f64());
}
