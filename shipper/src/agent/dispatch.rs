//! The dispatcher: sends sealed spool chunks, one in flight per stream, bounded concurrency
//! across streams, and frees each chunk only after delivery.
//!
//! No head-of-line blocking: a stream whose destination keeps failing gives its sending slot
//! back after a few attempts and waits out a per-stream backoff before its next turn, so
//! streams that can be delivered are never stuck behind it; ready streams are served
//! round-robin so a busy stream cannot starve the rest either.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::sink::{Backoff, CloudWatch, Delivery};
use crate::spool::{ChunkRef, Spool, SpoolError};
use crate::telemetry::{InternalEvent, Metrics, SpoolEventsLost};

/// Moves chunks from the spool to CloudWatch.
#[derive(Debug)]
pub struct Dispatcher {
    spool: Arc<Mutex<Spool>>,
    sink: CloudWatch,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    wake: Arc<Notify>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    cooldowns: Arc<Mutex<HashMap<String, Cooldown>>>,
}

/// Failures in a row after which a delivery gives its slot back.
const DEFER_AFTER_FAILURES: u32 = 3;

/// A stream that gave way: not sent again before `until`; `backoff` keeps growing across
/// deferrals and is forgotten at the first success.
#[derive(Debug)]
struct Cooldown {
    backoff: Backoff,
    until: Instant,
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
            cooldowns: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Deliver until `cancel` fires; in-flight deliveries are then abandoned (their chunks
    /// stay in the spool and are resent on the next start).
    pub async fn run(self, cancel: CancellationToken) {
        let mut tasks = JoinSet::new();
        // Round-robin: each pass starts after the stream served last.
        let mut last_served: Option<String> = None;
        loop {
            let mut ready = {
                let now = Instant::now();
                let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                let cooldowns = self.cooldowns.lock().unwrap_or_else(|e| e.into_inner());
                let spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
                spool.ready(&|id| in_flight.contains(id) || cooldowns.get(id).is_some_and(|c| c.until > now))
            };
            ready.sort_unstable_by(|a, b| a.stream_id.cmp(&b.stream_id));
            if let Some(last) = &last_served {
                let start = ready.partition_point(|chunk| chunk.stream_id <= *last);
                ready.rotate_left(start);
            }
            for chunk in ready {
                let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                    break;
                };
                last_served = Some(chunk.stream_id.clone());
                self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(chunk.stream_id.clone());
                let job = Job {
                    spool: self.spool.clone(),
                    sink: self.sink.clone(),
                    metrics: self.metrics.clone(),
                    in_flight: self.in_flight.clone(),
                    cooldowns: self.cooldowns.clone(),
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
    cooldowns: Arc<Mutex<HashMap<String, Cooldown>>>,
    wake: Arc<Notify>,
}

/// Takes the stream out of the in-flight set however the delivery ends (even by a panic), so
/// a stream can never stall for the rest of the process.
struct InFlightGuard {
    in_flight: Arc<Mutex<HashSet<String>>>,
    stream_id: String,
    wake: Arc<Notify>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.stream_id);
        self.wake.notify_one();
    }
}

/// Pause before retrying a chunk that could not be read (e.g. out of file descriptors).
const READ_RETRY_DELAY: Duration = Duration::from_secs(1);

impl Job {
    async fn deliver(self, chunk: ChunkRef, cancel: &CancellationToken) {
        let _guard = InFlightGuard {
            in_flight: self.in_flight.clone(),
            stream_id: chunk.stream_id.clone(),
            wake: self.wake.clone(),
        };
        let path = chunk.path.clone();
        let read = tokio::task::spawn_blocking(move || (Spool::read(&chunk), chunk)).await;
        let (batch, chunk) = match read {
            Ok((Ok(batch), chunk)) => (batch, chunk),
            Ok((Err(e), chunk)) if never_readable(&e) => {
                self.drop_unsendable(&chunk, &e);
                return;
            }
            Ok((Err(e), _)) => {
                // Not the chunk's fault (EMFILE, EIO...): keep it and try again later.
                tracing::error!(error = %e, path = %path.display(), "spooled chunk unreadable; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(READ_RETRY_DELAY) => {}
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "chunk read task failed; retrying");
                return;
            }
        };
        crate::failpoint::hit("send.before_put");
        let delivery = self.sink.deliver_or_defer(&batch, cancel, Some(DEFER_AFTER_FAILURES)).await;
        if let Ok(Delivery::Deferred { retry_in, .. }) = delivery {
            let mut cooldowns = self.cooldowns.lock().unwrap_or_else(|e| e.into_inner());
            let cooldown = cooldowns
                .entry(chunk.stream_id.clone())
                .or_insert_with(|| Cooldown { backoff: self.sink.backoff(), until: Instant::now() });
            let wait = cooldown.backoff.next_delay().max(retry_in);
            cooldown.until = Instant::now() + wait;
            tracing::debug!(group = %batch.dest.group, stream = %batch.dest.stream, ?wait,
                "destination keeps failing; letting other streams go first");
            return;
        }
        if let Ok(Delivery::Done(report)) = delivery {
            crate::failpoint::hit("send.after_put");
            self.cooldowns.lock().unwrap_or_else(|e| e.into_inner()).remove(&chunk.stream_id);
            tracing::debug!(group = %batch.dest.group, stream = %batch.dest.stream, accepted = report.accepted, "delivered");
            let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = spool.ack(&chunk) {
                tracing::error!(error = %e, "freeing a delivered chunk failed; it may be sent once more after a restart");
            }
            spool.export_gauges(&self.metrics);
        }
        // Err(Cancelled): shutdown; the chunk stays in the spool for the next start.
    }

    /// A chunk that can never be read (see [`never_readable`]): freed, a corrupt one kept in
    /// the spool's quarantine first for inspection; its events count as dropped and the
    /// stream goes on, where retrying would hold it until a restart.
    fn drop_unsendable(&self, chunk: &ChunkRef, error: &SpoolError) {
        let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
        let freed = match error {
            SpoolError::Corrupt { .. } => spool.quarantine(chunk),
            _ => spool.ack(chunk),
        }
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "freeing an unsendable chunk failed");
            0
        });
        spool.export_gauges(&self.metrics);
        drop(spool);
        let dest = Some((chunk.dest.group.as_str(), chunk.dest.stream.as_str()));
        SpoolEventsLost { count: freed.max(1), dest, error: &error.to_string() }.emit(&self.metrics);
    }
}

/// The chunk itself is lost: it fails verification now (the disk changed it after recovery
/// checked it), or its file is gone (deleted under us). Any other read error (EMFILE,
/// EIO...) is not the chunk's fault and is retried.
fn never_readable(error: &SpoolError) -> bool {
    match error {
        SpoolError::Corrupt { .. } => true,
        SpoolError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Destination;
    use crate::sink::testing::{FakeCloudWatch, Fault, fast_options};
    use crate::sink::{GroupOptions, client_for_endpoint};
    use crate::spool::SpoolOptions;
    use crate::telemetry::DropReason;

    fn dest(name: &str) -> Destination {
        Destination { group: "g".into(), stream: name.into() }
    }

    /// A spool with three events for each of two streams, `damaged` and `kept`, sealed and
    /// committed; returns it with the chunk of `damaged`.
    fn spool_with_two_streams(dir: &std::path::Path) -> (Spool, ChunkRef) {
        let options = SpoolOptions { max_bytes: 1 << 30, flush_interval: Duration::from_secs(3600) };
        let (mut spool, _) = Spool::open(&dir.join("spool"), options).unwrap();
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        for i in 0..3 {
            spool.append(&dest("damaged"), now + i, &format!("damaged {i}")).unwrap();
            spool.append(&dest("kept"), now + i, &format!("kept {i}")).unwrap();
        }
        spool.seal_all();
        spool.commit(b"").unwrap();
        let damaged = spool.ready(&|_| false).into_iter().find(|c| c.dest.stream == "damaged").unwrap();
        (spool, damaged)
    }

    /// Run a dispatcher against a fake CloudWatch until the spool is empty (at most 10 s);
    /// whether it emptied, the fake, and the metrics.
    async fn dispatch_until_drained(
        spool: Spool,
        dir: &std::path::Path,
    ) -> (bool, FakeCloudWatch, Arc<Metrics>) {
        let fake = FakeCloudWatch::start().await;
        let metrics = Arc::new(Metrics::default());
        let client = client_for_endpoint(&fake.url, "us-east-1", Duration::from_secs(10));
        let sink = CloudWatch::new(client, fast_options(dir, GroupOptions::default()), metrics.clone());
        let spool = Arc::new(Mutex::new(spool));
        let dispatcher = Dispatcher::new(spool.clone(), sink, metrics.clone(), 4, Arc::new(Notify::new()));
        let cancel = CancellationToken::new();
        let run = tokio::spawn(dispatcher.run(cancel.clone()));
        let drained = async {
            while spool.lock().unwrap().events() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), drained).await;
        cancel.cancel();
        run.await.unwrap();
        (outcome.is_ok(), fake, metrics)
    }

    /// A chunk file deleted under the shipper: its events are counted as dropped and the
    /// stream goes on; the other stream is unaffected. It used to be retried every second
    /// until a restart, holding the stream.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_chunk_is_counted_and_does_not_hold_its_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, damaged) = spool_with_two_streams(dir.path());
        std::fs::remove_file(&damaged.path).unwrap();

        let (drained, fake, metrics) = dispatch_until_drained(spool, dir.path()).await;

        assert!(drained, "the spool never drained: the missing chunk holds its stream");
        assert_eq!(fake.stored("g", "kept").len(), 3);
        assert!(fake.stored("g", "damaged").is_empty());
        assert_eq!(metrics.dropped_total(DropReason::SpoolCorrupt), 3);
    }

    /// A chunk the disk changed after recovery checked it: the spool keeps a copy in its
    /// quarantine, the events count as dropped, and the stream goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupt_chunk_is_quarantined_by_the_spool_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, damaged) = spool_with_two_streams(dir.path());
        let mut bytes = std::fs::read(&damaged.path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&damaged.path, &bytes).unwrap();

        let (drained, fake, metrics) = dispatch_until_drained(spool, dir.path()).await;

        assert!(drained, "the corrupt chunk holds its stream");
        assert_eq!(fake.stored("g", "kept").len(), 3);
        assert!(fake.stored("g", "damaged").is_empty(), "nothing of a corrupt chunk is sent");
        assert_eq!(metrics.dropped_total(DropReason::SpoolCorrupt), 3);
        let quarantined: Vec<_> = std::fs::read_dir(dir.path().join("spool/quarantine"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        assert_eq!(quarantined, [bytes], "the damaged bytes are kept as they were");
    }

    /// A spool holding `chunks` sealed chunks of 2 events for each stream in `streams`.
    fn spool_with_streams(dir: &std::path::Path, streams: &[&str], chunks: usize) -> Spool {
        let options = SpoolOptions { max_bytes: 1 << 30, flush_interval: Duration::from_secs(3600) };
        let (mut spool, _) = Spool::open(&dir.join("spool"), options).unwrap();
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        for round in 0..chunks {
            for stream in streams {
                for i in 0..2 {
                    spool.append(&dest(stream), now, &format!("{stream} {round}.{i}")).unwrap();
                }
            }
            spool.seal_all();
        }
        spool.commit(b"").unwrap();
        spool
    }

    /// A dispatcher with `slots` sending slots against `fake`, running until `done` says so
    /// (at most 10 s); whether it did.
    async fn dispatch_until(
        spool: Spool,
        dir: &std::path::Path,
        fake: &FakeCloudWatch,
        slots: usize,
        done: impl Fn(&FakeCloudWatch) -> bool,
    ) -> bool {
        let metrics = Arc::new(Metrics::default());
        let client = client_for_endpoint(&fake.url, "us-east-1", Duration::from_secs(10));
        let sink = CloudWatch::new(client, fast_options(dir, GroupOptions::default()), metrics.clone());
        let dispatcher =
            Dispatcher::new(Arc::new(Mutex::new(spool)), sink, metrics, slots, Arc::new(Notify::new()));
        let cancel = CancellationToken::new();
        let run = tokio::spawn(dispatcher.run(cancel.clone()));
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while !done(fake) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        cancel.cancel();
        run.await.unwrap();
        waited.is_ok()
    }

    /// Six streams with five chunks each and two sending slots: the streams take turns. At
    /// every point no stream has had more than 2 deliveries more than any other (one turn,
    /// plus two concurrent requests arriving in either order). Served in sorted order instead, the first streams would get all five
    /// chunks out before the last got one. Each stream's chunks go out in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ready_streams_take_turns_when_there_are_more_than_slots() {
        let dir = tempfile::tempdir().unwrap();
        let streams = ["a", "b", "c", "d", "e", "f"];
        let chunks = 5;
        let spool = spool_with_streams(dir.path(), &streams, chunks);
        let fake = FakeCloudWatch::start().await;
        // The streams exist: every PutLogEvents is a delivery (no create-and-retry).
        for stream in streams {
            fake.with_stream("g", Some(stream));
        }

        let total = streams.len() * chunks;
        assert!(dispatch_until(spool, dir.path(), &fake, 2, |f| f.puts().len() >= total).await);

        let puts = fake.puts();
        let mut served: std::collections::BTreeMap<&str, usize> = streams.iter().map(|s| (*s, 0)).collect();
        for (n, stream) in puts.iter().enumerate() {
            *served.get_mut(stream.as_str()).unwrap() += 1;
            let (most, least) = (served.values().max().unwrap(), served.values().min().unwrap());
            assert!(most - least <= 2, "after {} deliveries {served:?}: {puts:?}", n + 1);
        }
        for stream in streams {
            let stored: Vec<String> = fake.stored("g", stream).into_iter().map(|(_, m)| m).collect();
            let want: Vec<String> =
                (0..chunks).flat_map(|r| (0..2).map(move |i| format!("{stream} {r}.{i}"))).collect();
            assert_eq!(stored, want);
        }
    }

    /// One slot, and one stream whose destination always answers 503: after a few attempts
    /// it gives the slot back and waits out its backoff, so the other stream is delivered
    /// meanwhile; the failing one keeps being retried, never dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_stream_gives_its_slot_back_and_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool_with_streams(dir.path(), &["bad", "good"], 3);
        let fake = FakeCloudWatch::start().await;
        fake.with_stream("g", Some("bad"));
        fake.with_stream("g", Some("good"));
        fake.fail_stream("bad", Fault::Unavailable);

        let delivered =
            dispatch_until(spool, dir.path(), &fake, 1, |f| f.stored("g", "good").len() == 6).await;

        assert!(delivered, "the good stream waited behind the failing one: {:?}", fake.puts());
        let puts = fake.puts();
        let bad = puts.iter().filter(|s| *s == "bad").count();
        assert!(bad >= DEFER_AFTER_FAILURES as usize, "the failing stream was tried: {puts:?}");
        // Between two deliveries of the good stream, the failing one held the slot for at most
        // one turn of attempts.
        let mut run = 0;
        for stream in &puts {
            run = if stream == "bad" { run + 1 } else { 0 };
            assert!(run <= DEFER_AFTER_FAILURES as usize, "held the slot past its turn: {puts:?}");
        }
        assert!(fake.stored("g", "bad").is_empty());
    }
}
