//! `[node]`: this node's name, and how an alert names the node it is about.

use crate::node::{DEFAULT_LABEL, NodeIdentity, host_name};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    name: Option<String>,
    label: Option<String>,
    pattern: Option<String>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

pub(super) fn validate_node(raw: RawNode, problems: &mut Vec<String>) -> NodeIdentity {
    let name = raw.name.unwrap_or_else(host_name);
    if name.trim().is_empty() {
        problems.push("[node] name must not be empty".into());
    }
    let label = raw.label.unwrap_or_else(|| DEFAULT_LABEL.to_string());
    if label.is_empty() {
        problems.push("[node] label must not be empty".into());
    }
    let pattern = raw.pattern.and_then(|text| match Regex::new(&text) {
        Ok(pattern) if pattern.captures_len() > 1 => Some(pattern),
        Ok(_) => {
            problems.push(format!(
                "[node] pattern = {text:?} has no capture group; write the node's part in (...)"
            ));
            None
        }
        Err(e) => {
            problems.push(format!(
                "[node] pattern = {text:?} is not a valid regex: {e}"
            ));
            None
        }
    });
    if raw
        .aliases
        .iter()
        .any(|(k, v)| k.is_empty() || v.is_empty())
    {
        problems.push("[node] aliases map non-empty names to non-empty node names".into());
    }
    NodeIdentity {
        name,
        label,
        pattern,
        aliases: raw.aliases,
    }
}
