//! What bounds a plugin: its deadline, its memory, the size of what it returns.

use crate::caps::log::LogLimits;
use crate::contract::{Plan, PluginInfo};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The most memory any plugin may be configured with (the pooling allocator's slot size).
pub const MAX_PLUGIN_MEMORY: usize = 1 << 30;
/// How many plugin instances may exist at once with the pooling allocator.
pub const MAX_CONCURRENT_INSTANCES: u32 = 64;

// Everything a plugin hands the host is bounded here, in one place. WIT
// types are not recursive, so the contract itself bounds nesting.

/// Actions in one plan.
pub const MAX_PLAN_ACTIONS: usize = 10_000;
/// Checks in one plan.
pub const MAX_PLAN_CHECKS: usize = 1_000;
/// Any one string in an answer: a summary, a path, a reason, an error message.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Any other list in an answer (an action's parameters, say).
pub const MAX_LIST_ITEMS: usize = 1_000;
/// All the text of one answer together, the memo aside.
pub const MAX_ANSWER_BYTES: usize = 8 << 20;
/// Room for one scan of every possible namespace slot, say, between two rounds.
pub const MAX_MEMO_BYTES: usize = 1 << 20;
/// The plugin's own name in `describe()`.
pub const MAX_PLUGIN_NAME_BYTES: usize = 64;
/// Params and action kinds one plugin may declare.
pub const MAX_PARAMS: usize = 256;
pub const MAX_ACTION_KINDS: usize = 64;

/// Per-plugin bounds, from the operator's config.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PluginLimits {
    /// Wall-clock deadline of one call (`describe` or one round of `plan`).
    pub timeout: Duration,
    /// Linear memory cap in bytes.
    pub memory: usize,
    pub log: LogLimits,
}

impl std::fmt::Display for PluginLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timeout {}, memory {} MiB",
            humantime::format_duration(self.timeout),
            self.memory >> 20
        )
    }
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            timeout: Duration::from_secs(30),
            memory: 64 << 20,
            log: LogLimits::default(),
        }
    }
}

impl PluginLimits {
    pub fn deadline_ticks(&self) -> u64 {
        self.timeout
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1) as u64
    }
}

/// Caps linear memory and tables, and remembers that the cap was hit so the
/// failure can say so instead of showing a bare trap.
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: usize,
    pub exceeded: Option<usize>,
}

impl MemoryLimiter {
    pub fn new(cap: usize) -> Self {
        MemoryLimiter {
            cap,
            exceeded: None,
        }
    }
}

const MAX_TABLE_ELEMENTS: usize = 100_000;

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = Some(desired);
            wasmtime::bail!(
                "memory cap of {} bytes reached (wanted {desired})",
                self.cap
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            wasmtime::bail!("table limit of {MAX_TABLE_ELEMENTS} elements reached");
        }
        Ok(true)
    }
}

/// Advances the engine's epoch from its own OS thread, so a plugin spinning
/// in a loop is interrupted however busy the rest of the process is.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: wasmtime::Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("remedy-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn check_size(what: &str, text: &str, limit: usize) -> Result<(), String> {
    if text.len() > limit {
        return Err(format!(
            "{what} is {} bytes; remedy accepts at most {limit}",
            text.len()
        ));
    }
    Ok(())
}

fn check_count(what: &str, count: usize, limit: usize) -> Result<(), String> {
    if count > limit {
        return Err(format!(
            "{what} has {count} items; remedy accepts at most {limit}"
        ));
    }
    Ok(())
}

/// Every string and list in `answer` (as its JSON form) within the bounds
/// above; `what` names it in the refusal, which names the field too.
fn check_answer(what: &str, answer: &impl serde::Serialize) -> Result<(), String> {
    let value =
        serde_json::to_value(answer).map_err(|e| format!("{what} cannot be represented: {e}"))?;
    let mut total = 0;
    walk(&value, 0, &mut what.to_string(), &mut total)?;
    if total > MAX_ANSWER_BYTES {
        return Err(format!(
            "{what} holds {total} bytes of text; remedy accepts at most {MAX_ANSWER_BYTES}"
        ));
    }
    Ok(())
}

/// The answer's own lists (a plan's actions and checks, a description's
/// params) are counted against their limits before the walk; every list
/// deeper down is held to [`MAX_LIST_ITEMS`].
fn walk(
    value: &serde_json::Value,
    depth: usize,
    at: &mut String,
    total: &mut usize,
) -> Result<(), String> {
    use serde_json::Value;
    let mark = at.len();
    match value {
        Value::String(text) => {
            *total += text.len();
            check_size(at, text, MAX_TEXT_BYTES)?;
        }
        Value::Array(items) => {
            let limit = if depth == 1 {
                MAX_PLAN_ACTIONS
            } else {
                MAX_LIST_ITEMS
            };
            check_count(at, items.len(), limit)?;
            for (n, item) in items.iter().enumerate() {
                at.push_str(&format!("[{n}]"));
                walk(item, depth + 1, at, total)?;
                at.truncate(mark);
            }
        }
        Value::Object(fields) => {
            for (key, field) in fields {
                *total += key.len();
                at.push('.');
                at.push_str(&kebab(key));
                walk(field, depth + 1, at, total)?;
                at.truncate(mark);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// A field or variant name as the contract spells it: `RemovePath` and
/// `mtime_ns` become `remove-path` and `mtime-ns`.
fn kebab(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

/// Refuse plans too large to show, store or execute sensibly. The memo is
/// bounded on its own: it is the one field meant to carry a whole scan.
pub fn validate_plan(plan: &Plan) -> Result<(), String> {
    if plan.actions.len() > MAX_PLAN_ACTIONS {
        return Err(format!(
            "the plan has {} actions; remedy accepts at most {MAX_PLAN_ACTIONS} per round",
            plan.actions.len()
        ));
    }
    if plan.checks.len() > MAX_PLAN_CHECKS {
        return Err(format!(
            "the plan has {} checks; remedy accepts at most {MAX_PLAN_CHECKS}",
            plan.checks.len()
        ));
    }
    if let Some(memo) = &plan.memo {
        check_size("the memo", memo, MAX_MEMO_BYTES)?;
    }
    check_answer("plan", &PlanWithoutMemo(plan))
}

/// A plan as it is checked: every field but the memo.
struct PlanWithoutMemo<'a>(&'a Plan);

impl serde::Serialize for PlanWithoutMemo<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let plan = self.0;
        let mut out = serializer.serialize_struct("plan", 5)?;
        out.serialize_field("summary", &plan.summary)?;
        out.serialize_field("checks", &plan.checks)?;
        out.serialize_field("actions", &plan.actions)?;
        out.serialize_field("escalate", &plan.escalate)?;
        out.serialize_field("recheck_after_secs", &plan.recheck_after_secs)?;
        out.end()
    }
}

/// Refuse an error whose message is too long to record.
pub fn validate_error(error: &crate::contract::ApiError) -> Result<(), String> {
    check_answer("the error", error)
}

pub fn validate_info(info: &PluginInfo) -> Result<(), String> {
    if info.name.is_empty() || info.name.len() > MAX_PLUGIN_NAME_BYTES {
        return Err(format!(
            "describe() must name the plugin in 1 to {MAX_PLUGIN_NAME_BYTES} bytes"
        ));
    }
    check_count("describe().params", info.params.len(), MAX_PARAMS)?;
    check_count(
        "describe().action-kinds",
        info.action_kinds.len(),
        MAX_ACTION_KINDS,
    )?;
    if let Some(unknown) = info
        .action_kinds
        .iter()
        .find(|kind| !crate::contract::Action::KINDS.contains(&kind.as_str()))
    {
        return Err(format!(
            "describe() declares the action kind {unknown:?}; remedy knows {}",
            crate::contract::Action::KINDS.join(", ")
        ));
    }
    check_answer("describe()", info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn deadline_ticks_round_up() {
        let limits = |ms| PluginLimits {
            timeout: Duration::from_millis(ms),
            ..Default::default()
        };
        assert_eq!(limits(1).deadline_ticks(), 1);
        assert_eq!(limits(25).deadline_ticks(), 3);
        assert_eq!(limits(30_000).deadline_ticks(), 3_000);
    }

    #[test]
    fn memory_limiter_refuses_and_remembers() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(limiter.memory_growing(1 << 20, 2 << 20, None).is_err());
        assert_eq!(limiter.exceeded, Some(2 << 20));
    }

    #[test]
    fn unknown_action_kinds_are_refused() {
        let info = |kinds: &[&str]| PluginInfo {
            name: "p".into(),
            version: "1".into(),
            description: String::new(),
            params: vec![],
            action_kinds: kinds.iter().map(|k| k.to_string()).collect(),
        };
        assert!(validate_info(&info(&["remove-path"])).is_ok());
        let error = validate_info(&info(&["remove-path", "format-disk"])).unwrap_err();
        assert!(
            error.contains("\"format-disk\"") && error.contains("remove-path"),
            "{error}"
        );
        assert!(validate_info(&info(&[])).is_ok());
    }

    #[test]
    fn lists_inside_an_answer_are_bounded() {
        let plan = |parameters: usize| Plan {
            summary: String::new(),
            checks: vec![],
            actions: vec![crate::contract::Action::KmodLoad(
                crate::contract::KmodLoad {
                    module: "nbd".into(),
                    parameters: (0..parameters)
                        .map(|n| (format!("p{n}"), "1".into()))
                        .collect(),
                    reason: String::new(),
                },
            )],
            escalate: None,
            recheck_after_secs: None,
            memo: None,
        };
        assert!(validate_plan(&plan(MAX_LIST_ITEMS)).is_ok());
        let refused = validate_plan(&plan(MAX_LIST_ITEMS + 1)).unwrap_err();
        assert!(
            refused.starts_with("plan.actions[0].kmod-load.parameters has 1001 items"),
            "{refused}"
        );
    }

    #[test]
    fn oversized_plans_are_refused() {
        let mut plan = Plan {
            summary: "x".repeat(MAX_TEXT_BYTES + 1),
            checks: vec![],
            actions: vec![],
            escalate: None,
            recheck_after_secs: None,
            memo: None,
        };
        assert!(validate_plan(&plan).unwrap_err().contains("summary"));
        plan.summary.clear();
        assert!(validate_plan(&plan).is_ok());
        plan.memo = Some("m".repeat(MAX_MEMO_BYTES + 1));
        assert!(validate_plan(&plan).unwrap_err().contains("memo"));
        plan.memo = Some("m".repeat(MAX_MEMO_BYTES));
        assert!(validate_plan(&plan).is_ok());
    }
}
