//! The shipper's end-to-end test (the real binary, moto server, the stand-in API and a
//! simulated node): naming contract, message shape, partial lines, rotation, a restart, and
//! every line exactly once. The layout is pinned by an insta snapshot reviewed by hand.

use std::path::Path;

use harness::runner::{BackendChoice, RunOptions, run_scenario};
use harness::scenario::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_lands_once_in_the_right_group() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/shipper-core.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let options = RunOptions {
        backend: BackendChoice::Moto,
        seed: 1,
        progress: false,
        out_dir: None,
        cluster: Default::default(),
    };
    let report = run_scenario(&scenario, &options).await.unwrap_or_else(|e| panic!("could not run: {e}"));
    println!("{}", report.table());
    assert!(report.passed, "{}", report.table());
    assert_eq!(report.missing, 0);
    assert_eq!(report.duplicates, 0, "a graceful restart must not resend anything");
    assert_eq!(report.delivered_distinct, scenario.total_lines());
    assert_eq!(report.shipper_starts, 2, "the scenario restarts the shipper once");

    // The layout as delivered (not as expected by the scenario): pinned by a reviewed snapshot.
    let layout =
        report.checks.iter().find(|c| c.name == "group/stream layout").map(|c| c.ok).unwrap_or(false);
    assert!(layout);
    let delivered_layout: std::collections::BTreeMap<String, Vec<String>> = report
        .gateway
        .get("accepted")
        .and_then(|a| a.as_object())
        .map(|groups| {
            groups
                .iter()
                .map(|(g, streams)| {
                    (g.clone(), streams.as_object().map(|s| s.keys().cloned().collect()).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    insta::assert_yaml_snapshot!("shipper_core_layout", delivered_layout);
}
