//! The DaemonSet's container command and env, exercised for real: the shipper binary is
//! started with exactly the args and env of the rendered `deploy/base` DaemonSet, and with the
//! config file its ConfigMap mounts, and ships one short scenario on the local tier (moto
//! behind the gateway, the stand-in API, a simulated node).
//!
//! Only what a pod gets from its node and cluster is substituted, each the way the kubelet
//! would resolve it:
//! - downward API `fieldRef`s → the simulated node's name;
//! - hostPath volumes → directories on this machine: the node's filesystem is the SimNode's
//!   root, and the state dir is the runner's (mount paths in args and in the config file are
//!   translated through the same mount table);
//! - the ConfigMap volume → its keys written as files;
//! - the container port → the runner's port on 127.0.0.1 (loopback only, never 0.0.0.0);
//! - in-cluster API access → `KUBECONFIG` of the stand-in API; IRSA → static test keys;
//!   real CloudWatch Logs → `AWS_ENDPOINT_URL` of the gateway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use harness::manifests::{ShipperSettings, deploy_dir, kustomize, parse_documents};
use harness::runner::{BackendChoice, RunOptions, run_scenario_with};
use harness::scenario::Scenario;
use harness::shipper_proc::{ShipperEnv, ShipperLaunch};

/// Container path → path on this machine, longest mount path first.
#[derive(Debug, Clone)]
struct MountTable(Vec<(PathBuf, PathBuf)>);

impl MountTable {
    fn translate(&self, container_path: &str) -> String {
        let path = Path::new(container_path);
        let (mount, host) = self
            .0
            .iter()
            .find(|(mount, _)| path.starts_with(mount))
            .unwrap_or_else(|| panic!("{container_path} is under no volume mount of the DaemonSet"));
        let rest = path.strip_prefix(mount).expect("prefix");
        if rest.as_os_str().is_empty() {
            host.display().to_string()
        } else {
            host.join(rest).display().to_string()
        }
    }
}

/// Everything the launch needs from the manifest, read once.
#[derive(Debug, Clone)]
struct Pod {
    settings: ShipperSettings,
    config_files: BTreeMap<String, BTreeMap<String, String>>,
}

fn read_base() -> Pod {
    let objects = parse_documents(
        "deploy/base",
        &kustomize(&deploy_dir().join("base")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let settings = ShipperSettings::of(&objects).unwrap_or_else(|e| panic!("{e}"));
    let config_files = objects
        .config_maps
        .iter()
        .map(|cm| (cm.metadata.name.clone().unwrap_or_default(), cm.data.clone().unwrap_or_default()))
        .collect();
    Pod { settings, config_files }
}

/// The launch: the DaemonSet's args and env, resolved against this machine's stand-ins.
fn launch(pod: &Pod, files: &Path, wiring: &ShipperEnv) -> ShipperLaunch {
    let s = &pod.settings;
    // The SimNode's root is the node's `/`: the runner tails `<root>/var/log/containers/*.log`.
    let node_root = wiring
        .log_paths
        .strip_suffix("/var/log/containers/*.log")
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("unexpected SimNode layout: {}", wiring.log_paths));
    let state_dir = s.state_dir();
    let mut mounts = Vec::new();
    for mount in s.container.volume_mounts.iter().flatten() {
        let volume = s.pod.volumes.iter().flatten().find(|v| v.name == mount.name).expect("volume");
        let host = if let Some(host_path) = &volume.host_path {
            if mount.mount_path == state_dir {
                wiring.state_dir.clone()
            } else {
                node_root.join(host_path.path.trim_start_matches('/'))
            }
        } else if volume.config_map.is_some() {
            files.join(&volume.name)
        } else {
            panic!("volume {} is neither hostPath nor ConfigMap: teach this test about it", volume.name)
        };
        std::fs::create_dir_all(&host).expect("mount dir");
        mounts.push((PathBuf::from(&mount.mount_path), host));
    }
    mounts.sort_by_key(|(mount, _)| std::cmp::Reverse(mount.as_os_str().len()));
    let table = MountTable(mounts);

    // The ConfigMap's keys as files; the shipper's own config file with its container paths
    // and listen address translated like everything else.
    let listen = s.listen().expect("listen");
    for volume in s.pod.volumes.iter().flatten() {
        let Some(cm) = &volume.config_map else { continue };
        let data = pod.config_files.get(&cm.name).unwrap_or_else(|| panic!("ConfigMap {} missing", cm.name));
        for (key, text) in data {
            let host_file = files.join(&volume.name).join(key);
            let is_shipper_config = s
                .config
                .as_ref()
                .is_some_and(|c| table.translate(&c.path) == host_file.display().to_string());
            let text = if is_shipper_config {
                let mut table_toml: toml::Table = toml::from_str(text).expect("config toml");
                if let Some(paths) = table_toml.get("log_paths").and_then(|v| v.as_array()).cloned() {
                    let translated: Vec<toml::Value> = paths
                        .iter()
                        .map(|p| toml::Value::String(table.translate(p.as_str().expect("log path"))))
                        .collect();
                    table_toml.insert("log_paths".into(), toml::Value::Array(translated));
                }
                if let Some(dir) = table_toml.get("state_dir").and_then(|v| v.as_str()).map(str::to_owned) {
                    table_toml.insert("state_dir".into(), toml::Value::String(table.translate(&dir)));
                }
                if table_toml.contains_key("listen") {
                    table_toml
                        .insert("listen".into(), toml::Value::String(format!("127.0.0.1:{}", wiring.port)));
                }
                toml::to_string(&table_toml).expect("toml")
            } else {
                text.clone()
            };
            std::fs::write(&host_file, text).expect("write configmap key");
        }
    }
    // A listen address only from the env would not be remapped above: the manifest has none.
    assert!(s.env("SHIPPER_LISTEN").is_none(), "translate SHIPPER_LISTEN (port {}) too", listen.port());

    let args = s
        .container
        .args
        .iter()
        .flatten()
        .map(|a| if a.starts_with('/') { table.translate(a) } else { a.clone() })
        .collect();

    let mut env = BTreeMap::new();
    for var in s.container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), None) => v.clone(),
            (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("spec.nodeName") => wiring.node.clone(),
                other => panic!("{}: downward API field {other:?} has no stand-in here", var.name),
            },
            other => panic!("{}: unsupported env source {other:?}", var.name),
        };
        env.insert(var.name.clone(), value);
    }
    // What the cluster gives a pod, from this machine's stand-ins instead.
    assert!(!env.contains_key("AWS_ENDPOINT_URL"), "the base DaemonSet ships to real AWS");
    env.insert("KUBECONFIG".into(), wiring.kubeconfig.display().to_string());
    env.insert("AWS_ENDPOINT_URL".into(), wiring.endpoint.clone());
    env.insert("AWS_ACCESS_KEY_ID".into(), "harness".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "harness".into());
    ShipperLaunch { args, env }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemonsets_command_and_env_ship_a_scenario() {
    let pod = read_base();
    let cluster = pod.settings.env("CLUSTER_NAME").and_then(|e| e.value.clone()).expect("CLUSTER_NAME");
    let grace = pod.settings.shutdown_grace().expect("shutdown grace");
    // The audit reads the backend in us-east-1: the manifest's region must be the one written to.
    assert_eq!(pod.settings.env("AWS_REGION").and_then(|e| e.value.as_deref()), Some("us-east-1"));
    // Expected groups written out by hand from the naming contract (app label, else pod name),
    // with the manifest's cluster name.
    let scenario = Scenario::parse(&format!(
        r#"
name = "daemonset-env"
why = "The shipper as the DaemonSet starts it: its args, env and mounted config file."

[shipper]
shutdown_grace = "{grace}"

[[pods]]
namespace = "shop"
name = "web-7c9d8b6f5-k2x8p"
labels = {{ app = "web" }}
containers = [{{ name = "nginx", image = "nginx:1.27", lines = 300, rate = 150, stream = "both" }}]

[[pods]]
namespace = "batch"
name = "nightly-report-q7z"
containers = [{{ name = "job", image = "python:3.12", lines = 200, rate = 100 }}]

# A graceful restart with the same state directory (the hostPath) mid-run.
[[faults]]
at = "1s"
kind = "shipper_term"
restart_after = "300ms"

[expect]
max_duplicates = 0
drain_timeout = "30s"

[expect.groups]
"k8s_{cluster}_shop_web_nginx" = ["web-7c9d8b6f5-k2x8p_nginx"]
"k8s_{cluster}_batch_nightly-report-q7z_job" = ["nightly-report-q7z_job"]
"#,
        grace = humantime::format_duration(grace),
    ))
    .unwrap_or_else(|e| panic!("{e}"));

    let files = tempfile::tempdir().expect("tempdir");
    let files_dir = files.path().to_owned();
    let seen: std::sync::Mutex<Option<ShipperLaunch>> = std::sync::Mutex::new(None);
    let hook = |wiring: &ShipperEnv| {
        let l = launch(&pod, &files_dir, wiring);
        *seen.lock().expect("lock") = Some(l.clone());
        l
    };
    let options = RunOptions {
        backend: BackendChoice::Moto,
        seed: 5,
        progress: false,
        out_dir: None,
        cluster: Default::default(),
    };
    let report = run_scenario_with(&scenario, &options, Some(&hook))
        .await
        .unwrap_or_else(|e| panic!("could not run: {e}"));
    println!("{}", report.table());
    assert!(report.passed, "{}", report.table());
    assert_eq!(report.missing, 0);
    assert_eq!(report.duplicates, 0, "a graceful restart resends nothing");
    assert_eq!(report.delivered_distinct, scenario.total_lines());
    assert_eq!(report.shipper_starts, 2);

    // And it really was the manifest's launch: its args with the config file, its env.
    let used = seen.lock().expect("lock").clone().expect("the hook ran");
    assert_eq!(used.args[..2], ["run".to_owned(), "--config".to_owned()]);
    assert!(Path::new(&used.args[2]).starts_with(&files_dir), "config from the ConfigMap files");
    assert_eq!(used.env.get("CLUSTER_NAME"), Some(&cluster));
    assert_eq!(used.env.get("NODE_NAME"), Some(&scenario.node.name));
    assert!(!used.env.contains_key("SHIPPER_LOG_PATHS"), "paths come from the config file");
}
