//! The kind tier's setup files, checked offline: the cluster configs in `kind-config/` (node
//! image pinned by digest, the node roles the scenarios need) and the e2e workflow (triggers,
//! actions pinned by commit, the image it builds, what it uploads).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// kind's `Cluster` config (kind.x-k8s.io/v1alpha4), the fields used here; unknown fields are
/// errors so a typo (`extraMount`) cannot pass unnoticed.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KindCluster {
    kind: String,
    api_version: String,
    name: String,
    nodes: Vec<KindNode>,
    #[serde(default)]
    kubeadm_config_patches: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KindNode {
    role: String,
    image: String,
    #[serde(default)]
    extra_mounts: Vec<serde_yaml::Value>,
}

fn kind_config(file: &str) -> KindCluster {
    let cluster: KindCluster = serde_yaml::from_str(&read(&format!("kind-config/{file}")))
        .unwrap_or_else(|e| panic!("kind-config/{file}: {e}"));
    assert_eq!(cluster.kind, "Cluster");
    assert_eq!(cluster.api_version, "kind.x-k8s.io/v1alpha4");
    cluster
}

/// `kindest/node:vX.Y.Z@sha256:<64 hex>` → (version, digest), or why not.
fn pinned_node_image(image: &str) -> Result<(&str, &str), String> {
    let rest = image.strip_prefix("kindest/node:").ok_or("not kindest/node")?;
    let (tag, digest) = rest.split_once("@sha256:").ok_or("not pinned by digest")?;
    let version = tag.strip_prefix('v').ok_or("tag is not vX.Y.Z")?;
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("tag {tag} is not vX.Y.Z"));
    }
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Err(format!("digest {digest} is not 64 lowercase hex digits"));
    }
    Ok((tag, digest))
}

#[test]
fn the_pin_checker_rejects_what_is_not_a_digest_pin() {
    let digest = "099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed";
    assert!(pinned_node_image(&format!("kindest/node:v1.36.4@sha256:{digest}")).is_ok());
    for bad in [
        "kindest/node:v1.36.4".to_owned(),
        "kindest/node:latest".to_owned(),
        format!("kindest/node:v1.36@sha256:{digest}"),
        format!("kindest/node:v1.36.4@sha256:{}", &digest[1..]),
        format!("kindest/node:v1.36.4@sha256:{}", digest.to_uppercase()),
        format!("example.com/node:v1.36.4@sha256:{digest}"),
    ] {
        assert!(pinned_node_image(&bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn kind_configs_pin_one_node_image_by_digest() {
    let mut images = BTreeMap::new();
    for file in ["single-node.yaml", "multi-node.yaml"] {
        for node in kind_config(file).nodes {
            pinned_node_image(&node.image).unwrap_or_else(|e| panic!("{file}: {}: {e}", node.image));
            assert!(node.extra_mounts.is_empty(), "{file}: no host mounts needed: the logs stay in the node");
            images.insert(node.image, file);
        }
    }
    assert_eq!(images.len(), 1, "every node of every config runs the same image: {images:?}");
}

#[test]
fn single_node_and_multi_node_have_the_roles_the_scenarios_need() {
    let roles = |file: &str| kind_config(file).nodes.into_iter().map(|n| n.role).collect::<Vec<_>>();
    assert_eq!(roles("single-node.yaml"), ["control-plane"]);
    assert_eq!(roles("multi-node.yaml"), ["control-plane", "worker", "worker"]);
    let single = kind_config("single-node.yaml");
    let multi = kind_config("multi-node.yaml");
    assert_ne!(single.name, multi.name, "both may exist at once");
    // Rotation within a scenario's minutes: the kubelet rotates container logs at 1Mi.
    for cluster in [single, multi] {
        let patches = cluster.kubeadm_config_patches.join("\n");
        let kubelet: serde_yaml::Value = serde_yaml::from_str(&patches).expect("kubelet patch parses");
        assert_eq!(kubelet["kind"].as_str(), Some("KubeletConfiguration"));
        assert_eq!(kubelet["containerLogMaxSize"].as_str(), Some("1Mi"));
    }
}

fn workflow() -> serde_yaml::Value {
    serde_yaml::from_str(&read(".github/workflows/e2e.yml")).expect("e2e.yml parses")
}

fn steps(workflow: &serde_yaml::Value) -> Vec<serde_yaml::Value> {
    let jobs = workflow["jobs"].as_mapping().expect("jobs");
    jobs.values().flat_map(|job| job["steps"].as_sequence().cloned().unwrap_or_default()).collect()
}

#[test]
fn workflow_triggers_on_main_prs_touching_the_code_and_nightly() {
    let w = workflow();
    let on = &w["on"];
    assert_eq!(on["push"]["branches"].as_sequence().map(|b| b.len()), Some(1));
    assert_eq!(on["push"]["branches"][0].as_str(), Some("main"));
    let paths: Vec<&str> = on["pull_request"]["paths"]
        .as_sequence()
        .expect("PR paths")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    for dir in ["shipper/", "harness/", "deploy/", "kind-config/", "scenarios/"] {
        assert!(paths.iter().any(|p| p.starts_with(dir)), "PRs touching {dir} run e2e: {paths:?}");
    }
    let cron = on["schedule"][0]["cron"].as_str().expect("nightly schedule");
    assert_eq!(cron.split_whitespace().count(), 5, "cron {cron}");
    assert!(cron.split_whitespace().skip(2).all(|f| f == "*"), "daily: {cron}");
}

#[test]
fn workflow_actions_are_pinned_by_full_commit_sha() {
    let used: Vec<String> =
        steps(&workflow()).iter().filter_map(|s| s["uses"].as_str().map(str::to_owned)).collect();
    assert!(used.len() >= 4, "{used:?}");
    for uses in &used {
        let (_, rev) = uses.split_once('@').unwrap_or_else(|| panic!("{uses}: no ref"));
        assert!(
            rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()),
            "{uses} is not pinned by a full commit SHA"
        );
    }
    for action in ["actions/checkout@", "helm/kind-action@", "actions/upload-artifact@"] {
        assert!(used.iter().any(|u| u.starts_with(action)), "{action} missing: {used:?}");
    }
}

#[test]
fn workflow_builds_the_image_runs_e2e_and_keeps_the_evidence() {
    let w = workflow();
    let steps = steps(&w);
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    let all = runs.join("\n");
    assert!(all.contains("docker build -f deploy/Dockerfile"), "builds the users' Dockerfile");
    assert!(all.contains("--features harness/e2e"), "runs the e2e feature");
    for test in ["--test container_tier", "--test kind_tier"] {
        assert!(all.contains(test), "runs {test}");
    }
    assert!(all.contains("harness/images/build.sh"), "builds the container tier's images");
    assert!(all.contains("kind export logs"), "exports cluster logs");
    let kind_version = w["env"]["KIND_VERSION"].as_str().expect("KIND_VERSION");
    assert!(kind_version.starts_with('v') && kind_version.split('.').count() == 3, "{kind_version}");
    // The kind release the node digest was taken from is the one installed.
    let comment = read("kind-config/single-node.yaml");
    assert!(comment.contains(&format!("kind {kind_version}")), "kind-config names kind {kind_version}");

    let uploads: Vec<&serde_yaml::Value> = steps
        .iter()
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact@")))
        .collect();
    let uploaded = |dir: &str| uploads.iter().any(|s| s["with"]["path"].as_str() == Some(dir));
    assert!(uploaded("target/harness/"), "scenario reports are uploaded");
    assert!(uploaded("target/kind-logs/"), "cluster logs are uploaded");
    let diagnostics =
        steps.iter().find(|s| s["run"].as_str().is_some_and(|r| r.contains("kind export logs")));
    assert_eq!(diagnostics.and_then(|s| s["if"].as_str()), Some("failure()"));
}
