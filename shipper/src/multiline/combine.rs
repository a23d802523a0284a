//! Grouping the lines of one file, per stream, with a [`Detector`].
//!
//! Each stream (stdout, stderr) runs its own copy of the detector's state machine and holds
//! at most one open group, so interleaved streams never mix. A line either continues the
//! stream's trace (joins the open group), begins a new trace (the open group goes out and
//! the line opens the next one), or is not part of any trace (the open group goes out,
//! then the line, at once: ordinary logs are never held).
//!
//! Held lines are the only thing that could be lost by a crash, so every open group keeps
//! the file offset of its first line: [`Combiner::pending_since`] is where a checkpoint
//! must stop, as [`crate::parse::Assembler::pending_since`] is for unfinished lines.

use std::time::Instant;

use super::detector::Detector;
use super::machine::{START, StateId};
use crate::parse::{Line, Stream};

/// Groups lines per stream of one file.
#[derive(Debug)]
pub struct Combiner {
    detector: Detector,
    /// Per stream, indexed by [`slot`].
    streams: [StreamState; 2],
    stats: Stats,
    /// Opening order of groups, to emit the oldest first when offsets tie.
    next_seq: u64,
}

/// Counters since the combiner was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Groups emitted with more than one line.
    pub groups: u64,
    /// Lines emitted inside those groups.
    pub lines_merged: u64,
    /// Why open groups were emitted.
    pub flushes: Flushes,
}

/// Emissions of open groups, by reason. A line that goes out the moment it arrives (alone,
/// or completing a one-push trace) is not a flush.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushes {
    /// Its last line was older than the flush timeout ([`Combiner::flush_expired`]).
    pub timeout: u64,
    /// It reached `max_lines`.
    pub max_lines: u64,
    /// The next line would have taken it over `max_bytes` (or it is full).
    pub max_bytes: u64,
    /// A piece of an over-long line arrived on its stream.
    pub continued_piece: u64,
    /// The trace reached a terminal state.
    pub end_of_trace: u64,
    /// The next line of the stream did not continue it.
    pub next_group: u64,
    /// [`Combiner::flush`], or adopted groups that could not be kept.
    pub end_of_input: u64,
}

/// Why an open group goes out.
#[derive(Clone, Copy, Debug)]
enum Reason {
    Timeout,
    MaxLines,
    MaxBytes,
    ContinuedPiece,
    EndOfTrace,
    NextGroup,
    EndOfInput,
}

/// Open groups taken out of a [`Combiner`] by [`Combiner::take_open`], to be
/// [adopted](Combiner::adopt) by another.
#[derive(Debug, Default)]
pub struct OpenGroups {
    /// The detector whose states the groups are in.
    detector: Option<Detector>,
    /// Per stream: the machine's state and the group.
    groups: [Option<(StateId, Group)>; 2],
}

impl OpenGroups {
    /// No group was open.
    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(Option::is_none)
    }

    /// How many groups (at most one per stream).
    pub fn len(&self) -> usize {
        self.groups.iter().flatten().count()
    }
}

/// One stream's trace in progress.
#[derive(Debug, Default)]
struct StreamState {
    /// Where the stream is in the detector's machine. It may be past [`START`] with no
    /// group open, after a group was cut by a limit: the rest of the trace then forms a
    /// new group rather than a run of single lines.
    state: StateId,
    group: Option<Group>,
    /// The last line of this stream was a `continued` piece: the next one is the rest of
    /// that line, and passes through too.
    in_long_line: bool,
}

/// Lines held together.
#[derive(Debug)]
struct Group {
    /// Of the first line.
    timestamp_ms: i64,
    stream: Stream,
    /// The lines joined with `"\n"`.
    text: String,
    lines: usize,
    invalid_utf8: bool,
    /// File offset of the first line.
    first_offset: u64,
    /// When the last line arrived.
    last_at: Instant,
    seq: u64,
}

impl Group {
    fn into_line(self) -> Line {
        Line {
            timestamp_ms: self.timestamp_ms,
            stream: self.stream,
            text: self.text,
            invalid_utf8: self.invalid_utf8,
            continued: false,
        }
    }
}

impl Combiner {
    /// A combiner with nothing held.
    pub fn new(detector: Detector) -> Self {
        Combiner { detector, streams: Default::default(), stats: Stats::default(), next_seq: 0 }
    }

    /// The detector it groups with.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Feed one complete line that started at byte `offset` of its file, arriving at `now`.
    ///
    /// Finished groups go to `out` as `Line`s: text = the lines joined with `"\n"`,
    /// timestamp and stream of the first line, `invalid_utf8` if any line had it,
    /// `continued: false`. A `continued` piece of an over-long line (and the rest of that
    /// line after it) is never grouped: the stream's open group goes out, then the piece.
    pub fn push(&mut self, line: Line, offset: u64, now: Instant, out: &mut Vec<Line>) {
        let limits = self.detector.limits();
        let stream = &mut self.streams[slot(line.stream)];
        let stats = &mut self.stats;
        if line.continued || stream.in_long_line {
            stream.close(Reason::ContinuedPiece, stats, out);
            stream.state = START;
            stream.in_long_line = line.continued;
            out.push(line);
            return;
        }

        // Continue the trace in progress, else try the line as the start of a new one.
        let continued =
            (stream.state != START).then(|| self.detector.step(stream.state, &line.text)).flatten();
        let next = match continued {
            Some(next) => Some(next),
            None => {
                stream.close(Reason::NextGroup, stats, out);
                self.detector.step(START, &line.text)
            }
        };
        if let Some(group) = &stream.group {
            if group.lines >= limits.max_lines {
                stream.close(Reason::MaxLines, stats, out);
            } else if group.text.len() + 1 + line.text.len() > limits.max_bytes {
                stream.close(Reason::MaxBytes, stats, out);
            }
        }
        let Some(next) = next else {
            stream.state = START;
            out.push(line);
            return;
        };
        stream.state = next;
        let terminal = self.detector.is_terminal(next);
        match &mut stream.group {
            Some(group) => {
                group.text.push('\n');
                group.text.push_str(&line.text);
                group.lines += 1;
                group.invalid_utf8 |= line.invalid_utf8;
                group.last_at = now;
            }
            // Open a group only if it could take another line; otherwise the line is a
            // complete event by itself (the state is kept: the trace may go on).
            None if !terminal && limits.max_lines > 1 && line.text.len() < limits.max_bytes => {
                stream.group = Some(Group {
                    timestamp_ms: line.timestamp_ms,
                    stream: line.stream,
                    text: line.text,
                    lines: 1,
                    invalid_utf8: line.invalid_utf8,
                    first_offset: offset,
                    last_at: now,
                    seq: self.next_seq,
                });
                self.next_seq += 1;
                return;
            }
            None => {
                if terminal {
                    stream.state = START;
                }
                out.push(line);
                return;
            }
        }
        // The group grew: emit it now if nothing more can join it.
        if terminal {
            stream.close(Reason::EndOfTrace, stats, out);
            stream.state = START;
        } else if let Some(group) = &stream.group {
            if group.lines >= limits.max_lines {
                stream.close(Reason::MaxLines, stats, out);
            } else if group.text.len() >= limits.max_bytes {
                stream.close(Reason::MaxBytes, stats, out);
            }
        }
    }

    /// File offset of the first line of the oldest open group; `None` when nothing is held.
    /// A checkpoint must not pass it, so that a restart re-reads every held line.
    pub fn pending_since(&self) -> Option<u64> {
        self.streams.iter().filter_map(|s| s.group.as_ref()).map(|g| g.first_offset).min()
    }

    /// Emit the groups whose last line arrived `flush_timeout` or longer before `now`,
    /// oldest first; their traces are taken to be over. Returns how many.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Line>) -> usize {
        let timeout = self.detector.limits().flush_timeout;
        let expired = |s: &StreamState| {
            s.group.as_ref().is_some_and(|g| now.saturating_duration_since(g.last_at) >= timeout)
        };
        self.close_in_order(expired, Reason::Timeout, out)
    }

    /// The earliest instant at which [`Combiner::flush_expired`] would emit something.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timeout = self.detector.limits().flush_timeout;
        // A deadline past what `Instant` can hold is no deadline at all.
        self.streams
            .iter()
            .filter_map(|s| s.group.as_ref())
            .filter_map(|g| g.last_at.checked_add(timeout))
            .min()
    }

    /// Emit everything held, oldest group first (the file ended for good).
    pub fn flush(&mut self, out: &mut Vec<Line>) {
        self.close_in_order(|s| s.group.is_some(), Reason::EndOfInput, out);
    }

    /// Take the open groups out, e.g. to carry a trace cut by log rotation from the rotated
    /// file into the new file at the same path. Nothing is held afterwards.
    pub fn take_open(&mut self) -> OpenGroups {
        let mut taken = OpenGroups { detector: Some(self.detector.clone()), groups: [None, None] };
        for (stream, slot) in self.streams.iter_mut().zip(&mut taken.groups) {
            if let Some(group) = stream.group.take() {
                *slot = Some((stream.state, group));
            }
            stream.state = START;
        }
        taken
    }

    /// Take over groups from [`Combiner::take_open`] as if their first line had started at
    /// `offset` of this combiner's file (so that [`Combiner::pending_since`] holds the new
    /// file's checkpoint back until they are out). The next lines may continue them.
    ///
    /// A group is emitted to `out` instead when it cannot be kept: it comes from another
    /// detector (its state would mean nothing here), or this combiner already holds a group
    /// of that stream (the adopted one is older, so it goes first).
    pub fn adopt(&mut self, groups: OpenGroups, offset: u64, out: &mut Vec<Line>) {
        let same = groups.detector.as_ref().is_some_and(|d| d.same_machine(&self.detector));
        let mut adopted: Vec<(StateId, Group)> = groups.groups.into_iter().flatten().collect();
        adopted.sort_by_key(|(_, g)| (g.first_offset, g.seq));
        for (state, mut group) in adopted {
            let stream = &mut self.streams[slot(group.stream)];
            if !same || stream.group.is_some() {
                let reason = if same { Reason::NextGroup } else { Reason::EndOfInput };
                self.stats.count(reason, &group);
                out.push(group.into_line());
                continue;
            }
            group.first_offset = offset;
            group.seq = self.next_seq;
            self.next_seq += 1;
            stream.state = state;
            stream.group = Some(group);
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Emit the groups of the streams `which` picks, oldest first, and reset those streams'
    /// traces. Returns how many.
    fn close_in_order(
        &mut self,
        which: impl Fn(&StreamState) -> bool,
        reason: Reason,
        out: &mut Vec<Line>,
    ) -> usize {
        let mut picked: Vec<&mut StreamState> = self.streams.iter_mut().filter(|s| which(s)).collect();
        picked.sort_by_key(|s| s.group.as_ref().map(|g| (g.first_offset, g.seq)));
        for stream in &mut picked {
            stream.close(reason, &mut self.stats, out);
            stream.state = START;
        }
        picked.len()
    }
}

impl StreamState {
    /// Emit the open group, if any.
    fn close(&mut self, reason: Reason, stats: &mut Stats, out: &mut Vec<Line>) {
        if let Some(group) = self.group.take() {
            stats.count(reason, &group);
            out.push(group.into_line());
        }
    }
}

impl Stats {
    fn count(&mut self, reason: Reason, group: &Group) {
        if group.lines > 1 {
            self.groups += 1;
            self.lines_merged += group.lines as u64;
        }
        let f = &mut self.flushes;
        *match reason {
            Reason::Timeout => &mut f.timeout,
            Reason::MaxLines => &mut f.max_lines,
            Reason::MaxBytes => &mut f.max_bytes,
            Reason::ContinuedPiece => &mut f.continued_piece,
            Reason::EndOfTrace => &mut f.end_of_trace,
            Reason::NextGroup => &mut f.next_group,
            Reason::EndOfInput => &mut f.end_of_input,
        } += 1;
    }
}

/// Index of a stream's state.
fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}
