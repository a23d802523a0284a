//! Counters and gauges exported on `/metrics` in Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Why an event was dropped. Every drop is intended and explained; there is no "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// CloudWatch rejected the event as older than 14 days (`tooOldLogEventEndIndex`).
    TooOld,
    /// CloudWatch rejected the event as more than 2 h in the future (`tooNewLogEventStartIndex`).
    TooNew,
    /// CloudWatch rejected the event as older than the group's retention (`expiredLogEventEndIndex`).
    Expired,
    /// CloudWatch rejected the event itself as invalid (isolated by bisection).
    Invalid,
    /// A spool record failed its checksum on recovery and was quarantined.
    SpoolCorrupt,
    /// An empty line in the `raw` message format (CloudWatch refuses empty messages).
    EmptyMessage,
}

impl DropReason {
    /// All reasons, in export order.
    pub const ALL: [DropReason; 6] = [
        DropReason::TooOld,
        DropReason::TooNew,
        DropReason::Expired,
        DropReason::Invalid,
        DropReason::SpoolCorrupt,
        DropReason::EmptyMessage,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooOld => "too_old",
            DropReason::TooNew => "too_new",
            DropReason::Expired => "expired",
            DropReason::Invalid => "invalid",
            DropReason::SpoolCorrupt => "spool_corrupt",
            DropReason::EmptyMessage => "empty_message",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why bytes of a source file can never be read (outside the shipper's control, but never
/// silent: counted by reason and logged with the file and range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// The file was cut (copytruncate) before these bytes were read.
    Truncated,
    /// The file ended for good on a line without a newline. No longer counted (that line
    /// is shipped as it is); the series stays so dashboards and alerts keep working.
    Unterminated,
    /// The checkpointed file is gone: deleted (kubelet's oldest rotation) while the shipper
    /// was not running, or while it could not be opened (out of descriptors, its mode).
    Vanished,
    /// A compressed rotation could not be decompressed (corrupt, or over the size bound).
    Unreadable,
}

impl LossReason {
    /// All reasons, in export order.
    pub const ALL: [LossReason; 4] =
        [LossReason::Truncated, LossReason::Unterminated, LossReason::Vanished, LossReason::Unreadable];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::Truncated => "truncated",
            LossReason::Unterminated => "unterminated",
            LossReason::Vanished => "vanished",
            LossReason::Unreadable => "unreadable",
        }
    }
}

/// Why bytes of a source file were deliberately not read: a first install told to start at
/// the end (`read_from = tail`) or to ignore old files (`ignore_older`). Counted apart from
/// losses, since nothing went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// `read_from = tail`: what a file held when the first install found it.
    ReadFromTail,
    /// `ignore_older`: a file last modified before the cut-off when the first install found it.
    IgnoreOlder,
}

impl SkipReason {
    /// All reasons, in export order.
    pub const ALL: [SkipReason; 2] = [SkipReason::ReadFromTail, SkipReason::IgnoreOlder];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::ReadFromTail => "read_from_tail",
            SkipReason::IgnoreOlder => "ignore_older",
        }
    }
}

/// Why a container log file could not be opened (it is retried at every scan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenFailure {
    /// `EACCES` / `EPERM`: the file's mode or a security module refuses the shipper.
    PermissionDenied,
    /// `EMFILE` / `ENFILE`: out of file descriptors.
    TooManyOpenFiles,
    /// Anything else (`EIO`, ...).
    Other,
}

impl OpenFailure {
    /// All reasons, in export order.
    pub const ALL: [OpenFailure; 3] =
        [OpenFailure::PermissionDenied, OpenFailure::TooManyOpenFiles, OpenFailure::Other];

    /// The reason an I/O error gives.
    pub fn of(error: &std::io::Error) -> Self {
        const EMFILE: i32 = 24;
        const ENFILE: i32 = 23;
        match error.kind() {
            std::io::ErrorKind::PermissionDenied => OpenFailure::PermissionDenied,
            _ if matches!(error.raw_os_error(), Some(EMFILE | ENFILE)) => OpenFailure::TooManyOpenFiles,
            _ => OpenFailure::Other,
        }
    }

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenFailure::PermissionDenied => "permission_denied",
            OpenFailure::TooManyOpenFiles => "too_many_open_files",
            OpenFailure::Other => "other",
        }
    }
}

/// Outcome of one PutLogEvents call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PutOutcome {
    /// Accepted (possibly with rejected events, counted separately).
    Ok,
    /// `ThrottlingException` or a rate-exceeded answer.
    Throttled,
    /// 5xx / `ServiceUnavailableException`.
    ServerError,
    /// Timeout, connection refused/reset, DNS: no answer from the service.
    Network,
    /// `ResourceNotFoundException`: group or stream to be created.
    NotFound,
    /// `InvalidParameterException` for the batch as a whole.
    Invalid,
    /// Missing or rejected credentials.
    Credentials,
    /// Anything else the service answered.
    Other,
}

impl PutOutcome {
    /// All outcomes, in export order.
    pub const ALL: [PutOutcome; 8] = [
        PutOutcome::Ok,
        PutOutcome::Throttled,
        PutOutcome::ServerError,
        PutOutcome::Network,
        PutOutcome::NotFound,
        PutOutcome::Invalid,
        PutOutcome::Credentials,
        PutOutcome::Other,
    ];

    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PutOutcome::Ok => "ok",
            PutOutcome::Throttled => "throttled",
            PutOutcome::ServerError => "server_error",
            PutOutcome::Network => "network",
            PutOutcome::NotFound => "not_found",
            PutOutcome::Invalid => "invalid",
            PutOutcome::Credentials => "credentials",
            PutOutcome::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A counter with one label whose values come from the configuration or a fixed set (rule
/// names), so its cardinality is bounded by the config, never by the workload.
#[derive(Debug, Default)]
pub struct LabeledCounter {
    values: Mutex<BTreeMap<String, u64>>,
}

impl LabeledCounter {
    /// Add `n` under `label`.
    pub fn add(&self, label: &str, n: u64) {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        match values.get_mut(label) {
            Some(value) => *value += n,
            None => {
                values.insert(label.to_owned(), n);
            }
        }
    }

    /// The count under `label`.
    pub fn get(&self, label: &str) -> u64 {
        self.values.lock().unwrap_or_else(|e| e.into_inner()).get(label).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, label: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (value, count) in self.values.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let _ = writeln!(out, "{name}{{{label}=\"{escaped}\"}} {count}");
        }
    }
}

/// The shipper's metrics. Cheap to update from any thread; shared as `Arc<Metrics>`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Complete lines parsed from container log files (after partial merge).
    pub lines_read: AtomicU64,
    /// Bytes read from container log files.
    pub bytes_read: AtomicU64,
    /// Events CloudWatch accepted.
    pub events_delivered: AtomicU64,
    /// Events spooled (a line split for size counts once per piece).
    pub events_spooled: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    put_requests: [AtomicU64; PutOutcome::ALL.len()],
    /// Retried CloudWatch calls (any operation).
    pub retries: AtomicU64,
    /// Lines whose bytes were not valid UTF-8 and were repaired with U+FFFD.
    pub invalid_utf8_lines: AtomicU64,
    /// Lines that could not be parsed as CRI or docker json-file and were shipped raw.
    pub malformed_lines: AtomicU64,
    /// Lines routed without pod metadata (from the file name) after the wait ran out.
    pub metadata_missing: AtomicU64,
    /// Lines split into several events because they exceeded the event size limit.
    pub lines_split: AtomicU64,
    /// Pieces of unfinished partial lines sent early because all files together held more
    /// than the partial-line budget.
    pub partial_pieces_released: AtomicU64,
    /// Files with bytes that can never be read, by [`LossReason`].
    source_lost_files: [AtomicU64; LossReason::ALL.len()],
    /// Bytes known to be lost that way (when the file's size was known), by [`LossReason`].
    source_lost_bytes: [AtomicU64; LossReason::ALL.len()],
    /// Files with bytes skipped by choice on a first install, by [`SkipReason`].
    source_open_failures: [AtomicU64; OpenFailure::ALL.len()],
    source_skipped_files: [AtomicU64; SkipReason::ALL.len()],
    /// Bytes skipped that way, by [`SkipReason`].
    source_skipped_bytes: [AtomicU64; SkipReason::ALL.len()],
    /// Files matching the globs whose names do not say which pod they belong to (not read).
    pub unroutable_files: AtomicU64,
    /// Log groups created.
    pub groups_created: AtomicU64,
    /// Log streams created.
    pub streams_created: AtomicU64,
    /// Bytes currently held in the spool.
    pub spool_bytes: AtomicI64,
    /// Events currently held in the spool.
    pub spool_events: AtomicI64,
    /// The spool's size cap (`spool_max_bytes`), set once at startup.
    pub spool_max_bytes: AtomicI64,
    /// Files currently tailed.
    pub files_tailed: AtomicI64,
    /// 1 while reading is paused because the spool is full.
    pub backpressure: AtomicI64,
    /// Streams whose files are not read because they hold their most of the spool.
    pub streams_paused: AtomicI64,
    /// 1 once pod metadata has synced.
    pub metadata_ready: AtomicI64,
    /// 1 while another process holds the state directory and this one waits for it.
    pub state_lock_waiting: AtomicI64,
    /// Connections open on the `/metrics` listener.
    pub http_connections: AtomicI64,
    /// The soft open-file limit in force (-1: unlimited).
    pub open_fds_limit: AtomicI64,
    /// `/metrics` listener connections closed to make room for a new one (at the cap).
    pub http_connections_evicted: AtomicU64,
    /// The effective flush interval in ms (`flush_interval`, stretched while throttled).
    flush_interval_ms: AtomicI64,
    /// Lines read and skipped because their container is excluded, by deciding rule.
    pub lines_excluded: LabeledCounter,
    /// Files whose `{workload}` came from the pod name (metadata never arrived), by rule.
    pub workload_from_name: LabeledCounter,
    /// Events made of several lines by a multiline detector, by detector.
    pub multiline_groups: LabeledCounter,
    /// Lines merged into multiline events, by detector.
    pub multiline_lines: LabeledCounter,
    /// Multiline events emitted, by why they ended.
    pub multiline_flushes: LabeledCounter,
    /// Streams whose data waits because their log group does not exist and
    /// `create_groups = false` forbids creating it.
    pub streams_blocked_group_missing: AtomicI64,
    /// Group settings CloudWatch refused (AccessDenied), by setting (`retention`, `tags`);
    /// counted once per group per process.
    pub group_settings_denied: LabeledCounter,
}

impl Metrics {
    /// Count `n` events dropped for `reason` (only through a typed event: [`super::events`]).
    pub(super) fn dropped(&self, reason: DropReason, n: u64) {
        self.dropped[reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Count a file losing `bytes` (when known) for `reason`.
    pub(super) fn source_lost(&self, reason: LossReason, bytes: Option<u64>) {
        self.source_lost_files[reason as usize].fetch_add(1, Ordering::Relaxed);
        self.source_lost_bytes[reason as usize].fetch_add(bytes.unwrap_or(0), Ordering::Relaxed);
    }

    /// Files that lost bytes so far for `reason`.
    pub fn source_lost_files_total(&self, reason: LossReason) -> u64 {
        self.source_lost_files[reason as usize].load(Ordering::Relaxed)
    }

    /// A container log file could not be opened (counted once per path until it opens).
    pub(super) fn source_open_failed(&self, reason: OpenFailure) {
        self.source_open_failures[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Paths whose opening has failed so far for `reason`.
    pub fn source_open_failures_total(&self, reason: OpenFailure) -> u64 {
        self.source_open_failures[reason as usize].load(Ordering::Relaxed)
    }

    /// Count a file whose `bytes` were skipped by choice for `reason`.
    pub(super) fn source_skipped(&self, reason: SkipReason, bytes: u64) {
        self.source_skipped_files[reason as usize].fetch_add(1, Ordering::Relaxed);
        self.source_skipped_bytes[reason as usize].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Files with bytes skipped so far for `reason`.
    pub fn source_skipped_files_total(&self, reason: SkipReason) -> u64 {
        self.source_skipped_files[reason as usize].load(Ordering::Relaxed)
    }

    /// Events dropped so far for `reason`.
    pub fn dropped_total(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }

    /// Count one PutLogEvents call with its outcome.
    pub(super) fn put_request(&self, outcome: PutOutcome) {
        self.put_requests[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// PutLogEvents calls so far with `outcome`.
    pub fn put_requests_total(&self, outcome: PutOutcome) -> u64 {
        self.put_requests[outcome.index()].load(Ordering::Relaxed)
    }

    /// Add to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The effective flush interval (exported in seconds).
    pub fn set_flush_interval(&self, interval: std::time::Duration) {
        Self::set(&self.flush_interval_ms, interval.as_millis().min(i64::MAX as u128) as i64);
    }

    /// Set a gauge.
    pub fn set(gauge: &AtomicI64, v: i64) {
        gauge.store(v, Ordering::Relaxed);
    }

    /// Render all metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let c = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let g = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let gload = |a: &AtomicI64| a.load(Ordering::Relaxed);

        c(
            &mut out,
            "shipper_lines_read_total",
            "Complete lines read from container log files.",
            load(&self.lines_read),
        );
        c(
            &mut out,
            "shipper_bytes_read_total",
            "Bytes read from container log files.",
            load(&self.bytes_read),
        );
        c(
            &mut out,
            "shipper_events_spooled_total",
            "Events written to the durable spool.",
            load(&self.events_spooled),
        );
        c(
            &mut out,
            "shipper_events_delivered_total",
            "Events accepted by CloudWatch Logs.",
            load(&self.events_delivered),
        );
        labeled(
            &mut out,
            "shipper_events_dropped_total",
            "Events dropped, by reason. Every drop is also dead-lettered or logged.",
            "reason",
            DropReason::ALL.map(|r| (r.as_str(), self.dropped_total(r))),
        );
        labeled(
            &mut out,
            "shipper_put_requests_total",
            "PutLogEvents calls, by outcome.",
            "outcome",
            PutOutcome::ALL.map(|o| (o.as_str(), self.put_requests_total(o))),
        );
        c(&mut out, "shipper_retries_total", "CloudWatch calls retried.", load(&self.retries));
        c(
            &mut out,
            "shipper_http_connections_evicted_total",
            "Connections to the /metrics listener closed, oldest first, to make room at the connection cap.",
            load(&self.http_connections_evicted),
        );
        for (name, help, values) in [
            (
                "shipper_source_lost_files_total",
                "Files with bytes that can never be read (deleted, cut or corrupt before they were read), by reason.",
                &self.source_lost_files,
            ),
            (
                "shipper_source_lost_bytes_total",
                "Bytes that can never be read (where the size was known), by reason.",
                &self.source_lost_bytes,
            ),
        ] {
            labeled(
                &mut out,
                name,
                help,
                "reason",
                LossReason::ALL.map(|r| (r.as_str(), load(&values[r as usize]))),
            );
        }
        labeled(
            &mut out,
            "shipper_source_open_failures_total",
            "Container log files that could not be opened (once per path until it opens; retried at every scan; its rotations made meanwhile are read once it opens), by reason.",
            "reason",
            OpenFailure::ALL.map(|r| (r.as_str(), load(&self.source_open_failures[r as usize]))),
        );
        for (name, help, values) in [
            (
                "shipper_source_skipped_files_total",
                "Files whose existing content a first install skipped by configuration (read_from, ignore_older), by reason.",
                &self.source_skipped_files,
            ),
            (
                "shipper_source_skipped_bytes_total",
                "Bytes a first install skipped by configuration (a skipped .gz rotation counts its compressed size), by reason.",
                &self.source_skipped_bytes,
            ),
        ] {
            labeled(
                &mut out,
                name,
                help,
                "reason",
                SkipReason::ALL.map(|r| (r.as_str(), load(&values[r as usize]))),
            );
        }
        c(
            &mut out,
            "shipper_invalid_utf8_lines_total",
            "Lines repaired because they were not valid UTF-8.",
            load(&self.invalid_utf8_lines),
        );
        c(
            &mut out,
            "shipper_malformed_lines_total",
            "Lines in neither CRI nor docker format, shipped raw.",
            load(&self.malformed_lines),
        );
        c(
            &mut out,
            "shipper_metadata_missing_total",
            "Lines routed from the file name because pod metadata never arrived.",
            load(&self.metadata_missing),
        );
        c(
            &mut out,
            "shipper_lines_split_total",
            "Lines split into several events because of the event size limit.",
            load(&self.lines_split),
        );
        c(
            &mut out,
            "shipper_partial_pieces_released_total",
            "Pieces of unfinished partial lines sent early (as continued pieces) because all files together held more than the partial-line budget.",
            load(&self.partial_pieces_released),
        );
        c(
            &mut out,
            "shipper_unroutable_files_total",
            "Files matching the globs whose names do not name a pod; not read.",
            load(&self.unroutable_files),
        );
        c(&mut out, "shipper_groups_created_total", "Log groups created.", load(&self.groups_created));
        c(&mut out, "shipper_streams_created_total", "Log streams created.", load(&self.streams_created));
        g(&mut out, "shipper_spool_bytes", "Bytes held in the spool.", gload(&self.spool_bytes));
        g(&mut out, "shipper_spool_events", "Events held in the spool.", gload(&self.spool_events));
        g(
            &mut out,
            "shipper_spool_max_bytes",
            "The spool's size cap (spool_max_bytes): reading pauses when shipper_spool_bytes reaches it.",
            gload(&self.spool_max_bytes),
        );
        let _ = writeln!(
            out,
            "# HELP shipper_flush_interval_seconds How long a stream's lines wait to be batched: flush_interval, stretched up to flush_interval_max while PutLogEvents is throttled.\n# TYPE shipper_flush_interval_seconds gauge\nshipper_flush_interval_seconds {}",
            gload(&self.flush_interval_ms) as f64 / 1000.0
        );
        g(&mut out, "shipper_files_tailed", "Container log files tailed.", gload(&self.files_tailed));
        g(
            &mut out,
            "shipper_backpressure",
            "1 while reading is paused because the spool is full.",
            gload(&self.backpressure),
        );
        g(
            &mut out,
            "shipper_streams_paused",
            "Streams whose files wait because they hold their share (3/4) of the spool cap.",
            gload(&self.streams_paused),
        );
        g(&mut out, "shipper_metadata_ready", "1 once pod metadata has synced.", gload(&self.metadata_ready));
        g(
            &mut out,
            "shipper_state_lock_waiting",
            "1 while another shipper holds the state directory and this one waits, touching nothing.",
            gload(&self.state_lock_waiting),
        );
        g(&mut out, "shipper_open_fds", "File descriptors the process holds open.", open_fds());
        g(
            &mut out,
            "shipper_open_fds_limit",
            "The soft open-file limit (raised to the hard limit at start; -1: unlimited).",
            gload(&self.open_fds_limit),
        );
        g(
            &mut out,
            "shipper_http_connections",
            "Connections open on the /metrics, /healthz and /readyz listener.",
            gload(&self.http_connections),
        );
        self.lines_excluded.render(
            &mut out,
            "shipper_lines_excluded_total",
            "rule",
            "Lines read and skipped because include/exclude rules or annotations leave their container out (by choice: not drops).",
        );
        self.workload_from_name.render(
            &mut out,
            "shipper_workload_from_name_total",
            "rule",
            "Files whose workload was derived from the pod name because metadata never arrived, by rule.",
        );
        self.multiline_groups.render(
            &mut out,
            "shipper_multiline_groups_total",
            "detector",
            "Events made of several lines by a multiline detector.",
        );
        self.multiline_lines.render(
            &mut out,
            "shipper_multiline_lines_total",
            "detector",
            "Lines that went into multiline events.",
        );
        self.multiline_flushes.render(
            &mut out,
            "shipper_multiline_flushes_total",
            "reason",
            "Multiline events emitted, by why they ended (next_group, timeout, max_lines, max_bytes, ...).",
        );
        let _ = writeln!(
            out,
            "# HELP shipper_streams_blocked Streams whose data waits in the spool, by reason (group_missing: the log group does not exist and create_groups=false).\n# TYPE shipper_streams_blocked gauge\nshipper_streams_blocked{{reason=\"group_missing\"}} {}",
            gload(&self.streams_blocked_group_missing)
        );
        self.group_settings_denied.render(
            &mut out,
            "shipper_group_settings_denied_total",
            "setting",
            "Log groups whose retention or tags CloudWatch refused (AccessDenied), by setting; the data is shipped anyway.",
        );
        out
    }
}

/// A counter with one label: `# HELP`, `# TYPE`, then one series per value.
fn labeled<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, count) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

/// Descriptors open in this process (`/proc/self/fd`, less the one reading it); -1 where
/// `/proc` is not mounted.
fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd").map_or(-1, |dir| dir.count() as i64 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_losses_are_exported_by_reason() {
        let m = Metrics::default();
        m.source_lost(LossReason::Vanished, None);
        m.source_lost(LossReason::Truncated, Some(120));
        m.source_lost(LossReason::Truncated, Some(5));
        let text = m.render();
        for line in [
            "shipper_source_lost_files_total{reason=\"vanished\"} 1",
            "shipper_source_lost_bytes_total{reason=\"vanished\"} 0",
            "shipper_source_lost_files_total{reason=\"truncated\"} 2",
            "shipper_source_lost_bytes_total{reason=\"truncated\"} 125",
            "shipper_source_lost_files_total{reason=\"unreadable\"} 0",
            "# TYPE shipper_source_lost_files_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert_eq!(m.source_lost_files_total(LossReason::Truncated), 2);
    }

    #[test]
    fn labeled_counters_render_each_label() {
        let m = Metrics::default();
        m.lines_excluded.add("no-kube-system", 3);
        m.lines_excluded.add("annotation:exclude", 1);
        m.lines_excluded.add("no-kube-system", 2);
        m.lines_excluded.add("we\"ird", 1);
        let text = m.render();
        for line in [
            "shipper_lines_excluded_total{rule=\"no-kube-system\"} 5",
            "shipper_lines_excluded_total{rule=\"annotation:exclude\"} 1",
            "shipper_lines_excluded_total{rule=\"we\\\"ird\"} 1",
            "# TYPE shipper_lines_excluded_total counter",
            "# TYPE shipper_multiline_groups_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert_eq!(m.lines_excluded.get("no-kube-system"), 5);
    }

    #[test]
    fn source_skips_are_exported_by_reason() {
        let m = Metrics::default();
        m.source_skipped(SkipReason::ReadFromTail, 100);
        m.source_skipped(SkipReason::ReadFromTail, 20);
        let text = m.render();
        for line in [
            "shipper_source_skipped_files_total{reason=\"read_from_tail\"} 2",
            "shipper_source_skipped_bytes_total{reason=\"read_from_tail\"} 120",
            "shipper_source_skipped_files_total{reason=\"ignore_older\"} 0",
            "# TYPE shipper_source_skipped_bytes_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert_eq!(m.source_skipped_files_total(SkipReason::ReadFromTail), 2);
    }

    #[test]
    fn render_has_every_contract_metric_with_labels() {
        let m = Metrics::default();
        m.dropped(DropReason::TooOld, 3);
        m.put_request(PutOutcome::Throttled);
        Metrics::add(&m.lines_read, 7);
        m.set_flush_interval(std::time::Duration::from_millis(2_500));
        let text = m.render();
        for name in [
            "shipper_lines_read_total 7",
            "shipper_events_delivered_total 0",
            "shipper_events_dropped_total{reason=\"too_old\"} 3",
            "shipper_spool_bytes 0",
            "shipper_spool_events 0",
            "shipper_spool_max_bytes 0",
            "shipper_put_requests_total{outcome=\"throttled\"} 1",
            "shipper_retries_total 0",
            "shipper_files_tailed 0",
            "shipper_flush_interval_seconds 2.5",
        ] {
            assert!(text.lines().any(|l| l == name), "missing line {name:?} in\n{text}");
        }
    }
}
