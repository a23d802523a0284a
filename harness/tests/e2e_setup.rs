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

fn job<'a>(workflow: &'a serde_yaml::Value, name: &str) -> &'a serde_yaml::Value {
    let job = &workflow["jobs"][name];
    assert!(job.is_mapping(), "e2e.yml has job {name}");
    job
}

fn job_steps(job: &serde_yaml::Value) -> Vec<serde_yaml::Value> {
    job["steps"].as_sequence().cloned().unwrap_or_default()
}

fn steps(workflow: &serde_yaml::Value) -> Vec<serde_yaml::Value> {
    let jobs = workflow["jobs"].as_mapping().expect("jobs");
    jobs.values().flat_map(job_steps).collect()
}

fn runs(steps: &[serde_yaml::Value]) -> String {
    steps.iter().filter_map(|s| s["run"].as_str()).collect::<Vec<_>>().join("\n")
}

/// The index of the first step whose `run` contains `needle`.
fn step_running(steps: &[serde_yaml::Value], needle: &str) -> usize {
    steps
        .iter()
        .position(|s| s["run"].as_str().is_some_and(|r| r.contains(needle)))
        .unwrap_or_else(|| panic!("no step runs {needle:?}"))
}

/// `x.y` → (x, y).
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.trim_start_matches('v').split('.').map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor),
        _ => panic!("{version} is not x.y[.z]"),
    }
}

/// glibc of GitHub's hosted runner images (their Ubuntu release's libc6): a label missing
/// here must be added (with its glibc) before a job may use it.
const RUNNER_GLIBC: &[(&str, &str)] =
    &[("ubuntu-20.04", "2.31"), ("ubuntu-22.04", "2.35"), ("ubuntu-24.04", "2.39")];

/// glibc of the Debian suites build.sh can debootstrap.
const DEBIAN_GLIBC: &[(&str, &str)] = &[("bullseye", "2.31"), ("bookworm", "2.36"), ("trixie", "2.41")];

fn table(table: &[(&str, &str)], key: &str) -> Option<(u32, u32)> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| major_minor(v))
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
            rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{uses} is not pinned by a full commit SHA"
        );
    }
    for action in ["actions/checkout@", "actions/upload-artifact@"] {
        assert!(used.iter().any(|u| u.starts_with(action)), "{action} missing: {used:?}");
    }
}

#[test]
fn the_pin_checks_catch_what_they_are_for() {
    // The helpers above on values that must fail, so the workflow tests cannot pass vacuously.
    assert_eq!(major_minor("v1.36.4"), (1, 36));
    assert!(std::panic::catch_unwind(|| major_minor("latest")).is_err());
    assert_eq!(table(RUNNER_GLIBC, "ubuntu-24.04"), Some((2, 39)));
    assert!(table(RUNNER_GLIBC, "ubuntu-24.04") > table(DEBIAN_GLIBC, "bookworm"), "the issue's skew");
    assert!(table(RUNNER_GLIBC, "ubuntu-22.04") <= table(DEBIAN_GLIBC, "bookworm"));
    assert_eq!(table(RUNNER_GLIBC, "ubuntu-latest"), None, "a moving label has no known glibc");
}

/// The kind job stands alone: it needs no other job, builds the images it deploys, and runs no
/// other tier before the kind tier (a failure there would hide it).
#[test]
fn the_kind_tier_runs_in_its_own_job_needing_only_its_images() {
    let w = workflow();
    let kind = job(&w, "kind");
    assert!(kind["needs"].is_null(), "the kind job waits for no other job: {:?}", kind["needs"]);
    let steps = job_steps(kind);
    let all = runs(&steps);
    assert!(!all.contains("--test container_tier"), "the container tier runs in another job");
    assert!(!all.contains("cargo test --locked --workspace\n"), "the local tier runs in another job");
    let images = step_running(&steps, "harness/images/build.sh");
    let tier = step_running(&steps, "--test kind_tier -- ");
    assert!(images < tier, "images are built before the kind tier");
    assert!(step_running(&steps, "kind-preflight") < tier, "the preflight runs before the kind tier");
    assert_eq!(
        steps[tier]["env"]["SHIPPER_HARNESS_KEEP_KIND"].as_str(),
        Some("1"),
        "clusters stay for the diagnostics"
    );
    // The other tiers still run, elsewhere.
    let containers = runs(&job_steps(job(&w, "containers")));
    assert!(containers.contains("--test container_tier"));
    assert!(containers.contains("cargo test --locked --workspace"));
    assert!(containers.contains("harness/images/build.sh"));
}

/// The image the kind tier deploys (shipper:e2e, loaded by the harness from build.sh's
/// image) is built by nothing else in the workflow: no step silently replaces it.
#[test]
fn no_step_builds_the_tag_the_kind_tier_deploys() {
    let w = workflow();
    let all = runs(&steps(&w));
    assert!(!all.contains("shipper:e2e"), "shipper:e2e is the harness's tag of build.sh's image");
    assert!(w["env"]["SHIPPER_IMAGE"].is_null(), "no unused image tag in the env");
    // The users' Dockerfile is still built (with its Rust builder stage) and smoke-tested.
    let dockerfile = runs(&job_steps(job(&w, "dockerfile")));
    assert!(dockerfile.contains("docker build -f deploy/Dockerfile -t shipper:users-build"));
    assert!(dockerfile.contains("shipper:users-build --help"));
}

#[test]
fn kubectl_is_pinned_to_the_node_images_minor() {
    let w = workflow();
    let kubectl = w["env"]["KUBECTL_VERSION"].as_str().expect("KUBECTL_VERSION");
    let node = kind_config("single-node.yaml").nodes[0].image.clone();
    let (tag, _) = pinned_node_image(&node).expect("pinned");
    assert_eq!(major_minor(kubectl), major_minor(tag), "kubectl {kubectl} vs node image {tag}");
    let install = runs(&job_steps(job(&w, "kind")));
    assert!(
        install.contains("https://dl.k8s.io/release/$KUBECTL_VERSION/bin/linux/amd64/kubectl"),
        "the kind job installs kubectl $KUBECTL_VERSION"
    );
    assert!(install.contains("kubectl.sha256") && install.contains("sha256sum --check"), "checksum verified");
    assert!(
        !steps(&w).iter().any(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("helm/kind-action@"))),
        "kind-action would install its own default kubectl"
    );
}

/// Jobs that build binaries for the images run where glibc is no newer than the base's
/// (tests/glibc_check.rs proves build.sh would refuse such binaries anyway).
#[test]
fn runners_that_build_image_binaries_have_no_newer_glibc_than_the_base() {
    let w = workflow();
    let build_sh = read("harness/images/build.sh");
    let suite =
        build_sh.lines().find_map(|l| l.strip_prefix("SUITE=")).expect("build.sh names its Debian SUITE");
    let base = table(DEBIAN_GLIBC, suite).unwrap_or_else(|| panic!("glibc of Debian {suite} unknown"));
    assert!(build_sh.contains("check-glibc.sh"), "build.sh checks what it puts into images");
    let mut checked = 0;
    for (name, job) in w["jobs"].as_mapping().expect("jobs") {
        let name = name.as_str().unwrap_or_default();
        let runner = job["runs-on"].as_str().unwrap_or_else(|| panic!("{name}: runs-on is one label"));
        let glibc =
            table(RUNNER_GLIBC, runner).unwrap_or_else(|| panic!("{name}: glibc of {runner} unknown"));
        if runs(&job_steps(job)).contains("harness/images/build.sh") {
            assert!(
                glibc <= base,
                "{name} builds image binaries on {runner} (glibc {glibc:?} > {suite} {base:?})"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "both the kind and the containers job build images");
}

#[test]
fn every_job_and_step_has_a_timeout() {
    let w = workflow();
    for (name, job) in w["jobs"].as_mapping().expect("jobs") {
        assert!(job["timeout-minutes"].as_u64().is_some_and(|m| m > 0), "{name:?}: job timeout");
        for step in job_steps(job) {
            let label = step["name"].as_str().or(step["uses"].as_str()).unwrap_or("?").to_owned();
            assert!(
                step["timeout-minutes"].as_u64().is_some_and(|m| m > 0),
                "{name:?}: step {label} has no timeout"
            );
        }
    }
}

#[test]
fn the_kind_job_prepares_the_runner_first() {
    let w = workflow();
    for var in ["CARGO_PROFILE_DEV_DEBUG", "CARGO_PROFILE_TEST_DEBUG"] {
        assert_eq!(w["env"][var].as_str(), Some("line-tables-only"), "{var}, as .ci/run");
    }
    let steps = job_steps(job(&w, "kind"));
    let free = step_running(&steps, "rm -rf /usr/share/dotnet");
    let first_build = step_running(&steps, "cargo build");
    assert!(free < first_build, "disk is freed before anything is built");
    let sysctl = step_running(&steps, "fs.inotify.max_user_instances=");
    let all = runs(&steps);
    let value = |key: &str| -> u64 {
        let at = all.find(key).unwrap_or_else(|| panic!("{key} raised")) + key.len();
        all[at..].split_whitespace().next().and_then(|v| v.parse().ok()).expect("a number")
    };
    assert!(value("fs.inotify.max_user_instances=") >= 512);
    assert!(value("fs.inotify.max_user_watches=") >= 524_288);
    assert!(sysctl < step_running(&steps, "--test kind_tier -- "));
}

#[test]
fn diagnostics_run_on_failure_and_on_cancel_and_keep_the_evidence() {
    let w = workflow();
    let kind_version = w["env"]["KIND_VERSION"].as_str().expect("KIND_VERSION");
    assert!(kind_version.starts_with('v') && kind_version.split('.').count() == 3, "{kind_version}");
    // The kind release the node digest was taken from is the one installed.
    let comment = read("kind-config/single-node.yaml");
    assert!(comment.contains(&format!("kind {kind_version}")), "kind-config names kind {kind_version}");

    let steps = job_steps(job(&w, "kind"));
    let on_cancel = |s: &serde_yaml::Value| {
        s["if"]
            .as_str()
            .is_some_and(|c| c == "always()" || (c.contains("failure()") && c.contains("cancelled()")))
    };
    let diagnostics = &steps[step_running(&steps, "kind export logs")];
    assert!(on_cancel(diagnostics), "diagnostics run on failure and cancel: {:?}", diagnostics["if"]);
    let script = diagnostics["run"].as_str().unwrap_or_default();
    for needed in ["kind get clusters", "kind get kubeconfig --name", "docker ps -a", "target/kind-logs"] {
        assert!(script.contains(needed), "diagnostics run {needed:?}");
    }
    let uploads: Vec<&serde_yaml::Value> = steps
        .iter()
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact@")))
        .collect();
    for dir in ["target/harness/", "target/kind-logs/"] {
        let upload = uploads.iter().find(|s| s["with"]["path"].as_str() == Some(dir));
        let upload = upload.unwrap_or_else(|| panic!("{dir} is uploaded"));
        assert!(on_cancel(upload), "{dir} is uploaded on failure and cancel: {:?}", upload["if"]);
    }
}
