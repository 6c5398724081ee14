//! Showing text remedy did not write (plugin plans, logs and errors, alert
//! labels) to a person, so that it cannot pass for something else.
//!
//! A terminal obeys escape sequences, a newline starts what looks like a new
//! row of a table, and bidirectional overrides or zero-width characters make
//! text read differently from what it is. Every view of such text (the CLI's
//! tables and reports, log lines, chat notifications) shows it as one line
//! through here; JSON output is data, escaped by JSON itself, and stays as it
//! is.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` changes how text around it is shown, rather than being shown.
fn is_unsafe(c: char) -> bool {
    matches!(c,
        // C0 controls (ESC, CR, LF, TAB, ...), DEL and C1 controls.
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        // Bidirectional marks, embeddings, overrides and isolates.
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        // Zero-width characters, word joiner, byte-order mark.
        | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'
        // Line and paragraph separators.
        | '\u{2028}' | '\u{2029}')
}

fn escape(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x100 => {
            let _ = write!(out, "\\x{:02X}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{:04X}", c as u32);
        }
    }
}

/// A count with its noun, as people say it: `1 matcher`, `3 matchers`.
pub fn counted(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// `text` as one line: every control, bidirectional and zero-width
/// character is shown as an escape (`\n`, `\x1B`, `\u202E`), so the text
/// can neither move the cursor, start a line, nor reorder what follows.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` for a Slack-compatible message: one line, with `&`, `<` and `>`
/// escaped as Slack documents, so text from a plugin can neither mention
/// (`<!channel>`, `<@U123>`) nor link (`<https://…|text>`).
pub fn slack(text: &str) -> String {
    one_line(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_left_alone() {
        assert!(matches!(
            one_line("freed 3 MiB · cache, 40d"),
            Cow::Borrowed(_)
        ));
        assert_eq!(one_line("é ü 日本"), "é ü 日本");
    }

    #[test]
    fn controls_cannot_reach_the_terminal() {
        assert_eq!(
            one_line("/tmp/x\n2  remove-path  /etc/passwd  done"),
            "/tmp/x\\n2  remove-path  /etc/passwd  done"
        );
        assert_eq!(
            one_line("\u{1b}[2J\u{1b}]0;t\u{7}"),
            "\\x1B[2J\\x1B]0;t\\x07"
        );
        assert_eq!(one_line("a\rb\tc\u{7f}\u{85}"), "a\\rb\\tc\\x7F\\x85");
    }

    #[test]
    fn direction_and_invisible_characters_are_shown() {
        assert_eq!(one_line("evil\u{202e}gpj.exe"), "evil\\u202Egpj.exe");
        for hidden in [
            '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}',
            '\u{202c}', '\u{202d}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{2060}',
            '\u{feff}', '\u{61c}', '\u{2028}', '\u{2029}',
        ] {
            let text = format!("a{hidden}b");
            let shown = one_line(&text);
            assert!(!shown.contains(hidden), "{hidden:?} must be escaped");
            assert!(shown.starts_with("a\\u"), "{shown}");
        }
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        let text = slack("<!channel> see <https://evil.example|docs> & <@U123>\nforged");
        assert_eq!(
            text,
            "&lt;!channel&gt; see &lt;https://evil.example|docs&gt; &amp; &lt;@U123&gt;\\nforged"
        );
        assert!(!text.contains('<') && !text.contains('>'));
    }
}
