//! The benchmark workloads and the writer that produces their files.
//!
//! Every workload writes real CRI files on a [`SimNode`] **while the shipper runs** (the
//! shipper is already tailing the empty files when the first line is written), from one
//! writer thread, in blocks of whole records (one `write` per block, so the writer is not
//! the bottleneck; kubelet's own writes are per line). Files are not rotated.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::simnode::{ContainerLog, LogFormat, SimNodeError, Stream, push_line, push_rfc3339_nano};

use super::latency::WriteStamp;

/// A workload's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// Name used by `--workload` and in the report.
    pub name: &'static str,
    /// What it models.
    pub about: &'static str,
    /// Container log files (one pod with one container each).
    pub files: usize,
    /// Lines per file.
    pub lines_per_file: u64,
    /// Bytes of each line's message (the container's text, before CRI framing).
    pub message_bytes: usize,
    /// CRI records per line: 1 = one `F`; n > 1 = n−1 `P` records and one `F`.
    pub records_per_line: usize,
    /// Total lines per second over all files; `None` = as fast as possible.
    pub rate: Option<f64>,
    /// The gateway blackholes everything for this long from the first write; the writer
    /// writes during the outage only, and catch-up is measured from its end.
    pub outage: Option<Duration>,
    /// CloudWatch events per line: a line whose JSON message exceeds the 1 MiB − 26 byte
    /// event limit is sent as several events (DESIGN: split, never truncated).
    pub events_per_line: u64,
    /// What each line says.
    pub content: Content,
    /// Shipper settings of the run (the features whose cost the workload measures).
    pub env: &'static [(&'static str, &'static str)],
}

/// What the lines of a workload say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// `seq=N` and filler text.
    Text,
    /// A JSON object per line: `{"level":"info","seq":N,"msg":"<filler>"}`.
    Json,
    /// Java stack traces of `lines` lines each: an exception line, then `\tat …` frames.
    JavaTraces {
        /// Physical lines per trace.
        lines: u64,
    },
}

impl WorkloadSpec {
    /// Every line of the workload.
    pub fn total_lines(&self) -> u64 {
        self.files as u64 * self.lines_per_file
    }

    /// Lines that make one event: a trace's lines when the run groups traces, else 1.
    pub fn lines_per_event(&self) -> u64 {
        match self.content {
            Content::JavaTraces { lines }
                if self.env.iter().any(|(k, v)| *k == "SHIPPER_MULTILINE" && *v != "none") =>
            {
                lines
            }
            _ => 1,
        }
    }

    /// Events the gateway must accept for the workload to be complete.
    pub fn expected_events(&self) -> u64 {
        self.total_lines() * self.events_per_line / self.lines_per_event()
    }

    /// The same workload with about `total` lines, spread over its files (at least one each);
    /// a rate-limited workload keeps its rate (so it runs longer or shorter).
    pub fn with_total_lines(mut self, total: u64) -> Self {
        self.lines_per_file = (total / self.files as u64).max(1);
        self
    }
}

/// The peers' shape (4 files × 250k lines of ~240 B, as fast as possible) with other content
/// or settings, to compare a feature's cost with the same run without it.
fn peer_shaped(
    name: &'static str,
    about: &'static str,
    content: Content,
    env: &'static [(&'static str, &'static str)],
    quick: bool,
) -> WorkloadSpec {
    WorkloadSpec {
        name,
        about,
        files: 4,
        lines_per_file: if quick { 5_000 } else { 250_000 },
        message_bytes: 200,
        records_per_line: 1,
        rate: None,
        outage: None,
        events_per_line: 1,
        content,
        env,
    }
}

/// The default workloads; `quick` scales them down for a smoke run.
pub fn all(quick: bool) -> Vec<WorkloadSpec> {
    let pick = |full: u64, small: u64| if quick { small } else { full };
    vec![
        WorkloadSpec {
            name: "peer-4x250k",
            about: "4 files x 250k lines of ~240 B, written as fast as possible (the peers' shape)",
            files: 4,
            lines_per_file: pick(250_000, 5_000),
            message_bytes: 200,
            records_per_line: 1,
            rate: None,
            outage: None,
            events_per_line: 1,
            content: Content::Text,
            env: &[],
        },
        WorkloadSpec {
            name: "small-files",
            about: "1,000 pods writing a few lines each (many files and streams)",
            files: if quick { 50 } else { 1_000 },
            lines_per_file: pick(100, 20),
            message_bytes: 200,
            records_per_line: 1,
            rate: None,
            outage: None,
            events_per_line: 1,
            content: Content::Text,
            env: &[],
        },
        WorkloadSpec {
            name: "outage",
            about: "gateway blackholed while 5k lines/s are written; catch-up measured after",
            files: 2,
            lines_per_file: pick(50_000, 1_000),
            message_bytes: 200,
            records_per_line: 1,
            rate: Some(if quick { 1_000.0 } else { 5_000.0 }),
            outage: Some(Duration::from_secs(if quick { 2 } else { 20 })),
            events_per_line: 1,
            content: Content::Text,
            env: &[],
        },
        WorkloadSpec {
            name: "backlog-10m",
            about: "a 10-minute outage's backlog at 5k lines/s (3M lines, ~1 GiB spooled) written while blackholed; RSS must stay flat",
            files: 4,
            lines_per_file: pick(750_000, 5_000),
            message_bytes: 200,
            records_per_line: 1,
            rate: None,
            outage: Some(Duration::from_secs(if quick { 2 } else { 30 })),
            events_per_line: 1,
            content: Content::Text,
            env: &[],
        },
        WorkloadSpec {
            name: "partials",
            about: "every ~240 B line split into 4 P records and one F record",
            files: 2,
            lines_per_file: pick(50_000, 2_000),
            message_bytes: 200,
            records_per_line: 5,
            rate: None,
            outage: None,
            events_per_line: 1,
            content: Content::Text,
            env: &[],
        },
        WorkloadSpec {
            name: "big-lines",
            about: "1 MiB lines (64 P records of 16 KiB each), two events per line",
            files: 1,
            lines_per_file: pick(100, 5),
            message_bytes: 1 << 20,
            records_per_line: 1,
            rate: None,
            outage: None,
            events_per_line: 2,
            content: Content::Text,
            env: &[],
        },
        WorkloadSpec {
            name: "steady-10k",
            about: "10k lines/s over 10 files for 20 s: memory at a busy node's steady rate",
            files: 10,
            lines_per_file: pick(20_000, 1_000),
            message_bytes: 200,
            records_per_line: 1,
            rate: Some(if quick { 5_000.0 } else { 10_000.0 }),
            outage: None,
            events_per_line: 1,
            content: Content::Text,
            env: &[],
        },
        WorkloadSpec {
            name: "steady-1k",
            about: "1k lines/s for 20 s: latency at a normal rate",
            files: 1,
            lines_per_file: pick(20_000, 2_000),
            message_bytes: 200,
            records_per_line: 1,
            rate: Some(1_000.0),
            outage: None,
            events_per_line: 1,
            content: Content::Text,
            env: &[],
        },
        // The cost of the message formats and of multiline, against the same lines without
        // them: the peers' shape (4 files, ~240 B lines, as fast as possible).
        peer_shaped(
            "json-envelope",
            "peer shape, every line a JSON object, default envelope (log escaped as a string)",
            Content::Json,
            &[],
            quick,
        ),
        peer_shaped(
            "json-envelope-json",
            "the same JSON lines with message_format = envelope_json (log embedded as the object)",
            Content::Json,
            &[("SHIPPER_MESSAGE_FORMAT", "envelope_json")],
            quick,
        ),
        peer_shaped(
            "traces-plain",
            "peer shape, Java stack traces of 10 lines, multiline off (one event per line)",
            Content::JavaTraces { lines: 10 },
            &[],
            quick,
        ),
        peer_shaped(
            "traces-java",
            "the same traces with multiline = java (one event per trace)",
            Content::JavaTraces { lines: 10 },
            &[("SHIPPER_MULTILINE", "java")],
            quick,
        ),
    ]
}

/// One file of a workload and the stream its lines go to.
#[derive(Debug)]
pub struct TargetFile {
    /// The container log.
    pub log: ContainerLog,
    /// `{pod}_{container}`: the stream name of the contract's default template, used to
    /// match the gateway's journal.
    pub stream: String,
}

/// What the writer did.
#[derive(Debug, Default)]
pub struct Written {
    /// Lines written.
    pub lines: u64,
    /// Bytes written to the files (CRI framing included).
    pub bytes: u64,
    /// First write, µs since the Unix epoch.
    pub first_unix_us: u64,
    /// Last write, µs since the Unix epoch.
    pub last_unix_us: u64,
    /// Write time of the last line of each block.
    pub stamps: Vec<WriteStamp>,
}

/// Lines per `write` when writing as fast as possible (~64 KiB of ~240 B lines).
const FAST_BLOCK_LINES: u64 = 256;
/// Blocks per second when rate-limited: latency samples every 10 ms.
const PACED_BLOCKS_PER_SECOND: f64 = 100.0;

/// Write the whole workload into `files`, round-robin, block by block; `progress` counts the
/// lines written so far (read by the orchestrator while this runs on its own thread).
pub fn write_all(
    spec: &WorkloadSpec,
    files: &mut [TargetFile],
    progress: &AtomicU64,
) -> Result<Written, SimNodeError> {
    let message = filler(spec.message_bytes);
    let block_lines = match spec.rate {
        // Per file and block, so that all files together keep the rate.
        Some(rate) => ((rate / PACED_BLOCKS_PER_SECOND / files.len() as f64).ceil() as u64).max(1),
        None => FAST_BLOCK_LINES,
    };
    let mut buffer =
        Vec::with_capacity(block_lines as usize * (spec.message_bytes + 64) * spec.records_per_line);
    let mut written = Written::default();
    let mut next_line = vec![0u64; files.len()];
    let started = Instant::now();
    while written.lines < spec.total_lines() {
        if let Some(rate) = spec.rate {
            let due = Duration::from_secs_f64(written.lines as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        for (file, next) in files.iter_mut().zip(next_line.iter_mut()) {
            let end = (*next + block_lines).min(spec.lines_per_file);
            if *next == end {
                continue;
            }
            buffer.clear();
            let now = SystemTime::now();
            for line in *next..end {
                match spec.content {
                    Content::Text => push_records(&mut buffer, spec.records_per_line, now, line, &message),
                    Content::Json => push_json(&mut buffer, now, line, &message),
                    Content::JavaTraces { lines } => push_trace_line(&mut buffer, now, line, lines, &message),
                }
            }
            file.log.write_raw(&buffer)?;
            let at = unix_us(SystemTime::now());
            if written.lines == 0 {
                written.first_unix_us = at;
            }
            written.last_unix_us = at;
            written.lines += end - *next;
            progress.store(written.lines, Ordering::Relaxed);
            written.bytes += buffer.len() as u64;
            written.stamps.push(WriteStamp {
                stream: file.stream.clone(),
                line: end - 1,
                written_unix_us: at,
            });
            *next = end;
        }
    }
    Ok(written)
}

/// One line as `records` CRI records; the line number leads the message so lines differ.
fn push_records(out: &mut Vec<u8>, records: usize, time: SystemTime, line: u64, filler: &[u8]) {
    let mut message = format!("seq={line:010} ").into_bytes();
    message.extend_from_slice(&filler[..filler.len().saturating_sub(message.len())]);
    if records <= 1 {
        // The runtime's own framing: lines over 16 KiB become P records.
        push_line(out, LogFormat::Cri, Stream::Stdout, time, &message);
        return;
    }
    let piece = message.len().div_ceil(records);
    let mut pieces = message.chunks(piece).peekable();
    while let Some(part) = pieces.next() {
        push_rfc3339_nano(out, time);
        out.extend_from_slice(if pieces.peek().is_some() { b" stdout P " } else { b" stdout F " });
        out.extend_from_slice(part);
        out.push(b'\n');
    }
}

/// One JSON object line of about the filler's length.
fn push_json(out: &mut Vec<u8>, time: SystemTime, line: u64, filler: &[u8]) {
    let mut message = format!("{{\"level\":\"info\",\"seq\":{line},\"msg\":\"").into_bytes();
    message.extend_from_slice(&filler[..filler.len().saturating_sub(message.len() + 2)]);
    message.extend_from_slice(b"\"}");
    push_line(out, LogFormat::Cri, Stream::Stdout, time, &message);
}

/// Line `line` of a run of Java traces of `per_trace` lines: the exception line, then frames.
fn push_trace_line(out: &mut Vec<u8>, time: SystemTime, line: u64, per_trace: u64, filler: &[u8]) {
    let mut message = if line.is_multiple_of(per_trace.max(1)) {
        format!("java.lang.IllegalStateException: seq={line:010} ").into_bytes()
    } else {
        format!("\tat com.example.service.Handler.step{}(Handler.java:{line}) ", line % per_trace)
            .into_bytes()
    };
    message.extend_from_slice(&filler[..filler.len().saturating_sub(message.len())]);
    push_line(out, LogFormat::Cri, Stream::Stdout, time, &message);
}

/// Printable, JSON-neutral text of `len` bytes.
fn filler(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// µs since the Unix epoch.
pub fn unix_us(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_cri(record: &str) -> (&str, &str) {
        let mut fields = record.splitn(4, ' ');
        let _time = fields.next();
        let _stream = fields.next();
        (fields.next().unwrap_or(""), fields.next().unwrap_or(""))
    }

    #[test]
    fn a_partial_heavy_line_is_p_records_then_one_f_that_rejoin_to_the_message() {
        let mut out = Vec::new();
        push_records(&mut out, 5, SystemTime::now(), 7, &filler(200));
        let text = String::from_utf8(out).expect("ascii");
        let records: Vec<_> = text.lines().map(parse_cri).collect();
        assert_eq!(records.len(), 5);
        assert!(records[..4].iter().all(|(tag, _)| *tag == "P"));
        assert_eq!(records[4].0, "F");
        let joined: String = records.iter().map(|(_, part)| *part).collect();
        assert_eq!(joined.len(), 200);
        assert!(joined.starts_with("seq=0000000007 "));
    }

    #[test]
    fn a_line_over_16_kib_is_split_like_the_runtime() {
        let mut out = Vec::new();
        push_records(&mut out, 1, SystemTime::now(), 0, &filler(1 << 20));
        let text = String::from_utf8(out).expect("ascii");
        let tags: Vec<_> = text.lines().map(|r| parse_cri(r).0.to_owned()).collect();
        assert_eq!(tags.len(), 64, "1 MiB = 64 records of 16 KiB");
        assert_eq!(tags.iter().filter(|t| *t == "F").count(), 1);
        assert_eq!(tags.last().map(String::as_str), Some("F"));
    }

    #[test]
    fn scaling_keeps_every_file_and_the_total() {
        let spec = all(false).into_iter().find(|w| w.name == "small-files").expect("exists");
        let scaled = spec.clone().with_total_lines(5_000);
        assert_eq!(scaled.files, spec.files);
        assert_eq!(scaled.total_lines(), 5_000);
        assert_eq!(spec.with_total_lines(10).lines_per_file, 1, "never below one line per file");
    }

    #[test]
    fn traces_count_one_event_per_trace_only_with_multiline_on() {
        let find = |name: &str| all(true).into_iter().find(|w| w.name == name).expect("exists");
        assert_eq!(find("traces-plain").expected_events(), 20_000);
        assert_eq!(find("traces-java").expected_events(), 2_000);
        let mut out = Vec::new();
        for line in 0..3 {
            push_trace_line(&mut out, SystemTime::now(), line, 10, &filler(200));
        }
        let text = String::from_utf8(out).expect("ascii");
        let messages: Vec<_> = text.lines().map(|r| parse_cri(r).1).collect();
        assert!(messages[0].starts_with("java.lang.IllegalStateException: seq=0000000000"));
        assert!(messages[1].starts_with("\tat com.example"));
        let mut json = Vec::new();
        push_json(&mut json, SystemTime::now(), 7, &filler(200));
        let record = String::from_utf8(json).expect("ascii");
        let object: serde_json::Value =
            serde_json::from_str(parse_cri(record.trim_end()).1).expect("a JSON object");
        assert_eq!(object["seq"], 7);
    }

    #[test]
    fn workload_names_are_unique() {
        let mut names: Vec<_> = all(false).iter().map(|w| w.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all(true).len());
    }
}
