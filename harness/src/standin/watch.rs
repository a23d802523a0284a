//! One watch stream: newline-delimited JSON events computed from the store's change history.
//!
//! The stream remembers the last resourceVersion it processed (every change, matched or
//! not). When woken it takes all newer changes from the history and maps each through the
//! filtered-watch transition table (ADDED / MODIFIED / DELETED-with-old-object / nothing).
//! If the history no longer reaches back that far it sends one 410 `ERROR` event and ends.
//! It also ends on `timeoutSeconds`, or when the server drops all watches.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior, Sleep};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::selector::PodSelector;
use super::store::{Change, Snapshot, StoreError, stamp};

/// Where a watch starts.
#[derive(Debug)]
pub(crate) enum Start {
    /// Synthetic ADDED for the current objects first; with `initial_events_end`, then the
    /// `k8s.io/initial-events-end` bookmark (streaming list).
    Snapshot { initial_events_end: bool },
    /// Every change after this resourceVersion.
    After(u64),
}

/// Parameters of one watch request.
#[derive(Debug)]
pub(crate) struct WatchRequest {
    pub selector: PodSelector,
    pub start: Start,
    pub bookmarks: bool,
    pub timeout: Duration,
}

struct Session {
    shared: Arc<Shared>,
    selector: PodSelector,
    last_rv: u64,
    changed: watch::Receiver<u64>,
    cancelled: CancellationToken,
    deadline: Pin<Box<Sleep>>,
    bookmarks: Option<Interval>,
    pending: Option<Bytes>,
    done: bool,
}

/// The response body of a watch, as a stream of chunks (each a whole number of lines).
pub(crate) fn stream(
    shared: Arc<Shared>,
    request: WatchRequest,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let cancelled = shared.watch_token();
    // Subscribe before the snapshot so no change falls in between.
    let mut changed = shared.store.subscribe();
    changed.mark_unchanged();
    let mut pending = Vec::new();
    let last_rv = match request.start {
        Start::After(rv) => rv,
        Start::Snapshot { initial_events_end } => {
            let Snapshot { rv, pods } = shared.store.snapshot();
            for pod in pods.values().filter(|pod| request.selector.matches(pod)) {
                push_event(&mut pending, "ADDED", pod);
            }
            if initial_events_end {
                push_bookmark(&mut pending, &shared, rv, true);
            }
            rv
        }
    };
    let bookmarks = request.bookmarks.then(|| {
        let period = shared.options.bookmark_interval;
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        interval
    });
    let session = Session {
        selector: request.selector,
        last_rv,
        changed,
        cancelled,
        deadline: Box::pin(tokio::time::sleep(request.timeout)),
        bookmarks,
        pending: (!pending.is_empty()).then(|| Bytes::from(pending)),
        done: false,
        shared,
    };
    futures::stream::unfold(session, |mut session| async move {
        session.next_chunk().await.map(|chunk| (Ok(chunk), session))
    })
}

impl Session {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(chunk) = self.pending.take() {
            return Some(chunk);
        }
        let mut bookmark_due = false;
        loop {
            // A dropped watch must not deliver changes made after the drop.
            if self.cancelled.is_cancelled() {
                break;
            }
            self.changed.borrow_and_update();
            let mut buf = Vec::new();
            match self.shared.store.changes_since(self.last_rv) {
                Ok((changes, current)) => {
                    for change in &changes {
                        self.push_transition(&mut buf, change);
                    }
                    self.last_rv = self.last_rv.max(current);
                }
                Err(StoreError::TooOld { requested, oldest }) => {
                    self.done = true;
                    self.shared.counters.expired_watches.fetch_add(1, Ordering::Relaxed);
                    return Some(expired_event(requested, oldest));
                }
                Err(other) => {
                    tracing::warn!(error = %other, "unexpected store error in watch");
                    self.done = true;
                    return None;
                }
            }
            if bookmark_due {
                push_bookmark(&mut buf, &self.shared, self.last_rv, false);
            }
            if !buf.is_empty() {
                return Some(Bytes::from(buf));
            }
            let bookmarks = &mut self.bookmarks;
            let tick = async {
                match bookmarks.as_mut() {
                    Some(interval) => {
                        interval.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = self.cancelled.cancelled() => break,
                () = &mut self.deadline => break,
                changed = self.changed.changed() => if changed.is_err() { break },
                () = tick => bookmark_due = true,
            }
        }
        self.done = true;
        None
    }

    fn push_transition(&self, buf: &mut Vec<u8>, change: &Change) {
        let old_matched = change.old.as_deref().is_some_and(|o| self.selector.matches(o));
        let new_matches = change.new.as_deref().is_some_and(|n| self.selector.matches(n));
        match (old_matched, new_matches, &change.old, &change.new) {
            (false, true, _, Some(new)) => push_event(buf, "ADDED", new),
            (true, true, _, Some(new)) => push_event(buf, "MODIFIED", new),
            (true, false, Some(old), _) => {
                let mut last = Value::clone(old);
                stamp(&mut last, change.rv);
                push_event(buf, "DELETED", &last);
            }
            _ => {}
        }
    }
}

fn push_event(buf: &mut Vec<u8>, kind: &str, object: &Value) {
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    // Serialising a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, object);
    buf.extend_from_slice(b"}\n");
}

fn push_bookmark(buf: &mut Vec<u8>, shared: &Shared, rv: u64, initial_events_end: bool) {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    push_event(buf, "BOOKMARK", &json!({"kind": "Pod", "apiVersion": "v1", "metadata": metadata}));
    shared.counters.bookmarks.fetch_add(1, Ordering::Relaxed);
    shared.counters.last_bookmark_rv.fetch_max(rv, Ordering::Relaxed);
}

fn expired_event(requested: u64, oldest: u64) -> Bytes {
    let mut buf = Vec::new();
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("too old resource version: {requested} ({oldest})"),
        "reason": "Expired",
        "code": 410,
    });
    push_event(&mut buf, "ERROR", &status);
    Bytes::from(buf)
}
