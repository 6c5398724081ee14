//! PromQL queries against the operator's Prometheus, over the metrics the
//! grant names (`prometheus = ["read"]`, `prometheus_metrics`).

pub use crate::bindings::remedy::plugin::prometheus::{Series, query, query_range};
