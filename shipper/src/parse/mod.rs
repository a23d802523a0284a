//! Container log line formats: CRI (containerd, CRI-O) and docker json-file, and the merging
//! of partial records into complete lines. See `shared/reference/kubelet-logs.md`.
//!
//! [`detect_format`] picks the format of a file from its first complete line;
//! [`parse_record`] turns each line into a [`Record`] (borrowing the message where the format
//! allows); an [`Assembler`] per file merges partial records into [`Line`]s per stream and
//! tells the tailer how far it may checkpoint ([`Assembler::pending_since`]).
//!
//! - `cri.rs`: `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <message>`
//! - `docker.rs`: `{"log":"...","stream":"...","time":"..."}`
//! - `time.rs`: the RFC 3339 → milliseconds parser both share
//! - `assemble.rs`: partial merge, UTF-8 repair, the per-line cap

use std::borrow::Cow;

mod assemble;
mod cri;
mod docker;
mod time;

pub use assemble::Assembler;

/// Which output stream of the container a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// stdout
    Stdout,
    /// stderr
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`, as the runtimes write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// File format, detected per file from its first complete line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <message>`
    Cri,
    /// `{"log":"...\n","stream":"stdout","time":"..."}`
    Docker,
}

/// One record of a container log file, exactly as the runtime wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The runtime's timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// stdout or stderr.
    pub stream: Stream,
    /// The line continues in the next record of the same stream (CRI `P`; docker `log`
    /// without a trailing newline).
    pub partial: bool,
    /// The message bytes, without the record's trailing newline.
    pub message: Cow<'a, [u8]>,
}

/// Why a line could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The line does not have the shape of a record of `format`.
    #[error("not a {format:?} record: {reason}")]
    Malformed {
        /// The format that was expected.
        format: Format,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Guess the format of a file from one complete line (without its newline): the format
/// that parses it, if any.
pub fn detect_format(line: &[u8]) -> Option<Format> {
    // A CRI line starts with a digit, a docker one with `{`: at most one parse succeeds.
    [Format::Cri, Format::Docker].into_iter().find(|&format| parse_record(format, line).is_ok())
}

/// Parse one line (without its trailing newline) in the given format.
///
/// Never panics, whatever the bytes; a CRI message is borrowed from `line`, a docker one
/// is borrowed unless its JSON string had escapes (it usually has: the `\n`).
pub fn parse_record(format: Format, line: &[u8]) -> Result<Record<'_>, ParseError> {
    match format {
        Format::Cri => cri::parse(line),
        Format::Docker => docker::parse(line),
    }
}

/// A complete line, ready for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Timestamp of the line's first record, ms since the epoch.
    pub timestamp_ms: i64,
    /// stdout or stderr.
    pub stream: Stream,
    /// The text; invalid UTF-8 was replaced with U+FFFD (see `invalid_utf8`).
    pub text: String,
    /// The bytes were not valid UTF-8 and were repaired.
    pub invalid_utf8: bool,
    /// This is not the end of the line: it was cut at `max_line_bytes` and continues in the
    /// next `Line` of the same stream.
    pub continued: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CRI: &[u8] = b"2026-11-25T10:00:00.1234567Z stderr P:x caf\xc3\xa9";
    const DOCKER: &[u8] =
        br#"{"log":"caf\u00e9\n","stream":"stdout","time":"2026-11-25T10:00:00.123456789+09:00"}"#;

    #[test]
    fn detects_each_format_from_one_line() {
        assert_eq!(detect_format(CRI), Some(Format::Cri));
        assert_eq!(detect_format(b"2026-11-25T10:00:00Z stdout F"), Some(Format::Cri));
        assert_eq!(detect_format(DOCKER), Some(Format::Docker));
        assert_eq!(detect_format(b""), None);
        assert_eq!(detect_format(b"plain text from somewhere"), None);
        assert_eq!(detect_format(br#"{"msg":"structured but not docker"}"#), None);
        // Cut mid-line: not enough to decide.
        assert_eq!(detect_format(&DOCKER[..20]), None);
    }

    #[test]
    fn stream_names_match_the_runtimes() {
        assert_eq!(Stream::Stdout.as_str(), "stdout");
        assert_eq!(Stream::Stderr.as_str(), "stderr");
    }

    /// Every rejection reason, as the operator would read it in a log line.
    #[test]
    fn error_messages() {
        let cases: [(Format, &str); 16] = [
            (Format::Cri, ""),
            (Format::Cri, "2026-11-25T10:00:00Z"),
            (Format::Cri, "2026-11-25T10:00:00Z stdout"),
            (Format::Cri, "2026-11-25T10:00:00Z stdin F x"),
            (Format::Cri, "2026-11-25T10:00:00Z stdout Q x"),
            (Format::Cri, "2026-11-25 stdout F x"),
            (Format::Cri, "2026-13-25T10:00:00Z stdout F x"),
            (Format::Cri, "2026-02-30T10:00:00Z stdout F x"),
            (Format::Cri, "2026-11-25T10:61:00Z stdout F x"),
            (Format::Cri, "2026-11-25T10:00:00. stdout F x"),
            (Format::Cri, "2026-11-25T10:00:00+9 stdout F x"),
            (Format::Cri, "2026-11-25T10:00:00+99:00 stdout F x"),
            (Format::Docker, "not json"),
            (Format::Docker, r#"{"log":"x"#),
            (Format::Docker, r#"{"log":"x","stream":"stdout"}"#),
            (Format::Docker, r#"{"log":"x","stream":"tty","time":"2026-11-25T10:00:00Z"}"#),
        ];
        let table: Vec<String> = cases
            .iter()
            .map(|(format, line)| match parse_record(*format, line.as_bytes()) {
                Ok(record) => format!("{line:?} => unexpectedly parsed: {record:?}"),
                Err(e) => format!("{line:?} => {e}"),
            })
            .collect();
        insta::assert_snapshot!(table.join("\n"));
    }

    /// A valid line with one byte replaced, one inserted, or cut short.
    fn mutated(valid: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
        (any::<prop::sample::Index>(), any::<u8>(), 0u8..3).prop_map(move |(at, byte, how)| {
            let mut line = valid.to_vec();
            let at = at.index(line.len());
            match how {
                0 => line[at] = byte,
                1 => line.insert(at, byte),
                _ => line.truncate(at),
            }
            line
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = detect_format(&line);
            let _ = parse_record(Format::Cri, &line);
            let _ = parse_record(Format::Docker, &line);
        }

        #[test]
        fn near_valid_lines_never_panic(cri in mutated(CRI), docker in mutated(DOCKER)) {
            for line in [&cri, &docker] {
                let _ = detect_format(line);
                let _ = parse_record(Format::Cri, line);
                let _ = parse_record(Format::Docker, line);
            }
        }

        #[test]
        fn arbitrary_records_never_panic_the_assembler(
            records in proptest::collection::vec((any::<bool>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..12)), 0..24),
            cap in 0usize..10,
        ) {
            let mut asm = Assembler::new(cap);
            let mut out = Vec::new();
            for (i, (stderr, partial, message)) in records.iter().enumerate() {
                let record = Record {
                    timestamp_ms: i64::MIN,
                    stream: if *stderr { Stream::Stderr } else { Stream::Stdout },
                    partial: *partial,
                    message: Cow::Borrowed(message),
                };
                asm.push(record, u64::MAX - i as u64, &mut out);
            }
            asm.flush(&mut out);
            prop_assert!(out.iter().all(|l| l.text.len() <= cap.max(4)));
        }
    }
}
