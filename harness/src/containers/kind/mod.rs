//! The kind tier's cluster provider (skeleton; it cannot run on machines without a registry,
//! since kind's node image must be pulled). What it does, with the `kind` and `kubectl` CLIs:
//! create (or reuse) a cluster from a `kind-config/` file, `kind load docker-image` the
//! locally built shipper image, `kubectl apply -k deploy/overlays/kind-e2e`, wait for the
//! DaemonSet, create and delete the scenario's pods, restart a node (`docker restart` of its
//! container), and delete the cluster it created when dropped, also when a test panics.
//!
//! Not done yet: the pods' writer image (a container writing the audit's self-verifying
//! payloads at the scenario's rates) and reading the ledger back from the pods.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::ContainerError;

/// A kind cluster; deleted on drop when this process created it.
#[derive(Debug)]
pub struct KindCluster {
    name: String,
    kubeconfig: PathBuf,
    created: bool,
}

fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<String, ContainerError> {
    let shown = format!("{program} {}", args.join(" "));
    let failed = |reason: String| ContainerError::Command { command: shown.clone(), reason };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run {program}: {e} (is it installed?)")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).map_err(|e| failed(e.to_string()))?;
    }
    let output = child.wait_with_output().map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `kind` and `kubectl` are installed (the error says which is missing).
pub fn check_tools() -> Result<(), ContainerError> {
    run("kind", &["version"], None)?;
    run("kubectl", &["version", "--client"], None)?;
    Ok(())
}

impl KindCluster {
    /// Reuse cluster `name` if it exists, else create it from `config`; its kubeconfig is
    /// written to `kubeconfig`.
    pub fn create_or_reuse(
        name: &str,
        config: &Path,
        kubeconfig: &Path,
    ) -> Result<KindCluster, ContainerError> {
        check_tools()?;
        let existing = run("kind", &["get", "clusters"], None)?;
        let kubeconfig_arg = kubeconfig.display().to_string();
        let created = !existing.lines().any(|l| l.trim() == name);
        if created {
            let config_arg = config.display().to_string();
            run(
                "kind",
                &[
                    "create",
                    "cluster",
                    "--name",
                    name,
                    "--config",
                    &config_arg,
                    "--kubeconfig",
                    &kubeconfig_arg,
                    "--wait",
                    "120s",
                ],
                None,
            )?;
        } else {
            let text = run("kind", &["get", "kubeconfig", "--name", name], None)?;
            std::fs::write(kubeconfig, text)
                .map_err(|source| ContainerError::Io { op: format!("write {kubeconfig_arg}"), source })?;
        }
        Ok(KindCluster { name: name.to_owned(), kubeconfig: kubeconfig.to_owned(), created })
    }

    /// The docker network kind's nodes are on (attach the backend container to it).
    pub fn network(&self) -> &'static str {
        "kind"
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, ContainerError> {
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut all = vec!["--kubeconfig", kubeconfig.as_str()];
        all.extend_from_slice(args);
        run("kubectl", &all, stdin)
    }

    /// `kind load docker-image` (the image never goes through a registry).
    pub fn load_image(&self, image: &str) -> Result<(), ContainerError> {
        run("kind", &["load", "docker-image", image, "--name", &self.name], None).map(drop)
    }

    /// `kubectl apply -k <dir>` (e.g. deploy/overlays/kind-e2e).
    pub fn apply_kustomization(&self, dir: &Path) -> Result<(), ContainerError> {
        let dir = dir.display().to_string();
        self.kubectl(&["apply", "-k", &dir], None).map(drop)
    }

    /// Wait until DaemonSet `namespace/name` is rolled out on every node.
    pub fn wait_daemonset(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<(), ContainerError> {
        let target = format!("daemonset/{name}");
        let timeout = format!("--timeout={}s", timeout.as_secs());
        self.kubectl(&["rollout", "status", "-n", namespace, &target, &timeout], None).map(drop)
    }

    /// Create or update an object (e.g. a scenario pod) from its JSON.
    pub fn apply_json(&self, object: &serde_json::Value) -> Result<(), ContainerError> {
        self.kubectl(&["apply", "-f", "-"], Some(object.to_string().as_bytes())).map(drop)
    }

    /// Delete pod `namespace/name` at once (the shipper pod for a kill; a scenario pod).
    pub fn delete_pod(&self, namespace: &str, name: &str) -> Result<(), ContainerError> {
        self.kubectl(
            &["delete", "pod", "-n", namespace, name, "--grace-period=0", "--force", "--wait=false"],
            None,
        )
        .map(drop)
    }

    /// Restart a node: `docker restart` of its container (kind node names are container names).
    pub fn restart_node(&self, node: &str) -> Result<(), ContainerError> {
        super::docker::run(["restart", node]).map(drop)
    }
}

impl Drop for KindCluster {
    fn drop(&mut self) {
        if self.created {
            let _ = run("kind", &["delete", "cluster", "--name", &self.name], None);
        }
    }
}

/// A scenario pod as a real pod on `node` running `image` with `command` (the writer).
pub fn pod_manifest(
    pod: &crate::scenario::PodSpec,
    node: Option<&str>,
    image: &str,
    command: &[String],
) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = pod
        .containers
        .iter()
        .map(|c| serde_json::json!({ "name": c.name, "image": image, "command": command, "imagePullPolicy": "Never" }))
        .collect();
    let mut manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "namespace": pod.namespace, "name": pod.name, "labels": pod.labels, "annotations": pod.annotations },
        "spec": { "restartPolicy": "Never", "containers": containers },
    });
    if let Some(node) = node {
        manifest["spec"]["nodeName"] = serde_json::Value::from(node);
    }
    manifest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_manifests_keep_labels_and_pin_the_node() {
        let scenario = crate::scenario::Scenario::parse(
            r#"
name = "k"
why = "w"
[[pods]]
namespace = "shop"
name = "web-0"
labels = { app = "web" }
containers = [{ name = "nginx", lines = 1 }, { name = "side", lines = 1 }]
[expect]
groups = { g = ["web-0_nginx"] }
"#,
        )
        .expect("valid");
        let m = pod_manifest(&scenario.pods[0], Some("kind-worker"), "writer:1", &["write".into()]);
        assert_eq!(m["metadata"]["labels"]["app"], "web");
        assert_eq!(m["spec"]["nodeName"], "kind-worker");
        assert_eq!(m["spec"]["containers"].as_array().map(Vec::len), Some(2));
        assert_eq!(m["spec"]["containers"][1]["imagePullPolicy"], "Never");
        let unpinned = pod_manifest(&scenario.pods[0], None, "writer:1", &[]);
        assert!(unpinned["spec"].get("nodeName").is_none());
    }
}
