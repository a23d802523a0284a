//! CRI log records (containerd, CRI-O): `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <message>`.
//!
//! The message is borrowed from the line: parsing a CRI record allocates nothing.

use std::borrow::Cow;

use super::time::parse_rfc3339_ms;
use super::{Format, ParseError, Record, Stream};

/// Parse one CRI line (without its trailing newline).
pub(super) fn parse(line: &[u8]) -> Result<Record<'_>, ParseError> {
    let (timestamp, rest) = split_field(line).ok_or(malformed("missing stream field"))?;
    let timestamp_ms = parse_rfc3339_ms(timestamp).map_err(malformed)?;
    let (stream, rest) = split_field(rest).ok_or(malformed("missing P/F tag field"))?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(malformed("stream is neither stdout nor stderr")),
    };
    // `... stdout F` (no space, no message) is an empty line just like `... stdout F `.
    let (tags, message) = split_field(rest).unwrap_or((rest, &[]));
    // Future runtimes may append `:`-separated tags; only the first one is defined.
    let first_tag = match memchr::memchr(b':', tags) {
        Some(colon) => &tags[..colon],
        None => tags,
    };
    let partial = match first_tag {
        b"P" => true,
        b"F" => false,
        _ => return Err(malformed("tag is neither P nor F")),
    };
    Ok(Record { timestamp_ms, stream, partial, message: Cow::Borrowed(message) })
}

/// Split at the first space: the field before it and everything after it.
fn split_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    memchr::memchr(b' ', bytes).map(|space| (&bytes[..space], &bytes[space + 1..]))
}

fn malformed(reason: &'static str) -> ParseError {
    ParseError::Malformed { format: Format::Cri, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::time::format_utc_rfc3339;
    use proptest::prelude::*;

    const TS: &str = "2026-11-25T10:00:00.1234567Z";
    const TS_MS: i64 = 1_795_600_800_123;

    fn record(line: &str) -> Record<'_> {
        parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn full_and_partial_records() {
        let r = record("2026-11-25T10:00:00.1234567Z stdout F hello world");
        assert_eq!(
            r,
            Record {
                timestamp_ms: TS_MS,
                stream: Stream::Stdout,
                partial: false,
                message: Cow::Borrowed(b"hello world"),
            }
        );
        let r = record("2026-11-25T10:00:00.1234567Z stderr P part");
        assert_eq!((r.stream, r.partial, &*r.message), (Stream::Stderr, true, &b"part"[..]));
    }

    #[test]
    fn message_is_borrowed_and_kept_byte_exact() {
        let line = format!("{TS} stdout F  two  spaces, tab\t, trailing ");
        let r = record(&line);
        assert!(matches!(r.message, Cow::Borrowed(_)));
        assert_eq!(&*r.message, b" two  spaces, tab\t, trailing ");
    }

    #[test]
    fn empty_message_with_or_without_trailing_space() {
        assert_eq!(&*record(&format!("{TS} stdout F")).message, b"");
        assert_eq!(&*record(&format!("{TS} stdout F ")).message, b"");
        assert!(record(&format!("{TS} stdout P")).partial);
    }

    #[test]
    fn extra_tags_are_tolerated() {
        assert!(!record(&format!("{TS} stdout F:x:y msg")).partial);
        assert!(record(&format!("{TS} stdout P:more msg")).partial);
        assert_eq!(&*record(&format!("{TS} stdout F: msg")).message, b"msg");
    }

    #[test]
    fn numeric_offsets_and_crio_nine_digits() {
        assert_eq!(record("2026-11-25T10:00:00+09:00 stdout F x").timestamp_ms, 1_795_568_400_000);
        assert_eq!(record("2026-11-25T10:00:00.123456789+00:00 stdout F x").timestamp_ms, TS_MS);
    }

    #[test]
    fn message_may_contain_invalid_utf8() {
        let mut line = format!("{TS} stdout F ").into_bytes();
        line.extend_from_slice(&[0xff, 0xc3]);
        assert_eq!(parse(&line).map(|r| r.message.into_owned()), Ok(vec![0xff, 0xc3]));
    }

    #[test]
    fn malformed_lines_say_why() {
        let reason = |line: &str| match parse(line.as_bytes()) {
            Err(ParseError::Malformed { format: Format::Cri, reason }) => reason,
            other => panic!("{line:?} parsed as {other:?}"),
        };
        assert_eq!(reason(""), "missing stream field");
        assert_eq!(reason(TS), "missing stream field");
        assert_eq!(reason(&format!("{TS} stdout")), "missing P/F tag field");
        assert_eq!(reason(&format!("{TS} stdin F x")), "stream is neither stdout nor stderr");
        assert_eq!(reason(&format!("{TS}  stdout F x")), "stream is neither stdout nor stderr");
        assert_eq!(reason(&format!("{TS} stdout X x")), "tag is neither P nor F");
        assert_eq!(reason(&format!("{TS} stdout  x")), "tag is neither P nor F");
        assert_eq!(reason("yesterday stdout F x"), "timestamp: expected YYYY-MM-DDTHH:MM:SS");
        assert_eq!(reason(r#"{"log":"x\n"}"#), "missing stream field");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(
            seconds in 0i64..253_402_300_799, // up to 9999-12-31T23:59:59Z
            millis in 0i64..1000,
            stderr in any::<bool>(),
            partial in any::<bool>(),
            extra_tags in proptest::collection::vec("[A-Za-z0-9]{0,3}", 0..3),
            message in proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..64),
        ) {
            let timestamp_ms = seconds * 1000 + millis;
            let stream = if stderr { "stderr" } else { "stdout" };
            let mut tag = (if partial { "P" } else { "F" }).to_owned();
            for extra in &extra_tags {
                tag.push(':');
                tag.push_str(extra);
            }
            let mut line = format!("{} {stream} {tag} ", format_utc_rfc3339(timestamp_ms)).into_bytes();
            line.extend_from_slice(&message);

            let r = parse(&line).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(r.timestamp_ms, timestamp_ms);
            prop_assert_eq!(r.stream, if stderr { Stream::Stderr } else { Stream::Stdout });
            prop_assert_eq!(r.partial, partial);
            prop_assert!(matches!(r.message, Cow::Borrowed(_)));
            prop_assert_eq!(&*r.message, &message[..]);
        }
    }
}
