//! The `prometheus` read interface: instant and range queries, each checked
//! against the grant before it is sent, with the answer bounded.

use super::grant::{PrometheusGrant, PrometheusRight, check_query};
use super::PrometheusSettings;
use crate::caps::Denials;
use crate::contract::ApiError;
use crate::contract::prometheus::Series;
use crate::sys::bridge::Bridge;
use crate::sys::tls::LazyHttpClient;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const MAX_SERIES: usize = 1_000;
pub const MAX_SAMPLES: usize = 11_000;
/// The most of an answer read; one past it is an error, not a cut.
const MAX_ANSWER: usize = 8 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest range a query may cover.
const MAX_RANGE_SECS: u32 = 7 * 24 * 3600;

/// The operator's Prometheus, as every plugin instance reaches it.
pub struct PrometheusApi {
    settings: PrometheusSettings,
    bridge: Arc<Bridge>,
    client: LazyHttpClient,
}

/// Prometheus's answer to a query.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    data: Option<Data>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<Sampled>),
    Matrix(Vec<Sampled>),
    Scalar(Point),
    String(Point),
}

#[derive(Deserialize)]
struct Sampled {
    metric: BTreeMap<String, String>,
    value: Option<Point>,
    #[serde(default)]
    values: Vec<Point>,
}

/// `[1732600000.123, "42"]`.
#[derive(Deserialize)]
struct Point(f64, String);

impl PrometheusApi {
    pub fn new(settings: PrometheusSettings, bridge: Arc<Bridge>) -> Self {
        PrometheusApi {
            settings,
            bridge,
            client: LazyHttpClient::new(TIMEOUT),
        }
    }

    /// Ask `path` (`query` or `query_range`) with `params`.
    fn ask(&self, path: &str, params: Vec<(&'static str, String)>) -> Result<Vec<Series>, ApiError> {
        let unavailable = |why: String| ApiError::Unavailable(format!("Prometheus: {why}"));
        let base = self.settings.url.as_deref().ok_or_else(|| {
            unavailable("no [prometheus] url in remedy's config".into())
        })?;
        let url = format!("{}/api/v1/{path}", base.trim_end_matches('/'));
        let token = match &self.settings.token_file {
            Some(file) => Some(
                crate::sys::read_token("[prometheus] token_file", file).map_err(unavailable)?,
            ),
            None => None,
        };
        let client = self.client.get().map_err(unavailable)?.clone();
        let exchange = async move {
            let mut request = client.post(url).form(&params);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let mut answer = request.send().await?;
            let mut body = Vec::new();
            while let Some(chunk) = answer.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_ANSWER {
                    return Ok(None);
                }
            }
            Ok::<_, reqwest::Error>(Some(body))
        };
        let body = match self.bridge.block_on(exchange) {
            Ok(Ok(Ok(Some(body)))) => body,
            Ok(Ok(Ok(None))) => {
                return Err(unavailable(format!("the answer is larger than {MAX_ANSWER} bytes")));
            }
            Ok(Ok(Err(e))) => return Err(unavailable(e.without_url().to_string())),
            Ok(Err(past)) => return Err(unavailable(past.to_string())),
            Err(why) => return Err(unavailable(why)),
        };
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("not a Prometheus API answer: {e}")))?;
        series(answer)
    }
}

/// The series of an answer, within the bounds.
fn series(answer: Answer) -> Result<Vec<Series>, ApiError> {
    if answer.status != "success" {
        let why = format!(
            "Prometheus: {}: {}",
            answer.error_type.unwrap_or_default(),
            answer.error.unwrap_or_default()
        );
        return Err(ApiError::Invalid(why));
    }
    let sampled = match answer.data {
        Some(Data::Vector(sampled) | Data::Matrix(sampled)) => sampled,
        Some(Data::Scalar(point) | Data::String(point)) => vec![Sampled {
            metric: BTreeMap::new(),
            value: Some(point),
            values: Vec::new(),
        }],
        None => Vec::new(),
    };
    if sampled.len() > MAX_SERIES {
        return Err(ApiError::Invalid(format!(
            "the query matched {} series, more than {MAX_SERIES}: narrow it",
            sampled.len()
        )));
    }
    let mut total = 0;
    let mut found = Vec::with_capacity(sampled.len());
    for one in sampled {
        let samples: Vec<(f64, f64)> = one
            .value
            .into_iter()
            .chain(one.values)
            .map(|Point(at, value)| (at, value.parse().unwrap_or(f64::NAN)))
            .collect();
        total += samples.len();
        if total > MAX_SAMPLES {
            return Err(ApiError::Invalid(format!(
                "the query returned more than {MAX_SAMPLES} samples: narrow it or take a longer step"
            )));
        }
        found.push(Series {
            labels: one.metric.into_iter().collect(),
            samples,
        });
    }
    Ok(found)
}

/// The `prometheus` read interface of one plugin instance.
pub struct PrometheusReader {
    grant: PrometheusGrant,
    api: Arc<PrometheusApi>,
    pub denials: Denials,
    /// Where its calls go: the world, kept or not, or a recording.
    pub journal: crate::caps::journal::Journal,
}

impl PrometheusReader {
    pub fn new(grant: &PrometheusGrant, api: Arc<PrometheusApi>) -> Self {
        PrometheusReader {
            grant: grant.clone(),
            api,
            denials: Denials::default(),
            journal: Default::default(),
        }
    }

    /// Refuse (and note) a call without `read`, or a query outside the grant.
    fn allowed(&mut self, call: &str, promql: &str) -> Result<(), ApiError> {
        let granted = self.grant.rights.contains(&PrometheusRight::Read);
        self.denials.require_read(call, "prometheus", granted)?;
        let checked = check_query(&self.grant, promql).map_err(ApiError::Denied);
        self.denials.note(call, checked)
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

journaled! {
    "prometheus", PrometheusReader: crate::contract::prometheus::Host {
        fn query(&mut self, promql: String) -> Result<Vec<Series>, ApiError> {
            self.allowed("prometheus.query", &promql)?;
            let params = vec![("query", promql), ("time", unix_now().to_string())];
            self.api.ask("query", params)
        }

        fn query_range(
            &mut self,
            promql: String,
            range_secs: u32,
            step_secs: u32,
        ) -> Result<Vec<Series>, ApiError> {
            self.allowed("prometheus.query-range", &promql)?;
            if step_secs == 0 || range_secs > MAX_RANGE_SECS || range_secs / step_secs > MAX_SAMPLES as u32 {
                return Err(ApiError::Invalid(format!(
                    "a range of at most {MAX_RANGE_SECS} s, and at most {MAX_SAMPLES} steps of at least 1 s"
                )));
            }
            let end = unix_now();
            let params = vec![
                ("query", promql),
                ("start", (end - f64::from(range_secs)).to_string()),
                ("end", end.to_string()),
                ("step", step_secs.to_string()),
            ];
            self.api.ask("query_range", params)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Result<Vec<Series>, ApiError> {
        series(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn vectors_matrices_and_scalars_become_series() {
        let vector = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"__name__":"up","job":"api"},"value":[1732600000.5,"1"]}]}}"#,
        )
        .unwrap();
        assert_eq!(vector[0].labels[1], ("job".to_string(), "api".to_string()));
        assert_eq!(vector[0].samples, [(1732600000.5, 1.0)]);
        let matrix = answer(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{},"values":[[1,"1"],[2,"NaN"],[3,"+Inf"]]}]}}"#,
        )
        .unwrap();
        assert_eq!(matrix[0].samples.len(), 3);
        assert!(matrix[0].samples[2].1.is_infinite());
        let scalar =
            answer(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#).unwrap();
        assert_eq!(scalar[0].samples, [(1.0, 2.0)]);
        let refused = answer(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#);
        assert!(matches!(refused, Err(ApiError::Invalid(ref why)) if why.contains("parse error")));
    }

    #[test]
    fn a_huge_result_is_refused_not_cut() {
        let many_series: Vec<String> = (0..=MAX_SERIES)
            .map(|n| format!(r#"{{"metric":{{"n":"{n}"}},"value":[1,"1"]}}"#))
            .collect();
        let wide = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            many_series.join(",")
        );
        assert!(matches!(answer(&wide), Err(ApiError::Invalid(ref why)) if why.contains("1000")));
        let points: Vec<String> = (0..=MAX_SAMPLES).map(|t| format!(r#"[{t},"1"]"#)).collect();
        let long = format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[{}]}}]}}}}"#,
            points.join(",")
        );
        assert!(matches!(answer(&long), Err(ApiError::Invalid(ref why)) if why.contains("11000")));
    }
}
