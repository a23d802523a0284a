//! Multiline: grouping consecutive lines of a stack trace into one event.
//!
//! A [`Detector`] is a small state machine of regex rules, in Fluent Bit's multiline model
//! (see `machine.rs`): five are built in ([`Detector::BUILTIN`]: `java`, `python`, `go`,
//! `ruby`, `dotnet`, rules and their sources in `builtin.rs`), and users write their own
//! from one or two patterns ([`CustomDetector`]). A [`Combiner`] per file runs it over
//! each stream's lines, as they come out of the [`crate::parse::Assembler`].
//!
//! What holds whatever the input:
//! - Nothing is lost, reordered within a stream, or altered: splitting a stream's emitted
//!   events on their `"\n"` joins gives back exactly its input lines, in order.
//! - A group never mixes streams, never has more than `max_lines` lines or `max_bytes`
//!   bytes (a single longer line goes out alone, as it is).
//! - Lines that are not part of a trace go out at once; a trace goes out as soon as it is
//!   known to be complete, at the latest `flush_timeout` after its last line.
//! - No checkpoint is needed inside a held group: [`Combiner::pending_since`].
//! - No clock is read: time comes from the callers' `now`.
//!
//! Using it (per file, after the assembler): push every line with its first record's offset;
//! checkpoint no further than the least of the read offset,
//! [`crate::parse::Assembler::pending_since`] and [`Combiner::pending_since`]; wake up at
//! [`Combiner::next_deadline`] to call [`Combiner::flush_expired`]; when the file rotates,
//! [`Combiner::take_open`] from the old file's combiner and [`Combiner::adopt`] into the new
//! one's; [`Combiner::flush`] when a file is done for good.
//!
//! - `machine.rs`: the state machine and its rules
//! - `builtin.rs`: the built-in rule tables
//! - `detector.rs`: [`Detector`], [`Limits`], [`CustomDetector`], [`MultilineError`]
//! - `combine.rs`: [`Combiner`]

mod builtin;
mod combine;
mod detector;
mod machine;

pub use combine::{Combiner, Flushes, OpenGroups, Stats};
pub use detector::{CustomDetector, Detector, Limits, MultilineError};

#[cfg(test)]
mod tests;
