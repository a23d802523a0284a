//! The durable spool between routing and sending (DESIGN §2 "The spool").
//!
//! A chunk is a future PutLogEvents request: per destination stream an ordered chain of
//! chunk files of length-prefixed, checksummed records. Chunks are sealed at write time when
//! the next event would break a PutLogEvents rule or when the flush interval passes. Group
//! commit fsyncs touched chunks and atomically replaces one manifest that also carries the
//! source checkpoints (an opaque blob), so a checkpoint never runs ahead of durability.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::route::Destination;

/// PutLogEvents: max bytes per batch, counting `EVENT_OVERHEAD_BYTES` per event.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// PutLogEvents: per-event overhead counted against `MAX_BATCH_BYTES`.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// PutLogEvents: max events per batch.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// PutLogEvents: max span between the oldest and newest event of a batch.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;

/// Tunables.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// Size cap: at or above it `is_full()` is true and readers pause.
    pub max_bytes: u64,
    /// An open chunk older than this is sealed by `seal_expired`.
    pub flush_interval: Duration,
}

/// One event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The message (the contract's JSON object).
    pub message: String,
}

/// A chunk read back: one PutLogEvents request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Where it goes.
    pub dest: Arc<Destination>,
    /// Events in spool order (the sender sorts by timestamp).
    pub events: Vec<Event>,
}

/// A sealed, committed chunk ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    /// The stream's stable id (also its directory name).
    pub stream_id: String,
    /// Position in the stream's chain.
    pub seq: u64,
    /// The chunk file.
    pub path: PathBuf,
    /// Where it goes.
    pub dest: Arc<Destination>,
}

/// What recovery found and did.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The source state stored by the last successful commit.
    pub source_state: Option<Vec<u8>>,
    /// Uncommitted bytes cut off chunk tails (their lines will be re-read from the sources).
    pub truncated_bytes: u64,
    /// Files moved aside because they failed checks.
    pub quarantined: Vec<PathBuf>,
    /// Committed records that failed their checksum (counted as `spool_corrupt` drops).
    pub corrupt_events: u64,
}

/// Spool failures, with the file involved.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// An I/O operation on a spool file failed.
    #[error("spool I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The spool.
#[derive(Debug)]
pub struct Spool {
    _private: (),
}

impl Spool {
    /// Open (creating if needed) the spool in `dir`, recovering from any crash.
    pub fn open(_dir: &Path, _options: SpoolOptions) -> Result<(Spool, Recovery), SpoolError> {
        unimplemented!("spool::Spool::open")
    }

    /// Append one event to `dest`'s open chunk (sealing it first if this event would break a
    /// PutLogEvents rule). Not durable until the next `commit`.
    pub fn append(
        &mut self,
        _dest: &Destination,
        _timestamp_ms: i64,
        _message: &str,
    ) -> Result<(), SpoolError> {
        unimplemented!("spool::Spool::append")
    }

    /// Seal every open chunk opened before `now - flush_interval`.
    pub fn seal_expired(&mut self, _now: Instant) {
        unimplemented!("spool::Spool::seal_expired")
    }

    /// Seal every open chunk (shutdown, tests).
    pub fn seal_all(&mut self) {
        unimplemented!("spool::Spool::seal_all")
    }

    /// Group commit: fsync what was appended since the last commit, then atomically store the
    /// manifest with `source_state`.
    pub fn commit(&mut self, _source_state: &[u8]) -> Result<(), SpoolError> {
        unimplemented!("spool::Spool::commit")
    }

    /// For each stream, its oldest sealed and committed chunk, skipping streams in `busy`.
    pub fn ready(&self, _busy: &dyn Fn(&str) -> bool) -> Vec<ChunkRef> {
        unimplemented!("spool::Spool::ready")
    }

    /// Read a chunk back (chunk files are immutable once sealed: no lock needed).
    pub fn read(_chunk: &ChunkRef) -> Result<Batch, SpoolError> {
        unimplemented!("spool::Spool::read")
    }

    /// CloudWatch accepted (or explicitly dropped) every event of the chunk: free it.
    pub fn ack(&mut self, _chunk: &ChunkRef) -> Result<(), SpoolError> {
        unimplemented!("spool::Spool::ack")
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        unimplemented!("spool::Spool::bytes")
    }

    /// Events held.
    pub fn events(&self) -> u64 {
        unimplemented!("spool::Spool::events")
    }

    /// At or above the size cap.
    pub fn is_full(&self) -> bool {
        unimplemented!("spool::Spool::is_full")
    }
}
