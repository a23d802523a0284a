//! Discovery and tailing of container log files, rotation, and checkpoints.
//!
//! The tailer finds files matching the configured globs (inotify plus a periodic rescan),
//! follows each by identity (device, inode, fingerprint of the first bytes) through
//! rename-rotation, copytruncate and deletion, and hands out complete lines as byte chunks.
//! It never advances a checkpoint by itself: the agent calls `set_safe_offset` for what the
//! spool holds, and `state()` is stored atomically with the spool's commit.
//!
//! - `discover`: glob expansion and inotify wake-ups.
//! - `identity`: fingerprints that tell a checkpointed file from a reused inode.
//! - `file`: one tailed file, line-aligned positioned reads.
//! - `tailer`: the `Tailer` tying it together (rotation chains, restore, checkpoints).
//! - `rotated`: rotated siblings (`0.log.<ts>`, `0.log.<ts>.gz`) found on restore, and
//!   decompressing a `.gz` into an unlinked scratch file to tail it.
//! - `container_path`: pod, namespace, container and id from a kubelet file name.
//!
//! # Where a first install starts
//!
//! By default every file is read from its start, rotated siblings included. A first install
//! (`TailerOptions::first_install`: no saved state at all) may instead start late, for the
//! files its first scan finds only:
//!
//! - `read_from = tail`: each live file starts just after its last `\n` (an unterminated last
//!   line is read once it completes); its rotated siblings are not read.
//! - `ignore_older = d`: a rotated sibling last modified before `now - d` is not read, and a
//!   live file last modified before then starts at its end as above.
//!
//! Every byte range passed over is reported as `SourceEvent::Skipped`, so it is counted as
//! skipped by choice, never as lost. A file starting late is checkpointed like any other, so
//! a restart resumes it where the first run was.
//!
//! Only a first install is affected. Afterwards a file without a checkpoint is a container
//! that started while the shipper was down, or after it started: every line of it must be
//! read, or those lines would be lost. (Fluent Bit's `read_from_head false` applies to every
//! file found at start without a DB offset, and so loses the first lines of pods created
//! while the agent was down; we don't.) Files appearing after the first scan are always read
//! from their start.

mod container_path;
mod discover;
mod file;
mod identity;
mod rotated;
mod tailer;

#[cfg(test)]
mod tests;

use crate::telemetry::{LossReason, OpenFailure, SkipReason};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use container_path::{ContainerRef, container_ref};
pub use identity::FINGERPRINT_BYTES;
pub use tailer::Tailer;

/// Identity of a file's content, stable across renames, unique across inode reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileId {
    /// `st_dev`
    pub dev: u64,
    /// `st_ino`
    pub ino: u64,
    /// Hash of the first `min(FINGERPRINT_BYTES, offset)` bytes of the checkpointed file,
    /// i.e. of content the checkpoint vouches for (0 at offset 0). A file found at this
    /// device and inode resumes only if it still starts with those bytes.
    pub fingerprint: u64,
}

/// A file's durable read position.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Path the file was discovered at (the glob match, e.g. the `/var/log/containers` link).
    pub path: PathBuf,
    /// Its identity.
    pub id: FileId,
    /// Every byte before this offset is in the spool.
    pub offset: u64,
    /// The file's first bytes as far as they were seen, which may be more than `offset`
    /// vouches for. Only used to recognise a gzipped copy of a file checkpointed before
    /// enough was read (at offset 0 `id.fingerprint` covers nothing). Absent in state files
    /// written before it existed, and for files that were empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<Head>,
}

/// A fingerprint of a file's first `len` bytes (`len` ≤ `FINGERPRINT_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    /// How many leading bytes it covers (at least 1).
    pub len: u32,
    /// Their fingerprint.
    pub fingerprint: u64,
}

/// Everything the tailer must remember across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceState {
    /// One per file still tailed.
    pub files: Vec<Checkpoint>,
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct TailerOptions {
    /// Globs of container log files.
    pub globs: Vec<String>,
    /// Safety-net rescan period (inotify is the fast path).
    pub rescan_interval: Duration,
    /// The longer rescan period used while inotify watches every directory and reported no
    /// error since the last scan (an idle node with 1,000 files then stats them rarely).
    pub watched_rescan_interval: Duration,
    /// Most bytes handed out by one `read`.
    pub read_chunk_bytes: usize,
    /// Where gzipped rotations found on restart are decompressed to (unlinked files: their
    /// space is freed once read, or when the process ends). Created when first needed.
    pub scratch_dir: PathBuf,
    /// Most bytes decompressed from one gzipped rotation (a bound on scratch disk use and on
    /// a gzip bomb); anything beyond it is reported lost.
    pub max_decompressed_bytes: u64,
    /// Where a first install starts reading the files its first scan finds (see the module
    /// docs). Ignored unless `first_install`.
    pub read_from: ReadFrom,
    /// On a first install, files its first scan finds last modified longer ago than this
    /// are skipped (rotated ones) or started at their end (live ones). `None`: off. Ignored
    /// unless `first_install`.
    pub ignore_older: Option<Duration>,
    /// There was no saved state at all (no manifest): set by the caller. Only then do
    /// `read_from` and `ignore_older` apply, and only to paths without a checkpoint.
    pub first_install: bool,
    /// Most bytes of files held open that kubelet already deleted (rotated away, then
    /// removed as too old) while they wait to be read, as during a long outage with a full
    /// spool. Past it the oldest are closed and their unread rest reported lost (`vanished`):
    /// deleted files we hold open still take the node's disk, and a full disk evicts pods.
    pub max_deleted_open_bytes: u64,
}

/// A line without `\n` is handed out in prefixes of this many bytes once it is this long
/// (a runtime configured not to split long lines writes a whole 200 MB line as one record):
/// memory stays bounded and nothing is read twice, where waiting for the `\n` would hold the
/// whole line and re-read it from its start at every growth.
pub const LONG_LINE_PREFIX_BYTES: usize = 1024 * 1024;

/// Default of [`TailerOptions::max_deleted_open_bytes`].
pub const MAX_DELETED_OPEN_BYTES: u64 = 1 << 30;

/// Where a first install starts reading a file found by its first scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// From the start, rotated siblings included (nothing is skipped).
    #[default]
    Head,
    /// From the end of the live file's last complete line; rotated siblings are skipped.
    Tail,
}

impl ReadFrom {
    /// Every value, as spelled in configuration.
    pub const NAMES: [&'static str; 2] = ["head", "tail"];
}

impl FromStr for ReadFrom {
    type Err = ReadFromError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "head" => Ok(Self::Head),
            "tail" => Ok(Self::Tail),
            _ => Err(ReadFromError { value: value.to_owned() }),
        }
    }
}

/// A `read_from` value that is neither `head` nor `tail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid read_from {value:?}: expected one of \"head\", \"tail\"")]
pub struct ReadFromError {
    /// The value given.
    pub value: String,
}

/// Handle of a tailed file, stable while the tailer follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey(pub u64);

/// What `scan` noticed. In every variant `key` is the file's handle for `read` and the safe
/// offsets, and `path` the glob match it was found at (for a sibling, its own path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// A new file is tailed (from its checkpoint, from the start, or, when a first install
    /// skips what it holds, from the end of its last line).
    Opened {
        /// The file's handle.
        key: FileKey,
        /// Where it was found.
        path: PathBuf,
        /// Where reading starts.
        offset: u64,
    },
    /// The file at `path` was renamed away; `key` is drained to its end, then closed.
    Rotated {
        /// The rotated file's handle.
        key: FileKey,
        /// The path it was renamed away from.
        path: PathBuf,
    },
    /// The file shrank below the read offset (copytruncate): `key` is retired and an
    /// `Opened` event with a new key at offset 0 follows (so safe offsets still in flight
    /// for the old content cannot land in the new one).
    Truncated {
        /// The retired handle.
        key: FileKey,
        /// The file's path.
        path: PathBuf,
    },
    /// The file was fully read and is no longer at its path: forgotten.
    Closed {
        /// The forgotten handle.
        key: FileKey,
        /// The path it was read from.
        path: PathBuf,
    },
    /// Bytes that can never be read (file vanished before it was opened or finished).
    Lost {
        /// The file's path.
        path: PathBuf,
        /// First byte lost.
        from: u64,
        /// End of the loss, when the file's size was known.
        to: Option<u64>,
        /// Why.
        reason: LossReason,
    },
    /// Bytes `from..to` of the file at `path` are not read, by configuration (a first
    /// install's `read_from = tail` or `ignore_older`). `path` is the glob match for a live
    /// file and the rotated file's own path for a sibling. Offsets are uncompressed except
    /// for a skipped `.gz` rotation, which is not decompressed just to be skipped: its range
    /// is `0..` its compressed size.
    Skipped {
        /// The file's path.
        path: PathBuf,
        /// First byte skipped.
        from: u64,
        /// End of the skipped range.
        to: u64,
        /// Which setting.
        reason: SkipReason,
    },
    /// The file at `path` cannot be opened (reported once until it opens; retried at every
    /// scan). Once it opens, its rotations made meanwhile are read ahead of it.
    OpenFailed {
        /// The glob match.
        path: PathBuf,
        /// The kind of failure.
        reason: OpenFailure,
        /// The system's message.
        error: String,
    },
}

/// Bytes handed out by `read`: whole lines, except for a line longer than
/// [`LONG_LINE_PREFIX_BYTES`], which is handed out in prefixes of that size as it grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadChunk {
    /// File offset of the first byte.
    pub start: u64,
    /// File offset just past the last byte: just after a `\n`, unless `unfinished` (or
    /// the file ended for good without one).
    pub end: u64,
    /// The chunk ends inside a line longer than [`LONG_LINE_PREFIX_BYTES`]: its rest
    /// follows in the next chunks.
    pub unfinished: bool,
}

/// Tailing failures.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A glob in `SHIPPER_LOG_PATHS` is invalid.
    #[error("invalid log path glob {glob:?}: {reason}")]
    Glob {
        /// The glob.
        glob: String,
        /// Why.
        reason: String,
    },
    /// A tailer option is out of range.
    #[error("invalid tailer option {name}: {reason}")]
    Option {
        /// The option.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// I/O on a tailed file.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}
