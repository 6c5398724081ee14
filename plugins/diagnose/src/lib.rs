//! diagnose: for the alerts no plugin may fix alone (high CPU, slow
//! responses, failing sandbox creation), run the runbook's check steps and
//! hand a human the report. Each step is one check: atomic, with a yes/no
//! verdict, its time and what it saw. The plan escalates, always, and
//! proposes nothing.

use remedy_sdk::prometheus::Series;
use remedy_sdk::{
    Check, Error, Incident, Plan, Plugin, PluginInfo, format_bytes, fs, http, prometheus,
};

struct Diagnose;

impl Plugin for Diagnose {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "diagnose",
            env!("CARGO_PKG_VERSION"),
            "Runs a runbook's checks (health endpoints, metrics queries, disk usage) and escalates \
             with what they found. Changes nothing.",
        )
        .param(
            "health",
            "Comma-separated URLs to GET; a 2xx answer passes.",
            Some(""),
        )
        .param(
            "queries",
            "`;`-separated NAME=PROMQL queries; a query with results passes, one returning \
             nothing is noted (an alert expression returning nothing is fine).",
            Some(""),
        )
        .param(
            "disks",
            "Comma-separated mount points whose usage to report.",
            Some(""),
        )
        .param(
            "runbook",
            "What a human should do next, as the escalation says it.",
            Some("see the runbook"),
        )
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let queries = parse_queries(incident.param("queries").unwrap_or_default())
            .map_err(|why| Error::Invalid(format!("parameter `queries`: {why}")))?;
        let mut plan = Plan::new("");
        for url in incident.param_list("health") {
            plan = plan.check(probe(&url));
        }
        for (name, promql) in &queries {
            plan = plan.check(ask(name, promql));
        }
        for mount in incident.param_list("disks") {
            plan = plan.check(disk(&mount));
        }
        let failing = plan
            .checks
            .iter()
            .filter(|c| !matches!(c.status, remedy_sdk::CheckStatus::Pass))
            .count();
        let alert = incident.label("alertname").unwrap_or("the alert");
        let summary = format!(
            "{alert}: {} checks, {failing} not passing",
            plan.checks.len()
        );
        let runbook = incident.param("runbook").unwrap_or("see the runbook");
        Ok(Plan {
            summary: summary.clone(),
            ..plan
        }
        .escalate(format!("{summary}; no automatic remediation: {runbook}")))
    }
}

/// `NAME=PROMQL;NAME=PROMQL`, in order; a PromQL query may hold `=` itself.
pub fn parse_queries(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once('=') {
            Some((name, promql)) if !name.trim().is_empty() && !promql.trim().is_empty() => {
                Ok((name.trim().to_string(), promql.trim().to_string()))
            }
            _ => Err(format!("{entry:?} is not NAME=PROMQL")),
        })
        .collect()
}

/// One health endpoint: 2xx passes.
fn probe(url: &str) -> Check {
    let name = format!("health {url}");
    match http::get(url, 256) {
        Ok(answer) if (200..300).contains(&answer.status) => Check::pass(
            &name,
            format!("status {} in {} ms", answer.status, answer.elapsed_ms),
        ),
        Ok(answer) => Check::fail(
            &name,
            format!(
                "status {} in {} ms: {}",
                answer.status,
                answer.elapsed_ms,
                String::from_utf8_lossy(&answer.body).trim()
            ),
        ),
        Err(error) => Check::fail(&name, error.describe()),
    }
}

/// One metrics query: what it returned.
fn ask(name: &str, promql: &str) -> Check {
    match prometheus::query(promql) {
        Ok(series) if series.is_empty() => Check::warn(name, format!("{promql}: no result")),
        Ok(series) => Check::pass(name, format!("{promql}: {}", describe_series(&series))),
        Err(error) => Check::fail(name, format!("{promql}: {}", error.describe())),
    }
}

/// Up to five series as `{job="api"} 0.92`, and how many more.
pub fn describe_series(series: &[Series]) -> String {
    let mut shown: Vec<String> = series
        .iter()
        .take(5)
        .map(|one| {
            let labels: Vec<String> = one
                .labels
                .iter()
                .filter(|(k, _)| k != "__name__")
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            let value = one.samples.last().map_or(f64::NAN, |(_, v)| *v);
            format!("{{{}}} {}", labels.join(","), round(value))
        })
        .collect();
    if series.len() > 5 {
        shown.push(format!("and {} more", series.len() - 5));
    }
    shown.join("; ")
}

fn round(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.4}")
    }
}

/// One filesystem's usage, as df shows it.
fn disk(mount: &str) -> Check {
    let name = format!("disk {mount}");
    match fs::usage(mount) {
        Ok(usage) if usage.total_bytes > 0 => {
            let used = usage.used_bytes as f64 * 100.0
                / (usage.used_bytes + usage.available_bytes).max(1) as f64;
            let detail = format!(
                "{used:.1} % used, {} free of {}",
                format_bytes(usage.available_bytes),
                format_bytes(usage.total_bytes)
            );
            if used >= 85.0 {
                Check::warn(&name, detail)
            } else {
                Check::pass(&name, detail)
            }
        }
        Ok(_) => Check::warn(&name, "an empty filesystem"),
        Err(error) => Check::fail(&name, error.describe()),
    }
}

remedy_sdk::export_plugin!(Diagnose);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_named_and_may_hold_equals_signs() {
        let parsed = parse_queries(
            r#"cpu=rate(process_cpu_seconds_total{job="api"}[2m]); up = up{job="api"} == 0;"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            [
                (
                    "cpu".into(),
                    r#"rate(process_cpu_seconds_total{job="api"}[2m])"#.into()
                ),
                ("up".into(), r#"up{job="api"} == 0"#.into()),
            ]
        );
        assert!(parse_queries("").unwrap().is_empty());
        assert!(parse_queries("no-promql").is_err());
        assert!(parse_queries("=up").is_err());
    }

    #[test]
    fn series_are_shown_briefly() {
        let one = |job: &str, value: f64| Series {
            labels: vec![("__name__".into(), "up".into()), ("job".into(), job.into())],
            samples: vec![(1.0, value)],
        };
        assert_eq!(describe_series(&[one("api", 1.0)]), r#"{job="api"} 1"#);
        let many: Vec<Series> = (0..7).map(|n| one(&n.to_string(), 0.123456)).collect();
        let shown = describe_series(&many);
        assert!(
            shown.ends_with("and 2 more") && shown.contains("0.1235"),
            "{shown}"
        );
    }
}
