//! The CLI contract, exercised through the real binary.

use std::process::Command;

fn shipper() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipper"));
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

fn pod_file(dir: &std::path::Path, labels: serde_json::Value) -> std::path::PathBuf {
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "web-5d8f7c9b6-x2x9k", "namespace": "shop", "labels": labels },
        "spec": { "nodeName": "node-1", "containers": [
            { "name": "nginx", "image": "nginx:1.27" },
            { "name": "sidecar", "image": "envoy:1.31" }
        ] }
    });
    let path = dir.join("pod.json");
    std::fs::write(&path, serde_json::to_vec(&pod).expect("json")).expect("write");
    path
}

fn route(labels: serde_json::Value, container: &str, cluster: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pod = pod_file(dir.path(), labels);
    let out = shipper()
        .args(["route", "--pod"])
        .arg(&pod)
        .args(["--container", container])
        .env("CLUSTER_NAME", cluster)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn route_follows_the_naming_contract() {
    let cases = [
        (serde_json::json!({"app": "web", "k8s-app": "other"}), "nginx", "k8s_prod_shop_web_nginx"),
        (serde_json::json!({"k8s-app": "kube-dns"}), "nginx", "k8s_prod_shop_kube-dns_nginx"),
        (serde_json::json!({}), "sidecar", "k8s_prod_shop_web-5d8f7c9b6-x2x9k_sidecar"),
        (serde_json::json!({"app": ""}), "nginx", "k8s_prod_shop_web-5d8f7c9b6-x2x9k_nginx"),
    ];
    for (labels, container, group) in cases {
        let (ok, stdout, stderr) = route(labels.clone(), container, "prod");
        assert!(ok, "{labels}: {stderr}");
        let dest: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
        assert_eq!(dest["group"], group, "{labels}");
        assert_eq!(dest["stream"], format!("web-5d8f7c9b6-x2x9k_{container}"));
    }
}

#[test]
fn route_sanitises_an_odd_cluster_name() {
    let (ok, stdout, stderr) = route(serde_json::json!({"app": "web"}), "nginx", "prod cluster:eu");
    assert!(ok, "{stderr}");
    let dest: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    assert_eq!(dest["group"], "k8s_prod_cluster_eu_shop_web_nginx");
}

#[test]
fn route_names_an_unknown_container() {
    let (ok, _, stderr) = route(serde_json::json!({}), "db", "prod");
    assert!(!ok);
    assert!(stderr.contains("\"db\"") && stderr.contains("nginx, sidecar"), "{stderr}");
}

#[test]
fn check_prints_effective_settings_and_reports_bad_ones() {
    let out = shipper()
        .args(["check"])
        .env("CLUSTER_NAME", "prod")
        .env("NODE_NAME", "n1")
        .env("SHIPPER_FLUSH_INTERVAL", "250ms")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let effective: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(effective["cluster_name"], "prod");
    assert_eq!(effective["flush_interval"], "250ms");
    assert_eq!(effective["listen"], "0.0.0.0:2021");

    let out = shipper().args(["check"]).env("NODE_NAME", "n1").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CLUSTER_NAME is required"));

    let out = shipper()
        .args(["check", "--flush-interval", "soon"])
        .env("CLUSTER_NAME", "c")
        .env("NODE_NAME", "n")
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHIPPER_FLUSH_INTERVAL=\"soon\" is invalid"));
}

#[test]
fn help_documents_every_subcommand() {
    let out = shipper().arg("--help").output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "check", "route"] {
        assert!(text.contains(sub), "{text}");
    }
    let out = shipper().args(["run", "--help"]).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for env in [
        "CLUSTER_NAME",
        "NODE_NAME",
        "SHIPPER_LOG_PATHS",
        "SHIPPER_STATE_DIR",
        "SHIPPER_SPOOL_MAX_BYTES",
        "SHIPPER_FLUSH_INTERVAL",
        "SHIPPER_LISTEN",
        "SHIPPER_LOG_FORMAT",
    ] {
        assert!(text.contains(env), "run --help lacks {env}");
    }
}
