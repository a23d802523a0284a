//! The dispatcher: sends sealed spool chunks, one in flight per stream, bounded concurrency
//! across streams (no head-of-line blocking), and frees each chunk only after delivery.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::sink::CloudWatch;
use crate::spool::{ChunkRef, Spool};
use crate::telemetry::{DropReason, Metrics};

/// Moves chunks from the spool to CloudWatch.
#[derive(Debug)]
pub struct Dispatcher {
    spool: Arc<Mutex<Spool>>,
    sink: CloudWatch,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    wake: Arc<Notify>,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Dispatcher {
    /// A dispatcher with at most `max_concurrency` requests in flight.
    pub fn new(
        spool: Arc<Mutex<Spool>>,
        sink: CloudWatch,
        metrics: Arc<Metrics>,
        max_concurrency: usize,
        wake: Arc<Notify>,
    ) -> Self {
        Dispatcher {
            spool,
            sink,
            metrics,
            permits: Arc::new(Semaphore::new(max_concurrency.max(1))),
            wake,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Deliver until `cancel` fires; in-flight deliveries are then abandoned (their chunks
    /// stay in the spool and are resent on the next start).
    pub async fn run(self, cancel: CancellationToken) {
        let mut tasks = JoinSet::new();
        loop {
            let ready = {
                let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                let spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
                spool.ready(&|id| in_flight.contains(id))
            };
            for chunk in ready {
                let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                    break;
                };
                self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(chunk.stream_id.clone());
                let job = Job {
                    spool: self.spool.clone(),
                    sink: self.sink.clone(),
                    metrics: self.metrics.clone(),
                    in_flight: self.in_flight.clone(),
                    wake: self.wake.clone(),
                };
                let cancel = cancel.clone();
                tasks.spawn(async move {
                    job.deliver(chunk, &cancel).await;
                    drop(permit);
                });
            }
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

struct Job {
    spool: Arc<Mutex<Spool>>,
    sink: CloudWatch,
    metrics: Arc<Metrics>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    wake: Arc<Notify>,
}

impl Job {
    async fn deliver(self, chunk: ChunkRef, cancel: &CancellationToken) {
        let path = chunk.path.clone();
        let read = tokio::task::spawn_blocking(move || (Spool::read(&chunk), chunk)).await;
        let (batch, chunk) = match read {
            Ok((Ok(batch), chunk)) => (batch, chunk),
            Ok((Err(e), chunk)) => {
                self.quarantine(&chunk, &e);
                return;
            }
            Err(e) => {
                // The blocking task panicked: leave the chunk for the next start.
                tracing::error!(error = %e, path = %path.display(), "chunk read task failed");
                return;
            }
        };
        match self.sink.deliver(&batch, cancel).await {
            Ok(report) => {
                tracing::debug!(group = %batch.dest.group, stream = %batch.dest.stream, accepted = report.accepted, "delivered");
                let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = spool.ack(&chunk) {
                    tracing::error!(error = %e, "freeing a delivered chunk failed; it may be sent again after a restart");
                }
                Metrics::set(&self.metrics.spool_bytes, spool.bytes() as i64);
                Metrics::set(&self.metrics.spool_events, spool.events() as i64);
            }
            Err(_cancelled) => {}
        }
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&chunk.stream_id);
        self.wake.notify_one();
    }

    /// A chunk that fails verification now (the disk changed it after recovery checked it):
    /// keep a copy in the spool's quarantine for inspection, count it as a drop, free it so the
    /// stream goes on.
    fn quarantine(&self, chunk: &ChunkRef, error: &crate::spool::SpoolError) {
        let path = &chunk.path;
        let quarantine = path.parent().and_then(|p| p.parent()).map(|spool| spool.join("quarantine"));
        if let Some(dir) = quarantine
            && let Some(name) = path.file_name()
        {
            let _ = std::fs::create_dir_all(&dir);
            let target = dir.join(format!("{}-{}", chunk.stream_id, name.to_string_lossy()));
            if let Err(e) = std::fs::copy(path, &target) {
                tracing::error!(error = %e, path = %path.display(), "could not copy a corrupt chunk to quarantine");
            }
        }
        tracing::error!(error = %error, group = %chunk.dest.group, stream = %chunk.dest.stream, "corrupt spool chunk quarantined; its events are dropped");
        self.metrics.dropped(DropReason::SpoolCorrupt, 1);
        let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = spool.ack(chunk) {
            tracing::error!(error = %e, "freeing a corrupt chunk failed");
        }
        drop(spool);
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&chunk.stream_id);
    }
}
