//! Self-verifying log lines.
//!
//! A payload line is an ASCII header naming the run, pod, container, sequence number and
//! line class, then padding derived deterministically from (run, pod, container, seq) up to the class's
//! byte length:
//!
//! ```text
//! run=<run> pod=<pod> ctr=<container> seq=<seq> cls=<class> pad=<padding>
//! ```
//!
//! The header alone lets [`Payload::verify`] regenerate the whole line, so a delivered
//! message proves its own integrity. Classes straddle the runtime's 16 KiB split and the
//! shipper's 1 MiB event limit; the unicode flavour puts a 4-byte character across the
//! 16,384-byte boundary (containerd splits inside it), the invalid flavour carries stray
//! bytes the shipper must repair to U+FFFD, one per byte.

use std::fmt;

/// Start of every payload line. The padding never contains `=`, so a later piece of a
/// line that was split for size never starts with it.
pub const HEADER_PREFIX: &str = "run=";

/// Byte length of a line, excluding its newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum SizeClass {
    /// The header and an 8-byte check padding.
    Minimal,
    /// 100 bytes.
    B100,
    /// 16,383 bytes: one below the CRI split.
    K16Minus1,
    /// 16,384 bytes: exactly one full CRI record.
    K16,
    /// 16,385 bytes: one `P` record and a 1-byte `F` record.
    K16Plus1,
    /// 256 KiB: many `P` records, one CloudWatch event.
    K256,
    /// 1 MiB + 4 KiB: more than one CloudWatch event may hold.
    OverMiB,
}

impl SizeClass {
    /// Every size class, smallest first.
    pub const ALL: [SizeClass; 7] = [
        SizeClass::Minimal,
        SizeClass::B100,
        SizeClass::K16Minus1,
        SizeClass::K16,
        SizeClass::K16Plus1,
        SizeClass::K256,
        SizeClass::OverMiB,
    ];

    /// Target byte length; `None` for [`SizeClass::Minimal`] (header + 8 bytes). A header
    /// longer than the target wins: the line is then the header and 8 bytes of padding.
    pub fn target_len(self) -> Option<usize> {
        match self {
            SizeClass::Minimal => None,
            SizeClass::B100 => Some(100),
            SizeClass::K16Minus1 => Some(16_383),
            SizeClass::K16 => Some(16_384),
            SizeClass::K16Plus1 => Some(16_385),
            SizeClass::K256 => Some(262_144),
            SizeClass::OverMiB => Some(1_048_576 + 4_096),
        }
    }

    fn code(self) -> &'static str {
        match self {
            SizeClass::Minimal => "min",
            SizeClass::B100 => "100",
            SizeClass::K16Minus1 => "16k-1",
            SizeClass::K16 => "16k",
            SizeClass::K16Plus1 => "16k+1",
            SizeClass::K256 => "256k",
            SizeClass::OverMiB => "1m+",
        }
    }
}

/// What the padding is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Charset {
    /// `[a-z0-9]`.
    Ascii,
    /// Mixed 1- to 4-byte characters, one 4-byte character across byte 16,384.
    Unicode,
    /// ASCII with stray invalid bytes (`0xFF`, `0xFE`, `0x80`, `0xC0`): always the first
    /// padding byte, byte 16,384, and about one in 97 others.
    InvalidUtf8,
}

impl Charset {
    /// Every charset.
    pub const ALL: [Charset; 3] = [Charset::Ascii, Charset::Unicode, Charset::InvalidUtf8];

    fn code(self) -> &'static str {
        match self {
            Charset::Ascii => "a",
            Charset::Unicode => "u",
            Charset::InvalidUtf8 => "x",
        }
    }
}

/// Size and charset of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct LineClass {
    /// Byte length.
    pub size: SizeClass,
    /// Padding alphabet.
    pub charset: Charset,
}

impl LineClass {
    /// Plain ASCII line of the given size.
    pub fn ascii(size: SizeClass) -> Self {
        LineClass { size, charset: Charset::Ascii }
    }

    fn parse(code: &str) -> Option<Self> {
        let (size, charset) = code.rsplit_once('.')?;
        Some(LineClass {
            size: *SizeClass::ALL.iter().find(|s| s.code() == size)?,
            charset: *Charset::ALL.iter().find(|c| c.code() == charset)?,
        })
    }
}

impl fmt::Display for LineClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.size.code(), self.charset.code())
    }
}

/// Identity of one written line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct LineKey {
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Sequence number within (pod, container).
    pub seq: u64,
}

/// What [`Payload::verify`] proved about an intact line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Run id from the header.
    pub run: String,
    /// Which line it is.
    pub key: LineKey,
    /// Its class.
    pub class: LineClass,
}

/// Why a text is not an intact payload line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub enum Corrupt {
    /// The header is missing or malformed.
    #[error("no payload header: {reason}")]
    NoHeader {
        /// What is wrong with it.
        reason: String,
    },
    /// The header is fine but the text differs from the line it names.
    #[error(
        "{key:?}: expected {expected_len} bytes, got {actual_len}, first difference at byte {first_difference}"
    )]
    Mismatch {
        /// The line the header names.
        key: LineKey,
        /// Length of the expected (repaired) text.
        expected_len: usize,
        /// Length of the text received.
        actual_len: usize,
        /// Offset of the first differing byte.
        first_difference: usize,
    },
}

/// An invalid argument to [`Payload::line`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid payload {field} {value:?}: must be non-empty ASCII without spaces or '='")]
pub struct InvalidField {
    /// Which field.
    pub field: &'static str,
    /// The rejected value.
    pub value: String,
}

/// Generator and verifier of payload lines.
#[derive(Debug, Clone, Copy)]
pub struct Payload;

impl Payload {
    /// The raw bytes a container writes for line `seq` (no newline).
    pub fn line(
        run: &str,
        pod: &str,
        container: &str,
        seq: u64,
        class: LineClass,
    ) -> Result<Vec<u8>, InvalidField> {
        for (field, value) in [("run", run), ("pod", pod), ("container", container)] {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
                return Err(InvalidField { field, value: value.to_owned() });
            }
        }
        Ok(build(run, pod, container, seq, class))
    }

    /// The text the shipper must deliver for `raw`: invalid UTF-8 repaired to U+FFFD.
    pub fn expected_text(raw: &[u8]) -> String {
        String::from_utf8_lossy(raw).into_owned()
    }

    /// The line's identity from its header, without checking the padding.
    pub fn parse_header(text: &str) -> Result<(String, LineKey, LineClass), Corrupt> {
        let no_header = |reason: &str| Corrupt::NoHeader { reason: reason.to_owned() };
        let mut fields = text.splitn(6, ' ');
        let mut next = |name: &str| {
            fields
                .next()
                .and_then(|field| field.strip_prefix(name))
                .and_then(|field| field.strip_prefix('='))
                .ok_or_else(|| no_header(&format!("field {name} missing")))
        };
        let run = next("run")?.to_owned();
        let pod = next("pod")?.to_owned();
        let container = next("ctr")?.to_owned();
        let seq = next("seq")?.parse().map_err(|_| no_header("seq is not a number"))?;
        let class = LineClass::parse(next("cls")?).ok_or_else(|| no_header("unknown class"))?;
        next("pad")?;
        Ok((run, LineKey { pod, container, seq }, class))
    }

    /// The identity of the payload header found at the start of `text` or at the start of a
    /// word further on (a stack trace's exception line carries it after `ValueError: `).
    /// The first header that parses wins.
    pub fn locate_header(text: &str) -> Result<(String, LineKey, LineClass), Corrupt> {
        let first = Self::parse_header(text);
        if first.is_ok() {
            return first;
        }
        text.match_indices(HEADER_PREFIX)
            .filter(|(at, _)| *at > 0 && matches!(text.as_bytes()[at - 1], b' ' | b'\n' | b'\t'))
            .find_map(|(at, _)| Self::parse_header(&text[at..]).ok())
            .ok_or_else(|| first.err().unwrap_or(Corrupt::NoHeader { reason: "no header".into() }))
    }

    /// Line `seq` written as a JSON object (`encoding = "json"`): the payload (repaired, as
    /// text) in `msg`. Keys in a fixed order, compact, no newline.
    pub fn json_line(
        run: &str,
        pod: &str,
        container: &str,
        seq: u64,
        class: LineClass,
    ) -> Result<String, InvalidField> {
        let msg = Self::expected_text(&Self::line(run, pod, container, seq, class)?);
        let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        Ok(format!(r#"{{"level":"info","logger":{},"msg":{},"seq":{seq}}}"#, quote(container), quote(&msg)))
    }

    /// Check that `text` is exactly the (repaired) line its header names.
    pub fn verify(text: &str) -> Result<Verified, Corrupt> {
        let (run, key, class) = Self::parse_header(text)?;
        let expected = Self::expected_text(&build(&run, &key.pod, &key.container, key.seq, class));
        if expected != text {
            return Err(mismatch(key, &expected, text));
        }
        Ok(Verified { run, key, class })
    }
}

/// Describe how `actual` differs from `expected`.
pub(crate) fn mismatch(key: LineKey, expected: &str, actual: &str) -> Corrupt {
    let first_difference = expected
        .bytes()
        .zip(actual.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    Corrupt::Mismatch { key, expected_len: expected.len(), actual_len: actual.len(), first_difference }
}

/// Byte offset of the CRI split that the unicode/invalid flavours aim at.
const SPLIT_AT: usize = 16_384;

/// Padding bytes every line carries, whatever its class.
const MIN_PADDING: usize = 8;

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const WIDE_CHARS: [&str; 5] = ["é", "ж", "€", "漢", "🦀"];
const INVALID_BYTES: [u8; 4] = [0xFF, 0xFE, 0x80, 0xC0];

fn build(run: &str, pod: &str, container: &str, seq: u64, class: LineClass) -> Vec<u8> {
    let header = format!("run={run} pod={pod} ctr={container} seq={seq} cls={class} pad=");
    // At least a few bytes of padding, so that tampering with the header is detectable.
    let target = class.size.target_len().unwrap_or(0).max(header.len() + MIN_PADDING);
    let mut line = Vec::with_capacity(target);
    line.extend_from_slice(header.as_bytes());
    let identity = fnv1a(&[run.as_bytes(), pod.as_bytes(), container.as_bytes()]);
    let mut rng = SplitMix64(identity ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    match class.charset {
        Charset::Ascii => fill_ascii(&mut line, target, &mut rng),
        Charset::Unicode => fill_unicode(&mut line, target, &mut rng),
        Charset::InvalidUtf8 => fill_invalid(&mut line, target, &mut rng),
    }
    line
}

fn fill_ascii(line: &mut Vec<u8>, target: usize, rng: &mut SplitMix64) {
    while line.len() < target {
        line.push(ALPHABET[rng.below(ALPHABET.len())]);
    }
}

fn fill_unicode(line: &mut Vec<u8>, target: usize, rng: &mut SplitMix64) {
    let crab = WIDE_CHARS[4];
    // The crab spans bytes 16,381..16,385 (3 bytes before the split, 1 after) when the
    // line is long enough to hold it, as the 16,385-byte class is.
    let straddle = SPLIT_AT - 3;
    let straddles = target >= straddle + crab.len() && line.len() <= straddle;
    while line.len() < target {
        let len = line.len();
        if straddles && len == straddle {
            line.extend_from_slice(crab.as_bytes());
            continue;
        }
        let choice = rng.below(WIDE_CHARS.len() * 2);
        let piece = match WIDE_CHARS.get(choice) {
            Some(wide) => wide.as_bytes(),
            None => &ALPHABET[choice..=choice],
        };
        let crosses_straddle = straddles && len < straddle && len + piece.len() > straddle;
        if piece.len() > 1 && (len + piece.len() > target || crosses_straddle) {
            line.push(ALPHABET[rng.below(ALPHABET.len())]);
        } else {
            line.extend_from_slice(piece);
        }
    }
}

fn fill_invalid(line: &mut Vec<u8>, target: usize, rng: &mut SplitMix64) {
    // The first padding byte is always stray, so even the smallest line needs repair.
    let first = line.len();
    while line.len() < target {
        let len = line.len();
        let stray = len == first || len == SPLIT_AT || rng.below(97) == 0;
        if stray {
            line.push(INVALID_BYTES[rng.below(INVALID_BYTES.len())]);
        } else {
            line.push(ALPHABET[rng.below(ALPHABET.len())]);
        }
    }
}

/// splitmix64: a tiny, well-mixed deterministic stream.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// FNV-1a over the parts, each followed by a 0 byte (so `("ab","c") != ("a","bc")`).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .flat_map(|part| part.iter().chain(&[0]))
        .fold(0xCBF2_9CE4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01B3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_class() -> impl Strategy<Value = LineClass> {
        (proptest::sample::select(SizeClass::ALL.to_vec()), proptest::sample::select(Charset::ALL.to_vec()))
            .prop_map(|(size, charset)| LineClass { size, charset })
    }

    #[test]
    fn every_class_has_its_exact_length_and_round_trips() {
        for size in SizeClass::ALL {
            for charset in Charset::ALL {
                let class = LineClass { size, charset };
                let raw = Payload::line("r1", "web-0", "app", 7, class).unwrap();
                if let Some(len) = size.target_len().filter(|len| *len > 60) {
                    assert_eq!(raw.len(), len, "{class}");
                }
                assert!(!raw.contains(&b'\n'), "{class}");
                let text = Payload::expected_text(&raw);
                assert_eq!(std::str::from_utf8(&raw).is_ok(), charset != Charset::InvalidUtf8);
                let verified = Payload::verify(&text).unwrap();
                assert_eq!(verified.key.pod, "web-0");
                assert_eq!(verified.key.seq, 7);
                assert_eq!(verified.class, class);
            }
        }
    }

    #[test]
    fn unicode_and_invalid_flavours_straddle_the_cri_split() {
        let unicode = Payload::line(
            "r",
            "p",
            "c",
            1,
            LineClass { size: SizeClass::K16Plus1, charset: Charset::Unicode },
        )
        .unwrap();
        assert_eq!(&unicode[16_381..16_385], "🦀".as_bytes());
        assert!(std::str::from_utf8(&unicode[..16_384]).is_err(), "split must cut the crab");
        let invalid = Payload::line(
            "r",
            "p",
            "c",
            1,
            LineClass { size: SizeClass::K16Plus1, charset: Charset::InvalidUtf8 },
        )
        .unwrap();
        assert!(INVALID_BYTES.contains(&invalid[16_384]));
        let repaired = Payload::expected_text(&invalid);
        let strays = invalid.iter().filter(|b| INVALID_BYTES.contains(b)).count();
        assert_eq!(repaired.matches('\u{FFFD}').count(), strays);
    }

    #[test]
    fn padding_never_contains_the_header_separator() {
        for charset in Charset::ALL {
            let raw = Payload::line("r", "p", "c", 3, LineClass { size: SizeClass::K256, charset }).unwrap();
            let pad_start = raw.windows(4).position(|w| w == b"pad=").unwrap() + 4;
            assert!(!raw[pad_start..].contains(&b'='));
            assert!(!raw[pad_start..].contains(&b' '));
        }
    }

    #[test]
    fn invalid_fields_are_rejected() {
        assert!(Payload::line("a b", "p", "c", 0, LineClass::ascii(SizeClass::B100)).is_err());
        assert!(Payload::line("r", "", "c", 0, LineClass::ascii(SizeClass::B100)).is_err());
        assert!(Payload::line("r", "p", "c=d", 0, LineClass::ascii(SizeClass::B100)).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn verify_round_trips(run in "[a-z0-9]{1,12}", pod in "[a-z0-9-]{1,20}", seq in any::<u64>(), class in any_class()) {
            let raw = Payload::line(&run, &pod, "ctr", seq, class).unwrap();
            let verified = Payload::verify(&Payload::expected_text(&raw)).unwrap();
            prop_assert_eq!(verified.run, run);
            prop_assert_eq!(verified.key, LineKey { pod, container: "ctr".into(), seq });
            prop_assert_eq!(verified.class, class);
        }

        #[test]
        fn any_changed_byte_is_detected(seq in any::<u64>(), at in any::<prop::sample::Index>(), class in any_class()) {
            let text = Payload::expected_text(&Payload::line("run", "pod", "ctr", seq, class).unwrap());
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len());
            // Replace one ASCII byte with another ASCII byte: still valid UTF-8.
            prop_assume!(bytes[i].is_ascii());
            bytes[i] = if bytes[i] == b'#' { b'%' } else { b'#' };
            let tampered = String::from_utf8(bytes).unwrap();
            prop_assert!(Payload::verify(&tampered).is_err());
        }

        #[test]
        fn truncation_is_detected(seq in any::<u64>(), cut in 1usize..200, class in any_class()) {
            let text = Payload::expected_text(&Payload::line("run", "pod", "ctr", seq, class).unwrap());
            let mut end = text.len().saturating_sub(cut);
            while !text.is_char_boundary(end) { end -= 1; }
            prop_assume!(end < text.len());
            prop_assert!(Payload::verify(&text[..end]).is_err());
        }
    }
}
