//! The CloudWatch message shape (**contract**, DESIGN §3): a compact JSON object with exactly
//! the keys `log`, `namespace`, `pod_name`, `container_name`, `container_image`, `host`, in
//! that order. Two opt-in formats ([`MessageFormat`]) change it: `envelope_json` puts a line
//! that is a JSON object in as the object itself (verbatim), and `raw` sends the text alone;
//! `message_fields` ([`ExtraField`]) appends keys after `host`.
//!
//! The envelope (everything after `log`) is fixed per (pod, container), so
//! [`MessageEncoder::new`] serialises it once; per line only `log` is escaped, byte for byte
//! as `serde_json` escapes strings (`\"`, `\\`, `\b \f \n \r \t`, other controls as
//! `\u00xx`; everything else verbatim).
//!
//! A line whose message would exceed [`MAX_EVENT_BYTES`] is split at character boundaries
//! into consecutive messages that each fit, never truncated. Every piece that does not end
//! the original line carries [`CONTINUATION_MARKER`] at the end of its `log`, so a reader
//! strips the marker and concatenates the pieces to get the line back.
//!
//! Envelope values are Kubernetes names and an image reference, normally well under 300
//! bytes. A value over [`MAX_ENVELOPE_FIELD_BYTES`] (possible only for a pathological image
//! string) is cut to that length at a character boundary: this bounds the envelope, so
//! every message has room for log text. Log text itself is never cut.

use super::MAX_EVENT_BYTES;

/// Appended to the `log` of every piece that does not end its line.
pub const CONTINUATION_MARKER: &str = "\u{2026}[continued]";

/// Longest envelope value kept, in bytes (see the module docs).
pub const MAX_ENVELOPE_FIELD_BYTES: usize = 4096;

/// The start of every envelope message, up to the `log` value's opening quote.
const LOG_PREFIX: &str = "{\"log\":\"";
/// The start of an `envelope_json` message whose `log` is an object.
const LOG_OBJECT_PREFIX: &str = "{\"log\":";

/// What a CloudWatch event's message is (`message_format`, `SHIPPER_MESSAGE_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    /// The contract's six-key JSON envelope, `log` a string (the default).
    #[default]
    Envelope,
    /// The same envelope, but a line that is a JSON object goes in as the object itself, so
    /// CloudWatch Logs Insights discovers `log.level`; any other line stays a string.
    EnvelopeJson,
    /// The line's text alone.
    Raw,
}

impl std::str::FromStr for MessageFormat {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "envelope" => Ok(Self::Envelope),
            "envelope_json" => Ok(Self::EnvelopeJson),
            "raw" => Ok(Self::Raw),
            _ => Err("use envelope, envelope_json or raw".to_owned()),
        }
    }
}

/// A key added to the envelope after the contract's six (`message_fields`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraField {
    /// `"key":"value"`
    Text {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `"key":{"k":"v",…}` (chosen labels or annotations).
    Object {
        /// The key.
        key: String,
        /// The entries, in order.
        entries: Vec<(String, String)>,
    },
}

/// The fields of the message envelope, fixed per (pod, container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta<'a> {
    /// Pod namespace.
    pub namespace: &'a str,
    /// Pod name.
    pub pod_name: &'a str,
    /// Container name.
    pub container_name: &'a str,
    /// Container image.
    pub container_image: &'a str,
    /// Node name.
    pub host: &'a str,
    /// Keys after `host` (none by default).
    pub extra: &'a [ExtraField],
}

/// Encodes messages for one (pod, container): the envelope is serialised once.
#[derive(Debug, Clone)]
pub struct MessageEncoder {
    format: MessageFormat,
    /// Everything after the `log` value: `,"namespace":"…",…,"host":"…"}`.
    suffix: String,
}

impl MessageEncoder {
    /// Pre-encode the envelope of the default format.
    pub fn new(meta: &MessageMeta<'_>) -> Self {
        Self::with_format(meta, MessageFormat::Envelope)
    }

    /// Pre-encode the envelope of `format`.
    pub fn with_format(meta: &MessageMeta<'_>, format: MessageFormat) -> Self {
        let fields = [
            ("namespace", meta.namespace),
            ("pod_name", meta.pod_name),
            ("container_name", meta.container_name),
            ("container_image", meta.container_image),
            ("host", meta.host),
        ];
        let mut suffix = String::new();
        for (key, value) in fields {
            push_pair(&mut suffix, key, value);
        }
        for extra in meta.extra {
            match extra {
                ExtraField::Text { key, value } => push_pair(&mut suffix, key, value),
                ExtraField::Object { key, entries } => {
                    suffix.push_str(",\"");
                    escape_json_into(&mut suffix, key);
                    suffix.push_str("\":{");
                    for (index, (key, value)) in entries.iter().enumerate() {
                        if index > 0 {
                            suffix.push(',');
                        }
                        push_member(&mut suffix, key, value);
                    }
                    suffix.push('}');
                }
            }
        }
        suffix.push('}');
        Self { format, suffix }
    }

    /// Encode `log` (`continued`: the line goes on in the next call) into one or more
    /// messages, each at most `MAX_EVENT_BYTES`, pushed onto `out`. Returns how many: 0 only
    /// for an empty line in the `raw` format (CloudWatch refuses empty messages).
    pub fn encode(&self, log: &str, continued: bool, out: &mut Vec<String>) -> usize {
        match self.format {
            MessageFormat::Raw => encode_raw(log, continued, out),
            MessageFormat::EnvelopeJson
                if !continued
                    && LOG_OBJECT_PREFIX.len() + log.len() + self.suffix.len() <= MAX_EVENT_BYTES
                    && is_json_object(log) =>
            {
                let mut message =
                    String::with_capacity(LOG_OBJECT_PREFIX.len() + log.len() + self.suffix.len());
                message.push_str(LOG_OBJECT_PREFIX);
                message.push_str(log);
                message.push_str(&self.suffix);
                out.push(message);
                1
            }
            _ => self.encode_string(log, continued, out),
        }
    }

    /// `log` as a JSON string, split into pieces that fit.
    fn encode_string(&self, log: &str, continued: bool, out: &mut Vec<String>) -> usize {
        // The `"` closing the log string comes before the suffix.
        let fixed = LOG_PREFIX.len() + 1 + self.suffix.len();
        let marker = CONTINUATION_MARKER.len();
        let escaped = escaped_len(log.as_bytes());
        // Room for escaped log text in the last piece, and in a piece that gets a marker.
        let last_room = MAX_EVENT_BYTES - fixed - if continued { marker } else { 0 };
        let marked_room = MAX_EVENT_BYTES - fixed - marker;

        let mut rest = log;
        let mut rest_escaped = escaped;
        let mut pieces = 0;
        while rest_escaped > last_room {
            let (cut, cut_escaped) = split_point(rest.as_bytes(), marked_room);
            let (head, tail) = rest.split_at(cut);
            out.push(self.message(head, cut_escaped, true));
            pieces += 1;
            rest = tail;
            rest_escaped -= cut_escaped;
        }
        out.push(self.message(rest, rest_escaped, continued));
        pieces + 1
    }

    /// One message for `log` (whose escaped length is `escaped`), with the marker if `marked`.
    fn message(&self, log: &str, escaped: usize, marked: bool) -> String {
        let marker = if marked { CONTINUATION_MARKER } else { "" };
        let mut message =
            String::with_capacity(LOG_PREFIX.len() + escaped + marker.len() + 1 + self.suffix.len());
        message.push_str(LOG_PREFIX);
        escape_json_into(&mut message, log);
        message.push_str(marker);
        message.push('"');
        message.push_str(&self.suffix);
        message
    }
}

/// `,"key":"value"` with both escaped (the value capped).
fn push_pair(out: &mut String, key: &str, value: &str) {
    out.push(',');
    push_member(out, key, value);
}

/// `"key":"value"` with both escaped (the value capped).
fn push_member(out: &mut String, key: &str, value: &str) {
    out.push('"');
    escape_json_into(out, key);
    out.push_str("\":\"");
    escape_json_into(out, cap_envelope_value(value));
    out.push('"');
}

/// Whether `text` is exactly one JSON object (surrounding whitespace allowed), validated
/// without building it: the text goes into the message verbatim, so nothing of it changes
/// (not even the order or duplicates of its keys).
fn is_json_object(text: &str) -> bool {
    text.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// The `raw` format: the text itself, split at character boundaries into pieces that fit,
/// every piece but the line's last marked.
fn encode_raw(log: &str, continued: bool, out: &mut Vec<String>) -> usize {
    let marker = CONTINUATION_MARKER.len();
    let mut rest = log;
    let mut pieces = 0;
    while !rest.is_empty() {
        let last_room = MAX_EVENT_BYTES - if continued { marker } else { 0 };
        if rest.len() <= last_room {
            let mut piece = rest.to_owned();
            if continued {
                piece.push_str(CONTINUATION_MARKER);
            }
            out.push(piece);
            return pieces + 1;
        }
        let mut cut = MAX_EVENT_BYTES - marker;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(format!("{head}{CONTINUATION_MARKER}"));
        pieces += 1;
        rest = tail;
    }
    pieces
}

/// Cut an envelope value to [`MAX_ENVELOPE_FIELD_BYTES`] at a character boundary.
fn cap_envelope_value(value: &str) -> &str {
    if value.len() <= MAX_ENVELOPE_FIELD_BYTES {
        return value;
    }
    let mut cut = MAX_ENVELOPE_FIELD_BYTES;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    &value[..cut]
}

/// The longest prefix of `bytes` (a `str`) ending on a character boundary whose escaped
/// form fits in `room`: its length and escaped length. Always at least one character, so a
/// split makes progress (the envelope cap leaves far more room than one character needs).
fn split_point(bytes: &[u8], room: usize) -> (usize, usize) {
    let mut cut = 0;
    let mut cut_escaped = 0;
    let mut escaped = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        // Escapes are ASCII, so a character boundary is any byte that is not a UTF-8
        // continuation byte; remember the last boundary that still fits.
        if !is_continuation_byte(byte) {
            if escaped > room {
                break;
            }
            cut = index;
            cut_escaped = escaped;
        }
        escaped += usize::from(ESCAPED_LEN[usize::from(byte)]);
    }
    if escaped <= room {
        return (bytes.len(), escaped);
    }
    if cut == 0 {
        // Not even one character fits: take one anyway rather than loop forever.
        let first = bytes
            .iter()
            .skip(1)
            .position(|&byte| !is_continuation_byte(byte))
            .map_or(bytes.len(), |position| position + 1);
        let first_escaped = escaped_len(&bytes[..first]);
        return (first, first_escaped);
    }
    (cut, cut_escaped)
}

/// Whether `byte` continues a multi-byte UTF-8 character.
fn is_continuation_byte(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// How `serde_json` escapes each byte: 0 = verbatim, `u` = `\u00xx`, else `\` + that byte.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Escaped length of each byte, derived from [`ESCAPE`].
static ESCAPED_LEN: [u8; 256] = {
    let mut table = [1u8; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = match ESCAPE[byte] {
            0 => 1,
            b'u' => 6,
            _ => 2,
        };
        byte += 1;
    }
    table
};

/// Length of `bytes` once escaped as a JSON string body.
fn escaped_len(bytes: &[u8]) -> usize {
    bytes.iter().map(|&byte| usize::from(ESCAPED_LEN[usize::from(byte)])).sum()
}

/// Append `text` escaped as a JSON string body (no quotes), exactly as `serde_json` does.
fn escape_json_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (index, &byte) in text.as_bytes().iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        // `index` holds an ASCII byte and `start` follows one, so both are char boundaries.
        out.push_str(&text[start..index]);
        out.push('\\');
        if escape == b'u' {
            out.push_str("u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        } else {
            out.push(char::from(escape));
        }
        start = index + 1;
    }
    out.push_str(&text[start..]);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    /// The contract's message, as an independent oracle: serde_json writes struct fields
    /// in declaration order, and `deny_unknown_fields` rejects extra keys.
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Message {
        log: String,
        namespace: String,
        pod_name: String,
        container_name: String,
        container_image: String,
        host: String,
    }

    const META: MessageMeta<'static> = MessageMeta {
        namespace: "shop",
        pod_name: "web-7d9f\"x",
        container_name: "nginx",
        container_image: "registry.example/nginx:1.27",
        host: "ip-10-0-0-1\n",
        extra: &[],
    };

    fn expected(log: &str, meta: &MessageMeta<'_>) -> String {
        serde_json::to_string(&Message {
            log: log.to_owned(),
            namespace: meta.namespace.to_owned(),
            pod_name: meta.pod_name.to_owned(),
            container_name: meta.container_name.to_owned(),
            container_image: meta.container_image.to_owned(),
            host: meta.host.to_owned(),
        })
        .expect("serialise")
    }

    /// Encode, then check every piece against the contract and return the reassembled log.
    fn round_trip(log: &str, continued: bool) -> (usize, String) {
        let encoder = MessageEncoder::new(&META);
        let mut out = vec!["earlier".to_owned()];
        let count = encoder.encode(log, continued, &mut out);
        assert_eq!(out.len(), count + 1, "returned count matches pushed messages");
        assert_eq!(out[0], "earlier", "encode appends, never clears");
        let pieces = &out[1..];
        let mut reassembled = String::new();
        for (index, piece) in pieces.iter().enumerate() {
            assert!(piece.len() <= MAX_EVENT_BYTES, "piece {index} is {} bytes", piece.len());
            let parsed: Message = serde_json::from_str(piece).expect("piece is JSON");
            // Byte-identical to serde_json: proves key order, compactness and escaping.
            assert_eq!(piece, &expected(&parsed.log, &META));
            assert_eq!(parsed.namespace, META.namespace);
            assert_eq!(parsed.host, META.host);
            let is_last = index + 1 == pieces.len();
            let text = if !is_last || continued {
                parsed.log.strip_suffix(CONTINUATION_MARKER).expect("continued piece carries the marker")
            } else {
                parsed.log.as_str()
            };
            if !is_last {
                // Greedy: the next character (at most 6 escaped bytes) did not fit.
                assert!(piece.len() > MAX_EVENT_BYTES - 6, "piece {index} underfilled");
            }
            reassembled.push_str(text);
        }
        (count, reassembled)
    }

    #[test]
    fn short_line_is_one_message_identical_to_serde_json() {
        let log = "GET /\"quoted\" \\ tab\t nl\n bell\u{7} del\u{7f} é 😀";
        let encoder = MessageEncoder::new(&META);
        let mut out = Vec::new();
        assert_eq!(encoder.encode(log, false, &mut out), 1);
        assert_eq!(out, vec![expected(log, &META)]);
        assert!(out[0].starts_with("{\"log\":\"GET /\\\"quoted"));
    }

    #[test]
    fn empty_line_is_a_message_with_empty_log() {
        assert_eq!(round_trip("", false), (1, String::new()));
        assert_eq!(round_trip("", true), (1, String::new()));
    }

    #[test]
    fn continued_short_line_gets_the_marker() {
        let encoder = MessageEncoder::new(&META);
        let mut out = Vec::new();
        encoder.encode("part", true, &mut out);
        let parsed: Message = serde_json::from_str(&out[0]).expect("JSON");
        assert_eq!(parsed.log, format!("part{CONTINUATION_MARKER}"));
    }

    #[test]
    fn line_that_exactly_fits_is_not_split() {
        let fixed = expected("", &META).len();
        let log = "a".repeat(MAX_EVENT_BYTES - fixed);
        assert_eq!(round_trip(&log, false), (1, log.clone()));
        let log = "a".repeat(MAX_EVENT_BYTES - fixed + 1);
        assert_eq!(round_trip(&log, false), (2, log.clone()));
    }

    #[test]
    fn multibyte_and_escaped_chars_straddling_the_cut() {
        let fixed = expected("", &META).len();
        let room = MAX_EVENT_BYTES - fixed - CONTINUATION_MARKER.len();
        for unit in ["é", "€", "😀", "\"", "\n", "\u{1}"] {
            for shift in 0..7 {
                let mut log = "a".repeat(room - shift);
                log.push_str(&unit.repeat(20));
                let (count, reassembled) = round_trip(&log, false);
                assert_eq!(count, 2, "unit {unit:?} shift {shift}");
                assert_eq!(reassembled, log, "unit {unit:?} shift {shift}");
            }
        }
    }

    #[test]
    fn huge_envelope_value_is_capped_and_messages_still_fit() {
        let image = "i".repeat(100_000);
        let meta = MessageMeta { container_image: &image, ..META };
        let encoder = MessageEncoder::new(&meta);
        let mut out = Vec::new();
        encoder.encode(&"x".repeat(MAX_EVENT_BYTES), false, &mut out);
        for piece in &out {
            assert!(piece.len() <= MAX_EVENT_BYTES);
            let parsed: Message = serde_json::from_str(piece).expect("JSON");
            assert_eq!(parsed.container_image.len(), MAX_ENVELOPE_FIELD_BYTES);
        }
    }

    /// Characters that stress splitting: escapes of 2 and 6 bytes, chars of 1–4 bytes.
    fn tricky_unit() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "\"", "\\", "\n", "\u{0}", "\u{1f}", "é", "€", "😀", "ab", "\t\u{7f}"])
    }

    proptest! {
        #[test]
        fn short_lines_match_serde_json(log in "\\PC{0,64}|[\\x00-\\x7f]{0,64}") {
            let encoder = MessageEncoder::new(&META);
            let mut out = Vec::new();
            prop_assert_eq!(encoder.encode(&log, false, &mut out), 1);
            prop_assert_eq!(&out[0], &expected(&log, &META));
        }
    }

    /// The envelope with extra fields and a JSON `log`, as an independent oracle.
    #[derive(Debug, Serialize)]
    struct JsonMessage<'a> {
        log: serde_json::Value,
        namespace: &'a str,
        pod_name: &'a str,
        container_name: &'a str,
        container_image: &'a str,
        host: &'a str,
        workload: &'a str,
        labels: BTreeMap<&'a str, &'a str>,
    }

    use std::collections::BTreeMap;

    fn extra() -> Vec<ExtraField> {
        vec![
            ExtraField::Text { key: "workload".into(), value: "web".into() },
            ExtraField::Object {
                key: "labels".into(),
                entries: vec![("team".into(), "pay\"ments".into()), ("tier".into(), "front".into())],
            },
        ]
    }

    fn json_expected(log: &str, meta: &MessageMeta<'_>) -> String {
        serde_json::to_string(&JsonMessage {
            log: serde_json::from_str(log).expect("an object"),
            namespace: meta.namespace,
            pod_name: meta.pod_name,
            container_name: meta.container_name,
            container_image: meta.container_image,
            host: meta.host,
            workload: "web",
            labels: BTreeMap::from([("team", "pay\"ments"), ("tier", "front")]),
        })
        .expect("serialise")
    }

    #[test]
    fn envelope_json_embeds_objects_and_keeps_other_lines_strings() {
        let extra = extra();
        let meta = MessageMeta { extra: &extra, ..META };
        let encoder = MessageEncoder::with_format(&meta, MessageFormat::EnvelopeJson);
        let encode = |log: &str, continued| {
            let mut out = Vec::new();
            encoder.encode(log, continued, &mut out);
            out
        };
        let object = r#"{"level":"error","msg":"boom","n":[1,2.5e3,{"a":null}],"dup":1,"dup":2}"#;
        // Verbatim, duplicates and all: the oracle's envelope around the line's own bytes.
        let envelope = json_expected("{}", &meta);
        let expected = format!("{{\"log\":{object}{}", &envelope["{\"log\":{}".len()..]);
        assert_eq!(encode(object, false), vec![expected]);
        let parsed: serde_json::Value = serde_json::from_str(&encode(object, false)[0]).expect("JSON");
        assert_eq!(parsed["log"]["level"], "error", "Insights sees log.level");
        assert_eq!(parsed["labels"]["team"], "pay\"ments");
        // Anything that is not exactly one object stays a string.
        for text in ["[1,2]", "\"s\"", "42", "{\"a\":1} trailing", "{\"a\":\"ctl\u{1}\"}", "{bad}", "", "{"] {
            let message = &encode(text, false)[0];
            let parsed: serde_json::Value = serde_json::from_str(message).expect("JSON");
            assert_eq!(parsed["log"], text, "{text:?}");
        }
        // Surrounding whitespace is kept verbatim inside the object's message.
        let spaced = " {\"a\": 1}\t";
        let parsed: serde_json::Value = serde_json::from_str(&encode(spaced, false)[0]).expect("JSON");
        assert_eq!(parsed["log"]["a"], 1);
        // A piece of a cut line is never an object.
        let parsed: serde_json::Value = serde_json::from_str(&encode(object, true)[0]).expect("JSON");
        assert!(parsed["log"].is_string());
        // An object too big for one event goes out as split strings.
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_EVENT_BYTES));
        let pieces = encode(&big, false);
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|piece| piece.len() <= MAX_EVENT_BYTES));
    }

    #[test]
    fn envelope_extra_fields_follow_host() {
        let extra = extra();
        let meta = MessageMeta { extra: &extra, ..META };
        let mut out = Vec::new();
        MessageEncoder::with_format(&meta, MessageFormat::Envelope).encode("plain", false, &mut out);
        assert!(
            out[0].ends_with(
                r#","host":"ip-10-0-0-1\n","workload":"web","labels":{"team":"pay\"ments","tier":"front"}}"#
            ),
            "{}",
            out[0]
        );
        let parsed: serde_json::Value = serde_json::from_str(&out[0]).expect("JSON");
        assert_eq!(parsed["log"], "plain");
    }

    #[test]
    fn raw_is_the_text_alone() {
        let encoder = MessageEncoder::with_format(&META, MessageFormat::Raw);
        let mut out = Vec::new();
        assert_eq!(encoder.encode("a \"line\"", false, &mut out), 1);
        assert_eq!(out, vec!["a \"line\"".to_owned()]);
        out.clear();
        assert_eq!(encoder.encode("", false, &mut out), 0, "CloudWatch refuses empty messages");
        let long = "é".repeat(MAX_EVENT_BYTES);
        assert_eq!(encoder.encode(&long, true, &mut out), 3);
        assert!(
            out.iter().all(|piece| piece.len() <= MAX_EVENT_BYTES && piece.ends_with(CONTINUATION_MARKER))
        );
        let back: String =
            out.iter().map(|piece| piece.strip_suffix(CONTINUATION_MARKER).unwrap_or(piece)).collect();
        assert_eq!(back, long);
    }

    proptest! {
        /// Any object serde_json writes is embedded byte for byte as serde_json would.
        #[test]
        fn envelope_json_matches_serde_json(
            entries in prop::collection::btree_map("\\PC{0,6}", prop_oneof![
                any::<i64>().prop_map(serde_json::Value::from),
                "\\PC{0,12}".prop_map(serde_json::Value::from),
                any::<bool>().prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
            ], 0..6),
        ) {
            let object = serde_json::to_string(&serde_json::Value::Object(entries.into_iter().collect())).expect("JSON");
            let extra = extra();
            let meta = MessageMeta { extra: &extra, ..META };
            let mut out = Vec::new();
            MessageEncoder::with_format(&meta, MessageFormat::EnvelopeJson).encode(&object, false, &mut out);
            prop_assert_eq!(&out[0], &json_expected(&object, &meta));
        }
    }

    proptest! {
        // Few cases: each builds and parses several MiB.
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn long_lines_round_trip(
            runs in prop::collection::vec((tricky_unit(), 1usize..150_000), 1..8),
            continued: bool,
        ) {
            let log: String = runs.iter().map(|(unit, count)| unit.repeat(*count)).collect();
            let (_, reassembled) = round_trip(&log, continued);
            prop_assert_eq!(reassembled, log);
        }
    }
}
