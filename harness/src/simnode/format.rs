//! How container runtimes encode one line on disk: CRI records (containerd, CRI-O) and
//! Docker's json-file objects, with Go's `RFC3339Nano` timestamps.
//!
//! Every encoder appends to a caller-owned buffer so that writing a line allocates nothing
//! once the buffer has grown.

use std::time::{SystemTime, UNIX_EPOCH};

/// containerd's default `max_container_log_line_size`; Docker's copier splits at the same size.
pub const MAX_RECORD_BYTES: usize = 16_384;

/// Which output stream of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

impl Stream {
    /// The name runtimes write into the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The on-disk format of a container log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `<RFC3339Nano> <stream> <P|F> <msg>` records (containerd, CRI-O).
    #[default]
    Cri,
    /// Docker's json-file driver: `{"log":..,"stream":..,"time":..}` per record.
    DockerJson,
}

/// Append `time` as Go's `time.RFC3339Nano` in UTC: nine fractional digits with trailing
/// zeros trimmed, and no fraction at all when it is zero (`2026-11-25T10:00:00Z`).
pub fn push_rfc3339_nano(out: &mut Vec<u8>, time: SystemTime) {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (date, secs_of_day) = split_days(since_epoch.as_secs());
    push_date(out, date, b'-');
    out.push(b'T');
    push_2(out, secs_of_day / 3600);
    out.push(b':');
    push_2(out, secs_of_day / 60 % 60);
    out.push(b':');
    push_2(out, secs_of_day % 60);
    let mut nanos = since_epoch.subsec_nanos();
    if nanos != 0 {
        let mut digits = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            digits -= 1;
        }
        out.push(b'.');
        let start = out.len();
        out.resize(start + digits, b'0');
        for slot in out[start..].iter_mut().rev() {
            *slot = b'0' + (nanos % 10) as u8;
            nanos /= 10;
        }
    }
    out.push(b'Z');
}

/// kubelet's rotation suffix: Go layout `20060102-150405` (UTC here), for the given
/// number of seconds since the epoch.
pub fn rotation_stamp(secs_since_epoch: u64) -> String {
    let (date, secs_of_day) = split_days(secs_since_epoch);
    let mut out = Vec::with_capacity(15);
    push_date(&mut out, date, 0);
    out.push(b'-');
    push_2(&mut out, secs_of_day / 3600);
    push_2(&mut out, secs_of_day / 60 % 60);
    push_2(&mut out, secs_of_day % 60);
    String::from_utf8_lossy(&out).into_owned()
}

/// Append the records a runtime writes for one line, splitting lines over
/// [`MAX_RECORD_BYTES`] the way the runtime does.
pub fn push_line(out: &mut Vec<u8>, format: LogFormat, stream: Stream, time: SystemTime, line: &[u8]) {
    match format {
        LogFormat::Cri => push_cri(out, stream, time, line),
        LogFormat::DockerJson => push_docker(out, stream, time, line),
    }
}

/// containerd (`pkg/cri/io/logger.go`): a line longer than the limit becomes `P` records of
/// exactly the limit followed by one `F` record holding the rest (1..=limit bytes); a line
/// of exactly the limit is a single `F` record; an empty line is an empty `F` record.
fn push_cri(out: &mut Vec<u8>, stream: Stream, time: SystemTime, line: &[u8]) {
    let mut rest = line;
    loop {
        let (piece, tag) =
            if rest.len() > MAX_RECORD_BYTES { (&rest[..MAX_RECORD_BYTES], b'P') } else { (rest, b'F') };
        push_rfc3339_nano(out, time);
        out.push(b' ');
        out.extend_from_slice(stream.as_str().as_bytes());
        out.push(b' ');
        out.push(tag);
        out.push(b' ');
        out.extend_from_slice(piece);
        out.push(b'\n');
        if tag == b'F' {
            return;
        }
        rest = &rest[MAX_RECORD_BYTES..];
    }
}

/// Docker json-file: the copier hands the driver at most 16 KiB at a time; only the last
/// piece of a line carries the `\n`. Each piece is JSON-encoded on its own by Go, which
/// replaces every byte of an invalid UTF-8 sequence with `\ufffd` (a multi-byte character
/// cut at a piece boundary therefore becomes replacement characters, as with real Docker).
fn push_docker(out: &mut Vec<u8>, stream: Stream, time: SystemTime, line: &[u8]) {
    let mut pieces = line.chunks(MAX_RECORD_BYTES).peekable();
    if pieces.peek().is_none() {
        push_docker_record(out, stream, time, b"", true);
    }
    while let Some(piece) = pieces.next() {
        push_docker_record(out, stream, time, piece, pieces.peek().is_none());
    }
}

fn push_docker_record(out: &mut Vec<u8>, stream: Stream, time: SystemTime, piece: &[u8], last: bool) {
    out.extend_from_slice(br#"{"log":""#);
    push_go_json_string(out, piece);
    if last {
        out.extend_from_slice(br"\n");
    }
    out.extend_from_slice(br#"","stream":""#);
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(br#"","time":""#);
    push_rfc3339_nano(out, time);
    out.extend_from_slice(b"\"}\n");
}

/// Go `encoding/json` string escaping (HTML-safe), invalid bytes → `\ufffd` one per byte.
fn push_go_json_string(out: &mut Vec<u8>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let (valid, invalid) = match std::str::from_utf8(bytes) {
            Ok(text) => (text, false),
            Err(error) => {
                let (head, _) = bytes.split_at(error.valid_up_to());
                (std::str::from_utf8(head).unwrap_or_default(), true)
            }
        };
        for ch in valid.chars() {
            match ch {
                '"' => out.extend_from_slice(br#"\""#),
                '\\' => out.extend_from_slice(br"\\"),
                '\n' => out.extend_from_slice(br"\n"),
                '\r' => out.extend_from_slice(br"\r"),
                '\t' => out.extend_from_slice(br"\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => push_unicode_escape(out, ch as u32),
                c if (c as u32) < 0x20 => push_unicode_escape(out, c as u32),
                c => {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        bytes = &bytes[valid.len()..];
        if invalid {
            out.extend_from_slice(br"\ufffd");
            bytes = &bytes[1..];
        }
    }
}

fn push_unicode_escape(out: &mut Vec<u8>, code: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(br"\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((code >> shift) & 0xf) as usize]);
    }
}

/// (civil date, seconds into that day) for seconds since the epoch.
fn split_days(secs: u64) -> ((i64, u32, u32), u64) {
    let days = (secs / 86_400) as i64;
    (civil_from_days(days), secs % 86_400)
}

/// Howard Hinnant's `civil_from_days`: proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn push_date(out: &mut Vec<u8>, (year, month, day): (i64, u32, u32), separator: u8) {
    let year = year.clamp(0, 9999) as u64;
    push_2(out, year / 100);
    push_2(out, year % 100);
    if separator != 0 {
        out.push(separator);
    }
    push_2(out, u64::from(month));
    if separator != 0 {
        out.push(separator);
    }
    push_2(out, u64::from(day));
}

fn push_2(out: &mut Vec<u8>, value: u64) {
    out.push(b'0' + (value / 10 % 10) as u8);
    out.push(b'0' + (value % 10) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn rfc(time: SystemTime) -> String {
        let mut out = Vec::new();
        push_rfc3339_nano(&mut out, time);
        String::from_utf8(out).unwrap_or_default()
    }

    // 2026-11-25T10:00:00Z, computed independently: 20782 days since the epoch (python datetime).
    const NOV_25_2026_10H: u64 = 20_782 * 86_400 + 10 * 3600;

    #[test]
    fn timestamps_trim_trailing_zeros_like_go() {
        assert_eq!(rfc(at(NOV_25_2026_10H, 0)), "2026-11-25T10:00:00Z");
        assert_eq!(rfc(at(NOV_25_2026_10H, 123_456_700)), "2026-11-25T10:00:00.1234567Z");
        assert_eq!(rfc(at(NOV_25_2026_10H, 1)), "2026-11-25T10:00:00.000000001Z");
        assert_eq!(rfc(at(NOV_25_2026_10H + 3599, 500_000_000)), "2026-11-25T10:59:59.5Z");
        assert_eq!(rfc(at(951_782_400, 0)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn rotation_stamp_uses_kubelet_layout() {
        assert_eq!(rotation_stamp(NOV_25_2026_10H + 61), "20261125-100101");
    }

    #[test]
    fn cri_splits_only_above_the_limit() {
        let time = at(NOV_25_2026_10H, 0);
        let records = |len: usize| {
            let mut out = Vec::new();
            push_cri(&mut out, Stream::Stdout, time, &vec![b'x'; len]);
            out.split(|b| *b == b'\n')
                .filter(|r| !r.is_empty())
                .map(|r| (r[28], r.len() - 30))
                .collect::<Vec<_>>()
        };
        assert_eq!(records(0), vec![(b'F', 0)]);
        assert_eq!(records(16_384), vec![(b'F', 16_384)]);
        assert_eq!(records(16_385), vec![(b'P', 16_384), (b'F', 1)]);
        assert_eq!(records(32_768), vec![(b'P', 16_384), (b'F', 16_384)]);
    }

    #[test]
    fn docker_json_escapes_like_go() {
        let mut out = Vec::new();
        push_docker(&mut out, Stream::Stderr, at(NOV_25_2026_10H, 5_000), b"a\"<\xff\xf0\x9f\t");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"log\":\"a\\\"\\u003c\\ufffd\\ufffd\\ufffd\\t\\n\",\"stream\":\"stderr\",\
             \"time\":\"2026-11-25T10:00:00.000005Z\"}\n"
        );
    }
}
