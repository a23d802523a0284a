//! One process per state directory.
//!
//! Two shippers on one state dir (a force-deleted pod whose process still runs, a DaemonSet
//! rolling with `maxSurge`) would each recover the spool and unlink the other's open chunks,
//! which then read as acknowledged: silent loss. So the agent takes an exclusive lock on
//! `<state>/lock` before it touches anything under the directory, and a second instance waits
//! for it — saying so in its log and on `/readyz` — instead of proceeding.
//!
//! The lock is `flock(2)`-style (`File::try_lock`): the kernel drops it when the process ends,
//! however it ends, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How often a waiting instance tries the lock again.
const RETRY: Duration = Duration::from_millis(500);

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// The lock file cannot be opened or locked (not: held by another process).
#[derive(Debug, thiserror::Error)]
#[error("state directory lock {path}: {source}")]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Take the lock on `state_dir`, waiting while another process holds it. `waiting` is set
/// to 1 for as long as this instance waits (shown on `/readyz` and `/metrics`). Returns `None` if `give_up`
/// resolves first (a signal while waiting: exit without having touched anything).
pub async fn acquire(
    state_dir: &Path,
    waiting: &AtomicI64,
    give_up: impl Future<Output = ()>,
) -> Result<Option<StateLock>, LockError> {
    let path = state_dir.join("lock");
    let error = |source| LockError { path: path.clone(), source };
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(error)?;
    tokio::pin!(give_up);
    let mut logged = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                if logged {
                    tracing::info!(path = %path.display(), "state directory lock acquired; starting");
                }
                waiting.store(0, Ordering::Relaxed);
                return Ok(Some(StateLock { _file: file }));
            }
            Err(TryLockError::WouldBlock) => {
                waiting.store(1, Ordering::Relaxed);
                if !logged {
                    tracing::warn!(
                        path = %path.display(),
                        "another shipper holds this state directory; waiting for it to exit, touching nothing"
                    );
                    logged = true;
                }
            }
            Err(TryLockError::Error(e)) => return Err(error(e)),
        }
        tokio::select! {
            _ = &mut give_up => return Ok(None),
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let waiting = AtomicI64::new(0);
        let first = acquire(dir.path(), &waiting, std::future::pending()).await.expect("lock").expect("held");
        assert_eq!(waiting.load(Ordering::Relaxed), 0);

        // A second open file description conflicts, as a second process would.
        let second_waiting = std::sync::Arc::new(AtomicI64::new(0));
        let flag = second_waiting.clone();
        let path = dir.path().to_owned();
        let second = tokio::spawn(async move {
            acquire(&path, &flag, std::future::pending()).await.expect("lock").expect("held")
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(second_waiting.load(Ordering::Relaxed), 1, "the second instance says it waits");
        assert!(!second.is_finished(), "and does not proceed");
        drop(first);
        let _second =
            tokio::time::timeout(Duration::from_secs(5), second).await.expect("acquired").expect("task");
        assert_eq!(second_waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_signal_while_waiting_gives_up_without_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let waiting = AtomicI64::new(0);
        let _first = acquire(dir.path(), &waiting, std::future::pending()).await.expect("lock");
        let gave_up = acquire(dir.path(), &waiting, tokio::time::sleep(Duration::from_millis(50)))
            .await
            .expect("no error");
        assert!(gave_up.is_none());
    }
}
