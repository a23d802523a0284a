//! A fleet sharing one account's PutLogEvents quota (`[fleet]`, `[expect.fleet]`): what the
//! nodes asked for over time, when that settled under the quota, how long lines waited, and
//! whether any node starved.
//!
//! Everything is read from the gateway's journal (every call, its outcome and time) and the
//! audit's read-back (each event's timestamp: when its line was written); nothing comes
//! from the shipper. A line's latency: within a stream the shipper sends in order with one
//! request in flight, so its n-th event was accepted by the first accepted call that brings
//! the stream's running count to n (as `bench::latency` measures it).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::Delivered;
use crate::bench::latency::percentile;
use crate::gateway::{Entry, Outcome, RejectReason};
use crate::report::Check;
use crate::scenario::FleetExpect;

/// Width of the windows the ask rate is judged over.
pub const WINDOW_SECS: u64 = 5;

/// One node's share.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NodeFigures {
    /// Node name.
    pub node: String,
    /// Events of its streams read back.
    pub events: u64,
    /// Its PutLogEvents calls the account accepted.
    pub calls_accepted: u64,
    /// Its PutLogEvents calls throttled by the account's quota.
    pub calls_throttled: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th-percentile latency, ms.
    pub p99_ms: f64,
}

/// What the fleet did with the quota.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FleetFigures {
    /// The account's PutLogEvents quota, calls/s.
    pub quota: u32,
    /// PutLogEvents calls per second asked (any outcome), per [`WINDOW_SECS`] window starting
    /// each second of the run, until the writers stopped: `(start s, calls/s)`.
    pub asked_per_second: Vec<(u64, f64)>,
    /// The first window at or under the expected ratio of the quota (`None`: none was).
    pub settled_at_s: Option<u64>,
    /// The fleet's 99th-percentile latency, ms.
    pub p99_ms: f64,
    /// Jain's fairness index of the nodes' median latencies (1: all alike; 1/n: one node
    /// got everything).
    pub fairness: f64,
    /// Per node.
    pub nodes: Vec<NodeFigures>,
}

/// The figures of a run that started at `t0_unix_ms` and whose writers stopped
/// `writers_done_s` later. `node_of_stream` maps `<pod>_<container>` to its node.
pub fn figures(
    journal: &[Entry],
    delivered: &Delivered,
    node_of_stream: &BTreeMap<String, String>,
    quota: u32,
    max_ratio: f64,
    t0_unix_ms: u64,
    writers_done_s: u64,
) -> FleetFigures {
    let puts: Vec<&Entry> = journal.iter().filter(|e| e.operation == "PutLogEvents").collect();
    let since_start = |e: &Entry| e.unix_ms.saturating_sub(t0_unix_ms);
    let asked_per_second: Vec<(u64, f64)> = (0..writers_done_s.saturating_sub(WINDOW_SECS - 1))
        .map(|start| {
            let (from, to) = (start * 1000, (start + WINDOW_SECS) * 1000);
            let calls = puts.iter().filter(|e| (from..to).contains(&since_start(e))).count();
            (start, calls as f64 / WINDOW_SECS as f64)
        })
        .collect();
    let limit = f64::from(quota) * max_ratio;
    let settled_at_s = asked_per_second.iter().find(|&&(_, rate)| rate <= limit).map(|&(start, _)| start);

    // Per stream, the running count of accepted events after each accepted call.
    let mut accepted: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    let mut calls: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for e in &puts {
        let Some(stream) = e.stream.as_deref() else { continue };
        let node = node_of_stream.get(stream).map_or("?", String::as_str);
        match &e.outcome {
            Outcome::Forwarded { status: 200 } | Outcome::Acknowledged => {
                let steps = accepted.entry(stream).or_default();
                let before = steps.last().map_or(0, |&(count, _)| count);
                steps.push((before + u64::from(e.events), e.unix_ms));
                calls.entry(node).or_default().0 += 1;
            }
            Outcome::Rejected { reason: RejectReason::RateExceeded, .. } => {
                calls.entry(node).or_default().1 += 1
            }
            _ => {}
        }
    }
    let mut latencies: BTreeMap<&str, (Vec<f64>, u64)> = BTreeMap::new();
    for streams in delivered.groups.values() {
        for (stream, events) in streams {
            let node = node_of_stream.get(stream).map_or("?", String::as_str);
            let entry = latencies.entry(node).or_default();
            entry.1 += events.len() as u64;
            let Some(steps) = accepted.get(stream.as_str()) else { continue };
            let mut stamps: Vec<i64> = events.iter().map(|e| e.timestamp).collect();
            stamps.sort_unstable();
            for (n, stamp) in stamps.into_iter().enumerate() {
                let index = steps.partition_point(|&(count, _)| count < n as u64 + 1);
                if let Some(&(_, at)) = steps.get(index) {
                    entry.0.push(at as f64 - stamp as f64);
                }
            }
        }
    }
    let all: Vec<f64> = latencies.values().flat_map(|(l, _)| l.iter().copied()).collect();
    let nodes: Vec<NodeFigures> = node_of_stream
        .values()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|node| {
            let (lat, events) = latencies.get(node.as_str()).cloned().unwrap_or_default();
            let (calls_accepted, calls_throttled) = calls.get(node.as_str()).copied().unwrap_or_default();
            NodeFigures {
                node: node.clone(),
                events,
                calls_accepted,
                calls_throttled,
                p50_ms: percentile(&lat, 50.0).unwrap_or(f64::NAN),
                p99_ms: percentile(&lat, 99.0).unwrap_or(f64::NAN),
            }
        })
        .collect();
    FleetFigures {
        quota,
        asked_per_second,
        settled_at_s,
        p99_ms: percentile(&all, 99.0).unwrap_or(f64::NAN),
        fairness: jain(&nodes.iter().map(|n| n.p50_ms).collect::<Vec<_>>()),
        nodes,
    }
}

/// Jain's fairness index, `(Σx)² / (n·Σx²)`; 1 for no values.
fn jain(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|v| v * v).sum();
    if values.is_empty() || squares == 0.0 { 1.0 } else { sum * sum / (values.len() as f64 * squares) }
}

/// The checks `[expect.fleet]` asks for.
pub fn checks(expect: &FleetExpect, figures: &FleetFigures) -> Vec<Check> {
    let converged_by = expect.converged_by.0.as_secs();
    let limit = f64::from(figures.quota) * expect.max_ask_ratio;
    let judged: Vec<&(u64, f64)> =
        figures.asked_per_second.iter().filter(|(start, _)| *start >= converged_by).collect();
    let peak = judged.iter().map(|(_, rate)| *rate).fold(0.0, f64::max);
    let mean = judged.iter().map(|(_, rate)| *rate).sum::<f64>() / judged.len().max(1) as f64;
    let in_time = figures.settled_at_s.is_some_and(|s| s <= converged_by);
    let settled = Check {
        name: "asks settle under the quota".into(),
        ok: !judged.is_empty() && in_time && mean <= limit,
        detail: if judged.is_empty() {
            format!("the writers stopped before {converged_by}s + a {WINDOW_SECS}s window: nothing to judge")
        } else {
            format!(
                "first at or under {limit:.1} calls/s ({} x quota {}) at {} (bound {converged_by}s); from then on \
                 {} windows of {WINDOW_SECS}s: mean {mean:.1}, peak {peak:.1} calls/s asked",
                expect.max_ask_ratio,
                figures.quota,
                figures.settled_at_s.map_or("never".into(), |s| format!("{s}s")),
                judged.len(),
            )
        },
    };
    let bound = expect.max_node_p99.0.as_secs_f64() * 1000.0;
    let worst_node = figures.nodes.iter().max_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
    let starved: Vec<String> = figures
        .nodes
        .iter()
        .filter(|n| n.p99_ms.is_nan() || n.p99_ms > bound)
        .map(|n| format!("{} ({:.0} ms)", n.node, n.p99_ms))
        .collect();
    let no_starving = Check {
        name: "no node starves".into(),
        ok: starved.is_empty() && !figures.nodes.is_empty(),
        detail: format!(
            "fleet p99 {:.0} ms; worst node {} p99 {:.0} ms (bound {bound:.0} ms); fairness {:.3}{}",
            figures.p99_ms,
            worst_node.map_or("-", |n| n.node.as_str()),
            worst_node.map_or(f64::NAN, |n| n.p99_ms),
            figures.fairness,
            if starved.is_empty() {
                String::new()
            } else {
                format!("; over the bound: {}", starved.join(", "))
            }
        ),
    };
    vec![settled, no_starving]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::DeliveredEvent;

    fn put(stream: &str, unix_ms: u64, events: u32, throttled: bool) -> Entry {
        Entry {
            seq: 0,
            at_ms: 0,
            unix_ms,
            operation: "PutLogEvents".into(),
            group: Some("g".into()),
            stream: Some(stream.into()),
            events,
            bytes: 0,
            outcome: if throttled {
                Outcome::Rejected {
                    reason: RejectReason::RateExceeded,
                    error_type: "ThrottlingException".into(),
                }
            } else {
                Outcome::Forwarded { status: 200 }
            },
        }
    }

    fn delivered(streams: &[(&str, &[i64])]) -> Delivered {
        let mut d = Delivered::default();
        for (stream, stamps) in streams {
            d.groups.entry("g".into()).or_default().insert(
                (*stream).into(),
                stamps
                    .iter()
                    .map(|&timestamp| DeliveredEvent { timestamp, message: String::new() })
                    .collect(),
            );
        }
        d
    }

    #[test]
    fn latency_is_the_accepting_call_minus_the_write_and_nodes_are_told_apart() {
        let t0 = 1_000_000;
        let journal = vec![
            put("a_c", t0 + 500, 2, true),
            put("a_c", t0 + 900, 2, false),
            put("b_c", t0 + 1_000, 1, false),
            put("b_c", t0 + 9_000, 1, false),
        ];
        let back = delivered(&[
            ("a_c", &[t0 as i64 + 100, t0 as i64 + 200]),
            ("b_c", &[t0 as i64, t0 as i64 + 1_000]),
        ]);
        let nodes =
            BTreeMap::from([("a_c".to_owned(), "n-1".to_owned()), ("b_c".to_owned(), "n-2".to_owned())]);
        let f = figures(&journal, &back, &nodes, 10, 1.0, t0, 10);
        let n1 = &f.nodes[0];
        assert_eq!((n1.node.as_str(), n1.events, n1.calls_accepted, n1.calls_throttled), ("n-1", 2, 1, 1));
        assert_eq!(n1.p99_ms, 800.0);
        let n2 = &f.nodes[1];
        assert_eq!((n2.p50_ms, n2.p99_ms), (1_000.0, 8_000.0));
        assert_eq!(f.p99_ms, 8_000.0);
        assert!(f.fairness < 1.0);
    }

    #[test]
    fn the_ask_settles_after_the_last_window_over_the_limit() {
        let t0 = 0;
        // 30 calls in the first second, then one per second (windows from 1 s: 1 call/s).
        let mut journal: Vec<Entry> = (0..30).map(|i| put("a_c", i * 30, 1, i % 2 == 0)).collect();
        journal.extend((1..20).map(|s| put("a_c", s * 1000 + 10, 1, false)));
        let f = figures(&journal, &Delivered::default(), &BTreeMap::new(), 2, 1.0, t0, 20);
        assert_eq!(f.asked_per_second.len(), 16);
        assert_eq!(f.asked_per_second[0], (0, 34.0 / 5.0));
        assert_eq!(f.settled_at_s, Some(1));
        let expect = FleetExpect {
            converged_by: crate::scenario::Dur(std::time::Duration::from_secs(1)),
            max_ask_ratio: 1.0,
            max_node_p99: crate::scenario::Dur(std::time::Duration::from_secs(1)),
        };
        let settled = &checks(&expect, &f)[0];
        assert!(settled.ok, "{settled:?}");
        // Not down by then.
        let early =
            FleetExpect { converged_by: crate::scenario::Dur(std::time::Duration::ZERO), ..expect.clone() };
        assert!(!checks(&early, &f)[0].ok);
        // Down in time, but a burst at 10 s brings the mean over the quota afterwards.
        journal.extend((0..20).map(|i| put("a_c", 10_000 + i, 1, true)));
        let f = figures(&journal, &Delivered::default(), &BTreeMap::new(), 2, 1.0, t0, 20);
        assert_eq!(f.settled_at_s, Some(1));
        let settled = &checks(&expect, &f)[0];
        assert!(!settled.ok && settled.detail.contains("peak 5.0"), "{settled:?}");
    }

    #[test]
    fn jain_is_one_for_equal_shares_and_one_over_n_for_a_single_taker() {
        assert_eq!(jain(&[3.0, 3.0, 3.0]), 1.0);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-9);
    }
}
