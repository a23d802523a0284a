//! The kind tier (feature `e2e`), where kind's node image can be pulled (GitHub Actions,
//! laptops): a kind cluster from `kind-config/`, the locally built shipper image loaded into
//! it, `deploy/overlays/kind-e2e` applied, and the DaemonSet rolled out and ready on every
//! node (its readiness probe is `/readyz`: pod metadata synced through the real API server).
//!
//! Scenario pods on kind need the writer image, which is not built yet; the scenarios run on
//! the container tier (tests/container_tier.rs). Where `kind` or `kubectl` is missing this
//! test fails and says so; `.ci/run` does not run it on machines without a registry.

use std::path::Path;
use std::time::Duration;

use harness::containers::Images;
use harness::containers::kind::{self, KindCluster};

#[test]
fn daemonset_rolls_out_on_kind() {
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
    harness::containers::docker::run(["tag", &images.shipper, "shipper:e2e"]).expect("docker tag");
    cluster.load_image("shipper:e2e").unwrap_or_else(|e| panic!("kind load: {e}"));
    cluster
        .apply_kustomization(&root.join("deploy/overlays/kind-e2e"))
        .unwrap_or_else(|e| panic!("kubectl apply -k: {e}"));
    cluster
        .wait_daemonset("shipper", "shipper", Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("the DaemonSet did not become ready: {e}"));
}
