//! `prometheus`: PromQL queries against the operator's Prometheus, over the
//! metrics the grant names. Read-only: it has no actions.

mod grant;
mod read;

pub use grant::{PrometheusGrant, PrometheusRight, check_query};
pub use read::{MAX_SAMPLES, MAX_SERIES, PrometheusApi, PrometheusReader};

use crate::caps::journal::Journal;
use super::{Capability, HostEnv};
use serde::Deserialize;
use std::path::PathBuf;
use wasmtime::component::{HasSelf, Linker};

/// Queries of the operator's Prometheus.
pub struct Prometheus;

impl Capability for Prometheus {
    const NAME: &'static str = "prometheus";
    // One Prometheus serves the cluster: its plugins may run on any node.
    const NODE_LOCAL: bool = false;
    type Grant = PrometheusGrant;
    type Reader = PrometheusReader;

    fn missing(grant: &PrometheusGrant) -> Option<&'static str> {
        (!grant.rights.contains(&PrometheusRight::Read)).then_some(r#"prometheus = ["read"]"#)
    }

    fn problems(grant: &PrometheusGrant) -> Vec<String> {
        if grant.rights.contains(&PrometheusRight::Read) && grant.metrics.is_empty() {
            vec!["grants.prometheus_metrics: name the metrics its queries may select".into()]
        } else {
            Vec::new()
        }
    }

    fn reader(grant: &PrometheusGrant, env: &HostEnv, journal: Journal) -> PrometheusReader {
        let mut reader = PrometheusReader::new(grant, env.prometheus.clone());
        reader.journal = journal;
        reader
    }

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut PrometheusReader,
    ) -> wasmtime::Result<()> {
        crate::contract::prometheus::add_to_linker::<T, HasSelf<PrometheusReader>>(linker, get)
    }

    fn denials(reader: PrometheusReader) -> Vec<String> {
        reader.denials.into_lines()
    }
}

read_only!(Prometheus);

/// `[prometheus]` in the config: the Prometheus plugins granted
/// `prometheus` query.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSettings {
    /// Prometheus's address, such as `http://127.0.0.1:9090`.
    pub url: Option<String>,
    /// A file holding a bearer token Prometheus (or its proxy) expects.
    pub token_file: Option<PathBuf>,
}

impl PrometheusSettings {
    /// Every problem with the settings.
    pub fn problems(&self) -> Vec<String> {
        match self.url.as_deref().map(url::Url::parse) {
            Some(Ok(url)) if !matches!(url.scheme(), "http" | "https") => {
                vec!["[prometheus] url must be http or https".into()]
            }
            Some(Err(e)) => vec![format!("[prometheus] url: {e}")],
            _ => Vec::new(),
        }
    }
}
