//! The kind tier (feature `e2e`), where kind's node image can be pulled (GitHub Actions,
//! laptops): scenario files run on a kind cluster through the same runner, gateway, audit
//! and report as the local and container tiers (`ClusterChoice::Kind`, `tiers::kind`). The
//! shipper runs as the DaemonSet of `deploy/overlays/kind-e2e`, each scenario pod is a real
//! pod running the writer image (`harness write`), LocalStack or moto runs on the `kind`
//! network through testcontainers.
//!
//! Needs `kind`, `kubectl`, Docker and the images of `harness/images/build.sh` (shipper and
//! writer included). Where any is missing the tests fail and say so; `.ci/run` does not run
//! this file on machines without a registry. Reports land in `target/harness/<name>@kind/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::runner::{BackendChoice, RunError, RunOptions, report_dir, run_scenario};
use harness::scenario::Scenario;
use harness::tiers::ClusterChoice;
use harness::tiers::docker::{Images, api_shim};
use harness::tiers::kind::{self, KindCluster};

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.toml"))
}

/// One cluster, one scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn options(name: &str, backend: BackendChoice) -> RunOptions {
    RunOptions {
        backend,
        seed: 1,
        progress: true,
        out_dir: Some(report_dir(&format!("{}@kind", name.replace('/', "-")))),
        cluster: ClusterChoice::Kind,
    }
}

async fn run(test: &str, name: &str, backend: BackendChoice) {
    let _serial = SERIAL.lock().await;
    if let Err(e) = kind::check_tools() {
        panic!("the kind tier needs `kind` and `kubectl` (and a registry for kind's node image): {e}");
    }
    if let Err(e) = Images::locate() {
        panic!("the kind tier cannot run: {e}");
    }
    // testcontainers speaks Docker API 1.53; on an older daemon this test runs again in a
    // child process whose DOCKER_HOST is the harness's API shim.
    if api_shim::rerun_test_through_shim(test).await {
        return;
    }
    let scenario = Scenario::load(&scenario_path(name)).unwrap_or_else(|e| panic!("{e}"));
    let report = run_scenario(&scenario, &options(name, backend))
        .await
        .unwrap_or_else(|e| panic!("scenario {name} could not run on the kind tier: {e}"));
    println!("{}", report.table());
    assert!(report.passed, "scenario {name} failed on the kind tier:\n{}", report.table());
}

#[test]
fn daemonset_rolls_out_on_kind() {
    // No runtime here, so a blocking lock: the scenario tests share the cluster.
    let _serial = SERIAL.blocking_lock();
    if let Err(e) = kind::check_tools() {
        panic!("the kind tier needs `kind` and `kubectl` (and a registry for kind's node image): {e}");
    }
    let images = Images::locate().unwrap_or_else(|e| panic!("{e}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = tempfile::tempdir().expect("temp dir");
    let cluster = KindCluster::create_or_reuse(
        "shipper-e2e",
        &root.join("kind-config/single-node.yaml"),
        &work.path().join("kubeconfig"),
    )
    .unwrap_or_else(|e| panic!("kind cluster: {e}"));
    // deploy/overlays/kind-e2e names the image `shipper:e2e` (pulled never, loaded here).
    harness::tiers::docker::cli::run(["tag", &images.shipper, "shipper:e2e"]).expect("docker tag");
    cluster.load_image("shipper:e2e").unwrap_or_else(|e| panic!("kind load: {e}"));
    cluster
        .apply_kustomization(&root.join("deploy/overlays/kind-e2e"))
        .unwrap_or_else(|e| panic!("kubectl apply -k: {e}"));
    cluster
        .wait_daemonset("shipper", "shipper", Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("the DaemonSet did not become ready: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_on_localstack() {
    run("steady_state_on_localstack", "steady-state", BackendChoice::LocalStack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_blackhole() {
    run("short_blackhole", "short-blackhole", BackendChoice::LocalStack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_pause() {
    run("backend_pause", "backend-pause", BackendChoice::LocalStack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_disconnect() {
    run("network_disconnect", "network-disconnect", BackendChoice::LocalStack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipper_kill_random() {
    run("shipper_kill_random", "shipper-kill-random", BackendChoice::LocalStack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_relabel() {
    run("pod_relabel", "pod-relabel", BackendChoice::LocalStack).await;
}

/// Node scaling (issue #5 item 7): a worker joins while pods log, pods move between nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_scaling() {
    run("node_scaling", "kind/node-scaling", BackendChoice::LocalStack).await;
}

/// Node restart (issue #5 item 4): the node crashes during an outage with a spooled backlog;
/// the shipper pod comes back on its hostPath spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restart() {
    run("node_restart", "kind/node-restart", BackendChoice::LocalStack).await;
}

/// A scenario with faults kind cannot apply is refused before any cluster work, with the
/// reason (this one needs no kind, no Docker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_kind_cannot_apply_are_refused() {
    let scenario =
        Scenario::load(&scenario_path("api-unavailable-at-start")).unwrap_or_else(|e| panic!("{e}"));
    match run_scenario(&scenario, &options("api-unavailable-at-start", BackendChoice::LocalStack)).await {
        Err(RunError::Unsupported(reason)) => assert!(reason.contains("api_unavailable"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
