//! Typed internal events, after Vector's `InternalEvent`: every drop, loss, retry and
//! outcome is one value that both counts (its `/metrics` series) and logs, in one place, so
//! a site cannot count without saying why or log without counting. Whether a drop was
//! intended is part of the event: `EventsRejected` and `EmptyLineDropped` are the service's
//! or the format's rules applied on purpose; `SpoolEventsLost` and `SourceLost` are data the
//! shipper could not save.

use std::path::Path;

use super::{DropReason, LossReason, Metrics, OpenFailure, PutOutcome, SkipReason};

/// One thing the agent reports: counted and logged by [`InternalEvent::emit`].
pub trait InternalEvent {
    /// Count it in `metrics` and log it.
    fn emit(self, metrics: &Metrics);
}

/// The kinds of [`InternalEvent`], with the `/metrics` series each one counts in (a test
/// checks every kind's series is rendered, so a new event cannot go uncounted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// [`EventsRejected`].
    EventsRejected,
    /// [`EmptyLineDropped`].
    EmptyLineDropped,
    /// [`SpoolEventsLost`].
    SpoolEventsLost,
    /// [`SourceLost`].
    SourceLost,
    /// [`SourceOpenFailed`].
    SourceOpenFailed,
    /// [`SourceSkipped`].
    SourceSkipped,
    /// [`PutAnswered`].
    PutAnswered,
    /// [`CallRetried`].
    CallRetried,
    /// [`UnroutableFile`].
    UnroutableFile,
    /// [`DeadLetterWriteRetried`].
    DeadLetterWriteRetried,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 10] = [
        EventKind::EventsRejected,
        EventKind::EmptyLineDropped,
        EventKind::SpoolEventsLost,
        EventKind::SourceLost,
        EventKind::SourceOpenFailed,
        EventKind::SourceSkipped,
        EventKind::PutAnswered,
        EventKind::CallRetried,
        EventKind::UnroutableFile,
        EventKind::DeadLetterWriteRetried,
    ];

    /// The series it counts in (names are the metrics contract).
    pub fn series(self) -> &'static [&'static str] {
        match self {
            EventKind::EventsRejected | EventKind::EmptyLineDropped | EventKind::SpoolEventsLost => {
                &["shipper_events_dropped_total"]
            }
            EventKind::SourceLost => &["shipper_source_lost_files_total", "shipper_source_lost_bytes_total"],
            EventKind::SourceOpenFailed => &["shipper_source_open_failures_total"],
            EventKind::SourceSkipped => {
                &["shipper_source_skipped_files_total", "shipper_source_skipped_bytes_total"]
            }
            EventKind::PutAnswered => &["shipper_put_requests_total"],
            EventKind::CallRetried | EventKind::DeadLetterWriteRetried => &["shipper_retries_total"],
            EventKind::UnroutableFile => &["shipper_unroutable_files_total"],
        }
    }
}

/// CloudWatch rejected `count` events of a batch for `reason` (too old, too new, expired,
/// invalid): intended, they are dead-lettered.
#[derive(Debug)]
pub struct EventsRejected<'a> {
    /// The log group.
    pub group: &'a str,
    /// The log stream.
    pub stream: &'a str,
    /// Why.
    pub reason: DropReason,
    /// How many.
    pub count: u64,
}

impl InternalEvent for EventsRejected<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.dropped(self.reason, self.count);
        tracing::warn!(group = %self.group, stream = %self.stream, reason = self.reason.as_str(),
            events = self.count, "events rejected by CloudWatch, dead-lettered");
    }
}

/// An empty line in the `raw` message format: CloudWatch refuses empty messages (intended).
#[derive(Debug)]
pub struct EmptyLineDropped;

impl InternalEvent for EmptyLineDropped {
    fn emit(self, metrics: &Metrics) {
        metrics.dropped(DropReason::EmptyMessage, 1);
        tracing::debug!("empty line in the raw message format dropped: CloudWatch has no empty events");
    }
}

/// Spooled events that can never be sent: records that failed their checksum on recovery,
/// or a chunk found corrupt (quarantined) or gone when it was read. Not intended.
#[derive(Debug)]
pub struct SpoolEventsLost<'a> {
    /// How many (at least 1 for a chunk whose count is unknown).
    pub count: u64,
    /// Where: the destination of a chunk, `None` for recovery.
    pub dest: Option<(&'a str, &'a str)>,
    /// What went wrong.
    pub error: &'a str,
}

impl InternalEvent for SpoolEventsLost<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.dropped(DropReason::SpoolCorrupt, self.count);
        match self.dest {
            Some((group, stream)) => tracing::error!(error = %self.error, group = %group, stream = %stream,
                events = self.count,
                "spool chunk can never be read (corrupt: quarantined; or its file is gone): its events are dropped"),
            None => tracing::error!(error = %self.error, events = self.count,
                "spool records failed their checksum on recovery: quarantined, their events are dropped"),
        }
    }
}

/// Bytes of a container log file that can never be read (not intended: outside the
/// shipper's control, never silent).
#[derive(Debug)]
pub struct SourceLost<'a> {
    /// The file.
    pub path: &'a Path,
    /// First byte lost.
    pub from: u64,
    /// End of the loss, when known.
    pub to: Option<u64>,
    /// Why.
    pub reason: LossReason,
}

impl InternalEvent for SourceLost<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.source_lost(self.reason, self.to.map(|to| to.saturating_sub(self.from)));
        tracing::error!(path = %self.path.display(), from = self.from, to = self.to,
            reason = self.reason.as_str(), "log data lost: these bytes can never be read");
    }
}

/// A container log file cannot be opened; retried at every scan.
#[derive(Debug)]
pub struct SourceOpenFailed<'a> {
    /// The file.
    pub path: &'a Path,
    /// Why, as counted.
    pub reason: OpenFailure,
    /// The error.
    pub error: &'a str,
}

impl InternalEvent for SourceOpenFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.source_open_failed(self.reason);
        tracing::error!(path = %self.path.display(), reason = self.reason.as_str(), error = %self.error,
            "cannot open container log file; retrying at every scan, nothing of it is read until then");
    }
}

/// Existing log data a first install skipped by configuration (intended: `read_from`,
/// `ignore_older`), counted apart from losses.
#[derive(Debug)]
pub struct SourceSkipped<'a> {
    /// The file.
    pub path: &'a Path,
    /// First byte skipped.
    pub from: u64,
    /// End of the skipped range.
    pub to: u64,
    /// Which setting.
    pub reason: SkipReason,
}

impl InternalEvent for SourceSkipped<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.source_skipped(self.reason, self.to.saturating_sub(self.from));
        tracing::info!(path = %self.path.display(), from = self.from, to = self.to,
            reason = self.reason.as_str(), "existing log data skipped by configuration");
    }
}

/// How one PutLogEvents call was answered.
#[derive(Debug)]
pub struct PutAnswered {
    /// The outcome.
    pub outcome: PutOutcome,
}

impl InternalEvent for PutAnswered {
    fn emit(self, metrics: &Metrics) {
        metrics.put_request(self.outcome);
        tracing::trace!(outcome = self.outcome.as_str(), "PutLogEvents answered");
    }
}

/// A CloudWatch call failed and is retried; the data waits in the spool meanwhile.
#[derive(Debug)]
pub struct CallRetried<'a> {
    /// The log group.
    pub group: &'a str,
    /// The log stream.
    pub stream: &'a str,
    /// The operation (`PutLogEvents`, `CreateLogStream`, ...).
    pub operation: &'static str,
    /// The failure's kind (an outcome label, or `missing_stream` / `missing_group` for the
    /// resource created before the retry).
    pub kind: &'static str,
    /// What the service or the system said.
    pub detail: &'a str,
    /// Failures in a row so far (0: an expected step, such as creating a new stream).
    pub attempt: u32,
}

impl InternalEvent for CallRetried<'_> {
    fn emit(self, metrics: &Metrics) {
        Metrics::add(&metrics.retries, 1);
        let (group, stream, operation, kind) = (self.group, self.stream, self.operation, self.kind);
        let (attempt, error) = (self.attempt, self.detail);
        if kind == PutOutcome::Credentials.as_str() {
            tracing::error!(
                group,
                stream,
                operation,
                kind,
                attempt,
                error,
                "CloudWatch credentials missing or rejected; data waits in the spool"
            );
        } else if attempt == 0 {
            tracing::debug!(group, stream, operation, kind, "creating what is missing, then retrying");
        } else if attempt == 1 || attempt.is_multiple_of(10) {
            tracing::warn!(
                group,
                stream,
                operation,
                kind,
                attempt,
                error,
                "CloudWatch call failed, retrying"
            );
        } else {
            tracing::debug!(
                group,
                stream,
                operation,
                kind,
                attempt,
                error,
                "CloudWatch call failed, retrying"
            );
        }
    }
}

/// A file the log paths match whose name is not a kubelet container log's: its lines cannot
/// be routed and are not read (counted once per file).
#[derive(Debug)]
pub struct UnroutableFile<'a> {
    /// The file.
    pub path: &'a Path,
}

impl InternalEvent for UnroutableFile<'_> {
    fn emit(self, metrics: &Metrics) {
        Metrics::add(&metrics.unroutable_files, 1);
        tracing::error!(path = %self.path.display(),
            "not a kubelet container log name (<pod>_<namespace>_<container>-<id>.log): its lines cannot be routed and are not read");
    }
}

/// Rejected events could not be written to the dead-letter file; retried (the batch stays
/// in the spool meanwhile, so nothing is lost).
#[derive(Debug)]
pub struct DeadLetterWriteRetried<'a> {
    /// Why the write failed.
    pub error: &'a str,
}

impl InternalEvent for DeadLetterWriteRetried<'_> {
    fn emit(self, metrics: &Metrics) {
        Metrics::add(&metrics.retries, 1);
        tracing::error!(error = self.error, "cannot write dead letters, retrying");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One event of `kind`, as the agent emits it.
    fn emit_one(kind: EventKind, metrics: &Metrics) {
        let path = Path::new("/var/log/containers/p_ns_c-0.log");
        let error = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        match kind {
            EventKind::EventsRejected => {
                EventsRejected { group: "g", stream: "s", reason: DropReason::TooOld, count: 2 }.emit(metrics)
            }
            EventKind::EmptyLineDropped => EmptyLineDropped.emit(metrics),
            EventKind::SpoolEventsLost => {
                SpoolEventsLost { count: 3, dest: Some(("g", "s")), error: "checksum" }.emit(metrics)
            }
            EventKind::SourceLost => {
                SourceLost { path, from: 10, to: Some(30), reason: LossReason::Truncated }.emit(metrics)
            }
            EventKind::SourceOpenFailed => {
                SourceOpenFailed { path, reason: OpenFailure::of(&error), error: &error.to_string() }
                    .emit(metrics)
            }
            EventKind::SourceSkipped => {
                SourceSkipped { path, from: 0, to: 100, reason: SkipReason::ReadFromTail }.emit(metrics)
            }
            EventKind::PutAnswered => PutAnswered { outcome: PutOutcome::Throttled }.emit(metrics),
            EventKind::CallRetried => CallRetried {
                group: "g",
                stream: "s",
                operation: "PutLogEvents",
                kind: PutOutcome::ServerError.as_str(),
                detail: "503",
                attempt: 1,
            }
            .emit(metrics),
            EventKind::DeadLetterWriteRetried => DeadLetterWriteRetried { error: "disk full" }.emit(metrics),
            EventKind::UnroutableFile => {
                UnroutableFile { path: Path::new("/var/log/containers/x.log") }.emit(metrics)
            }
        }
    }

    /// The value of `series` (summed over labels) in a rendered `/metrics`.
    fn total(rendered: &str, series: &str) -> f64 {
        rendered
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter(|line| line.split(['{', ' ']).next() == Some(series))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    #[test]
    fn every_event_kind_counts_in_its_series_on_metrics() {
        for kind in EventKind::ALL {
            let metrics = Metrics::default();
            let before = metrics.render();
            for series in kind.series() {
                assert!(before.contains(&format!("# TYPE {series} ")), "{kind:?}: {series} is not rendered");
                assert_eq!(total(&before, series), 0.0, "{kind:?}: {series} starts at 0");
            }
            emit_one(kind, &metrics);
            let after = metrics.render();
            for series in kind.series() {
                assert!(total(&after, series) > 0.0, "{kind:?} did not count in {series}:\n{after}");
            }
        }
    }
}
