//! The JSON remedy speaks for the contract's types: lowercase enum values,
//! kebab-case action kinds beside each action's fields, labels and params
//! as objects. Everything a person or a program reads (`--output json`, the
//! HTTP API, the audit trail) goes through these views, and the OpenAPI
//! document is generated from the same types. The store keeps its own
//! encoding, which it alone reads back.

use crate::contract::{Action, ActionStatus, Alert, AlertStatus, Check, CheckStatus, Plan};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// `[(name, value), ...]` shown as `{name: value, ...}`, in their order.
pub struct Pairs<'a>(pub &'a [(String, String)]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

pub fn pairs(pairs: &[(String, String)]) -> Value {
    serde_json::to_value(Pairs(pairs)).unwrap_or_default()
}

/// An alert as Alertmanager sent it.
#[derive(Serialize, ToSchema)]
#[schema(as = Alert)]
pub struct AlertJson<'a> {
    #[schema(schema_with = alert_status)]
    status: &'static str,
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    labels: Pairs<'a>,
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    annotations: Pairs<'a>,
    /// RFC 3339, as Alertmanager sent it.
    starts_at: &'a str,
    ends_at: Option<&'a str>,
    /// Computed by remedy from the labels.
    fingerprint: &'a str,
}

impl<'a> From<&'a Alert> for AlertJson<'a> {
    fn from(alert: &'a Alert) -> Self {
        AlertJson {
            status: alert.status.as_str(),
            labels: Pairs(&alert.labels),
            annotations: Pairs(&alert.annotations),
            starts_at: &alert.starts_at,
            ends_at: alert.ends_at.as_deref(),
            fingerprint: &alert.fingerprint,
        }
    }
}

/// One observation a plugin made while planning.
#[derive(Serialize, ToSchema)]
#[schema(as = Check)]
pub struct CheckJson<'a> {
    name: &'a str,
    #[schema(schema_with = check_status)]
    status: &'static str,
    detail: &'a str,
}

/// What a plugin proposed in one round.
#[derive(Serialize, ToSchema)]
#[schema(as = Plan)]
pub struct PlanJson<'a> {
    summary: &'a str,
    checks: Vec<CheckJson<'a>>,
    actions: Vec<ActionJson>,
    /// Why a human is paged instead: none of this plan's actions run.
    escalate: Option<&'a str>,
    recheck_after_secs: Option<u32>,
    /// State handed to the next round.
    memo: Option<&'a str>,
}

impl<'a> From<&'a Plan> for PlanJson<'a> {
    fn from(plan: &'a Plan) -> Self {
        PlanJson {
            summary: &plan.summary,
            checks: plan.checks.iter().map(CheckJson::from).collect(),
            actions: plan.actions.iter().map(ActionJson::from).collect(),
            escalate: plan.escalate.as_deref(),
            recheck_after_secs: plan.recheck_after_secs,
            memo: plan.memo.as_deref(),
        }
    }
}

impl<'a> From<&'a Check> for CheckJson<'a> {
    fn from(check: &'a Check) -> Self {
        CheckJson {
            name: &check.name,
            status: check.status.as_str(),
            detail: &check.detail,
        }
    }
}

/// `{"kind": "remove-path", "path": ..., ...}`: a typed action, its kind
/// beside its own fields (each kind's fields are in the WIT contract).
#[derive(Serialize, ToSchema)]
#[schema(as = Action)]
pub struct ActionJson {
    #[schema(schema_with = action_kind)]
    kind: &'static str,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
}

impl From<&Action> for ActionJson {
    fn from(action: &Action) -> Self {
        // The derived encoding is {"RemovePath": {fields}}; the fields are kept.
        let mut fields = match serde_json::to_value(action) {
            Ok(Value::Object(tagged)) => match tagged.into_iter().next() {
                Some((_, Value::Object(fields))) => fields,
                _ => Map::new(),
            },
            _ => Map::new(),
        };
        match action {
            Action::DockerPrune(prune) => {
                fields.insert("target".into(), Value::from(prune.target.name()));
            }
            Action::KmodLoad(load) => {
                fields.insert("parameters".into(), pairs(&load.parameters));
            }
            _ => {}
        }
        ActionJson {
            kind: action.kind(),
            fields,
        }
    }
}

pub fn plan(plan: &Plan) -> Value {
    serde_json::to_value(PlanJson::from(plan)).unwrap_or_default()
}

pub fn action(action: &Action) -> Value {
    serde_json::to_value(ActionJson::from(action)).unwrap_or_default()
}

/// A string schema that takes exactly `values`.
pub fn one_of(values: impl IntoIterator<Item = &'static str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}

pub fn alert_status() -> Object {
    one_of([AlertStatus::Firing, AlertStatus::Resolved].map(AlertStatus::as_str))
}

fn check_status() -> Object {
    let all = [
        CheckStatus::Pass,
        CheckStatus::Warn,
        CheckStatus::Fail,
        CheckStatus::Skipped,
    ];
    one_of(all.map(CheckStatus::as_str))
}

pub fn action_kind() -> Object {
    one_of(Action::KINDS.iter().copied())
}

/// What became of an action: `intent` until its result is recorded.
pub fn action_status() -> Object {
    let all = ActionStatus::ALL.map(ActionStatus::as_str);
    one_of(std::iter::once("intent").chain(all))
}

/// Adapters for `#[serde(serialize_with = ...)]`.
pub mod with {
    use super::*;

    pub fn alert<S: Serializer>(value: &Alert, s: S) -> Result<S::Ok, S::Error> {
        AlertJson::from(value).serialize(s)
    }

    pub fn pairs<S: Serializer>(value: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        Pairs(value).serialize(s)
    }

    pub fn plan<S: Serializer>(value: &Plan, s: S) -> Result<S::Ok, S::Error> {
        PlanJson::from(value).serialize(s)
    }

    pub fn action<S: Serializer>(value: &Action, s: S) -> Result<S::Ok, S::Error> {
        ActionJson::from(value).serialize(s)
    }
}
