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
    /// How a `[fleet]` shared the account's quota (`[expect.fleet]`).
    pub fleet: Option<crate::tiers::local::FleetFigures>,
}

/// The six keys of the shipper's envelope (DESIGN §3 contract).
const ENVELOPE_KEYS: [&str; 6] =
    ["container_image", "container_name", "host", "log", "namespace", "pod_name"];

/// What every message must look like, from the scenario alone: the envelope's keys
/// (`expect.message`), the values of the pod the line came from, and the expected fields.
struct MessageRules<'a> {
    scenario: &'a Scenario,
    pods: Vec<crate::scenario::PodSpec>,
    hosts: &'a std::collections::BTreeSet<String>,
}

impl<'a> MessageRules<'a> {
    fn new(scenario: &'a Scenario, hosts: &'a std::collections::BTreeSet<String>) -> Self {
        MessageRules { scenario, pods: scenario.expanded_pods(), hosts }
    }

    /// Why `message` does not have the expected shape, if it does not.
    fn problem(&self, message: &str) -> Option<String> {
        use crate::scenario::MessageFormat;
        let expect = &self.scenario.expect.message;
        if expect.format == MessageFormat::Raw {
            // The line's text alone: the audit attributes and compares it.
            return None;
        }
        let m = match serde_json::from_str::<BTreeMap<String, serde_json::Value>>(message) {
            Err(err) => return Some(format!("not a JSON object: {err}")),
            Ok(m) => m,
        };
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        let mut want: Vec<&str> =
            ENVELOPE_KEYS.into_iter().chain(expect.extra_keys.iter().map(String::as_str)).collect();
        want.sort_unstable();
        if keys != want {
            return Some(format!("keys {keys:?}, want exactly {want:?}"));
        }
        if let Some(k) = ENVELOPE_KEYS.iter().find(|k| **k != "log" && !m[**k].is_string()) {
            return Some(format!("{k} is {}, not a string", m[*k]));
        }
        let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
        let Some(pod) = self.pods.iter().find(|p| p.name == s("pod_name")) else {
            return Some(format!("unknown pod_name {:?}", s("pod_name")));
        };
        let container = pod.containers.iter().find(|c| c.name == s("container_name"));
        let image = container.map(|c| c.image.clone());
        if s("namespace") != pod.namespace {
            return Some(format!("namespace {:?}, want {:?}", s("namespace"), pod.namespace));
        }
        if image.as_deref() != Some(s("container_image").as_str()) {
            return Some(format!("container_image {:?}, want {image:?}", s("container_image")));
        }
        if !self.hosts.contains(&s("host")) {
            return Some(format!("host {:?}, want one of {:?}", s("host"), self.hosts));
        }
        // `envelope_json` turns a JSON line into an object; everything else stays text.
        let json_line = container.is_some_and(|c| c.encoding == "json");
        let want_object = expect.format == MessageFormat::EnvelopeJson && json_line;
        match (&m["log"], want_object) {
            (serde_json::Value::Object(_), true) | (serde_json::Value::String(_), false) => {}
            (other, true) => return Some(format!("log is {}, want the line's JSON object", kind_of(other))),
            (other, false) => return Some(format!("log is {}, want a string", kind_of(other))),
        }
        let per_container = container.map(|c| &c.message_fields).into_iter().flatten();
        for (path, want) in expect.fields.iter().chain(per_container) {
            match field(&m, path) {
                Some(serde_json::Value::String(got)) if got == want => {}
                Some(serde_json::Value::String(got)) => {
                    return Some(format!("{path} = {got:?}, want {want:?}"));
                }
                Some(other) => {
                    return Some(format!("{path} is {}, want the string {want:?}", kind_of(other)));
                }
                None => return Some(format!("{path} missing, want {want:?}")),
            }
        }
        None
    }
}

/// A message field by path: `key`, or `key.sub` for key `sub` of the object `key` (split at
/// the first dot, so label keys may hold dots).
fn field<'m>(m: &'m BTreeMap<String, serde_json::Value>, path: &str) -> Option<&'m serde_json::Value> {
    match m.get(path) {
        Some(v) => Some(v),
        None => {
            let (top, sub) = path.split_once('.')?;
            m.get(top)?.as_object()?.get(sub)
        }
    }
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Messages that do not have the expected shape: how many, and a few examples.
fn shape_mismatches(
    scenario: &Scenario,
    delivered: &Delivered,
    hosts: &std::collections::BTreeSet<String>,
) -> (u64, Vec<String>) {
    let rules = MessageRules::new(scenario, hosts);
    let mut bad = 0;
    let mut examples = Vec::new();
    for (group, streams) in &delivered.groups {
        for (stream, events) in streams {
            for e in events {
                if let Some(p) = rules.problem(&e.message) {
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

/// `expect.metrics`: each series at its exact value in the last scrape, which covers the
/// whole run only when the shipper started once.
fn metrics_check(scenario: &Scenario, metrics: &BTreeMap<String, f64>, starts: u32) -> Option<Check> {
    let expected = &scenario.expect.metrics;
    if expected.is_empty() {
        return None;
    }
    if starts != 1 {
        return Some(Check {
            name: "metrics as expected".into(),
            ok: false,
            detail: format!("the shipper started {starts} times: its counters do not cover the run"),
        });
    }
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|(series, want)| {
            let got = metrics.get(series).copied();
            (got.unwrap_or(0.0) != *want as f64).then(|| match got {
                Some(got) => format!("{series} = {got}, want {want}"),
                None => format!("{series} absent, want {want}"),
            })
        })
        .collect();
    Some(Check {
        name: "metrics as expected".into(),
        ok: wrong.is_empty(),
        detail: if wrong.is_empty() {
            format!("{} series at their expected values", expected.len())
        } else {
            wrong.join("; ")
        },
    })
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
    let format = scenario.expect.message.format;
    checks.push(Check {
        name: "message shape".into(),
        ok: bad_shape == 0,
        detail: if bad_shape == 0 {
            match format {
                crate::scenario::MessageFormat::Raw => "raw messages: the line's text alone".into(),
                _ => format!(
                    "every event has exactly the {} expected keys with the pod's values and expected fields",
                    6 + scenario.expect.message.extra_keys.len()
                ),
            }
        } else {
            format!("{bad_shape} bad events, e.g. {}", examples.join("; "))
        },
    });
    let pods = scenario.expanded_pods();
    let containers = || pods.iter().flat_map(|p| &p.containers);
    if containers().any(|c| c.excluded_by.is_some()) || !verdict.leaked.is_empty() {
        let excluded = containers().filter(|c| c.excluded_by.is_some()).count();
        checks.push(Check {
            name: "nothing of excluded containers".into(),
            ok: verdict.leaked.is_empty(),
            detail: verdict
                .leaked
                .first()
                .map(|f| {
                    format!(
                        "{} lines leaked, e.g. {}/{}: {:?}",
                        verdict.leaked.len(),
                        f.group,
                        f.stream,
                        f.key
                    )
                })
                .unwrap_or_else(|| format!("none of {excluded} excluded containers' lines delivered")),
        });
    }
    if containers().any(|c| c.traces.is_some()) || !verdict.split_traces.is_empty() {
        checks.push(Check {
            name: "every trace one event".into(),
            ok: verdict.split_traces.is_empty(),
            detail: verdict
                .split_traces
                .first()
                .map(|f| {
                    format!(
                        "{} split_traces, e.g. {}/{} {:?}: {}",
                        verdict.split_traces.len(),
                        f.group,
                        f.stream,
                        f.key.as_ref().map(|k| k.seq),
                        f.reason
                    )
                })
                .unwrap_or_else(|| "0 split_traces".into()),
        });
    }
    checks.extend(metrics_check(scenario, &m.metrics, m.starts));
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
        fleet: m.fleet.map(|f| serde_json::to_value(f).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const JSON_LOGS: &str = r#"
name = "t"
why = "w"
[[pods]]
namespace = "payments"
name = "api-0"
labels = { team = "payments" }
containers = [
  { name = "api", image = "api:1", lines = 1, encoding = "json", message_fields = { "log.level" = "info" } },
  { name = "proxy", image = "envoy:1", lines = 1 },
]
[expect]
groups = { g = ["api-0_api"] }
[expect.message]
format = "envelope_json"
extra_keys = ["labels", "workload"]
fields = { "labels.team" = "payments", "workload" = "api" }
"#;

    fn message(container: &str, log: serde_json::Value) -> serde_json::Value {
        let image = if container == "api" { "api:1" } else { "envoy:1" };
        json!({
            "log": log, "namespace": "payments", "pod_name": "api-0", "container_name": container,
            "container_image": image, "host": "node-a", "workload": "api", "labels": { "team": "payments" },
        })
    }

    fn problem(scenario: &str, message: &serde_json::Value) -> Option<String> {
        let scenario = Scenario::parse(scenario).expect("valid");
        let hosts = std::collections::BTreeSet::from(["node-a".to_owned()]);
        MessageRules::new(&scenario, &hosts).problem(&message.to_string())
    }

    #[test]
    fn json_lines_as_objects_with_the_expected_fields_pass() {
        let line = json!({ "level": "info", "logger": "api", "msg": "run=r ...", "seq": 3 });
        assert_eq!(problem(JSON_LOGS, &message("api", line)), None);
        // A text container of the same pod keeps a string `log` and needs no `log.level`.
        assert_eq!(problem(JSON_LOGS, &message("proxy", json!("run=r pod=api-0 ..."))), None);
    }

    #[test]
    fn missing_or_wrong_fields_and_shapes_fail() {
        let line = || json!({ "level": "info", "logger": "api", "msg": "run=r", "seq": 3 });
        let fails = |m: serde_json::Value, needle: &str| {
            let p = problem(JSON_LOGS, &m).unwrap_or_else(|| panic!("accepted: {m}"));
            assert!(p.contains(needle), "{p}");
        };
        // The JSON line delivered as an escaped string.
        fails(message("api", json!(line().to_string())), "log is a string, want the line's JSON object");
        // A text line turned into an object.
        fails(message("proxy", json!({ "msg": "x" })), "log is an object, want a string");
        let mut m = message("api", line());
        m["log"].as_object_mut().unwrap().remove("level");
        fails(m, "log.level missing");
        let mut m = message("api", line());
        m["log"]["level"] = json!(30);
        fails(m, "log.level is a number");
        let mut m = message("api", line());
        m["labels"]["team"] = json!("checkout");
        fails(m, "labels.team = \"checkout\", want \"payments\"");
        let mut m = message("api", line());
        m["workload"] = json!("api-6b7f9c5d8");
        fails(m, "workload = \"api-6b7f9c5d8\"");
        let mut m = message("api", line());
        m.as_object_mut().unwrap().remove("workload");
        fails(m, "want exactly");
        let mut m = message("api", line());
        m["node"] = json!("node-a");
        fails(m, "want exactly");
    }

    #[test]
    fn the_default_envelope_still_wants_exactly_six_keys_and_a_string_log() {
        let plain = JSON_LOGS
            .split("[expect.message]")
            .next()
            .expect("head")
            .replace(", message_fields = { \"log.level\" = \"info\" }", "");
        let six = |log: serde_json::Value| {
            json!({
                "log": log, "namespace": "payments", "pod_name": "api-0", "container_name": "api",
                "container_image": "api:1", "host": "node-a",
            })
        };
        assert_eq!(problem(&plain, &six(json!("{\"level\":\"info\"}"))), None);
        let p = problem(&plain, &six(json!({ "level": "info" }))).expect("an object is not the contract");
        assert!(p.contains("want a string"), "{p}");
        let p = problem(&plain, &message("api", json!("x"))).expect("extra keys");
        assert!(p.contains("want exactly"), "{p}");
        // Raw: nothing to check here (the audit compares the text).
        let raw = format!("{plain}\n[expect.message]\nformat = \"raw\"\n");
        assert_eq!(problem(&raw, &json!("anything")), None);
    }

    #[test]
    fn field_paths_split_at_the_first_dot() {
        let m: BTreeMap<String, serde_json::Value> = serde_json::from_value(json!({
            "labels": { "app.kubernetes.io/name": "api" }, "workload": "api",
        }))
        .expect("map");
        assert_eq!(field(&m, "labels.app.kubernetes.io/name"), Some(&json!("api")));
        assert_eq!(field(&m, "workload"), Some(&json!("api")));
        assert_eq!(field(&m, "labels.team"), None);
    }

    #[test]
    fn metrics_are_checked_exactly_on_a_single_start() {
        let text = format!(
            "{}\n[expect.metrics]\n'shipper_lines_excluded_total{{rule=\"x\"}}' = 0\n'shipper_lines_read_total' = 2\n",
            JSON_LOGS.split("[expect.message]").next().expect("head")
        );
        let s = Scenario::parse(&text).expect("valid");
        let scrape = BTreeMap::from([("shipper_lines_read_total".to_owned(), 2.0)]);
        let ok = metrics_check(&s, &scrape, 1).expect("a check");
        assert!(ok.ok, "{}", ok.detail);
        let off = BTreeMap::from([("shipper_lines_read_total".to_owned(), 3.0)]);
        let bad = metrics_check(&s, &off, 1).expect("a check");
        assert!(!bad.ok && bad.detail.contains("= 3, want 2"), "{}", bad.detail);
        let restarted = metrics_check(&s, &scrape, 2).expect("a check");
        assert!(!restarted.ok && restarted.detail.contains("started 2 times"), "{}", restarted.detail);
        assert!(metrics_check(&Scenario::parse(JSON_LOGS).expect("valid"), &scrape, 1).is_none());
    }
}
