//! Per-stream state: the chain of chunks, the open chunk and its PutLogEvents accounting.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::chunk::ChunkWriter;
use super::{EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_BATCH_SPAN_MS};
use crate::route::Destination;

/// The stable id (directory name) of a destination: 32 hex digits of SHA-256(group, stream).
pub fn stream_id(dest: &Destination) -> String {
    let mut hasher = Sha256::new();
    hasher.update((dest.group.len() as u64).to_le_bytes());
    hasher.update(dest.group.as_bytes());
    hasher.update(dest.stream.as_bytes());
    let digest = hasher.finalize();
    let mut id = String::with_capacity(32);
    for byte in &digest[..16] {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether `name` looks like a stream directory name.
pub(crate) fn is_stream_id(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| HEX.contains(&b))
}

/// The PutLogEvents totals of a batch being filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    /// Σ(message bytes + 26).
    pub(crate) bytes: usize,
    /// Number of events.
    pub(crate) events: usize,
    /// Oldest timestamp.
    pub(crate) min_ts: i64,
    /// Newest timestamp.
    pub(crate) max_ts: i64,
}

impl BatchLimits {
    /// The totals of a batch holding one event.
    pub(crate) fn first(timestamp_ms: i64, msg_len: usize) -> Self {
        Self { bytes: msg_len + EVENT_OVERHEAD_BYTES, events: 1, min_ts: timestamp_ms, max_ts: timestamp_ms }
    }

    /// The totals with one more event, or `None` if that would break a PutLogEvents rule.
    pub(crate) fn with(&self, timestamp_ms: i64, msg_len: usize) -> Option<Self> {
        let bytes = self.bytes.checked_add(msg_len + EVENT_OVERHEAD_BYTES)?;
        let events = self.events + 1;
        let min_ts = self.min_ts.min(timestamp_ms);
        let max_ts = self.max_ts.max(timestamp_ms);
        // i128: arbitrary i64 timestamps must not overflow the span.
        let span = i128::from(max_ts) - i128::from(min_ts);
        (bytes <= MAX_BATCH_BYTES && events <= MAX_BATCH_EVENTS && span <= i128::from(MAX_BATCH_SPAN_MS))
            .then_some(Self { bytes, events, min_ts, max_ts })
    }
}

/// The batch accounting of the chunk being appended to (`StreamState::chunks.back()`).
#[derive(Debug)]
pub(crate) struct OpenChunk {
    /// When it was created (for `seal_expired`).
    pub(crate) opened_at: Instant,
    /// Its PutLogEvents totals so far.
    pub(crate) limits: BatchLimits,
}

/// One chunk of a stream's chain, open or sealed.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Sequence number (file name).
    pub(crate) seq: u64,
    /// File path.
    pub(crate) path: PathBuf,
    /// Bytes written (buffered or not), header included.
    pub(crate) len: u64,
    /// Records written.
    pub(crate) events: u64,
    /// Sealed in memory: no more appends.
    pub(crate) sealed: bool,
    /// The last committed manifest lists it as sealed: ready to send.
    pub(crate) committed_sealed: bool,
    /// Bytes the last committed manifest lists (0 if it does not list the chunk).
    pub(crate) committed_len: u64,
    /// The buffered writer, while the chunk is open or sealed but not yet fsynced by a commit.
    pub(crate) writer: Option<ChunkWriter>,
}

/// One destination's chain.
#[derive(Debug)]
pub(crate) struct StreamState {
    /// Directory name.
    pub(crate) id: String,
    /// Where its chunks go.
    pub(crate) dest: Arc<Destination>,
    /// Its directory.
    pub(crate) dir: PathBuf,
    /// Chunks, oldest first; only the last may be unsealed (the open one).
    pub(crate) chunks: VecDeque<Chunk>,
    /// The open chunk's accounting, if any (its `Chunk` is `chunks.back()`).
    pub(crate) open: Option<OpenChunk>,
}

impl StreamState {
    /// Whether the stream holds nothing and can be evicted.
    pub(crate) fn is_drained(&self) -> bool {
        self.chunks.is_empty() && self.open.is_none()
    }
}
