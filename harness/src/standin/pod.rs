//! Fabricated, realistic Pod JSON: what the scheduler and kubelet would have filled in.
//!
//! There is no scheduler or kubelet behind the stand-in, so the harness builds pods with
//! [`pod_json`] and fills `status.containerStatuses` with [`container_statuses_json`]. The
//! container ids (`containerd://<64 hex>`) are random; read them back from the JSON to name
//! the matching log files.

use serde_json::{Value, json};

use super::store::now_rfc3339;

/// A Pod as the API server would return it once scheduled (when `node` is set) and running:
/// uid, labels, creationTimestamp, `spec.containers`, and for a bound pod `status.phase`
/// `Running` plus `containerStatuses` with containerd ids, images and imageIDs. An unbound
/// pod is `Pending` without container statuses.
pub fn pod_json(
    namespace: &str,
    name: &str,
    node: Option<&str>,
    labels: &[(&str, &str)],
    containers: &[(&str, &str)],
) -> Value {
    let labels: serde_json::Map<String, Value> =
        labels.iter().map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned()))).collect();
    let spec_containers: Vec<Value> = containers
        .iter()
        .map(|(name, image)| json!({"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}))
        .collect();
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": new_uid(),
            "labels": labels,
            "creationTimestamp": now_rfc3339(),
        },
        "spec": {
            "containers": spec_containers,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
        pod["status"] = json!({
            "phase": "Running",
            "qosClass": "BestEffort",
            "hostIP": "10.0.0.10",
            "podIP": "10.244.0.10",
            "podIPs": [{"ip": "10.244.0.10"}],
            "startTime": now_rfc3339(),
            "containerStatuses": container_statuses_json(containers),
        });
    }
    pod
}

/// A controller's entry of `metadata.ownerReferences`, as the API server stores it:
/// `apiVersion` from the kind (`apps/v1` for ReplicaSet, StatefulSet, DaemonSet, Deployment;
/// `batch/v1` for Job and CronJob; `v1` for anything else), `controller: true`,
/// `blockOwnerDeletion: true`, and a made-up uid derived from kind and name, so every pod of
/// one owner names the same owner, as the pods of a real ReplicaSet do.
pub fn owner_reference_json(kind: &str, name: &str) -> Value {
    let api_version = match kind {
        "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Deployment" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        _ => "v1",
    };
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": stable_uid(&[kind, name]),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A version 4 UUID derived from `parts` (FNV-1a, two rounds): stable across runs.
fn stable_uid(parts: &[&str]) -> String {
    let hash = |seed: u64| {
        parts
            .iter()
            .flat_map(|p| p.bytes().chain([0]))
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3))
    };
    let hex = format!("{:016x}{:016x}", hash(0xCBF2_9CE4_8422_2325), hash(0x8422_2325_CBF2_9CE4));
    let variant = ['8', '9', 'a', 'b'][usize::from(hex.as_bytes()[16]) % 4];
    format!("{}-{}-4{}-{}{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], variant, &hex[17..20], &hex[20..32])
}

/// `status.containerStatuses` for running containers `(name, image)`: each with a fresh
/// `containerd://<64 hex>` id and an `imageID` `<repository>@sha256:<64 hex>`.
pub fn container_statuses_json(containers: &[(&str, &str)]) -> Value {
    let started = now_rfc3339();
    containers
        .iter()
        .map(|(name, image)| {
            let repository = image.rsplit_once(':').map_or(*image, |(repo, _)| repo);
            json!({
                "name": name,
                "image": image,
                "imageID": format!("{repository}@sha256:{}", random_hex(64)),
                "containerID": format!("containerd://{}", random_hex(64)),
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
            })
        })
        .collect()
}

/// A random RFC 4122 version 4 UUID, as the API server assigns to `metadata.uid`.
pub(crate) fn new_uid() -> String {
    let hex = random_hex(32);
    let variant = ['8', '9', 'a', 'b'][fastrand::usize(..4)];
    format!("{}-{}-4{}-{}{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], variant, &hex[17..20], &hex[20..32])
}

fn random_hex(len: usize) -> String {
    (0..len).map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_hex(s: &str, len: usize) -> bool {
        s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    }

    #[test]
    fn bound_pod_has_kubelet_like_statuses() {
        let pod = pod_json(
            "ns",
            "web-0",
            Some("node-a"),
            &[("app", "web")],
            &[("nginx", "docker.io/library/nginx:1.27")],
        );
        assert_eq!(pod["spec"]["nodeName"], "node-a");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        let status = &pod["status"]["containerStatuses"][0];
        assert_eq!(status["name"], "nginx");
        assert_eq!(status["image"], "docker.io/library/nginx:1.27");
        let id = status["containerID"].as_str().unwrap();
        assert!(is_hex(id.strip_prefix("containerd://").unwrap(), 64), "{id}");
        let image_id = status["imageID"].as_str().unwrap();
        assert!(is_hex(image_id.strip_prefix("docker.io/library/nginx@sha256:").unwrap(), 64), "{image_id}");
        // k8s-openapi must accept it.
        let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).unwrap();
        assert_eq!(typed.spec.unwrap().containers[0].name, "nginx");
    }

    #[test]
    fn unbound_pod_is_pending_without_statuses() {
        let pod = pod_json("ns", "p", None, &[], &[("c", "busybox")]);
        assert_eq!(pod["status"]["phase"], "Pending");
        assert!(pod["spec"].get("nodeName").is_none());
        assert!(pod["status"].get("containerStatuses").is_none());
    }

    #[test]
    fn owner_references_name_the_controller_with_its_api_group() {
        let rs = owner_reference_json("ReplicaSet", "web-7d9f8b6c5d");
        assert_eq!(rs["apiVersion"], "apps/v1");
        assert_eq!(rs["kind"], "ReplicaSet");
        assert_eq!(rs["name"], "web-7d9f8b6c5d");
        assert_eq!(rs["controller"], true);
        assert_eq!(owner_reference_json("Job", "report-29081520")["apiVersion"], "batch/v1");
        assert_eq!(owner_reference_json("Node", "n")["apiVersion"], "v1");
        // Every pod of one owner names the same uid; another owner another one.
        assert_eq!(rs["uid"], owner_reference_json("ReplicaSet", "web-7d9f8b6c5d")["uid"]);
        assert_ne!(rs["uid"], owner_reference_json("ReplicaSet", "web-7d9f8b6c5e")["uid"]);
        let mut pod = pod_json("ns", "web-7d9f8b6c5d-x2k4p", Some("node-a"), &[], &[("c", "i:1")]);
        pod["metadata"]["ownerReferences"] = json!([rs]);
        let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).unwrap();
        let owners = typed.metadata.owner_references.unwrap();
        assert_eq!(owners[0].name, "web-7d9f8b6c5d");
        assert_eq!(owners[0].controller, Some(true));
        let uid = &owners[0].uid;
        assert_eq!(uid.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{uid}");
    }

    #[test]
    fn uid_is_a_v4_uuid() {
        let uid = new_uid();
        let parts: Vec<&str> = uid.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')));
    }
}
