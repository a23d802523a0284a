//! The durable spool between routing and sending (DESIGN §2 "The spool").
//!
//! A chunk is a future PutLogEvents request: per destination stream an ordered chain of
//! chunk files of length-prefixed, checksummed records. Chunks are sealed at write time when
//! the next event would break a PutLogEvents rule or when the flush interval passes. Group
//! commit fsyncs touched chunks and atomically replaces one manifest that also carries the
//! source checkpoints (an opaque blob), so a checkpoint never runs ahead of durability.
//!
//! Layout of the spool directory:
//!
//! ```text
//! <dir>/manifest                    the last commit (see `manifest`)
//! <dir>/<stream-id>/<seq>.chunk     chunk files (see `chunk`); stream-id = `stream_id(dest)`
//! <dir>/quarantine/                 manifests and chunks that failed checks, kept for humans
//! ```
//!
//! Memory holds only each stream's small chunk index and the buffer of its open chunk (and of
//! chunks sealed since the last commit), never the backlog.

mod chunk;
mod manifest;
mod recovery;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::chunk::ChunkWriter;
use self::manifest::{ChunkEntry, Manifest, StreamEntry, sync_dir};
use self::stream::{BatchLimits, Chunk, OpenChunk, StreamState};
use crate::route::{Destination, MAX_EVENT_BYTES};

pub use self::stream::stream_id;

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
    /// The event is bigger than one PutLogEvents event may be (`route::MAX_EVENT_BYTES`).
    #[error("event of {len} bytes for {group}/{stream} exceeds the CloudWatch event limit")]
    EventTooLarge {
        /// Log group.
        group: String,
        /// Log stream.
        stream: String,
        /// Message bytes.
        len: usize,
    },
    /// A chunk read back failed verification (disk corruption after recovery checked it).
    #[error("chunk {path} is corrupt after {valid_events} valid events")]
    Corrupt {
        /// The chunk file.
        path: PathBuf,
        /// Records before the damage.
        valid_events: u64,
    },
    /// `ack` of a chunk that is not sealed and committed (`ready` never returned it).
    #[error("chunk {path} is not sealed and committed; it cannot be acked")]
    NotReady {
        /// The chunk file.
        path: PathBuf,
    },
    /// The manifest was written by a newer shipper (a rollback after an upgrade): its
    /// format is unknown, so nothing is touched; run the newer version, or move the state
    /// directory aside to start empty.
    #[error(
        "spool manifest {path} has format version {found}, newer than the {supported} this shipper \
         reads: refusing to start and touching nothing. Run the shipper version that wrote it, or \
         move the state directory aside to start empty (its data is then not shipped)"
    )]
    NewerManifest {
        /// The manifest file.
        path: PathBuf,
        /// The version it carries.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// An earlier write or fsync of `path` failed, so what reached the disk is unknown and
    /// nothing more is committed. Reopen the spool: recovery returns to the last commit.
    #[error("spool write to {path} failed earlier; reopen the spool to recover")]
    Poisoned {
        /// The file whose write failed.
        path: PathBuf,
    },
}

/// Most bytes appended but not yet written to their chunk files, over all streams. Each open
/// chunk buffers its records; with 1,000 streams a commit interval's worth of lines would
/// otherwise sit in 1,000 buffers of up to 64 KiB each.
const UNWRITTEN_BUDGET_BYTES: u64 = 4 * 1024 * 1024;

/// One stream may hold at most this fraction of the spool cap (see `stream_at_share`).
const STREAM_SHARE_NUM: u64 = 3;
const STREAM_SHARE_DEN: u64 = 4;

/// The spool.
#[derive(Debug)]
pub struct Spool {
    /// The spool directory.
    dir: PathBuf,
    options: SpoolOptions,
    /// Open chunks older than this are sealed (`options.flush_interval`, or the effective
    /// interval set later).
    flush_interval: Duration,
    /// Streams holding chunks or an open chunk; drained streams are evicted.
    streams: HashMap<Arc<Destination>, StreamState>,
    /// Next chunk sequence number, global so a seq is never reused while a manifest names it.
    next_seq: u64,
    /// Σ chunk file sizes (buffered bytes included).
    bytes: u64,
    /// Σ records held.
    events: u64,
    /// Directories with entries created since the last commit (fsynced by the next one).
    dirs_to_sync: BTreeSet<PathBuf>,
    /// A chunk was freed since the last commit (the manifest still lists it).
    acked_since_commit: bool,
    /// Bytes appended since the chunk buffers were last written out (an upper bound).
    unwritten: u64,
    /// Set by a failed write or fsync: commits are refused from then on.
    poisoned: Option<PathBuf>,
}

impl Spool {
    /// Open (creating if needed) the spool in `dir`, recovering from any crash.
    pub fn open(dir: &Path, options: SpoolOptions) -> Result<(Spool, Recovery), SpoolError> {
        recovery::recover(dir, options)
    }

    /// Append one event to `dest`'s open chunk (sealing it first if this event would break a
    /// PutLogEvents rule). Not durable until the next `commit`.
    pub fn append(&mut self, dest: &Destination, timestamp_ms: i64, message: &str) -> Result<(), SpoolError> {
        if let Some(path) = &self.poisoned {
            return Err(SpoolError::Poisoned { path: path.clone() });
        }
        if message.len() > MAX_EVENT_BYTES {
            return Err(SpoolError::EventTooLarge {
                group: dest.group.clone(),
                stream: dest.stream.clone(),
                len: message.len(),
            });
        }
        if !self.streams.contains_key(dest) {
            let dest = Arc::new(dest.clone());
            let id = stream_id(&dest);
            let dir = self.dir.join(&id);
            let state =
                StreamState { id, dest: Arc::clone(&dest), dir, chunks: Default::default(), open: None };
            self.streams.insert(dest, state);
        }
        let Some(stream) = self.streams.get_mut(dest) else { unreachable!("inserted above") };
        let limits = match &stream.open {
            Some(open) => match open.limits.with(timestamp_ms, message.len()) {
                Some(limits) => Some(limits),
                None => {
                    seal(stream);
                    None
                }
            },
            None => None,
        };
        let limits = match limits {
            Some(limits) => limits,
            None => {
                if let Err(e) = self.start_chunk_of(dest) {
                    if self.streams.get(dest).is_some_and(StreamState::is_drained) {
                        self.streams.remove(dest);
                    }
                    return Err(e);
                }
                BatchLimits::first(timestamp_ms, message.len())
            }
        };
        let Some(stream) = self.streams.get_mut(dest) else { unreachable!("inserted above") };
        let (Some(open), Some(chunk)) = (stream.open.as_mut(), stream.chunks.back_mut()) else {
            unreachable!("an open chunk exists after start_chunk_of")
        };
        if chunk.writer.is_none() {
            // A commit closed it (see `commit`): open it again for the next records.
            match ChunkWriter::reopen(chunk.path.clone()) {
                Ok(writer) => chunk.writer = Some(writer),
                Err(e) => {
                    self.poisoned = Some(chunk.path.clone());
                    return Err(e);
                }
            }
        }
        let Some(writer) = chunk.writer.as_mut() else { unreachable!("reopened above") };
        if let Err(e) = writer.append(timestamp_ms, message.as_bytes()) {
            self.poisoned = Some(chunk.path.clone());
            return Err(e);
        }
        open.limits = limits;
        let added = chunk::record_len(message.len());
        chunk.len += added;
        chunk.events += 1;
        self.bytes += added;
        self.events += 1;
        self.unwritten += added;
        if self.unwritten > UNWRITTEN_BUDGET_BYTES {
            self.write_out_buffers()?;
        }
        Ok(())
    }

    /// Write every chunk buffer to its file (no fsync: durability is still the commit's).
    fn write_out_buffers(&mut self) -> Result<(), SpoolError> {
        for stream in self.streams.values_mut() {
            for chunk in stream.chunks.iter_mut() {
                if let Some(writer) = chunk.writer.as_mut()
                    && let Err(e) = writer.write_out()
                {
                    self.poisoned = Some(chunk.path.clone());
                    return Err(e);
                }
            }
        }
        self.unwritten = 0;
        Ok(())
    }

    /// Create a new open chunk file for `dest` (whose stream state exists and has none open).
    fn start_chunk_of(&mut self, dest: &Destination) -> Result<(), SpoolError> {
        let Some(stream) = self.streams.get_mut(dest) else {
            unreachable!("callers insert the stream first")
        };
        if stream.chunks.is_empty() {
            match std::fs::create_dir(&stream.dir) {
                Ok(()) => {
                    self.dirs_to_sync.insert(self.dir.clone());
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(SpoolError::Io { path: stream.dir.clone(), source });
                }
            }
        }
        let seq = self.next_seq;
        // Recovery refuses manifests beyond the range, so only a corrupt-but-accepted one
        // gets here: refuse rather than commit a manifest the next start would refuse.
        if seq >= manifest::SEQ_LIMIT {
            return Err(SpoolError::Io {
                path: stream.dir.clone(),
                source: std::io::Error::other("chunk sequence numbers exhausted"),
            });
        }
        let path = stream.dir.join(chunk::file_name(seq));
        let writer = ChunkWriter::create(path.clone())?;
        self.next_seq = seq + 1;
        self.dirs_to_sync.insert(stream.dir.clone());
        stream.chunks.push_back(Chunk {
            seq,
            path,
            len: chunk::HEADER_LEN,
            events: 0,
            sealed: false,
            committed_sealed: false,
            committed_len: 0,
            writer: Some(writer),
        });
        stream.open = Some(OpenChunk {
            opened_at: crate::clock::now(),
            // Replaced by the caller's first event before anyone reads it.
            limits: BatchLimits::first(0, 0),
        });
        self.bytes += chunk::HEADER_LEN;
        Ok(())
    }

    /// Seal every open chunk opened at least `flush_interval` before `now` — unless its
    /// stream still has sealed chunks waiting or in flight. Sealing then would not send it
    /// any sooner; left open, it keeps filling up to the PutLogEvents limits, so a backlog
    /// built during an outage goes out in full batches, not in one small request per flush
    /// interval. It is sealed at the first commit after the stream caught up.
    pub fn seal_expired(&mut self, now: Instant) {
        let interval = self.flush_interval;
        for stream in self.streams.values_mut() {
            if seal_due(stream, now, interval) {
                seal(stream);
            }
        }
    }

    /// Whether a `commit` at `now` would change anything: appended bytes to fsync, a chunk to
    /// seal or sealed since, a chunk freed, a directory to sync. An idle node then skips
    /// the manifest write and its fsync.
    pub fn needs_commit(&self, now: Instant) -> bool {
        let interval = self.flush_interval;
        self.acked_since_commit
            || !self.dirs_to_sync.is_empty()
            || self.streams.values().any(|stream| {
                seal_due(stream, now, interval)
                    || stream.chunks.iter().any(|chunk| {
                        chunk.len != chunk.committed_len || chunk.sealed != chunk.committed_sealed
                    })
            })
    }

    /// Seal open chunks by `interval` from now on instead of `SpoolOptions::flush_interval`
    /// (the effective interval, stretched while CloudWatch throttles).
    pub fn set_flush_interval(&mut self, interval: Duration) {
        self.flush_interval = interval;
    }

    /// Seal every open chunk (shutdown, tests).
    pub fn seal_all(&mut self) {
        for stream in self.streams.values_mut() {
            seal(stream);
        }
    }

    /// Group commit: fsync what was appended since the last commit, then atomically store the
    /// manifest with `source_state`.
    pub fn commit(&mut self, source_state: &[u8]) -> Result<(), SpoolError> {
        if let Some(path) = &self.poisoned {
            return Err(SpoolError::Poisoned { path: path.clone() });
        }
        for stream in self.streams.values_mut() {
            for chunk in stream.chunks.iter_mut() {
                let Some(writer) = chunk.writer.as_mut() else {
                    continue;
                };
                if let Err(e) = writer.sync() {
                    // After a failed fsync the page cache state is unknown (fsyncgate):
                    // never commit again from this process.
                    self.poisoned = Some(chunk.path.clone());
                    return Err(e);
                }
                // Synced: the descriptor goes, sealed or not. An open chunk reopens at its
                // next append; one that stays open through an outage (its stream's backlog
                // fills it) holds no descriptor meanwhile, whatever the number of streams.
                chunk.writer = None;
            }
        }
        // Stream directories before the spool directory that holds them.
        for dir in self.dirs_to_sync.iter().rev() {
            sync_dir(dir)?;
        }
        crate::failpoint::hit("spool.commit.synced");
        self.store_manifest(Some(source_state))?;
        self.dirs_to_sync.clear();
        self.acked_since_commit = false;
        self.unwritten = 0;
        for stream in self.streams.values_mut() {
            for chunk in stream.chunks.iter_mut() {
                chunk.committed_sealed = chunk.sealed;
                chunk.committed_len = chunk.len;
            }
        }
        Ok(())
    }

    /// Write the manifest describing every chunk as it is now (all of it fsynced).
    fn store_manifest(&self, source_state: Option<&[u8]>) -> Result<(), SpoolError> {
        let mut streams: Vec<StreamEntry> = self
            .streams
            .values()
            .filter(|stream| !stream.chunks.is_empty())
            .map(|stream| StreamEntry {
                id: stream.id.clone(),
                dest: Destination::clone(&stream.dest),
                chunks: stream
                    .chunks
                    .iter()
                    .map(|chunk| ChunkEntry {
                        seq: chunk.seq,
                        len: chunk.len,
                        events: chunk.events,
                        sealed: chunk.sealed,
                    })
                    .collect(),
            })
            .collect();
        streams.sort_by(|a, b| a.id.cmp(&b.id));
        Manifest {
            version: manifest::MANIFEST_VERSION,
            next_seq: self.next_seq,
            source_state: source_state.map(Manifest::encode_state),
            streams,
        }
        .store(&self.dir)
    }

    /// For each stream, its oldest sealed and committed chunk, skipping streams in `busy`.
    pub fn ready(&self, busy: &dyn Fn(&str) -> bool) -> Vec<ChunkRef> {
        self.streams
            .values()
            .filter(|stream| !busy(&stream.id))
            .filter_map(|stream| {
                let chunk = stream.chunks.front()?;
                chunk.committed_sealed.then(|| ChunkRef {
                    stream_id: stream.id.clone(),
                    seq: chunk.seq,
                    path: chunk.path.clone(),
                    dest: Arc::clone(&stream.dest),
                })
            })
            .collect()
    }

    /// Read a chunk back (chunk files are immutable once sealed: no lock needed).
    pub fn read(chunk: &ChunkRef) -> Result<Batch, SpoolError> {
        let scan = chunk::scan(&chunk.path, u64::MAX, true)?;
        if scan.damaged {
            return Err(SpoolError::Corrupt { path: chunk.path.clone(), valid_events: scan.records });
        }
        Ok(Batch { dest: Arc::clone(&chunk.dest), events: scan.events })
    }

    /// A chunk that failed verification when read for sending (the disk changed it after
    /// recovery checked it): keep a copy in `<spool>/quarantine/` for a human, then free it
    /// so its stream goes on. Returns how many events were freed (they are dropped). The copy
    /// is best effort: a failure to make it is logged, the chunk is freed regardless.
    pub fn quarantine(&mut self, chunk: &ChunkRef) -> Result<u64, SpoolError> {
        let dir = self.dir.join(recovery::QUARANTINE_DIR);
        if let Some(name) = chunk.path.file_name() {
            let target = dir.join(format!("{}-{}", chunk.stream_id, name.to_string_lossy()));
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::copy(&chunk.path, &target)) {
                tracing::error!(error = %e, path = %chunk.path.display(), "could not copy a corrupt chunk to quarantine");
            }
        }
        self.ack(chunk)
    }

    /// CloudWatch accepted (or explicitly dropped) every event of the chunk: free it. Returns
    /// how many events were freed.
    ///
    /// Acking a chunk that is already gone is a no-op. The manifest catches up on the next
    /// commit; until then a crash brings the chunk back (a bounded duplicate, never a loss).
    pub fn ack(&mut self, chunk: &ChunkRef) -> Result<u64, SpoolError> {
        let Some(stream) = self.streams.get_mut(&*chunk.dest) else {
            return Ok(0);
        };
        let Some(index) = stream.chunks.iter().position(|c| c.seq == chunk.seq) else {
            return Ok(0);
        };
        if !stream.chunks[index].committed_sealed {
            return Err(SpoolError::NotReady { path: chunk.path.clone() });
        }
        // Forget the chunk even when the unlink fails: resending it in a loop would duplicate
        // it endlessly, while a leftover file is resent at most once, after a restart.
        let unlinked = match std::fs::remove_file(&chunk.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SpoolError::Io { path: chunk.path.clone(), source }),
        };
        crate::failpoint::hit("spool.ack.unlinked");
        let mut freed = 0;
        if let Some(removed) = stream.chunks.remove(index) {
            self.acked_since_commit = true;
            self.bytes -= removed.len;
            self.events -= removed.events;
            freed = removed.events;
        }
        if stream.is_drained() {
            // Best effort: a leftover empty directory is removed by the next recovery.
            let _ = std::fs::remove_dir(&stream.dir);
            self.dirs_to_sync.remove(&stream.dir);
            self.streams.remove(&*chunk.dest);
        }
        unlinked.map(|()| freed)
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Events held.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Export the spool's gauges (`shipper_spool_bytes`, `shipper_spool_events`): whoever
    /// changed the spool calls this, the spool says what they are.
    pub fn export_gauges(&self, metrics: &crate::telemetry::Metrics) {
        crate::telemetry::Metrics::set(&metrics.spool_bytes, self.bytes() as i64);
        crate::telemetry::Metrics::set(&metrics.spool_events, self.events() as i64);
    }

    /// At or above the size cap.
    pub fn is_full(&self) -> bool {
        self.bytes >= self.options.max_bytes
    }

    /// Whether `dest` holds its most: `STREAM_SHARE_NUM / STREAM_SHARE_DEN` of the cap. The
    /// rest is kept for other streams, so one stream that cannot be delivered never fills
    /// the spool and stops everyone's reading; only its own files wait.
    pub fn stream_at_share(&self, dest: &Destination) -> bool {
        let share = self.options.max_bytes / STREAM_SHARE_DEN * STREAM_SHARE_NUM;
        self.streams.get(dest).is_some_and(|s| s.chunks.iter().map(|c| c.len).sum::<u64>() >= share)
    }

    /// Number of streams held in memory (tests: eviction).
    #[cfg(test)]
    fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Chunk files held open (tests).
    #[cfg(test)]
    fn open_writers(&self) -> usize {
        self.streams
            .values()
            .flat_map(|stream| stream.chunks.iter())
            .filter(|chunk| chunk.writer.is_some())
            .count()
    }

    /// Memory held by chunk buffers (tests).
    #[cfg(test)]
    fn buffered_capacity(&self) -> usize {
        self.streams
            .values()
            .flat_map(|stream| stream.chunks.iter())
            .filter_map(|chunk| chunk.writer.as_ref())
            .map(ChunkWriter::buffered_capacity)
            .sum()
    }

    /// Every chunk file with its committed length (tests: where a crash may damage files).
    #[cfg(test)]
    fn committed_lengths(&self) -> HashMap<PathBuf, u64> {
        self.streams
            .values()
            .flat_map(|stream| stream.chunks.iter())
            .map(|chunk| (chunk.path.clone(), chunk.committed_len))
            .collect()
    }
}

/// Whether `stream`'s open chunk is due for sealing (see `Spool::seal_expired`).
fn seal_due(stream: &StreamState, now: Instant, interval: Duration) -> bool {
    let expired =
        stream.open.as_ref().is_some_and(|open| now.saturating_duration_since(open.opened_at) >= interval);
    expired && !stream.chunks.iter().any(|chunk| chunk.sealed)
}

/// Seal `stream`'s open chunk, if any. Its writer is kept until the next commit fsyncs it.
fn seal(stream: &mut StreamState) {
    if stream.open.take().is_some()
        && let Some(chunk) = stream.chunks.back_mut()
    {
        chunk.sealed = true;
    }
}

/// The source state the last commit in `dir` stored, read without recovering the spool (a
/// test looks while the spool is open).
#[cfg(test)]
pub(crate) fn committed_source_state(dir: &Path) -> Option<Vec<u8>> {
    let bytes = Manifest::read_bytes(dir).ok()??;
    Manifest::parse(&bytes).ok()?.decode_state().ok()?
}
