//! Turning the audit's verdict, the shipper's metrics and the scenario's expectations into
//! the report's checks.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::audit::{Delivered, Verdict};
use crate::report::{Check, FaultWindow, Report, Sample};
use crate::scenario::Scenario;

/// Everything measured during a run.
#[derive(Debug)]
pub struct Measured {
    /// Lines written.
    pub lines_written: u64,
    /// Checks made during the run (shutdowns).
    pub checks: Vec<Check>,
    /// Timeline.
    pub samples: Vec<Sample>,
    /// Faults.
    pub faults: Vec<FaultWindow>,
    /// When workload and faults were over.
    pub quiet_since: Duration,
    /// When nothing was missing any more.
    pub drained_at: Option<Duration>,
    /// Shipper starts.
    pub starts: u32,
    /// Peak RSS, KiB.
    pub peak_rss_kib: u64,
    /// Peak spool bytes.
    pub peak_spool_bytes: u64,
    /// Last metrics scrape before shutdown.
    pub metrics: BTreeMap<String, f64>,
    /// Gateway summary.
    pub gateway: serde_json::Value,
    /// Node names a message's `host` may carry (the SimNode's; kind's nodes).
    pub hosts: std::collections::BTreeSet<String>,
}

/// Message fields that do not match the pod the line came from.
fn shape_mismatches(
    scenario: &Scenario,
    delivered: &Delivered,
    hosts: &std::collections::BTreeSet<String>,
) -> (u64, Vec<String>) {
    let pods = scenario.expanded_pods();
    let mut bad = 0;
    let mut examples = Vec::new();
    for (group, streams) in &delivered.groups {
        for (stream, events) in streams {
            for e in events {
                let problem = match serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&e.message) {
                    Err(err) => Some(format!("not a JSON object: {err}")),
                    Ok(m) => {
                        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
                        let want =
                            ["container_image", "container_name", "host", "log", "namespace", "pod_name"];
                        if keys != want {
                            Some(format!("keys {keys:?}, want exactly {want:?}"))
                        } else {
                            let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                            match pods.iter().find(|p| p.name == s("pod_name")) {
                                None => Some(format!("unknown pod_name {:?}", s("pod_name"))),
                                Some(pod) => {
                                    let image = pod
                                        .containers
                                        .iter()
                                        .find(|c| c.name == s("container_name"))
                                        .map(|c| c.image.clone());
                                    if s("namespace") != pod.namespace {
                                        Some(format!(
                                            "namespace {:?}, want {:?}",
                                            s("namespace"),
                                            pod.namespace
                                        ))
                                    } else if image.as_deref() != Some(s("container_image").as_str()) {
                                        Some(format!(
                                            "container_image {:?}, want {image:?}",
                                            s("container_image")
                                        ))
                                    } else if !hosts.contains(&s("host")) {
                                        Some(format!("host {:?}, want one of {hosts:?}", s("host")))
                                    } else {
                                        None
                                    }
                                }
                            }
                        }
                    }
                };
                if let Some(p) = problem {
                    bad += 1;
                    if examples.len() < 5 {
                        examples.push(format!("{group}/{stream}: {p}"));
                    }
                }
            }
        }
    }
    (bad, examples)
}

fn metric(m: &BTreeMap<String, f64>, name: &str) -> u64 {
    m.get(name).copied().unwrap_or(0.0) as u64
}

/// Build the report and its verdict.
pub fn build_report(
    scenario: &Scenario,
    tier: &str,
    backend: &str,
    seed: u64,
    verdict: &Verdict,
    delivered: &Delivered,
    m: Measured,
) -> Report {
    let mut checks = Vec::new();
    let missing = verdict.missing_count();
    checks.push(Check {
        name: "no line missing".into(),
        ok: missing == 0,
        detail: format!("{missing} of {} lines missing", m.lines_written),
    });
    checks.push(Check {
        name: "no spurious line".into(),
        ok: verdict.spurious.is_empty(),
        detail: verdict
            .spurious
            .first()
            .map(|f| format!("{} e.g. {}/{}: {}", verdict.spurious.len(), f.group, f.stream, f.reason))
            .unwrap_or_else(|| "0".into()),
    });
    checks.push(Check {
        name: "no corrupted line".into(),
        ok: verdict.corrupted.is_empty(),
        detail: verdict
            .corrupted
            .first()
            .map(|f| format!("{} e.g. {}/{}: {}", verdict.corrupted.len(), f.group, f.stream, f.reason))
            .unwrap_or_else(|| "0".into()),
    });
    checks.push(Check {
        name: "duplicates within bound".into(),
        ok: verdict.duplicates <= scenario.expect.max_duplicates,
        detail: format!("{} duplicates (bound {})", verdict.duplicates, scenario.expect.max_duplicates),
    });
    let expected_layout = scenario.expected_layout();
    let layout_ok = verdict.layout == expected_layout;
    checks.push(Check {
        name: "group/stream layout".into(),
        ok: layout_ok,
        detail: if layout_ok {
            format!("{} groups as expected", expected_layout.len())
        } else {
            format!("got {:?}, want {:?}", verdict.layout, expected_layout)
        },
    });
    let (bad_shape, examples) = shape_mismatches(scenario, delivered, &m.hosts);
    checks.push(Check {
        name: "message shape".into(),
        ok: bad_shape == 0,
        detail: if bad_shape == 0 {
            "every event has exactly the 6 contract keys with the pod's values".into()
        } else {
            format!("{bad_shape} bad events, e.g. {}", examples.join("; "))
        },
    });
    checks.extend(m.checks);
    checks.push(Check {
        name: "spool drained".into(),
        ok: metric(&m.metrics, "shipper_spool_events") == 0,
        detail: format!(
            "{} events, {} bytes left",
            metric(&m.metrics, "shipper_spool_events"),
            metric(&m.metrics, "shipper_spool_bytes")
        ),
    });
    if m.starts == 1 {
        let mut drops = BTreeMap::new();
        for (k, v) in &m.metrics {
            if let Some(reason) =
                k.strip_prefix("shipper_events_dropped_total{reason=\"").and_then(|r| r.strip_suffix("\"}"))
                && *v > 0.0
            {
                drops.insert(reason.to_owned(), *v as u64);
            }
        }
        checks.push(Check {
            name: "explicit drops as expected".into(),
            ok: drops == scenario.expect.dropped,
            detail: format!("dropped {drops:?}, expected {:?}", scenario.expect.dropped),
        });
        // Every event the shipper counted as delivered must be in the backend, and every
        // distinct line there must have been confirmed at least once. A write that landed
        // but whose answer was lost (an ambiguous fault, or a connection cut while the
        // backend was writing) is stored twice but confirmed once: between the two bounds.
        let backend_total: u64 = verdict.streams.values().flat_map(|s| s.values()).map(|c| c.events).sum();
        let backend_distinct: u64 = verdict.sources.values().map(|c| c.delivered).sum();
        let shipper_delivered = metric(&m.metrics, "shipper_events_delivered_total");
        checks.push(Check {
            name: "metrics reconcile with the backend".into(),
            ok: backend_distinct <= shipper_delivered && shipper_delivered <= backend_total,
            detail: format!(
                "shipper says {shipper_delivered} events delivered; backend holds {backend_distinct} distinct, {backend_total} in all"
            ),
        });
    }
    let missing_ranges = verdict
        .missing
        .iter()
        .flat_map(|(src, ranges)| {
            ranges.iter().map(move |r| {
                if r.first == r.last {
                    format!("{}/{}: seq {}", src.pod, src.container, r.first)
                } else {
                    format!("{}/{}: seq {}-{}", src.pod, src.container, r.first, r.last)
                }
            })
        })
        .take(20)
        .collect();
    let delivered_distinct: u64 = verdict.sources.values().map(|c| c.delivered).sum();
    let drain_seconds = m.drained_at.map(|d| d.saturating_sub(m.quiet_since).as_secs_f64()).unwrap_or(-1.0);
    checks.push(Check {
        name: "drained in time".into(),
        ok: m.drained_at.is_some(),
        detail: format!(
            "{drain_seconds:.1}s after the last fault and line (limit {:?})",
            scenario.expect.drain_timeout.0
        ),
    });
    Report {
        scenario: scenario.name.clone(),
        why: scenario.why.trim().to_owned(),
        tier: tier.into(),
        backend: backend.into(),
        seed,
        passed: checks.iter().all(|c| c.ok),
        lines_written: m.lines_written,
        delivered_distinct,
        delivered_total: delivered_distinct + verdict.duplicates,
        missing,
        missing_ranges,
        spurious: verdict.spurious.len() as u64,
        corrupted: verdict.corrupted.len() as u64,
        duplicates: verdict.duplicates,
        drain_seconds,
        shipper_starts: m.starts,
        peak_rss_kib: m.peak_rss_kib,
        peak_spool_bytes: m.peak_spool_bytes,
        checks,
        faults: m.faults,
        samples: m.samples,
        gateway: m.gateway,
        metrics: m.metrics,
    }
}
