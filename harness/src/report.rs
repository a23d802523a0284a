//! The scenario report (contract, DESIGN §4): `report.json` (machine-readable verdict),
//! `timeline.svg` (lines written vs delivered over time, fault windows shaded) and a human
//! verdict table.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// One sample of the timeline.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Seconds since the start of the run.
    pub t: f64,
    /// Lines written by the workload so far.
    pub written: u64,
    /// Events accepted by the backend so far (from the gateway's journal).
    pub delivered: u64,
}

/// A fault window for the chart and the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultWindow {
    /// Kind, as in the scenario.
    pub kind: String,
    /// Start, seconds.
    pub start: f64,
    /// End, seconds (= start for instant faults).
    pub end: f64,
}

/// One line of the verdict table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Passed?
    pub ok: bool,
    /// The figures.
    pub detail: String,
}

/// Everything `report.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Why the scenario exists.
    pub why: String,
    /// `local`, `container`, `kind`.
    pub tier: String,
    /// Backend used.
    pub backend: String,
    /// Random seed.
    pub seed: u64,
    /// Overall verdict.
    pub passed: bool,
    /// Lines written by the workload.
    pub lines_written: u64,
    /// Distinct lines delivered.
    pub delivered_distinct: u64,
    /// Events delivered including duplicates.
    pub delivered_total: u64,
    /// Lines missing.
    pub missing: u64,
    /// Missing lines as ranges per stream (first 20).
    pub missing_ranges: Vec<String>,
    /// Events that match no written line.
    pub spurious: u64,
    /// Events whose payload failed verification.
    pub corrupted: u64,
    /// Duplicate events.
    pub duplicates: u64,
    /// Seconds from the end of the last fault (or last line) until nothing was missing.
    pub drain_seconds: f64,
    /// Shipper starts (1 + restarts).
    pub shipper_starts: u32,
    /// Peak RSS of the shipper seen while sampling, KiB.
    pub peak_rss_kib: u64,
    /// Peak `shipper_spool_bytes` seen.
    pub peak_spool_bytes: u64,
    /// The verdict table.
    pub checks: Vec<Check>,
    /// Faults.
    pub faults: Vec<FaultWindow>,
    /// Timeline.
    pub samples: Vec<Sample>,
    /// What the gateway saw and did, by outcome.
    pub gateway: serde_json::Value,
    /// Last scrape of the shipper's metrics (the first node's, in a `[fleet]`).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// `[expect.fleet]`: the ask rate over time, latency and each node's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<serde_json::Value>,
}

impl Report {
    /// The verdict table, for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(
            out,
            "scenario {} [{}/{}] seed {}: {verdict}",
            self.scenario, self.tier, self.backend, self.seed
        );
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  {mark} {:width$}  {}", c.name, c.detail);
        }
        if !self.missing_ranges.is_empty() {
            let _ = writeln!(out, "  missing lines (first {}):", self.missing_ranges.len());
            for r in &self.missing_ranges {
                let _ = writeln!(out, "    {r}");
            }
        }
        out
    }

    /// Write `report.json` and `timeline.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        self.timeline_svg(&dir.join("timeline.svg")).map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// Plot written vs delivered over time with fault windows shaded.
    pub fn timeline_svg(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let t_max = self.samples.last().map(|s| s.t).unwrap_or(1.0).max(1.0);
        let y_max =
            self.samples.iter().map(|s| s.written.max(s.delivered)).max().unwrap_or(1).max(1) as f64 * 1.05;
        let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{}: written vs delivered", self.scenario), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..t_max, 0f64..y_max)?;
        chart.configure_mesh().x_desc("seconds").y_desc("lines").draw()?;
        let shade = RGBColor(230, 120, 120).mix(0.25);
        for f in &self.faults {
            let end = if f.end > f.start { f.end } else { f.start + t_max / 200.0 };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(f.start, 0.0), (end, y_max)],
                shade.filled(),
            )))?;
        }
        chart
            .draw_series(LineSeries::new(
                self.samples.iter().map(|s| (s.t, s.written as f64)),
                BLUE.stroke_width(2),
            ))?
            .label("written")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                self.samples.iter().map(|s| (s.t, s.delivered as f64)),
                GREEN.stroke_width(2),
            ))?
            .label("delivered")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GREEN));
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
        root.present()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            scenario: "t".into(),
            why: "w".into(),
            tier: "local".into(),
            backend: "moto".into(),
            seed: 1,
            passed: false,
            lines_written: 10,
            delivered_distinct: 9,
            delivered_total: 9,
            missing: 1,
            missing_ranges: vec!["g/s: seq 4".into()],
            spurious: 0,
            corrupted: 0,
            duplicates: 0,
            drain_seconds: 1.5,
            shipper_starts: 1,
            peak_rss_kib: 0,
            peak_spool_bytes: 0,
            checks: vec![Check { name: "missing".into(), ok: false, detail: "1 of 10".into() }],
            faults: vec![FaultWindow { kind: "blackhole".into(), start: 1.0, end: 2.0 }],
            samples: vec![
                Sample { t: 0.0, written: 0, delivered: 0 },
                Sample { t: 1.0, written: 5, delivered: 2 },
                Sample { t: 3.0, written: 10, delivered: 9 },
            ],
            gateway: serde_json::json!({}),
            metrics: Default::default(),
            fleet: None,
        }
    }

    #[test]
    fn table_shows_verdict_and_missing_ranges() {
        let t = report().table();
        assert!(t.contains("FAIL"), "{t}");
        assert!(t.contains("g/s: seq 4"), "{t}");
    }

    #[test]
    fn writes_json_and_an_svg_chart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = report();
        r.write(dir.path()).expect("written");
        let back: Report =
            serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).expect("json"))
                .expect("parses");
        assert_eq!(back, r);
        let svg = std::fs::read_to_string(dir.path().join("timeline.svg")).expect("svg");
        assert!(
            svg.starts_with("<svg") && svg.contains("written") && svg.contains("delivered"),
            "{}",
            &svg[..200.min(svg.len())]
        );
    }
}
