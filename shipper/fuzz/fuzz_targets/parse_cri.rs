//! Arbitrary bytes as one CRI line: parsing never panics, and a parsed message is the
//! line's tail, borrowed (the parser promises not to allocate).
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use shipper::parse::{Format, detect_format, parse_record};

fuzz_target!(|line: &[u8]| {
    if let Ok(record) = parse_record(Format::Cri, line) {
        assert!(matches!(record.message, Cow::Borrowed(_)), "CRI messages are borrowed");
        assert!(line.ends_with(&record.message), "the message is the line's tail");
        assert_eq!(detect_format(line), Some(Format::Cri));
    }
});
