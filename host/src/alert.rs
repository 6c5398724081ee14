//! Alertmanager's alert, as its webhook (version 4) delivers it, and alerts
//! made by hand for `remedy run`.

use crate::contract::{Alert, AlertStatus};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// One alert of a webhook payload. Unknown fields are ignored, as Alertmanager adds some over time.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// An Alertmanager webhook body (`version` "4").
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    pub version: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_key: String,
    /// Alerts Alertmanager left out because of `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    pub alerts: Vec<WebhookAlert>,
}

/// Bounds on one webhook body, beyond the HTTP body size limit.
#[derive(Clone, Copy, Debug)]
pub struct PayloadLimits {
    pub max_alerts: usize,
    pub max_labels: usize,
    pub max_name_bytes: usize,
    pub max_value_bytes: usize,
}

impl Default for PayloadLimits {
    fn default() -> Self {
        PayloadLimits {
            max_alerts: 1_000,
            max_labels: 128,
            max_name_bytes: 1024,
            max_value_bytes: 16 * 1024,
        }
    }
}

/// A webhook body remedy refuses, with the JSON path of the offending field.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PayloadError {
    pub path: String,
    pub message: String,
}

fn payload_error(path: impl Into<String>, message: impl Into<String>) -> PayloadError {
    PayloadError {
        path: path.into(),
        message: message.into(),
    }
}

/// Parse and check a webhook body: every alert, or the first problem.
pub fn parse_webhook(
    body: &[u8],
    limits: &PayloadLimits,
) -> Result<(WebhookPayload, Vec<Alert>), PayloadError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    let mut payload: WebhookPayload =
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." {
                "body".to_string()
            } else {
                path
            };
            payload_error(path, e.into_inner().to_string())
        })?;
    if payload.version != "4" {
        return Err(payload_error(
            "version",
            format!(
                "{:?} is not supported; remedy reads Alertmanager's webhook version \"4\"",
                payload.version
            ),
        ));
    }
    if payload.alerts.len() > limits.max_alerts {
        return Err(payload_error(
            "alerts",
            format!(
                "{} alerts; at most {} per request (set max_alerts in the Alertmanager receiver)",
                payload.alerts.len(),
                limits.max_alerts
            ),
        ));
    }
    let alerts = std::mem::take(&mut payload.alerts);
    let alerts = alerts
        .into_iter()
        .enumerate()
        .map(|(index, alert)| {
            check_alert(&alert, limits).map_err(|(field, message)| {
                payload_error(format!("alerts[{index}].{field}"), message)
            })?;
            alert
                .into_contract()
                .map_err(|e| payload_error(format!("alerts[{index}].status"), e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    Ok((payload, alerts))
}

fn check_alert(alert: &WebhookAlert, limits: &PayloadLimits) -> Result<(), (&'static str, String)> {
    for (field, pairs) in [
        ("labels", &alert.labels),
        ("annotations", &alert.annotations),
    ] {
        if pairs.len() > limits.max_labels {
            return Err((
                field,
                format!("{} entries; at most {}", pairs.len(), limits.max_labels),
            ));
        }
        for (name, value) in pairs.iter() {
            if name.is_empty() || name.len() > limits.max_name_bytes {
                return Err((
                    field,
                    format!(
                        "a name of {} bytes; names are 1 to {} bytes",
                        name.len(),
                        limits.max_name_bytes
                    ),
                ));
            }
            if value.len() > limits.max_value_bytes {
                return Err((
                    field,
                    format!(
                        "{name:?} is {} bytes; at most {}",
                        value.len(),
                        limits.max_value_bytes
                    ),
                ));
            }
        }
    }
    if !alert.labels.contains_key("alertname") {
        return Err(("labels", "no alertname label".to_string()));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("not an Alertmanager webhook payload or alert: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("the payload holds {0} alerts; give a file with exactly one")]
    NotOne(usize),
    #[error("alert status is {0:?}; expected \"firing\" or \"resolved\"")]
    Status(String),
}

impl WebhookAlert {
    pub fn into_contract(self) -> Result<Alert, AlertError> {
        let status = match self.status.as_str() {
            "firing" => AlertStatus::Firing,
            "resolved" => AlertStatus::Resolved,
            _ => return Err(AlertError::Status(self.status)),
        };
        let fingerprint = self
            .fingerprint
            .unwrap_or_else(|| fingerprint(&self.labels));
        Ok(Alert {
            status,
            labels: self.labels.into_iter().collect(),
            annotations: self.annotations.into_iter().collect(),
            starts_at: self.starts_at,
            // Alertmanager sends the zero time for alerts still firing.
            ends_at: self.ends_at.filter(|t| !t.starts_with("0001-")),
            fingerprint,
        })
    }
}

/// Read one alert from a webhook payload holding exactly one, or a bare alert object.
pub fn parse_alert_json(json: &str) -> Result<Alert, AlertError> {
    let value: serde_json::Value = serde_json::from_str(json)?;
    let alert = if let Some(alerts) = value.get("alerts") {
        let mut alerts: Vec<WebhookAlert> = serde_json::from_value(alerts.clone())?;
        if alerts.len() != 1 {
            return Err(AlertError::NotOne(alerts.len()));
        }
        alerts.remove(0)
    } else {
        serde_json::from_value(value)?
    };
    alert.into_contract()
}

/// A firing alert with these labels, started now: what `remedy run` plans for
/// when no alert file is given.
pub fn manual_alert(labels: BTreeMap<String, String>) -> Alert {
    Alert {
        status: AlertStatus::Firing,
        fingerprint: fingerprint(&labels),
        labels: labels.into_iter().collect(),
        annotations: Vec::new(),
        starts_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        ends_at: None,
    }
}

/// The fingerprint Alertmanager gives a label set: FNV-1a 64 over the sorted
/// names and values, each followed by the byte 0xff.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    format!("{hash:016x}")
}

/// Alert labels from pairs, for tests.
#[cfg(test)]
pub(crate) fn test_labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_alertmanager() {
        // From Prometheus' model tests: {} and a small label set.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        let labels = BTreeMap::from([("foo".to_string(), "bar".to_string())]);
        let other = BTreeMap::from([("foo".to_string(), "baz".to_string())]);
        assert_ne!(fingerprint(&labels), fingerprint(&other));
        assert_eq!(fingerprint(&labels).len(), 16);
    }

    #[test]
    fn payloads_and_bare_alerts() {
        let payload = include_str!("../../tests/fixtures/am-webhook-firing.json");
        let alert = parse_alert_json(payload).unwrap();
        assert_eq!(alert.status, AlertStatus::Firing);
        assert_eq!(alert.fingerprint, "1854b7fffc770620");
        assert_eq!(alert.ends_at, None);
        assert!(
            alert
                .labels
                .contains(&("instance".into(), "host-a:9100".into()))
        );

        let bare = r#"{"status":"resolved","labels":{"a":"b"},"startsAt":"x","endsAt":"y"}"#;
        let alert = parse_alert_json(bare).unwrap();
        assert_eq!(alert.status, AlertStatus::Resolved);
        assert_eq!(alert.ends_at.as_deref(), Some("y"));
    }

    #[test]
    fn webhook_bodies_parse_as_alertmanager_sends_them() {
        let firing = include_bytes!("../../tests/fixtures/am-webhook-firing.json");
        let (payload, alerts) = parse_webhook(firing, &PayloadLimits::default()).unwrap();
        assert_eq!((payload.version.as_str(), alerts.len()), ("4", 1));
        assert_eq!(alerts[0].fingerprint, "1854b7fffc770620");
        let resolved = include_bytes!("../../tests/fixtures/am-webhook-resolved.json");
        let (_, alerts) = parse_webhook(resolved, &PayloadLimits::default()).unwrap();
        assert_eq!(alerts[0].status, AlertStatus::Resolved);
        assert!(alerts[0].ends_at.is_some());
    }

    #[test]
    fn bad_webhook_bodies_name_the_field() {
        let limits = PayloadLimits {
            max_alerts: 2,
            max_labels: 3,
            max_name_bytes: 16,
            max_value_bytes: 8,
        };
        let alert =
            |labels: &str| format!(r#"{{"status":"firing","labels":{labels},"startsAt":"t"}}"#);
        let body = |alerts: &[String]| {
            format!(
                r#"{{"version":"4","alerts":[{}],"unknownField":1}}"#,
                alerts.join(",")
            )
        };
        let ok = alert(r#"{"alertname":"A"}"#);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (body(std::slice::from_ref(&ok)).into_bytes(), ""),
            (b"".to_vec(), "body: EOF while parsing"),
            (br#""x""#.to_vec(), "body: invalid type: string"),
            (
                br#"{"version":"4"}"#.to_vec(),
                "body: missing field `alerts`",
            ),
            (
                br#"{"version":4,"alerts":[]}"#.to_vec(),
                "version: invalid type: integer",
            ),
            (
                br#"{"version":"3","alerts":[]}"#.to_vec(),
                "version: \"3\" is not supported",
            ),
            (
                body(&[ok.clone(), ok.clone(), ok.clone()]).into_bytes(),
                "alerts: 3 alerts; at most 2",
            ),
            (
                body(&[ok.clone(), alert(r#"{"alertname":7}"#)]).into_bytes(),
                "alerts[1].labels.alertname: invalid type: integer",
            ),
            (
                body(&[alert(r#"{"a":"1","b":"2","c":"3","alertname":"x"}"#)]).into_bytes(),
                "alerts[0].labels: 4 entries",
            ),
            (
                body(&[alert(r#"{"alertname":"much too long"}"#)]).into_bytes(),
                "alerts[0].labels: \"alertname\" is 13 bytes",
            ),
            (
                body(&[alert(r#"{"job":"x"}"#)]).into_bytes(),
                "alerts[0].labels: no alertname label",
            ),
            (
                body(&[
                    r#"{"status":"pending","labels":{"alertname":"A"},"startsAt":"t"}"#.to_string(),
                ])
                .into_bytes(),
                "alerts[0].status: alert status is \"pending\"",
            ),
            (
                body(&[r#"{"status":"firing","labels":{"alertname":"A"}}"#.to_string()])
                    .into_bytes(),
                "alerts[0]: missing field `startsAt`",
            ),
        ];
        for (body, expected) in cases {
            let result = parse_webhook(&body, &limits);
            if expected.is_empty() {
                assert!(result.is_ok(), "{result:?}");
                continue;
            }
            let error = result.expect_err(expected).to_string();
            assert!(error.starts_with(expected), "{expected:?} vs {error:?}");
        }
        let mut invalid_utf8 = body(&[ok]).into_bytes();
        let at = invalid_utf8.iter().position(|b| *b == b'A').unwrap();
        invalid_utf8[at] = 0xff;
        let error = parse_webhook(&invalid_utf8, &limits).unwrap_err();
        assert_eq!(error.path, "alerts[0].labels.alertname");
        assert!(error.message.contains("invalid unicode"), "{error}");
    }

    #[test]
    fn bad_alert_files_say_what_is_wrong() {
        assert!(matches!(parse_alert_json("{"), Err(AlertError::Parse(_))));
        assert!(matches!(
            parse_alert_json(r#"{"alerts":[]}"#),
            Err(AlertError::NotOne(0))
        ));
        let odd = r#"{"status":"pending","labels":{},"startsAt":"x"}"#;
        assert!(matches!(parse_alert_json(odd), Err(AlertError::Status(_))));
    }
}
