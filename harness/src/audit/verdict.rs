//! The ledger of what was written and the verdict comparing it with what was delivered.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use super::payload::{HEADER_PREFIX, LineClass, LineKey, Payload, mismatch};
use super::read::Delivered;

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
}

/// Everything written during a run: (pod, container, seq) → expected delivered text.
#[derive(Debug, Clone)]
pub struct Ledger {
    run: String,
    sources: HashMap<SourceKey, BTreeMap<u64, Expected>>,
}

impl Ledger {
    /// An empty ledger for run `run` (payloads of other runs are spurious).
    pub fn new(run: impl Into<String>) -> Self {
        Ledger { run: run.into(), sources: HashMap::new() }
    }

    /// The run id.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// Record that `Payload::line(run, pod, container, seq, class)` was written.
    pub fn record_payload(&mut self, pod: &str, container: &str, seq: u64, class: LineClass) {
        self.source_mut(pod, container).insert(seq, Expected::Payload(class));
    }

    /// Record a line whose delivered text must be exactly `text` (it must still start with
    /// a payload header for the verdict to attribute it).
    pub fn record_text(&mut self, pod: &str, container: &str, seq: u64, text: impl Into<String>) {
        self.source_mut(pod, container).insert(seq, Expected::Text(text.into()));
    }

    /// The text the shipper must deliver for `key`, if it was written.
    pub fn expected_text(&self, key: &LineKey) -> Option<String> {
        let source = SourceKey { pod: key.pod.clone(), container: key.container.clone() };
        match self.sources.get(&source)?.get(&key.seq)? {
            Expected::Text(text) => Some(text.clone()),
            Expected::Payload(class) => Payload::line(&self.run, &key.pod, &key.container, key.seq, *class)
                .ok()
                .map(|raw| Payload::expected_text(&raw)),
        }
    }

    /// Number of lines recorded.
    pub fn len(&self) -> usize {
        self.sources.values().map(BTreeMap::len).sum()
    }

    /// Lines recorded per `(pod, container)`.
    pub fn counts(&self) -> BTreeMap<(String, String), usize> {
        self.sources.iter().map(|(k, lines)| ((k.pod.clone(), k.container.clone()), lines.len())).collect()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
}

impl Verdict {
    /// No missing, spurious or corrupted line (duplicates and order are reported only).
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.spurious.is_empty() && self.corrupted.is_empty()
    }

    /// Number of missing lines.
    pub fn missing_count(&self) -> u64 {
        self.sources.values().map(|c| c.missing).sum()
    }
}

/// The shipper's message envelope (DESIGN §3 contract): exactly these keys.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    log: String,
    #[allow(dead_code)]
    namespace: String,
    pod_name: String,
    container_name: String,
    #[allow(dead_code)]
    container_image: String,
    #[allow(dead_code)]
    host: String,
}

/// Compare what was delivered with the ledger.
pub fn verdict(ledger: &Ledger, delivered: &Delivered) -> Verdict {
    let mut audit = Audit {
        ledger,
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
    verdict: Verdict,
    /// Seqs delivered intact per source.
    seen: HashMap<SourceKey, HashSet<u64>>,
}

/// A line being reassembled from consecutive events.
struct Pending {
    log: String,
    pod_name: String,
    container_name: String,
    first_event: usize,
}

impl Audit<'_> {
    fn stream(&mut self, group: &str, stream: &str, events: &[super::read::DeliveredEvent]) {
        let finding = |event: usize, key: Option<LineKey>, reason: String| Finding {
            group: group.to_owned(),
            stream: stream.to_owned(),
            event,
            key,
            reason,
        };
        let mut counts = StreamCounts { events: events.len() as u64, lines: 0 };
        let mut max_seq: HashMap<SourceKey, u64> = HashMap::new();
        let mut pending: Option<Pending> = None;
        for (index, event) in events.iter().enumerate() {
            let envelope: Envelope = match serde_json::from_str(&event.message) {
                Ok(envelope) => envelope,
                Err(error) => {
                    let reason = format!("message is not the shipper's envelope: {error}");
                    self.verdict.corrupted.push(finding(index, None, reason));
                    continue;
                }
            };
            // A piece that starts a new payload while another is incomplete: the earlier
            // line lost its tail (or a resend restarted it).
            if envelope.log.starts_with(HEADER_PREFIX)
                && let Some(orphan) = pending.take()
            {
                let reason = "split line cut short: next line started before its last piece";
                let key = Payload::parse_header(&orphan.log).ok().map(|(_, key, _)| key);
                self.verdict.corrupted.push(finding(orphan.first_event, key, reason.into()));
            }
            let piece = envelope.log.strip_suffix(CONTINUATION_MARKER);
            let text = piece.unwrap_or(&envelope.log);
            match pending.as_mut() {
                Some(line) => line.log.push_str(text),
                None => {
                    pending = Some(Pending {
                        log: text.to_owned(),
                        pod_name: envelope.pod_name,
                        container_name: envelope.container_name,
                        first_event: index,
                    })
                }
            }
            if piece.is_some() {
                continue;
            }
            if let Some(line) = pending.take() {
                counts.lines += 1;
                if let Err(problem) = self.line(&line, &mut max_seq) {
                    match problem {
                        Problem::Spurious(key, reason) => {
                            self.verdict.spurious.push(finding(line.first_event, key, reason))
                        }
                        Problem::Corrupted(key, reason) => {
                            self.verdict.corrupted.push(finding(line.first_event, key, reason))
                        }
                    }
                }
            }
        }
        if let Some(orphan) = pending {
            let key = Payload::parse_header(&orphan.log).ok().map(|(_, key, _)| key);
            let reason = "split line never completed: stream ends after a continued piece";
            self.verdict.corrupted.push(finding(orphan.first_event, key, reason.into()));
        }
        self.verdict.streams.entry(group.to_owned()).or_default().insert(stream.to_owned(), counts);
    }

    /// Check one reassembled line and count it.
    fn line(&mut self, line: &Pending, max_seq: &mut HashMap<SourceKey, u64>) -> Result<(), Problem> {
        let (run, key, _) = Payload::parse_header(&line.log)
            .map_err(|corrupt| Problem::Corrupted(None, corrupt.to_string()))?;
        if run != self.ledger.run() {
            return Err(Problem::Spurious(Some(key), format!("line of another run {run:?}")));
        }
        let Some(expected) = self.ledger.expected_text(&key) else {
            return Err(Problem::Spurious(Some(key), "never written".into()));
        };
        if expected != line.log {
            let reason = mismatch(key.clone(), &expected, &line.log).to_string();
            return Err(Problem::Corrupted(Some(key), reason));
        }
        if line.pod_name != key.pod || line.container_name != key.container {
            let reason = format!("envelope names {}/{}", line.pod_name, line.container_name);
            return Err(Problem::Corrupted(Some(key), reason));
        }
        let source = SourceKey { pod: key.pod, container: key.container };
        let counts = self.verdict.sources.entry(source.clone()).or_default();
        if !self.seen.entry(source.clone()).or_default().insert(key.seq) {
            counts.duplicates += 1;
            self.verdict.duplicates += 1;
            return Ok(());
        }
        let highest = max_seq.entry(source).or_insert(key.seq);
        if key.seq < *highest {
            counts.out_of_order += 1;
        }
        *highest = (*highest).max(key.seq);
        Ok(())
    }

    fn finish(mut self) -> Verdict {
        for (source, lines) in &self.ledger.sources {
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

enum Problem {
    Spurious(Option<LineKey>, String),
    Corrupted(Option<LineKey>, String),
}
