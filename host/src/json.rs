//! The JSON remedy speaks for the contract's types: lowercase enum values,
//! kebab-case action kinds beside each action's fields, labels and params
//! as objects. Everything a person or a program reads (`--output json`, the
//! HTTP API, the audit trail) goes through here. The store keeps its own
//! encoding, which it alone reads back.

use crate::contract::{Action, Alert, Check, Plan};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

/// `[(name, value), ...]` as `{name: value, ...}`.
pub fn pairs(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
            .collect(),
    )
}

pub fn alert(alert: &Alert) -> Value {
    json!({
        "status": alert.status.as_str(),
        "labels": pairs(&alert.labels),
        "annotations": pairs(&alert.annotations),
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "fingerprint": alert.fingerprint,
    })
}

fn check(check: &Check) -> Value {
    json!({ "name": check.name, "status": check.status.as_str(), "detail": check.detail })
}

pub fn plan(plan: &Plan) -> Value {
    json!({
        "summary": plan.summary,
        "checks": plan.checks.iter().map(check).collect::<Vec<_>>(),
        "actions": plan.actions.iter().map(action).collect::<Vec<_>>(),
        "escalate": plan.escalate,
        "recheck_after_secs": plan.recheck_after_secs,
        "memo": plan.memo,
    })
}

/// `{"kind": "remove-path", "path": ..., ...}`: the action's own fields,
/// with its kind beside them.
pub fn action(action: &Action) -> Value {
    // The derived encoding is {"RemovePath": {fields}}; the fields are kept.
    let mut fields = match serde_json::to_value(action) {
        Ok(Value::Object(tagged)) => match tagged.into_iter().next() {
            Some((_, Value::Object(fields))) => fields,
            _ => Map::new(),
        },
        _ => Map::new(),
    };
    fields.insert("kind".into(), Value::from(action.kind()));
    match action {
        Action::DockerPrune(prune) => {
            fields.insert("target".into(), Value::from(prune.target.name()));
        }
        Action::KmodLoad(load) => {
            fields.insert("parameters".into(), pairs(&load.parameters));
        }
        _ => {}
    }
    Value::Object(fields)
}

/// Adapters for `#[serde(serialize_with = ...)]`.
pub mod with {
    use super::*;

    pub fn alert<S: Serializer>(value: &Alert, s: S) -> Result<S::Ok, S::Error> {
        super::alert(value).serialize(s)
    }

    pub fn pairs<S: Serializer>(value: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        super::pairs(value).serialize(s)
    }

    pub fn plan<S: Serializer>(value: &Plan, s: S) -> Result<S::Ok, S::Error> {
        super::plan(value).serialize(s)
    }

    pub fn action<S: Serializer>(value: &Action, s: S) -> Result<S::Ok, S::Error> {
        super::action(value).serialize(s)
    }
}
