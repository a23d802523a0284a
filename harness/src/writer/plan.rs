//! The line plan of one scenario container: which line (payload, class, stream) has which
//! sequence number, and when it is due. The local tier's SimNode writes from it, the kind
//! tier's writer pods print from it, and both record the ledger from it.

use std::time::Duration;

use crate::audit::{Charset, InvalidField, Ledger, LineClass, Payload, SizeClass, TraceKind};
use crate::scenario::ContainerSpec;
use crate::simnode::Stream;

/// The scenario's names for line classes (`sizes = [...]`).
pub fn line_class(name: &str) -> Result<LineClass, String> {
    let ascii = LineClass::ascii;
    Ok(match name {
        "small" => ascii(SizeClass::Minimal),
        "100B" => ascii(SizeClass::B100),
        "16KiB-1" => ascii(SizeClass::K16Minus1),
        "16KiB" => ascii(SizeClass::K16),
        "16KiB+1" => ascii(SizeClass::K16Plus1),
        "256KiB" => ascii(SizeClass::K256),
        "1MiB+" => ascii(SizeClass::OverMiB),
        "unicode" => LineClass { size: SizeClass::B100, charset: Charset::Unicode },
        "invalid-utf8" => LineClass { size: SizeClass::B100, charset: Charset::InvalidUtf8 },
        other => {
            return Err(format!(
                "unknown size class {other:?}; use small, 100B, 16KiB-1, 16KiB, 16KiB+1, 256KiB, 1MiB+, unicode or invalid-utf8"
            ));
        }
    })
}

/// Which stream a container's lines go to (`stream = ...` in a scenario).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamChoice {
    /// Every line on stdout.
    Stdout,
    /// Every line on stderr.
    Stderr,
    /// Even sequence numbers on stdout, odd ones on stderr.
    Alternate,
}

impl StreamChoice {
    /// `stdout`, `stderr` or `both`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "stdout" => Ok(StreamChoice::Stdout),
            "stderr" => Ok(StreamChoice::Stderr),
            "both" => Ok(StreamChoice::Alternate),
            other => Err(format!("stream {other:?}: use \"stdout\", \"stderr\" or \"both\"")),
        }
    }

    /// The scenario's name for it.
    pub fn name(self) -> &'static str {
        match self {
            StreamChoice::Stdout => "stdout",
            StreamChoice::Stderr => "stderr",
            StreamChoice::Alternate => "both",
        }
    }

    /// The stream of line `seq`.
    pub fn of(self, seq: u64) -> Stream {
        match self {
            StreamChoice::Stderr => Stream::Stderr,
            StreamChoice::Alternate if seq % 2 == 1 => Stream::Stderr,
            _ => Stream::Stdout,
        }
    }
}

/// A container whose lines cannot be planned as its scenario says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("container {container} of pod {pod}: {reason}")]
pub struct PlanError {
    /// Pod.
    pub pod: String,
    /// Container.
    pub container: String,
    /// Why.
    pub reason: String,
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLine {
    /// Its sequence number.
    pub seq: u64,
    /// Its class.
    pub class: LineClass,
    /// Where the container writes it.
    pub stream: Stream,
    /// The raw bytes, without the final newline. A trace holds several physical lines
    /// separated by `\n` (see [`PlannedLine::physical_lines`]).
    pub bytes: Vec<u8>,
}

impl PlannedLine {
    /// The physical lines the container prints, each without its newline: one, or a trace's.
    pub fn physical_lines(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.split(|b| *b == b'\n')
    }
}

/// Every line one container writes: `lines` payloads numbered from `first_seq`, classes
/// cycled by sequence number, `rate` lines per second from the container's start.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlan {
    /// Run id in every payload (lines of other runs are spurious).
    pub run: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Line classes, cycled by sequence number.
    pub classes: Vec<LineClass>,
    /// Stream of each line.
    pub streams: StreamChoice,
    /// Sequence number of the first line (a rescheduled pod continues its predecessor's).
    pub first_seq: u64,
    /// Lines to write.
    pub lines: u64,
    /// Lines per second.
    pub rate: f64,
    /// Each sequence number is a stack trace of this kind (classes then do not apply).
    pub traces: Option<TraceKind>,
    /// Each line is [`Payload::json_line`] of its payload.
    pub json: bool,
}

impl LinePlan {
    /// The plan of `spec`, a container of pod `pod`, in run `run`.
    pub fn new(run: &str, pod: &str, spec: &ContainerSpec) -> Result<LinePlan, PlanError> {
        let failed = |reason: String| PlanError { pod: pod.to_owned(), container: spec.name.clone(), reason };
        let classes =
            spec.sizes.iter().map(|s| line_class(s)).collect::<Result<Vec<_>, _>>().map_err(failed)?;
        let plan = LinePlan {
            run: run.to_owned(),
            pod: pod.to_owned(),
            container: spec.name.clone(),
            classes,
            streams: StreamChoice::parse(&spec.stream).map_err(failed)?,
            first_seq: 0,
            lines: spec.lines,
            rate: spec.rate,
            traces: spec.traces.as_deref().map(TraceKind::parse).transpose().map_err(failed)?,
            json: match spec.encoding.as_str() {
                "text" => false,
                "json" => true,
                other => return Err(failed(format!("encoding {other:?}: use \"text\" or \"json\""))),
            },
        };
        plan.validate()?;
        Ok(plan)
    }

    /// Check what [`LinePlan::line`] and [`LinePlan::due`] rely on.
    pub fn validate(&self) -> Result<(), PlanError> {
        let failed = |reason: &str| {
            Err(PlanError { pod: self.pod.clone(), container: self.container.clone(), reason: reason.into() })
        };
        if self.classes.is_empty() {
            return failed("`sizes` is empty");
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return failed("rate must be a positive number of lines per second");
        }
        if let Err(e) = Payload::line(&self.run, &self.pod, &self.container, self.first_seq, self.classes[0])
        {
            return failed(&e.to_string());
        }
        if self.traces.is_some() && self.json {
            return failed("a trace is text: `traces` and JSON lines do not go together");
        }
        if self.json && self.classes.iter().any(|c| c.charset == Charset::InvalidUtf8) {
            return failed("a JSON line cannot carry invalid UTF-8");
        }
        Ok(())
    }

    /// The sequence numbers of the plan.
    pub fn seqs(&self) -> std::ops::Range<u64> {
        self.first_seq..self.first_seq + self.lines
    }

    /// The class of line `seq`.
    pub fn class(&self, seq: u64) -> LineClass {
        self.classes[(seq % self.classes.len() as u64) as usize]
    }

    /// Line `seq`: its bytes (the payload, its JSON line, or a whole trace), class and stream.
    pub fn line(&self, seq: u64) -> Result<PlannedLine, InvalidField> {
        let (run, pod, ctr) = (&self.run, &self.pod, &self.container);
        let class = self.class(seq);
        let bytes = match self.traces {
            Some(kind) => kind.text(run, pod, ctr, seq)?.into_bytes(),
            None if self.json => Payload::json_line(run, pod, ctr, seq, class)?.into_bytes(),
            None => Payload::line(run, pod, ctr, seq, class)?,
        };
        Ok(PlannedLine { seq, class, stream: self.streams.of(seq), bytes })
    }

    /// Record line `seq` in `ledger`, as written.
    pub fn record(&self, seq: u64, ledger: &mut Ledger) {
        let (pod, ctr) = (&self.pod, &self.container);
        match self.traces {
            Some(kind) => ledger.record_trace(pod, ctr, seq, kind),
            None if self.json => ledger.record_json(pod, ctr, seq, self.class(seq)),
            None => ledger.record_payload(pod, ctr, seq, self.class(seq)),
        }
    }

    /// How many lines are due `elapsed` after the container started: the first at once,
    /// the n-th (from 0) at `n / rate`.
    pub fn due(&self, elapsed: Duration) -> u64 {
        let due = (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1;
        due.min(self.lines)
    }

    /// When the n-th line (from 0) is due, from the container's start.
    pub fn due_at(&self, n: u64) -> Duration {
        Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// How long writing every line takes (the last one is due at `(lines - 1) / rate`).
    pub fn duration(&self) -> Duration {
        self.due_at(self.lines.saturating_sub(1))
    }

    /// Record every line of the plan in `ledger`, as written.
    pub fn record_all(&self, ledger: &mut Ledger) {
        for seq in self.seqs() {
            self.record(seq, ledger);
        }
    }

    /// The part of the plan due within `elapsed` of the start, and the rest, numbered on:
    /// a pod moved to another node writes the rest where its predecessor stopped.
    pub fn split_at(&self, elapsed: Duration) -> (LinePlan, LinePlan) {
        let before = self.due(elapsed);
        let first = LinePlan { lines: before, ..self.clone() };
        let rest =
            LinePlan { first_seq: self.first_seq + before, lines: self.lines - before, ..self.clone() };
        (first, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(sizes: &[&str], stream: &str) -> ContainerSpec {
        ContainerSpec {
            name: "app".into(),
            image: "i".into(),
            lines: 10,
            rate: 4.0,
            sizes: sizes.iter().map(|s| s.to_string()).collect(),
            stream: stream.into(),
            format: "cri".into(),
            age: None,
            excluded_by: None,
            traces: None,
            encoding: "text".into(),
            message_fields: Default::default(),
        }
    }

    #[test]
    fn classes_cycle_and_streams_alternate() {
        let plan = LinePlan::new("r1", "web-0", &spec(&["small", "unicode"], "both")).expect("valid");
        let line = plan.line(3).expect("line");
        assert_eq!(line.class, line_class("unicode").expect("class"));
        assert_eq!(line.stream, Stream::Stderr);
        assert_eq!(plan.line(4).expect("line").stream, Stream::Stdout);
        assert_eq!(line.bytes, Payload::line("r1", "web-0", "app", 3, line.class).expect("payload"));
    }

    #[test]
    fn lines_fall_due_at_the_rate() {
        let plan = LinePlan::new("r1", "web-0", &spec(&["small"], "stdout")).expect("valid");
        assert_eq!(plan.due(Duration::ZERO), 1);
        assert_eq!(plan.due(Duration::from_millis(499)), 2);
        assert_eq!(plan.due(Duration::from_millis(500)), 3);
        assert_eq!(plan.due(Duration::from_secs(60)), 10);
        assert_eq!(plan.due_at(2), Duration::from_millis(500));
        assert_eq!(plan.duration(), Duration::from_millis(2250));
    }

    #[test]
    fn a_split_plan_continues_the_sequence() {
        let plan = LinePlan::new("r1", "web-0", &spec(&["small"], "stdout")).expect("valid");
        let (first, rest) = plan.split_at(Duration::from_millis(600));
        assert_eq!(first.seqs(), 0..3);
        assert_eq!(rest.seqs(), 3..10);
        let mut whole = Ledger::new("r1");
        plan.record_all(&mut whole);
        let mut halves = Ledger::new("r1");
        first.record_all(&mut halves);
        rest.record_all(&mut halves);
        assert_eq!(whole.counts(), halves.counts());
    }

    #[test]
    fn trace_plans_are_deterministic_and_record_one_entry_per_trace() {
        let mut java = spec(&["small"], "both");
        java.traces = Some("java".into());
        let plan = LinePlan::new("r1", "web-0", &java).expect("valid");
        let again = LinePlan::new("r1", "web-0", &java).expect("valid");
        for seq in 0..8 {
            let line = plan.line(seq).expect("trace");
            assert_eq!(line, again.line(seq).expect("trace"), "same seed, same bytes");
            assert_eq!(
                line.bytes,
                TraceKind::Java.text("r1", "web-0", "app", seq).expect("text").into_bytes()
            );
            let physical: Vec<&[u8]> = line.physical_lines().collect();
            assert!(physical.len() >= 5 && physical.iter().all(|l| !l.contains(&b'\n')));
            assert_eq!(physical.iter().any(|l| l.len() > 16_384), seq % 4 == 3);
        }
        let mut ledger = Ledger::new("r1");
        plan.record_all(&mut ledger);
        assert_eq!(ledger.len(), 10, "one ledger entry per trace, not per physical line");
        let key = crate::audit::LineKey { pod: "web-0".into(), container: "app".into(), seq: 3 };
        assert_eq!(
            ledger.expected_text(&key).map(String::into_bytes),
            Some(plan.line(3).expect("trace").bytes)
        );
    }

    #[test]
    fn json_plans_write_the_payload_in_msg() {
        let mut json = spec(&["small", "unicode"], "stdout");
        json.encoding = "json".into();
        let plan = LinePlan::new("r1", "web-0", &json).expect("valid");
        let line = plan.line(1).expect("line");
        let object: serde_json::Value = serde_json::from_slice(&line.bytes).expect("a JSON object");
        assert_eq!(object["level"], "info");
        assert_eq!(object["seq"], 1);
        let msg = object["msg"].as_str().expect("msg");
        assert_eq!(Payload::verify(msg).expect("intact payload").key.seq, 1);
        json.sizes = vec!["invalid-utf8".into()];
        assert!(LinePlan::new("r1", "web-0", &json).is_err());
        json.encoding = "yaml".into();
        assert!(LinePlan::new("r1", "web-0", &json).is_err());
    }

    #[test]
    fn bad_specs_are_named() {
        let err = LinePlan::new("r1", "web-0", &spec(&["huge"], "stdout")).expect_err("unknown class");
        assert!(err.to_string().contains("huge"), "{err}");
        assert!(LinePlan::new("r1", "web-0", &spec(&[], "stdout")).is_err());
        assert!(LinePlan::new("r1", "web-0", &spec(&["small"], "sideways")).is_err());
        assert!(LinePlan::new("r 1", "web-0", &spec(&["small"], "stdout")).is_err());
    }
}
