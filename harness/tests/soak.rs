//! Long soaks, behind `--ignored` (they take minutes to most of an hour; weekly in
//! `.github/workflows/soak.yml`):
//! `cargo test --workspace --test soak -- --ignored`. Scenario files live in
//! `scenarios/soak/`; reports land in `target/harness/<name>/` like every scenario's.

use std::path::Path;

use harness::runner::{BackendChoice, RunOptions, run_scenario};
use harness::scenario::Scenario;

async fn soak(file: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/soak").join(file);
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let options = RunOptions {
        backend: BackendChoice::Moto,
        seed: 1,
        progress: true,
        out_dir: None,
        cluster: Default::default(),
    };
    let report = run_scenario(&scenario, &options).await.unwrap_or_else(|e| panic!("{file}: {e}"));
    println!("{}", report.table());
    assert!(report.passed, "soak {file} failed:\n{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: 30-minute outage, about 50 minutes in all; runs weekly in .github/workflows/soak.yml"]
async fn long_outage_30m() {
    soak("long-outage-30m.toml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: 1,000 pods churning, about 4 minutes; runs weekly in .github/workflows/soak.yml"]
async fn pod_churn_1000() {
    soak("pod-churn-1000.toml").await;
}

/// The soak files parse and are valid, so `--ignored` runs never fail on a typo.
#[test]
fn soak_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/soak");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/soak/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert_eq!(n, 2, "every soak file needs a test above");
}
