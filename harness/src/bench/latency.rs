//! End-to-end latency, line written → event accepted by the gateway.
//!
//! Method: the sink-mode gateway keeps no messages, only a journal of requests (arrival
//! time, stream, event count). Within one stream the shipper sends events in file order,
//! one request in flight, so the n-th event of a stream was accepted by the first
//! acknowledged request that brings the stream's running count to n. The writer records the
//! wall-clock time of sampled lines (the last line of each write); a line's latency is the
//! journal time of its acceptance minus that write time. Both clocks are the same host's
//! `SystemTime`, the journal's at millisecond resolution. Duplicated deliveries would make
//! later lines look accepted early, so the report shows the duplicate count next to it.

use std::collections::HashMap;

/// When a line was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteStamp {
    /// The CloudWatch stream the line goes to.
    pub stream: String,
    /// Index of the line within its stream, from 0.
    pub line: u64,
    /// Wall clock after the write returned, µs since the Unix epoch.
    pub written_unix_us: u64,
}

/// One acknowledged PutLogEvents, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    /// The stream.
    pub stream: String,
    /// Events it carried.
    pub events: u64,
    /// When the gateway answered it, ms since the Unix epoch.
    pub unix_ms: u64,
}

/// Latency in ms of every stamped line that was accepted (`events_per_line` events per
/// line: a line over the event limit is sent as several events).
pub fn latencies_ms(stamps: &[WriteStamp], acceptances: &[Acceptance], events_per_line: u64) -> Vec<f64> {
    // Per stream: (running event count after the request, its time), in arrival order.
    let mut running: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    for accepted in acceptances {
        let steps = running.entry(accepted.stream.as_str()).or_default();
        let before = steps.last().map_or(0, |&(count, _)| count);
        steps.push((before + accepted.events, accepted.unix_ms));
    }
    stamps
        .iter()
        .filter_map(|stamp| {
            let steps = running.get(stamp.stream.as_str())?;
            let needed = (stamp.line + 1) * events_per_line.max(1);
            let index = steps.partition_point(|&(count, _)| count < needed);
            let &(_, accepted_ms) = steps.get(index)?;
            Some((accepted_ms as f64 * 1000.0 - stamp.written_unix_us as f64) / 1000.0)
        })
        .collect()
}

/// The `p`-th percentile (0..=100, nearest rank) of `values`; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stamp(stream: &str, line: u64, written_ms: u64) -> WriteStamp {
        WriteStamp { stream: stream.into(), line, written_unix_us: written_ms * 1000 }
    }

    fn accepted(stream: &str, events: u64, unix_ms: u64) -> Acceptance {
        Acceptance { stream: stream.into(), events, unix_ms }
    }

    #[test]
    fn each_line_is_matched_to_the_request_that_carried_it() {
        let acceptances = [accepted("a", 3, 1_100), accepted("b", 1, 1_150), accepted("a", 2, 1_300)];
        let stamps = [stamp("a", 0, 1_000), stamp("a", 2, 1_010), stamp("a", 3, 1_200), stamp("b", 0, 1_050)];
        assert_eq!(latencies_ms(&stamps, &acceptances, 1), vec![100.0, 90.0, 100.0, 100.0]);
    }

    #[test]
    fn lines_not_yet_accepted_have_no_latency() {
        let acceptances = [accepted("a", 2, 1_100)];
        let stamps = [stamp("a", 1, 1_000), stamp("a", 2, 1_000), stamp("c", 0, 1_000)];
        assert_eq!(latencies_ms(&stamps, &acceptances, 1), vec![100.0]);
    }

    #[test]
    fn a_split_line_is_accepted_with_its_last_event() {
        // Line 0 = events 1-2, line 1 = events 3-4.
        let acceptances = [accepted("a", 3, 1_100), accepted("a", 1, 1_200)];
        let stamps = [stamp("a", 0, 1_000), stamp("a", 1, 1_000)];
        assert_eq!(latencies_ms(&stamps, &acceptances, 2), vec![100.0, 200.0]);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 0.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    proptest! {
        /// Against a direct simulation: walk the requests, hand out event numbers in order.
        #[test]
        fn matches_a_direct_simulation(batches in proptest::collection::vec(1u64..20, 1..30), per_line in 1u64..3) {
            let acceptances: Vec<_> =
                batches.iter().enumerate().map(|(i, &n)| accepted("s", n, 1_000 + 10 * i as u64)).collect();
            let total: u64 = batches.iter().sum();
            let lines = total / per_line + 2;
            let stamps: Vec<_> = (0..lines).map(|line| stamp("s", line, 500)).collect();
            let mut expected = Vec::new();
            for line in 0..lines {
                let last_event = (line + 1) * per_line; // 1-based
                let mut seen = 0;
                for a in &acceptances {
                    seen += a.events;
                    if seen >= last_event {
                        expected.push(a.unix_ms as f64 - 500.0);
                        break;
                    }
                }
            }
            prop_assert_eq!(latencies_ms(&stamps, &acceptances, per_line), expected);
        }
    }
}
