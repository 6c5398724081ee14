//! What a plugin read, kept or answered back: every call through a
//! capability's read interface, with its arguments and its answer. A live
//! instance passes calls through to the world (and, recording, keeps each
//! one); a replaying instance answers them from a recording and never
//! reaches the world. Readers wrap their interface in [`journaled!`], so no
//! call escapes the journal.

use crate::contract::ApiError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// One call a plugin made through a read interface, and its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostCall {
    /// The interface and function, as the WIT names them: `fs.read-dir`.
    pub call: String,
    /// The arguments, in the WIT's order.
    pub args: Vec<Value>,
    pub answer: Answer,
}

/// A call's answer: its value, or the error the plugin was given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Answer {
    Ok(Value),
    Error {
        /// `denied`, `not-found`, `invalid`, `unavailable` or `internal`.
        kind: String,
        message: String,
    },
}

/// Calls kept in one recording, at most; the rest are counted.
const MAX_CALLS: usize = 10_000;
/// Bytes of answers kept in one recording, at most.
const MAX_BYTES: usize = 64 << 20;

/// How one plugin instance's read calls meet the world. Cloning shares it.
#[derive(Clone, Default)]
pub struct Journal(Option<Arc<Mutex<Mode>>>);

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.0 {
            None => "live",
            Some(mode) => match &*lock(mode) {
                Mode::Recording { .. } => "recording",
                Mode::Replaying { .. } => "replaying",
            },
        };
        f.write_str(mode)
    }
}

enum Mode {
    Recording {
        calls: Vec<HostCall>,
        bytes: usize,
        /// Calls past the bounds: made, answered, not kept.
        dropped: u64,
    },
    Replaying {
        calls: Vec<HostCall>,
        asked: Vec<bool>,
        /// Interfaces the grants in force let the plugin read.
        readable: Vec<&'static str>,
    },
}

/// What a journal kept, or how a replay went.
#[derive(Debug, Default, PartialEq)]
pub struct Kept {
    pub calls: Vec<HostCall>,
    /// Recording: calls made but not kept. Replaying: recorded calls the
    /// plugin never made.
    pub left_over: u64,
}

impl Journal {
    /// Calls go to the world and are not kept: how remedy runs.
    pub fn live() -> Journal {
        Journal(None)
    }

    /// Calls go to the world, and each is kept with its answer.
    pub fn recording() -> Journal {
        Journal::with(Mode::Recording {
            calls: Vec::new(),
            bytes: 0,
            dropped: 0,
        })
    }

    /// Calls are answered from `calls`, never from the world. A call
    /// through an interface not in `readable` is denied as it would be live.
    pub fn replaying(calls: Vec<HostCall>, readable: Vec<&'static str>) -> Journal {
        let asked = vec![false; calls.len()];
        Journal::with(Mode::Replaying {
            calls,
            asked,
            readable,
        })
    }

    fn with(mode: Mode) -> Journal {
        Journal(Some(Arc::new(Mutex::new(mode))))
    }

    pub fn is_live(&self) -> bool {
        self.0.is_none()
    }

    /// What was recorded, or the recorded calls a replay never asked for.
    pub fn kept(&self) -> Kept {
        let Some(mode) = &self.0 else {
            return Kept::default();
        };
        match &*lock(mode) {
            Mode::Recording { calls, dropped, .. } => Kept {
                calls: calls.clone(),
                left_over: *dropped,
            },
            Mode::Replaying { calls, asked, .. } => {
                let unasked: Vec<HostCall> = calls
                    .iter()
                    .zip(asked)
                    .filter(|(_, asked)| !**asked)
                    .map(|(call, _)| call.clone())
                    .collect();
                Kept {
                    left_over: unasked.len() as u64,
                    calls: unasked,
                }
            }
        }
    }

    /// The answer to `function` of `interface` with `args` (empty when
    /// live): from the world through `live`, or from the recording.
    pub fn answer<T: Serialize + DeserializeOwned>(
        &self,
        interface: &'static str,
        function: &str,
        args: Vec<Value>,
        live: impl FnOnce() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let Some(mode) = &self.0 else {
            return live();
        };
        let call = format!("{interface}.{}", function.replace('_', "-"));
        let replaying = matches!(&*lock(mode), Mode::Replaying { .. });
        if replaying {
            return replay(&mut lock(mode), interface, &call, &args);
        }
        // Not locked while the world answers: a slow read holds no one up.
        let result = live();
        if let Mode::Recording {
            calls,
            bytes,
            dropped,
        } = &mut *lock(mode)
        {
            let answer = answer_of(&result);
            let size = serde_json::to_string(&answer).map_or(0, |text| text.len());
            if calls.len() < MAX_CALLS && *bytes + size <= MAX_BYTES {
                *bytes += size;
                calls.push(HostCall { call, args, answer });
            } else {
                *dropped += 1;
            }
        }
        result
    }
}

fn lock(mode: &Mutex<Mode>) -> std::sync::MutexGuard<'_, Mode> {
    // A panic while holding it leaves nothing half-written worth refusing.
    mode.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The recorded answer to `call` with `args`: the first not yet given,
/// or, asked again, the last one given.
fn replay<T: DeserializeOwned>(
    mode: &mut Mode,
    interface: &str,
    call: &str,
    args: &[Value],
) -> Result<T, ApiError> {
    let Mode::Replaying {
        calls,
        asked,
        readable,
    } = mode
    else {
        unreachable!("replay is only called while replaying");
    };
    if !readable.contains(&interface) {
        return Err(ApiError::Denied(format!(
            "no {interface} grant in force for this replay; the operator adds {interface} = [\"read\"]"
        )));
    }
    let matching = |(i, recorded): (usize, &HostCall)| {
        (recorded.call == call && recorded.args == args).then_some(i)
    };
    let unasked = calls
        .iter()
        .enumerate()
        .filter(|(i, _)| !asked[*i])
        .find_map(matching);
    let found = unasked.or_else(|| calls.iter().enumerate().rev().find_map(matching));
    let Some(i) = found else {
        return Err(ApiError::Unavailable(format!(
            "{call}({}) is not in the recording",
            args.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    asked[i] = true;
    match &calls[i].answer {
        Answer::Ok(value) => serde_json::from_value(value.clone()).map_err(|e| {
            ApiError::Unavailable(format!("{call}: the recorded answer does not fit: {e}"))
        }),
        Answer::Error { kind, message } => Err(error_of(kind, message.clone())),
    }
}

fn answer_of<T: Serialize>(result: &Result<T, ApiError>) -> Answer {
    match result {
        Ok(value) => Answer::Ok(serde_json::to_value(value).unwrap_or(Value::Null)),
        Err(error) => {
            let (kind, message) = match error {
                ApiError::Denied(m) => ("denied", m),
                ApiError::NotFound(m) => ("not-found", m),
                ApiError::Invalid(m) => ("invalid", m),
                ApiError::Unavailable(m) => ("unavailable", m),
                ApiError::Internal(m) => ("internal", m),
            };
            Answer::Error {
                kind: kind.into(),
                message: message.clone(),
            }
        }
    }
}

fn error_of(kind: &str, message: String) -> ApiError {
    match kind {
        "denied" => ApiError::Denied(message),
        "not-found" => ApiError::NotFound(message),
        "invalid" => ApiError::Invalid(message),
        "unavailable" => ApiError::Unavailable(message),
        _ => ApiError::Internal(message),
    }
}

/// A capability's `Host` impl whose every call goes through the reader's
/// `journal` field:
/// `journaled! { "fs", FsReader: crate::contract::fs::Host { fn ... } }`.
/// Calls answered from the grants alone (no `Result`) go after `passing`
/// and are neither kept nor replayed.
macro_rules! journaled {
    (
        $interface:literal, $reader:ty : $host:path {
            $(fn $name:ident(&mut $self:ident $(, $arg:ident: $ty:ty)* $(,)?) -> Result<$ok:ty, ApiError> $body:block)*
        }
        $(passing { $($passing:tt)* })?
    ) => {
        impl $host for $reader {
            $(
                fn $name(&mut $self $(, $arg: $ty)*) -> Result<$ok, ApiError> {
                    // `self` is the caller's token: macro hygiene keeps it apart otherwise.
                    let journal = $self.journal.clone();
                    let args = if journal.is_live() {
                        Vec::new()
                    } else {
                        vec![$(serde_json::to_value(&$arg).unwrap_or_default()),*]
                    };
                    journal.answer($interface, stringify!($name), args, || $body)
                }
            )*
            $($($passing)*)?
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(journal: &Journal, path: &str, world: u64) -> Result<u64, ApiError> {
        journal.answer("fs", "usage", vec![path.into()], || Ok(world))
    }

    #[test]
    fn a_recording_replays_the_same_answers_without_the_world() {
        let recording = Journal::recording();
        assert_eq!(usage(&recording, "/data", 7), Ok(7));
        let missing = recording.answer::<u64>("fs", "read_dir", vec!["/x".into()], || {
            Err(ApiError::NotFound("/x".into()))
        });
        assert!(missing.is_err());
        let kept = recording.kept();
        assert_eq!(kept.calls.len(), 2);
        assert_eq!(kept.calls[1].call, "fs.read-dir");

        let replay = Journal::replaying(kept.calls, vec!["fs"]);
        assert_eq!(
            usage(&replay, "/data", 999),
            Ok(7),
            "the world is not asked"
        );
        assert_eq!(usage(&replay, "/data", 999), Ok(7), "asked again: the same");
        let again = replay.answer::<u64>("fs", "read_dir", vec!["/x".into()], || Ok(1));
        assert_eq!(again, Err(ApiError::NotFound("/x".into())));
        assert_eq!(replay.kept().left_over, 0);
    }

    #[test]
    fn a_call_not_in_the_recording_is_unavailable_and_named() {
        let replay = Journal::replaying(Vec::new(), vec!["fs"]);
        let error = usage(&replay, "/elsewhere", 1).unwrap_err();
        assert_eq!(
            error,
            ApiError::Unavailable(r#"fs.usage("/elsewhere") is not in the recording"#.into())
        );
    }

    #[test]
    fn an_interface_the_grants_in_force_do_not_give_is_denied_in_replay() {
        let recording = Journal::recording();
        usage(&recording, "/data", 7).unwrap();
        let replay = Journal::replaying(recording.kept().calls, vec!["proc"]);
        assert!(matches!(
            usage(&replay, "/data", 1),
            Err(ApiError::Denied(_))
        ));
    }

    #[test]
    fn an_answer_that_does_not_fit_its_call_is_refused_not_misread() {
        let calls = vec![HostCall {
            call: "fs.usage".into(),
            args: vec!["/data".into()],
            answer: Answer::Ok("a string, not a number".into()),
        }];
        let replay = Journal::replaying(calls, vec!["fs"]);
        let error = usage(&replay, "/data", 1).unwrap_err();
        assert!(error.describe().contains("does not fit"), "{error:?}");
    }

    #[test]
    fn live_calls_are_not_kept() {
        let live = Journal::live();
        assert_eq!(usage(&live, "/data", 3), Ok(3));
        assert_eq!(live.kept(), Kept::default());
    }
}
