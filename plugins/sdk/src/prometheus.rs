//! PromQL queries against the operator's Prometheus, over the metrics the
//! grant names (`prometheus = ["read"]`, `prometheus_metrics`).
//!
//! ```no_run
//! use remedy_sdk::{Error, prometheus};
//!
//! /// The API's resident memory in bytes, at its largest across instances.
//! fn api_rss() -> Result<Option<f64>, Error> {
//!     let series = prometheus::query(r#"process_resident_memory_bytes{job="api"}"#)?;
//!     Ok(prometheus::largest(&series))
//! }
//! ```

pub use crate::bindings::remedy::plugin::prometheus::{Series, query, query_range};

/// The largest of the series' latest values, ignoring NaN and infinities
/// (a ratio with no traffic is 0/0); `None` when no series has one.
pub fn largest(series: &[Series]) -> Option<f64> {
    series
        .iter()
        .filter_map(|s| s.samples.last())
        .map(|(_, value)| *value)
        .filter(|v| v.is_finite())
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Series {
        Series {
            labels: Vec::new(),
            samples: values.iter().map(|v| (0.0, *v)).collect(),
        }
    }

    #[test]
    fn the_largest_latest_finite_value() {
        assert_eq!(
            largest(&[series(&[9.0, 1.0]), series(&[2.0]), series(&[f64::NAN])]),
            Some(2.0),
            "the latest sample of each series counts"
        );
        assert_eq!(largest(&[series(&[f64::INFINITY])]), None);
        assert_eq!(largest(&[series(&[])]), None);
        assert_eq!(largest(&[]), None);
    }
}
