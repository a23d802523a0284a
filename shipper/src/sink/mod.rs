//! Sending to CloudWatch Logs: one PutLogEvents per spool chunk, group/stream creation,
//! retry forever on transient errors, bisection of invalid batches, dead letters.
//!
//! `deliver` returns only when every event of the batch is either accepted by CloudWatch or
//! dead-lettered with a reason (fsync'd), or when shutdown cancels it — then the chunk stays
//! in the spool and is resent whole (duplicates bounded by the chunks in flight).

mod calls;
mod classify;
mod client;
mod create;
mod deadletter;
#[cfg(test)]
mod group_tests;
mod groups;
mod pace;
mod rejected;
mod retry;
#[cfg(test)]
mod role_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod testing_sts;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::route::Destination;
use crate::spool::{Batch, Event};
use crate::telemetry::{
    CallRetried, DeadLetterWriteRetried, DropReason, EventsRejected, InternalEvent, Metrics, PutAnswered,
    PutOutcome,
};

use calls::CallResult;
use classify::Failure;
use create::{GroupCreateLimiter, KNOWN_STREAMS_CAPACITY, KnownStreams};
use deadletter::DeadLetterFile;
use groups::{GroupState, Setting};
use rejected::Rejections;
use retry::or_cancel;

pub use groups::GroupOptions;
pub use pace::Pace;
pub use retry::Backoff;

pub use client::{client_for_endpoint, client_from_env};
pub use deadletter::{DEAD_LETTER_FILE, DeadLetterError};

/// Tunables.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// First retry delay.
    pub backoff_base: Duration,
    /// Largest retry delay (full jitter below it).
    pub backoff_cap: Duration,
    /// Per-call timeout (zero: rely on the SDK client's own timeout).
    pub request_timeout: Duration,
    /// Where rejected events are written, one JSON object per line.
    pub dead_letter_dir: PathBuf,
    /// Log groups created per second at most (CreateLogGroup is 10 TPS per account); also
    /// the pace of DescribeLogGroups / PutRetentionPolicy.
    pub create_group_rate: f64,
    /// Group settings, and whether groups are created at all.
    pub groups: GroupOptions,
    /// The effective flush interval, stretched while PutLogEvents is throttled.
    pub pace: Arc<Pace>,
}

/// What happened to a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Events CloudWatch accepted.
    pub accepted: u64,
    /// Events dropped, with the reason (all were dead-lettered).
    pub dropped: Vec<(DropReason, u64)>,
    /// Calls that were retried.
    pub retries: u64,
}

/// How a delivery that was allowed to give way ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Every event was accepted or dead-lettered.
    Done(DeliveryReport),
    /// The destination kept failing before anything of the batch landed: the caller should
    /// let other streams go first and try this batch again after `retry_in`. Nothing of the
    /// batch was accepted or dropped, so resending it whole duplicates nothing that a retry in
    /// place would not.
    Deferred {
        /// Suggested pause before the next attempt (a jittered backoff delay).
        retry_in: Duration,
        /// Retries spent on this attempt.
        retries: u64,
    },
}

/// Delivery was cancelled (shutdown); the chunk stays in the spool.
#[derive(Debug, thiserror::Error)]
#[error("delivery cancelled by shutdown")]
pub struct Cancelled;

/// The CloudWatch Logs client with the shipper's error policy. Cheap to clone; clones share
/// the stream cache, the group-create rate limit and the dead-letter file.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: aws_sdk_cloudwatchlogs::Client,
    options: SinkOptions,
    metrics: Arc<Metrics>,
    known_streams: KnownStreams,
    group_limiter: GroupCreateLimiter,
    groups: GroupState,
    dead_letters: Arc<DeadLetterFile>,
}

/// How CloudWatch finally answered one PutLogEvents request.
enum Answer {
    /// Accepted, maybe with some events rejected.
    Accepted(Option<Rejections>),
    /// Rejected as a whole as invalid. `names` is true when the group or stream name is at
    /// fault (no subset of the events can succeed, so bisecting is pointless).
    Invalid { names: bool },
    /// No final answer after the allowed number of failures in a row.
    Deferred { retry_in: Duration },
}

/// The call `put_until_answered` makes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Put,
    CreateStream,
    CreateGroup,
    /// Apply (or, for groups this process did not create, check) the group's retention.
    Retention,
}

impl Step {
    fn operation(self) -> &'static str {
        match self {
            Step::Put => "PutLogEvents",
            Step::CreateStream => "CreateLogStream",
            Step::CreateGroup => "CreateLogGroup",
            Step::Retention => "PutRetentionPolicy",
        }
    }
}

impl CloudWatch {
    /// Build from an SDK client.
    pub fn new(client: aws_sdk_cloudwatchlogs::Client, options: SinkOptions, metrics: Arc<Metrics>) -> Self {
        let dead_letters = Arc::new(DeadLetterFile::new(&options.dead_letter_dir));
        Self {
            inner: Arc::new(Inner {
                client,
                group_limiter: GroupCreateLimiter::new(options.create_group_rate),
                groups: GroupState::new(options.groups.clone(), options.create_group_rate),
                known_streams: KnownStreams::new(KNOWN_STREAMS_CAPACITY),
                options,
                metrics,
                dead_letters,
            }),
        }
    }

    /// Deliver one batch. Returns only once every event was accepted or dropped with a
    /// reason; transient failures are retried forever until `cancel` fires.
    pub async fn deliver(
        &self,
        batch: &Batch,
        cancel: &CancellationToken,
    ) -> Result<DeliveryReport, Cancelled> {
        loop {
            match self.deliver_or_defer(batch, cancel, None).await? {
                Delivery::Done(report) => return Ok(report),
                Delivery::Deferred { retry_in, .. } => retry::sleep(cancel, retry_in).await?,
            }
        }
    }

    /// A fresh retry-delay sequence with this sink's base and cap, for callers that space
    /// out deferred deliveries.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.inner.options.backoff_base, self.inner.options.backoff_cap)
    }

    /// Like [`deliver`](Self::deliver), but when the destination fails `defer_after` times in
    /// a row before any event of the batch landed, give way ([`Delivery::Deferred`]) instead of
    /// retrying in place, so a destination that cannot take data (its group cannot be created,
    /// its permissions are missing) does not hold a sending slot other streams need. Once part
    /// of the batch landed (after a bisection) it is finished in place: deferring then would
    /// resend what CloudWatch already has.
    pub async fn deliver_or_defer(
        &self,
        batch: &Batch,
        cancel: &CancellationToken,
        defer_after: Option<u32>,
    ) -> Result<Delivery, Cancelled> {
        if cancel.is_cancelled() {
            return Err(Cancelled);
        }
        let mut report = DeliveryReport::default();
        // CloudWatch fails the whole call on out-of-order events; the sort is stable so
        // equal timestamps keep their spool (= file) order.
        let mut sorted: Vec<&Event> = batch.events.iter().collect();
        sorted.sort_by_key(|e| e.timestamp_ms);

        let mut dead: Vec<(DropReason, &Event)> = Vec::new();
        // Ranges of `sorted` still to send; the first half of a split is popped first so the
        // stream receives events in order.
        let mut pending: Vec<Range<usize>> = Vec::new();
        if !sorted.is_empty() {
            pending.push(0..sorted.len());
        }
        while let Some(range) = pending.pop() {
            let events = &sorted[range.clone()];
            let untouched = report.accepted == 0 && dead.is_empty() && range.len() == sorted.len();
            let defer_after = defer_after.filter(|_| untouched);
            match self.put_until_answered(&batch.dest, events, cancel, &mut report, defer_after).await? {
                Answer::Deferred { retry_in } => {
                    return Ok(Delivery::Deferred { retry_in, retries: report.retries });
                }
                Answer::Accepted(None) => report.accepted += events.len() as u64,
                Answer::Accepted(Some(rejections)) => {
                    let now_ms = unix_ms(SystemTime::now());
                    for (index, event) in events.iter().enumerate() {
                        match rejections.reason(index, event.timestamp_ms, now_ms) {
                            Some(reason) => dead.push((reason, event)),
                            None => report.accepted += 1,
                        }
                    }
                }
                Answer::Invalid { names } if names || events.len() == 1 => {
                    dead.extend(events.iter().map(|e| (DropReason::Invalid, *e)));
                }
                Answer::Invalid { .. } => {
                    let mid = range.start + events.len() / 2;
                    pending.push(mid..range.end);
                    pending.push(range.start..mid);
                }
            }
        }

        if !dead.is_empty() {
            self.write_dead_letters(&batch.dest, &dead, cancel, &mut report).await?;
        }
        // Counted only now: a cancelled delivery is resent, and must not count twice.
        let metrics = &self.inner.metrics;
        Metrics::add(&metrics.events_delivered, report.accepted);
        for reason in DropReason::ALL {
            let n = dead.iter().filter(|(r, _)| *r == reason).count() as u64;
            if n > 0 {
                report.dropped.push((reason, n));
                EventsRejected { group: &batch.dest.group, stream: &batch.dest.stream, reason, count: n }
                    .emit(metrics);
            }
        }
        Ok(Delivery::Done(report))
    }

    /// Send `events` to `dest` until CloudWatch gives a final answer, creating the stream
    /// (and group) when missing and retrying everything transient with backoff — or, with
    /// `defer_after`, until that many failures in a row.
    async fn put_until_answered(
        &self,
        dest: &Arc<Destination>,
        events: &[&Event],
        cancel: &CancellationToken,
        report: &mut DeliveryReport,
        defer_after: Option<u32>,
    ) -> Result<Answer, Cancelled> {
        let inner = &*self.inner;
        let mut backoff = Backoff::new(inner.options.backoff_base, inner.options.backoff_cap);
        let mut step = if inner.groups.needs_retention(&dest.group) { Step::Retention } else { Step::Put };
        // Where to go once the retention is settled.
        let mut after_retention = Step::Put;
        let mut failures_in_a_row: u32 = 0;
        // PutLogEvents answers of "stream not found" since the last success.
        let mut not_found_in_a_row: u32 = 0;
        loop {
            let result = match step {
                Step::Put => {
                    let result = self.put(dest, events, cancel).await?;
                    let outcome = match &result {
                        CallResult::Ok(_) => PutOutcome::Ok,
                        CallResult::Failed { failure, .. } => failure.outcome(),
                    };
                    PutAnswered { outcome }.emit(&inner.metrics);
                    self.pace(outcome);
                    match result {
                        CallResult::Ok(rejections) => {
                            inner.known_streams.insert(dest);
                            inner.groups.unblock(&inner.metrics, dest);
                            return Ok(Answer::Accepted(rejections));
                        }
                        CallResult::Failed { failure: Failure::DataAlreadyAccepted, .. } => {
                            return Ok(Answer::Accepted(None));
                        }
                        CallResult::Failed { failure: Failure::Invalid, message, .. } => {
                            let names = message.as_deref().is_some_and(mentions_names);
                            tracing::debug!(
                                group = %dest.group,
                                stream = %dest.stream,
                                events = events.len(),
                                message = message.as_deref().unwrap_or_default(),
                                "batch rejected as invalid"
                            );
                            return Ok(Answer::Invalid { names });
                        }
                        CallResult::Failed { failure: Failure::NotFound, detail, .. } => {
                            if inner.known_streams.contains(dest) {
                                tracing::warn!(group = %dest.group, stream = %dest.stream,
                                    "log stream disappeared, re-creating it");
                                inner.known_streams.remove(dest);
                            }
                            step = Step::CreateStream;
                            not_found_in_a_row += 1;
                            if not_found_in_a_row == 1 {
                                // The usual case: a new stream. Create it at once.
                                self.retried(report, dest, Step::Put, "missing_stream", &detail, 0);
                                backoff.reset();
                                continue;
                            }
                            // Created (or said to exist) a moment ago and still not found:
                            // something else deletes it, or the service lags. Back off like
                            // any failure instead of spinning between the two calls.
                            failures_in_a_row = failures_in_a_row.saturating_add(1);
                            let kind = Failure::NotFound.outcome().as_str();
                            self.retried(report, dest, Step::Put, kind, &detail, failures_in_a_row);
                            if defer_after.is_some_and(|n| failures_in_a_row >= n) {
                                return Ok(Answer::Deferred { retry_in: backoff.next_delay() });
                            }
                            retry::sleep(cancel, backoff.next_delay()).await?;
                            continue;
                        }
                        other => other.map(|_| ()),
                    }
                }
                Step::CreateStream => match self.create_stream(dest, cancel).await? {
                    CallResult::Ok(()) => {
                        inner.known_streams.insert(dest);
                        backoff.reset();
                        step = Step::Put;
                        continue;
                    }
                    CallResult::Failed { failure: Failure::NotFound, detail, .. } => {
                        // CreateLogStream says NotFound only when the group is missing.
                        self.retried(report, dest, Step::CreateStream, "missing_group", &detail, 0);
                        backoff.reset();
                        step = Step::CreateGroup;
                        continue;
                    }
                    other => other,
                },
                Step::CreateGroup if !inner.groups.options.create_groups => {
                    // Not ours to create: wait for someone else to, asking CreateLogStream
                    // (which says NotFound while the group is missing) at each retry.
                    inner.groups.block(&inner.metrics, dest);
                    step = Step::CreateStream;
                    failures_in_a_row = failures_in_a_row.saturating_add(1);
                    // Logged by `block` (once); each wait is a retry of CreateLogStream.
                    self.retried(report, dest, Step::CreateStream, "missing_group", "", 0);
                    if defer_after.is_some_and(|n| failures_in_a_row >= n) {
                        return Ok(Answer::Deferred { retry_in: backoff.next_delay() });
                    }
                    retry::sleep(cancel, backoff.next_delay()).await?;
                    continue;
                }
                Step::CreateGroup => {
                    let wait = inner.group_limiter.reserve();
                    retry::sleep(cancel, wait).await?;
                    let settings = inner.groups.settings(&dest.group);
                    let with_tags = inner.groups.with_tags(&dest.group) && !settings.tags.is_empty();
                    match self.create_group(dest, settings, with_tags, cancel).await? {
                        CallResult::Ok(created) => {
                            if created {
                                inner.groups.created(&dest.group);
                            }
                            backoff.reset();
                            step = Step::CreateStream;
                            if inner.groups.needs_retention(&dest.group) {
                                after_retention = Step::CreateStream;
                                step = Step::Retention;
                            }
                            continue;
                        }
                        // Tags need logs:TagResource too: create the group without them
                        // rather than hold the data.
                        CallResult::Failed { denied: true, detail, .. } if with_tags => {
                            inner.groups.denied(&inner.metrics, &dest.group, Setting::Tags, &detail);
                            inner.groups.drop_tags(&dest.group);
                            continue;
                        }
                        other => other.map(|_| ()),
                    }
                }
                Step::Retention => match self.apply_retention(&dest.group, cancel).await? {
                    CallResult::Ok(()) => {
                        backoff.reset();
                        step = after_retention;
                        continue;
                    }
                    other => other,
                },
            };
            let CallResult::Failed { failure, detail, .. } = result else {
                continue;
            };
            if failure == Failure::Invalid {
                // A create refused the name itself: nothing sent to this destination can
                // ever succeed. Dead-letter rather than block the spool forever.
                tracing::error!(group = %dest.group, stream = %dest.stream,
                    operation = step.operation(), error = %detail,
                    "destination name rejected as invalid");
                return Ok(Answer::Invalid { names: true });
            }
            failures_in_a_row = failures_in_a_row.saturating_add(1);
            self.retried(report, dest, step, failure.outcome().as_str(), &detail, failures_in_a_row);
            let delay = self.retry_delay(&mut backoff, failure);
            if defer_after.is_some_and(|n| failures_in_a_row >= n) {
                return Ok(Answer::Deferred { retry_in: delay });
            }
            retry::sleep(cancel, delay).await?;
        }
    }

    /// Settle `group`'s retention: look it up unless this process just created the group,
    /// then PutRetentionPolicy when it differs. A denial or a refused value is logged and
    /// settles it (the data must go on); other failures are returned to be retried.
    async fn apply_retention(
        &self,
        group: &str,
        cancel: &CancellationToken,
    ) -> Result<CallResult<()>, Cancelled> {
        let inner = &*self.inner;
        let Some(days) = inner.groups.settings(group).retention_days else {
            inner.groups.retention_done(group);
            return Ok(CallResult::Ok(()));
        };
        retry::sleep(cancel, inner.groups.limiter.reserve()).await?;
        let current = if inner.groups.created_pending(group) {
            CallResult::Ok(Some(None))
        } else {
            self.describe_retention(group, cancel).await?
        };
        let result = match current {
            // Missing: if it gets created on the way, its retention is applied then.
            CallResult::Ok(None) => return Ok(CallResult::Ok(())),
            CallResult::Ok(Some(Some(now))) if i64::from(now) == i64::from(days) => CallResult::Ok(()),
            CallResult::Ok(Some(_)) => {
                retry::sleep(cancel, inner.groups.limiter.reserve()).await?;
                self.put_retention(group, days, cancel).await?
            }
            failed => failed.map(|_| ()),
        };
        match result {
            CallResult::Ok(()) => {
                inner.groups.retention_done(group);
                Ok(CallResult::Ok(()))
            }
            CallResult::Failed { denied: true, detail, .. } => {
                inner.groups.denied(&inner.metrics, group, Setting::Retention, &detail);
                inner.groups.retention_done(group);
                Ok(CallResult::Ok(()))
            }
            CallResult::Failed { failure: Failure::Invalid, detail, .. } => {
                // Validated at start-up, so only a service that disagrees gets here; never
                // let it hold (or dead-letter) the data.
                tracing::error!(group, retention_days = days, error = %detail,
                    "CloudWatch refused the retention; the group keeps its current one");
                inner.groups.retention_done(group);
                Ok(CallResult::Ok(()))
            }
            other => Ok(other),
        }
    }

    /// The pause before the next attempt. A throttled call is not tried again sooner than
    /// about one effective flush interval (jittered ±50 %): while the account's quota is
    /// short, retries in quick succession are most of what a fleet asks for.
    fn retry_delay(&self, backoff: &mut Backoff, failure: Failure) -> Duration {
        let delay = backoff.next_delay();
        if failure != Failure::Throttled {
            return delay;
        }
        let pace = &self.inner.options.pace;
        if pace.interval() <= pace.base() {
            return delay;
        }
        delay.max(pace.interval().mul_f64(0.5 + fastrand::f64()))
    }

    /// Tell the pace how PutLogEvents answered; export and log the interval when it moves.
    fn pace(&self, outcome: PutOutcome) {
        let pace = &self.inner.options.pace;
        let now = tokio::time::Instant::now();
        let changed = match outcome {
            PutOutcome::Throttled => pace.throttled(now),
            PutOutcome::Ok => pace.accepted(now),
            _ => None,
        };
        if let Some(interval) = changed {
            self.inner.metrics.set_flush_interval(interval);
            if interval > pace.base() {
                tracing::info!(
                    ?interval,
                    "PutLogEvents throttled: the account's quota is shared; flushing less often"
                );
            } else {
                tracing::info!(?interval, "throttling over: flush interval back to its setting");
            }
        }
    }

    /// A call of `step` for `dest` failed and is retried: in the report, counted and logged.
    fn retried(
        &self,
        report: &mut DeliveryReport,
        dest: &Destination,
        step: Step,
        kind: &'static str,
        detail: &str,
        attempt: u32,
    ) {
        report.retries += 1;
        let (group, stream, operation) = (dest.group.as_str(), dest.stream.as_str(), step.operation());
        CallRetried { group, stream, operation, kind, detail, attempt }.emit(&self.inner.metrics);
    }

    /// Append the dead letters durably, retrying (the data stays in the spool meanwhile).
    async fn write_dead_letters(
        &self,
        dest: &Destination,
        dead: &[(DropReason, &Event)],
        cancel: &CancellationToken,
        report: &mut DeliveryReport,
    ) -> Result<(), Cancelled> {
        let bytes: Arc<[u8]> = deadletter::render(dest, dead, SystemTime::now()).into();
        let mut backoff = Backoff::new(self.inner.options.backoff_base, self.inner.options.backoff_cap);
        loop {
            let file = Arc::clone(&self.inner.dead_letters);
            let chunk = Arc::clone(&bytes);
            let write = tokio::task::spawn_blocking(move || file.append_synced(&chunk));
            let error = match or_cancel(cancel, write).await? {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(err)) => err.to_string(),
                Err(join) => format!("dead-letter writer failed: {join}"),
            };
            report.retries += 1;
            DeadLetterWriteRetried { error: &error }.emit(&self.inner.metrics);
            retry::sleep(cancel, backoff.next_delay()).await?;
        }
    }
}

/// Whether an InvalidParameterException message blames the group or stream name.
fn mentions_names(message: &str) -> bool {
    message.contains("logGroupName") || message.contains("logStreamName")
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
