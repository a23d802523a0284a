//! `shipper` binary: see `shipper --help`.
fn main() {}
