//! The ledger of what was written and the verdict comparing it with what was delivered.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use super::payload::{Corrupt, HEADER_PREFIX, LineClass, LineKey, Payload, mismatch};
use super::read::Delivered;
use super::read::DeliveredEvent;
use super::trace::TraceKind;
use crate::scenario::MessageFormat;

/// Suffix the shipper appends to `log` of every piece of a line split for size except the last.
pub const CONTINUATION_MARKER: &str = "\u{2026}[continued]";

/// One container of one pod: the unit sequence numbers count in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.pod, self.container)
    }
}

/// Serialised as `"pod/container"` so it can key JSON and YAML maps.
impl serde::Serialize for SourceKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What one line should look like once delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    /// A [`Payload`] line; its text is regenerated when needed.
    Payload(LineClass),
    /// Any other text, stored as is.
    Text(String),
    /// A stack trace ([`TraceKind::text`]), delivered as one event.
    Trace(TraceKind),
    /// A payload written as a JSON object ([`Payload::json_line`]).
    Json(LineClass),
}

/// Everything written during a run: (pod, container, seq) → expected delivered text.
#[derive(Debug, Clone)]
pub struct Ledger {
    run: String,
    sources: HashMap<SourceKey, BTreeMap<u64, Expected>>,
    /// Sources the shipper must not deliver (excluded by a rule): never missing, and any
    /// of their lines delivered is a leak.
    excluded: HashSet<SourceKey>,
}

impl Ledger {
    /// An empty ledger for run `run` (payloads of other runs are spurious).
    pub fn new(run: impl Into<String>) -> Self {
        Ledger { run: run.into(), sources: HashMap::new(), excluded: HashSet::new() }
    }

    /// The run id.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// Record that `Payload::line(run, pod, container, seq, class)` was written.
    pub fn record_payload(&mut self, pod: &str, container: &str, seq: u64, class: LineClass) {
        self.source_mut(pod, container).insert(seq, Expected::Payload(class));
    }

    /// Record a line whose delivered text must be exactly `text` (it must still carry
    /// a payload header for the verdict to attribute it).
    pub fn record_text(&mut self, pod: &str, container: &str, seq: u64, text: impl Into<String>) {
        self.source_mut(pod, container).insert(seq, Expected::Text(text.into()));
    }

    /// Record that trace `seq` ([`TraceKind::text`]) was written, as several lines.
    pub fn record_trace(&mut self, pod: &str, container: &str, seq: u64, kind: TraceKind) {
        self.source_mut(pod, container).insert(seq, Expected::Trace(kind));
    }

    /// Record that [`Payload::json_line`] of `seq` was written.
    pub fn record_json(&mut self, pod: &str, container: &str, seq: u64, class: LineClass) {
        self.source_mut(pod, container).insert(seq, Expected::Json(class));
    }

    /// The shipper must deliver nothing of `pod`/`container` (an exclusion rule matches it).
    pub fn exclude(&mut self, pod: &str, container: &str) {
        self.excluded.insert(SourceKey { pod: pod.to_owned(), container: container.to_owned() });
    }

    /// Whether `pod`/`container` is excluded.
    pub fn is_excluded(&self, pod: &str, container: &str) -> bool {
        self.excluded.contains(&SourceKey { pod: pod.to_owned(), container: container.to_owned() })
    }

    /// The text the shipper must deliver for `key`, if it was written.
    pub fn expected_text(&self, key: &LineKey) -> Option<String> {
        let (run, pod, ctr, seq) = (&self.run, &key.pod, &key.container, key.seq);
        match self.expected(key)? {
            Expected::Text(text) => Some(text.clone()),
            Expected::Payload(class) => {
                Payload::line(run, pod, ctr, seq, *class).ok().map(|raw| Payload::expected_text(&raw))
            }
            Expected::Trace(kind) => kind.text(run, pod, ctr, seq).ok(),
            Expected::Json(class) => Payload::json_line(run, pod, ctr, seq, *class).ok(),
        }
    }

    fn expected(&self, key: &LineKey) -> Option<&Expected> {
        let source = SourceKey { pod: key.pod.clone(), container: key.container.clone() };
        self.sources.get(&source)?.get(&key.seq)
    }

    fn is_trace(&self, key: &LineKey) -> bool {
        matches!(self.expected(key), Some(Expected::Trace(_)))
    }

    /// Number of lines recorded that the shipper must deliver (excluded sources not counted).
    pub fn len(&self) -> usize {
        self.sources.iter().filter(|(k, _)| !self.excluded.contains(k)).map(|(_, lines)| lines.len()).sum()
    }

    /// Number of lines recorded for excluded sources (read and skipped by the shipper).
    pub fn excluded_len(&self) -> usize {
        self.sources.iter().filter(|(k, _)| self.excluded.contains(k)).map(|(_, lines)| lines.len()).sum()
    }

    /// Lines recorded per `(pod, container)` the shipper must deliver.
    pub fn counts(&self) -> BTreeMap<(String, String), usize> {
        self.sources
            .iter()
            .filter(|(k, _)| !self.excluded.contains(k))
            .map(|(k, lines)| ((k.pod.clone(), k.container.clone()), lines.len()))
            .collect()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.sources.values().all(BTreeMap::is_empty)
    }

    fn source_mut(&mut self, pod: &str, container: &str) -> &mut BTreeMap<u64, Expected> {
        self.sources.entry(SourceKey { pod: pod.to_owned(), container: container.to_owned() }).or_default()
    }
}

/// An inclusive run of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SeqRange {
    /// First seq of the run.
    pub first: u64,
    /// Last seq of the run.
    pub last: u64,
}

/// A delivered line that is not what was written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Group it was found in.
    pub group: String,
    /// Stream it was found in.
    pub stream: String,
    /// Index of the (first) event of the line within the stream.
    pub event: usize,
    /// The line it claims to be, when its header could be read.
    pub key: Option<LineKey>,
    /// What is wrong.
    pub reason: String,
}

/// Per source (pod/container) counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceCounts {
    /// Lines written.
    pub expected: u64,
    /// Distinct lines delivered intact.
    pub delivered: u64,
    /// Intact deliveries beyond the first.
    pub duplicates: u64,
    /// Lines never delivered intact.
    pub missing: u64,
    /// First deliveries whose seq is below one delivered before it in the same stream.
    pub out_of_order: u64,
}

/// Per CloudWatch stream counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamCounts {
    /// Events stored.
    pub events: u64,
    /// Lines after reassembling split lines.
    pub lines: u64,
}

/// The audit's result. Clean means no missing, spurious or corrupted line.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// Lines never delivered intact, as ranges of seq per source.
    pub missing: BTreeMap<SourceKey, Vec<SeqRange>>,
    /// Delivered lines that were never written (other run, unknown pod/container/seq).
    pub spurious: Vec<Finding>,
    /// Delivered lines that differ from what was written, or that cannot be read.
    pub corrupted: Vec<Finding>,
    /// Total intact deliveries beyond the first.
    pub duplicates: u64,
    /// Counts per source.
    pub sources: BTreeMap<SourceKey, SourceCounts>,
    /// Counts per group and stream.
    pub streams: BTreeMap<String, BTreeMap<String, StreamCounts>>,
    /// Groups and their streams, as found.
    pub layout: BTreeMap<String, BTreeSet<String>>,
    /// Delivered lines of excluded sources (one finding per event).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leaked: Vec<Finding>,
    /// Traces delivered in pieces (several events) instead of one event: each complete
    /// set of pieces is one finding, and the trace is not counted missing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub split_traces: Vec<Finding>,
}

impl Verdict {
    /// No missing, spurious, corrupted, leaked line nor split trace (duplicates and order
    /// are reported only).
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.spurious.is_empty()
            && self.corrupted.is_empty()
            && self.leaked.is_empty()
            && self.split_traces.is_empty()
    }

    /// Number of missing lines.
    pub fn missing_count(&self) -> u64 {
        self.sources.values().map(|c| c.missing).sum()
    }
}

/// Compare what was delivered with the ledger, messages in the default envelope.
pub fn verdict(ledger: &Ledger, delivered: &Delivered) -> Verdict {
    verdict_for(ledger, delivered, MessageFormat::Envelope)
}

/// Compare what was delivered with the ledger, messages in `format`
/// (`SHIPPER_MESSAGE_FORMAT`): the envelope's `log` is the line's text, or with
/// `envelope_json` the line's JSON object; `raw` messages are the text alone. Which keys an
/// envelope has is the report's message-shape check; here only `log`, `pod_name` and
/// `container_name` matter.
pub fn verdict_for(ledger: &Ledger, delivered: &Delivered, format: MessageFormat) -> Verdict {
    let mut audit = Audit {
        ledger,
        format,
        verdict: Verdict { layout: delivered.layout(), ..Verdict::default() },
        seen: HashMap::new(),
    };
    for (group, streams) in &delivered.groups {
        for (stream, events) in streams {
            audit.stream(group, stream, events);
        }
    }
    audit.finish()
}

struct Audit<'a> {
    ledger: &'a Ledger,
    format: MessageFormat,
    verdict: Verdict,
    /// Seqs delivered intact per source.
    seen: HashMap<SourceKey, HashSet<u64>>,
}

/// What a message's `log` holds.
#[derive(Debug, Clone)]
enum Log {
    /// The line's text.
    Text(String),
    /// The line's JSON object (`envelope_json`).
    Object(serde_json::Map<String, serde_json::Value>),
}

/// A delivered line, reassembled from consecutive events when it was split for size.
struct Line {
    log: Log,
    /// `None` for raw messages (no envelope).
    pod_name: Option<String>,
    container_name: Option<String>,
    first_event: usize,
}

impl Line {
    fn text(&self) -> Option<&str> {
        match &self.log {
            Log::Text(text) => Some(text),
            Log::Object(_) => None,
        }
    }
}

/// One event's message, unpacked.
fn unpack(format: MessageFormat, message: &str) -> Result<(Log, Option<String>, Option<String>), String> {
    if format == MessageFormat::Raw {
        return Ok((Log::Text(message.to_owned()), None, None));
    }
    let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(message)
        .map_err(|error| format!("message is not the shipper's envelope: {error}"))?;
    let mut name = |key: &str| match map.remove(key) {
        Some(serde_json::Value::String(s)) => Ok(s),
        _ => Err(format!("message is not the shipper's envelope: no string {key:?}")),
    };
    let pod = name("pod_name")?;
    let container = name("container_name")?;
    let log = match map.remove("log") {
        Some(serde_json::Value::String(s)) => Log::Text(s),
        Some(serde_json::Value::Object(o)) if format == MessageFormat::EnvelopeJson => Log::Object(o),
        Some(other) => return Err(format!("message `log` is not a string: {other}")),
        None => return Err("message is not the shipper's envelope: no \"log\"".into()),
    };
    Ok((log, Some(pod), Some(container)))
}

/// The identity a delivered `log` claims: the payload header in its text (anywhere a word
/// starts, for traces), or in the `msg` of a JSON line, as text or as an object.
fn identify(log: &Log) -> Result<(String, LineKey), Corrupt> {
    let from_object = |o: &serde_json::Map<String, serde_json::Value>| {
        o.get("msg").and_then(serde_json::Value::as_str).map(Payload::parse_header)
    };
    let found = match log {
        Log::Text(text) => Payload::locate_header(text).or_else(|corrupt| {
            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
                Ok(object) if text.starts_with('{') => from_object(&object).unwrap_or(Err(corrupt)),
                _ => Err(corrupt),
            }
        }),
        Log::Object(object) => from_object(object).unwrap_or_else(|| {
            Err(Corrupt::NoHeader { reason: "the log object has no string `msg`".into() })
        }),
    };
    found.map(|(run, key, _)| (run, key))
}

impl Audit<'_> {
    fn stream(&mut self, group: &str, stream: &str, events: &[DeliveredEvent]) {
        let finding = |event: usize, key: Option<LineKey>, reason: String| Finding {
            group: group.to_owned(),
            stream: stream.to_owned(),
            event,
            key,
            reason,
        };
        let mut counts = StreamCounts { events: events.len() as u64, lines: 0 };
        let mut corrupted = Vec::new();
        let mut lines: Vec<Line> = Vec::new();
        let mut pending: Option<Line> = None;
        for (index, event) in events.iter().enumerate() {
            let (log, pod_name, container_name) = match unpack(self.format, &event.message) {
                Ok(unpacked) => unpacked,
                Err(reason) => {
                    corrupted.push(finding(index, None, reason));
                    continue;
                }
            };
            // A piece that starts a new line while another is incomplete: the earlier
            // line lost its tail (or a resend restarted it).
            let starts_line = match &log {
                Log::Text(text) => text.starts_with(HEADER_PREFIX),
                Log::Object(_) => true,
            };
            if starts_line && let Some(orphan) = pending.take() {
                let reason = "split line cut short: next line started before its last piece";
                let key = orphan.text().and_then(|t| Payload::parse_header(t).ok()).map(|(_, key, _)| key);
                corrupted.push(finding(orphan.first_event, key, reason.into()));
            }
            let Log::Text(text) = log else {
                lines.push(Line { log, pod_name, container_name, first_event: index });
                continue;
            };
            let piece = text.strip_suffix(CONTINUATION_MARKER);
            let part = piece.unwrap_or(&text);
            match pending.as_mut() {
                Some(Line { log: Log::Text(log), .. }) => log.push_str(part),
                _ => {
                    pending = Some(Line {
                        log: Log::Text(part.to_owned()),
                        pod_name,
                        container_name,
                        first_event: index,
                    })
                }
            }
            if piece.is_none()
                && let Some(line) = pending.take()
            {
                lines.push(line);
            }
        }
        if let Some(orphan) = pending {
            let key = orphan.text().and_then(|t| Payload::parse_header(t).ok()).map(|(_, key, _)| key);
            let reason = "split line never completed: stream ends after a continued piece";
            corrupted.push(finding(orphan.first_event, key, reason.into()));
        }
        counts.lines = lines.len() as u64;

        let results: Vec<Result<LineKey, Problem>> = lines.iter().map(|line| self.check(line)).collect();
        // Traces delivered in pieces: the pieces are consumed and reported once, as a split.
        let mut consumed = vec![false; lines.len()];
        let mut splits: BTreeMap<usize, (LineKey, usize, usize)> = BTreeMap::new();
        for (i, result) in results.iter().enumerate() {
            if let Err(Problem::Corrupted(Some(key), _)) = result
                && self.ledger.is_trace(key)
                && let Some((from, to)) = self.split_trace(key, i, &lines, &results, &consumed)
            {
                consumed[from..=to].iter_mut().for_each(|c| *c = true);
                splits.insert(i, (key.clone(), from, to));
            }
        }
        let mut max_seq: HashMap<SourceKey, u64> = HashMap::new();
        let mut leaked = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            let line = &lines[i];
            if let Some((key, from, to)) = splits.remove(&i) {
                let total = self.ledger.expected_text(&key).map_or(0, |t| t.split('\n').count());
                let reason = format!(
                    "trace of {total} lines delivered as {} events (events {}..={}), not one",
                    lines[to].first_event - lines[from].first_event + 1,
                    lines[from].first_event,
                    lines[to].first_event,
                );
                self.verdict.split_traces.push(finding(lines[from].first_event, Some(key.clone()), reason));
                self.count(key, &mut max_seq);
                continue;
            }
            if consumed[i] {
                continue;
            }
            match result {
                Ok(key) if self.ledger.is_excluded(&key.pod, &key.container) => {
                    let reason = "line of an excluded container delivered".to_owned();
                    leaked.push(finding(line.first_event, Some(key), reason));
                }
                Ok(key) => self.count(key, &mut max_seq),
                Err(Problem::Spurious(key, reason)) => {
                    self.verdict.spurious.push(finding(line.first_event, key, reason))
                }
                Err(Problem::Corrupted(key, reason)) => {
                    corrupted.push(finding(line.first_event, key, reason))
                }
            }
        }
        // In event order, whichever pass found them.
        corrupted.sort_by_key(|f| f.event);
        self.verdict.corrupted.extend(corrupted);
        self.verdict.leaked.extend(leaked);
        self.verdict.streams.entry(group.to_owned()).or_default().insert(stream.to_owned(), counts);
    }

    /// Whether line `i`, a piece of trace `key` holding its header, and its neighbours
    /// (header-less, unattributable lines) make up the whole trace, line-aligned: the range
    /// of lines `(from, to)` they span, when it is more than one.
    fn split_trace(
        &self,
        key: &LineKey,
        i: usize,
        lines: &[Line],
        results: &[Result<LineKey, Problem>],
        consumed: &[bool],
    ) -> Option<(usize, usize)> {
        let expected = self.ledger.expected_text(key)?;
        let segments: Vec<&str> = expected.split('\n').collect();
        let joined = |range: std::ops::Range<usize>| segments[range].join("\n");
        let piece = |j: usize| -> Option<&str> {
            let loose = matches!(results.get(j)?, Err(Problem::Corrupted(None, _))) && !consumed[j];
            loose.then(|| lines[j].text()).flatten()
        };
        let own = lines[i].text()?;
        let k = own.split('\n').count();
        let a = (0..=segments.len().checked_sub(k)?).find(|&a| joined(a..a + k) == own)?;
        // Pieces before it, nearest first, cover the trace's start.
        let (mut need, mut from) = (a, i);
        while need > 0 {
            from = from.checked_sub(1)?;
            let text = piece(from)?;
            let n = text.split('\n').count();
            if n > need || joined(need - n..need) != text {
                return None;
            }
            need -= n;
        }
        // Pieces after it cover the rest.
        let (mut at, mut to) = (a + k, i);
        while at < segments.len() {
            to += 1;
            let text = piece(to)?;
            let n = text.split('\n').count();
            if at + n > segments.len() || joined(at..at + n) != text {
                return None;
            }
            at += n;
        }
        (to > from).then_some((from, to))
    }

    /// Check one reassembled line against the ledger.
    fn check(&self, line: &Line) -> Result<LineKey, Problem> {
        let (run, key) =
            identify(&line.log).map_err(|corrupt| Problem::Corrupted(None, corrupt.to_string()))?;
        if run != self.ledger.run() {
            return Err(Problem::Spurious(Some(key), format!("line of another run {run:?}")));
        }
        let Some(expected) = self.ledger.expected_text(&key) else {
            return Err(Problem::Spurious(Some(key), "never written".into()));
        };
        match &line.log {
            Log::Text(text) if *text != expected => {
                let reason = mismatch(key.clone(), &expected, text).to_string();
                return Err(Problem::Corrupted(Some(key), reason));
            }
            Log::Object(object) => {
                let written: Option<serde_json::Value> = serde_json::from_str(&expected).ok();
                if written.as_ref().and_then(serde_json::Value::as_object) != Some(object) {
                    let reason = format!(
                        "log object {} is not the JSON line written ({expected})",
                        truncate(&serde_json::Value::Object(object.clone()).to_string(), 200)
                    );
                    return Err(Problem::Corrupted(Some(key), reason));
                }
            }
            Log::Text(_) => {}
        }
        if let (Some(pod), Some(container)) = (&line.pod_name, &line.container_name)
            && (*pod != key.pod || *container != key.container)
        {
            let reason = format!("envelope names {pod}/{container}");
            return Err(Problem::Corrupted(Some(key), reason));
        }
        Ok(key)
    }

    /// Count an intact delivery of `key`.
    fn count(&mut self, key: LineKey, max_seq: &mut HashMap<SourceKey, u64>) {
        let source = SourceKey { pod: key.pod, container: key.container };
        let counts = self.verdict.sources.entry(source.clone()).or_default();
        if !self.seen.entry(source.clone()).or_default().insert(key.seq) {
            counts.duplicates += 1;
            self.verdict.duplicates += 1;
            return;
        }
        let highest = max_seq.entry(source).or_insert(key.seq);
        if key.seq < *highest {
            counts.out_of_order += 1;
        }
        *highest = (*highest).max(key.seq);
    }

    fn finish(mut self) -> Verdict {
        for (source, lines) in &self.ledger.sources {
            if self.ledger.excluded.contains(source) {
                // Nothing expected; what arrived anyway is in `leaked`.
                continue;
            }
            let seen = self.seen.get(source);
            let mut ranges: Vec<SeqRange> = Vec::new();
            for &seq in lines.keys() {
                if seen.is_some_and(|seen| seen.contains(&seq)) {
                    continue;
                }
                match ranges.last_mut() {
                    Some(range) if range.last + 1 == seq => range.last = seq,
                    _ => ranges.push(SeqRange { first: seq, last: seq }),
                }
            }
            let counts = self.verdict.sources.entry(source.clone()).or_default();
            counts.expected = lines.len() as u64;
            counts.delivered = seen.map_or(0, |seen| seen.len() as u64);
            counts.missing = counts.expected - counts.delivered;
            if !ranges.is_empty() {
                self.verdict.missing.insert(source.clone(), ranges);
            }
        }
        self.verdict
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

enum Problem {
    Spurious(Option<LineKey>, String),
    Corrupted(Option<LineKey>, String),
}
