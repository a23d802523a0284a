//! The kind tier's driver (feature `e2e`): the same scenario file, engine, gateway, fault
//! timeline, audit and report as the other tiers, with a real cluster underneath.
//!
//! - the cluster: kind from `kind-config/` (multi-node when the scenario scales nodes), the
//!   shipper image and the writer image `kind load`ed, `deploy/overlays/kind-e2e` applied
//!   under a generated overlay with the run's settings ([`super::overlay`]: endpoint,
//!   cluster name, the scenario pods' files only), spool state of earlier runs on a reused
//!   cluster removed first;
//! - the backend: LocalStack or moto through testcontainers on the `kind` network, behind the
//!   harness gateway, which listens on the host's address on that network (graded faults);
//! - the workload: each scenario pod a real pod whose containers run `harness write` with
//!   their [`LinePlan`]: the ledger is computed from the plans, nothing is read from the pods;
//! - faults: gateway faults, `docker pause` of the backend, `docker network disconnect` of
//!   the nodes, deletion of the shipper pods (kill), pod relabelling, a held-back worker
//!   joining, pods moving to another node, and a crash of the scenario pods' node
//!   (`node_restart`: once every writer pod on it has exited, `docker kill` + `docker start`
//!   of the node, then wait for it Ready and the DaemonSet's pod on it ready again in a new
//!   container). What kind cannot apply is refused up front
//!   ([`crate::tiers::needs`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cluster::KindCluster;
use super::overlay::{scenario_log_paths, write_run_overlay};
use super::pods::{RUN_LABEL, namespace_object, pod_object, to_yaml};
use crate::audit::Ledger;
use crate::backend::{Backend, BackendKind};
use crate::gateway::{Gateway, GatewayHandle, GatewayOptions};
use crate::report::Check;
use crate::runner::{
    Action, BackendChoice, CLUSTER, RunError, RunOptions, Step, component, gateway_fault, relabel_gate,
    shipper_settings_env,
};
use crate::scenario::{FaultKind, PodSpec, Scenario};
use crate::shipper_proc::parse_prometheus;
use crate::tiers::docker::{BackendContainer, ContainerError, Emulator, Images, cli as docker};
use crate::tiers::{Cadence, Drained, Tier, TierFigures};
use crate::writer::LinePlan;

/// The docker network kind puts its nodes on.
const KIND_NETWORK: &str = "kind";
/// Where the overlay deploys the shipper.
const SHIPPER_NAMESPACE: &str = "shipper";
/// The DaemonSet's name (deploy/base).
const SHIPPER_DAEMONSET: &str = "shipper";
/// The shipper's metrics port (deploy/base, `SHIPPER_LISTEN`).
const SHIPPER_METRICS_PORT: u16 = 2021;
/// The tag deploy/overlays/kind-e2e deploys (`imagePullPolicy: Never`).
const SHIPPER_TAG: &str = "shipper:e2e";
/// The hostPath of the shipper's spool and checkpoints (deploy/base).
const SHIPPER_STATE_DIR: &str = "/var/lib/shipper";
/// How long a rollout, a node join or a writer pod may take beyond its own lines.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a node may take to be Ready again after a reconnect or a restart: kubelet,
/// containerd and the node's pods all start at once on a loaded 4-vCPU runner (kind's own
/// `--wait` for a fresh cluster is 120 s on an idle one).
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(300);
/// Attempts of the scrape after the drain (a pod restarting may miss one).
const FINAL_SCRAPE_ATTEMPTS: u32 = 5;

fn kind_error(e: ContainerError) -> RunError {
    component("kind")(e)
}

/// The repository root (kind-config/, deploy/).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Which kind config and cluster name a scenario needs.
pub fn kind_config(scenario: &Scenario) -> (&'static str, &'static str) {
    if scenario.faults.iter().any(|f| f.kind.needs_several_nodes()) {
        ("shipper-e2e-multi", "kind-config/multi-node.yaml")
    } else {
        ("shipper-e2e", "kind-config/single-node.yaml")
    }
}

/// One scenario pod on kind: its incarnations (one, or one per `pod_reschedule` plus one),
/// each a set of container plans continuing the previous one's sequence numbers.
#[derive(Debug)]
struct KindPod {
    spec: PodSpec,
    incarnations: VecDeque<Vec<LinePlan>>,
    state: PodState,
    /// Nodes it ran on, in order.
    nodes: Vec<String>,
    /// When its current incarnation was created.
    created_at: Duration,
    /// Lines of the incarnations already finished.
    finished_lines: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodState {
    /// Not created yet (its `start` has not come).
    Pending,
    /// An incarnation runs.
    Running,
    /// Moving: waiting for the current incarnation to finish, then the next starts elsewhere.
    Moving,
    /// Every line written (and the pod deleted if it has a `lifetime`).
    Done,
}

/// The pods' line plans, split at each `pod_reschedule` of theirs.
fn kind_pods(scenario: &Scenario, run: &str) -> Result<Vec<KindPod>, RunError> {
    let mut pods = Vec::new();
    for spec in scenario.expanded_pods() {
        let whole: Vec<LinePlan> = spec
            .containers
            .iter()
            .map(|c| LinePlan::new(run, &spec.name, c))
            .collect::<Result<_, _>>()
            .map_err(component("workload"))?;
        let mut moves: Vec<Duration> = scenario
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::PodReschedule && f.pod.as_deref() == Some(spec.name.as_str()))
            .map(|f| f.at.0.saturating_sub(spec.start.0))
            .collect();
        moves.sort();
        let mut incarnations = VecDeque::new();
        let mut rest = whole;
        let mut since = Duration::ZERO;
        for at in moves {
            let (now, later): (Vec<_>, Vec<_>) =
                rest.iter().map(|p| p.split_at(at.saturating_sub(since))).unzip();
            incarnations.push_back(now);
            rest = later;
            since = at;
        }
        incarnations.push_back(rest);
        pods.push(KindPod {
            spec,
            incarnations,
            state: PodState::Pending,
            nodes: Vec::new(),
            created_at: Duration::ZERO,
            finished_lines: 0,
        });
    }
    Ok(pods)
}

/// Kind nodes detached from their network by a `network_disconnect`, with their addresses;
/// what each `node_restart` did.
#[derive(Debug, Default)]
struct DockerFaults {
    paused: bool,
    disconnected: Vec<(String, Ipv4Addr)>,
    restarts: Vec<NodeRestart>,
}

/// One `node_restart` as it happened (times from the start of the run).
#[derive(Debug)]
struct NodeRestart {
    node: String,
    scheduled: Duration,
    /// When the node was killed: later than scheduled if writer pods were still running.
    killed: Duration,
    /// When it was Ready again with the shipper pod ready on it.
    back: Duration,
    /// Writer pods waited for before the kill.
    waited_for: Vec<String>,
    /// The shipper pod ready on it afterwards.
    shipper_pod: String,
}

/// The shipper pods' metrics, summed, and every shipper pod seen.
#[derive(Debug, Default)]
struct ShipperPods {
    seen: BTreeSet<String>,
    metrics: BTreeMap<String, f64>,
    peak_spool: u64,
    /// Why the last scrape was incomplete; `None` after a complete one.
    failure: Option<String>,
}

/// The sum of every pod's metrics, or why not: one failed scrape makes the whole snapshot
/// unusable (a sum without that pod's spool would look drained).
fn sum_scrapes(scrapes: Vec<(String, Result<String, String>)>) -> Result<BTreeMap<String, f64>, String> {
    if scrapes.is_empty() {
        return Err("no shipper pod to scrape".into());
    }
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    let mut failed = Vec::new();
    for (pod, result) in scrapes {
        match result {
            Ok(text) => {
                for (name, value) in parse_prometheus(&text) {
                    *total.entry(name).or_default() += value;
                }
            }
            Err(reason) => failed.push(format!("{pod}: {reason}")),
        }
    }
    if failed.is_empty() { Ok(total) } else { Err(format!("scrape failed for {}", failed.join("; "))) }
}

impl ShipperPods {
    /// Scrape every shipper pod; the metrics are replaced only by a complete scrape, and a
    /// failed one is remembered with its reason.
    fn scrape(&mut self, cluster: &KindCluster) -> Result<BTreeMap<String, String>, ContainerError> {
        let pods = cluster.pod_nodes(SHIPPER_NAMESPACE)?;
        self.seen.extend(pods.keys().cloned());
        let scrapes = pods
            .keys()
            .map(|pod| {
                let result = cluster.pod_metrics(SHIPPER_NAMESPACE, pod, SHIPPER_METRICS_PORT);
                (pod.clone(), result.map_err(|e| e.to_string()))
            })
            .collect();
        self.record(sum_scrapes(scrapes));
        Ok(pods)
    }

    fn record(&mut self, scrape: Result<BTreeMap<String, f64>, String>) {
        match scrape {
            Ok(total) => {
                self.peak_spool =
                    self.peak_spool.max(total.get("shipper_spool_bytes").copied().unwrap_or(0.0) as u64);
                self.metrics = total;
                self.failure = None;
            }
            Err(reason) => self.failure = Some(reason),
        }
    }

    /// The check on the scrape after the drain: the report's metrics (the spool drained, the
    /// counters reconciled) come from it, never from an older snapshot.
    fn final_check(&self) -> Option<Check> {
        self.failure.as_ref().map(|reason| Check {
            name: "shipper metrics scraped after the drain".into(),
            ok: false,
            detail: format!("{reason}: the metrics would be an older snapshot, so they are not judged"),
        })
    }
}

/// The kind tier, up: the cluster with the DaemonSet ready, the backend behind the gateway,
/// the run's namespaces. Dropping it deletes the run's pods and namespaces and starts a
/// held-back worker that never joined (a panicking test leaves a reusable cluster).
pub(crate) struct KindTier<'a> {
    scenario: &'a Scenario,
    /// The run's label value on scenario pods, and the payloads' run id.
    run: String,
    writer_image: String,
    pods: Vec<KindPod>,
    faults: DockerFaults,
    shippers: ShipperPods,
    /// The cluster's nodes, as last listed.
    nodes: Vec<String>,
    /// A worker held out of the cluster until `node_join`.
    held_back: Option<String>,
    joined: bool,
    /// When the run gives up on pods that do not finish writing.
    give_up: Duration,
    last_poll: Duration,
    gateway: GatewayHandle,
    client: aws_sdk_cloudwatchlogs::Client,
    backend_endpoint: String,
    backend_container: BackendContainer,
    cluster: KindCluster,
    /// The run's files (node, state, kubeconfig), removed on drop.
    work: tempfile::TempDir,
}

impl Drop for KindTier<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.delete_pods_labelled(RUN_LABEL, &self.run);
        let _ = self.cluster.delete_namespaces_labelled(RUN_LABEL, &self.run);
        if let (Some(node), false) = (&self.held_back, self.joined) {
            let _ = docker::run(["start", node.as_str()]);
        }
    }
}

impl<'a> KindTier<'a> {
    /// Create or reuse the cluster, load the images, start the backend and the gateway on
    /// the kind network, deploy the DaemonSet with the run's settings and create the run's
    /// namespaces. What kind cannot run was refused before ([`crate::tiers::needs`]).
    pub(crate) async fn start(
        scenario: &'a Scenario,
        options: &RunOptions,
    ) -> Result<KindTier<'a>, RunError> {
        let emulator = match &options.backend {
            BackendChoice::LocalStack => Emulator::LocalStack,
            BackendChoice::Moto => Emulator::Moto,
            BackendChoice::Url(url) => {
                return Err(RunError::Unsupported(format!("the kind tier cannot use --backend {url}")));
            }
        };
        let images = Images::locate().map_err(component("images"))?;
        let work = tempfile::tempdir().map_err(component("temp dir"))?;
        let root = repo_root();
        let (cluster_name, config) = kind_config(scenario);
        let cluster =
            KindCluster::create_or_reuse(cluster_name, &root.join(config), &work.path().join("kubeconfig"))
                .map_err(kind_error)?;
        let nonce = crate::runner::now_nanos();
        let tag = crate::tiers::run_tag(&scenario.name, nonce);
        let run = format!("k{:x}", options.seed ^ nonce);
        let node_containers = cluster.node_containers().map_err(kind_error)?;

        // A fresh shipper: no DaemonSet, and no spool or checkpoints of an earlier run on a
        // reused cluster (they would deliver another run's lines to this backend).
        cluster.delete_namespace(SHIPPER_NAMESPACE).map_err(kind_error)?;
        for node in &node_containers {
            let _ = docker::run(["start", node.as_str()]);
            docker::run(["exec", node.as_str(), "rm", "-rf", SHIPPER_STATE_DIR]).map_err(kind_error)?;
        }
        docker::run(["tag", images.shipper.as_str(), SHIPPER_TAG]).map_err(kind_error)?;
        cluster.load_image(SHIPPER_TAG).map_err(kind_error)?;
        cluster.load_image(&images.writer).map_err(kind_error)?;
        let joining = scenario.faults.iter().any(|f| f.kind == FaultKind::NodeJoin);
        let held_back =
            if joining { node_containers.iter().rfind(|n| n.contains("worker")).cloned() } else { None };
        if joining && held_back.is_none() {
            return Err(RunError::Unsupported(format!(
                "node_join needs a worker to hold back; {config} has none"
            )));
        }

        // The backend on the kind network, behind the gateway on the host's address there.
        let backend_container = BackendContainer::start(
            emulator,
            emulator.image(&images),
            Some(KIND_NETWORK),
            &format!("shipper-harness-{tag}-{}", emulator.name()),
        )
        .await
        .map_err(component("backend"))?;
        let backend = Backend::start(BackendKind::Url(backend_container.host_endpoint()))
            .await
            .map_err(component("backend"))?;
        let upstream = reqwest::Url::parse(&backend.endpoint).map_err(component("backend"))?;
        let host_ip = docker::network_ipv4_gateway(KIND_NETWORK).map_err(kind_error)?;
        let gateway = Gateway::start(GatewayOptions {
            upstream: Some(upstream),
            seed: options.seed,
            listen: SocketAddr::new(IpAddr::V4(host_ip), 0),
            ..GatewayOptions::default()
        })
        .await
        .map_err(component("gateway"))?;
        let pods = kind_pods(scenario, &run)?;
        let writing_ends = pods
            .iter()
            .flat_map(|p| {
                p.spec.containers.iter().map(move |c| {
                    p.spec.start.0
                        + p.spec.lifetime.map(|l| l.0).unwrap_or_default()
                        + Duration::from_secs_f64(c.lines as f64 / c.rate)
                })
            })
            .max()
            .unwrap_or_default();
        let mut tier = KindTier {
            scenario,
            run,
            writer_image: images.writer.clone(),
            pods,
            faults: DockerFaults::default(),
            shippers: ShipperPods::default(),
            nodes: Vec::new(),
            held_back,
            joined: false,
            give_up: crate::runner::last_fault_end(scenario).max(writing_ends) + CLUSTER_TIMEOUT,
            last_poll: Duration::ZERO,
            client: backend.client(),
            backend_endpoint: backend.endpoint.clone(),
            gateway,
            backend_container,
            cluster,
            work,
        };
        if let Some(node) = &tier.held_back {
            tier.cluster.hold_back_node(node).map_err(kind_error)?;
        }

        // The DaemonSet as users deploy it (kind-e2e), its first pods already with the run's
        // settings: the scenario's, the gateway as endpoint, `local` as the cluster name (the
        // scenario files' groups), and the scenario pods' files as the only ones to tail.
        let mut env = shipper_settings_env(scenario);
        env.insert("CLUSTER_NAME".into(), CLUSTER.into());
        env.insert("AWS_ENDPOINT_URL".into(), tier.gateway.url().as_str().trim_end_matches('/').to_owned());
        env.insert("SHIPPER_LOG_PATHS".into(), scenario_log_paths(&scenario.expanded_pods()));
        // Both absolute and canonical: the overlay names kind-e2e by a relative path.
        let overlay = tier.work.path().join("overlay");
        std::fs::create_dir_all(&overlay).map_err(component("deploy"))?;
        let overlay = overlay.canonicalize().map_err(component("deploy"))?;
        let kind_e2e = root.join("deploy/overlays/kind-e2e").canonicalize().map_err(component("deploy"))?;
        write_run_overlay(&overlay, &kind_e2e, &env).map_err(component("deploy"))?;
        tier.cluster.apply_kustomization(&overlay).map_err(kind_error)?;
        tier.cluster
            .wait_daemonset(SHIPPER_NAMESPACE, SHIPPER_DAEMONSET, CLUSTER_TIMEOUT)
            .map_err(kind_error)?;

        // Namespaces the cluster lacks are created with the run's label and deleted with it;
        // existing ones (kube-system) are left alone, only the run's pods go from them.
        let namespaces: BTreeSet<String> =
            scenario.expanded_pods().into_iter().map(|p| p.namespace).collect();
        for ns in &namespaces {
            if !tier.cluster.namespace_exists(ns).map_err(kind_error)? {
                let yaml = to_yaml(&namespace_object(ns, &tier.run)).map_err(component("namespace"))?;
                tier.cluster.apply_yaml(&yaml).map_err(kind_error)?;
            }
        }
        tier.nodes = tier.cluster.nodes().map_err(kind_error)?;
        Ok(tier)
    }
}

impl Tier for KindTier<'_> {
    fn name(&self) -> &'static str {
        "kind"
    }

    fn run_id(&self) -> &str {
        &self.run
    }

    fn cadence(&self) -> Cadence {
        Cadence { tick: Duration::from_millis(100), sample: Duration::from_millis(500) }
    }

    fn gateway(&self) -> &GatewayHandle {
        &self.gateway
    }

    fn client(&self) -> &aws_sdk_cloudwatchlogs::Client {
        &self.client
    }

    fn backend_endpoint(&self) -> &str {
        &self.backend_endpoint
    }

    async fn advance(&mut self, t: Duration, ledger: &mut Ledger) -> Result<(), RunError> {
        for k in 0..self.pods.len() {
            let pod = &self.pods[k];
            if pod.state != PodState::Pending || pod.spec.start.0 > t {
                continue;
            }
            let node = first_node(&self.nodes).ok_or_else(|| RunError::Failed {
                component: "kind",
                reason: "the cluster has no node".into(),
            })?;
            let pod = &mut self.pods[k];
            match create_incarnation(&self.cluster, pod, &self.run, &self.writer_image, &node, t) {
                // Every line of every incarnation goes into the ledger once the pod exists.
                Ok(()) => {
                    pod.incarnations.iter().flatten().for_each(|plan| plan.record_all(ledger));
                    for c in pod.spec.containers.iter().filter(|c| c.excluded_by.is_some()) {
                        ledger.exclude(&pod.spec.name, &c.name);
                    }
                }
                // No API while the nodes are disconnected: create it once they are back.
                Err(_) if !self.faults.disconnected.is_empty() => {}
                Err(e) => return Err(e),
            }
        }
        if t - self.last_poll >= Duration::from_millis(500) {
            self.last_poll = t;
            // The API is unreachable from the host while the nodes are disconnected: poll
            // again later rather than fail.
            if let Ok(now) = self.cluster.nodes() {
                self.nodes = now;
            }
            if let Ok(phases) = self.cluster.pod_phases(RUN_LABEL, &self.run) {
                let (cluster, run, image) = (&self.cluster, &self.run, &self.writer_image);
                advance_pods(cluster, &mut self.pods, &phases, &self.nodes, run, image, t)?;
            }
        }
        Ok(())
    }

    async fn apply(&mut self, step: &Step, t: Duration, _checks: &mut Vec<Check>) -> Result<(), RunError> {
        match &step.action {
            Action::GatewayStart(f) => match f.kind {
                FaultKind::BackendPause => {
                    self.backend_container.pause().await.map_err(kind_error)?;
                    self.faults.paused = true;
                }
                FaultKind::NetworkDisconnect => {
                    for node in self.cluster.nodes().map_err(kind_error)? {
                        let ip = docker::container_ip(&node, KIND_NETWORK).map_err(kind_error)?;
                        docker::network_disconnect(KIND_NETWORK, &node).map_err(kind_error)?;
                        if let Some(ip) = ip {
                            self.faults.disconnected.push((node, ip));
                        }
                    }
                }
                _ => {
                    self.gateway.inject(gateway_fault(f)).map_err(component("gateway"))?;
                }
            },
            Action::GatewayEnd => {
                if std::mem::take(&mut self.faults.paused) {
                    self.backend_container.unpause().await.map_err(kind_error)?;
                }
                // In the order they were disconnected, so each gets its address back.
                let reconnected = std::mem::take(&mut self.faults.disconnected);
                for (node, ip) in &reconnected {
                    docker::reconnect_keeping_address(KIND_NETWORK, node, *ip).map_err(kind_error)?;
                }
                // The run goes on once the nodes are Ready again (kubelet's lease renewed); a
                // node that is not is reported as broken.
                if !reconnected.is_empty() {
                    let nodes: Vec<String> = reconnected.into_iter().map(|(node, _)| node).collect();
                    self.cluster.wait_nodes_ready(&nodes, NODE_READY_TIMEOUT).map_err(kind_error)?;
                }
                self.gateway.clear();
                self.gateway.listening().await;
            }
            Action::Kill(_) => {
                // SIGKILL in place, then the pod gone before the DaemonSet's replacement starts on
                // the same hostPath state.
                for pod in self.cluster.pod_nodes(SHIPPER_NAMESPACE).map_err(kind_error)?.keys() {
                    self.cluster.kill_pod(SHIPPER_NAMESPACE, pod, CLUSTER_TIMEOUT).map_err(kind_error)?;
                }
            }
            Action::PodRelabel(name, labels) => {
                // The scenario relabels a pod that logs: its file's group is decided by the
                // shipper's first look at it, which on kind comes 1-2.5 s after the pod is
                // created. Relabelling before then would make the group a coin flip, so wait
                // (bounded) for the first accepted event of the pod.
                relabel_gate(&self.gateway, self.scenario, name).await?;
                for pod in self.pods.iter().filter(|p| &p.spec.name == name) {
                    self.cluster
                        .relabel_pod(&pod.spec.namespace, name, labels, &[RUN_LABEL])
                        .map_err(kind_error)?;
                }
            }
            Action::NodeJoin => {
                let node = self
                    .held_back
                    .clone()
                    .ok_or_else(|| RunError::Unsupported("node_join: no worker held back".into()))?;
                self.cluster.join_node(&node, CLUSTER_TIMEOUT).map_err(kind_error)?;
                self.joined = true;
                self.cluster
                    .wait_daemonset(SHIPPER_NAMESPACE, SHIPPER_DAEMONSET, CLUSTER_TIMEOUT)
                    .map_err(kind_error)?;
            }
            Action::PodReschedule(name) => {
                for pod in
                    self.pods.iter_mut().filter(|p| &p.spec.name == name && p.state == PodState::Running)
                {
                    pod.state = PodState::Moving;
                }
            }
            Action::NodeRestart(down_for) => {
                let restart =
                    restart_node(&self.cluster, &self.pods, &self.run, step.at, t, *down_for).await?;
                self.faults.restarts.push(restart);
            }
            other => {
                return Err(RunError::Unsupported(format!("the kind tier cannot apply {other:?}")));
            }
        }
        Ok(())
    }

    async fn observe(&mut self) {
        let _ = self.shippers.scrape(&self.cluster);
    }

    fn written(&self, t: Duration) -> u64 {
        self.pods.iter().map(|p| p.written_by(t)).sum()
    }

    fn planned(&self) -> u64 {
        self.scenario.total_lines()
    }

    fn settled(&self, t: Duration) -> Result<bool, RunError> {
        if self.pods.iter().all(|p| p.state == PodState::Done) {
            return Ok(true);
        }
        // Time spent waiting for a restarted node does not count against the writers.
        let restarting: Duration =
            self.faults.restarts.iter().map(|r| r.back.saturating_sub(r.scheduled)).sum();
        if t > self.give_up + restarting {
            let states: Vec<String> = self
                .pods
                .iter()
                .filter(|p| p.state != PodState::Done)
                .map(|p| format!("{}/{} {:?}", p.spec.namespace, p.spec.name, p.state))
                .collect();
            return Err(RunError::Failed {
                component: "kind",
                reason: format!(
                    "pods did not finish writing within {:?}: {}",
                    self.give_up,
                    states.join(", ")
                ),
            });
        }
        Ok(false)
    }

    async fn while_draining(&mut self, _t: Duration) -> Result<(), RunError> {
        Ok(())
    }

    async fn finish(&mut self, run: &Drained<'_>) -> Result<TierFigures, RunError> {
        let mut shipper_nodes = self.shippers.scrape(&self.cluster).map_err(kind_error)?;
        for _ in 1..FINAL_SCRAPE_ATTEMPTS {
            if self.shippers.failure.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            shipper_nodes = self.shippers.scrape(&self.cluster).map_err(kind_error)?;
        }
        let mut checks: Vec<Check> = self.shippers.final_check().into_iter().collect();
        if self.shippers.failure.is_some() {
            self.shippers.metrics.clear();
        }
        let nodes: BTreeSet<String> = self.cluster.nodes().map_err(kind_error)?.into_iter().collect();
        checks.push(daemonset_check(&nodes, &shipper_nodes));
        checks.extend(self.faults.restarts.iter().map(node_restart_check));
        checks.extend(reschedule_checks(run.scenario, &self.pods));
        let substituted = crate::tiers::needs::kind_substitutions(run.scenario);
        if !substituted.is_empty() {
            checks.push(Check { name: "run as written".into(), ok: true, detail: substituted.join("; ") });
        }
        Ok(TierFigures {
            checks,
            // The writer pods are done, so all is written.
            lines_written: (run.ledger.len() + run.ledger.excluded_len()) as u64,
            // A node restart starts the same shipper pod again, in a new container.
            starts: (self.shippers.seen.len() + self.faults.restarts.len()) as u32,
            peak_rss_kib: 0,
            peak_spool_bytes: self.shippers.peak_spool,
            metrics: std::mem::take(&mut self.shippers.metrics),
            hosts: nodes,
            fleet: None,
            view: Some(kind_view(run.scenario, &self.writer_image)),
        })
    }
}

impl KindPod {
    /// Lines its writers should have printed by `t` (the chart's "written" curve).
    fn written_by(&self, t: Duration) -> u64 {
        let current: u64 = match self.state {
            PodState::Pending | PodState::Done => 0,
            PodState::Running | PodState::Moving => self
                .incarnations
                .front()
                .map(|plans| plans.iter().map(|p| p.due(t.saturating_sub(self.created_at))).sum())
                .unwrap_or(0),
        };
        self.finished_lines + current
    }

    fn key(&self) -> String {
        format!("{}/{}", self.spec.namespace, self.spec.name)
    }
}

/// The first node scenario pods go to: the first worker, or the only node.
fn first_node(nodes: &[String]) -> Option<String> {
    nodes.iter().find(|n| n.contains("worker")).or_else(|| nodes.first()).cloned()
}

/// Another node for a pod that ran on `current`: the last-named worker that is not it (a
/// joined worker sorts last), else any other node.
fn other_node(nodes: &[String], current: &str) -> Option<String> {
    let others: Vec<&String> = nodes.iter().filter(|n| n.as_str() != current).collect();
    others.iter().rfind(|n| n.contains("worker")).or_else(|| others.last()).map(|n| (*n).clone())
}

fn create_incarnation(
    cluster: &KindCluster,
    pod: &mut KindPod,
    run: &str,
    writer_image: &str,
    node: &str,
    t: Duration,
) -> Result<(), RunError> {
    let plans = pod.incarnations.front().cloned().unwrap_or_default();
    let object = pod_object(&pod.spec, &plans, run, writer_image, node);
    let yaml = to_yaml(&object).map_err(component("pod"))?;
    cluster.apply_yaml(&yaml).map_err(kind_error)?;
    pod.state = PodState::Running;
    pod.created_at = t;
    pod.nodes.push(node.to_owned());
    Ok(())
}

/// Pods whose writers are done: a moving pod starts its next incarnation elsewhere, a pod
/// whose `lifetime` is over is deleted, the others are done. A failed writer ends the run.
fn advance_pods(
    cluster: &KindCluster,
    pods: &mut [KindPod],
    phases: &BTreeMap<String, String>,
    nodes: &[String],
    run: &str,
    writer_image: &str,
    t: Duration,
) -> Result<(), RunError> {
    for pod in pods.iter_mut().filter(|p| matches!(p.state, PodState::Running | PodState::Moving)) {
        let key = pod.key();
        match phases.get(&key).map(String::as_str) {
            Some("Failed") => {
                return Err(RunError::Failed {
                    component: "kind",
                    reason: format!(
                        "writer pod {key} failed (kubectl -n {} describe pod {})",
                        pod.spec.namespace, pod.spec.name
                    ),
                });
            }
            Some("Succeeded") => {}
            _ => continue,
        }
        let lifetime_over = pod.spec.lifetime.is_none_or(|l| t >= pod.spec.start.0 + l.0);
        let more = pod.incarnations.len() > 1;
        if pod.state == PodState::Running && (more || !lifetime_over) {
            continue;
        }
        if let Some(done) = pod.incarnations.pop_front() {
            pod.finished_lines += done.iter().map(|p| p.lines).sum::<u64>();
        }
        if pod.state == PodState::Moving && !pod.incarnations.is_empty() {
            cluster.delete_pod_and_wait(&pod.spec.namespace, &pod.spec.name).map_err(kind_error)?;
            let current = pod.nodes.last().cloned().unwrap_or_default();
            let node = other_node(nodes, &current).ok_or_else(|| RunError::Failed {
                component: "kind",
                reason: format!("pod {key} cannot move: no node besides {current}"),
            })?;
            create_incarnation(cluster, pod, run, writer_image, &node, t)?;
            // Further moves wait for their own `pod_reschedule`.
            pod.state = PodState::Running;
        } else {
            if pod.spec.lifetime.is_some() {
                cluster.delete_pod(&pod.spec.namespace, &pod.spec.name).map_err(kind_error)?;
            }
            pod.state = PodState::Done;
        }
    }
    Ok(())
}

/// `node_restart` on the node the scenario pods run on. First every writer pod created so
/// far must have exited: the model only allows a restart after the pods' last lines are due,
/// but a pod starts later on kind than its `start` (image, sandbox), and a writer killed
/// mid-write would leave the ledger unknown, so the restart waits for them rather than
/// guess. Then the node is crashed and started again, and the run goes on once it is Ready
/// with the DaemonSet's pod on it ready in a new container (the shipper restarted on its
/// hostPath spool). Pods due meanwhile are created after this returns.
async fn restart_node(
    cluster: &KindCluster,
    pods: &[KindPod],
    run: &str,
    scheduled: Duration,
    t: Duration,
    down_for: Duration,
) -> Result<NodeRestart, RunError> {
    // Times in the report are the run's: `t` now, plus what this takes.
    let began = Instant::now();
    let node = first_node(&cluster.nodes().map_err(kind_error)?).ok_or_else(|| RunError::Failed {
        component: "kind",
        reason: "node_restart: the cluster has no node".into(),
    })?;
    let created: Vec<String> = pods
        .iter()
        .filter(|p| matches!(p.state, PodState::Running | PodState::Moving))
        .map(KindPod::key)
        .collect();
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    let mut waited_for = BTreeSet::new();
    loop {
        let phases = cluster.pod_phases(RUN_LABEL, run).map_err(kind_error)?;
        let writing: Vec<&String> =
            created.iter().filter(|k| phases.get(*k).map(String::as_str) != Some("Succeeded")).collect();
        if let Some(failed) = writing.iter().find(|k| phases.get(**k).map(String::as_str) == Some("Failed")) {
            return Err(RunError::Failed {
                component: "kind",
                reason: format!("writer pod {failed} failed before the node restart"),
            });
        }
        if writing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(RunError::Failed {
                component: "kind",
                reason: format!(
                    "node_restart: writer pods {writing:?} still running after {CLUSTER_TIMEOUT:?}; a \
                     restart now would leave the lines they wrote unknown"
                ),
            });
        }
        waited_for.extend(writing.into_iter().cloned());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before = cluster.pod_containers(SHIPPER_NAMESPACE).map_err(kind_error)?;
    let killed = t + began.elapsed();
    cluster.restart_node(&node, down_for).map_err(kind_error)?;
    let shipper_pod = cluster
        .wait_pod_restarted(SHIPPER_NAMESPACE, &node, &before, NODE_READY_TIMEOUT)
        .map_err(kind_error)?;
    Ok(NodeRestart {
        node,
        scheduled,
        killed,
        back: t + began.elapsed(),
        waited_for: waited_for.into_iter().collect(),
        shipper_pod,
    })
}

/// What a node restart did, for the report (it ran, or the run stopped with an error).
fn node_restart_check(r: &NodeRestart) -> Check {
    let waited = if r.waited_for.is_empty() {
        "no writer was still running".to_owned()
    } else {
        format!("waited for writers {} to exit first", r.waited_for.join(", "))
    };
    Check {
        name: format!("node restart at {:.1}s", r.scheduled.as_secs_f64()),
        ok: true,
        detail: format!(
            "{} killed at {:.1}s ({waited}), Ready again at {:.1}s with shipper pod {} ready in a new container",
            r.node,
            r.killed.as_secs_f64(),
            r.back.as_secs_f64(),
            r.shipper_pod
        ),
    }
}

/// The DaemonSet followed every node: one shipper pod on each.
fn daemonset_check(nodes: &BTreeSet<String>, shipper_pods: &BTreeMap<String, String>) -> Check {
    let covered: BTreeSet<String> = shipper_pods.values().cloned().collect();
    Check {
        name: "a shipper on every node".into(),
        ok: &covered == nodes,
        detail: format!("nodes {nodes:?}, shipper pods on {covered:?}"),
    }
}

/// Every rescheduled pod ran on as many distinct nodes as it had incarnations.
fn reschedule_checks(scenario: &Scenario, pods: &[KindPod]) -> Vec<Check> {
    let moved: BTreeSet<&str> = scenario
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::PodReschedule)
        .filter_map(|f| f.pod.as_deref())
        .collect();
    pods.iter()
        .filter(|p| moved.contains(p.spec.name.as_str()))
        .map(|p| {
            let distinct: BTreeSet<&String> = p.nodes.iter().collect();
            Check {
                name: format!("{} moved between nodes", p.spec.name),
                ok: p.nodes.len() > 1 && distinct.len() > 1,
                detail: format!("ran on {:?}", p.nodes),
            }
        })
        .collect()
}

/// The scenario as the report checks it on kind: every container's image is the writer image
/// (what the pods really run, so what the shipper reports in `container_image`).
pub fn kind_view(scenario: &Scenario, writer_image: &str) -> Scenario {
    let mut view = scenario.clone();
    for pod in &mut view.pods {
        for c in &mut pod.containers {
            c.image = writer_image.to_owned();
        }
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::parse(
            r#"
name = "k"
why = "w"
[[pods]]
namespace = "shop"
name = "web-0"
containers = [{ name = "nginx", lines = 100, rate = 10 }]
[[faults]]
at = "2s"
kind = "node_join"
[[faults]]
at = "3s"
kind = "pod_reschedule"
pod = "web-0"
[[faults]]
at = "6s"
kind = "pod_reschedule"
pod = "web-0"
[expect]
groups = { g = ["web-0_nginx"] }
"#,
        )
        .expect("valid")
    }

    #[test]
    fn rescheduled_pods_split_their_lines_into_incarnations() {
        let s = scenario();
        assert_eq!(kind_config(&s).1, "kind-config/multi-node.yaml");
        let pods = kind_pods(&s, "r1").expect("pods");
        let seqs: Vec<_> = pods[0].incarnations.iter().map(|plans| plans[0].seqs()).collect();
        // 10 lines/s, the first at 0 s: 31 lines are due by 3 s (the last at exactly 3 s), 31
        // more in the 3 s after, the rest on the last node.
        assert_eq!(seqs, [0..31, 31..62, 62..100]);
    }

    #[test]
    fn pods_move_to_another_worker_preferring_the_joined_one() {
        let nodes: Vec<String> =
            ["m-control-plane", "m-worker", "m-worker2"].iter().map(|s| s.to_string()).collect();
        assert_eq!(first_node(&nodes).as_deref(), Some("m-worker"));
        assert_eq!(other_node(&nodes, "m-worker").as_deref(), Some("m-worker2"));
        assert_eq!(other_node(&nodes, "m-worker2").as_deref(), Some("m-worker"));
        let single = vec!["s-control-plane".to_owned()];
        assert_eq!(first_node(&single).as_deref(), Some("s-control-plane"));
        assert_eq!(other_node(&single, "s-control-plane"), None);
    }

    #[test]
    fn the_daemonset_check_wants_a_shipper_on_every_node() {
        let nodes: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let one = BTreeMap::from([("shipper-x".to_owned(), "a".to_owned())]);
        assert!(!daemonset_check(&nodes, &one).ok);
        let both = BTreeMap::from([
            ("shipper-x".to_owned(), "a".to_owned()),
            ("shipper-y".to_owned(), "b".to_owned()),
        ]);
        assert!(daemonset_check(&nodes, &both).ok);
    }

    #[test]
    fn the_node_restart_scenario_runs_on_one_node_and_says_what_happened() {
        let path = repo_root().join("scenarios/kind/node-restart.toml");
        let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kind_config(&s).1, "kind-config/single-node.yaml");
        assert_eq!(crate::tiers::needs::kind_refusal(&s), None);
        let restarts: Vec<_> = crate::runner::plan(&s, 1)
            .into_iter()
            .filter_map(|step| match step.action {
                Action::NodeRestart(down) => Some((step.at, down)),
                _ => None,
            })
            .collect();
        assert_eq!(restarts, [(Duration::from_secs(16), Duration::from_secs(5))]);
        let check = node_restart_check(&NodeRestart {
            node: "shipper-e2e-control-plane".into(),
            scheduled: Duration::from_secs(16),
            killed: Duration::from_millis(17_500),
            back: Duration::from_secs(52),
            waited_for: vec!["shop/web-0".into()],
            shipper_pod: "shipper-x".into(),
        });
        assert_eq!(check.name, "node restart at 16.0s");
        assert!(check.detail.contains("killed at 17.5s (waited for writers shop/web-0 to exit first)"));
        assert!(check.detail.contains("Ready again at 52.0s with shipper pod shipper-x"));
    }

    #[test]
    fn a_failed_scrape_fails_the_check_and_never_keeps_old_metrics() {
        let metrics = "shipper_spool_bytes 10\nshipper_events_delivered_total 5\n";
        let ok = |pod: &str, text: &str| (pod.to_owned(), Ok(text.to_owned()));
        let mut pods = ShipperPods::default();
        pods.record(sum_scrapes(vec![ok("a", metrics), ok("b", "shipper_spool_bytes 0\n")]));
        assert_eq!(pods.metrics.get("shipper_spool_bytes"), Some(&10.0));
        assert_eq!(pods.peak_spool, 10);
        assert!(pods.final_check().is_none());
        // The worker's pod cannot be reached: the sum without it would look drained.
        pods.record(sum_scrapes(vec![
            ok("a", "shipper_spool_bytes 0\n"),
            ("b".to_owned(), Err("context deadline exceeded".to_owned())),
        ]));
        let check = pods.final_check().expect("a failing check");
        assert!(!check.ok);
        assert!(check.detail.contains("b: context deadline exceeded"), "{}", check.detail);
        // A complete scrape afterwards clears it.
        pods.record(sum_scrapes(vec![
            ok("a", "shipper_spool_bytes 0\n"),
            ok("b", "shipper_spool_bytes 0\n"),
        ]));
        assert!(pods.final_check().is_none());
        assert_eq!(pods.metrics.get("shipper_spool_bytes"), Some(&0.0));
        assert!(sum_scrapes(Vec::new()).is_err(), "no pod is no evidence");
    }

    #[test]
    fn the_report_expects_the_writer_image() {
        let view = kind_view(&scenario(), "shipper-harness/writer:abc");
        assert_eq!(view.pods[0].containers[0].image, "shipper-harness/writer:abc");
    }
}
