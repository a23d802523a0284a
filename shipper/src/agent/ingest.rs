//! The ingest loop: tail files, run each through its pipeline into the spool, and group-commit
//! the spool together with the file checkpoints.
//!
//! It runs on a blocking thread: file reads and fsyncs are blocking calls, and one thread
//! keeps the spool's appends ordered without per-line locking (the spool lock is taken once
//! per read chunk).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::pipeline::{Carry, FilePipeline, Routed};
use crate::config::Config;
use crate::kube::PodCache;
use crate::multiline::Detector;
use crate::route::Routing;
use crate::sink::Pace;
use crate::source::{FileKey, SourceEvent, Tailer, container_ref};
use crate::spool::{Spool, SpoolError};
use crate::telemetry::{InternalEvent, Metrics, SourceLost, SourceOpenFailed, SourceSkipped, UnroutableFile};

/// How long a partial line waits for its continuation before it is shipped as it is.
const PARTIAL_IDLE_FLUSH: Duration = Duration::from_secs(5);

/// Most bytes all files together may hold for unfinished partial lines (each holds at most
/// `MAX_LINE_BYTES` per stream). Past it the biggest holders send what they have as
/// `continued` pieces, until half the budget is held: 100 containers each holding a 1 MiB
/// partial line cost this much memory, not 100 MiB.
pub const PARTIAL_LINES_BUDGET: usize = 32 * 1024 * 1024;

/// Which files release their partial lines, biggest first, so that what stays held is at
/// most half the budget (hysteresis: not a release at every read once at the budget).
fn to_release(mut held: Vec<(FileKey, usize)>, budget: usize) -> Vec<FileKey> {
    let mut total: usize = held.iter().map(|(_, bytes)| bytes).sum();
    if total <= budget {
        return Vec::new();
    }
    held.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut keys = Vec::new();
    for (key, bytes) in held {
        if total <= budget / 2 {
            break;
        }
        total -= bytes;
        keys.push(key);
    }
    keys
}

/// The routing settings cannot be compiled (only for a `Config` not built by validation).
#[derive(Debug, thiserror::Error)]
pub enum IngestOptionsError {
    /// Templates or rules.
    #[error(transparent)]
    Routing(#[from] crate::route::RoutingError),
    /// A custom multiline detector.
    #[error(transparent)]
    Multiline(#[from] crate::multiline::MultilineError),
}

/// Tunables of the ingest loop.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Cluster name for routing.
    pub cluster: String,
    /// Node name for routing and messages.
    pub node: String,
    /// Names, filters, multiline choice and message format.
    pub routing: Routing,
    /// Multiline detectors by name (built-in and custom).
    pub detectors: HashMap<String, Detector>,
    /// How long a file's lines wait for pod metadata.
    pub metadata_wait: Duration,
    /// Group-commit period.
    pub commit_interval: Duration,
    /// Commit early after this many appended bytes.
    pub commit_bytes: usize,
    /// Idle wait when nothing was read.
    pub idle_wait: Duration,
    /// The effective flush interval open chunks are sealed by.
    pub pace: Arc<Pace>,
}

impl IngestOptions {
    /// From the effective configuration.
    pub fn from_config(config: &Config) -> Result<Self, IngestOptionsError> {
        Ok(IngestOptions {
            detectors: config.detectors()?,
            cluster: config.cluster_name.clone(),
            node: config.node_name.clone(),
            routing: config.routing()?,
            metadata_wait: config.metadata_wait,
            commit_interval: Duration::from_millis(200).min(config.flush_interval),
            commit_bytes: 8 * 1024 * 1024,
            idle_wait: Duration::from_millis(100),
            pace: Arc::new(Pace::new(config.flush_interval, config.flush_interval_max)),
        })
    }
}

/// The ingest loop's state.
#[derive(Debug)]
pub struct Ingest {
    tailer: Tailer,
    spool: Arc<Mutex<Spool>>,
    pods: Arc<PodCache>,
    metrics: Arc<Metrics>,
    options: IngestOptions,
    wake: Arc<Notify>,
    files: HashMap<FileKey, FilePipeline>,
    /// Safe offsets of data appended since the last commit.
    pending_safe: HashMap<FileKey, u64>,
    /// Files whose names say nothing about their pod (warned about once).
    unroutable: std::collections::HashSet<FileKey>,
    /// The tailer reported a change since the last commit (its state differs from the stored one).
    source_changed: bool,
    /// The next pass takes the tailer's news first.
    scan_due: bool,
    /// When the last group commit was due.
    last_commit: Instant,
    /// Bytes read since then.
    uncommitted: usize,
    buf: Vec<u8>,
}

impl Ingest {
    /// Assemble the loop.
    pub fn new(
        tailer: Tailer,
        spool: Arc<Mutex<Spool>>,
        pods: Arc<PodCache>,
        metrics: Arc<Metrics>,
        options: IngestOptions,
        wake: Arc<Notify>,
    ) -> Self {
        Ingest {
            tailer,
            spool,
            pods,
            metrics,
            options,
            wake,
            files: HashMap::new(),
            pending_safe: HashMap::new(),
            unroutable: std::collections::HashSet::new(),
            source_changed: true,
            scan_due: true,
            last_commit: crate::clock::now(),
            uncommitted: 0,
            buf: Vec::with_capacity(512 * 1024),
        }
    }

    /// Run until `shutdown` fires, then seal and commit everything read so far.
    pub fn run_blocking(mut self, shutdown: CancellationToken) -> Result<(), SpoolError> {
        let handle = tokio::runtime::Handle::current();
        while !shutdown.is_cancelled() {
            if self.step()? == 0 {
                let wait = self.options.idle_wait;
                self.scan_due = handle.block_on(async {
                    tokio::select! {
                        _ = shutdown.cancelled() => true,
                        changed = self.tailer.changed(wait) => changed,
                    }
                });
            }
        }
        self.finish()
    }

    /// One pass: take the tailer's news when a scan is due, read every readable file once
    /// (unless the spool is full), and group-commit when the commit interval or byte budget
    /// is reached. Returns the bytes read; after a pass that read nothing the caller waits
    /// for the tailer (and sets `scan_due` from what it saw), or a test moves the clock on.
    pub fn step(&mut self) -> Result<usize, SpoolError> {
        if self.scan_due {
            self.handle_events();
        }
        let full = self.lock_spool().is_full();
        Metrics::set(&self.metrics.backpressure, i64::from(full));
        let read = if full { 0 } else { self.read_ready()? };
        self.uncommitted += read;
        if crate::clock::now().saturating_duration_since(self.last_commit) >= self.options.commit_interval
            || self.uncommitted >= self.options.commit_bytes
        {
            if self.uncommitted > 0 || self.needs_commit() {
                self.commit(false)?;
            }
            // The next interval counts from the end of this commit (an fsync can be slow).
            self.last_commit = crate::clock::now();
            self.uncommitted = 0;
        }
        // Scan again when the tailer saw a change, a rescan is due, or lines are flowing.
        self.scan_due = true;
        Ok(read)
    }

    /// Stop reading: seal and commit everything read so far (shutdown).
    pub fn finish(mut self) -> Result<(), SpoolError> {
        self.commit(true)
    }

    fn lock_spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle_events(&mut self) {
        let events = self.tailer.scan();
        self.source_changed |= !events.is_empty();
        for event in events {
            match event {
                SourceEvent::Opened { path, offset, .. } => {
                    tracing::info!(path = %path.display(), offset, "tailing");
                }
                SourceEvent::Rotated { path, .. } => {
                    tracing::info!(path = %path.display(), "rotated; draining the old file")
                }
                SourceEvent::Truncated { key, path } => {
                    // The tailer retires the key and reopens the file under a new one.
                    self.finish_file(key, &path);
                    tracing::warn!(path = %path.display(), "truncated; reading from the start");
                }
                SourceEvent::Closed { key, path } => {
                    self.finish_file(key, &path);
                    tracing::info!(path = %path.display(), "finished");
                }
                SourceEvent::Lost { path, from, to, reason } => {
                    SourceLost { path: &path, from, to, reason }.emit(&self.metrics);
                }
                SourceEvent::OpenFailed { path, reason, error } => {
                    SourceOpenFailed { path: &path, reason, error: &error }.emit(&self.metrics);
                }
                SourceEvent::Skipped { path, from, to, reason } => {
                    // Skipped by configuration (a first install's read_from / ignore_older):
                    // counted apart from losses.
                    SourceSkipped { path: &path, from, to, reason }.emit(&self.metrics);
                }
            }
        }
        Metrics::set(&self.metrics.files_tailed, self.files.len() as i64);
    }

    /// A new file at `path` is about to be read, so any older file at the same path (rotated
    /// away) has been read to its end: spool its unfinished partial line, if any, and let its
    /// checkpoint reach the end so the tailer can let go of it. A line the runtime split across
    /// a rotation therefore arrives as two lines — never lost. An unfinished stack trace is
    /// returned instead, for the new file to continue; the old file's checkpoint waits at the
    /// trace's start until it is spooled, so a crash re-reads it from there.
    fn retire_rotated(&mut self, path: &std::path::Path) -> Vec<(FileKey, u64, Carry)> {
        let older: Vec<FileKey> =
            self.files.keys().copied().filter(|k| self.tailer.path(*k).is_some_and(|p| p == path)).collect();
        let mut carries = Vec::new();
        for key in older {
            if let Some(mut file) = self.files.remove(&key) {
                let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
                match file.hand_over(&mut spool, &self.metrics) {
                    Ok(handed) => {
                        // With a trace carried on, this file's checkpoint stays at the
                        // trace's start until the next file spools it.
                        self.pending_safe.insert(key, handed.safe);
                        self.pending_safe.extend(handed.released);
                        if let Some(carry) = handed.carry {
                            carries.push((key, file.read_end, carry));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, path = %path.display(), "spooling a rotated file's last partial line failed")
                    }
                }
            }
        }
        carries
    }

    /// A partial line that got no continuation for `PARTIAL_IDLE_FLUSH` (its file ended on a
    /// `P` record, or ends without a newline and was deleted) is spooled as a complete line, so
    /// its checkpoint can move on and the file can be let go. A continuation arriving later
    /// becomes a line of its own: split, never lost. Stack traces whose flush timeout passed
    /// are spooled too.
    fn flush_idle_partials(&mut self) -> Result<(), SpoolError> {
        let now = crate::clock::now();
        let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
        for (key, file) in &mut self.files {
            let mut flushed = false;
            if file.has_pending() && now.saturating_duration_since(file.last_data) >= PARTIAL_IDLE_FLUSH {
                file.flush_partial(&mut spool, &self.metrics)?;
                flushed = true;
            }
            if file.group_deadline().is_some_and(|deadline| deadline <= now) {
                file.flush_expired(now, &mut spool, &self.metrics)?;
                flushed = true;
            }
            if flushed {
                self.pending_safe.insert(*key, file.safe_offset(file.read_end));
                self.pending_safe.extend(file.take_released());
            }
        }
        Ok(())
    }

    /// The file ended for good: spool any unfinished partial line as a complete one.
    fn finish_file(&mut self, key: FileKey, path: &std::path::Path) {
        if let Some(mut file) = self.files.remove(&key) {
            let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
            match file.finish(&mut spool, &self.metrics) {
                Ok(released) => self.pending_safe.extend(released),
                Err(e) => {
                    tracing::error!(error = %e, path = %path.display(), "spooling the last partial line failed")
                }
            }
        }
    }

    /// Read every readable file once; returns bytes read.
    fn read_ready(&mut self) -> Result<usize, SpoolError> {
        let now = crate::clock::now();
        let mut total = 0;
        let mut partial_bytes: usize = self.files.values().map(FilePipeline::pending_line_bytes).sum();
        let mut paused = std::collections::HashSet::new();
        for key in self.tailer.readable() {
            if !self.ensure_routed(key, now) {
                continue;
            }
            if let Some(dest) = self.files.get(&key).and_then(|f| f.routed.as_ref()).map(Routed::dest)
                && self.lock_spool().stream_at_share(dest)
            {
                paused.insert(dest.clone());
                continue;
            }
            self.buf.clear();
            let chunk = match self.tailer.read(key, &mut self.buf) {
                Ok(Some(chunk)) => chunk,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "read failed; retrying on the next pass");
                    continue;
                }
            };
            total += self.buf.len();
            Metrics::add(&self.metrics.bytes_read, self.buf.len() as u64);
            let Some(file) = self.files.get_mut(&key) else {
                continue;
            };
            let held_before = file.pending_line_bytes();
            let safe = {
                let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
                file.process_chunk(&self.buf, chunk.start, chunk.unfinished, &mut spool, &self.metrics)?
            };
            partial_bytes = partial_bytes.saturating_sub(held_before) + file.pending_line_bytes();
            self.pending_safe.insert(key, safe);
            self.pending_safe.extend(file.take_released());
            if partial_bytes > PARTIAL_LINES_BUDGET {
                partial_bytes = self.release_partials()?;
            }
        }
        Metrics::set(&self.metrics.streams_paused, paused.len() as i64);
        Ok(total)
    }

    /// The partial-line budget is spent: the biggest holders send what they hold as
    /// pieces. Returns the bytes still held.
    fn release_partials(&mut self) -> Result<usize, SpoolError> {
        let held = self.files.iter().map(|(key, file)| (*key, file.pending_line_bytes())).collect();
        let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
        for key in to_release(held, PARTIAL_LINES_BUDGET) {
            if let Some(file) = self.files.get_mut(&key) {
                let pieces = file.release_partials(&mut spool, &self.metrics)?;
                Metrics::add(&self.metrics.partial_pieces_released, pieces as u64);
            }
        }
        drop(spool);
        Ok(self.files.values().map(FilePipeline::pending_line_bytes).sum())
    }

    /// Make sure the file has a destination; false while its lines wait for metadata.
    fn ensure_routed(&mut self, key: FileKey, now: Instant) -> bool {
        if !self.files.contains_key(&key) {
            let Some(path) = self.tailer.path(key).map(std::path::Path::to_path_buf) else {
                return false;
            };
            let Some(container) = container_ref(&path) else {
                if self.unroutable.insert(key) {
                    UnroutableFile { path: &path }.emit(&self.metrics);
                }
                return false;
            };
            let carries = self.retire_rotated(&path);
            let mut file = FilePipeline::new(container, now);
            file.pending_carry = carries;
            self.files.insert(key, file);
        }
        let Some(file) = self.files.get_mut(&key) else {
            return false;
        };
        if file.routed.is_some() {
            return true;
        }
        let pod = self.pods.get(&file.container.namespace, &file.container.pod);
        let waited = now.saturating_duration_since(file.first_seen);
        // Until the pod list has synced, "unknown" means "not heard of yet": wait longer
        // (bounded) so a slow API start does not route a whole file by its pod name.
        let wait =
            if self.pods.is_synced() { self.options.metadata_wait } else { self.options.metadata_wait * 10 };
        if pod.is_none() && waited < wait {
            return false;
        }
        if pod.is_none() {
            tracing::warn!(
                namespace = %file.container.namespace,
                pod = %file.container.pod,
                waited = ?waited,
                "no pod metadata; routing from the file name"
            );
        }
        let routed = Routed::new(
            &self.options.routing,
            &self.options.cluster,
            &self.options.node,
            &file.container,
            pod.as_deref(),
        );
        if pod.is_none() {
            self.metrics.workload_from_name.add(routed.workload_rule.as_str(), 1);
        }
        match routed.excluded_by() {
            Some(rule) => tracing::info!(
                namespace = %file.container.namespace,
                pod = %file.container.pod,
                container = %file.container.container,
                rule,
                "excluded: lines are read and skipped"
            ),
            None => tracing::info!(
                group = %routed.dest().group,
                stream = %routed.dest().stream,
                workload_rule = routed.workload_rule.as_str(),
                "routing"
            ),
        }
        let detector = routed.multiline.as_ref().and_then(|chosen| {
            let detector = self.options.detectors.get(&chosen.detector).cloned();
            if detector.is_none() {
                tracing::warn!(
                    namespace = %file.container.namespace,
                    pod = %file.container.pod,
                    container = %file.container.container,
                    detector = %chosen.detector,
                    rule = %chosen.rule,
                    "unknown multiline detector; shipping this container's lines one by one"
                );
            }
            detector
        });
        file.set_routed(routed, detector);
        true
    }

    /// Whether a commit would store anything new. An idle node with 1,000 files otherwise
    /// serialises every checkpoint and fsyncs the manifest five times a second.
    fn needs_commit(&self) -> bool {
        let now = crate::clock::now();
        self.source_changed
            || !self.pending_safe.is_empty()
            || self.files.values().any(|file| {
                (file.has_pending() && now.saturating_duration_since(file.last_data) >= PARTIAL_IDLE_FLUSH)
                    || file.group_deadline().is_some_and(|deadline| deadline <= now)
            })
            || self.lock_spool().needs_commit(now)
    }

    /// Group commit. Safe offsets reach the tailer only here, right before its state is stored
    /// with the spool: the tailer may forget a finished file (and close its descriptor) only
    /// at its next `scan`, after this commit made the file's last lines durable.
    fn commit(&mut self, seal_all: bool) -> Result<(), SpoolError> {
        self.flush_idle_partials()?;
        for (key, offset) in self.pending_safe.drain() {
            self.tailer.set_safe_offset(key, offset);
        }
        let state = serde_json::to_vec(&self.tailer.state()).unwrap_or_default();
        let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
        if seal_all {
            spool.seal_all();
        } else {
            spool.set_flush_interval(self.options.pace.interval());
            spool.seal_expired(crate::clock::now());
        }
        spool.commit(&state)?;
        self.source_changed = false;
        spool.export_gauges(&self.metrics);
        drop(spool);
        self.wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    fn key(n: u64) -> FileKey {
        FileKey(n)
    }

    #[test]
    fn under_the_budget_nothing_is_released() {
        assert!(to_release(vec![(key(1), 10), (key(2), 20)], 30).is_empty());
    }

    #[test]
    fn over_it_the_biggest_holders_go_until_half_is_held() {
        let held = vec![(key(1), 10), (key(2), 40), (key(3), 30), (key(4), 20)];
        // 100 held, budget 60: release 40 (60 left, over 30), then 30 (30 left: done).
        assert_eq!(to_release(held, 60), [key(2), key(3)]);
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
