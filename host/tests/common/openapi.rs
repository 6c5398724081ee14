//! remedy's OpenAPI document as the tests hold every answer against it:
//! each answer of the real `remedy serve` that a test reads through
//! [`super::daemon::Daemon::request`] must be a documented status of a
//! documented operation, validate against its schema, and carry no field
//! the schema does not name. Every refusal is an `Error` (`{kind, message}`).

use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

/// The operations (`"get /v1/runs"`) this test process has seen answered.
pub static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Every operation the document describes, as `"get /v1/runs"`.
pub fn operations() -> BTreeSet<String> {
    let paths = document()["paths"].as_object().unwrap();
    paths
        .iter()
        .flat_map(|(path, methods)| {
            let methods = methods.as_object().unwrap().keys();
            methods.map(move |method| format!("{method} {path}"))
        })
        .collect()
}

pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        use utoipa::OpenApi as _;
        serde_json::to_value(remedy::server::openapi::ApiDoc::openapi()).unwrap()
    })
}

/// The documented path `path` falls under: `/v1/runs/0191…/approve` is
/// `/v1/runs/{id}/approve`.
pub fn template_of(path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    document()["paths"]
        .as_object()?
        .keys()
        .map(String::as_str)
        .find(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
}

/// Panic unless this answer is what the document promises.
pub fn check_answer(method: &str, path: &str, status: u16, body: &str) {
    let what = format!("{method} {path} answered {status}");
    if status >= 400 {
        check_json(&what, &schema_ref("Error"), body);
    }
    let Some(template) = template_of(path) else {
        return; // an undocumented path: a test of the 404
    };
    let operation = &document()["paths"][template][method.to_ascii_lowercase()];
    if operation.is_null() {
        assert_eq!(status, 405, "{what}: {method} {template} is not documented");
        return;
    }
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{what}, which {method} {template} does not document: {body}"
    );
    if let Some(schema) = response["content"]["application/json"]["schema"].as_object() {
        check_json(&what, &Value::Object(schema.clone()), body);
    }
    let operation = format!("{} {template}", method.to_ascii_lowercase());
    SEEN.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(operation);
}

fn schema_ref(name: &str) -> Value {
    serde_json::json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn check_json(what: &str, schema: &Value, body: &str) {
    let value: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{what} with a body that is not JSON ({e}): {body}"));
    let mut rooted = schema.clone();
    rooted["components"] = document()["components"].clone();
    let validator = jsonschema::validator_for(&rooted).expect("the document's schemas compile");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{body}");
    let mut extra = Vec::new();
    undocumented(schema, &value, "", &mut extra);
    assert!(
        extra.is_empty(),
        "{what}: undocumented fields {extra:?}\n{body}"
    );
}

/// The fields of `value` that `schema` does not name, as JSON pointers.
/// Objects that document no properties (labels, an action's own fields)
/// are open by design.
fn undocumented(schema: &Value, value: &Value, at: &str, extra: &mut Vec<String>) {
    let schema = resolve(schema);
    if let Some(options) = schema["oneOf"].as_array() {
        // Internally tagged: the option whose fields all fit.
        let fits = options.iter().find(|option| {
            let mut missed = Vec::new();
            undocumented(option, value, at, &mut missed);
            missed.is_empty()
        });
        if fits.is_none() {
            extra.push(format!("{at} (fits no documented shape)"));
        }
        return;
    }
    match value {
        Value::Object(fields) => {
            let Some(properties) = properties(schema) else {
                return;
            };
            for (name, field) in fields {
                match properties.iter().find(|(known, _)| known == name) {
                    Some((_, inner)) => undocumented(inner, field, &format!("{at}/{name}"), extra),
                    None => extra.push(format!("{at}/{name}")),
                }
            }
        }
        Value::Array(items) => {
            for (n, item) in items.iter().enumerate() {
                undocumented(&schema["items"], item, &format!("{at}/{n}"), extra);
            }
        }
        _ => {}
    }
}

/// A schema's properties, with those of the schemas it is `allOf`; `None`
/// when it is open (it documents none, or is `allOf` an open object, as an
/// action's fields beside its kind are).
fn properties(schema: &Value) -> Option<Vec<(String, Value)>> {
    let mut found: Vec<(String, Value)> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, inner)| (name.clone(), inner.clone()))
        .collect();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        found.extend(properties(resolve(part))?);
    }
    (!found.is_empty()).then_some(found)
}

fn resolve(schema: &Value) -> &Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &document()["components"]["schemas"][name]
        }
        None => schema,
    }
}
