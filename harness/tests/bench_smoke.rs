//! `harness bench --quick` on one small workload with the debug shipper: the report must be
//! complete and internally consistent. Timings are not asserted (they depend on the machine).

use harness::bench::report::BenchReport;
use harness::bench::{self, BenchOptions};
use harness::shipper_proc::shipper_binary;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_bench_reports_every_metric_consistently() {
    let out = tempfile::tempdir().expect("temp dir");
    let options = BenchOptions {
        workloads: vec!["peer-4x250k".into()],
        quick: true,
        lines: Some(4_000),
        shipper: shipper_binary().expect("debug shipper builds"),
        out_dir: out.path().to_path_buf(),
        progress: false,
    };
    let (report, path) = bench::run(&options).await.expect("bench runs");

    assert_eq!(report.problems(), Vec::<String>::new());
    let [w] = report.workloads.as_slice() else { panic!("one workload, got {}", report.workloads.len()) };
    assert_eq!(w.name, "peer-4x250k");
    assert_eq!(w.files, 4);
    assert_eq!(w.lines, 4_000, "4 files x 1,000 lines");
    assert_eq!(w.expected_events, 4_000);
    assert_eq!(w.accepted_events, 4_000, "every line accepted once by the sink");
    assert!(w.input_bytes >= 4_000 * 200, "~240 B records: {} bytes", w.input_bytes);
    assert!(w.cpu_seconds > 0.0, "the shipper used CPU to ship 4,000 lines");
    assert!(w.peak_rss_mib > 1.0);
    assert!(w.write_seconds <= w.seconds, "the last line is accepted after it is written");
    assert!((w.lines_per_second * w.seconds - w.lines as f64).abs() < 1.0, "rate = lines / seconds");
    let cpu_us = w.cpu_seconds * 1e6 / w.lines as f64;
    assert!((w.cpu_us_per_line - cpu_us).abs() < 1e-6);
    assert!(w.latency_samples > 0, "every write block is a latency sample");
    let (p50, p99) = (w.latency_p50_ms.expect("p50"), w.latency_p99_ms.expect("p99"));
    assert!(p50 <= p99);
    assert!(w.catch_up.is_none(), "no outage in this workload");

    // Both files hold exactly this report (compared as text: the JSON float parser may be off
    // by one ulp, the writer is exact) and parse back.
    let expected = serde_json::to_vec_pretty(&report).expect("serialises");
    let stored = std::fs::read(&path).expect("timestamped report");
    assert_eq!(stored, expected);
    assert_eq!(std::fs::read(out.path().join("latest.json")).expect("latest.json"), expected);
    let parsed: BenchReport = serde_json::from_slice(&stored).expect("JSON");
    assert_eq!(parsed.workloads[0].accepted_events, 4_000);
    assert!(report.table().contains("peer-4x250k"));
}
