//! The bench report: per-workload results, the table, the JSON files and the comparison
//! with the previous run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Catch-up after an outage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatchUp {
    /// Outage length, s.
    pub outage_seconds: f64,
    /// Lines written but not accepted when service came back.
    pub backlog_lines: u64,
    /// From service restored to the last backlog line accepted, s.
    pub drain_seconds: f64,
    /// `backlog_lines / drain_seconds`.
    pub lines_per_second: f64,
    /// Catch-up rate ÷ the workload's write rate (target ≥ 10).
    pub times_ingest_rate: f64,
}

/// What one workload measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// Workload name.
    pub name: String,
    /// Files written.
    pub files: usize,
    /// Lines written.
    pub lines: u64,
    /// Bytes written to the log files (CRI framing included).
    pub input_bytes: u64,
    /// Events the gateway had to accept.
    pub expected_events: u64,
    /// Events the gateway accepted.
    pub accepted_events: u64,
    /// Accepted beyond the expected (resent after an outage).
    pub duplicate_events: u64,
    /// First line written → last event accepted, s.
    pub seconds: f64,
    /// First line written → last line written, s: when close to `seconds`, the writer (not
    /// the shipper) bounded the rate.
    #[serde(default)]
    pub write_seconds: f64,
    /// Lines per second over `seconds`.
    pub lines_per_second: f64,
    /// Input MiB per second over `seconds`.
    pub mib_per_second: f64,
    /// Shipper user + system CPU from first write to completion, s.
    pub cpu_seconds: f64,
    /// CPU µs per line.
    pub cpu_us_per_line: f64,
    /// CPU s per GiB of input.
    pub cpu_seconds_per_gib: f64,
    /// Peak RSS of the shipper process (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
    /// Bytes the shipper wrote to storage (spool, state, its log) during the run.
    pub storage_write_bytes: u64,
    /// `storage_write_bytes / input_bytes`.
    pub write_amplification: f64,
    /// Lines with a latency measurement (see `latency`).
    pub latency_samples: u64,
    /// Median latency line written → accepted, ms (`None`: no sample).
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub latency_p99_ms: Option<f64>,
    /// After an outage only.
    pub catch_up: Option<CatchUp>,
    /// CPU while no new line was written, % of one core.
    pub idle_cpu_percent: f64,
    /// Length of the idle window, s.
    pub idle_seconds: f64,
}

impl WorkloadResult {
    /// Inconsistencies that make the result unusable (empty = consistent).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.accepted_events < self.expected_events {
            problems.push(format!(
                "{}: only {} of {} events accepted",
                self.name, self.accepted_events, self.expected_events
            ));
        }
        if self.accepted_events != self.expected_events + self.duplicate_events {
            problems.push(format!("{}: accepted != expected + duplicates", self.name));
        }
        let numbers = [
            ("seconds", self.seconds),
            ("write_seconds", self.write_seconds),
            ("lines_per_second", self.lines_per_second),
            ("mib_per_second", self.mib_per_second),
            ("cpu_seconds", self.cpu_seconds),
            ("cpu_us_per_line", self.cpu_us_per_line),
            ("cpu_seconds_per_gib", self.cpu_seconds_per_gib),
            ("peak_rss_mib", self.peak_rss_mib),
            ("write_amplification", self.write_amplification),
            ("idle_cpu_percent", self.idle_cpu_percent),
        ];
        for (name, value) in numbers {
            if !value.is_finite() || value < 0.0 {
                problems.push(format!("{}: {name} is {value}", self.name));
            }
        }
        for (name, value) in
            [("latency_p50_ms", self.latency_p50_ms), ("latency_p99_ms", self.latency_p99_ms)]
        {
            if value.is_some_and(|v| !v.is_finite()) {
                problems.push(format!("{}: {name} is not finite", self.name));
            }
        }
        if self.write_seconds > self.seconds + 1e-3 {
            problems.push(format!("{}: the last line was accepted before it was written", self.name));
        }
        if let (Some(p50), Some(p99)) = (self.latency_p50_ms, self.latency_p99_ms)
            && p50 > p99
        {
            problems.push(format!("{}: p50 {p50} > p99 {p99}", self.name));
        }
        problems
    }
}

/// A whole bench run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Unix seconds when the run started.
    pub started_unix: u64,
    /// The shipper binary measured.
    pub shipper: String,
    /// Scaled-down sizes.
    pub quick: bool,
    /// `SHIPPER_FLUSH_INTERVAL` the shipper ran with, ms.
    pub flush_interval_ms: u64,
    /// Per workload, in run order.
    pub workloads: Vec<WorkloadResult>,
    /// Change against the previous run, % per metric, per workload both runs had.
    #[serde(default)]
    pub delta_percent: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Metrics compared between runs (name, value).
fn comparable(w: &WorkloadResult) -> Vec<(&'static str, Option<f64>)> {
    vec![
        ("lines_per_second", Some(w.lines_per_second)),
        ("mib_per_second", Some(w.mib_per_second)),
        ("cpu_us_per_line", Some(w.cpu_us_per_line)),
        ("cpu_seconds_per_gib", Some(w.cpu_seconds_per_gib)),
        ("peak_rss_mib", Some(w.peak_rss_mib)),
        ("write_amplification", Some(w.write_amplification)),
        ("latency_p50_ms", w.latency_p50_ms),
        ("latency_p99_ms", w.latency_p99_ms),
        ("catch_up_lines_per_second", w.catch_up.as_ref().map(|c| c.lines_per_second)),
        ("idle_cpu_percent", Some(w.idle_cpu_percent)),
    ]
}

impl BenchReport {
    /// Fill `delta_percent` from `previous` (same workload name and size, so a `--quick` or
    /// `--lines` run is never compared with a full one; metrics both have, with a non-zero
    /// previous value).
    pub fn compare_with(&mut self, previous: &BenchReport) {
        self.delta_percent.clear();
        for now in &self.workloads {
            let Some(before) = previous.workloads.iter().find(|w| w.name == now.name && w.lines == now.lines)
            else {
                continue;
            };
            let deltas: BTreeMap<String, f64> = comparable(now)
                .into_iter()
                .zip(comparable(before))
                .filter_map(|((name, now), (_, before))| {
                    let (now, before) = (now?, before?);
                    (before != 0.0).then(|| (name.to_owned(), (now - before) / before * 100.0))
                })
                .collect();
            self.delta_percent.insert(now.name.clone(), deltas);
        }
    }

    /// Every inconsistency of every workload.
    pub fn problems(&self) -> Vec<String> {
        self.workloads.iter().flat_map(WorkloadResult::problems).collect()
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>7} {:>9} {:>7} {:>7} {:>7} {:>8} {:>7} {:>6} {:>8} {:>8} {:>16} {:>6}",
            "workload",
            "lines",
            "write s",
            "lines/s",
            "MiB/s",
            "CPU s",
            "µs/line",
            "CPUs/GiB",
            "RSS MiB",
            "wr amp",
            "p50 ms",
            "p99 ms",
            "catch-up l/s (x)",
            "idle %"
        );
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        for w in &self.workloads {
            let catch_up = w.catch_up.as_ref().map_or_else(
                || "-".to_owned(),
                |c| format!("{:.0} ({:.1}x)", c.lines_per_second, c.times_ingest_rate),
            );
            let _ = writeln!(
                out,
                "{:<12} {:>9} {:>7.2} {:>9.0} {:>7.1} {:>7.2} {:>7.2} {:>8.1} {:>7.1} {:>6.2} {:>8} {:>8} {:>16} {:>6.2}",
                w.name,
                w.lines,
                w.write_seconds,
                w.lines_per_second,
                w.mib_per_second,
                w.cpu_seconds,
                w.cpu_us_per_line,
                w.cpu_seconds_per_gib,
                w.peak_rss_mib,
                w.write_amplification,
                opt(w.latency_p50_ms),
                opt(w.latency_p99_ms),
                catch_up,
                w.idle_cpu_percent
            );
        }
        if !self.delta_percent.is_empty() {
            let _ = writeln!(out, "\nchange vs previous run (%):");
            for (name, deltas) in &self.delta_percent {
                let parts: Vec<String> =
                    deltas.iter().map(|(metric, d)| format!("{metric} {d:+.1}")).collect();
                let _ = writeln!(out, "  {name:<12} {}", parts.join(", "));
            }
        }
        out
    }

    /// Compare with `dir/latest.json` if there is one, then write `dir/<started>.json` and
    /// `dir/latest.json`. Returns the timestamped path.
    pub fn write(&mut self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let latest = dir.join("latest.json");
        if let Some(previous) =
            std::fs::read(&latest).ok().and_then(|bytes| serde_json::from_slice::<BenchReport>(&bytes).ok())
        {
            self.compare_with(&previous);
        }
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let path = dir.join(format!("{}.json", self.started_unix));
        std::fs::write(&path, &json)?;
        std::fs::write(&latest, &json)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, lines_per_second: f64) -> WorkloadResult {
        WorkloadResult {
            name: name.into(),
            files: 1,
            lines: 100,
            input_bytes: 24_000,
            expected_events: 100,
            accepted_events: 100,
            duplicate_events: 0,
            seconds: 1.0,
            write_seconds: 0.5,
            lines_per_second,
            mib_per_second: 0.02,
            cpu_seconds: 0.01,
            cpu_us_per_line: 100.0,
            cpu_seconds_per_gib: 440.0,
            peak_rss_mib: 20.0,
            storage_write_bytes: 48_000,
            write_amplification: 2.0,
            latency_samples: 1,
            latency_p50_ms: Some(10.0),
            latency_p99_ms: Some(20.0),
            catch_up: None,
            idle_cpu_percent: 0.5,
            idle_seconds: 5.0,
        }
    }

    fn report(workloads: Vec<WorkloadResult>) -> BenchReport {
        BenchReport {
            started_unix: 1,
            shipper: "shipper".into(),
            quick: true,
            flush_interval_ms: 1000,
            workloads,
            delta_percent: BTreeMap::new(),
        }
    }

    #[test]
    fn deltas_are_per_workload_and_metric() {
        let mut now = report(vec![result("a", 150.0), result("new", 1.0), result("resized", 1.0)]);
        let mut before_a = result("a", 100.0);
        before_a.latency_p99_ms = None;
        let mut smaller = result("resized", 2.0);
        smaller.lines = 10;
        now.compare_with(&report(vec![before_a, smaller]));
        let a = &now.delta_percent["a"];
        assert_eq!(a["lines_per_second"], 50.0);
        assert_eq!(a["peak_rss_mib"], 0.0);
        assert!(!a.contains_key("latency_p99_ms"), "no previous value, no delta");
        assert!(!now.delta_percent.contains_key("new"));
        assert!(!now.delta_percent.contains_key("resized"), "different sizes are not compared");
    }

    #[test]
    fn missing_events_and_nan_are_problems() {
        assert!(result("ok", 1.0).problems().is_empty());
        let mut short = result("short", f64::NAN);
        short.accepted_events = 90;
        let problems = short.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn writing_twice_compares_with_the_first_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        report(vec![result("a", 100.0)]).write(dir.path()).expect("first write");
        let mut second = report(vec![result("a", 200.0)]);
        second.started_unix = 2;
        second.write(dir.path()).expect("second write");
        assert_eq!(second.delta_percent["a"]["lines_per_second"], 100.0);
        let latest = std::fs::read(dir.path().join("latest.json")).expect("latest");
        assert_eq!(latest, serde_json::to_vec_pretty(&second).expect("serialises"));
        assert!(dir.path().join("1.json").exists() && dir.path().join("2.json").exists());
        assert!(second.table().contains("lines_per_second +100.0"));
    }
}
