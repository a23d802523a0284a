//! The journal: one entry per request (or refused connection) and what the gateway did.
//!
//! Entries are kept up to a capacity (oldest dropped first, counted); the summary counts
//! are cumulative and exact regardless, and include the events and bytes accepted per
//! group and stream (by the upstream, or by the gateway itself in sink mode).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::faults::FaultKind;
use super::rules::RejectReason;

/// What the gateway did with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Outcome {
    /// Forwarded to the upstream; its answer was relayed unchanged.
    Forwarded {
        /// The upstream's HTTP status.
        status: u16,
    },
    /// Sink mode: validated and acknowledged, nothing stored.
    Acknowledged,
    /// Refused by a CloudWatch rule, answered like CloudWatch.
    Rejected {
        /// The rule that failed.
        reason: RejectReason,
        /// The AWS error code sent.
        error_type: String,
    },
    /// A fault decided the request's fate.
    Faulted {
        /// The fault.
        fault: FaultKind,
        /// For `Ambiguous`: the status the upstream answered before the connection was cut.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        upstream_status: Option<u16>,
    },
    /// The upstream could not be reached or failed mid-answer; the client got a 502.
    UpstreamFailed {
        /// The transport error.
        error: String,
    },
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Forwarded { .. } => "forwarded",
            Self::Acknowledged => "acknowledged",
            Self::Rejected { .. } => "rejected",
            Self::Faulted { .. } => "faulted",
            Self::UpstreamFailed { .. } => "upstream_failed",
        }
    }
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Arrival order, from 1.
    pub seq: u64,
    /// Milliseconds since the gateway started.
    pub at_ms: u64,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Operation from `X-Amz-Target` (`PutLogEvents`, ...); `-` for non-AWS requests and
    /// refused connections.
    pub operation: String,
    /// `logGroupName`, when the body carried one.
    pub group: Option<String>,
    /// `logStreamName`, when the body carried one.
    pub stream: Option<String>,
    /// PutLogEvents: number of events.
    pub events: u32,
    /// PutLogEvents: Σ(message bytes + 26); otherwise 0.
    pub bytes: u64,
    /// What the gateway did.
    pub outcome: Outcome,
}

/// Events and bytes accepted for one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTotals {
    /// Events accepted.
    pub events: u64,
    /// Σ(message bytes + 26) accepted.
    pub bytes: u64,
    /// Successful PutLogEvents calls.
    pub requests: u64,
}

/// Cumulative counts since the gateway started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests (and refused connections) seen.
    pub requests: u64,
    /// Count per outcome label (`forwarded`, `acknowledged`, `rejected`, `faulted`,
    /// `upstream_failed`).
    pub outcomes: BTreeMap<String, u64>,
    /// Rejections per rule.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Faulted requests per fault kind name.
    pub faults: BTreeMap<String, u64>,
    /// Accepted PutLogEvents totals: group → stream → totals. Includes `Ambiguous` writes
    /// the upstream accepted (the client never learned they landed).
    pub accepted: BTreeMap<String, BTreeMap<String, StreamTotals>>,
    /// Journal entries dropped because the journal was at capacity.
    pub journal_dropped: u64,
    /// Accepted PutLogEvents requests per signing access key: which identity wrote the data
    /// (the role's session keys, not the node's, when the shipper assumes a role).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signers: BTreeMap<String, u64>,
}

/// The bounded journal plus its cumulative summary.
#[derive(Debug)]
pub struct Journal {
    entries: VecDeque<Entry>,
    capacity: usize,
    next_seq: u64,
    summary: Summary,
}

impl Journal {
    /// An empty journal keeping at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self { entries: VecDeque::new(), capacity: capacity.max(1), next_seq: 0, summary: Summary::default() }
    }

    /// Appends an entry (its `seq` is assigned here) and updates the summary.
    pub fn record(&mut self, mut entry: Entry) {
        self.next_seq += 1;
        entry.seq = self.next_seq;
        let summary = &mut self.summary;
        summary.requests += 1;
        *summary.outcomes.entry(entry.outcome.label().to_owned()).or_default() += 1;
        match &entry.outcome {
            Outcome::Rejected { reason, .. } => *summary.rejected.entry(*reason).or_default() += 1,
            Outcome::Faulted { fault, .. } => {
                *summary.faults.entry(fault.name().to_owned()).or_default() += 1;
            }
            _ => {}
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            summary.journal_dropped += 1;
        }
        self.entries.push_back(entry);
    }

    /// Counts a PutLogEvents batch the destination accepted.
    pub fn accept(&mut self, group: &str, stream: &str, events: u32, bytes: u64) {
        let streams = match self.summary.accepted.get_mut(group) {
            Some(streams) => streams,
            None => self.summary.accepted.entry(group.to_owned()).or_default(),
        };
        let totals = match streams.get_mut(stream) {
            Some(totals) => totals,
            None => streams.entry(stream.to_owned()).or_default(),
        };
        totals.events += u64::from(events);
        totals.bytes += bytes;
        totals.requests += 1;
    }

    /// Counts an accepted PutLogEvents request signed by `access_key`.
    pub fn signed(&mut self, access_key: &str) {
        *self.summary.signers.entry(access_key.to_owned()).or_default() += 1;
    }

    /// The kept entries, oldest first.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.iter().cloned().collect()
    }

    /// The cumulative summary.
    pub fn summary(&self) -> Summary {
        self.summary.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: Outcome) -> Entry {
        Entry {
            seq: 0,
            at_ms: 5,
            unix_ms: 1_700_000_000_000,
            operation: "PutLogEvents".to_owned(),
            group: Some("g".to_owned()),
            stream: Some("s".to_owned()),
            events: 3,
            bytes: 90,
            outcome,
        }
    }

    #[test]
    fn summary_counts_every_outcome_even_past_capacity() {
        let mut journal = Journal::new(2);
        journal.record(entry(Outcome::Forwarded { status: 200 }));
        journal.record(entry(Outcome::Rejected {
            reason: RejectReason::NotChronological,
            error_type: "InvalidParameterException".to_owned(),
        }));
        journal.record(entry(Outcome::Faulted { fault: FaultKind::Throttle, upstream_status: None }));
        journal.accept("g", "s", 3, 90);
        journal.accept("g", "s", 2, 60);

        let kept: Vec<u64> = journal.entries().iter().map(|e| e.seq).collect();
        assert_eq!(kept, [2, 3]);
        insta::assert_yaml_snapshot!(journal.summary());
    }

    #[test]
    fn entries_serialise_with_a_tagged_outcome() {
        let mut journal = Journal::new(10);
        journal.record(entry(Outcome::Faulted { fault: FaultKind::Ambiguous, upstream_status: Some(200) }));
        insta::assert_yaml_snapshot!(journal.entries());
    }
}
