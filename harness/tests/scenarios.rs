//! Every scenario file, run on the local tier against the real shipper binary and moto.
//! A failing scenario prints its verdict table; reports land in `target/harness/<name>/`.

use std::path::{Path, PathBuf};

use harness::runner::{BackendChoice, RunOptions, run_scenario};
use harness::scenario::Scenario;

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.toml"))
}

async fn run(name: &str, backend: BackendChoice) {
    run_seeded(name, backend, 1).await;
}

async fn run_seeded(name: &str, backend: BackendChoice, seed: u64) {
    let scenario = Scenario::load(&scenario_path(name)).unwrap_or_else(|e| panic!("{e}"));
    // Runs on another backend or seed keep their own report directory.
    let out_dir = match (&backend, seed) {
        (BackendChoice::Moto, 1) => None,
        (BackendChoice::Moto, _) => Some(harness::runner::report_dir(&format!("{name}@seed{seed}"))),
        _ => Some(harness::runner::report_dir(&format!("{name}@localstack"))),
    };
    let options = RunOptions { backend, seed, progress: false, out_dir, cluster: Default::default() };
    let report = run_scenario(&scenario, &options)
        .await
        .unwrap_or_else(|e| panic!("scenario {name} could not run: {e}"));
    println!("{}", report.table());
    assert!(report.passed, "scenario {name} failed:\n{}", report.table());
}

macro_rules! scenarios {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                run($file, BackendChoice::Moto).await;
            }
        )*

        /// A scenario file without a test here would never run in CI.
        #[test]
        fn every_scenario_file_has_a_test() {
            // shipper-core runs in tests/shipper_core.rs, with its layout snapshot.
            let listed: std::collections::BTreeSet<&str> = [$($file,)* "shipper-core"].into_iter().collect();
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
            for entry in std::fs::read_dir(&dir).expect("scenarios/") {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
                    assert!(listed.contains(stem.as_str()), "scenarios/{stem}.toml has no test in harness/tests/scenarios.rs");
                }
            }
        }
    };
}

scenarios! {
    steady_state => "steady-state",
    short_blackhole => "short-blackhole",
    long_outage_rotation => "long-outage-rotation",
    flapping => "flapping",
    throttling_storm => "throttling-storm",
    unavailable_burst => "unavailable-burst",
    ambiguous_success => "ambiguous-success",
    shipper_kill_random => "shipper-kill-random",
    sigterm_during_outage => "sigterm-during-outage",
    short_lived_pod => "short-lived-pod",
    pod_relabel => "pod-relabel",
    api_unavailable_at_start => "api-unavailable-at-start",
    workload_groups_no_api => "workload-groups-no-api",
    big_and_partial_lines => "big-and-partial-lines",
    container_restart => "container-restart",
    many_pods => "many-pods",
    kill_matrix => "kill-matrix",
    head_of_line => "head-of-line",
    spool_cap_backpressure => "spool-cap-backpressure",
    rejected_events => "rejected-events",
    pod_churn => "pod-churn",
    stuck_stream_spool_share => "stuck-stream-spool-share",
    restart_during_rotation => "restart-during-rotation",
    network_disconnect => "network-disconnect",
    backend_pause => "backend-pause",
    node_restart => "node-restart",
    workload_groups => "workload-groups",
    exclusions => "exclusions",
    stack_traces => "stack-traces",
    json_logs => "json-logs",
    group_settings => "group-settings",
    retention_denied => "retention-denied",
    no_create => "no-create",
    assume_role => "assume-role",
    hostile_labels => "hostile-labels",
    idle_connections => "idle-connections",
    shared_quota => "shared-quota",
    fleet_quota => "fleet-quota",
}

/// The kill matrix again with other seeds: each crash point fires at another hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_matrix_other_seeds() {
    for seed in [2, 3] {
        run_seeded("kill-matrix", BackendChoice::Moto, seed).await;
    }
}

/// One outage scenario also runs on LocalStack in host mode (the second backend).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_blackhole_on_localstack() {
    run("short-blackhole", BackendChoice::LocalStack).await;
}
