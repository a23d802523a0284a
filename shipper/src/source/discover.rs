//! Finding files: glob expansion, and inotify watches that wake the agent when a watched
//! directory changes (a file created, renamed, removed or written).
//!
//! Globs are expanded on every scan; inotify only shortens the wait until the next scan,
//! and the periodic rescan covers anything inotify misses (queue overflow, watch limits,
//! directories that appear later).

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::SourceError;

/// Validated globs of container log files.
#[derive(Debug, Clone)]
pub(super) struct Globs {
    patterns: Vec<String>,
    roots: BTreeSet<PathBuf>,
}

impl Globs {
    /// Validate every glob; remember the directory each one lists (the part before the
    /// first wildcard) as the directory to watch.
    pub(super) fn new(patterns: &[String]) -> Result<Self, SourceError> {
        let mut roots = BTreeSet::new();
        for pattern in patterns {
            glob::Pattern::new(pattern)
                .map_err(|e| SourceError::Glob { glob: pattern.clone(), reason: e.to_string() })?;
            roots.insert(literal_root(Path::new(pattern)));
        }
        Ok(Self { patterns: patterns.to_vec(), roots })
    }

    /// Directories whose entries the globs match.
    pub(super) fn roots(&self) -> &BTreeSet<PathBuf> {
        &self.roots
    }

    /// Every path matching any glob now (unreadable entries are skipped: the next scan
    /// tries again).
    pub(super) fn expand(&self) -> BTreeSet<PathBuf> {
        self.patterns
            .iter()
            .filter_map(|pattern| glob::glob(pattern).ok())
            .flat_map(|paths| paths.filter_map(Result::ok))
            .collect()
    }
}

/// The directory a glob lists: its leading components without wildcards
/// (`/var/log/containers/*.log` → `/var/log/containers`), or a literal path's parent.
fn literal_root(pattern: &Path) -> PathBuf {
    let is_wild = |c: &Component<'_>| c.as_os_str().to_str().is_some_and(|s| s.contains(['*', '?', '[']));
    let literal: PathBuf = pattern.components().take_while(|c| !is_wild(c)).collect();
    if !pattern.components().any(|c| is_wild(&c)) {
        // No wildcard at all: the file itself, whose directory is what changes.
        return literal.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    // With wildcards in directory components this is an ancestor of the matches: changes
    // deeper down are found by the rescan (and by the watches on tailed files' directories).
    literal
}

/// inotify watches on a changing set of directories, and the wake-up they trigger.
pub(super) struct DirWatcher {
    watcher: Option<RecommendedWatcher>,
    wake: Arc<Notify>,
    watched: HashSet<PathBuf>,
}

impl fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirWatcher")
            .field("active", &self.watcher.is_some())
            .field("watched", &self.watched)
            .finish()
    }
}

impl DirWatcher {
    /// Start the inotify thread; without it (e.g. no inotify instances left) the tailer
    /// still works from periodic rescans.
    pub(super) fn new() -> Self {
        let wake = Arc::new(Notify::new());
        let handler_wake = Arc::clone(&wake);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Our own opens and reads are not changes; errors (e.g. overflow) are worth a scan.
            if !event.is_ok_and(|e| is_own_access(&e.kind)) {
                handler_wake.notify_one();
            }
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, "inotify unavailable; relying on periodic rescans");
                None
            }
        };
        Self { watcher, wake, watched: HashSet::new() }
    }

    /// Where changes are signalled (one stored permit: a change between two waits is not
    /// lost), or `None` if inotify is unavailable.
    pub(super) fn wake(&self) -> Option<&Notify> {
        self.watcher.as_ref().map(|_| &*self.wake)
    }

    /// Watch exactly `dirs` (those that exist; missing ones are retried on the next call).
    pub(super) fn sync(&mut self, dirs: &BTreeSet<PathBuf>) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        self.watched.retain(|dir| {
            if dirs.contains(dir) {
                return true;
            }
            // Fails when the directory is gone, which removed the watch already.
            let _ = watcher.unwatch(dir);
            false
        });
        for dir in dirs {
            if !self.watched.contains(dir) && watcher.watch(dir, RecursiveMode::NonRecursive).is_ok() {
                self.watched.insert(dir.clone());
            }
        }
    }
}

/// Events our own reading causes (inotify reports opens and read-only closes).
fn is_own_access(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(AccessKind::Open(_) | AccessKind::Close(AccessMode::Read)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_the_literal_directories() -> Result<(), SourceError> {
        let globs = Globs::new(&[
            "/var/log/containers/*.log".to_owned(),
            "/var/log/pods/*/app/0.log".to_owned(),
            "/tmp/fixed.log".to_owned(),
        ])?;
        let roots: Vec<_> = globs.roots().iter().cloned().collect();
        assert_eq!(
            roots,
            [PathBuf::from("/tmp"), PathBuf::from("/var/log/containers"), PathBuf::from("/var/log/pods"),]
        );
        Ok(())
    }

    #[test]
    fn invalid_glob_is_reported_with_the_glob() {
        let err = Globs::new(&["/var/log/[.log".to_owned()]).map(|_| ());
        assert!(matches!(&err, Err(SourceError::Glob { glob, .. }) if glob == "/var/log/[.log"), "{err:?}");
    }
}
