//! Container log line formats: CRI (containerd, CRI-O) and docker json-file, and the merging
//! of partial records into complete lines. See `shared/reference/kubelet-logs.md`.
//!
//! Interface fixed by the skeleton; implementation in `cri.rs`, `docker.rs`, `assemble.rs`.

use std::borrow::Cow;

/// Which output stream of the container a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// stdout
    Stdout,
    /// stderr
    Stderr,
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
    /// Placeholder until the parser lands.
    #[error("not a {format:?} record: {reason}")]
    Malformed {
        /// The format that was expected.
        format: Format,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Guess the format of a file from one complete line (without its newline).
pub fn detect_format(_line: &[u8]) -> Option<Format> {
    unimplemented!("parse::detect_format")
}

/// Parse one line (without its trailing newline) in the given format.
pub fn parse_record(_format: Format, _line: &[u8]) -> Result<Record<'_>, ParseError> {
    unimplemented!("parse::parse_record")
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

/// Merges partial records into lines, per stream, bounded by `max_line_bytes`.
#[derive(Debug)]
pub struct Assembler {
    _max_line_bytes: usize,
}

impl Assembler {
    /// A new assembler that never holds more than `max_line_bytes` of one line.
    pub fn new(max_line_bytes: usize) -> Self {
        Assembler {
            _max_line_bytes: max_line_bytes,
        }
    }

    /// Feed one record that started at byte `offset` of its file; complete lines go to `out`.
    pub fn push(&mut self, _record: Record<'_>, _offset: u64, _out: &mut Vec<Line>) {
        unimplemented!("parse::Assembler::push")
    }

    /// File offset of the first record of the oldest unfinished line, if any. A checkpoint
    /// must not advance past it, so a restart re-reads the whole unfinished line.
    pub fn pending_since(&self) -> Option<u64> {
        unimplemented!("parse::Assembler::pending_since")
    }

    /// Emit whatever is pending as complete lines (the file ended for good).
    pub fn flush(&mut self, _out: &mut Vec<Line>) {
        unimplemented!("parse::Assembler::flush")
    }
}
