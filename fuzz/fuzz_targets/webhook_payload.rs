//! Any bytes as a webhook body: an error or alerts within the limits, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remedy::alert::{PayloadLimits, parse_webhook};

fuzz_target!(|body: &[u8]| {
    let limits = PayloadLimits::default();
    if let Ok((_, alerts)) = parse_webhook(body, &limits) {
        assert!(alerts.len() <= limits.max_alerts);
        for alert in &alerts {
            assert!(alert.labels.len() <= limits.max_labels);
            assert!(alert.labels.iter().any(|(name, _)| name == "alertname"));
        }
    }
});
