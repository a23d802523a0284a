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
use std::time::{Duration, Instant, SystemTime};

use super::discover::{DirWatcher, Globs};
use super::file::{Phase, TailedFile, last_line_end};
use super::identity::{verify, verify_head};
use super::rotated;
use crate::telemetry::{LossReason, SkipReason};

use super::{Checkpoint, FileKey, ReadChunk, ReadFrom, SourceError, SourceEvent, SourceState, TailerOptions};
use crate::telemetry::OpenFailure;

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
    /// Paths whose live file could not be opened, reported once until it opens, with every
    /// file seen there meanwhile (identity, last size): those not read once it opens (kubelet
    /// deleted them meanwhile), or when the path goes away, are counted lost.
    unopenable: HashMap<PathBuf, Vec<(Inode, u64)>>,
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
        if options.max_decompressed_bytes == 0 {
            return Err(SourceError::Option {
                name: "max_decompressed_bytes",
                reason: "must be at least 1".to_owned(),
            });
        }
        if options.rescan_interval.is_zero() {
            return Err(SourceError::Option {
                name: "rescan_interval",
                reason: "must be positive".to_owned(),
            });
        }
        if options.watched_rescan_interval < options.rescan_interval {
            return Err(SourceError::Option {
                name: "watched_rescan_interval",
                reason: "must be at least rescan_interval".to_owned(),
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
            unopenable: HashMap::new(),
        })
    }

    /// Discover new files and notice rotation, truncation and deletion.
    pub fn scan(&mut self) -> Vec<SourceEvent> {
        self.watcher.begin_scan();
        let mut events = Vec::new();
        let restored_paths = self.restored.take().map(|restored| self.restore(restored, &mut events));
        // Only the first scan of a first install may start files late: later files are new
        // containers, every line of which is wanted.
        let first_start = restored_paths.as_ref().and_then(|_| self.first_start());
        let mut present = HashSet::new();
        let expanded = self.globs.expand();
        // A path that could not be opened and is gone now (its container removed) is
        // forgotten: reported again if it ever comes back and fails again. What it held was
        // never read.
        let gone: Vec<PathBuf> = self.unopenable.keys().filter(|p| !expanded.contains(*p)).cloned().collect();
        for path in gone {
            let seen = self.unopenable.remove(&path).unwrap_or_default();
            self.never_read(&path, seen, None, &mut events);
        }
        for path in expanded {
            let mut start = None;
            if let Some(restored_paths) = &restored_paths
                && !restored_paths.contains(&path)
            {
                // New since the state was saved (the container started while we were down):
                // what it rotated meanwhile is read too, ahead of its live file (unless a
                // first install is told to skip it).
                self.restore_path(&path, Vec::new(), first_start, &mut events);
                start = first_start;
            }
            if self.discover(&path, start, &mut events) {
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
                // Still linked somewhere: renamed (kubelet's rotation, caught between the
                // rename and the new file): it is a rotated file, kept in the state until its
                // successor has data, so a restart knows the rotations before it were read.
                let renamed = file.refresh().is_ok_and(|meta| meta.nlink() > 0);
                file.phase = if renamed { Phase::Rotated } else { Phase::Deleted };
            }
        }
        self.finish_drained();
        self.release_deleted_over_budget(&mut events);
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
    ///
    /// Returns whether a `scan` is worth doing: the watcher saw something, the periodic
    /// rescan is due, or there is no watcher (then every wake scans). An idle node with many
    /// files then stats them once per rescan period, not once per wake: `rescan_interval`,
    /// or `watched_rescan_interval` while every directory is watched and inotify reported
    /// no error (queue overflow) since the last scan.
    pub async fn changed(&mut self, timeout: Duration) -> bool {
        let period = if self.watcher.is_complete() {
            self.options.watched_rescan_interval
        } else {
            self.options.rescan_interval
        };
        let until_rescan =
            self.last_scan.map_or(Duration::ZERO, |last| period.saturating_sub(last.elapsed()));
        let wait = timeout.min(until_rescan);
        match self.watcher.wake() {
            Some(wake) => {
                let notified = tokio::time::timeout(wait, wake.notified()).await.is_ok();
                notified || self.last_scan.is_none_or(|last| last.elapsed() >= period)
            }
            None => {
                tokio::time::sleep(wait).await;
                true
            }
        }
    }

    /// How this tailer's first scan starts paths without a checkpoint, if not all from
    /// their start: only on a first install with `read_from = tail` or `ignore_older`.
    fn first_start(&self) -> Option<FirstStart> {
        if !self.options.first_install {
            return None;
        }
        let tail = self.options.read_from == ReadFrom::Tail;
        // A period longer than the clock goes back marks nothing old.
        let cutoff = self.options.ignore_older.and_then(|age| SystemTime::now().checked_sub(age));
        (tail || cutoff.is_some()).then_some(FirstStart { tail, cutoff })
    }

    /// Look at one glob match; true if a live file is followed there now. A new file is
    /// followed from its start, or, if `start` says so, from the end of its last line.
    fn discover(&mut self, path: &Path, start: Option<FirstStart>, events: &mut Vec<SourceEvent>) -> bool {
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
                let id = (meta.dev(), meta.ino());
                let first = !self.unopenable.contains_key(path);
                let seen = self.unopenable.entry(path.to_path_buf()).or_default();
                match seen.iter_mut().find(|(inode, _)| *inode == id) {
                    Some(file) => file.1 = meta.len(),
                    None => seen.push((id, meta.len())),
                }
                if first {
                    let reason = OpenFailure::of(&error);
                    events.push(SourceEvent::OpenFailed {
                        path: path.to_path_buf(),
                        reason,
                        error: error.to_string(),
                    });
                }
                return false;
            }
        };
        if let Some(seen) = self.unopenable.remove(path) {
            if live.is_none() {
                // It could not be opened for a while: what it rotated meanwhile is still next
                // to it, unread. Read those first, as a restart does for a path without
                // checkpoints.
                tracing::info!(path = %path.display(), "log file opens now; reading its rotations from meanwhile first");
                self.restore_path(path, Vec::new(), None, events);
            }
            self.never_read(path, seen, Some((meta.dev(), meta.ino())), events);
        }
        if self.inodes.contains_key(&(meta.dev(), meta.ino())) {
            // Already followed through another path (overlapping globs).
            return false;
        }
        // A file replacing a followed one is new content: `start` only concerns the file
        // first found at the path.
        let skip = start.filter(|_| live.is_none()).and_then(|start| start.skip(&meta));
        let offset = match skip {
            None => 0,
            Some(reason) => skip_to_last_line_end(path, &file, &meta, reason, events),
        };
        let tailed = TailedFile::open(path.to_path_buf(), real_dir(path), file, &meta, offset);
        let key = self.insert(tailed, false);
        events.push(SourceEvent::Opened { key, path: path.to_path_buf(), offset });
        true
    }

    /// Files seen at `path` while it could not be opened that are not followed now (nor are
    /// `opened`): deleted before they could be read. Their last seen size is lost.
    fn never_read(
        &self,
        path: &Path,
        seen: Vec<(Inode, u64)>,
        opened: Option<Inode>,
        events: &mut Vec<SourceEvent>,
    ) {
        for (inode, len) in seen {
            if Some(inode) != opened && !self.inodes.contains_key(&inode) {
                events.push(SourceEvent::Lost {
                    path: path.to_path_buf(),
                    from: 0,
                    to: Some(len),
                    reason: LossReason::Vanished,
                });
            }
        }
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
                reason: LossReason::Truncated,
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
    fn finish_drained(&mut self) {
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
            file.unlinked = nlink == 0;
            let is_final = file.phase == Phase::Deleted || nlink == 0 || successor_started;
            if file.has_unread() || !is_final {
                continue;
            }
            if file.known_len() > file.read_offset() {
                // An unterminated last line (a torn write, a cut compressed copy): no `\n`
                // will ever complete it, but its bytes are there. Hand them out as the last
                // line; the file finishes once they are read.
                tracing::info!(path = %file.path.display(), bytes = file.known_len() - file.read_offset(),
                    "rotated file ends without a newline: its last line is shipped as it is");
                file.final_tail = true;
                continue;
            }
            file.phase = Phase::Finished;
        }
    }

    /// Deleted files held open beyond `max_deleted_open_bytes` of disk: the oldest are
    /// closed, their unread rest reported lost. Lines already handed out still go out.
    fn release_deleted_over_budget(&mut self, events: &mut Vec<SourceEvent>) {
        let mut held: Vec<(FileKey, u64)> = self
            .files
            .iter()
            .filter(|(_, file)| file.unlinked && file.phase != Phase::Finished)
            .map(|(key, file)| (*key, file.known_len()))
            .collect();
        let mut total: u64 = held.iter().map(|(_, len)| len).sum();
        if total <= self.options.max_deleted_open_bytes {
            return;
        }
        // Keys grow with discovery: the smallest is the oldest file.
        held.sort_unstable();
        for (key, len) in held {
            if total <= self.options.max_deleted_open_bytes {
                break;
            }
            total -= len;
            let Some(file) = self.remove(key) else {
                continue;
            };
            tracing::warn!(path = %file.path.display(), bytes = len,
                budget = self.options.max_deleted_open_bytes,
                "deleted log files held open exceed their disk budget: closing the oldest");
            if file.known_len() > file.read_offset() {
                events.push(SourceEvent::Lost {
                    path: file.path.clone(),
                    from: file.read_offset(),
                    to: Some(file.known_len()),
                    reason: LossReason::Vanished,
                });
            }
            events.push(SourceEvent::Closed { key, path: file.path });
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

    /// Resume the restored checkpoints, path by path (see `restore_path`); returns the paths.
    fn restore(&mut self, restored: Vec<Checkpoint>, events: &mut Vec<SourceEvent>) -> HashSet<PathBuf> {
        rotated::clear_scratch(&self.options.scratch_dir);
        let mut by_path: Vec<(PathBuf, Vec<Checkpoint>)> = Vec::new();
        for checkpoint in restored {
            match by_path.iter_mut().find(|(path, _)| *path == checkpoint.path) {
                Some((_, group)) => group.push(checkpoint),
                None => by_path.push((checkpoint.path.clone(), vec![checkpoint])),
            }
        }
        let mut paths = HashSet::new();
        for (path, checkpoints) in by_path {
            self.restore_path(&path, checkpoints, None, events);
            paths.insert(path);
        }
        paths
    }

    /// Resume the checkpoints of one path (oldest first) against what is there now: the
    /// rotated siblings of its file (`0.log.<ts>`, `0.log.<ts>.gz`) in rotation order, then
    /// the live file at the path.
    ///
    /// - Each checkpoint is matched to one candidate: plain files by inode and fingerprint,
    ///   `.gz` files by the fingerprint of their decompressed head. So a checkpoint of a file
    ///   that was gzipped while we were down, or of a decompressed copy we read before a
    ///   second crash, finds the `.gz` again.
    /// - From the oldest matched sibling on, every sibling is read in rotation order:
    ///   matched ones from their checkpoint, the others (rotated while we were down, never
    ///   seen) whole. Older siblings were read before the checkpoint was taken. The live
    ///   file is resumed if it is the one checkpointed, else discovery reads it from 0.
    /// - A checkpoint matching no sibling is still looked for by inode next to its path
    ///   (renamed outside the rotation naming); failing that its rest is lost.
    /// - If no checkpoint of the path is found anywhere (or it has none: a path first seen
    ///   on the first scan after a start), every surviving sibling is read whole. kubelet deletes the oldest rotations first, so when the checkpointed file is
    ///   gone, those left rotated after it. The exception is a checkpoint of a file that was
    ///   still empty (offset 0, no head seen): neither its compressed copy nor a reused
    ///   inode can be told from it, so it places nothing, and if it is the only checkpoint
    ///   of the path, already read older siblings are read again: duplicates, never loss
    ///   (rare: a rotated file stays in the state until its successor has data). For
    ///   the same reason an unmatched checkpoint at offset 0 is not reported lost when
    ///   unseen siblings are read: its content is most likely among them.
    /// - `first_start` (a first install's first scan, for a path without checkpoints) may
    ///   skip unseen siblings instead of reading them (see `start_sibling`).
    fn restore_path(
        &mut self,
        path: &Path,
        checkpoints: Vec<Checkpoint>,
        first_start: Option<FirstStart>,
        events: &mut Vec<SourceEvent>,
    ) {
        let family = rotated::family(path);
        let live = open(path).ok();
        let live_inode = live.as_ref().map(|(_, meta)| (meta.dev(), meta.ino()));
        let mut candidates: Vec<Option<Candidate>> = family
            .as_ref()
            .map(rotated::siblings)
            .unwrap_or_default()
            .into_iter()
            .map(|sibling| Candidate::of_sibling(sibling, live_inode))
            .collect();
        let live_index = candidates.len();
        candidates.push(live.map(|(file, meta)| Candidate::Plain { found: path.to_path_buf(), file, meta }));

        let mut matched: Vec<Option<u64>> = vec![None; candidates.len()];
        // Candidates matched by a checkpoint that tells where reading stood among them.
        let mut anchors = vec![false; candidates.len()];
        let mut unmatched = Vec::new();
        for checkpoint in checkpoints {
            let index = (0..candidates.len()).find(|&i| {
                matched[i].is_none() && candidates[i].as_ref().is_some_and(|c| c.matches(&checkpoint))
            });
            match index {
                Some(i) => {
                    matched[i] = Some(checkpoint.offset);
                    // A checkpoint of a file that was empty vouches for no content, so its
                    // inode match may be a reused inode: it resumes from 0 (which is right
                    // either way) but says nothing about which siblings were read.
                    anchors[i] = checkpoint.offset > 0 || checkpoint.head.is_some();
                }
                None => unmatched.push(checkpoint),
            }
        }

        let mut renamed = Vec::new();
        let mut lost = Vec::new();
        for checkpoint in unmatched {
            match locate_renamed(&checkpoint) {
                Some(found) => renamed.push((checkpoint.offset, found)),
                None => lost.push(checkpoint),
            }
        }
        let first_sibling = match anchors.iter().position(|anchor| *anchor) {
            Some(i) => i,
            None if renamed.is_empty() => 0,
            // Found elsewhere: not gone, and where it stands among the siblings is unknown.
            None => live_index,
        };
        let reads_unseen_siblings = (first_sibling..live_index).any(|i| matched[i].is_none());
        for checkpoint in lost {
            if checkpoint.offset == 0 && reads_unseen_siblings {
                tracing::warn!(path = %checkpoint.path.display(), "file checkpointed at offset 0 not found; reading its rotated siblings whole instead");
                continue;
            }
            events.push(SourceEvent::Lost {
                path: checkpoint.path,
                from: checkpoint.offset,
                to: None,
                reason: LossReason::Vanished,
            });
        }
        let dir = family.map(|family| family.dir);
        for (offset, (found, file, meta)) in renamed {
            self.follow_restored(path, None, Candidate::Plain { found, file, meta }, offset, false, events);
        }
        for (index, candidate) in candidates.into_iter().enumerate().skip(first_sibling) {
            let Some(candidate) = candidate else {
                continue;
            };
            let is_live = index == live_index;
            match matched[index] {
                Some(offset) => self.follow_restored(path, dir.clone(), candidate, offset, is_live, events),
                // The live file is discovered by the glob scan.
                None if is_live => {}
                None => match first_start {
                    Some(start) => self.start_sibling(path, dir.clone(), candidate, start, events),
                    None => self.follow_restored(path, dir.clone(), candidate, 0, false, events),
                },
            }
        }
    }

    /// A rotated sibling found by a first install's first scan: read from 0, or if `start`
    /// skips it, reported skipped. A skipped plain file is still followed, from the end of
    /// its last line, so that it behaves like a file read to there: while the live file is
    /// still empty, its checkpoint is what tells a restart that the siblings before it are
    /// done (else they would all be read then). A skipped `.gz` is not decompressed just to
    /// be skipped, so it is not followed: its range is its compressed size.
    fn start_sibling(
        &mut self,
        path: &Path,
        dir: Option<PathBuf>,
        candidate: Candidate,
        start: FirstStart,
        events: &mut Vec<SourceEvent>,
    ) {
        match candidate {
            Candidate::Gz { found } => {
                // Unknown metadata: read it (reading too much is the safe side).
                let skipped =
                    fs::metadata(&found).ok().and_then(|meta| Some((start.skip(&meta)?, meta.len())));
                match skipped {
                    Some((reason, len)) => {
                        if len > 0 {
                            events.push(SourceEvent::Skipped { path: found, from: 0, to: len, reason });
                        }
                    }
                    None => self.follow_restored(path, dir, Candidate::Gz { found }, 0, false, events),
                }
            }
            Candidate::Plain { found, file, meta } => {
                let offset = match start.skip(&meta) {
                    // Followed already (overlapping globs): whatever the other path does.
                    Some(_) if self.inodes.contains_key(&(meta.dev(), meta.ino())) => return,
                    Some(reason) => skip_to_last_line_end(&found, &file, &meta, reason, events),
                    None => 0,
                };
                self.follow_restored(
                    path,
                    dir,
                    Candidate::Plain { found, file, meta },
                    offset,
                    false,
                    events,
                );
            }
        }
    }

    /// Follow a restored candidate of `path` from `offset`: the live file, or a rotated one
    /// ahead of it (a `.gz` through a decompressed scratch copy).
    fn follow_restored(
        &mut self,
        path: &Path,
        dir: Option<PathBuf>,
        candidate: Candidate,
        offset: u64,
        is_live: bool,
        events: &mut Vec<SourceEvent>,
    ) {
        let Some((file, meta, offset, dir)) = self.open_restored(candidate, offset, dir, events) else {
            return;
        };
        let mut tailed = TailedFile::open(path.to_path_buf(), dir, file, &meta, offset);
        if !is_live {
            tailed.phase = Phase::Rotated;
        }
        let key = self.insert(tailed, !is_live);
        events.push(SourceEvent::Opened { key, path: path.to_path_buf(), offset });
        if !is_live {
            events.push(SourceEvent::Rotated { key, path: path.to_path_buf() });
        }
    }

    /// The descriptor, metadata, start offset and watch directory to follow `candidate`
    /// with; `None` if it is followed already or cannot be read at all (reported lost).
    fn open_restored(
        &self,
        candidate: Candidate,
        offset: u64,
        dir: Option<PathBuf>,
        events: &mut Vec<SourceEvent>,
    ) -> Option<(File, Metadata, u64, Option<PathBuf>)> {
        match candidate {
            Candidate::Plain { found, file, meta } => {
                if self.inodes.contains_key(&(meta.dev(), meta.ino())) {
                    return None;
                }
                // Shorter than the checkpoint with the same head: rewritten; start over.
                let offset = if offset <= meta.len() { offset } else { 0 };
                Some((file, meta, offset, real_dir(&found).or(dir)))
            }
            Candidate::Gz { found } => {
                let scratch = &self.options.scratch_dir;
                let copy = match rotated::decompress(&found, scratch, self.options.max_decompressed_bytes) {
                    Ok(copy) => copy,
                    Err(error) => {
                        tracing::error!(%error, "compressed log file unreadable");
                        events.push(SourceEvent::Lost {
                            path: found,
                            from: offset,
                            to: None,
                            reason: LossReason::Unreadable,
                        });
                        return None;
                    }
                };
                let len = copy.meta.len();
                let offset = match &copy.damage {
                    None if offset <= len => offset,
                    // Complete but shorter than the checkpoint: rewritten; start over.
                    None => 0,
                    Some(damage) => {
                        tracing::error!(path = %found.display(), ?damage, decompressed = len, "compressed log file only partly readable");
                        events.push(SourceEvent::Lost {
                            path: found,
                            from: len.max(offset),
                            to: None,
                            reason: LossReason::Unreadable,
                        });
                        offset.min(len)
                    }
                };
                Some((copy.file, copy.meta, offset, dir))
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
    #[cfg(test)]
    if let Some(error) = tests_seam::open_error(path) {
        return Err(error);
    }
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

/// How a first install's first scan starts the files of a path without a checkpoint.
#[derive(Debug, Clone, Copy)]
struct FirstStart {
    /// `read_from = tail`: every file starts at its end.
    tail: bool,
    /// `ignore_older`: files last modified before this start at their end.
    cutoff: Option<SystemTime>,
}

impl FirstStart {
    /// Why the file with `meta` starts at its end, if it does. An unknown modification time
    /// is not old: reading too much is the safe side.
    fn skip(&self, meta: &Metadata) -> Option<SkipReason> {
        if self.tail {
            return Some(SkipReason::ReadFromTail);
        }
        let cutoff = self.cutoff?;
        meta.modified().ok().is_some_and(|modified| modified < cutoff).then_some(SkipReason::IgnoreOlder)
    }
}

/// Where a skipped file (`found`, open as `file`) starts: just after its last `\n`, so a
/// last line still being written is read whole once it completes. Reports the bytes before
/// it skipped. If that end cannot be found, the file is read from its start instead.
fn skip_to_last_line_end(
    found: &Path,
    file: &File,
    meta: &Metadata,
    reason: SkipReason,
    events: &mut Vec<SourceEvent>,
) -> u64 {
    match last_line_end(file, meta.len()) {
        Ok(offset) => {
            if offset > 0 {
                events.push(SourceEvent::Skipped { path: found.to_path_buf(), from: 0, to: offset, reason });
            }
            offset
        }
        Err(error) => {
            tracing::warn!(path = %found.display(), %error, "finding the last line of a log file to skip to; reading it from the start");
            0
        }
    }
}

/// A file a restored checkpoint may be found in.
#[derive(Debug)]
enum Candidate {
    /// An uncompressed file, open.
    Plain { found: PathBuf, file: File, meta: Metadata },
    /// A gzipped rotation, decompressed only if it is to be read.
    Gz { found: PathBuf },
}

impl Candidate {
    /// A rotated sibling (`None` if it vanished or is the live file under another name).
    fn of_sibling(sibling: rotated::Sibling, live_inode: Option<Inode>) -> Option<Self> {
        if sibling.compressed {
            return Some(Self::Gz { found: sibling.path });
        }
        let (file, meta) = open(&sibling.path).ok()?;
        if live_inode == Some((meta.dev(), meta.ino())) {
            return None;
        }
        Some(Self::Plain { found: sibling.path, file, meta })
    }

    /// Was `checkpoint` taken of this file (or of a copy of its content)?
    fn matches(&self, checkpoint: &Checkpoint) -> bool {
        match self {
            Self::Plain { file, meta, .. } => is_checkpointed(checkpoint, file, meta),
            Self::Gz { found } => rotated::gz_matches(found, checkpoint),
        }
    }
}

/// Is `file` the one `checkpoint` was taken of: same inode, content still as vouched for,
/// and starting with the head it had (which tells a reused inode from the file of a
/// checkpoint that vouches for little)?
fn is_checkpointed(checkpoint: &Checkpoint, file: &File, meta: &Metadata) -> bool {
    (meta.dev(), meta.ino()) == (checkpoint.id.dev, checkpoint.id.ino)
        && verify(file, &checkpoint.id, checkpoint.offset).unwrap_or(false)
        && checkpoint.head.is_none_or(|head| verify_head(file, &head).unwrap_or(false))
}

/// Find the file a checkpoint was taken of by inode among the entries of the directories
/// its path points into (renamed while we were not running, to any name). A checkpoint of
/// a file that was empty has nothing to tell a reused inode by, so it is not looked for;
/// nor are compressed files (a new inode by construction).
fn locate_renamed(checkpoint: &Checkpoint) -> Option<(PathBuf, File, Metadata)> {
    if checkpoint.offset == 0 && checkpoint.head.is_none() {
        return None;
    }
    for dir in search_dirs(&checkpoint.path) {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let candidate = entry.path();
            if candidate.extension().is_some_and(|ext| ext == "gz") {
                continue;
            }
            let same_inode = entry.file_type().is_ok_and(|t| t.is_file())
                && entry
                    .metadata()
                    .is_ok_and(|m| (m.dev(), m.ino()) == (checkpoint.id.dev, checkpoint.id.ino));
            if !same_inode {
                continue;
            }
            if let Ok((file, meta)) = open(&candidate)
                && is_checkpointed(checkpoint, &file, &meta)
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

/// Tests run as root, whom no file mode refuses: they make `open` fail here instead.
#[cfg(test)]
pub(super) mod tests_seam {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::io;
    use std::path::{Path, PathBuf};

    thread_local! {
        static FAILING: RefCell<HashMap<PathBuf, i32>> = RefCell::new(HashMap::new());
    }

    /// Opening a file through `path` fails with `errno` (on this thread) until `heal`.
    pub(in crate::source) fn fail_open(path: &Path, errno: i32) {
        FAILING.with(|f| f.borrow_mut().insert(path.to_path_buf(), errno));
    }

    /// Opening `path` works again.
    pub(in crate::source) fn heal(path: &Path) {
        FAILING.with(|f| f.borrow_mut().remove(path));
    }

    pub(super) fn open_error(path: &Path) -> Option<io::Error> {
        FAILING.with(|f| f.borrow().get(path).map(|errno| io::Error::from_raw_os_error(*errno)))
    }
}
