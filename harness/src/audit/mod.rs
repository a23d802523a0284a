//! The no-loss audit (`reference/no-loss-audit.md`): self-verifying payload lines, a ledger
//! of what was written, a full read-back of the backend and the verdict comparing them.
//!
//! Expectations come only from the ledger and the payloads: nothing here imports the
//! shipper, so a shipper bug cannot hide in a shared helper.

pub mod groups;
pub mod identity;
mod payload;
mod read;
mod trace;
mod verdict;

pub use payload::{
    Charset, Corrupt, HEADER_PREFIX, InvalidField, LineClass, LineKey, Payload, SizeClass, Verified,
};
pub use read::{Delivered, DeliveredEvent, ReadError, read_all};
pub use trace::{TRACE_HEADER_CLASS, TraceKind};
pub use verdict::{
    CONTINUATION_MARKER, Finding, Ledger, SeqRange, SourceCounts, SourceKey, StreamCounts, Verdict, verdict,
    verdict_for,
};

#[cfg(test)]
mod tests;
