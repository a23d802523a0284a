//! The kind tier's objects through `kubectl apply --dry-run=client`, offline: the run overlay
//! (deploy/overlays/kind-e2e under the run's env, as the runner applies it with `apply -k`),
//! a scenario namespace and a writer pod (as the runner applies them with `apply -f -`).
//!
//! `kubectl apply --dry-run=client` needs an API server even with `--validate=false`: it maps
//! every object's kind to a resource through discovery and GETs it to compute the patch. So a
//! fake API server here answers discovery (the built-in groups these objects use, with their
//! scope) and 404 for every object (nothing exists yet). What this proves: kubectl, the client
//! the runner drives, parses every document, maps every kind to a resource, defaults the
//! namespaces as the cluster would see them, and builds the objects it would create, whose
//! contents are then checked. What it cannot prove offline: server-side validation against the
//! cluster's OpenAPI schema and admission; the kind tier's first step (the DaemonSet rollout)
//! does that.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use harness::manifests;
use harness::scenario::Scenario;
use harness::tiers::kind::overlay::write_run_overlay;
use harness::tiers::kind::pods::{namespace_object, pod_object, to_yaml};
use harness::writer::LinePlan;
use serde_json::{Value, json};

/// A resource the fake API serves: (plural name, kind, namespaced).
type Resource = (&'static str, &'static str, bool);

/// `(group version, resources)` served by the fake API.
const RESOURCES: &[(&str, &[Resource])] = &[
    (
        "v1",
        &[
            ("namespaces", "Namespace", false),
            ("configmaps", "ConfigMap", true),
            ("serviceaccounts", "ServiceAccount", true),
            ("pods", "Pod", true),
        ],
    ),
    ("apps/v1", &[("daemonsets", "DaemonSet", true)]),
    (
        "rbac.authorization.k8s.io/v1",
        &[
            ("clusterroles", "ClusterRole", false),
            ("clusterrolebindings", "ClusterRoleBinding", false),
            ("roles", "Role", true),
            ("rolebindings", "RoleBinding", true),
        ],
    ),
];

fn discovery(path: &str) -> Option<Value> {
    if path == "/api" {
        return Some(json!({ "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }] }));
    }
    if path == "/apis" {
        let groups: Vec<Value> = RESOURCES
            .iter()
            .filter_map(|(gv, _)| gv.split_once('/'))
            .map(|(group, version)| {
                let v = json!({ "groupVersion": format!("{group}/{version}"), "version": version });
                json!({ "name": group, "versions": [v.clone()], "preferredVersion": v })
            })
            .collect();
        return Some(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }));
    }
    let gv = path.strip_prefix("/api/").or_else(|| path.strip_prefix("/apis/"))?;
    let (_, resources) = RESOURCES.iter().find(|(g, _)| *g == gv)?;
    let resources: Vec<Value> = resources
        .iter()
        .map(|(name, kind, namespaced)| {
            json!({ "name": name, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind,
                    "verbs": ["get", "list", "create", "patch", "update", "delete"] })
        })
        .collect();
    Some(json!({ "kind": "APIResourceList", "groupVersion": gv, "resources": resources }))
}

async fn answer(uri: Uri) -> impl IntoResponse {
    let (status, body) = match discovery(uri.path()) {
        Some(body) => (StatusCode::OK, body),
        None => (
            StatusCode::NOT_FOUND,
            json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404 }),
        ),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string())
}

/// `kubectl apply --dry-run=client --validate=false -o json` of `args` against the fake API:
/// the objects kubectl would create, or its error.
async fn dry_run(server: &str, args: Vec<String>) -> Result<Vec<Value>, String> {
    let server = server.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .env("KUBECONFIG", "/dev/null")
            .args(["--server", &server, "apply", "--dry-run=client", "--validate=false", "-o", "json"])
            .args(&args)
            .output()
    })
    .await
    .expect("join")
    .expect("kubectl runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let value: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(match value["kind"].as_str() {
        Some("List") => value["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![value],
    })
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {objects:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kind_tiers_objects_pass_kubectls_client_side_apply() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, Router::new().fallback(answer)).await });

    // The run overlay, as the runner writes it.
    let work = tempfile::tempdir().expect("temp dir");
    let overlay = work.path().join("overlay");
    let kind_e2e = manifests::deploy_dir().join("overlays/kind-e2e").canonicalize().expect("kind-e2e");
    let env = BTreeMap::from([
        ("CLUSTER_NAME".to_owned(), "local".to_owned()),
        ("AWS_ENDPOINT_URL".to_owned(), "http://172.18.0.1:40123".to_owned()),
    ]);
    write_run_overlay(&overlay, &kind_e2e, &env).expect("overlay written");
    let objects = dry_run(&server, vec!["-k".into(), overlay.display().to_string()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"]
    {
        assert!(kinds.contains(&kind), "{kind} applied: {kinds:?}");
    }
    let daemonset = find(&objects, "DaemonSet", "shipper");
    assert_eq!(daemonset["metadata"]["namespace"], "shipper");
    let container = &daemonset["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "shipper:e2e");
    assert_eq!(container["imagePullPolicy"], "Never", "loaded with kind load, never pulled");
    let env: BTreeMap<&str, &Value> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?, &e["value"])))
        .collect();
    assert_eq!(env["AWS_ENDPOINT_URL"], "http://172.18.0.1:40123", "the run's env wins");
    assert_eq!(env["CLUSTER_NAME"], "local");
    // kubectl records what it applied (what a later `apply` diffs against).
    let annotations = &daemonset["metadata"]["annotations"];
    assert!(annotations["kubectl.kubernetes.io/last-applied-configuration"].is_string(), "{annotations}");

    // A scenario namespace and a writer pod, as `apply -f -` gets them.
    let scenario = Scenario::parse(
        "name = \"t\"\nwhy = \"w\"\n[[pods]]\nnamespace = \"shop\"\nname = \"web-0\"\nlabels = { app = \"web\" }\n\
         containers = [{ name = \"nginx\", lines = 10, rate = 10 }]\n[expect]\ngroups = { g = [\"web-0_nginx\"] }\n",
    )
    .expect("scenario");
    let pod = &scenario.expanded_pods()[0];
    let plans: Vec<LinePlan> = pod
        .containers
        .iter()
        .map(|c| LinePlan::new("r1", &pod.name, c))
        .collect::<Result<_, _>>()
        .expect("plans");
    let file = work.path().join("objects.yaml");
    let yaml = format!(
        "{}---\n{}",
        to_yaml(&namespace_object("shop", "r1")).expect("yaml"),
        to_yaml(&pod_object(pod, &plans, "r1", "shipper-harness/writer:abc", "shipper-e2e-control-plane"))
            .expect("yaml")
    );
    std::fs::write(&file, yaml).expect("write");
    let objects = dry_run(&server, vec!["-f".into(), file.display().to_string()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pod = find(&objects, "Pod", "web-0");
    assert_eq!(pod["metadata"]["namespace"], "shop");
    assert_eq!(pod["spec"]["nodeName"], "shipper-e2e-control-plane");
    assert_eq!(pod["spec"]["containers"][0]["image"], "shipper-harness/writer:abc");
    find(&objects, "Namespace", "shop");

    // The fake is not a rubber stamp: a kind the API does not serve is refused.
    let bad = work.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: apps/v1\nkind: DaemonSett\nmetadata:\n  name: x\n  namespace: shop\n")
        .expect("write");
    let refused = dry_run(&server, vec!["-f".into(), bad.display().to_string()]).await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("DaemonSett")), "{refused:?}");
}

#[test]
fn offline_kubectl_apply_needs_an_api_server() {
    // Why the fake above exists: without a server, client dry-run fails on discovery.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/overlays/kind-e2e");
    let out = Command::new("kubectl")
        .env("KUBECONFIG", "/dev/null")
        .args(["--server", "http://127.0.0.1:9", "--request-timeout=5s", "apply", "--dry-run=client"])
        .args(["--validate=false", "-o", "name", "-k"])
        .arg(&dir)
        .output()
        .expect("kubectl runs");
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
