//! `log`: plugin log lines into the run record, bounded per run.

use crate::contract::log::Level;
use serde::Serialize;

/// Bounds on what one run may log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogLimits {
    pub max_lines: usize,
    pub max_bytes: usize,
    pub max_line_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_lines: 1_000,
            max_bytes: 256 * 1024,
            max_line_bytes: 4 * 1024,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// Collects a run's log lines; past the limits it counts what it drops.
#[derive(Debug)]
pub struct LogSink {
    limits: LogLimits,
    lines: Vec<LogLine>,
    bytes: usize,
    dropped: u64,
}

impl LogSink {
    pub fn new(limits: LogLimits) -> Self {
        LogSink {
            limits,
            lines: Vec::new(),
            bytes: 0,
            dropped: 0,
        }
    }

    pub fn push(&mut self, level: &'static str, message: &str) {
        let message = truncate(message, self.limits.max_line_bytes);
        if self.lines.len() >= self.limits.max_lines
            || self.bytes + message.len() > self.limits.max_bytes
        {
            self.dropped += 1;
            return;
        }
        self.bytes += message.len();
        self.lines.push(LogLine { level, message });
    }

    /// The kept lines, followed by a note of how many were dropped.
    pub fn finish(mut self) -> Vec<LogLine> {
        if self.dropped > 0 {
            self.lines.push(LogLine {
                level: "warn",
                message: format!(
                    "log truncated: {} more lines dropped (limits: {} lines, {} bytes per run)",
                    self.dropped, self.limits.max_lines, self.limits.max_bytes
                ),
            });
        }
        self.lines
    }
}

impl crate::contract::log::Host for LogSink {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.push(level, &message);
    }
}

/// At most `max` bytes of `text`, cut on a character boundary and marked.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_are_cut_and_counted() {
        let limits = LogLimits {
            max_lines: 3,
            max_bytes: 1_000,
            max_line_bytes: 10,
        };
        let mut sink = LogSink::new(limits);
        for n in 0..10 {
            sink.push("info", &format!("line {n}"));
        }
        let lines = sink.finish();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2].message, "line 2");
        assert!(
            lines[3].message.contains("7 more lines dropped"),
            "{:?}",
            lines[3]
        );
    }

    #[test]
    fn long_lines_are_cut_on_char_boundaries() {
        let cut = truncate("ééééé", 3);
        assert!(
            cut.starts_with('é') && cut.contains("[8 bytes cut]"),
            "{cut}"
        );
    }

    #[test]
    fn byte_budget_holds() {
        let limits = LogLimits {
            max_lines: 100,
            max_bytes: 10,
            max_line_bytes: 100,
        };
        let mut sink = LogSink::new(limits);
        sink.push("info", "123456");
        sink.push("info", "123456");
        assert_eq!(sink.finish().len(), 2, "second line dropped, note added");
    }
}
