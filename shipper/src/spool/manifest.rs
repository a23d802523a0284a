//! The manifest: the one file whose atomic replacement commits the spool.
//!
//! It lists, per stream, the destination and every chunk with its committed length, record
//! count and sealed flag, plus the source checkpoints (an opaque blob), so a checkpoint is
//! durable exactly when the lines before it are. Written as JSON to `manifest.tmp`, fsynced,
//! renamed over `manifest`, and the directory fsynced.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SpoolError;
use crate::route::Destination;

/// File name of the manifest inside the spool directory.
pub(crate) const MANIFEST_FILE: &str = "manifest";
/// File name of the manifest being written.
pub(crate) const MANIFEST_TMP_FILE: &str = "manifest.tmp";
/// Current manifest format version.
pub(crate) const MANIFEST_VERSION: u32 = 1;
/// Chunk sequence numbers stay below this (and `next_seq` at most at it); anything beyond
/// is corrupt: one chunk per nanosecond would take 146 years to get there, and staying far
/// below `u64::MAX` means `seq + 1` never overflows.
pub(crate) const SEQ_LIMIT: u64 = 1 << 62;

/// The committed state of the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    /// Format version; anything but `MANIFEST_VERSION` is refused.
    pub(crate) version: u32,
    /// Next chunk sequence number: seqs are never reused while a manifest may name them.
    pub(crate) next_seq: u64,
    /// The source checkpoints, hex-encoded.
    pub(crate) source_state: Option<String>,
    /// Every stream holding chunks.
    pub(crate) streams: Vec<StreamEntry>,
}

/// One stream's chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamEntry {
    /// Directory name.
    pub(crate) id: String,
    /// Where its chunks go.
    pub(crate) dest: Destination,
    /// Chunks, oldest first.
    pub(crate) chunks: Vec<ChunkEntry>,
}

/// One chunk's committed extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChunkEntry {
    /// Sequence number (file name).
    pub(crate) seq: u64,
    /// Committed bytes, header included.
    pub(crate) len: u64,
    /// Committed records.
    pub(crate) events: u64,
    /// Whether the chunk was sealed (complete) at commit time.
    pub(crate) sealed: bool,
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManifestProblem {
    /// It does not parse.
    #[error("unreadable manifest: {0}")]
    Corrupt(String),
    /// It parses but has a version we do not know.
    #[error("unknown manifest version {0}")]
    UnknownVersion(u32),
}

impl Manifest {
    /// Encode a source state blob for storage.
    pub(crate) fn encode_state(state: &[u8]) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(state.len() * 2);
        for byte in state {
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02x}");
        }
        out
    }

    /// Decode the stored source state blob.
    pub(crate) fn decode_state(&self) -> Result<Option<Vec<u8>>, ManifestProblem> {
        let Some(hex) = &self.source_state else {
            return Ok(None);
        };
        if hex.len() % 2 != 0 {
            return Err(ManifestProblem::Corrupt("odd-length source_state".into()));
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| ManifestProblem::Corrupt("bad hex in source_state".into()))
            })
            .collect::<Result<Vec<u8>, _>>()
            .map(Some)
    }

    /// Parse manifest bytes, checking the version.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, ManifestProblem> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let version = serde_json::from_slice::<VersionOnly>(bytes)
            .map_err(|e| ManifestProblem::Corrupt(e.to_string()))?
            .version;
        if version != MANIFEST_VERSION {
            return Err(ManifestProblem::UnknownVersion(version));
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestProblem::Corrupt(e.to_string()))?;
        manifest.decode_state()?;
        let seqs = manifest.streams.iter().flat_map(|s| s.chunks.iter().map(|c| c.seq));
        if manifest.next_seq > SEQ_LIMIT || seqs.into_iter().any(|seq| seq >= SEQ_LIMIT) {
            return Err(ManifestProblem::Corrupt("chunk sequence number out of range".into()));
        }
        Ok(manifest)
    }

    /// Read `<dir>/manifest`: `Ok(None)` if absent.
    pub(crate) fn read_bytes(dir: &Path) -> Result<Option<Vec<u8>>, SpoolError> {
        let path = dir.join(MANIFEST_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SpoolError::Io { path, source }),
        }
    }

    /// Atomically replace `<dir>/manifest` with this one: temp file, fsync, rename, fsync dir.
    pub(crate) fn store(&self, dir: &Path) -> Result<(), SpoolError> {
        let tmp = dir.join(MANIFEST_TMP_FILE);
        let bytes = serde_json::to_vec(self)
            .map_err(|e| SpoolError::Io { path: tmp.clone(), source: io::Error::other(e) })?;
        let io_err = |path: &PathBuf| {
            let path = path.clone();
            move |source| SpoolError::Io { path, source }
        };
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(&bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        drop(file);
        crate::failpoint::hit("manifest.written");
        let target = dir.join(MANIFEST_FILE);
        std::fs::rename(&tmp, &target).map_err(io_err(&target))?;
        crate::failpoint::hit("manifest.renamed");
        sync_dir(dir)
    }
}

/// fsync a directory so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SpoolError::Io { path: dir.to_path_buf(), source })
}
