//! Per-file processing: parse records, merge partials, route and encode, append to the spool.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::kube::{PodInfo, Workload, WorkloadRule};
use crate::multiline::{Combiner, Detector, OpenGroups, Stats};
use crate::parse::{Assembler, Format, Line, Record, detect_format, parse_record};
use crate::route::{Destination, MessageEncoder, MultilineDecision, RouteInput, Routing};
use crate::source::{ContainerRef, FileKey};
use crate::spool::{Spool, SpoolError};
use crate::telemetry::{EmptyLineDropped, InternalEvent, Metrics};

/// Queue slots a file keeps between reads (a read chunk of short lines needs ~1,000).
const KEPT_QUEUE_CAPACITY: usize = 64;

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

/// An unfinished stack trace carried from a rotated file into the next file at its path.
#[derive(Debug)]
pub struct Carry {
    groups: OpenGroups,
    detector: Detector,
    /// Rotated files (key, end offset) whose checkpoints wait at the trace's start until it
    /// is spooled: the trace may have begun several rotations ago.
    waiting: Vec<(FileKey, u64)>,
}

/// What a rotated file leaves behind when the next file at its path takes over.
#[derive(Debug)]
pub struct HandOver {
    /// How far the rotated file's checkpoint may go now.
    pub safe: u64,
    /// Its unfinished trace, for the next file.
    pub carry: Option<Carry>,
    /// Older rotated files that no longer wait for anything (key, end offset).
    pub released: Vec<(FileKey, u64)>,
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
    /// Traces handed over by rotated files at the same path, adopted once this file is
    /// routed: (rotated file, its end offset, the trace).
    pub pending_carry: Vec<(FileKey, u64, Carry)>,
    format: Option<Format>,
    assembler: Assembler,
    /// Groups stack-trace lines into events, when the container has a detector.
    combiner: Option<Combiner>,
    /// Rotated files whose trace this file's combiner carries (key, end offset).
    carried: Vec<(FileKey, u64)>,
    /// Complete lines from the assembler, before multiline grouping.
    assembled: Vec<Line>,
    /// Lines counted into `lines_read` since the last spooling.
    lines_in: u64,
    /// Events ready for the spool.
    lines: Vec<Line>,
    messages: Vec<String>,
    /// The combiner's counters as last exported.
    stats_seen: Stats,
    /// Lines of traces carried into this file after it turned out to be excluded.
    excluded_carried: u64,
    /// Inside a physical line handed out in prefixes (`ReadChunk::unfinished`): the record
    /// its first prefix began, whose header the next bytes do not repeat.
    mid_line: Option<OpenRecord>,
}

/// The header of a record handed out in prefixes.
#[derive(Debug, Clone, Copy)]
struct OpenRecord {
    timestamp_ms: i64,
    stream: crate::parse::Stream,
    /// The record's own tag said `P`.
    partial: bool,
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
            pending_carry: Vec::new(),
            format: None,
            assembler: Assembler::new(MAX_LINE_BYTES),
            combiner: None,
            carried: Vec::new(),
            assembled: Vec::new(),
            lines_in: 0,
            lines: Vec::new(),
            messages: Vec::new(),
            stats_seen: Stats::default(),
            excluded_carried: 0,
            mid_line: None,
        }
    }

    /// Route the file; `detector` groups its stack traces (ignored for an excluded file,
    /// whose lines are only counted). Traces handed over by rotated files are adopted now.
    pub fn set_routed(&mut self, routed: Routed, detector: Option<Detector>) {
        let excluded = routed.excluded_by().is_some();
        self.routed = Some(routed);
        self.combiner = if excluded { None } else { detector.map(Combiner::new) };
        for (key, end, carry) in std::mem::take(&mut self.pending_carry) {
            let before = self.lines.len();
            match &mut self.combiner {
                Some(combiner) => combiner.adopt(carry.groups, 0, &mut self.lines),
                // Normally the same container, so the same detector. If this file has none
                // (its pod's annotations changed), the trace goes out as it is.
                None => {
                    let mut combiner = Combiner::new(carry.detector.clone());
                    combiner.adopt(carry.groups, 0, &mut self.lines);
                    combiner.flush(&mut self.lines);
                }
            }
            if excluded {
                // Read and counted as lines already; now they are excluded lines.
                let lines: usize =
                    self.lines[before..].iter().map(|l| l.text.matches('\n').count() + 1).sum();
                self.excluded_carried += lines as u64;
            }
            self.carried.extend(carry.waiting);
            self.carried.push((key, end));
        }
    }

    /// `process_chunk` for whole lines (tests).
    #[cfg(test)]
    pub fn process(
        &mut self,
        bytes: &[u8],
        start: u64,
        spool: &mut Spool,
        metrics: &Metrics,
    ) -> Result<u64, SpoolError> {
        self.process_chunk(bytes, start, false, spool, metrics)
    }

    /// Process `bytes` read from file offset `start`; returns the offset the checkpoint may
    /// advance to once the spool commits (never inside an unfinished line or an unfinished
    /// stack trace). With `unfinished` the chunk ends inside a physical line (a prefix of a
    /// line longer than `LONG_LINE_PREFIX_BYTES`): its bytes, and the next chunks' up to the
    /// line's `\n`, go to the assembler as partial records of the line's stream, so the line
    /// comes out in pieces bounded like any long line and the checkpoint stays at its start.
    pub fn process_chunk(
        &mut self,
        bytes: &[u8],
        start: u64,
        unfinished: bool,
        spool: &mut Spool,
        metrics: &Metrics,
    ) -> Result<u64, SpoolError> {
        if self.routed.is_none() {
            return Ok(start);
        }
        let now = crate::clock::now();
        let mut offset = start;
        let end = start + bytes.len() as u64;
        for raw in bytes.split_inclusive(|b| *b == b'\n') {
            let line_start = offset;
            offset += raw.len() as u64;
            let ends_line = raw.ends_with(b"\n");
            // Only the record's `\n` goes: in CRI everything between the tag and it is
            // content, a `\r` that ends a `P` record included (DESIGN §3); docker's own
            // line ending is inside its JSON and handled by its parser.
            let line = raw.strip_suffix(b"\n").unwrap_or(raw);
            if let Some(open) = self.mid_line {
                // More of a physical line whose header came with an earlier prefix.
                if ends_line {
                    self.mid_line = None;
                }
                let record = Record {
                    timestamp_ms: open.timestamp_ms,
                    stream: open.stream,
                    partial: !ends_line || open.partial,
                    message: std::borrow::Cow::Borrowed(line),
                };
                let first = self.assembler.open_since(open.stream).unwrap_or(line_start);
                self.assembler.push(record, line_start, &mut self.assembled);
                self.admit(first, now);
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let prefix = unfinished && !ends_line && offset == end;
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
                Ok(mut record) => {
                    if prefix {
                        // The first prefix of a long physical line: its rest follows.
                        self.mid_line = Some(OpenRecord {
                            timestamp_ms: record.timestamp_ms,
                            stream: record.stream,
                            partial: record.partial,
                        });
                        record.partial = true;
                    }
                    // Where the line this record completes began (for the combiner's
                    // checkpoint bound).
                    let first = self.assembler.open_since(record.stream).unwrap_or(line_start);
                    self.assembler.push(record, line_start, &mut self.assembled);
                    self.admit(first, now);
                }
                Err(e) => {
                    // Not a runtime record: ship the raw line rather than drop it.
                    tracing::debug!(error = %e, "malformed line shipped raw");
                    Metrics::add(&metrics.malformed_lines, 1);
                    let text = String::from_utf8_lossy(line);
                    self.assembled.push(Line {
                        timestamp_ms: now_ms(),
                        stream: crate::parse::Stream::Stdout,
                        invalid_utf8: matches!(text, std::borrow::Cow::Owned(_)),
                        text: text.into_owned(),
                        continued: false,
                    });
                    self.admit(line_start, now);
                }
            }
        }
        self.read_end = offset;
        self.last_data = now;
        self.spool_lines(spool, metrics)?;
        Ok(self.safe_offset(offset))
    }

    /// Move the assembler's complete lines (which began at `offset`) on: through the
    /// combiner, or straight to the spool queue.
    fn admit(&mut self, offset: u64, now: Instant) {
        self.lines_in += self.assembled.len() as u64;
        match &mut self.combiner {
            Some(combiner) => {
                for line in self.assembled.drain(..) {
                    combiner.push(line, offset, now, &mut self.lines);
                }
            }
            None => self.lines.append(&mut self.assembled),
        }
    }

    /// How far the checkpoint may go, given everything up to `read_end` was processed: not
    /// past an unfinished line or an unfinished trace.
    pub fn safe_offset(&self, read_end: u64) -> u64 {
        let held = [self.assembler.pending_since(), self.combiner.as_ref().and_then(Combiner::pending_since)];
        held.into_iter().flatten().min().unwrap_or(read_end)
    }

    /// An unfinished partial line is held.
    pub fn has_pending(&self) -> bool {
        self.assembler.pending_since().is_some()
    }

    /// When the oldest held stack trace is due to go out as it is.
    pub fn group_deadline(&self) -> Option<Instant> {
        self.combiner.as_ref().and_then(Combiner::next_deadline)
    }

    /// Spool the stack traces whose flush timeout passed.
    pub fn flush_expired(
        &mut self,
        now: Instant,
        spool: &mut Spool,
        metrics: &Metrics,
    ) -> Result<(), SpoolError> {
        if let Some(combiner) = &mut self.combiner {
            combiner.flush_expired(now, &mut self.lines);
        }
        self.spool_lines(spool, metrics)
    }

    /// Spool an unfinished partial line as complete (no continuation came); it may still
    /// join a held stack trace.
    pub fn flush_partial(&mut self, spool: &mut Spool, metrics: &Metrics) -> Result<(), SpoolError> {
        let first = self.assembler.pending_since().unwrap_or(self.read_end);
        self.assembler.flush(&mut self.assembled);
        self.admit(first, crate::clock::now());
        self.spool_lines(spool, metrics)
    }

    /// Bytes held for unfinished partial lines.
    pub fn pending_line_bytes(&self) -> usize {
        self.assembler.pending_bytes()
    }

    /// Spool what unfinished partial lines hold as `continued` pieces (the partial-line
    /// budget is spent); the lines stay open and their rest follows as further pieces.
    /// Returns how many pieces went.
    pub fn release_partials(&mut self, spool: &mut Spool, metrics: &Metrics) -> Result<usize, SpoolError> {
        let first = self.assembler.pending_since().unwrap_or(self.read_end);
        let before = self.assembled.len();
        self.assembler.release_pieces(&mut self.assembled);
        let released = self.assembled.len() - before;
        self.admit(first, crate::clock::now());
        self.spool_lines(spool, metrics)?;
        Ok(released)
    }

    /// The file is gone for good: emit any pending partial line and held trace. Returns
    /// the rotated files that waited for this file's traces (key, end offset).
    pub fn finish(
        &mut self,
        spool: &mut Spool,
        metrics: &Metrics,
    ) -> Result<Vec<(FileKey, u64)>, SpoolError> {
        self.flush_partial(spool, metrics)?;
        if let Some(combiner) = &mut self.combiner {
            combiner.flush(&mut self.lines);
        }
        self.spool_lines(spool, metrics)?;
        Ok(std::mem::take(&mut self.carried))
    }

    /// The next file at this path takes over (kubelet rotated this one, and it is read to
    /// its end): an unfinished trace goes on in the new file rather than being cut in two.
    pub fn hand_over(&mut self, spool: &mut Spool, metrics: &Metrics) -> Result<HandOver, SpoolError> {
        self.flush_partial(spool, metrics)?;
        let held = self.combiner.as_ref().and_then(Combiner::pending_since);
        match (&mut self.combiner, held) {
            (Some(combiner), Some(since)) => Ok(HandOver {
                safe: since,
                carry: Some(Carry {
                    detector: combiner.detector().clone(),
                    groups: combiner.take_open(),
                    waiting: std::mem::take(&mut self.carried),
                }),
                released: Vec::new(),
            }),
            _ => {
                Ok(HandOver { safe: self.read_end, carry: None, released: std::mem::take(&mut self.carried) })
            }
        }
    }

    /// Rotated files that waited for a trace this file adopted, once that trace is spooled
    /// (key, end offset). Conservative: while any trace is held from offset 0 (the adopted
    /// one, or one that began on this file's first line) they keep waiting.
    pub fn take_released(&mut self) -> Vec<(FileKey, u64)> {
        let holding_adopted = self.combiner.as_ref().and_then(Combiner::pending_since) == Some(0);
        if self.carried.is_empty() || holding_adopted {
            Vec::new()
        } else {
            std::mem::take(&mut self.carried)
        }
    }

    /// Export the combiner's counters that changed since the last call.
    fn export_stats(&mut self, metrics: &Metrics) {
        let Some(combiner) = &self.combiner else {
            return;
        };
        let now = *combiner.stats();
        let seen = std::mem::replace(&mut self.stats_seen, now);
        let name = combiner.detector().name();
        if now.groups > seen.groups {
            metrics.multiline_groups.add(name, now.groups - seen.groups);
        }
        if now.lines_merged > seen.lines_merged {
            metrics.multiline_lines.add(name, now.lines_merged - seen.lines_merged);
        }
        let (a, b) = (now.flushes, seen.flushes);
        for (reason, now, seen) in [
            ("timeout", a.timeout, b.timeout),
            ("max_lines", a.max_lines, b.max_lines),
            ("max_bytes", a.max_bytes, b.max_bytes),
            ("continued_piece", a.continued_piece, b.continued_piece),
            ("end_of_trace", a.end_of_trace, b.end_of_trace),
            ("next_group", a.next_group, b.next_group),
            ("end_of_input", a.end_of_input, b.end_of_input),
        ] {
            if now > seen {
                metrics.multiline_flushes.add(reason, now - seen);
            }
        }
    }

    fn spool_lines(&mut self, spool: &mut Spool, metrics: &Metrics) -> Result<(), SpoolError> {
        self.export_stats(metrics);
        let Some(routed) = &self.routed else {
            return Ok(());
        };
        let n = std::mem::take(&mut self.lines_in);
        Metrics::add(&metrics.lines_read, n);
        if let Some(rule) = routed.excluded_by() {
            // Read, counted, skipped: never spooled, never a drop.
            metrics.lines_excluded.add(rule, n + std::mem::take(&mut self.excluded_carried));
            self.lines.clear();
            return Ok(());
        }
        if routed.without_metadata {
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
                EmptyLineDropped.emit(metrics);
            }
            for message in &self.messages {
                spool.append(&routed.dest, line.timestamp_ms, message)?;
            }
            Metrics::add(&metrics.events_spooled, pieces as u64);
        }
        self.release_buffers();
        Ok(())
    }

    /// Give back what one burst grew the per-file queues to: drained vectors keep their
    /// capacity, and 400 files after one burst of short lines each would hold ~125 MiB.
    fn release_buffers(&mut self) {
        for queue in [&mut self.lines, &mut self.assembled] {
            if queue.capacity() > KEPT_QUEUE_CAPACITY {
                queue.shrink_to(KEPT_QUEUE_CAPACITY);
            }
        }
        if self.messages.capacity() > KEPT_QUEUE_CAPACITY {
            self.messages.shrink_to(KEPT_QUEUE_CAPACITY);
        }
    }

    /// Elements the per-file queues hold on to between reads.
    #[cfg(test)]
    pub(crate) fn queue_capacity(&self) -> usize {
        self.lines.capacity() + self.assembled.capacity() + self.messages.capacity()
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
