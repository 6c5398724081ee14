//! `prometheus` and `prometheus_metrics`: whether a plugin may query the
//! operator's Prometheus, and which metrics its queries may select.
//!
//! A query is parsed as PromQL before anything is sent. Every selector in
//! it must name its metric (`up{job="api"}`, or `{__name__="up"}`), and
//! every name must match a granted pattern: a selector by labels only
//! (`{job="api"}`) or by a name regex would reach metrics nobody granted.

use crate::sys::patterns::Patterns;
use promql_parser::label::{METRIC_NAME, MatchOp};
use promql_parser::parser::{Expr, VectorSelector};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PrometheusRight {
    /// Link the `prometheus` read interface.
    Read,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusGrant {
    /// `read` links the `prometheus` interface.
    #[serde(default, rename = "prometheus")]
    pub rights: Vec<PrometheusRight>,
    /// Metric names queries may select, as regexes anchored at both ends
    /// (`process_resident_memory_bytes`, `node_filesystem_.*`).
    #[serde(default, rename = "prometheus_metrics")]
    pub metrics: Patterns,
}

/// Why `promql` may not be sent under `grant`.
pub fn check_query(grant: &PrometheusGrant, promql: &str) -> Result<(), String> {
    let expr = promql_parser::parser::parse(promql).map_err(|e| format!("not PromQL: {e}"))?;
    let mut selectors = Vec::new();
    collect_selectors(&expr, &mut selectors);
    for selector in selectors {
        let name = metric_name(selector).ok_or_else(|| {
            format!(
                "the selector {selector} names no metric; every selector names one granted in \
                 prometheus_metrics"
            )
        })?;
        if !grant.metrics.matches(&name) {
            return Err(format!(
                "metric {name} is not granted (prometheus_metrics)"
            ));
        }
    }
    Ok(())
}

/// The metric a selector names exactly: by name, or by `__name__="..."`.
/// A regex or negated name matcher names no one metric.
fn metric_name(selector: &VectorSelector) -> Option<String> {
    let by_matcher = selector
        .matchers
        .matchers
        .iter()
        .filter(|m| m.name == METRIC_NAME)
        .collect::<Vec<_>>();
    if !selector.matchers.or_matchers.is_empty()
        || by_matcher.iter().any(|m| !matches!(m.op, MatchOp::Equal))
    {
        return None;
    }
    match (&selector.name, by_matcher.as_slice()) {
        (Some(name), []) => Some(name.clone()),
        (Some(name), [m]) if m.value == *name => Some(name.clone()),
        (None, [m]) => Some(m.value.clone()),
        _ => None,
    }
}

/// Every vector selector in `expr`, those inside range selectors and
/// subqueries included.
fn collect_selectors<'e>(expr: &'e Expr, found: &mut Vec<&'e VectorSelector>) {
    match expr {
        Expr::VectorSelector(selector) => found.push(selector),
        Expr::MatrixSelector(matrix) => found.push(&matrix.vs),
        Expr::Aggregate(aggregate) => {
            collect_selectors(&aggregate.expr, found);
            if let Some(param) = &aggregate.param {
                collect_selectors(param, found);
            }
        }
        Expr::Unary(unary) => collect_selectors(&unary.expr, found),
        Expr::Binary(binary) => {
            collect_selectors(&binary.lhs, found);
            collect_selectors(&binary.rhs, found);
        }
        Expr::Paren(paren) => collect_selectors(&paren.expr, found),
        Expr::Subquery(subquery) => collect_selectors(&subquery.expr, found),
        Expr::Call(call) => {
            for arg in &call.args.args {
                collect_selectors(arg, found);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(metrics: &[&str]) -> PrometheusGrant {
        PrometheusGrant {
            rights: vec![PrometheusRight::Read],
            metrics: Patterns::try_from(metrics.iter().map(|m| m.to_string()).collect::<Vec<_>>())
                .unwrap(),
        }
    }

    #[test]
    fn queries_over_granted_metrics_pass() {
        let granted = grant(&["up", "process_resident_memory_bytes", "http_requests_total"]);
        for query in [
            "up",
            r#"up{job="api"} == 0"#,
            r#"{__name__="up", job="api"}"#,
            "max_over_time(process_resident_memory_bytes[2m])",
            r#"sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))"#,
            "avg_over_time(up[10m:1m])",
            "topk(3, process_resident_memory_bytes)",
            "1 + 1",
        ] {
            assert_eq!(check_query(&granted, query), Ok(()), "{query}");
        }
    }

    #[test]
    fn queries_reaching_other_metrics_are_refused_before_they_are_sent() {
        let granted = grant(&["up"]);
        for query in [
            "node_cpu_seconds_total",
            r#"{job="api"}"#,
            r#"{__name__=~"up|secret_.*"}"#,
            r#"{__name__!="up"}"#,
            r#"up{__name__="secret"}"#,
            "up + on() group_left secret_total",
            "absent(secret_total)",
            "label_replace(secret_total, \"a\", \"b\", \"c\", \"d\")",
            "max_over_time(secret_total[5m:1m])",
            "count_values(\"x\", secret_total)",
            "up or",
        ] {
            assert!(check_query(&granted, query).is_err(), "{query} passed");
        }
        assert!(check_query(&PrometheusGrant::default(), "up").is_err(), "nothing granted");
    }
}
