//! Alertmanager's label matchers, in its UTF-8 syntax:
//! `{alertname=~"Disk.*", severity!="info",}`.
//!
//! Braces are optional and a trailing comma is allowed. Names and values are
//! either double-quoted, with Go's escapes (`\n`, `\"`, `\xf0`, `\u00e9`,
//! `\U0001f642`, ...), or unquoted runs of anything but whitespace and
//! `{}=!,"\`. Regular expressions are anchored at both ends, as in
//! Alertmanager. A label the alert lacks has the empty value. Errors carry
//! the byte range of the offending input as `start:end: message`.

use regex::Regex;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    /// The anchored pattern, for `=~` and `!~`.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.op, &self.value) == (&other.name, other.op, &other.value)
    }
}

impl Matcher {
    pub fn new(name: &str, op: Op, value: &str) -> Result<Matcher, String> {
        let regex = match op {
            Op::Regex | Op::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regular expression {value:?}: {e}"))?,
            ),
            Op::Equal | Op::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Whether an alert with `labels` satisfies this matcher.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let actual = labels
            .iter()
            .find(|(name, _)| *name == self.name)
            .map_or("", |(_, value)| value.as_str());
        match (self.op, &self.regex) {
            (Op::Equal, _) => actual == self.value,
            (Op::NotEqual, _) => actual != self.value,
            (Op::Regex, Some(regex)) => regex.is_match(actual),
            (Op::NotRegex, Some(regex)) => !regex.is_match(actual),
            (Op::Regex | Op::NotRegex, None) => unreachable!("regex ops are built with a regex"),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain_name = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        let name = if plain_name {
            self.name.clone()
        } else {
            quote(&self.name)
        };
        write!(f, "{name}{}{}", self.op.as_str(), quote(&self.value))
    }
}

/// Double-quoted with escapes that `unquote` (and Go) read back.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str(r#"\""#),
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            '\r' => out.push_str(r"\r"),
            c if c.is_control() && c.is_ascii() => out.push_str(&format!(r"\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!(r"\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{start}:{end}: {message}")]
pub struct ParseError {
    pub start: usize,
    pub end: usize,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    Op(Op),
    Quoted(String),
    Unquoted(String),
}

struct Spanned {
    token: Token,
    start: usize,
    end: usize,
    text: String,
}

fn error(start: usize, end: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        start,
        end,
        message: message.into(),
    }
}

fn is_unquoted(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '{' | '}' | '=' | '!' | ',' | '"' | '\\')
}

fn lex(input: &str) -> Result<Vec<Spanned>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '{' => Token::Open,
            '}' => Token::Close,
            ',' => Token::Comma,
            '=' | '!' => {
                let tilde = chars.next_if(|(_, next)| *next == '~').is_some();
                let equals =
                    !tilde && c == '!' && chars.next_if(|(_, next)| *next == '=').is_some();
                Token::Op(match (c, tilde, equals) {
                    ('=', false, _) => Op::Equal,
                    ('=', true, _) => Op::Regex,
                    ('!', true, _) => Op::NotRegex,
                    ('!', false, true) => Op::NotEqual,
                    _ => {
                        return Err(error(
                            start,
                            start + 1,
                            "!: invalid input: expected != or !~",
                        ));
                    }
                })
            }
            '"' => {
                let mut end = None;
                let mut escaped = false;
                for (at, next) in chars.by_ref() {
                    match next {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => {
                            end = Some(at + 1);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let end = end.ok_or_else(|| {
                    error(
                        start,
                        input.len(),
                        format!("{}: missing closing quote", &input[start..]),
                    )
                })?;
                let raw = &input[start..end];
                let value = unquote(&raw[1..raw.len() - 1])
                    .map_err(|why| error(start, end, format!("{raw}: invalid input: {why}")))?;
                Token::Quoted(value)
            }
            '\\' => {
                return Err(error(
                    start,
                    start + 1,
                    "\\: invalid input: escapes need double quotes",
                ));
            }
            _ => {
                let mut end = start + c.len_utf8();
                while let Some((at, next)) = chars.next_if(|(_, next)| is_unquoted(*next)) {
                    end = at + next.len_utf8();
                }
                Token::Unquoted(input[start..end].to_string())
            }
        };
        let end = chars.peek().map_or(input.len(), |(at, _)| *at);
        let text = input[start..end].trim_end().to_string();
        tokens.push(Spanned {
            token,
            start,
            end: start + text.len(),
            text,
        });
    }
    Ok(tokens)
}

/// Go's `strconv.Unquote` for the inside of a double-quoted string.
fn unquote(inner: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buffer = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            continue;
        }
        let escape = chars.next().ok_or("trailing backslash")?;
        let mut hex = |digits: usize| -> Result<u32, String> {
            let text: String = chars.by_ref().take(digits).collect();
            if text.len() != digits {
                return Err(format!("\\{escape} needs {digits} hex digits"));
            }
            u32::from_str_radix(&text, 16).map_err(|_| format!("\\{escape}{text} is not hex"))
        };
        let simple = match escape {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            _ => None,
        };
        if let Some(byte) = simple {
            bytes.push(byte);
            continue;
        }
        match escape {
            'x' => bytes.push(hex(2)? as u8),
            'u' | 'U' => {
                let code = hex(if escape == 'u' { 4 } else { 8 })?;
                let c =
                    char::from_u32(code).ok_or(format!("\\{escape}{code:x} is not a character"))?;
                let mut buffer = [0; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let octal = format!("{escape}{rest}");
                let value = u32::from_str_radix(&octal, 8)
                    .ok()
                    .filter(|v| octal.len() == 3 && *v <= 255)
                    .ok_or(format!("\\{octal} is not an octal byte"))?;
                bytes.push(value as u8);
            }
            other => return Err(format!("unknown escape \\{other}")),
        }
    }
    String::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_string())
}

/// Parse a list of matchers, as in a route's `matchers` or `amtool`.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, ParseError> {
    let tokens = lex(input)?;
    let mut at = 0;
    let braced = matches!(
        tokens.first(),
        Some(Spanned {
            token: Token::Open,
            ..
        })
    );
    if braced {
        at = 1;
    }
    let mut matchers = Vec::new();
    loop {
        match tokens.get(at) {
            None if braced => {
                return Err(error(0, input.len(), "end of input: expected close brace"));
            }
            None => return Ok(matchers),
            Some(Spanned {
                token: Token::Close,
                start,
                end,
                ..
            }) => {
                if !braced {
                    return Err(error(*start, *end, "}: expected opening brace"));
                }
                if let Some(extra) = tokens.get(at + 1) {
                    return Err(error(
                        extra.start,
                        extra.end,
                        format!("unexpected {}: expected end of input", extra.text),
                    ));
                }
                return Ok(matchers);
            }
            Some(_) => {}
        }
        let (matcher, next) = parse_one(input, &tokens, at)?;
        matchers.push(matcher);
        at = next;
        match tokens.get(at) {
            Some(Spanned {
                token: Token::Comma,
                ..
            }) => at += 1,
            Some(Spanned {
                token: Token::Close,
                ..
            })
            | None => {}
            Some(other) => {
                return Err(error(
                    other.start,
                    other.end,
                    format!("unexpected {}: expected a comma or close brace", other.text),
                ));
            }
        }
    }
}

fn parse_one(input: &str, tokens: &[Spanned], at: usize) -> Result<(Matcher, usize), ParseError> {
    let end_of_input = |what: &str| {
        error(
            input.len(),
            input.len(),
            format!("end of input: expected {what}"),
        )
    };
    let name_token = tokens.get(at).ok_or_else(|| end_of_input("label name"))?;
    let name = match &name_token.token {
        Token::Quoted(name) | Token::Unquoted(name) => name.clone(),
        _ => {
            return Err(error(
                name_token.start,
                name_token.end,
                format!("unexpected {}: expected label name", name_token.text),
            ));
        }
    };
    let op_token = tokens
        .get(at + 1)
        .ok_or_else(|| end_of_input("an operator such as =, !=, =~ or !~"))?;
    let Token::Op(op) = op_token.token else {
        return Err(error(
            op_token.start,
            op_token.end,
            format!(
                "unexpected {}: expected an operator such as =, !=, =~ or !~",
                op_token.text
            ),
        ));
    };
    let value_token = tokens
        .get(at + 2)
        .ok_or_else(|| end_of_input("label value"))?;
    let value = match &value_token.token {
        Token::Quoted(value) | Token::Unquoted(value) => value.clone(),
        _ => {
            return Err(error(
                value_token.start,
                value_token.end,
                format!("unexpected {}: expected label value", value_token.text),
            ));
        }
    };
    let matcher = Matcher::new(&name, op, &value)
        .map_err(|why| error(name_token.start, value_token.end, why))?;
    Ok((matcher, at + 3))
}

/// Whether every matcher accepts `labels` (no matchers accept everything).
pub fn all_match(matchers: &[Matcher], labels: &[(String, String)]) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_labels as labels;

    fn one(op: Op, name: &str, value: &str) -> Matcher {
        Matcher::new(name, op, value).unwrap()
    }

    #[test]
    fn alertmanager_syntax() {
        use Op::*;
        let cases: Vec<(&str, Vec<Matcher>)> = vec![
            ("", vec![]),
            ("{}", vec![]),
            ("{foo=bar}", vec![one(Equal, "foo", "bar")]),
            ("{foo=bar,}", vec![one(Equal, "foo", "bar")]),
            ("foo=bar,", vec![one(Equal, "foo", "bar")]),
            ("{foo!=bar}", vec![one(NotEqual, "foo", "bar")]),
            ("{foo=~[a-z]+}", vec![one(Regex, "foo", "[a-z]+")]),
            ("foo!~[a-z]+", vec![one(NotRegex, "foo", "[a-z]+")]),
            ("{foo=🙂bar}", vec![one(Equal, "foo", "🙂bar")]),
            (r#"{"foo"="bar"}"#, vec![one(Equal, "foo", "bar")]),
            (r#""foo"!~"[a-z]+","#, vec![one(NotRegex, "foo", "[a-z]+")]),
            (
                r#"{"foo"="\xf0\x9f\x99\x82"}"#,
                vec![one(Equal, "foo", "🙂")],
            ),
            (r#"{"foo"="\U0001f642"}"#, vec![one(Equal, "foo", "🙂")]),
            (r#"{"foo"="bar\n\t"}"#, vec![one(Equal, "foo", "bar\n\t")]),
            (
                r#"{"foo"="\"bar\"\\"}"#,
                vec![one(Equal, "foo", "\"bar\"\\")],
            ),
            (
                r#"{"label with spaces"="\101"}"#,
                vec![one(Equal, "label with spaces", "A")],
            ),
            (
                r#"{ alertname =~ "DiskSpace(Low|Critical)" , severity!="info" }"#,
                vec![
                    one(Regex, "alertname", "DiskSpace(Low|Critical)"),
                    one(NotEqual, "severity", "info"),
                ],
            ),
            (
                "foo=bar,bar!=baz",
                vec![one(Equal, "foo", "bar"), one(NotEqual, "bar", "baz")],
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_matchers(input).unwrap_or_else(|e| panic!("{input}: {e}")),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn errors_name_the_place_and_the_problem() {
        let cases = [
            (",", "0:1: unexpected ,: expected label name"),
            ("{,}", "1:2: unexpected ,: expected label name"),
            ("{", "0:1: end of input: expected close brace"),
            ("}", "0:1: }: expected opening brace"),
            ("foo=bar}", "7:8: }: expected opening brace"),
            ("{foo=bar", "0:8: end of input: expected close brace"),
            (
                r#"{foo=:"bar"}"#,
                r#"6:11: unexpected "bar": expected a comma or close brace"#,
            ),
            (
                r#"{foo="bar\w"}"#,
                r#"5:12: "bar\w": invalid input: unknown escape \w"#,
            ),
            (
                r"{foo=bar\n}",
                r"8:9: \: invalid input: escapes need double quotes",
            ),
            (
                r#"{"foo"="\xf0\x9f"}"#,
                r#"7:17: "\xf0\x9f": invalid input: not valid UTF-8"#,
            ),
            (
                "foo",
                "3:3: end of input: expected an operator such as =, !=, =~ or !~",
            ),
            ("foo=", "4:4: end of input: expected label value"),
            (
                "foo bar",
                "4:7: unexpected bar: expected an operator such as =, !=, =~ or !~",
            ),
            (r#"foo="bar"#, r#"4:8: "bar: missing closing quote"#),
            ("{foo=bar} x", "10:11: unexpected x: expected end of input"),
            ("foo!bar", "3:4: !: invalid input: expected != or !~"),
        ];
        for (input, expected) in cases {
            let error = parse_matchers(input).expect_err(input);
            assert_eq!(error.to_string(), expected, "{input}");
        }
        let bad_regex = parse_matchers("foo=~(unclosed").unwrap_err().to_string();
        assert!(
            bad_regex.starts_with("0:14: invalid regular expression"),
            "{bad_regex}"
        );
    }

    #[test]
    fn matching_follows_alertmanager() {
        let alert = labels(&[("alertname", "DiskSpaceLow"), ("instance", "node-1:9100")]);
        let m = |text: &str| parse_matchers(text).unwrap();
        assert!(all_match(
            &m(r#"alertname=~"DiskSpace(Low|Critical)""#),
            &alert
        ));
        assert!(
            !all_match(&m(r#"alertname=~"DiskSpace""#), &alert),
            "regexes are anchored"
        );
        assert!(!all_match(&m("alertname=~Low"), &alert));
        assert!(all_match(&m("alertname!~Disk"), &alert));
        assert!(
            all_match(&m(r#"severity="""#), &alert),
            "a missing label is empty"
        );
        assert!(all_match(&m("severity!=critical"), &alert));
        assert!(!all_match(&m("severity=~.+"), &alert));
        assert!(all_match(&m(""), &alert), "no matchers accept everything");
        assert!(!all_match(
            &m("alertname=DiskSpaceLow, instance=other"),
            &alert
        ));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            r#"alertname=~"Disk.*""#,
            r#""odd name"!="a\"b""#,
            r#"a="\x7f\x00\U0000009f\n\t\r\\ é🙂""#,
        ] {
            let parsed = parse_matchers(text).unwrap();
            let again = parse_matchers(&parsed[0].to_string()).unwrap();
            assert_eq!(parsed, again);
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // Every prefix and every single-byte corruption of a tricky input.
        let seed = r#"{ "a\x41\u00e9" =~ "x|(y)", b!="\"", c!~🙂, d=e, }"#;
        for end in 0..=seed.len() {
            if seed.is_char_boundary(end) {
                let _ = parse_matchers(&seed[..end]);
            }
        }
        for (at, _) in seed.char_indices() {
            for replacement in ['{', '}', '"', '\\', '=', '!', '~', ',', ' ', 'x', 'é'] {
                let mut mutated = seed.to_string();
                let len = mutated[at..].chars().next().unwrap().len_utf8();
                mutated.replace_range(at..at + len, &replacement.to_string());
                let _ = parse_matchers(&mutated);
            }
        }
    }
}
