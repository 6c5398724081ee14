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

#[derive(Debug, Deserialize)]
struct WebhookPayload {
    alerts: Vec<WebhookAlert>,
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
    let alert = if value.get("alerts").is_some() {
        let mut payload: WebhookPayload = serde_json::from_value(value)?;
        if payload.alerts.len() != 1 {
            return Err(AlertError::NotOne(payload.alerts.len()));
        }
        payload.alerts.remove(0)
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
