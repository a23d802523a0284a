//! Offline checks of what users apply: every YAML file in `deploy/` parses, and the renderings
//! of the kustomizations (`kubectl kustomize`, no cluster) are typed k8s-openapi objects that
//! keep the deployment's security and wiring facts (issue #5): RBAC get/list/watch on pods
//! only, env from the downward API, read-only host mounts, probes on the port the shipper
//! listens on, a restricted securityContext, a grace period that covers the drain, and the
//! image the overlays mean. The renderings are pinned by reviewed insta snapshots.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::manifests::{
    ManifestError, Objects, ShipperSettings, deploy_dir, kustomize, kustomize_with, parse_documents,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, Toleration, Volume};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

const BASE: &str = "base";
const KIND_E2E: &str = "overlays/kind-e2e";
const EKS_IRSA: &str = "overlays/eks-irsa";
const OVERLAYS: [&str; 3] = [BASE, KIND_E2E, EKS_IRSA];

fn render_text(kustomization: &str) -> String {
    kustomize(&deploy_dir().join(kustomization)).unwrap_or_else(|e| panic!("{e}"))
}

fn render(kustomization: &str) -> Objects {
    parse_documents(kustomization, &render_text(kustomization)).unwrap_or_else(|e| panic!("{e}"))
}

fn settings(objects: &Objects) -> ShipperSettings {
    ShipperSettings::of(objects).unwrap_or_else(|e| panic!("{e}"))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            // Alert rules and dashboards are not cluster objects of the deployment: their own
            // checks are in tests/monitoring.rs (promtool, the PrometheusRule against the rules).
            if path.file_name().is_some_and(|n| n == "monitoring") {
                continue;
            }
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// The parts of a kustomization file these checks look at.
#[derive(Debug, serde::Deserialize)]
struct Kustomization {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    patches: Vec<PatchRef>,
    #[serde(default)]
    images: Vec<ImageRef>,
}

#[derive(Debug, serde::Deserialize)]
struct PatchRef {
    path: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageRef {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
}

#[test]
fn every_yaml_file_in_deploy_parses() {
    let mut files = Vec::new();
    yaml_files(&deploy_dir(), &mut files);
    let base_names = BTreeSet::from_iter(render(BASE).daemon_sets.iter().map(|d| d.metadata.name.clone()));
    let mut kustomizations = 0;
    let mut objects = 0;
    let mut patch_files = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let name = file.display().to_string();
        if file.file_name().is_some_and(|n| n == "kustomization.yaml") {
            kustomizations += 1;
            let k: Kustomization = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!k.resources.is_empty(), "{name} has no resources");
            for patch in k.patches.iter().filter_map(|p| p.path.as_ref()) {
                patch_files.insert(file.parent().expect("dir").join(patch));
            }
        }
    }
    for file in files.iter().filter(|f| f.file_name().is_none_or(|n| n != "kustomization.yaml")) {
        let text = std::fs::read_to_string(file).expect("read");
        let name = file.display().to_string();
        if patch_files.contains(file) {
            // Patches are partial objects (no selector, no template): they parse as YAML, each
            // names a kind and an object the base defines, so it cannot silently patch nothing.
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let kind = value["kind"].as_str().unwrap_or_else(|| panic!("{name}: patch without kind"));
                let target = value["metadata"]["name"].as_str().map(str::to_owned);
                if kind == "DaemonSet" {
                    assert!(base_names.contains(&target), "{name} patches DaemonSet {target:?}, not in base");
                }
            }
        } else {
            let parsed = parse_documents(&name, &text).unwrap_or_else(|e| panic!("{e}"));
            assert!(!parsed.is_empty(), "{name} holds no object");
            objects += parsed.len();
        }
    }
    // base + the two overlays; the base's objects: Namespace, SA, ClusterRole, binding,
    // ConfigMap, DaemonSet.
    assert_eq!(kustomizations, OVERLAYS.len(), "kustomizations found: {files:?}");
    assert_eq!(objects, 6, "objects in deploy/base");
    assert_eq!(patch_files.len(), 2, "patch files: {patch_files:?}");
}

#[test]
fn rbac_grants_get_list_watch_on_pods_and_nothing_else() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        assert!(objects.roles.is_empty() && objects.role_bindings.is_empty(), "{overlay}: namespaced RBAC");
        let [role] = objects.cluster_roles.as_slice() else { panic!("{overlay}: one ClusterRole") };
        assert!(role.aggregation_rule.is_none(), "{overlay}: an aggregated role grants whatever matches");
        let rules = role.rules.as_deref().unwrap_or_default();
        let [rule] = rules else { panic!("{overlay}: one rule, got {rules:?}") };
        assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]), "{overlay}: core API group only");
        assert_eq!(rule.resources.as_deref(), Some(&["pods".to_owned()][..]), "{overlay}: pods only");
        let verbs: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
        assert_eq!(verbs, BTreeSet::from(["get", "list", "watch"]), "{overlay}: verbs");
        assert_eq!(rule.verbs.len(), 3, "{overlay}: no duplicate verbs");
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none(), "{overlay}");

        // The binding gives exactly that role to exactly the DaemonSet's ServiceAccount.
        let [binding] = objects.cluster_role_bindings.as_slice() else { panic!("{overlay}: one binding") };
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
        let ds = objects.daemon_set().expect("daemonset");
        let pod = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec");
        let namespace = ds.metadata.namespace.clone().expect("DaemonSet namespace");
        let [sa] = objects.service_accounts.as_slice() else { panic!("{overlay}: one ServiceAccount") };
        let subjects = binding.subjects.as_deref().unwrap_or_default();
        let [subject] = subjects else { panic!("{overlay}: one subject, got {subjects:?}") };
        assert_eq!(subject.kind, "ServiceAccount");
        assert_eq!(Some(&subject.name), sa.metadata.name.as_ref());
        assert_eq!(subject.namespace.as_ref(), Some(&namespace));
        assert_eq!(sa.metadata.namespace.as_ref(), Some(&namespace));
        assert_eq!(pod.service_account_name.as_ref(), sa.metadata.name.as_ref());
        assert!(
            pod.automount_service_account_token != Some(false),
            "{overlay}: the pod watch needs the token"
        );
        let ns_names: Vec<_> = objects.namespaces.iter().filter_map(|n| n.metadata.name.clone()).collect();
        assert_eq!(ns_names, vec![namespace], "{overlay}: the namespace is created");
    }
}

#[test]
fn env_comes_from_the_downward_api_and_holds_no_keys() {
    for overlay in OVERLAYS {
        let s = settings(&render(overlay));
        let node = s.env("NODE_NAME").unwrap_or_else(|| panic!("{overlay}: NODE_NAME"));
        let field = node.value_from.as_ref().and_then(|v| v.field_ref.as_ref());
        assert_eq!(field.map(|f| f.field_path.as_str()), Some("spec.nodeName"), "{overlay}: NODE_NAME");
        assert!(node.value.is_none(), "{overlay}: NODE_NAME is not a literal");
        for required in ["CLUSTER_NAME", "AWS_REGION"] {
            let value = s.env(required).and_then(|e| e.value.clone()).unwrap_or_default();
            assert!(!value.trim().is_empty(), "{overlay}: {required} must be set");
        }
        assert!(s.container.env_from.is_none(), "{overlay}: no envFrom (secrets would hide there)");
        let names: Vec<&str> = s.container.env.iter().flatten().map(|e| e.name.as_str()).collect();
        let keys: Vec<&&str> = names.iter().filter(|n| n.starts_with("AWS_") && n.contains("KEY")).collect();
        if overlay == KIND_E2E {
            // LocalStack's dummy credentials, and nothing that could be a real key.
            for key in keys {
                assert_eq!(s.env(key).and_then(|e| e.value.as_deref()), Some("test"), "{overlay}: {key}");
            }
            let endpoint = s.env("AWS_ENDPOINT_URL").and_then(|e| e.value.clone()).unwrap_or_default();
            assert!(endpoint.starts_with("http://"), "{overlay}: the emulator endpoint, got {endpoint:?}");
        } else {
            assert!(keys.is_empty(), "{overlay}: keys in the manifests: {keys:?} (use IRSA)");
            assert!(s.env("AWS_ENDPOINT_URL").is_none(), "{overlay}: real AWS, no endpoint override");
            assert!(!names.contains(&"AWS_SESSION_TOKEN"), "{overlay}");
        }
    }
}

/// k8s's toleration rule: does `t` tolerate a taint `key=value:effect`?
fn tolerates(t: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == effect);
    let exists = t.operator.as_deref() == Some("Exists");
    let key_ok = match t.key.as_deref() {
        None | Some("") => exists,
        Some(k) => k == key,
    };
    let value_ok = exists || t.value.as_deref().unwrap_or_default() == value;
    effect_ok && key_ok && value_ok
}

#[test]
fn tolerations_cover_every_node_including_the_control_plane() {
    let s = settings(&render(BASE));
    let tolerations = s.pod.tolerations.clone().unwrap_or_default();
    let taints = [
        ("node-role.kubernetes.io/control-plane", "", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "", "NoExecute"),
        ("node.kubernetes.io/unreachable", "", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "", "NoSchedule"),
        ("dedicated", "gpu", "NoSchedule"),
        ("example.com/anything", "x", "PreferNoSchedule"),
    ];
    for (key, value, effect) in taints {
        assert!(
            tolerations.iter().any(|t| tolerates(t, key, value, effect)),
            "taint {key}={value}:{effect} is not tolerated by {tolerations:?}"
        );
    }
    // The checker itself distinguishes: a keyed toleration does not cover other keys.
    let keyed = Toleration { key: Some("a".into()), operator: Some("Exists".into()), ..Default::default() };
    assert!(tolerates(&keyed, "a", "", "NoSchedule") && !tolerates(&keyed, "b", "", "NoSchedule"));
    assert!(s.pod.node_selector.is_none() && s.pod.affinity.is_none(), "no node is excluded");
}

fn host_volume<'a>(pod: &'a PodSpec, name: &str) -> Option<&'a Volume> {
    pod.volumes.iter().flatten().find(|v| v.name == name && v.host_path.is_some())
}

fn host_path(pod: &PodSpec, container: &Container, mount_path: &str) -> Option<(String, bool)> {
    let mount = container.volume_mounts.iter().flatten().find(|m| m.mount_path == mount_path)?;
    let volume = host_volume(pod, &mount.name)?;
    Some((volume.host_path.as_ref()?.path.clone(), mount.read_only == Some(true)))
}

#[test]
fn host_mounts_are_read_only_except_the_state_dir() {
    for overlay in OVERLAYS {
        let s = settings(&render(overlay));
        let (pod, c) = (&s.pod, &s.container);
        // Logs: read-only, at the same path as on the host, because the symlinks in
        // /var/log/containers (and, on Docker-runtime nodes, in /var/log/pods) are absolute.
        for path in ["/var/log/pods", "/var/log/containers", "/var/lib/docker/containers"] {
            let (host, read_only) =
                host_path(pod, c, path).unwrap_or_else(|| panic!("{overlay}: no hostPath mount at {path}"));
            assert_eq!(host, path, "{overlay}: symlink targets resolve only at the host's path");
            assert!(read_only, "{overlay}: {path} must be mounted read-only");
        }
        // Not the whole of /var/log: it holds the node's own logs (the control plane's audit
        // log on some nodes).
        let broad = c.volume_mounts.iter().flatten().find(|m| {
            host_volume(pod, &m.name).and_then(|v| v.host_path.as_ref()).is_some_and(|h| {
                ["/", "/var", "/var/log"].contains(&h.path.trim_end_matches('/')) || h.path == "/"
            })
        });
        assert!(broad.is_none(), "{overlay}: mounts a whole host tree: {broad:?}");
        // Every configured log glob is under a read-only host mount.
        for glob in s.log_paths() {
            let covered = c.volume_mounts.iter().flatten().any(|m| {
                Path::new(&glob).starts_with(&m.mount_path)
                    && m.read_only == Some(true)
                    && host_volume(pod, &m.name).is_some()
            });
            assert!(covered, "{overlay}: log path {glob} is not under a read-only hostPath mount");
        }
        // The spool survives pod restarts: a writable hostPath at the configured state dir.
        let state = s.state_dir();
        let (host, read_only) = host_path(pod, c, &state)
            .unwrap_or_else(|| panic!("{overlay}: state dir {state} is no hostPath"));
        assert!(!read_only, "{overlay}: the state dir must be writable");
        assert!(host.starts_with("/var/lib/"), "{overlay}: state on the node's disk, got {host}");
        // Every other mount is read-only (the root filesystem is too, see the next test).
        for m in c.volume_mounts.iter().flatten().filter(|m| m.mount_path != state) {
            assert_eq!(m.read_only, Some(true), "{overlay}: {} must be read-only", m.mount_path);
        }
        let config = s.config.as_ref().unwrap_or_else(|| panic!("{overlay}: no --config"));
        assert!(config.path.starts_with("/etc/"), "{overlay}: config from the ConfigMap mount");
    }
}

fn probe_port(container: &Container, port: &IntOrString) -> Option<i32> {
    match port {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port),
    }
}

#[test]
fn probes_and_scrape_port_are_where_the_shipper_listens() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let s = settings(&objects);
        let listen = s.listen().unwrap_or_else(|e| panic!("{overlay}: {e}"));
        assert!(!listen.ip().is_loopback(), "{overlay}: kubelet probes the pod IP, not loopback ({listen})");
        let port = i32::from(listen.port());
        for (name, probe, path) in [
            ("liveness", &s.container.liveness_probe, "/healthz"),
            ("readiness", &s.container.readiness_probe, "/readyz"),
        ] {
            let get = probe.as_ref().and_then(|p| p.http_get.as_ref());
            let get = get.unwrap_or_else(|| panic!("{overlay}: no {name} httpGet probe"));
            assert_eq!(get.path.as_deref(), Some(path), "{overlay}: {name} path");
            assert_eq!(probe_port(&s.container, &get.port), Some(port), "{overlay}: {name} port vs {listen}");
        }
        let metrics = s.container.ports.iter().flatten().find(|p| p.name.as_deref() == Some("metrics"));
        assert_eq!(metrics.map(|p| p.container_port), Some(port), "{overlay}: named metrics port");
        let ds = objects.daemon_set().expect("daemonset");
        let annotations = ds.spec.as_ref().and_then(|s| s.template.metadata.as_ref()?.annotations.clone());
        let annotations = annotations.unwrap_or_default();
        assert_eq!(annotations.get("prometheus.io/scrape").map(String::as_str), Some("true"), "{overlay}");
        assert_eq!(annotations.get("prometheus.io/port"), Some(&port.to_string()), "{overlay}");
        assert_eq!(annotations.get("prometheus.io/path").map(String::as_str), Some("/metrics"), "{overlay}");
    }
}

#[test]
fn security_context_is_restricted() {
    for overlay in OVERLAYS {
        let s = settings(&render(overlay));
        let sc = s.container.security_context.clone().unwrap_or_else(|| panic!("{overlay}: securityContext"));
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{overlay}: readOnlyRootFilesystem");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{overlay}: allowPrivilegeEscalation");
        assert_ne!(sc.privileged, Some(true), "{overlay}: privileged");
        let caps = sc.capabilities.clone().unwrap_or_default();
        assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]), "{overlay}: drop ALL");
        assert!(caps.add.as_deref().unwrap_or_default().is_empty(), "{overlay}: no capability added back");
        let seccomp = sc
            .seccomp_profile
            .clone()
            .or_else(|| s.pod.security_context.as_ref().and_then(|p| p.seccomp_profile.clone()));
        assert_eq!(seccomp.map(|p| p.type_), Some("RuntimeDefault".to_owned()), "{overlay}: seccomp");
        assert_ne!(s.pod.host_network, Some(true), "{overlay}: no host network");
        assert_ne!(s.pod.host_pid, Some(true), "{overlay}: no host PID namespace");
    }
}

#[test]
fn grace_period_outlasts_the_drain_and_resources_are_bounded() {
    for overlay in OVERLAYS {
        let s = settings(&render(overlay));
        let drain = s.shutdown_grace().unwrap_or_else(|e| panic!("{overlay}: {e}"));
        let period = s.pod.termination_grace_period_seconds.unwrap_or(30);
        let period = Duration::from_secs(u64::try_from(period).expect("non-negative"));
        // Strictly longer: after the drain the shipper still persists its state and exits.
        assert!(period > drain, "{overlay}: terminationGracePeriodSeconds {period:?} <= drain {drain:?}");
        let resources = s.container.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        assert!(requests.contains_key("cpu") && requests.contains_key("memory"), "{overlay}: requests");
        assert!(limits.contains_key("memory"), "{overlay}: memory limit");
    }
}

fn image_of(objects: &Objects) -> (String, Option<String>) {
    let s = settings(objects);
    (s.container.image.clone().unwrap_or_default(), s.container.image_pull_policy.clone())
}

#[test]
fn images_are_the_release_in_base_and_the_local_build_in_kind() {
    let version = env!("CARGO_PKG_VERSION");
    let (base, base_policy) = image_of(&render(BASE));
    assert_eq!(base, format!("shipper:{version}"), "base ships the workspace's release");
    assert_eq!(base_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(image_of(&render(EKS_IRSA)).0, base, "eks-irsa keeps the base image");

    // kind-e2e: the image built locally and `kind load`ed, never pulled; the overlay's
    // `images` entry must name the base's image or it silently retags nothing.
    let (kind, kind_policy) = image_of(&render(KIND_E2E));
    assert_eq!(kind, "shipper:e2e");
    assert_eq!(kind_policy.as_deref(), Some("Never"));
    let text = std::fs::read_to_string(deploy_dir().join(KIND_E2E).join("kustomization.yaml")).expect("read");
    let k: Kustomization = serde_yaml::from_str(&text).expect("kustomization");
    let base_name = base.split(':').next().expect("name");
    for image in &k.images {
        assert_eq!(image.name, base_name, "kind-e2e retags an image the base does not use");
        let renamed = image.new_name.as_deref().unwrap_or(&image.name);
        assert_eq!(format!("{renamed}:{}", image.new_tag.as_deref().unwrap_or("latest")), kind);
    }

    // The kind driver tags build.sh's shipper image as that very tag and loads it; the e2e
    // workflow builds nothing else under it (issue #13: its own build was silently replaced).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runner = std::fs::read_to_string(root.join("src/tiers/kind/driver.rs")).expect("kind driver");
    assert!(runner.contains(&format!("const SHIPPER_TAG: &str = \"{kind}\";")), "the runner loads {kind}");
    let workflow = std::fs::read_to_string(root.join("../.github/workflows/e2e.yml")).expect("e2e.yml");
    assert!(!workflow.contains(&kind), "the workflow builds no image of its own as {kind}");
}

#[test]
fn irsa_overlay_annotates_the_service_account_and_base_does_not() {
    let base = render(BASE);
    let base_sa = &base.service_accounts[0];
    assert!(base_sa.metadata.annotations.is_none(), "base carries no account-specific role");
    let irsa = render(EKS_IRSA);
    let role = irsa.service_accounts[0]
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("eks.amazonaws.com/role-arn"))
        .cloned()
        .unwrap_or_default();
    let account = role.strip_prefix("arn:aws:iam::").and_then(|r| r.split_once(":role/"));
    let (account, name) = account.unwrap_or_else(|| panic!("not an IAM role ARN: {role:?}"));
    assert!(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()), "account id in {role}");
    assert!(!name.is_empty());
}

#[test]
fn renderings_match_the_reviewed_snapshots() {
    insta::assert_snapshot!("deploy_base", render_text(BASE));
    insta::assert_snapshot!("deploy_kind_e2e", render_text(KIND_E2E));
}

#[test]
fn a_missing_kubectl_is_a_clear_error() {
    let missing = "/nonexistent/kubectl";
    let err = kustomize_with(missing, &deploy_dir().join(BASE)).expect_err("no such kubectl");
    assert!(matches!(err, ManifestError::KubectlMissing { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(missing) && text.contains("install it"), "{text}");
}
