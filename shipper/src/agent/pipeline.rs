//! Per-file processing: parse records, merge partials, route and encode, append to the spool.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::kube::{PodInfo, Workload, WorkloadRule};
use crate::parse::{Assembler, Format, Line, detect_format, parse_record};
use crate::route::{Destination, MessageEncoder, MultilineDecision, RouteInput, Routing};
use crate::source::ContainerRef;
use crate::spool::{Spool, SpoolError};
use crate::telemetry::{DropReason, Metrics};

/// Largest line held while merging partial records; longer lines are cut into pieces.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Where a file's lines go, decided once per file.
#[derive(Debug)]
pub struct Routed {
    dest: Destination,
    encoder: MessageEncoder,
    /// True when routed from the file name because metadata never came.
    pub without_metadata: bool,
    /// The rule that leaves this container out, if one does: its lines are read, counted
    /// and skipped.
    excluded: Option<String>,
    /// The multiline detector the settings choose for it (by name), if any.
    pub multiline: Option<MultilineDecision>,
    /// How `{workload}` was decided.
    pub workload_rule: WorkloadRule,
}

impl Routed {
    /// Route a container's file with its pod's metadata, or from the file name alone.
    pub fn new(
        routing: &Routing,
        cluster: &str,
        node: &str,
        container: &ContainerRef,
        pod: Option<&PodInfo>,
    ) -> Self {
        let empty = std::collections::BTreeMap::new();
        let guessed;
        let (labels, annotations, image, workload) = match pod {
            Some(p) => (
                &p.labels,
                &p.annotations,
                p.images.get(&container.container).map(String::as_str).unwrap_or(""),
                &p.workload,
            ),
            None => {
                guessed = Workload::from_pod_name(&container.pod);
                (&empty, &empty, "", &guessed)
            }
        };
        let input = RouteInput {
            cluster,
            node,
            namespace: &container.namespace,
            pod: &container.pod,
            container: &container.container,
            workload: &workload.name,
            workload_kind: &workload.kind,
            labels,
            annotations,
        };
        let plan = routing.plan(&input, image, pod.is_some());
        Routed {
            dest: plan.dest,
            encoder: plan.encoder,
            without_metadata: pod.is_none(),
            excluded: (!plan.decision.shipped).then_some(plan.decision.rule),
            multiline: plan.multiline,
            workload_rule: workload.rule,
        }
    }

    /// The destination.
    pub fn dest(&self) -> &Destination {
        &self.dest
    }

    /// The rule that excludes this container, if any.
    pub fn excluded_by(&self) -> Option<&str> {
        self.excluded.as_deref()
    }
}

/// State of one tailed file in the pipeline.
#[derive(Debug)]
pub struct FilePipeline {
    /// From the file name.
    pub container: ContainerRef,
    /// Set once metadata is known or the wait ran out.
    pub routed: Option<Routed>,
    /// When the pipeline first saw the file (for the metadata wait).
    pub first_seen: Instant,
    /// File offset just past the last chunk processed.
    pub read_end: u64,
    /// When bytes last arrived.
    pub last_data: Instant,
    format: Option<Format>,
    assembler: Assembler,
    lines: Vec<Line>,
    messages: Vec<String>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl FilePipeline {
    /// A new file.
    pub fn new(container: ContainerRef, now: Instant) -> Self {
        FilePipeline {
            container,
            routed: None,
            first_seen: now,
            read_end: 0,
            last_data: now,
            format: None,
            assembler: Assembler::new(MAX_LINE_BYTES),
            lines: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// Process `bytes` (whole lines) read from file offset `start`; returns the offset the
    /// checkpoint may advance to once the spool commits (never inside an unfinished line).
    pub fn process(
        &mut self,
        bytes: &[u8],
        start: u64,
        spool: &mut Spool,
        metrics: &Metrics,
    ) -> Result<u64, SpoolError> {
        let Some(routed) = &self.routed else {
            return Ok(start);
        };
        let mut offset = start;
        for raw in bytes.split_inclusive(|b| *b == b'\n') {
            let line_start = offset;
            offset += raw.len() as u64;
            let line = raw.strip_suffix(b"\n").unwrap_or(raw);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let format = match self.format {
                Some(f) => f,
                None => match detect_format(line) {
                    Some(f) => {
                        self.format = Some(f);
                        f
                    }
                    None => Format::Cri,
                },
            };
            match parse_record(format, line) {
                Ok(record) => self.assembler.push(record, line_start, &mut self.lines),
                Err(e) => {
                    // Not a runtime record: ship the raw line rather than drop it.
                    tracing::debug!(error = %e, "malformed line shipped raw");
                    Metrics::add(&metrics.malformed_lines, 1);
                    let text = String::from_utf8_lossy(line);
                    self.lines.push(Line {
                        timestamp_ms: now_ms(),
                        stream: crate::parse::Stream::Stdout,
                        invalid_utf8: matches!(text, std::borrow::Cow::Owned(_)),
                        text: text.into_owned(),
                        continued: false,
                    });
                }
            }
        }
        self.read_end = offset;
        self.last_data = Instant::now();
        self.spool_lines(routed.without_metadata, spool, metrics)?;
        Ok(self.assembler.pending_since().unwrap_or(offset))
    }

    /// An unfinished partial line is held.
    pub fn has_pending(&self) -> bool {
        self.assembler.pending_since().is_some()
    }

    /// The file is gone for good: emit any pending partial line.
    pub fn finish(&mut self, spool: &mut Spool, metrics: &Metrics) -> Result<(), SpoolError> {
        self.assembler.flush(&mut self.lines);
        let without = self.routed.as_ref().is_some_and(|r| r.without_metadata);
        self.spool_lines(without, spool, metrics)
    }

    fn spool_lines(
        &mut self,
        without_metadata: bool,
        spool: &mut Spool,
        metrics: &Metrics,
    ) -> Result<(), SpoolError> {
        let Some(routed) = &self.routed else {
            return Ok(());
        };
        let n = self.lines.len() as u64;
        Metrics::add(&metrics.lines_read, n);
        if let Some(rule) = routed.excluded_by() {
            // Read, counted, skipped: never spooled, never a drop.
            metrics.lines_excluded.add(rule, n);
            self.lines.clear();
            return Ok(());
        }
        if without_metadata {
            Metrics::add(&metrics.metadata_missing, n);
        }
        for line in self.lines.drain(..) {
            if line.invalid_utf8 {
                Metrics::add(&metrics.invalid_utf8_lines, 1);
            }
            self.messages.clear();
            let pieces = routed.encoder.encode(&line.text, line.continued, &mut self.messages);
            if pieces > 1 || line.continued {
                Metrics::add(&metrics.lines_split, 1);
            }
            if pieces == 0 {
                // Only an empty line in the raw format: CloudWatch has no empty events.
                metrics.dropped(DropReason::EmptyMessage, 1);
            }
            for message in &self.messages {
                spool.append(&routed.dest, line.timestamp_ms, message)?;
            }
            Metrics::add(&metrics.events_spooled, pieces as u64);
        }
        Ok(())
    }
}
