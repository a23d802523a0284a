//! Arbitrary bytes as a container log file, parsed line by line and merged by the partial
//! assembler: never panics, never emits a line over its cap, never holds a checkpoint
//! beyond the record being fed, and flushing leaves nothing pending.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shipper::parse::{Assembler, Format, Line, detect_format, parse_record};

fuzz_target!(|input: (u8, &[u8])| {
    let (cap, file) = input;
    // Small caps exercise the cutting; 0..=3 are raised to 4 by the assembler.
    let cap = usize::from(cap);
    let mut assembler = Assembler::new(cap);
    let mut format = None;
    let mut out: Vec<Line> = Vec::new();
    let mut offset = 0u64;
    for line in file.split_inclusive(|b| *b == b'\n') {
        let start = offset;
        offset += line.len() as u64;
        let Some(line) = line.strip_suffix(b"\n") else {
            // An unterminated tail is never handed to the parser.
            break;
        };
        let format = *format.get_or_insert_with(|| detect_format(line).unwrap_or(Format::Cri));
        let Ok(record) = parse_record(format, line) else {
            continue;
        };
        assembler.push(record, start, &mut out);
        if let Some(pending) = assembler.pending_since() {
            assert!(pending <= start, "checkpoint hold {pending} is after the record at {start}");
        }
    }
    assembler.flush(&mut out);
    assert_eq!(assembler.pending_since(), None);
    for line in &out {
        assert!(line.text.len() <= cap.max(4), "{} bytes over a cap of {cap}", line.text.len());
    }
});
