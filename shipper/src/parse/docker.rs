//! Docker json-file records: `{"log":"<text>\n","stream":"stdout","time":"<RFC3339Nano>"}`.
//!
//! Docker splits lines over 16 KiB into several objects; only the last one's `log` ends in
//! `\n`, so a `log` without it is a partial record. The `log` string is borrowed from the line
//! when it contains no JSON escape, and unescaped into one buffer otherwise.

use std::borrow::Cow;

use serde::Deserialize;

use super::time::parse_rfc3339_ms;
use super::{Format, ParseError, Record, Stream};

/// The fields we read; others (`attrs`, ...) are ignored.
#[derive(Deserialize)]
struct JsonRecord<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

/// Parse one json-file line (without its trailing newline).
pub(super) fn parse(line: &[u8]) -> Result<Record<'_>, ParseError> {
    // Checked first so that, say, a CRI line is not reported as a JSON type mismatch.
    if line.first() != Some(&b'{') {
        return Err(malformed("not a JSON object"));
    }
    let record: JsonRecord<'_> = serde_json::from_slice(line).map_err(|e| {
        malformed(match e.classify() {
            serde_json::error::Category::Data => "log, stream and time must all be strings",
            serde_json::error::Category::Eof => "JSON object is truncated",
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                "not a single valid JSON object"
            }
        })
    })?;
    let stream = match &*record.stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return Err(malformed("stream is neither stdout nor stderr")),
    };
    let timestamp_ms = parse_rfc3339_ms(record.time.as_bytes()).map_err(malformed)?;
    // Only the line's own ending goes: the final `\n`, and a `\r` right before it (DESIGN
    // §3). A partial record's trailing `\r` is content: the line goes on after it.
    let partial = !record.log.ends_with('\n');
    let ending = |log: &str| match log.strip_suffix('\n') {
        Some(rest) => log.len() - rest.strip_suffix('\r').unwrap_or(rest).len(),
        None => 0,
    };
    let message = match record.log {
        Cow::Borrowed(log) => Cow::Borrowed(&log.as_bytes()[..log.len() - ending(log)]),
        Cow::Owned(mut log) => {
            log.truncate(log.len() - ending(&log));
            Cow::Owned(log.into_bytes())
        }
    };
    Ok(Record { timestamp_ms, stream, partial, message })
}

fn malformed(reason: &'static str) -> ParseError {
    ParseError::Malformed { format: Format::Docker, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::time::format_utc_rfc3339;
    use proptest::prelude::*;

    fn record(line: &str) -> Record<'_> {
        parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn full_line_strips_the_newline() {
        let r = record(r#"{"log":"hello\n","stream":"stdout","time":"2026-11-25T10:00:00.123456789Z"}"#);
        assert_eq!(
            r,
            Record {
                timestamp_ms: 1_795_600_800_123,
                stream: Stream::Stdout,
                partial: false,
                message: Cow::Borrowed(b"hello"),
            }
        );
    }

    #[test]
    fn log_without_newline_is_partial() {
        let r = record(r#"{"log":"first half ","stream":"stderr","time":"2026-11-25T10:00:00Z"}"#);
        assert_eq!((r.stream, r.partial, &*r.message), (Stream::Stderr, true, &b"first half "[..]));
        // Unescaped and partial: nothing stripped.
        let r = record(r#"{"log":"tab\tthere","stream":"stdout","time":"2026-11-25T10:00:00Z"}"#);
        assert_eq!((r.partial, &*r.message), (true, &b"tab\tthere"[..]));
    }

    #[test]
    fn escapes_are_decoded_and_only_the_line_ending_stripped() {
        let r = record(
            r#"{"log":"caf\u00e9 \"q\" \\ \ud83d\ude00 a\r\nb\r\n","stream":"stdout","time":"2026-11-25T10:00:00Z"}"#,
        );
        assert!(!r.partial);
        assert_eq!(&*r.message, "café \"q\" \\ 😀 a\r\nb".as_bytes());
        // Borrowed (no escapes but the ending): the same rule.
        let r = record(r#"{"log":"plain\r\r\n","stream":"stdout","time":"2026-11-25T10:00:00Z"}"#);
        assert_eq!(&*r.message, b"plain\r");
        // A partial record's trailing CR is content.
        let r = record(r#"{"log":"half\r","stream":"stdout","time":"2026-11-25T10:00:00Z"}"#);
        assert_eq!((r.partial, &*r.message), (true, &b"half\r"[..]));
    }

    #[test]
    fn empty_log_variants() {
        let r = record(r#"{"log":"\n","stream":"stdout","time":"2026-11-25T10:00:00Z"}"#);
        assert_eq!((r.partial, &*r.message), (false, &b""[..]));
        let r = record(r#"{"log":"","stream":"stdout","time":"2026-11-25T10:00:00Z"}"#);
        assert_eq!((r.partial, &*r.message), (true, &b""[..]));
    }

    #[test]
    fn key_order_and_extra_keys_do_not_matter() {
        let r = record(
            r#"{"time":"2026-11-25T10:00:00+09:00","attrs":{"tag":"x"},"stream":"stdout","log":"x\n"}"#,
        );
        assert_eq!((r.timestamp_ms, &*r.message), (1_795_568_400_000, &b"x"[..]));
    }

    #[test]
    fn malformed_lines_say_why() {
        let reason = |line: &str| match parse(line.as_bytes()) {
            Err(ParseError::Malformed { format: Format::Docker, reason }) => reason,
            other => panic!("{line:?} parsed as {other:?}"),
        };
        assert_eq!(reason(""), "not a JSON object");
        assert_eq!(reason(r#"{"log":"x\n","stream":"std"#), "JSON object is truncated");
        assert_eq!(reason("2026-11-25T10:00:00Z stdout F x"), "not a JSON object");
        assert_eq!(reason(r#"{"log":"x\n","stream":"stdout"}"#), "log, stream and time must all be strings");
        assert_eq!(
            reason(r#"{"log":1,"stream":"stdout","time":"2026-11-25T10:00:00Z"}"#),
            "log, stream and time must all be strings"
        );
        assert_eq!(
            reason(r#"{"log":"x","stream":"stdin","time":"2026-11-25T10:00:00Z"}"#),
            "stream is neither stdout nor stderr"
        );
        assert_eq!(
            reason(r#"{"log":"x","stream":"stdout","time":"now"}"#),
            "timestamp: expected YYYY-MM-DDTHH:MM:SS"
        );
        assert_eq!(
            reason(r#"{"log":"x","stream":"stdout","time":"2026-11-25T10:00:00Z"} trailing"#),
            "not a single valid JSON object"
        );
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(
            seconds in 0i64..253_402_300_799,
            millis in 0i64..1000,
            stderr in any::<bool>(),
            partial in any::<bool>(),
            log in "[^\n]{0,40}",
        ) {
            let timestamp_ms = seconds * 1000 + millis;
            let stream = if stderr { "stderr" } else { "stdout" };
            let written = if partial { log.clone() } else { format!("{log}\n") };
            let line = serde_json::json!({
                "log": written,
                "stream": stream,
                "time": format_utc_rfc3339(timestamp_ms),
            })
            .to_string();

            let r = parse(line.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(r.timestamp_ms, timestamp_ms);
            prop_assert_eq!(r.stream, if stderr { Stream::Stderr } else { Stream::Stdout });
            prop_assert_eq!(r.partial, partial);
            // A complete line's `\r\n` is its ending; a partial record keeps every byte.
            let expected = if partial { log.as_str() } else { log.strip_suffix('\r').unwrap_or(&log) };
            prop_assert_eq!(&*r.message, expected.as_bytes());
        }
    }
}
