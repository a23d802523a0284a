//! The local tier's driver (DESIGN §4), also the container tier's: simulated nodes writing
//! kubelet-style files, the stand-in API serving their pods, a real emulator behind the
//! fault gateway, and the real shipper, as a host process ([`host`], local) or the image in
//! a container (container tier). `[fleet]` runs several nodes and shippers behind the one
//! gateway and API.
//!
//! - [`nodes`]: each node's files, state directory and shipper; crashes and restarts;
//! - [`workload`]: the containers' writers on the simulated nodes, rotation, the ledger;
//! - [`host`]: where the shipper runs and what a docker-level fault becomes;
//! - [`idle`]: connections held open on the shipper's listener;
//! - [`fleet`]: `[expect.fleet]` figures and checks from the gateway's journal.

mod fleet;
pub mod host;
mod idle;
mod nodes;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audit::{self, Ledger};
use crate::backend::{Backend, BackendHandle, BackendKind};
use crate::gateway::{Gateway, GatewayHandle, GatewayOptions};
use crate::report::Check;
use crate::runner::{
    Action, BackendChoice, CLUSTER, LaunchHook, RunError, RunOptions, Step, component, gateway_fault,
    relabel_gate, shipper_settings_env, shutdown_grace,
};
use crate::scenario::{AccountQuotas, FaultKind, PodSpec, Scenario};
use crate::shipper_proc::{ShipperEnv, free_port};
use crate::simnode::SimNode;
use crate::standin::{Availability, Standin, StandinApi, StandinOptions, owner_reference_json, pod_json};
use crate::tiers::{Cadence, ClusterChoice, Drained, Tier, TierFigures};
use host::ClusterEnv;
use nodes::{CRASH_RESTART_DELAY, Crashes, NodeRun};

pub use fleet::{FleetFigures, NodeFigures};
pub use workload::{Workload, WorkloadError};

/// The components of one local-tier environment.
struct Env {
    // Declared first so it is dropped last: the backend container outlives its users.
    cluster: ClusterEnv,
    backend: BackendHandle,
    gateway: GatewayHandle,
    standin: Standin,
    client: aws_sdk_cloudwatchlogs::Client,
    kubeconfig: PathBuf,
}

async fn start_env(
    choice: &BackendChoice,
    cluster: ClusterChoice,
    seed: u64,
    dir: &Path,
    tag: &str,
    account: &AccountQuotas,
) -> Result<Env, RunError> {
    let localstack = match choice {
        BackendChoice::Url(_) => None,
        other => Some(*other == BackendChoice::LocalStack),
    };
    let cluster = ClusterEnv::start(cluster, localstack, tag).await.map_err(component("cluster"))?;
    let kind = cluster.backend_endpoint().map(BackendKind::Url).unwrap_or_else(|| choice.kind());
    let backend = Backend::start(kind).await.map_err(component("backend"))?;
    let upstream = reqwest::Url::parse(&backend.endpoint).map_err(component("backend"))?;
    // The shipper must reach the gateway and the API: loopback, or the container network.
    let listen = std::net::SocketAddr::new(cluster.listen_ip(), 0);
    let gateway = Gateway::start(GatewayOptions {
        upstream: Some(upstream),
        seed,
        listen,
        put_log_events_per_second: account.put_log_events_per_second,
        ..GatewayOptions::default()
    })
    .await
    .map_err(component("gateway"))?;
    let (standin, kubeconfig) = start_api(
        StandinOptions {
            bookmark_interval: Duration::from_secs(1),
            api_addr: listen,
            ..StandinOptions::default()
        },
        dir,
    )
    .await?;
    let client = backend.client();
    Ok(Env { cluster, backend, gateway, standin, client, kubeconfig })
}

/// Node `k`'s directory `what` (`node`, `state`) of `nodes`: one node keeps the names it always
/// had, a fleet's are numbered.
fn node_dir(work: &Path, nodes: usize, k: usize, what: &str) -> PathBuf {
    match nodes {
        1 => work.join(what),
        _ => work.join(format!("{what}-{}", k + 1)),
    }
}

/// The stand-in API as `options` say, and a kubeconfig for it at `dir/kubeconfig` (the local
/// tier's nodes and the bench share this).
pub(crate) async fn start_api(options: StandinOptions, dir: &Path) -> Result<(Standin, PathBuf), RunError> {
    let standin = StandinApi::start(options).await.map_err(component("stand-in API"))?;
    let kubeconfig = dir.join("kubeconfig");
    standin.write_kubeconfig(&kubeconfig).map_err(component("stand-in API"))?;
    Ok((standin, kubeconfig))
}

/// The contract's env for the shipper of node `node`, whose files are on `sim`: the gateway
/// as endpoint, the stand-in API's kubeconfig, a free port, `extra` settings.
pub(crate) fn node_shipper_env(
    node: &str,
    gateway: &GatewayHandle,
    kubeconfig: &Path,
    sim: &SimNode,
    state_dir: PathBuf,
    extra: BTreeMap<String, String>,
) -> Result<ShipperEnv, RunError> {
    Ok(ShipperEnv {
        cluster: CLUSTER.into(),
        node: node.to_owned(),
        endpoint: gateway.url().as_str().trim_end_matches('/').to_owned(),
        kubeconfig: kubeconfig.to_owned(),
        log_paths: format!("{}/*.log", sim.containers_dir().display()),
        state_dir,
        port: free_port().map_err(component("port"))?,
        extra,
    })
}

/// The local (or container) tier, up: its nodes, shippers and workload.
pub(crate) struct NodeTier<'a> {
    scenario: &'a Scenario,
    // Shippers and held connections go before the environment they talk to.
    nodes: Vec<NodeRun>,
    /// Connections an `idle_connections` fault holds open.
    idle: Vec<tokio::net::TcpStream>,
    workload: Workload,
    sims: Vec<SimNode>,
    names: Vec<String>,
    pods: Vec<PodSpec>,
    placement: BTreeMap<String, usize>,
    /// Pods whose `start` has not come.
    pending_pods: Vec<PodSpec>,
    /// (when, pod) of pods with a `lifetime`.
    deletions: Vec<(Duration, String)>,
    run_id: String,
    grace: Duration,
    last_rotation: Duration,
    peak_rss: u64,
    peak_spool: u64,
    backpressure_seen: bool,
    last_metrics: BTreeMap<String, f64>,
    env: Env,
    /// The run's files (node, state, kubeconfig), removed on drop.
    work: tempfile::TempDir,
}

impl<'a> NodeTier<'a> {
    /// Bring the tier up: environment, nodes, the pods due at 0 in the API and on their node,
    /// the groups an operator made beforehand, then the shippers, healthy. `launch` starts
    /// the shipper as it says instead of with the contract's env (local tier only).
    pub(crate) async fn start(
        scenario: &'a Scenario,
        options: &RunOptions,
        out_dir: &Path,
        launch: Option<LaunchHook<'_>>,
    ) -> Result<Self, RunError> {
        let work = tempfile::tempdir().map_err(component("temp dir"))?;
        let tag = crate::tiers::run_tag(&scenario.name, crate::runner::now_nanos());
        let env =
            start_env(&options.backend, options.cluster, options.seed, work.path(), &tag, &scenario.account)
                .await?;
        let names = nodes::node_names(scenario);
        let sims = (0..names.len())
            .map(|k| {
                SimNode::new(node_dir(work.path(), names.len(), k, "node")).map_err(component("simnode"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let run_id =
            format!("r{:x}", options.seed ^ (std::process::id() as u64) << 16 ^ crate::runner::now_nanos());
        let workload = Workload::new(sims[0].clone(), run_id.clone(), scenario.node.clone());
        let pods = scenario.expanded_pods();
        let placement = nodes::placement(&pods, names.len());
        let mut tier = NodeTier {
            scenario,
            nodes: Vec::new(),
            idle: Vec::new(),
            workload,
            sims,
            names,
            pods: pods.clone(),
            placement,
            pending_pods: Vec::new(),
            deletions: Vec::new(),
            run_id,
            grace: shutdown_grace(scenario),
            last_rotation: Duration::ZERO,
            peak_rss: 0,
            peak_spool: 0,
            backpressure_seen: false,
            last_metrics: BTreeMap::new(),
            env,
            work,
        };
        // Pods exist in the API (bound to their node) before their containers write.
        for pod in pods {
            if pod.start.0.is_zero() {
                tier.start_pod(&pod, Duration::ZERO)?;
            } else {
                tier.pending_pods.push(pod);
            }
        }
        // Groups an operator made before the shipper came (Terraform, CloudFormation).
        for group in &scenario.existing_groups {
            audit::groups::create_group(&tier.env.client, group).await.map_err(component("backend"))?;
        }
        for (k, (name, sim)) in tier.names.iter().zip(&tier.sims).enumerate() {
            let node_dir = |what: &str| node_dir(tier.work.path(), tier.names.len(), k, what);
            let shipper_env = node_shipper_env(
                name,
                &tier.env.gateway,
                &tier.env.kubeconfig,
                sim,
                node_dir("state"),
                shipper_settings_env(scenario),
            )?;
            let log_path = match tier.names.len() {
                1 => out_dir.join("shipper.log"),
                _ => out_dir.join(format!("shipper-{name}.log")),
            };
            let _ = std::fs::remove_file(&log_path);
            let state_dir = shipper_env.state_dir.clone();
            let hooked = launch.map(|hook| hook(&shipper_env));
            let crash_plan = crate::runner::crash_plan(&scenario.shipper.crash_points, options.seed);
            let shipper = tier.env.cluster.spawn_shipper(
                shipper_env,
                &node_dir("node"),
                log_path,
                hooked,
                crash_plan,
            )?;
            tier.nodes.push(NodeRun {
                name: name.clone(),
                state_dir,
                shipper,
                restart_at: None,
                crashes: Crashes::default(),
            });
        }
        for node in &mut tier.nodes {
            if let Err(e) = node.shipper.wait_healthy(Duration::from_secs(30)).await {
                // An armed crash point may fire before the first health check answers.
                if node.shipper.armed_crash_point().is_none() {
                    return Err(e.into());
                }
            }
        }
        Ok(tier)
    }

    /// Create `pod` in the API on its node and give its containers writers.
    fn start_pod(&mut self, pod: &PodSpec, since: Duration) -> Result<(), RunError> {
        let k = self.placement[&pod.name];
        let uid = create_pod(&self.env.standin, pod, &self.names[k])?;
        self.workload.add_pod_on(pod, &uid, &self.sims[k])?;
        if let Some(lifetime) = pod.lifetime {
            self.deletions.push((since + lifetime.0, pod.name.clone()));
        }
        Ok(())
    }

    fn delete_pod(&mut self, pod: &str) -> Result<(), RunError> {
        if let Some(ns) = self.workload.namespace_of(pod) {
            self.env.standin.delete_pod(&ns, pod).map_err(component("stand-in API"))?;
        }
        Ok(self.workload.delete(pod)?)
    }
}

impl Tier for NodeTier<'_> {
    fn name(&self) -> &'static str {
        self.env.cluster.name()
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn cadence(&self) -> Cadence {
        Cadence { tick: Duration::from_millis(10), sample: Duration::from_millis(250) }
    }

    fn gateway(&self) -> &GatewayHandle {
        &self.env.gateway
    }

    fn client(&self) -> &aws_sdk_cloudwatchlogs::Client {
        &self.env.client
    }

    fn backend_endpoint(&self) -> &str {
        &self.env.backend.endpoint
    }

    async fn advance(&mut self, t: Duration, ledger: &mut Ledger) -> Result<(), RunError> {
        for node in &mut self.nodes {
            node.upkeep(t)?;
        }
        // Pods whose start time came: create them (an error ends the run, it never just
        // shrinks the workload).
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending_pods).into_iter().partition(|pod| pod.start.0 <= t);
        self.pending_pods = later;
        for pod in due {
            self.start_pod(&pod, pod.start.0)?;
        }
        self.workload.tick(t, ledger)?;
        // Pods whose lifetime is over: their last lines are written (tick above), now they go.
        let (gone, alive): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.deletions).into_iter().partition(|(at, _)| *at <= t);
        self.deletions = alive;
        for (_, pod) in gone {
            self.delete_pod(&pod)?;
        }
        if t - self.last_rotation >= self.scenario.node.monitor_interval.0 {
            self.workload.rotate_over_limit()?;
            self.last_rotation = t;
        }
        Ok(())
    }

    async fn apply(&mut self, step: &Step, t: Duration, checks: &mut Vec<Check>) -> Result<(), RunError> {
        let grace = self.grace;
        // Docker-level faults and listener faults act on one shipper: a fleet refuses them.
        let shipper = &mut self.nodes[0].shipper;
        match &step.action {
            Action::GatewayStart(f) => {
                // Docker-level faults run on the container tier; elsewhere their gateway twin.
                if let Some(kind) =
                    self.env.cluster.start_fault(f.kind, shipper).await.map_err(component("docker fault"))?
                {
                    self.env
                        .gateway
                        .inject(gateway_fault(&crate::scenario::Fault { kind, ..f.clone() }))
                        .map_err(component("gateway"))?;
                }
            }
            Action::GatewayEnd => {
                self.env.cluster.end_faults(shipper).await.map_err(component("docker fault"))?;
                self.env.gateway.clear();
                self.env.gateway.listening().await;
            }
            Action::ApiDown => self.env.standin.set_availability(Availability::Unavailable),
            Action::ApiUp => self.env.standin.set_availability(Availability::Available),
            Action::ApiCompact => {
                self.env.standin.compact();
                self.env.standin.drop_watches();
            }
            // No node to restart on these tiers, and the scenario's writers are done by then
            // (the model refuses a restart while one writes): what a node crash does to the
            // shipper is a kill -9 and a start on the same state once the node is back.
            Action::Kill(after) | Action::NodeRestart(after) => {
                for node in self.nodes.iter_mut() {
                    if node.shipper.is_running() {
                        node.shipper.kill();
                    }
                    node.restart_at = Some(t + *after);
                }
            }
            Action::Term(after) => {
                for node in self.nodes.iter_mut() {
                    let exit = node.shipper.terminate(grace + Duration::from_secs(10)).await;
                    checks.push(Check {
                        name: format!("SIGTERM at {:.1}s", t.as_secs_f64()),
                        ok: exit == Some(0),
                        detail: format!("exit code {exit:?} within grace {grace:?}"),
                    });
                    node.restart_at = Some(t + *after);
                }
            }
            Action::Rotate(pod) => self.workload.force_rotate(pod)?,
            Action::ContainerRestart(pod) => self.workload.restart(pod)?,
            Action::PodDelete(pod) => self.delete_pod(pod)?,
            Action::PodRelabel(pod, labels) => {
                relabel_gate(&self.env.gateway, self.scenario, pod).await?;
                if let Some(ns) = self.workload.namespace_of(pod) {
                    self.env
                        .standin
                        .set_labels(&ns, pod, labels.iter())
                        .map_err(component("stand-in API"))?;
                }
            }
            Action::CreateGroups(groups) => {
                for group in groups {
                    audit::groups::create_group(&self.env.client, group)
                        .await
                        .map_err(component("backend"))?;
                }
            }
            Action::IdleOpen(count) => {
                let addr = shipper
                    .listener()
                    .ok_or_else(|| RunError::Unsupported("the shipper's listener has no address".into()))?;
                self.idle = idle::open(addr, *count).await;
                let name = format!("/healthz under {count} idle connections at {:.1}s", t.as_secs_f64());
                checks.push(idle::probe(addr, name, self.idle.len()).await);
            }
            Action::IdleClose => {
                if let Some(addr) = shipper.listener() {
                    let name =
                        format!("/healthz at the end of the idle connections, {:.1}s", t.as_secs_f64());
                    checks.push(idle::probe(addr, name, self.idle.len()).await);
                }
                self.idle.clear();
            }
            Action::NodeJoin | Action::PodReschedule(_) => {
                // Refused before the run starts (needs::refusal); kept an error, not a no-op.
                return Err(RunError::Unsupported(format!(
                    "{:?} needs several nodes (the kind tier)",
                    step.action
                )));
            }
        }
        Ok(())
    }

    async fn observe(&mut self) {
        for (k, node) in self.nodes.iter().enumerate() {
            if let Some(rss) = node.shipper.rss_kib() {
                self.peak_rss = self.peak_rss.max(rss);
            }
            if let Ok(m) = node.shipper.metrics().await {
                self.peak_spool =
                    self.peak_spool.max(m.get("shipper_spool_bytes").copied().unwrap_or(0.0) as u64);
                self.backpressure_seen |= m.get("shipper_backpressure").is_some_and(|v| *v >= 1.0);
                if k == 0 {
                    self.last_metrics = m;
                }
            }
        }
    }

    fn written(&self, _t: Duration) -> u64 {
        self.workload.written()
    }

    fn planned(&self) -> u64 {
        self.workload.planned()
    }

    fn settled(&self, _t: Duration) -> Result<bool, RunError> {
        Ok(self.workload.done()
            && self.nodes.iter().all(|node| node.restart_at.is_none())
            && self.deletions.is_empty()
            && self.pending_pods.is_empty())
    }

    async fn while_draining(&mut self, t: Duration) -> Result<(), RunError> {
        for node in &mut self.nodes {
            if let Some(status) = node.shipper.reap_exit() {
                node.crashes.record(node.shipper.armed_crash_point(), status, t);
                tokio::time::sleep(CRASH_RESTART_DELAY).await;
                node.shipper.start()?;
            }
        }
        if let Ok(m) = self.nodes[0].shipper.metrics().await {
            self.last_metrics = m;
        }
        Ok(())
    }

    async fn finish(&mut self, run: &Drained<'_>) -> Result<TierFigures, RunError> {
        let scenario = run.scenario;
        if let Ok(m) = self.nodes[0].shipper.metrics().await {
            self.last_metrics = m;
        }
        let mut checks = nodes::all_crashes(&self.nodes).checks(&scenario.shipper.crash_points);
        checks.extend(node_restart_note(scenario, self.env.cluster.name()));
        if !scenario.expect.dropped.is_empty() {
            checks.push(dead_letter_check(scenario, &self.nodes[0].state_dir, self.workload.aged()));
        }
        if scenario.expect.rotation_cuts_traces {
            // The scenario exists to prove a trace cut by rotation still arrives whole: it must
            // have happened, or the run proved nothing.
            let cuts = self.workload.rotations_mid_trace();
            checks.push(Check {
                name: "rotation cut a trace".into(),
                ok: cuts > 0,
                detail: format!("{cuts} rotations fell between two lines of a trace"),
            });
        }
        if let Some(limit) = scenario.expect.max_rss_mib {
            checks.push(Check {
                name: "memory bounded".into(),
                ok: self.peak_rss <= limit * 1024,
                detail: format!("peak RSS {:.1} MiB (limit {limit} MiB)", self.peak_rss as f64 / 1024.0),
            });
        }
        if scenario.expect.backpressure {
            checks.push(Check {
                name: "spool cap reached".into(),
                ok: self.backpressure_seen,
                detail: format!(
                    "backpressure {}; peak spool {} KiB",
                    if self.backpressure_seen { "reported" } else { "never reported" },
                    self.peak_spool / 1024
                ),
            });
        }
        // [expect.fleet] needs [account] put_log_events_per_second (the model says so).
        let fleet = match (&scenario.expect.fleet, scenario.account.put_log_events_per_second) {
            (Some(expect), Some(quota)) => {
                let figures = fleet::figures(
                    &self.env.gateway.journal(),
                    run.delivered,
                    &nodes::node_of_stream(&self.pods, &self.placement, &self.names),
                    quota,
                    expect.max_ask_ratio,
                    run.t0_unix_ms,
                    run.quiet_since.as_secs(),
                );
                checks.extend(fleet::checks(expect, &figures));
                Some(figures)
            }
            _ => None,
        };
        checks.push(nodes::shut_down(&mut self.nodes, self.grace + Duration::from_secs(10)).await);
        Ok(TierFigures {
            checks,
            lines_written: self.workload.written(),
            starts: self.nodes.iter().map(|node| node.shipper.starts()).sum(),
            peak_rss_kib: self.peak_rss,
            peak_spool_bytes: self.peak_spool,
            metrics: std::mem::take(&mut self.last_metrics),
            hosts: self.names.iter().cloned().collect::<BTreeSet<_>>(),
            fleet,
            view: None,
        })
    }
}

/// What `node_restart` became on a tier without a node to restart, said in the report.
fn node_restart_note(scenario: &Scenario, tier: &str) -> Option<Check> {
    let at: Vec<String> = scenario
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::NodeRestart)
        .map(|f| format!("{:.1}s", f.at.0.as_secs_f64()))
        .collect();
    (!at.is_empty()).then(|| Check {
        name: "node restart as shipper kill".into(),
        ok: true,
        detail: format!(
            "node_restart at {}: the {tier} tier has no node to restart; the shipper was killed (SIGKILL) \
             and started again on the same state, the writers having finished before",
            at.join(", ")
        ),
    })
}

/// Expected drops are in the dead-letter file, one line per event, and the workload wrote
/// as many rejectable (aged) lines as the scenario expects to be dropped.
fn dead_letter_check(scenario: &Scenario, state_dir: &Path, aged: u64) -> Check {
    let path = state_dir.join("dead-letters").join("dead-letters.jsonl");
    let lines = std::fs::read_to_string(&path).map(|t| t.lines().count() as u64).unwrap_or(0);
    let expected: u64 = scenario.expect.dropped.values().sum();
    Check {
        name: "dead letters".into(),
        ok: lines == expected && aged == expected,
        detail: format!(
            "{lines} events in {}, {aged} aged lines written, {expected} expected",
            path.display()
        ),
    }
}

fn create_pod(standin: &Standin, pod: &PodSpec, node: &str) -> Result<String, RunError> {
    let labels: Vec<(&str, &str)> = pod.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let containers: Vec<(&str, &str)> =
        pod.containers.iter().map(|c| (c.name.as_str(), c.image.as_str())).collect();
    let mut json = pod_json(&pod.namespace, &pod.name, Some(node), &labels, &containers);
    if !pod.annotations.is_empty() {
        json["metadata"]["annotations"] = serde_json::to_value(&pod.annotations).unwrap_or_default();
    }
    if let Some(owner) = &pod.owner {
        json["metadata"]["ownerReferences"] =
            serde_json::json!([owner_reference_json(&owner.kind, &owner.name)]);
    }
    if let Some(filler) = pod.filler {
        let value = "v".repeat(63);
        for n in 0..filler.labels {
            json["metadata"]["labels"][format!("filler-{n}")] = value.clone().into();
        }
        let annotation = "a".repeat(1024);
        for n in 0..filler.annotation_bytes / 1024 {
            json["metadata"]["annotations"][format!("filler-{n}")] = annotation.clone().into();
        }
    }
    let stored = standin.apply_pod(json).map_err(component("stand-in API"))?;
    Ok(stored["metadata"]["uid"].as_str().unwrap_or("uid").to_owned())
}

/// `harness up`: the stand-in API, a backend and the gateway, until Ctrl-C.
pub async fn up(choice: BackendChoice) -> Result<(), RunError> {
    let work = tempfile::tempdir().map_err(component("temp dir"))?;
    let env = start_env(&choice, ClusterChoice::Local, 1, work.path(), "up", &Default::default()).await?;
    let node = SimNode::new(work.path().join("node")).map_err(component("simnode"))?;
    println!("# stand-in API, {} backend and fault gateway are up. Point a shipper at them:", choice.name());
    println!(
        "export CLUSTER_NAME={CLUSTER} NODE_NAME=node-a AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test"
    );
    println!("export AWS_ENDPOINT_URL={}", env.gateway.url().as_str().trim_end_matches('/'));
    println!("export KUBECONFIG={}", env.kubeconfig.display());
    println!(
        "export SHIPPER_LOG_PATHS='{}/*.log' SHIPPER_STATE_DIR={}",
        node.containers_dir().display(),
        work.path().join("state").display()
    );
    println!("# backend (read back directly): {}", env.backend.endpoint);
    println!(
        "# stand-in control API: {}/_standin/  gateway control API: {}_gateway/",
        env.standin.control_url(),
        env.gateway.url()
    );
    println!("# Ctrl-C to stop.");
    tokio::signal::ctrl_c().await.map_err(component("signal"))?;
    Ok(())
}
