//! Arbitrary bytes as one docker json-file line: parsing never panics, and unescaping never
//! makes a message longer than the line it came from (no amplification).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shipper::parse::{Format, detect_format, parse_record};

fuzz_target!(|line: &[u8]| {
    if let Ok(record) = parse_record(Format::Docker, line) {
        assert!(record.message.len() <= line.len());
        assert_eq!(detect_format(line), Some(Format::Docker));
    }
});
