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
    fn uid_is_a_v4_uuid() {
        let uid = new_uid();
        let parts: Vec<&str> = uid.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')));
    }
}
