//! Merging partial records into lines, per stream, with a cap on the bytes held per line.
//!
//! stdout and stderr interleave in one file, so each stream has its own line in progress: a
//! `P` run of stdout is not broken by stderr records. Bytes are decoded to UTF-8 as they
//! arrive, keeping an incomplete trailing character (at most 3 bytes) aside until the next
//! record of the stream completes it; so a multibyte character split across two `P` records
//! survives, and the text of a line is exactly `String::from_utf8_lossy` of all its bytes.
//! Decoding incrementally also makes the cap exact: a line's text never exceeds
//! `max_line_bytes` (after repair), and cuts always fall on character boundaries.

use std::borrow::Cow;

use super::{Line, Record, Stream};

/// A cap below the longest UTF-8 character could not always cut at a character boundary.
const MIN_LINE_BYTES: usize = 4;

/// Merges partial records into lines, per stream, bounded by `max_line_bytes`.
#[derive(Debug)]
pub struct Assembler {
    max_line_bytes: usize,
    /// The line in progress of each stream, indexed by [`slot`].
    pending: [PendingLine; 2],
}

impl Assembler {
    /// A new assembler that never holds more than `max_line_bytes` of one line (at least 4,
    /// so that any UTF-8 character fits; smaller values are raised to 4).
    pub fn new(max_line_bytes: usize) -> Self {
        Assembler {
            max_line_bytes: max_line_bytes.max(MIN_LINE_BYTES),
            pending: [PendingLine::default(), PendingLine::default()],
        }
    }

    /// Feed one record that started at byte `offset` of its file; complete lines go to `out`.
    ///
    /// A line longer than `max_line_bytes` goes out in pieces as it arrives: every piece but
    /// the last has `continued: true`, all carry the timestamp of the line's first record.
    pub fn push(&mut self, record: Record<'_>, offset: u64, out: &mut Vec<Line>) {
        let cap = self.max_line_bytes;
        let stream = record.stream;
        let line = &mut self.pending[slot(stream)];
        let mut message = record.message;
        if !line.open {
            // The common case, a whole line in one record: at most one allocation (none for
            // an owned, valid message) and no copy into the pending buffer.
            if !record.partial && message.len() <= cap {
                match into_valid_string(message) {
                    Ok(text) => {
                        out.push(Line {
                            timestamp_ms: record.timestamp_ms,
                            stream,
                            text,
                            invalid_utf8: false,
                            continued: false,
                        });
                        return;
                    }
                    Err(bytes) => message = bytes,
                }
            }
            line.open = true;
            line.timestamp_ms = record.timestamp_ms;
            line.first_offset = offset;
        }
        line.extend(&message, cap, stream, out);
        if !record.partial {
            line.finish(cap, stream, out);
        }
    }

    /// File offset of the first record of the oldest unfinished line, if any. A checkpoint
    /// must not advance past it, so a restart re-reads the whole unfinished line.
    ///
    /// This stays at the line's first record even after `continued` pieces of it went out,
    /// so a restart re-emits those pieces (identically, for the same cap): duplicates, never
    /// loss.
    pub fn pending_since(&self) -> Option<u64> {
        self.pending.iter().filter(|line| line.open).map(|line| line.first_offset).min()
    }

    /// File offset of the first record of `stream`'s unfinished line, if one is open: where
    /// the next line this stream completes started.
    pub fn open_since(&self, stream: Stream) -> Option<u64> {
        let line = &self.pending[slot(stream)];
        line.open.then_some(line.first_offset)
    }

    /// Bytes of text held for unfinished lines.
    pub fn pending_bytes(&self) -> usize {
        self.pending.iter().filter(|line| line.open).map(|line| line.text.len()).sum()
    }

    /// Emit what unfinished lines hold as `continued` pieces now, keeping the lines open:
    /// their rest follows as more pieces, exactly as a line over the cap goes out. For when
    /// memory, not the line, says so.
    pub fn release_pieces(&mut self, out: &mut Vec<Line>) {
        let cap = self.max_line_bytes;
        for (line, stream) in self.pending.iter_mut().zip([Stream::Stdout, Stream::Stderr]) {
            while line.open && !line.text.is_empty() {
                line.emit_piece(cap, stream, true, out);
            }
        }
    }

    /// Emit whatever is pending as complete lines (the file ended for good), oldest first.
    pub fn flush(&mut self, out: &mut Vec<Line>) {
        let cap = self.max_line_bytes;
        let [stdout, stderr] = &mut self.pending;
        let mut lines = [(stdout, Stream::Stdout), (stderr, Stream::Stderr)];
        lines.sort_by_key(|(line, _)| line.first_offset);
        for (line, stream) in lines {
            if line.open {
                line.finish(cap, stream, out);
            }
        }
    }
}

/// Index of a stream's line in progress.
fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// The message as a `String` if it is valid UTF-8 (moving an owned buffer, not copying it);
/// otherwise the bytes back.
fn into_valid_string(message: Cow<'_, [u8]>) -> Result<String, Cow<'_, [u8]>> {
    match message {
        Cow::Borrowed(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(Cow::Borrowed(bytes)),
        },
        Cow::Owned(bytes) => String::from_utf8(bytes).map_err(|invalid| Cow::Owned(invalid.into_bytes())),
    }
}

/// One stream's line in progress.
#[derive(Debug, Default)]
struct PendingLine {
    /// A line is in progress (possibly with no bytes yet: `P` with an empty message).
    open: bool,
    /// Timestamp of the line's first record.
    timestamp_ms: i64,
    /// File offset of the line's first record.
    first_offset: u64,
    /// Decoded text not yet emitted; at most the cap between calls.
    text: String,
    /// An incomplete UTF-8 character at the end of the bytes so far (`carry[..carry_len]`).
    carry: [u8; 4],
    carry_len: usize,
    /// `text` holds a U+FFFD that replaced invalid bytes.
    repaired: bool,
}

impl PendingLine {
    /// Append `bytes`, emitting `continued` pieces whenever the text would exceed `cap`.
    fn extend(&mut self, mut bytes: &[u8], cap: usize, stream: Stream, out: &mut Vec<Line>) {
        while !bytes.is_empty() {
            let room = cap.saturating_sub(self.text.len());
            if room == 0 {
                // More of this line follows, so what we hold is a complete piece.
                self.emit_piece(cap, stream, true, out);
                continue;
            }
            // Decoding at most `room` bytes bounds the buffer: repair can at most triple
            // them (one byte → U+FFFD), and the excess is cut off right away.
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.decode(now);
            bytes = later;
            while self.text.len() > cap {
                self.emit_piece(cap, stream, true, out);
            }
        }
    }

    /// The line ended: repair a dangling incomplete character and emit the rest.
    fn finish(&mut self, cap: usize, stream: Stream, out: &mut Vec<Line>) {
        if self.carry_len > 0 {
            self.carry_len = 0;
            self.push_replacement();
            while self.text.len() > cap {
                self.emit_piece(cap, stream, true, out);
            }
        }
        self.emit_piece(cap, stream, false, out);
        self.open = false;
        self.repaired = false;
    }

    /// Emit the longest prefix of `text` that fits `cap` and ends on a char boundary.
    fn emit_piece(&mut self, cap: usize, stream: Stream, continued: bool, out: &mut Vec<Line>) {
        let mut cut = cap.min(self.text.len());
        // A char is at most 4 bytes and cap >= 4, so this stops at a cut > 0.
        while !self.text.is_char_boundary(cut) {
            cut -= 1;
        }
        let rest = self.text.split_off(cut);
        let text = std::mem::replace(&mut self.text, rest);
        let invalid_utf8 = self.repaired;
        // Conservative: a U+FFFD that was in the input also keeps the flag for the rest.
        self.repaired = self.repaired && self.text.contains(char::REPLACEMENT_CHARACTER);
        out.push(Line { timestamp_ms: self.timestamp_ms, stream, text, invalid_utf8, continued });
    }

    /// Decode `bytes` onto `text` the way `String::from_utf8_lossy` would decode everything
    /// this line received so far, keeping an incomplete trailing character in `carry`.
    fn decode(&mut self, mut bytes: &[u8]) {
        while self.carry_len > 0 && !bytes.is_empty() {
            bytes = self.complete_carry(bytes);
        }
        let mut seen = 0;
        for chunk in bytes.utf8_chunks() {
            self.text.push_str(chunk.valid());
            let invalid = chunk.invalid();
            seen += chunk.valid().len() + invalid.len();
            if invalid.is_empty() {
                continue;
            }
            if seen == bytes.len() && is_incomplete_char(invalid) {
                // The next record may complete it.
                self.carry[..invalid.len()].copy_from_slice(invalid);
                self.carry_len = invalid.len();
            } else {
                self.push_replacement();
            }
        }
    }

    /// Resolve the carried incomplete character with the first bytes of `bytes`; returns
    /// the bytes not consumed.
    fn complete_carry<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        let carried = self.carry_len;
        let mut joined = [0u8; 4];
        let taken = bytes.len().min(4 - carried);
        joined[..carried].copy_from_slice(&self.carry[..carried]);
        joined[carried..carried + taken].copy_from_slice(&bytes[..taken]);
        let joined = &joined[..carried + taken];
        self.carry_len = 0;
        match std::str::from_utf8(joined) {
            Err(e) if e.valid_up_to() == 0 => match e.error_len() {
                // Still incomplete: all of `bytes` (fewer than needed) joins the carry.
                None => {
                    self.carry[..joined.len()].copy_from_slice(joined);
                    self.carry_len = joined.len();
                    &bytes[taken..]
                }
                Some(bad) => {
                    self.push_replacement();
                    if bad >= carried {
                        &bytes[bad - carried..]
                    } else {
                        // Cannot happen for a carry that is a valid prefix; handled anyway
                        // by carrying the undecided rest.
                        let rest = carried - bad;
                        self.carry.copy_within(bad..carried, 0);
                        self.carry_len = rest;
                        bytes
                    }
                }
            },
            // The carried character is complete and valid: take exactly its bytes.
            Ok(text) => self.take_first_char(text, carried, bytes),
            Err(e) => {
                let text = std::str::from_utf8(&joined[..e.valid_up_to()]).unwrap_or_default();
                self.take_first_char(text, carried, bytes)
            }
        }
    }

    /// Push the first char of `text` (the completed carry) and return what it left of `bytes`.
    fn take_first_char<'b>(&mut self, text: &str, carried: usize, bytes: &'b [u8]) -> &'b [u8] {
        match text.chars().next() {
            Some(c) => {
                self.text.push(c);
                &bytes[c.len_utf8().saturating_sub(carried)..]
            }
            None => bytes,
        }
    }

    fn push_replacement(&mut self) {
        self.text.push(char::REPLACEMENT_CHARACTER);
        self.repaired = true;
    }
}

/// `bytes` are the start of a valid UTF-8 character that more bytes could complete.
fn is_incomplete_char(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_err_and(|e| e.valid_up_to() == 0 && e.error_len().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STDOUT: Stream = Stream::Stdout;
    const STDERR: Stream = Stream::Stderr;

    fn rec(stream: Stream, partial: bool, timestamp_ms: i64, message: &[u8]) -> Record<'_> {
        Record { timestamp_ms, stream, partial, message: Cow::Borrowed(message) }
    }

    fn line(stream: Stream, timestamp_ms: i64, text: &str) -> Line {
        Line { timestamp_ms, stream, text: text.to_owned(), invalid_utf8: false, continued: false }
    }

    #[test]
    fn full_records_pass_straight_through() {
        let mut asm = Assembler::new(1024);
        let mut out = Vec::new();
        asm.push(rec(STDOUT, false, 1, b"one"), 0, &mut out);
        asm.push(rec(STDERR, false, 2, b""), 10, &mut out);
        let owned = Record { message: Cow::Owned(b"three".to_vec()), ..rec(STDOUT, false, 3, b"") };
        asm.push(owned, 20, &mut out);
        assert_eq!(out, [line(STDOUT, 1, "one"), line(STDERR, 2, ""), line(STDOUT, 3, "three")]);
        assert_eq!(asm.pending_since(), None);
    }

    #[test]
    fn partial_runs_merge_per_stream_across_interleaving() {
        let mut asm = Assembler::new(1024);
        let mut out = Vec::new();
        asm.push(rec(STDOUT, true, 1, b"out-a "), 100, &mut out);
        asm.push(rec(STDERR, true, 2, b"err-a "), 150, &mut out);
        asm.push(rec(STDERR, false, 3, b"whole err"), 200, &mut out);
        asm.push(rec(STDOUT, true, 4, b"out-b "), 250, &mut out);
        assert_eq!(out, [line(STDERR, 2, "err-a whole err")]);
        asm.push(rec(STDOUT, false, 5, b"out-c"), 300, &mut out);
        // A line's timestamp is its first record's.
        assert_eq!(out[1], line(STDOUT, 1, "out-a out-b out-c"));
    }

    #[test]
    fn pending_since_is_the_oldest_unfinished_lines_first_record() {
        let mut asm = Assembler::new(1024);
        let mut out = Vec::new();
        asm.push(rec(STDOUT, true, 1, b"a"), 100, &mut out);
        assert_eq!(asm.pending_since(), Some(100));
        asm.push(rec(STDERR, true, 1, b"b"), 150, &mut out);
        asm.push(rec(STDOUT, true, 1, b"a"), 200, &mut out);
        assert_eq!(asm.pending_since(), Some(100));
        asm.push(rec(STDOUT, false, 1, b"a"), 250, &mut out);
        assert_eq!(asm.pending_since(), Some(150));
        asm.push(rec(STDERR, false, 1, b"b"), 300, &mut out);
        assert_eq!(asm.pending_since(), None);
        // `P` with an empty message still opens a line.
        asm.push(rec(STDERR, true, 1, b""), 350, &mut out);
        assert_eq!(asm.pending_since(), Some(350));
    }

    #[test]
    fn multibyte_char_split_across_records_survives() {
        let mut asm = Assembler::new(1024);
        let mut out = Vec::new();
        let euro = "€".as_bytes(); // e2 82 ac
        asm.push(rec(STDOUT, true, 1, &euro[..1]), 0, &mut out);
        asm.push(rec(STDOUT, true, 1, &euro[1..2]), 10, &mut out);
        asm.push(rec(STDOUT, false, 1, &euro[2..]), 20, &mut out);
        assert_eq!(out, [line(STDOUT, 1, "€")]);
    }

    #[test]
    fn invalid_bytes_are_repaired_and_flagged() {
        let mut asm = Assembler::new(1024);
        let mut out = Vec::new();
        asm.push(rec(STDOUT, false, 1, b"a\xffb"), 0, &mut out);
        // An incomplete char that the line's end never completes.
        asm.push(rec(STDERR, true, 2, b"x\xe2\x82"), 10, &mut out);
        asm.push(rec(STDERR, false, 2, b""), 20, &mut out);
        // Completed by a byte that cannot continue it.
        asm.push(rec(STDERR, true, 3, b"\xf0\x9f"), 30, &mut out);
        asm.push(rec(STDERR, false, 3, b"y"), 40, &mut out);
        let repaired = |stream, ts, text: &str| Line { invalid_utf8: true, ..line(stream, ts, text) };
        assert_eq!(
            out,
            [
                repaired(STDOUT, 1, "a\u{FFFD}b"),
                repaired(STDERR, 2, "x\u{FFFD}"),
                repaired(STDERR, 3, "\u{FFFD}y"),
            ]
        );
    }

    #[test]
    fn long_line_is_cut_into_continued_pieces_at_char_boundaries() {
        let mut asm = Assembler::new(5);
        let mut out = Vec::new();
        asm.push(rec(STDOUT, true, 7, b"abcd"), 0, &mut out);
        assert!(out.is_empty(), "4 bytes fit the cap");
        asm.push(rec(STDOUT, true, 8, "é€xyz".as_bytes()), 10, &mut out);
        asm.push(rec(STDOUT, false, 9, b"!"), 20, &mut out);
        let texts: Vec<_> = out.iter().map(|l| (l.text.as_str(), l.continued, l.timestamp_ms)).collect();
        // "abcdé" would be 6 bytes: the cut backs off to before "é".
        assert_eq!(texts, [("abcd", true, 7), ("é€", true, 7), ("xyz!", false, 7)]);
    }

    #[test]
    fn a_whole_record_over_the_cap_is_cut_too() {
        let mut asm = Assembler::new(4);
        let mut out = Vec::new();
        asm.push(rec(STDERR, false, 1, b"0123456789"), 0, &mut out);
        let texts: Vec<_> = out.iter().map(|l| (l.text.as_str(), l.continued)).collect();
        assert_eq!(texts, [("0123", true), ("4567", true), ("89", false)]);
        assert_eq!(asm.pending_since(), None);
    }

    #[test]
    fn line_of_exactly_the_cap_is_one_line() {
        let mut asm = Assembler::new(4);
        let mut out = Vec::new();
        asm.push(rec(STDOUT, true, 1, b"ab"), 0, &mut out);
        asm.push(rec(STDOUT, true, 1, b"cd"), 10, &mut out);
        asm.push(rec(STDOUT, false, 1, b""), 20, &mut out);
        assert_eq!(out, [line(STDOUT, 1, "abcd")]);
    }

    #[test]
    fn repair_never_pushes_a_piece_over_the_cap() {
        let mut asm = Assembler::new(4);
        let mut out = Vec::new();
        asm.push(rec(STDOUT, false, 1, b"\xff\xff\xff\xff"), 0, &mut out);
        assert!(out.iter().all(|l| l.text.len() <= 4 && l.invalid_utf8));
        let text: String = out.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(text, "\u{FFFD}".repeat(4));
    }

    #[test]
    fn flush_emits_pending_lines_oldest_first() {
        let mut asm = Assembler::new(1024);
        let mut out = Vec::new();
        asm.push(rec(STDERR, true, 1, b"err"), 50, &mut out);
        asm.push(rec(STDOUT, true, 2, b"out\xe2"), 60, &mut out);
        asm.flush(&mut out);
        assert_eq!(
            out,
            [line(STDERR, 1, "err"), Line { invalid_utf8: true, ..line(STDOUT, 2, "out\u{FFFD}") }]
        );
        assert_eq!(asm.pending_since(), None);
        asm.flush(&mut out);
        assert_eq!(out.len(), 2, "a second flush has nothing to emit");
    }

    #[test]
    fn tiny_caps_are_raised_to_fit_any_char() {
        let mut asm = Assembler::new(0);
        let mut out = Vec::new();
        asm.push(rec(STDOUT, false, 1, "😀😀".as_bytes()), 0, &mut out);
        let texts: Vec<_> = out.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["😀", "😀"]);
    }

    /// A stream, its lines, and for each line the points where it is cut into records.
    type StreamLines = (Stream, Vec<Vec<u8>>, Vec<Vec<prop::sample::Index>>);

    /// One record of the generated input: which stream, the bytes, whether it ends its line.
    #[derive(Debug, Clone)]
    struct Piece {
        stream: Stream,
        message: Vec<u8>,
        partial: bool,
        timestamp_ms: i64,
    }

    fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            ".{0,24}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..24),
            // Mostly multibyte text with stray invalid bytes.
            proptest::collection::vec(
                prop_oneof![Just(0xe2u8), Just(0x82), Just(0xac), Just(0xff), Just(b'a')],
                0..24
            ),
        ]
    }

    /// Per stream, lines cut into records at the given points; then both streams' records
    /// interleaved in the order `choices` says (then whatever is left, in order).
    fn records(lines: &[StreamLines], choices: &[bool]) -> Vec<Piece> {
        let mut per_stream: Vec<Vec<Piece>> = Vec::new();
        let mut timestamp_ms = 0;
        for (stream, texts, cuts) in lines {
            let mut pieces = Vec::new();
            for (text, cuts) in texts.iter().zip(cuts.iter().chain(std::iter::repeat(&Vec::new()))) {
                let mut points: Vec<usize> = cuts.iter().map(|i| i.index(text.len() + 1)).collect();
                points.sort_unstable();
                let mut start = 0;
                for point in points.into_iter().chain([text.len()]) {
                    timestamp_ms += 1;
                    pieces.push(Piece {
                        stream: *stream,
                        message: text[start..point].to_vec(),
                        partial: true,
                        timestamp_ms,
                    });
                    start = point;
                }
                if let Some(last) = pieces.last_mut() {
                    last.partial = false;
                }
            }
            per_stream.push(pieces);
        }
        let mut b = per_stream.pop().unwrap_or_default().into_iter();
        let mut a = per_stream.pop().unwrap_or_default().into_iter();
        let mut merged = Vec::new();
        for &take_a in choices {
            let next = if take_a { a.next().or_else(|| b.next()) } else { b.next().or_else(|| a.next()) };
            merged.extend(next);
        }
        merged.extend(a);
        merged.extend(b);
        merged
    }

    fn arbitrary_input() -> impl Strategy<Value = (Vec<StreamLines>, Vec<bool>)> {
        let stream_lines = |stream| {
            (
                Just(stream),
                proptest::collection::vec(line_bytes(), 0..5),
                proptest::collection::vec(
                    proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
                    0..5,
                ),
            )
        };
        (
            (stream_lines(STDOUT), stream_lines(STDERR)).prop_map(|(a, b)| vec![a, b]),
            proptest::collection::vec(any::<bool>(), 0..40),
        )
    }

    /// Feed the records, checking `pending_since` against a model after every push.
    fn assemble(cap: usize, pieces: &[Piece]) -> Result<Vec<Line>, TestCaseError> {
        let mut asm = Assembler::new(cap);
        let mut out = Vec::new();
        let mut open_since: [Option<u64>; 2] = [None, None];
        for (i, piece) in pieces.iter().enumerate() {
            let offset = i as u64 * 100;
            let record = Record {
                timestamp_ms: piece.timestamp_ms,
                stream: piece.stream,
                partial: piece.partial,
                message: Cow::Borrowed(piece.message.as_slice()),
            };
            asm.push(record, offset, &mut out);
            let open = &mut open_since[slot(piece.stream)];
            *open = if piece.partial { Some(open.unwrap_or(offset)) } else { None };
            prop_assert_eq!(asm.pending_since(), open_since.iter().flatten().min().copied());
        }
        Ok(out)
    }

    /// The expected lines of one stream, with the timestamp of each line's first record.
    fn expected(pieces: &[Piece], stream: Stream) -> Vec<(i64, Vec<u8>)> {
        let mut lines = Vec::new();
        let mut current: Option<(i64, Vec<u8>)> = None;
        for piece in pieces.iter().filter(|p| p.stream == stream) {
            let (_, bytes) = current.get_or_insert_with(|| (piece.timestamp_ms, Vec::new()));
            bytes.extend_from_slice(&piece.message);
            if !piece.partial {
                lines.extend(current.take());
            }
        }
        lines
    }

    proptest! {
        #[test]
        fn merge_yields_the_original_lines_per_stream((lines, choices) in arbitrary_input()) {
            let pieces = records(&lines, &choices);
            let out = assemble(usize::MAX, &pieces)?;
            for stream in [STDOUT, STDERR] {
                let got: Vec<_> = out.iter().filter(|l| l.stream == stream).collect();
                let want = expected(&pieces, stream);
                prop_assert_eq!(got.len(), want.len());
                for (line, (timestamp_ms, bytes)) in got.into_iter().zip(want) {
                    prop_assert_eq!(&line.text, &String::from_utf8_lossy(&bytes));
                    prop_assert_eq!(line.invalid_utf8, std::str::from_utf8(&bytes).is_err());
                    prop_assert_eq!(line.timestamp_ms, timestamp_ms);
                    prop_assert!(!line.continued);
                }
            }
        }

        #[test]
        fn capped_pieces_concatenate_to_the_original_line(
            (lines, choices) in arbitrary_input(),
            cap in 4usize..12,
        ) {
            let pieces = records(&lines, &choices);
            let out = assemble(cap, &pieces)?;
            for stream in [STDOUT, STDERR] {
                let mut got: Vec<(i64, String)> = Vec::new();
                let mut joining = false;
                for line in out.iter().filter(|l| l.stream == stream) {
                    prop_assert!(line.text.len() <= cap, "{:?} over cap {}", line.text, cap);
                    if joining {
                        let (timestamp_ms, text) = got.last_mut().ok_or_else(|| TestCaseError::fail("no line"))?;
                        prop_assert_eq!(*timestamp_ms, line.timestamp_ms);
                        text.push_str(&line.text);
                    } else {
                        got.push((line.timestamp_ms, line.text.clone()));
                    }
                    joining = line.continued;
                }
                prop_assert!(!joining, "last piece of a stream is continued");
                let want: Vec<(i64, String)> = expected(&pieces, stream)
                    .into_iter()
                    .map(|(ts, bytes)| (ts, String::from_utf8_lossy(&bytes).into_owned()))
                    .collect();
                prop_assert_eq!(got, want);
            }
        }

        #[test]
        fn flush_completes_every_unfinished_line(
            (lines, choices) in arbitrary_input(),
            keep in 0usize..40,
        ) {
            // Cut the file short: unfinished lines must come out on flush, nothing else.
            let mut pieces = records(&lines, &choices);
            pieces.truncate(keep);
            let mut asm = Assembler::new(usize::MAX);
            let mut out = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                let record = Record {
                    timestamp_ms: piece.timestamp_ms,
                    stream: piece.stream,
                    partial: piece.partial,
                    message: Cow::Borrowed(piece.message.as_slice()),
                };
                asm.push(record, i as u64, &mut out);
            }
            asm.flush(&mut out);
            prop_assert_eq!(asm.pending_since(), None);
            if let Some(last) = pieces.iter_mut().rev().find(|p| p.stream == STDOUT) {
                last.partial = false;
            }
            if let Some(last) = pieces.iter_mut().rev().find(|p| p.stream == STDERR) {
                last.partial = false;
            }
            for stream in [STDOUT, STDERR] {
                let got: Vec<_> = out
                    .iter()
                    .filter(|l| l.stream == stream)
                    .map(|l| (l.timestamp_ms, l.text.clone()))
                    .collect();
                let want: Vec<_> = expected(&pieces, stream)
                    .into_iter()
                    .map(|(ts, bytes)| (ts, String::from_utf8_lossy(&bytes).into_owned()))
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
