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
use std::sync::atomic::{AtomicBool, Ordering};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::SourceError;

/// Validated globs of container log files.
#[derive(Debug, Clone)]
pub(super) struct Globs {
    patterns: Vec<GlobKind>,
    roots: BTreeSet<PathBuf>,
}

/// How a glob is expanded.
#[derive(Debug, Clone)]
enum GlobKind {
    /// Wildcards only in the file name (`/var/log/containers/*.log`, the usual case): one
    /// `readdir`, names matched in memory, no `stat` per entry.
    Flat { dir: PathBuf, name: glob::Pattern },
    /// Wildcards in directory components: the `glob` crate walks them.
    Deep(String),
}

impl Globs {
    /// Validate every glob; remember the directory each one lists (the part before the
    /// first wildcard) as the directory to watch.
    pub(super) fn new(patterns: &[String]) -> Result<Self, SourceError> {
        let mut roots = BTreeSet::new();
        let mut kinds = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let invalid =
                |e: glob::PatternError| SourceError::Glob { glob: pattern.clone(), reason: e.to_string() };
            glob::Pattern::new(pattern).map_err(invalid)?;
            let path = Path::new(pattern);
            roots.insert(literal_root(path));
            let flat = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
                (Some(dir), Some(name)) if !dir.as_os_str().is_empty() && !has_wildcard(dir) => {
                    Some(GlobKind::Flat {
                        dir: dir.to_path_buf(),
                        name: glob::Pattern::new(name).map_err(invalid)?,
                    })
                }
                _ => None,
            };
            kinds.push(flat.unwrap_or_else(|| GlobKind::Deep(pattern.clone())));
        }
        Ok(Self { patterns: kinds, roots })
    }

    /// Directories whose entries the globs match.
    pub(super) fn roots(&self) -> &BTreeSet<PathBuf> {
        &self.roots
    }

    /// Every path matching any glob now (unreadable entries are skipped: the next scan
    /// tries again).
    pub(super) fn expand(&self) -> BTreeSet<PathBuf> {
        let mut paths = BTreeSet::new();
        for pattern in &self.patterns {
            match pattern {
                GlobKind::Flat { dir, name } => {
                    let Ok(entries) = std::fs::read_dir(dir) else { continue };
                    paths.extend(
                        entries
                            .filter_map(Result::ok)
                            .filter(|entry| entry.file_name().to_str().is_some_and(|n| name.matches(n)))
                            .map(|entry| entry.path()),
                    );
                }
                GlobKind::Deep(pattern) => {
                    if let Ok(found) = glob::glob(pattern) {
                        paths.extend(found.filter_map(Result::ok));
                    }
                }
            }
        }
        paths
    }
}

fn has_wildcard(path: &Path) -> bool {
    path.to_str().is_none_or(|s| s.contains(['*', '?', '[']))
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
    /// Every directory of the last `sync` is watched.
    all_watched: bool,
    /// inotify reported an error (e.g. queue overflow: events were lost) since the last scan began.
    failed: Arc<AtomicBool>,
}

impl fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirWatcher")
            .field("active", &self.watcher.is_some())
            .field("all_watched", &self.all_watched)
            .field("watched", &self.watched)
            .finish()
    }
}

impl DirWatcher {
    /// Start the inotify thread; without it (e.g. no inotify instances left) the tailer
    /// still works from periodic rescans.
    pub(super) fn new() -> Self {
        let wake = Arc::new(Notify::new());
        let failed = Arc::new(AtomicBool::new(false));
        let handler_wake = Arc::clone(&wake);
        let handler_failed = Arc::clone(&failed);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Our own opens and reads are not changes; errors (e.g. overflow) are worth a scan,
            // and mean events were lost: rescan often until the next scan has looked.
            match event {
                Ok(event) if is_own_access(&event.kind) => {}
                Ok(event) if event.need_rescan() => {
                    handler_failed.store(true, Ordering::Relaxed);
                    handler_wake.notify_one();
                }
                Ok(_) => handler_wake.notify_one(),
                Err(_) => {
                    handler_failed.store(true, Ordering::Relaxed);
                    handler_wake.notify_one();
                }
            }
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, "inotify unavailable; relying on periodic rescans");
                None
            }
        };
        Self { watcher, wake, watched: HashSet::new(), all_watched: false, failed }
    }

    /// A scan starts looking at everything: what inotify lost before now, it will see.
    pub(super) fn begin_scan(&self) {
        self.failed.store(false, Ordering::Relaxed);
    }

    /// inotify is running, watches every directory asked for, and lost nothing since the last
    /// scan began: changes will wake us, so the periodic rescan is only a safety net.
    pub(super) fn is_complete(&self) -> bool {
        self.watcher.is_some() && self.all_watched && !self.failed.load(Ordering::Relaxed)
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
        self.all_watched = self.watched.len() == dirs.len();
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
    fn flat_expansion_matches_what_the_glob_crate_finds() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        std::fs::create_dir(dir.join("sub.log"))?;
        for name in ["a_ns_c-1.log", "b.log", ".hidden.log", "c.log.1", "d.txt", "e[1].log"] {
            std::fs::write(dir.join(name), b"x")?;
        }
        std::os::unix::fs::symlink(dir.join("b.log"), dir.join("link.log"))?;
        std::os::unix::fs::symlink(dir.join("gone"), dir.join("dangling.log"))?;
        for pattern in ["*.log", "?.log", "[ab]*.log", "b.log", "*", "*.log.[0-9]"] {
            let full = format!("{}/{pattern}", dir.display());
            let globs = Globs::new(std::slice::from_ref(&full))?;
            assert!(matches!(globs.patterns[0], GlobKind::Flat { .. }), "{pattern}");
            let by_crate: BTreeSet<PathBuf> = glob::glob(&full)?.filter_map(Result::ok).collect();
            assert_eq!(globs.expand(), by_crate, "{pattern}");
        }
        let deep = Globs::new(&[format!("{}/*/x.log", dir.display())])?;
        assert!(matches!(deep.patterns[0], GlobKind::Deep(_)));
        Ok(())
    }

    #[test]
    fn invalid_glob_is_reported_with_the_glob() {
        let err = Globs::new(&["/var/log/[.log".to_owned()]).map(|_| ());
        assert!(matches!(&err, Err(SourceError::Glob { glob, .. }) if glob == "/var/log/[.log"), "{err:?}");
    }
}
