//! The tailer: follows every file the globs match, by identity, through rotation,
//! truncation, deletion and restarts.
//!
//! Per discovered path it keeps a chain of files, oldest first: rotated files still being
//! drained, then the live one. Only the oldest unfinished file of a chain is readable, so
//! lines leave each path in the order they were written.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::discover::{DirWatcher, Globs};
use super::file::{Phase, TailedFile};
use super::identity::verify;
use super::{Checkpoint, FileKey, ReadChunk, SourceError, SourceEvent, SourceState, TailerOptions};

/// `(st_dev, st_ino)`: unique among files we hold open.
type Inode = (u64, u64);

/// Follows every matching file.
#[derive(Debug)]
pub struct Tailer {
    options: TailerOptions,
    globs: Globs,
    files: BTreeMap<FileKey, TailedFile>,
    /// Per discovered path: its files, oldest first (drained rotations, then the live one).
    chains: BTreeMap<PathBuf, Vec<FileKey>>,
    /// Which key holds each open inode (one descriptor per file, however it is reached).
    inodes: HashMap<Inode, FileKey>,
    next_key: u64,
    /// Checkpoints to match on the first scan.
    restored: Option<Vec<Checkpoint>>,
    watcher: DirWatcher,
    last_scan: Option<Instant>,
}

impl Tailer {
    /// Start tailing; files in `restored` resume at their checkpoint when found by identity
    /// (on the first `scan`).
    pub fn new(options: TailerOptions, restored: SourceState) -> Result<Self, SourceError> {
        if options.read_chunk_bytes == 0 {
            return Err(SourceError::Option {
                name: "read_chunk_bytes",
                reason: "must be at least 1".to_owned(),
            });
        }
        if options.rescan_interval.is_zero() {
            return Err(SourceError::Option {
                name: "rescan_interval",
                reason: "must be positive".to_owned(),
            });
        }
        Ok(Self {
            globs: Globs::new(&options.globs)?,
            options,
            files: BTreeMap::new(),
            chains: BTreeMap::new(),
            inodes: HashMap::new(),
            next_key: 0,
            restored: Some(restored.files),
            watcher: DirWatcher::new(),
            last_scan: None,
        })
    }

    /// Discover new files and notice rotation, truncation and deletion.
    pub fn scan(&mut self) -> Vec<SourceEvent> {
        let mut events = Vec::new();
        if let Some(restored) = self.restored.take() {
            self.restore(restored, &mut events);
        }
        let mut present = HashSet::new();
        for path in self.globs.expand() {
            if self.discover(&path, &mut events) {
                present.insert(path);
            }
        }
        for (path, chain) in &self.chains {
            if present.contains(path) {
                continue;
            }
            if let Some(file) = chain.last().and_then(|key| self.files.get_mut(key))
                && file.phase == Phase::Live
            {
                file.phase = Phase::Deleted;
            }
        }
        self.finish_drained(&mut events);
        self.forget_finished(&mut events);
        let mut dirs: BTreeSet<PathBuf> = self.globs.roots().clone();
        dirs.extend(self.files.values().filter_map(|file| file.dir.clone()));
        self.watcher.sync(&dirs);
        self.last_scan = Some(Instant::now());
        events
    }

    /// Files with unread complete lines, oldest rotation first per path.
    pub fn readable(&self) -> Vec<FileKey> {
        let mut keys: Vec<FileKey> = self
            .chains
            .values()
            .filter_map(|chain| {
                let oldest_unfinished = chain
                    .iter()
                    .filter_map(|key| self.files.get(key).map(|file| (*key, file)))
                    .find(|(_, file)| file.phase != Phase::Finished)?;
                oldest_unfinished.1.has_unread().then_some(oldest_unfinished.0)
            })
            .collect();
        keys.sort_unstable();
        keys
    }

    /// The path a file was discovered at.
    pub fn path(&self, key: FileKey) -> Option<&Path> {
        self.files.get(&key).map(|file| file.path.as_path())
    }

    /// Append up to `read_chunk_bytes` of complete lines to `out` (one whole line if it is
    /// longer). `None` if there is no complete line, the key is unknown, or an older file of
    /// the same path still has to be drained first.
    pub fn read(&mut self, key: FileKey, out: &mut Vec<u8>) -> Result<Option<ReadChunk>, SourceError> {
        if self.waits_for_older(key) {
            return Ok(None);
        }
        let limit = self.options.read_chunk_bytes;
        let Some(file) = self.files.get_mut(&key) else {
            return Ok(None);
        };
        if file.phase == Phase::Finished {
            return Ok(None);
        }
        file.read_lines(out, limit).map_err(|source| SourceError::Io { path: file.path.clone(), source })
    }

    /// Everything before `offset` of `key` is in the spool (not yet committed).
    pub fn set_safe_offset(&mut self, key: FileKey, offset: u64) {
        if let Some(file) = self.files.get_mut(&key) {
            file.set_safe_offset(offset);
        }
    }

    /// Checkpoints of every followed file, at their safe offsets, oldest first per path.
    pub fn state(&self) -> SourceState {
        let followed =
            self.chains.values().flatten().filter_map(|key| self.files.get(key)).map(TailedFile::checkpoint);
        // Before the first scan, the restored checkpoints are still the truth.
        let pending = self.restored.iter().flatten().cloned();
        SourceState { files: followed.chain(pending).collect() }
    }

    /// Wait until a watched directory changes, the next periodic rescan is due, or `timeout`
    /// passes.
    pub async fn changed(&mut self, timeout: Duration) {
        let until_rescan = self
            .last_scan
            .map_or(Duration::ZERO, |last| self.options.rescan_interval.saturating_sub(last.elapsed()));
        let wait = timeout.min(until_rescan);
        match self.watcher.wake() {
            Some(wake) => {
                // Elapsed means "nothing changed": the caller scans either way.
                let _ = tokio::time::timeout(wait, wake.notified()).await;
            }
            None => tokio::time::sleep(wait).await,
        }
    }

    /// Look at one glob match; true if a live file is followed there now.
    fn discover(&mut self, path: &Path, events: &mut Vec<SourceEvent>) -> bool {
        let Ok(meta) = fs::metadata(path) else {
            // Dangling symlink: the file is gone.
            return false;
        };
        if !meta.is_file() {
            return false;
        }
        let live = self.live_key(path);
        if let Some(key) = live
            && let Some(file) = self.files.get_mut(&key)
        {
            if file.inode() == (meta.dev(), meta.ino()) {
                if meta.len() < file.read_offset() {
                    self.truncated(key, meta.len(), events);
                } else {
                    file.observe_len(meta.len());
                }
                return true;
            }
            // The path resolves to another file: this one was renamed away.
            file.phase = Phase::Rotated;
            events.push(SourceEvent::Rotated { key, path: path.to_path_buf() });
        }
        let (file, meta) = match open(path) {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "opening log file");
                return false;
            }
        };
        if self.inodes.contains_key(&(meta.dev(), meta.ino())) {
            // Already followed through another path (overlapping globs).
            return false;
        }
        let tailed = TailedFile::open(path.to_path_buf(), real_dir(path), file, &meta, 0);
        let key = self.insert(tailed, false);
        events.push(SourceEvent::Opened { key, path: path.to_path_buf(), offset: 0 });
        true
    }

    /// The live file at `path` shrank below its read offset (copytruncate): the content
    /// from 0 is new. It gets a new key so that safe offsets still in flight for the old
    /// content cannot be mistaken for offsets in the new one.
    fn truncated(&mut self, key: FileKey, new_len: u64, events: &mut Vec<SourceEvent>) {
        let Some(old) = self.files.remove(&key) else {
            return;
        };
        let path = old.path.clone();
        events.push(SourceEvent::Truncated { key, path: path.clone() });
        if old.known_len() > old.read_offset() {
            // Seen but not yet read when the content was cut away.
            events.push(SourceEvent::Lost {
                path: path.clone(),
                from: old.read_offset(),
                to: Some(old.known_len()),
            });
        }
        let inode = old.inode();
        let new_key = self.alloc_key();
        self.files.insert(new_key, old.restart(new_len));
        self.inodes.insert(inode, new_key);
        if let Some(slot) = self.chains.get_mut(&path).and_then(|chain| chain.iter_mut().find(|k| **k == key))
        {
            *slot = new_key;
        }
        events.push(SourceEvent::Opened { key: new_key, path, offset: 0 });
    }

    /// Rotated and deleted files read to their end become finished. A rotated file is
    /// only final once nobody writes to it: its successor has data or it was unlinked.
    fn finish_drained(&mut self, events: &mut Vec<SourceEvent>) {
        let draining: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, file)| matches!(file.phase, Phase::Rotated | Phase::Deleted))
            .map(|(key, _)| *key)
            .collect();
        for key in draining {
            let successor_started = self.successor_started(key);
            let Some(file) = self.files.get_mut(&key) else {
                continue;
            };
            let nlink = match file.refresh() {
                Ok(meta) => meta.nlink(),
                Err(error) => {
                    tracing::warn!(path = %file.path.display(), %error, "stat of open log file");
                    continue;
                }
            };
            let is_final = file.phase == Phase::Deleted || nlink == 0 || successor_started;
            if file.has_unread() || !is_final {
                continue;
            }
            if file.known_len() > file.read_offset() {
                // An unterminated last line: no `\n` will ever complete it.
                events.push(SourceEvent::Lost {
                    path: file.path.clone(),
                    from: file.read_offset(),
                    to: Some(file.known_len()),
                });
            }
            file.phase = Phase::Finished;
        }
    }

    /// Finished files whose every handed-out byte is in the spool are forgotten.
    fn forget_finished(&mut self, events: &mut Vec<SourceEvent>) {
        let done: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, file)| file.phase == Phase::Finished && file.is_safe())
            .map(|(key, _)| *key)
            .collect();
        for key in done {
            if let Some(file) = self.remove(key) {
                events.push(SourceEvent::Closed { key, path: file.path });
            }
        }
    }

    /// Resume every restored checkpoint whose file is found by identity, at its path or
    /// renamed next to it; the others are lost from their offset on.
    fn restore(&mut self, restored: Vec<Checkpoint>, events: &mut Vec<SourceEvent>) {
        for checkpoint in restored {
            let Some((found, file, meta)) = locate(&checkpoint) else {
                events.push(SourceEvent::Lost { path: checkpoint.path, from: checkpoint.offset, to: None });
                continue;
            };
            if self.inodes.contains_key(&(meta.dev(), meta.ino())) {
                continue;
            }
            // Shorter than the checkpoint with the same head: rewritten; start over.
            let offset = if checkpoint.offset <= meta.len() { checkpoint.offset } else { 0 };
            let path = checkpoint.path;
            let mut tailed = TailedFile::open(path.clone(), real_dir(&found), file, &meta, offset);
            let rotated = found != path;
            if rotated {
                tailed.phase = Phase::Rotated;
            }
            let key = self.insert(tailed, rotated);
            events.push(SourceEvent::Opened { key, path: path.clone(), offset });
            if rotated {
                events.push(SourceEvent::Rotated { key, path });
            }
        }
    }

    /// Follow `file` under a new key; `before_live` puts it ahead of the path's live file.
    fn insert(&mut self, file: TailedFile, before_live: bool) -> FileKey {
        let key = self.alloc_key();
        self.inodes.insert(file.inode(), key);
        let chain = self.chains.entry(file.path.clone()).or_default();
        let live_at = chain.iter().position(|k| self.files.get(k).is_some_and(|f| f.phase == Phase::Live));
        match live_at {
            Some(index) if before_live => chain.insert(index, key),
            _ => chain.push(key),
        }
        self.files.insert(key, file);
        key
    }

    fn remove(&mut self, key: FileKey) -> Option<TailedFile> {
        let file = self.files.remove(&key)?;
        if self.inodes.get(&file.inode()) == Some(&key) {
            self.inodes.remove(&file.inode());
        }
        if let Some(chain) = self.chains.get_mut(&file.path) {
            chain.retain(|k| *k != key);
            if chain.is_empty() {
                self.chains.remove(&file.path);
            }
        }
        Some(file)
    }

    fn alloc_key(&mut self) -> FileKey {
        self.next_key += 1;
        FileKey(self.next_key)
    }

    /// The file currently at `path`, if followed.
    fn live_key(&self, path: &Path) -> Option<FileKey> {
        let key = *self.chains.get(path)?.last()?;
        (self.files.get(&key)?.phase == Phase::Live).then_some(key)
    }

    /// Has a file that replaced `key` at its path received data (so writers moved on)?
    fn successor_started(&self, key: FileKey) -> bool {
        let Some(path) = self.files.get(&key).map(|file| &file.path) else {
            return false;
        };
        let Some(chain) = self.chains.get(path) else {
            return false;
        };
        chain
            .iter()
            .skip_while(|k| **k != key)
            .skip(1)
            .filter_map(|later| self.files.get(later))
            .any(|later| later.known_len() > 0)
    }

    /// Is an older file of the same path not yet finished?
    fn waits_for_older(&self, key: FileKey) -> bool {
        let Some(chain) = self.files.get(&key).and_then(|f| self.chains.get(&f.path)) else {
            return false;
        };
        chain
            .iter()
            .take_while(|k| **k != key)
            .any(|k| self.files.get(k).is_some_and(|f| f.phase != Phase::Finished))
    }
}

/// Open `path` (following symlinks) and `fstat` what was opened.
fn open(path: &Path) -> io::Result<(File, Metadata)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok((file, meta))
}

/// Directory of the real file behind `path` (where rotation and appends happen).
fn real_dir(path: &Path) -> Option<PathBuf> {
    fs::canonicalize(path).ok().and_then(|real| real.parent().map(Path::to_path_buf))
}

/// Find the file a checkpoint was taken of: at its path, or renamed within the directory
/// its path points into (rotated while we were not running). Returns where it was found.
fn locate(checkpoint: &Checkpoint) -> Option<(PathBuf, File, Metadata)> {
    let is_it = |file: &File, meta: &Metadata| {
        (meta.dev(), meta.ino()) == (checkpoint.id.dev, checkpoint.id.ino)
            && verify(file, &checkpoint.id, checkpoint.offset).unwrap_or(false)
    };
    if let Ok((file, meta)) = open(&checkpoint.path)
        && is_it(&file, &meta)
    {
        return Some((checkpoint.path.clone(), file, meta));
    }
    for dir in search_dirs(&checkpoint.path) {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let candidate = entry.path();
            let same_inode = entry.file_type().is_ok_and(|t| t.is_file())
                && entry
                    .metadata()
                    .is_ok_and(|m| (m.dev(), m.ino()) == (checkpoint.id.dev, checkpoint.id.ino));
            if !same_inode {
                continue;
            }
            if let Ok((file, meta)) = open(&candidate)
                && is_it(&file, &meta)
            {
                return Some((candidate, file, meta));
            }
        }
    }
    None
}

/// Where a file reached through `path` may have been renamed to: the directory its symlink
/// points into, and its own directory.
fn search_dirs(path: &Path) -> Vec<PathBuf> {
    let parent = path.parent().map(Path::to_path_buf);
    let target_dir = fs::read_link(path).ok().and_then(|target| {
        let target = match &parent {
            Some(parent) if target.is_relative() => parent.join(target),
            _ => target,
        };
        target.parent().map(Path::to_path_buf)
    });
    let mut dirs: Vec<PathBuf> = target_dir.into_iter().chain(parent).collect();
    dirs.dedup();
    dirs
}
