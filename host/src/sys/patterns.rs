//! Name patterns in grants (`nomad_jobs`, `netns_names`, ...): regular
//! expressions anchored at both ends, as in Alertmanager matchers. Invalid
//! ones are config errors.

use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Patterns(Vec<Regex>);

impl TryFrom<Vec<String>> for Patterns {
    type Error = String;
    fn try_from(sources: Vec<String>) -> Result<Self, String> {
        sources
            .iter()
            .map(|s| {
                Regex::new(&format!("^(?:{s})$"))
                    .map_err(|e| format!("{s:?} is not a valid regex: {e}"))
            })
            .collect::<Result<_, _>>()
            .map(Patterns)
    }
}

impl From<Patterns> for Vec<String> {
    fn from(patterns: Patterns) -> Self {
        patterns.sources()
    }
}

impl schemars::JsonSchema for Patterns {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Patterns".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "items": { "type": "string", "description": "a regex, anchored at both ends" }
        })
    }
}

impl PartialEq for Patterns {
    fn eq(&self, other: &Self) -> bool {
        self.sources() == other.sources()
    }
}

impl Patterns {
    /// The patterns as the operator wrote them.
    pub fn sources(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|r| {
                let s = r.as_str();
                s[4..s.len() - 2].to_string()
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some pattern matches all of `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|r| r.is_match(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(sources: &[&str]) -> Patterns {
        Patterns::try_from(sources.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn anchored_at_both_ends() {
        let p = patterns(&["ns-[0-9]+", "orchestrator(-[0-9a-f]{16})?"]);
        assert!(p.matches("ns-12") && p.matches("orchestrator"));
        assert!(!p.matches("ns-12x") && !p.matches("xns-12") && !p.matches("orchestrator-evil"));
        assert_eq!(
            p.sources(),
            vec!["ns-[0-9]+", "orchestrator(-[0-9a-f]{16})?"]
        );
        assert!(!Patterns::default().matches("anything"));
    }

    #[test]
    fn invalid_patterns_are_refused() {
        assert!(
            Patterns::try_from(vec!["(".to_string()])
                .unwrap_err()
                .contains("not a valid regex")
        );
    }
}
