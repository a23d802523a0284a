//! The kind tier's cluster provider (skeleton; it cannot run on machines without a registry,
//! since kind's node image must be pulled). What it does, with the `kind` and `kubectl` CLIs:
//! create (or reuse) a cluster from a `kind-config/` file, `kind load docker-image` the
//! locally built shipper image, `kubectl apply -k deploy/overlays/kind-e2e`, wait for the
//! DaemonSet, create and delete the scenario's pods, restart a node (`docker restart` of its
//! container), and delete the cluster it created when dropped, also when a test panics.
//!
//! The scenario's pods, as typed objects running the writer image, come from
//! [`super::pods`] (not behind `e2e`: their rendering is snapshot-tested offline).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::tiers::docker::{ContainerError, cli as docker};

/// A kind cluster; deleted on drop when this process created it (unless
/// [`KEEP_CLUSTERS_VAR`] is set).
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

    /// Crash a node and boot it again: `docker kill` of its container (kind node names are
    /// container names) SIGKILLs every process on it at once — kubelet, containerd, every
    /// pod's containers — with no shutdown (`docker restart` would give systemd ten seconds
    /// to stop the pods cleanly: a reboot, not a crash); `down_for` later `docker start`. Its
    /// `/var` is a volume, so pod logs and hostPath state survive, as on a node's disk (the
    /// host's page cache survives too: this is a crash of the node's processes, not a power
    /// loss).
    pub fn restart_node(&self, node: &str, down_for: Duration) -> Result<(), ContainerError> {
        docker::run(["kill", node])?;
        std::thread::sleep(down_for);
        docker::run(["start", node]).map(drop)
    }

    /// `pod → (node, first container ready, its restart count)` of every pod in `namespace`.
    pub fn pod_containers(&self, namespace: &str) -> Result<BTreeMap<String, PodContainer>, ContainerError> {
        let template = "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} \
                        {.status.containerStatuses[0].ready} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}";
        let text = self.kubectl(&["get", "pods", "-n", namespace, "-o", template], None)?;
        Ok(parse_pod_containers(&text))
    }

    /// Whether node `node` reports Ready (false while the API does not answer).
    pub fn node_ready(&self, node: &str) -> bool {
        let target = format!("node/{node}");
        self.kubectl(&["wait", "--for=condition=Ready", &target, "--timeout=5s"], None).is_ok()
    }

    /// After a node restart: wait until `node` is Ready and a pod of `namespace` on it is
    /// ready in a container started since `before` (another pod, or a higher restart count:
    /// a status from before the crash, still Ready, does not count). Returns the pod's name.
    pub fn wait_pod_restarted(
        &self,
        namespace: &str,
        node: &str,
        before: &BTreeMap<String, PodContainer>,
        timeout: Duration,
    ) -> Result<String, ContainerError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut last = String::from("the API did not answer");
        loop {
            // The API server may be on the restarted node: errors mean "not yet".
            if let Ok(now) = self.pod_containers(namespace) {
                let restarted = now.iter().find(|(name, c)| {
                    c.node == node && c.ready && before.get(*name).is_none_or(|old| c.restarts > old.restarts)
                });
                if let Some((name, _)) = restarted
                    && self.node_ready(node)
                {
                    return Ok(name.clone());
                }
                last = format!("pods of {namespace}: {now:?}");
            }
            if std::time::Instant::now() >= deadline {
                let health = match self.nodes_health(&[node.to_owned()]) {
                    Ok(Ok(())) => "the node is Ready".to_owned(),
                    Ok(Err(broken)) => format!("the node is broken: {broken}"),
                    Err(e) => format!("the API server did not answer: {e}"),
                };
                return Err(ContainerError::Unhealthy {
                    what: format!("node {node} after its restart"),
                    reason: format!(
                        "no pod of {namespace} ready again on it within {timeout:?} ({health}); {last}"
                    ),
                });
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The cluster's node names (= their container names), sorted.
    pub fn nodes(&self) -> Result<Vec<String>, ContainerError> {
        let text = self.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"], None)?;
        let mut nodes: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        nodes.sort();
        Ok(nodes)
    }

    /// The node containers kind made for this cluster, whether registered or not, sorted.
    pub fn node_containers(&self) -> Result<Vec<String>, ContainerError> {
        let text = run("kind", &["get", "nodes", "--name", &self.name], None)?;
        let mut nodes: Vec<String> =
            text.lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect();
        nodes.sort();
        Ok(nodes)
    }

    /// Take a worker out of the cluster: remove kindnet's CNI conflist, stop its container,
    /// then delete its Node object (so the DaemonSet has no pod for it).
    /// [`KindCluster::join_node`] brings it back.
    ///
    /// The conflist holds the node's pod CIDR; the node rejoins with a new one, and a stale
    /// conflist would give its pods addresses the control plane cannot route to (the metrics
    /// scrapes through the API server's proxy then hang). Without it the node stays NotReady
    /// until kindnet writes the new one.
    pub fn hold_back_node(&self, node: &str) -> Result<(), ContainerError> {
        docker::run(["exec", node, "rm", "-f", KINDNET_CONFLIST])?;
        docker::run(["stop", node])?;
        self.kubectl(&["delete", "node", node, "--ignore-not-found", "--wait=true"], None).map(drop)
    }

    /// Start a held-back worker: its kubelet registers the node again; wait until it is Ready.
    pub fn join_node(&self, node: &str, timeout: Duration) -> Result<(), ContainerError> {
        docker::run(["start", node])?;
        let deadline = std::time::Instant::now() + timeout;
        let target = format!("node/{node}");
        let wait = format!("--timeout={}s", timeout.as_secs().max(1));
        // `kubectl wait` fails at once while the Node object does not exist yet.
        loop {
            match self.kubectl(&["wait", "--for=condition=Ready", &target, &wait], None) {
                Ok(_) => return Ok(()),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    }

    /// `kubectl apply -f -` of a YAML document.
    pub fn apply_yaml(&self, yaml: &str) -> Result<(), ContainerError> {
        self.kubectl(&["apply", "-f", "-"], Some(yaml.as_bytes())).map(drop)
    }

    /// Delete namespace `name` if it exists, waiting until it is gone.
    pub fn delete_namespace(&self, name: &str) -> Result<(), ContainerError> {
        self.kubectl(&["delete", "namespace", name, "--ignore-not-found", "--wait=true"], None).map(drop)
    }

    /// Whether namespace `name` exists.
    pub fn namespace_exists(&self, name: &str) -> Result<bool, ContainerError> {
        let found = self.kubectl(&["get", "namespace", name, "--ignore-not-found", "-o", "name"], None)?;
        Ok(!found.is_empty())
    }

    /// Delete every pod labelled `label=value` in every namespace, without waiting.
    pub fn delete_pods_labelled(&self, label: &str, value: &str) -> Result<(), ContainerError> {
        let selector = format!("{label}={value}");
        self.kubectl(&["delete", "pods", "--all-namespaces", "-l", &selector, "--wait=false"], None).map(drop)
    }

    /// Delete every namespace labelled `label=value`, without waiting.
    pub fn delete_namespaces_labelled(&self, label: &str, value: &str) -> Result<(), ContainerError> {
        let selector = format!("{label}={value}");
        self.kubectl(&["delete", "namespace", "-l", &selector, "--wait=false"], None).map(drop)
    }

    /// Delete pod `namespace/name` and wait until it is gone (a pod moving to another node
    /// keeps its name).
    pub fn delete_pod_and_wait(&self, namespace: &str, name: &str) -> Result<(), ContainerError> {
        self.kubectl(&["delete", "pod", "-n", namespace, name, "--ignore-not-found", "--wait=true"], None)
            .map(drop)
    }

    /// `namespace/name → phase` of every pod labelled `label=value`.
    pub fn pod_phases(&self, label: &str, value: &str) -> Result<BTreeMap<String, String>, ContainerError> {
        let selector = format!("{label}={value}");
        let template =
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.phase}{\"\\n\"}{end}";
        let text = self.kubectl(&["get", "pods", "-A", "-l", &selector, "-o", template], None)?;
        Ok(parse_pairs(&text))
    }

    /// `pod → node` of every pod in `namespace` (e.g. the shipper's).
    pub fn pod_nodes(&self, namespace: &str) -> Result<BTreeMap<String, String>, ContainerError> {
        let template = "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}";
        let text = self.kubectl(&["get", "pods", "-n", namespace, "-o", template], None)?;
        Ok(parse_pairs(&text))
    }

    /// Replace the labels of pod `namespace/name` with `labels` (every other label but the
    /// ones in `keep` is removed).
    pub fn relabel_pod(
        &self,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        keep: &[&str],
    ) -> Result<(), ContainerError> {
        let target = format!("pod/{name}");
        let current =
            self.kubectl(&["get", "-n", namespace, &target, "-o", "jsonpath={.metadata.labels}"], None)?;
        let current: BTreeMap<String, String> = serde_json::from_str(&current).unwrap_or_default();
        let mut args: Vec<String> =
            vec!["label".into(), "-n".into(), namespace.into(), target, "--overwrite".into()];
        args.extend(
            current
                .keys()
                .filter(|k| !labels.contains_key(*k) && !keep.contains(&k.as_str()))
                .map(|k| format!("{k}-")),
        );
        args.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.kubectl(&args, None).map(drop)
    }

    /// Prometheus text of pod `namespace/pod`'s `port` `/metrics`, through the API server's
    /// pod proxy (no port-forward, no route from the host to pod IPs needed).
    /// Bounded by [`SCRAPE_TIMEOUT`]: a pod the API server cannot reach fails the scrape
    /// instead of hanging it.
    pub fn pod_metrics(&self, namespace: &str, pod: &str, port: u16) -> Result<String, ContainerError> {
        let args = metrics_args(namespace, pod, port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.kubectl(&args, None)
    }

    /// A kill of pod `namespace/pod` (the shipper's `kill` fault): its container is SIGKILLed
    /// in place (`crictl stop --timeout 0` inside its node, as the OOM killer would), then the
    /// pod is deleted without force and waited for until gone, so the DaemonSet's replacement
    /// never overlaps the old process on the node's spool (a forced delete returns while the
    /// old container may still run, and kubelet restarting it in place backs off for seconds).
    pub fn kill_pod(&self, namespace: &str, pod: &str, timeout: Duration) -> Result<(), ContainerError> {
        let target = format!("pod/{pod}");
        let text = self.kubectl(
            &[
                "get",
                "-n",
                namespace,
                &target,
                "-o",
                "jsonpath={.spec.nodeName} {.status.containerStatuses[0].containerID}",
            ],
            None,
        )?;
        if let Some((node, id)) = parse_node_and_container(&text) {
            docker::run(["exec", node.as_str(), "crictl", "stop", "--timeout", "0", id.as_str()])?;
        }
        let wait = format!("--timeout={}s", timeout.as_secs().max(1));
        self.kubectl(
            &["delete", "pod", "-n", namespace, pod, "--ignore-not-found", "--wait=true", &wait],
            None,
        )
        .map(drop)
    }

    /// Each of `nodes`' health: `Ok(())` when every one is registered and Ready, else what is
    /// wrong with each that is not (bounded by [`SCRAPE_TIMEOUT`]).
    pub fn nodes_health(&self, nodes: &[String]) -> Result<Result<(), String>, ContainerError> {
        let timeout = format!("--request-timeout={}s", SCRAPE_TIMEOUT.as_secs());
        let template = "jsonpath={range .items[*]}{.metadata.name}{range .status.conditions[*]} \
                        {.type}={.status}{end}{\"\\n\"}{end}";
        let text = self.kubectl(&[&timeout, "get", "nodes", "-o", template], None)?;
        Ok(not_ready(nodes, &text))
    }

    /// Wait until every node of `nodes` is Ready (after a reconnect or a restart). A node that
    /// is not Ready within `timeout` is reported with its conditions: a broken node, not a
    /// scenario failure.
    pub fn wait_nodes_ready(&self, nodes: &[String], timeout: Duration) -> Result<(), ContainerError> {
        poll_until(timeout, Duration::from_secs(2), || match self.nodes_health(nodes) {
            Ok(health) => health,
            Err(e) => Err(format!("the API server did not answer: {e}")),
        })
        .map_err(|reason| ContainerError::Unhealthy {
            what: format!("node(s) {}", nodes.join(", ")),
            reason: format!("not Ready within {timeout:?} (a broken node): {reason}"),
        })
    }
}

/// kindnet's CNI config on a node (written by its kindnet pod, with the node's pod CIDR).
pub const KINDNET_CONFLIST: &str = "/etc/cni/net.d/10-kindnet.conflist";

/// The longest one API request of a scrape or a health probe may take.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// `kubectl` arguments of a metrics scrape through the API server's pod proxy, with a request
/// timeout: without one, a pod the control plane cannot route to hangs the scrape.
fn metrics_args(namespace: &str, pod: &str, port: u16) -> Vec<String> {
    vec![
        format!("--request-timeout={}s", SCRAPE_TIMEOUT.as_secs()),
        "get".into(),
        "--raw".into(),
        format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/metrics"),
    ]
}

/// `node containerd://id` → (node, id); `None` while the pod has no node or no container.
fn parse_node_and_container(text: &str) -> Option<(String, String)> {
    let (node, id) = text.trim().split_once(' ')?;
    let id = id.trim();
    let id = id.split_once("://").map_or(id, |(_, id)| id);
    (!node.is_empty() && !id.is_empty()).then(|| (node.to_owned(), id.to_owned()))
}

/// Of `expected` nodes, given `name Type=Status ...` lines, the ones not Ready and why
/// (missing, or Ready=False/Unknown with the other conditions that are set).
fn not_ready(expected: &[String], text: &str) -> Result<(), String> {
    let seen: BTreeMap<&str, Vec<&str>> = text
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            Some((fields.next()?, fields.collect()))
        })
        .collect();
    let broken: Vec<String> = expected
        .iter()
        .filter_map(|node| match seen.get(node.as_str()) {
            None => Some(format!("{node}: not registered")),
            Some(conditions) if conditions.contains(&"Ready=True") => None,
            Some(conditions) => {
                let ready =
                    conditions.iter().find(|c| c.starts_with("Ready=")).copied().unwrap_or("Ready missing");
                let other: Vec<&str> = conditions
                    .iter()
                    .filter(|c| !c.starts_with("Ready=") && c.ends_with("=True"))
                    .copied()
                    .collect();
                Some(format!(
                    "{node}: {ready}{}",
                    if other.is_empty() { String::new() } else { format!(", {}", other.join(", ")) }
                ))
            }
        })
        .collect();
    if broken.is_empty() { Ok(()) } else { Err(broken.join("; ")) }
}

/// Call `check` every `interval` until it returns `Ok`, or `timeout` has passed: then the
/// last reason it gave.
pub fn poll_until<T>(
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match check() {
            Ok(done) => return Ok(done),
            Err(reason) if std::time::Instant::now() >= deadline => return Err(reason),
            Err(_) => std::thread::sleep(interval),
        }
    }
}

/// A pod's node and its first container's state ([`KindCluster::pod_containers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodContainer {
    /// The node it is bound to (empty while unscheduled).
    pub node: String,
    /// The container is ready.
    pub ready: bool,
    /// How many times it was restarted.
    pub restarts: u32,
}

/// `name node ready restarts` lines; fields a pod has no status for yet are not ready, 0.
fn parse_pod_containers(text: &str) -> BTreeMap<String, PodContainer> {
    text.lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let name = fields.next()?.to_owned();
            let node = fields.next().unwrap_or_default().to_owned();
            let ready = fields.next() == Some("true");
            let restarts = fields.next().and_then(|r| r.parse().ok()).unwrap_or(0);
            Some((name, PodContainer { node, ready, restarts }))
        })
        .collect()
}

/// `key value` lines into a map.
fn parse_pairs(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// Set (non-empty) to keep the clusters a run created: later runs reuse them, and CI can
/// export their logs after a failure.
pub const KEEP_CLUSTERS_VAR: &str = "SHIPPER_HARNESS_KEEP_KIND";

impl Drop for KindCluster {
    fn drop(&mut self) {
        let keep = std::env::var_os(KEEP_CLUSTERS_VAR).is_some_and(|v| !v.is_empty());
        if self.created && !keep {
            let _ = run("kind", &["delete", "cluster", "--name", &self.name], None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_lines_parse_into_pairs() {
        let text = "shop/web-0 Running\nshop/web-1 Succeeded\n\n";
        let pairs = parse_pairs(text);
        assert_eq!(pairs.get("shop/web-1").map(String::as_str), Some("Succeeded"));
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn every_scrape_has_a_request_timeout() {
        let args = metrics_args("shipper", "shipper-x", 2021);
        assert_eq!(args[0], "--request-timeout=5s");
        assert_eq!(args[3], "/api/v1/namespaces/shipper/pods/shipper-x:2021/proxy/metrics");
    }

    #[test]
    fn the_kill_finds_the_container_on_its_node() {
        assert_eq!(
            parse_node_and_container("kind-worker containerd://0af3\n"),
            Some(("kind-worker".to_owned(), "0af3".to_owned()))
        );
        assert_eq!(parse_node_and_container("kind-worker "), None, "no container yet: nothing to stop");
        assert_eq!(parse_node_and_container(""), None);
    }

    #[test]
    fn nodes_not_ready_are_reported_with_their_conditions() {
        let nodes: Vec<String> = ["cp", "w1", "w2"].iter().map(|s| s.to_string()).collect();
        let all_ready =
            "cp MemoryPressure=False Ready=True\nw1 Ready=True\nw2 DiskPressure=False Ready=True\n";
        assert_eq!(not_ready(&nodes, all_ready), Ok(()));
        let broken = "cp Ready=True\nw1 MemoryPressure=False NetworkUnavailable=True Ready=False\n";
        assert_eq!(
            not_ready(&nodes, broken),
            Err("w1: Ready=False, NetworkUnavailable=True; w2: not registered".to_owned())
        );
        assert_eq!(not_ready(&nodes[..1], "cp Ready=Unknown\n"), Err("cp: Ready=Unknown".to_owned()));
    }

    #[test]
    fn polling_stops_when_ready_and_gives_the_last_reason_at_the_deadline() {
        let mut calls = 0;
        let done = poll_until(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            if calls < 3 { Err(format!("attempt {calls}")) } else { Ok(calls) }
        });
        assert_eq!(done, Ok(3));
        let start = std::time::Instant::now();
        let never: Result<(), String> =
            poll_until(Duration::from_millis(50), Duration::from_millis(5), || Err("w1: Ready=False".into()));
        assert_eq!(never, Err("w1: Ready=False".to_owned()));
        assert!(start.elapsed() >= Duration::from_millis(50), "waited the whole timeout");
    }

    #[test]
    fn pod_container_lines_parse_with_missing_status() {
        let text = "shipper-a n1 true 2\nshipper-b n2 false 0\nshipper-c\n";
        let pods = parse_pod_containers(text);
        assert_eq!(pods["shipper-a"], PodContainer { node: "n1".into(), ready: true, restarts: 2 });
        assert!(!pods["shipper-b"].ready);
        assert_eq!(pods["shipper-c"], PodContainer { node: String::new(), ready: false, restarts: 0 });
    }
}
