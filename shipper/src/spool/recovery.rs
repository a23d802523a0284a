//! Crash recovery: return the spool directory to exactly what the last manifest committed.
//!
//! - No manifest: a fresh spool (any chunk directories are uncommitted leftovers: deleted).
//! - Unreadable manifest or unknown version: it and every stream directory are moved into
//!   `quarantine/` (they cannot be told apart from uncommitted data any more) and the spool
//!   starts empty — reported, never a crash loop.
//! - Each listed chunk is truncated to its committed length (the cut bytes are re-read from
//!   the sources, whose checkpoints did not advance past them); chunk files and stream
//!   directories the manifest does not know are deleted; every record is verified, and a chunk
//!   that fails is moved to quarantine, keeping its good prefix in place.
//! - Every recovered chunk is sealed; a fresh manifest records the result.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::manifest::{
    ChunkEntry, MANIFEST_FILE, MANIFEST_TMP_FILE, MANIFEST_VERSION, Manifest, ManifestProblem, StreamEntry,
    sync_dir,
};
use super::stream::{Chunk, StreamState, is_stream_id};
use super::{Recovery, Spool, SpoolError, SpoolOptions, chunk};

/// Name of the quarantine directory inside the spool directory.
pub(super) const QUARANTINE_DIR: &str = "quarantine";

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

/// Open the spool in `dir`, recovering it (see the module docs).
pub(super) fn recover(dir: &Path, options: SpoolOptions) -> Result<(Spool, Recovery), SpoolError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut recovery = Recovery::default();
    let quarantine = Quarantine::new(dir.join(QUARANTINE_DIR));
    let manifest_bytes = Manifest::read_bytes(dir)?;
    // Checked before anything is touched: a newer shipper's spool is left as it is.
    if let Some(Err(ManifestProblem::UnknownVersion(found))) = manifest_bytes.as_deref().map(Manifest::parse)
        && found > MANIFEST_VERSION
    {
        return Err(SpoolError::NewerManifest {
            path: dir.join(MANIFEST_FILE),
            found,
            supported: MANIFEST_VERSION,
        });
    }
    remove_if_exists(&dir.join(MANIFEST_TMP_FILE))?;

    let manifest = match manifest_bytes {
        None => None,
        Some(bytes) => match Manifest::parse(&bytes) {
            Ok(manifest) => Some(manifest),
            Err(problem) => {
                tracing::error!(
                    dir = %dir.display(),
                    %problem,
                    "spool manifest unusable: quarantining it and all chunks, starting empty"
                );
                recovery.quarantined.push(quarantine.take(&dir.join(MANIFEST_FILE), MANIFEST_FILE)?);
                for entry in list_dir(dir)? {
                    if entry.is_dir && is_stream_id(&entry.name) {
                        recovery.quarantined.push(quarantine.take(&entry.path, &entry.name)?);
                    }
                }
                None
            }
        },
    };
    let (source_state, mut next_seq, entries) = match manifest {
        // `parse` already checked the encoding.
        Some(manifest) => (manifest.decode_state().unwrap_or_default(), manifest.next_seq, manifest.streams),
        None => (None, 0, Vec::new()),
    };
    recovery.source_state = source_state;
    let mut known: HashMap<String, StreamEntry> =
        entries.into_iter().map(|entry| (entry.id.clone(), entry)).collect();

    let mut streams = HashMap::new();
    let (mut bytes, mut events) = (0u64, 0u64);
    for entry in list_dir(dir)? {
        if !entry.is_dir || !is_stream_id(&entry.name) {
            continue;
        }
        let Some(stream_entry) = known.remove(&entry.name) else {
            // Created after the last commit: nothing in it was committed.
            recovery.truncated_bytes += dir_size(&entry.path)?;
            fs::remove_dir_all(&entry.path).map_err(io_err(&entry.path))?;
            continue;
        };
        let stream = recover_stream(&entry.path, stream_entry, &quarantine, &mut recovery)?;
        match stream {
            Some(stream) => {
                for chunk in &stream.chunks {
                    bytes += chunk.len;
                    events += chunk.events;
                    next_seq = next_seq.max(chunk.seq + 1);
                }
                streams.insert(Arc::clone(&stream.dest), stream);
            }
            None => fs::remove_dir_all(&entry.path).map_err(io_err(&entry.path))?,
        }
    }
    // Streams the manifest lists without a directory were fully acked: nothing to do.
    if quarantine.used() {
        sync_dir(&quarantine.dir)?;
    }
    sync_dir(dir)?;

    let spool = Spool {
        dir: dir.to_path_buf(),
        flush_interval: options.flush_interval,
        options,
        streams,
        next_seq,
        bytes,
        events,
        dirs_to_sync: BTreeSet::new(),
        acked_since_commit: false,
        unwritten: 0,
        poisoned: None,
    };
    // Make the recovered state the committed one, so the decisions above are final.
    spool.store_manifest(recovery.source_state.as_deref())?;
    Ok((spool, recovery))
}

/// Recover one stream directory; `None` if nothing is left in it.
fn recover_stream(
    stream_dir: &Path,
    entry: StreamEntry,
    quarantine: &Quarantine,
    recovery: &mut Recovery,
) -> Result<Option<StreamState>, SpoolError> {
    let listed: HashMap<u64, ChunkEntry> = entry.chunks.iter().map(|c| (c.seq, *c)).collect();
    for file in list_dir(stream_dir)? {
        let known = chunk::parse_file_name(&file.name).is_some_and(|seq| listed.contains_key(&seq));
        if !known {
            recovery.truncated_bytes += file.len;
            if file.is_dir {
                fs::remove_dir_all(&file.path).map_err(io_err(&file.path))?;
            } else {
                fs::remove_file(&file.path).map_err(io_err(&file.path))?;
            }
        }
    }
    let id = entry.id;
    let mut chunks = VecDeque::with_capacity(entry.chunks.len());
    for listed in &entry.chunks {
        let path = stream_dir.join(chunk::file_name(listed.seq));
        let on_disk = match fs::metadata(&path) {
            Ok(meta) => meta.len(),
            // Acked before the crash, after the last commit.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(SpoolError::Io { path, source }),
        };
        if on_disk > listed.len {
            let file = File::options().write(true).open(&path).map_err(io_err(&path))?;
            file.set_len(listed.len).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
            recovery.truncated_bytes += on_disk - listed.len;
        }
        let scan = chunk::scan(&path, listed.len, false)?;
        let intact = !scan.damaged && scan.valid_len == listed.len && scan.records == listed.events;
        let (len, events) = if intact {
            (listed.len, listed.events)
        } else {
            tracing::error!(
                chunk = %path.display(),
                committed_events = listed.events,
                valid_events = scan.records,
                "spool chunk failed verification: quarantined, keeping its valid prefix"
            );
            // Saturating: the counts come from the manifest, which may be damaged.
            recovery.corrupt_events =
                recovery.corrupt_events.saturating_add(listed.events.saturating_sub(scan.records));
            let name = format!("{id}.{}", chunk::file_name(listed.seq));
            let moved = quarantine.take(&path, &name)?;
            if scan.records > 0 {
                copy_prefix(&moved, &path, scan.valid_len)?;
            }
            recovery.quarantined.push(moved);
            if scan.records == 0 {
                continue;
            }
            (scan.valid_len, scan.records)
        };
        chunks.push_back(Chunk {
            seq: listed.seq,
            path,
            len,
            events,
            sealed: true,
            committed_sealed: true,
            committed_len: len,
            writer: None,
        });
    }
    sync_dir(stream_dir)?;
    if chunks.is_empty() {
        return Ok(None);
    }
    Ok(Some(StreamState {
        id,
        dest: Arc::new(entry.dest),
        dir: stream_dir.to_path_buf(),
        chunks,
        open: None,
    }))
}

/// Write the first `len` bytes of `from` to `to` durably (temp file, fsync, rename).
fn copy_prefix(from: &Path, to: &Path, len: u64) -> Result<(), SpoolError> {
    let tmp = to.with_extension("chunk.tmp");
    let mut input = File::open(from).map_err(io_err(from))?.take(len);
    let mut output = File::create(&tmp).map_err(io_err(&tmp))?;
    io::copy(&mut input, &mut output).map_err(io_err(&tmp))?;
    output.flush().map_err(io_err(&tmp))?;
    output.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, to).map_err(io_err(to))
}

/// The quarantine directory, created on first use.
#[derive(Debug)]
struct Quarantine {
    dir: PathBuf,
    used: std::cell::Cell<bool>,
}

impl Quarantine {
    fn new(dir: PathBuf) -> Self {
        Self { dir, used: std::cell::Cell::new(false) }
    }

    fn used(&self) -> bool {
        self.used.get()
    }

    /// Move `path` into quarantine under `name` plus a unique suffix; returns the new path.
    fn take(&self, path: &Path, name: &str) -> Result<PathBuf, SpoolError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        self.used.set(true);
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        let mut target = self.dir.join(format!("{name}.{stamp}"));
        let mut attempt = 0u32;
        while target.exists() {
            attempt += 1;
            target = self.dir.join(format!("{name}.{stamp}.{attempt}"));
        }
        fs::rename(path, &target).map_err(io_err(path))?;
        Ok(target)
    }
}

/// One directory entry.
#[derive(Debug)]
struct DirEntry {
    name: String,
    path: PathBuf,
    is_dir: bool,
    len: u64,
}

/// The entries of `dir` (names that are not UTF-8 are skipped: the spool never makes them).
fn list_dir(dir: &Path) -> Result<Vec<DirEntry>, SpoolError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(io_err(&path))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push(DirEntry { name, is_dir: meta.is_dir(), len: meta.len(), path });
        }
    }
    Ok(out)
}

/// Bytes of the files directly in `dir`.
fn dir_size(dir: &Path) -> Result<u64, SpoolError> {
    Ok(list_dir(dir)?.iter().filter(|e| !e.is_dir).map(|e| e.len).sum())
}

fn remove_if_exists(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SpoolError::Io { path: path.to_path_buf(), source }),
    }
}
