//! The local-tier scenario runner (DESIGN §4): a simulated node, the stand-in API, a real
//! emulator behind the fault gateway, the real shipper binary, the workload, the fault
//! timeline, the drain gate and the audit.

mod fleet;
mod idle;
#[cfg(feature = "e2e")]
pub mod kind;
mod nodes;
mod support;
mod timeline;
mod verdict;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::audit::{self, Ledger};
use crate::backend::{Backend, BackendKind};
use crate::cluster::{ClusterChoice, ClusterEnv};
use crate::gateway::{
    Fault as GatewayFault, FaultKind as GatewayFaultKind, Gateway, GatewayHandle, GatewayOptions,
};
use crate::report::{Check, Report, Sample};
use crate::scenario::Scenario;
use crate::shipper_proc::{ShipperEnv, ShipperError, ShipperLaunch, free_port};
use crate::simnode::SimNode;
use crate::standin::{Availability, Standin, StandinApi, StandinOptions, owner_reference_json, pod_json};
use nodes::{CRASH_RESTART_DELAY, Crashes, NodeRun};

pub use fleet::{FleetFigures, NodeFigures};
pub use support::{kind_refusal, kind_substitutions, single_node_refusal};
pub use timeline::{Action, Step, plan};
pub use workload::{Workload, WorkloadError};

/// The cluster name every local-tier scenario uses (scenario groups are `k8s_local_...`).
pub const CLUSTER: &str = "local";

/// Which CloudWatch Logs backend to run against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendChoice {
    /// moto server on the host (default).
    Moto,
    /// LocalStack on the host.
    LocalStack,
    /// Any endpoint URL.
    Url(String),
}

impl BackendChoice {
    /// `moto`, `localstack`, or a URL.
    pub fn parse(s: &str) -> Self {
        match s {
            "moto" => BackendChoice::Moto,
            "localstack" => BackendChoice::LocalStack,
            url => BackendChoice::Url(url.to_owned()),
        }
    }

    fn kind(&self) -> BackendKind {
        match self {
            BackendChoice::Moto => BackendKind::Moto,
            BackendChoice::LocalStack => BackendKind::LocalStack,
            BackendChoice::Url(u) => BackendKind::Url(u.clone()),
        }
    }

    fn name(&self) -> String {
        match self {
            BackendChoice::Moto => "moto".into(),
            BackendChoice::LocalStack => "localstack".into(),
            BackendChoice::Url(u) => u.clone(),
        }
    }
}

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Backend.
    pub backend: BackendChoice,
    /// Seed for random fault points and payload run ids.
    pub seed: u64,
    /// Print progress to stdout.
    pub progress: bool,
    /// Report directory (default `target/harness/<scenario>`).
    pub out_dir: Option<PathBuf>,
    /// Where the node and the shipper run (default: the local tier).
    pub cluster: ClusterChoice,
}

/// The scenario could not be run (as opposed to: it ran and failed its verdict).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A component failed to start or act.
    #[error("{component}: {reason}")]
    Component {
        /// Which one.
        component: &'static str,
        /// Why.
        reason: String,
    },
    /// The shipper could not be run.
    #[error(transparent)]
    Shipper(#[from] ShipperError),
    /// The workload failed.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// The tier cannot run this scenario as written (what and why).
    #[error("{0}")]
    Unsupported(String),
}

fn component<E: std::fmt::Display>(component: &'static str) -> impl Fn(E) -> RunError {
    move |e| RunError::Component { component, reason: e.to_string() }
}

fn accepted_per_group(gateway: &GatewayHandle) -> BTreeMap<String, u64> {
    gateway
        .summary()
        .accepted
        .into_iter()
        .map(|(group, streams)| (group, streams.values().map(|s| s.events).sum()))
        .collect()
}

/// `expect.delivered_by`: at each time, the groups' acceptances cover every line written to
/// the streams `[expect.groups]` lists for them (stream `<pod>_<container>` per the naming
/// contract).
fn delivered_by_checks(
    scenario: &Scenario,
    snapshots: &[Option<BTreeMap<String, u64>>],
    ledger: &Ledger,
) -> Vec<Check> {
    let written: BTreeMap<String, usize> =
        ledger.counts().into_iter().map(|((pod, container), n)| (format!("{pod}_{container}"), n)).collect();
    scenario
        .expect
        .delivered_by
        .iter()
        .zip(snapshots)
        .map(|(due, snapshot)| {
            let name = format!("delivered by {:.1}s", due.at.0.as_secs_f64());
            let Some(snapshot) = snapshot else {
                return Check { name, ok: false, detail: "the run ended before that time".into() };
            };
            let mut short = Vec::new();
            for group in &due.groups {
                let streams = scenario.expect.groups.get(group).map(Vec::as_slice).unwrap_or_default();
                let expected: usize = streams.iter().filter_map(|s| written.get(s)).sum();
                let accepted = snapshot.get(group).copied().unwrap_or(0);
                if (accepted as usize) < expected {
                    short.push(format!("{group}: {accepted} of {expected}"));
                }
            }
            Check {
                name,
                ok: short.is_empty(),
                detail: if short.is_empty() {
                    format!("{} groups fully accepted in time", due.groups.len())
                } else {
                    format!("not yet accepted: {}", short.join(", "))
                },
            }
        })
        .collect()
}

/// Expected drops are in the dead-letter file, one line per event, and the workload wrote
/// as many rejectable (aged) lines as the scenario expects to be dropped.
fn dead_letter_check(scenario: &Scenario, state_dir: &std::path::Path, aged: u64) -> Check {
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

/// The report directory of a scenario.
pub fn report_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("harness").join(name)
}

/// The components of one local-tier environment.
struct Env {
    // Declared first so it is dropped last: the backend container outlives its users.
    cluster: ClusterEnv,
    backend: crate::backend::BackendHandle,
    gateway: GatewayHandle,
    standin: Standin,
    client: aws_sdk_cloudwatchlogs::Client,
    kubeconfig: PathBuf,
}

async fn start_env(
    choice: &BackendChoice,
    cluster: ClusterChoice,
    seed: u64,
    dir: &std::path::Path,
    tag: &str,
    account: &crate::scenario::AccountQuotas,
) -> Result<Env, RunError> {
    let localstack = match choice {
        BackendChoice::Url(_) => None,
        other => Some(*other == BackendChoice::LocalStack),
    };
    let cluster = ClusterEnv::start(cluster, localstack, tag).await.map_err(component("cluster"))?;
    let kind = cluster.backend_endpoint().map(BackendKind::Url).unwrap_or_else(|| choice.kind());
    let backend = Backend::start(kind).await.map_err(component("backend"))?;
    let endpoint = backend.endpoint.clone();
    let upstream = reqwest::Url::parse(&endpoint).map_err(component("backend"))?;
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
    let standin = StandinApi::start(StandinOptions {
        bookmark_interval: Duration::from_secs(1),
        api_addr: listen,
        ..StandinOptions::default()
    })
    .await
    .map_err(component("stand-in API"))?;
    let kubeconfig = dir.join("kubeconfig");
    standin.write_kubeconfig(&kubeconfig).map_err(component("stand-in API"))?;
    let client = backend.client();
    Ok(Env { cluster, backend, gateway, standin, client, kubeconfig })
}

/// How long SIGTERM is waited for (`shipper.shutdown_grace`, default 5 s in scenarios).
fn shutdown_grace(scenario: &Scenario) -> Duration {
    scenario.shipper.shutdown_grace.map(|d| d.0).unwrap_or(Duration::from_secs(5))
}

/// The shipper's environment for the scenario's `[shipper]` settings (every tier).
fn shipper_settings_env(scenario: &Scenario) -> BTreeMap<String, String> {
    let s = &scenario.shipper;
    let mut env = BTreeMap::new();
    env.insert(
        "SHIPPER_FLUSH_INTERVAL".into(),
        fmt_dur(s.flush_interval.map(|d| d.0).unwrap_or(Duration::from_millis(200))),
    );
    env.insert(
        "SHIPPER_METADATA_WAIT".into(),
        fmt_dur(s.metadata_wait.map(|d| d.0).unwrap_or(Duration::from_secs(5))),
    );
    env.insert("SHIPPER_SHUTDOWN_GRACE".into(), fmt_dur(shutdown_grace(scenario)));
    if let Some(max) = &s.spool_max_bytes {
        env.insert("SHIPPER_SPOOL_MAX_BYTES".into(), max.clone());
    }
    env.extend(s.env.clone());
    env
}

/// Run one scenario end to end and return its report (also written to disk).
pub async fn run_scenario(scenario: &Scenario, options: &RunOptions) -> Result<Report, RunError> {
    run_scenario_with(scenario, options, None).await
}

/// Builds a custom launch of the shipper from the wiring the runner chose (node directory in
/// `log_paths`, state dir, port, gateway endpoint, kubeconfig, node name).
pub type LaunchHook<'a> = &'a (dyn Fn(&ShipperEnv) -> ShipperLaunch + Sync);

/// [`run_scenario`], with the shipper launched as `launch` says instead of the default
/// `shipper run` with the contract's env (see [`ShipperLaunch`]): e.g. with the exact command
/// and env of the DaemonSet. The scenario's `[shipper]` env settings then do not apply; its
/// `shutdown_grace` still sets how long SIGTERM is waited for.
pub async fn run_scenario_with(
    scenario: &Scenario,
    options: &RunOptions,
    launch: Option<LaunchHook<'_>>,
) -> Result<Report, RunError> {
    if options.cluster == ClusterChoice::Kind {
        if launch.is_some() {
            return Err(RunError::Unsupported(
                "launch hooks run on the local tier only (on kind the DaemonSet launches the shipper)".into(),
            ));
        }
        #[cfg(feature = "e2e")]
        return kind::run_on_kind(scenario, options).await;
        #[cfg(not(feature = "e2e"))]
        return Err(RunError::Component {
            component: "cluster",
            reason: crate::cluster::ClusterError::NotCompiled.to_string(),
        });
    }
    if let Some(reason) = single_node_refusal(scenario, options.cluster.name()) {
        return Err(RunError::Unsupported(reason));
    }
    if scenario.fleet.nodes > 1 && (options.cluster != ClusterChoice::Local || launch.is_some()) {
        return Err(RunError::Unsupported(format!(
            "scenario {}: [fleet] runs {} shipper processes with the contract's env: the local tier only",
            scenario.name, scenario.fleet.nodes
        )));
    }
    let out_dir = options.out_dir.clone().unwrap_or_else(|| report_dir(&scenario.name));
    std::fs::create_dir_all(&out_dir).map_err(component("report dir"))?;
    let work = tempfile::tempdir().map_err(component("temp dir"))?;
    let tag = crate::cluster::run_tag(&scenario.name, now_nanos());
    let env =
        start_env(&options.backend, options.cluster, options.seed, work.path(), &tag, &scenario.account)
            .await?;
    let names = nodes::node_names(scenario);
    // One node keeps the directory names it always had; a fleet's are numbered.
    let node_dir = |k: usize, what: &str| match names.len() {
        1 => work.path().join(what),
        _ => work.path().join(format!("{what}-{}", k + 1)),
    };
    let sims = (0..names.len())
        .map(|k| SimNode::new(node_dir(k, "node")).map_err(component("simnode")))
        .collect::<Result<Vec<_>, _>>()?;
    let run_id = format!("r{:x}", options.seed ^ (std::process::id() as u64) << 16 ^ now_nanos());
    let mut workload = Workload::new(sims[0].clone(), run_id.clone(), scenario.node.clone());
    let mut ledger = Ledger::new(run_id.clone());

    // Pods exist in the API (bound to their node) before their containers write.
    let pods = scenario.expanded_pods();
    let placement = nodes::placement(&pods, names.len());
    let mut uids = BTreeMap::new();
    let mut pending_pods: Vec<_> = Vec::new();
    // (when, pod) of pods with a `lifetime`.
    let mut deletions: Vec<(Duration, String)> = Vec::new();
    for pod in &pods {
        if pod.start.0.is_zero() {
            let k = placement[&pod.name];
            let uid = create_pod(&env.standin, pod, &names[k])?;
            workload.add_pod_on(pod, &uid, &sims[k])?;
            uids.insert(pod.name.clone(), uid);
            if let Some(lifetime) = pod.lifetime {
                deletions.push((lifetime.0, pod.name.clone()));
            }
        } else {
            pending_pods.push(pod.clone());
        }
    }

    // Groups an operator made before the shipper came (Terraform, CloudFormation).
    for group in &scenario.existing_groups {
        audit::groups::create_group(&env.client, group).await.map_err(component("backend"))?;
    }

    let s = &scenario.shipper;
    let grace = shutdown_grace(scenario);
    let mut nodes = Vec::new();
    for (k, (name, sim)) in names.iter().zip(&sims).enumerate() {
        let shipper_env = ShipperEnv {
            cluster: CLUSTER.into(),
            node: name.clone(),
            endpoint: env.gateway.url().as_str().trim_end_matches('/').to_owned(),
            kubeconfig: env.kubeconfig.clone(),
            log_paths: format!("{}/*.log", sim.containers_dir().display()),
            state_dir: node_dir(k, "state"),
            port: free_port().map_err(component("port"))?,
            extra: shipper_settings_env(scenario),
        };
        let log_path = match names.len() {
            1 => out_dir.join("shipper.log"),
            _ => out_dir.join(format!("shipper-{name}.log")),
        };
        let _ = std::fs::remove_file(&log_path);
        let state_dir = shipper_env.state_dir.clone();
        let hooked = launch.map(|hook| hook(&shipper_env));
        let crash_plan = timeline::crash_plan(&s.crash_points, options.seed);
        let shipper =
            env.cluster.spawn_shipper(shipper_env, &node_dir(k, "node"), log_path, hooked, crash_plan)?;
        nodes.push(NodeRun {
            name: name.clone(),
            state_dir,
            shipper,
            restart_at: None,
            crashes: Crashes::default(),
        });
    }
    for node in &mut nodes {
        if let Err(e) = node.shipper.wait_healthy(Duration::from_secs(30)).await {
            // An armed crash point may fire before the first health check answers.
            if node.shipper.armed_crash_point().is_none() {
                return Err(e.into());
            }
        }
    }

    let steps = plan(scenario, options.seed);
    let faults_over = timeline::last_fault_end(scenario);
    let mut next_step = 0;
    let mut checks = Vec::new();
    // Connections an `idle_connections` fault holds open.
    let mut idle: Vec<tokio::net::TcpStream> = Vec::new();
    let mut samples = Vec::new();
    let mut peak_rss = 0u64;
    let mut peak_spool = 0u64;
    let mut last_metrics = BTreeMap::new();
    let t0 = Instant::now();
    let t0_unix_ms = now_nanos() / 1_000_000;
    let mut last_rotation = Duration::ZERO;
    let mut last_sample = Duration::ZERO;
    let mut last_progress = Duration::ZERO;
    let mut backpressure_seen = false;
    // Gateway acceptances per group at each `expect.delivered_by` time.
    let mut delivered_by: Vec<Option<BTreeMap<String, u64>>> = vec![None; scenario.expect.delivered_by.len()];

    // The run: workload, kubelet rotation and faults on one clock.
    loop {
        let t = t0.elapsed();
        while next_step < steps.len() && steps[next_step].at <= t {
            let step = steps[next_step].clone();
            next_step += 1;
            let mut ctx = ApplyCtx { scenario, checks: &mut checks, idle: &mut idle, t, grace };
            apply(&step, &env, &mut workload, &mut nodes, &mut ctx).await?;
        }
        for node in &mut nodes {
            node.upkeep(t)?;
        }
        // Pods whose start time came: create them (an error ends the run, it never just
        // shrinks the workload).
        let (due, later): (Vec<_>, Vec<_>) = pending_pods.into_iter().partition(|pod| pod.start.0 <= t);
        pending_pods = later;
        for pod in due {
            let k = placement[&pod.name];
            let uid = create_pod(&env.standin, &pod, &names[k])?;
            workload.add_pod_on(&pod, &uid, &sims[k])?;
            if let Some(lifetime) = pod.lifetime {
                deletions.push((pod.start.0 + lifetime.0, pod.name.clone()));
            }
        }
        for (snapshot, due) in delivered_by.iter_mut().zip(&scenario.expect.delivered_by) {
            if snapshot.is_none() && t >= due.at.0 {
                *snapshot = Some(accepted_per_group(&env.gateway));
            }
        }
        workload.tick(t, &mut ledger)?;
        // Pods whose lifetime is over: their last lines are written (tick above), now they go.
        let (gone, alive): (Vec<_>, Vec<_>) = deletions.into_iter().partition(|(at, _)| *at <= t);
        deletions = alive;
        for (_, pod) in gone {
            if let Some(ns) = workload.namespace_of(&pod) {
                env.standin.delete_pod(&ns, &pod).map_err(component("stand-in API"))?;
            }
            workload.delete(&pod)?;
        }
        if t - last_rotation >= scenario.node.monitor_interval.0 {
            workload.rotate_over_limit()?;
            last_rotation = t;
        }
        if t - last_sample >= Duration::from_millis(250) {
            last_sample = t;
            let delivered = delivered_events(&env.gateway);
            samples.push(Sample { t: t.as_secs_f64(), written: workload.written(), delivered });
            for (k, node) in nodes.iter().enumerate() {
                if let Some(rss) = node.shipper.rss_kib() {
                    peak_rss = peak_rss.max(rss);
                }
                if let Ok(m) = node.shipper.metrics().await {
                    peak_spool = peak_spool.max(m.get("shipper_spool_bytes").copied().unwrap_or(0.0) as u64);
                    backpressure_seen |= m.get("shipper_backpressure").is_some_and(|v| *v >= 1.0);
                    if k == 0 {
                        last_metrics = m;
                    }
                }
            }
            if options.progress && t - last_progress >= Duration::from_secs(1) {
                last_progress = t;
                println!(
                    "[{:6.1}s] {} written {}/{} delivered {} {}",
                    t.as_secs_f64(),
                    scenario.name,
                    workload.written(),
                    workload.planned(),
                    delivered,
                    active_faults(scenario, t)
                );
            }
        }
        if workload.done()
            && next_step >= steps.len()
            && nodes.iter().all(|node| node.restart_at.is_none())
            && t >= faults_over
            && deletions.is_empty()
            && pending_pods.is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let quiet_since = t0.elapsed();

    let gate = DrainGate {
        t0,
        timeout: scenario.expect.drain_timeout.0,
        ledger: &ledger,
        format: scenario.expect.message.format,
        gateway: &env.gateway,
        client: &env.client,
    };
    let (delivered, drained_at) = gate
        .wait(
            &mut samples,
            || workload.written(),
            async |t| {
                for node in &mut nodes {
                    if let Some(status) = node.shipper.reap_exit() {
                        node.crashes.record(node.shipper.armed_crash_point(), status, t);
                        tokio::time::sleep(CRASH_RESTART_DELAY).await;
                        node.shipper.start()?;
                    }
                }
                if let Ok(m) = nodes[0].shipper.metrics().await {
                    last_metrics = m;
                }
                Ok(())
            },
        )
        .await?;
    if let Ok(m) = nodes[0].shipper.metrics().await {
        last_metrics = m;
    }
    checks.extend(nodes::all_crashes(&nodes).checks(&s.crash_points));
    if let Some(restarts) = node_restart_note(scenario, env.cluster.name()) {
        checks.push(restarts);
    }
    checks.extend(delivered_by_checks(scenario, &delivered_by, &ledger));
    if !scenario.expect.group_settings.is_empty() {
        let read = audit::groups::read_group_settings(&env.client, &env.gateway.group_classes())
            .await
            .map_err(component("backend"))?;
        checks.push(audit::groups::group_settings_check(
            &scenario.expect.group_settings,
            scenario.expected_layout().keys(),
            &read,
        ));
    }
    if let Some(want) = &scenario.expect.written_by {
        let signers = env.gateway.summary().signers;
        let mut owners = BTreeMap::new();
        for key in signers.keys() {
            let owner = audit::identity::caller_arn(&env.backend.endpoint, key).await;
            owners.insert(key.clone(), owner.map_err(|e| e.to_string()));
        }
        checks.push(audit::identity::written_by_check(want, &owners, &signers));
    }
    if !scenario.expect.dropped.is_empty() {
        checks.push(dead_letter_check(scenario, &nodes[0].state_dir, workload.aged()));
    }
    if scenario.expect.rotation_cuts_traces {
        // The scenario exists to prove a trace cut by rotation still arrives whole: it must
        // have happened, or the run proved nothing.
        checks.push(Check {
            name: "rotation cut a trace".into(),
            ok: workload.rotations_mid_trace() > 0,
            detail: format!("{} rotations fell between two lines of a trace", workload.rotations_mid_trace()),
        });
    }
    if let Some(limit) = scenario.expect.max_rss_mib {
        checks.push(Check {
            name: "memory bounded".into(),
            ok: peak_rss <= limit * 1024,
            detail: format!("peak RSS {:.1} MiB (limit {limit} MiB)", peak_rss as f64 / 1024.0),
        });
    }
    if scenario.expect.backpressure {
        checks.push(Check {
            name: "spool cap reached".into(),
            ok: backpressure_seen,
            detail: format!(
                "backpressure {}; peak spool {} KiB",
                if backpressure_seen { "reported" } else { "never reported" },
                peak_spool / 1024
            ),
        });
    }
    // [expect.fleet] needs [account] put_log_events_per_second (the model says so).
    let fleet = match (&scenario.expect.fleet, scenario.account.put_log_events_per_second) {
        (Some(expect), Some(quota)) => {
            let figures = fleet::figures(
                &env.gateway.journal(),
                &delivered,
                &nodes::node_of_stream(&pods, &placement, &names),
                quota,
                expect.max_ask_ratio,
                t0_unix_ms,
                quiet_since.as_secs(),
            );
            checks.extend(fleet::checks(expect, &figures));
            Some(figures)
        }
        _ => None,
    };
    checks.push(nodes::shut_down(&mut nodes, grace + Duration::from_secs(10)).await);

    let verdict = audit::verdict_for(&ledger, &delivered, scenario.expect.message.format);
    let measured = verdict::Measured {
        lines_written: workload.written(),
        checks,
        samples,
        faults: timeline::windows(scenario),
        quiet_since,
        drained_at,
        starts: nodes.iter().map(|node| node.shipper.starts()).sum(),
        peak_rss_kib: peak_rss,
        peak_spool_bytes: peak_spool,
        metrics: last_metrics,
        gateway: serde_json::to_value(env.gateway.summary()).unwrap_or_default(),
        hosts: names.iter().cloned().collect(),
        fleet,
    };
    let report = verdict::build_report(
        scenario,
        env.cluster.name(),
        &options.backend.name(),
        options.seed,
        &verdict,
        &delivered,
        measured,
    );
    report.write(&out_dir).map_err(component("report"))?;
    Ok(report)
}

/// What `node_restart` became on a tier without a node to restart, said in the report.
fn node_restart_note(scenario: &Scenario, tier: &str) -> Option<Check> {
    let at: Vec<String> = scenario
        .faults
        .iter()
        .filter(|f| f.kind == crate::scenario::FaultKind::NodeRestart)
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

/// What a step may change besides the environment, the workload and the nodes.
struct ApplyCtx<'a> {
    /// The scenario (expected layout, pods).
    scenario: &'a Scenario,
    /// Checks the step itself makes.
    checks: &'a mut Vec<Check>,
    /// Connections held by `idle_connections`.
    idle: &'a mut Vec<tokio::net::TcpStream>,
    /// Now, on the run's clock.
    t: Duration,
    /// The SIGTERM grace.
    grace: Duration,
}

async fn apply(
    step: &Step,
    env: &Env,
    workload: &mut Workload,
    nodes: &mut [NodeRun],
    ctx: &mut ApplyCtx<'_>,
) -> Result<(), RunError> {
    let (t, grace) = (ctx.t, ctx.grace);
    // Docker-level faults and listener faults act on one shipper: a fleet refuses them.
    let shipper = &mut nodes[0].shipper;
    match &step.action {
        Action::GatewayStart(f) => {
            // Docker-level faults run on the container tier; elsewhere their gateway twin.
            if let Some(kind) =
                env.cluster.start_fault(f.kind, shipper).await.map_err(component("docker fault"))?
            {
                env.gateway
                    .inject(gateway_fault(&crate::scenario::Fault { kind, ..f.clone() }))
                    .map_err(component("gateway"))?;
            }
        }
        Action::GatewayEnd => {
            env.cluster.end_faults(shipper).await.map_err(component("docker fault"))?;
            env.gateway.clear();
            env.gateway.listening().await;
        }
        Action::ApiDown => env.standin.set_availability(Availability::Unavailable),
        Action::ApiUp => env.standin.set_availability(Availability::Available),
        Action::ApiCompact => {
            env.standin.compact();
            env.standin.drop_watches();
        }
        // No node to restart on these tiers, and the scenario's writers are done by then
        // (the model refuses a restart while one writes): what a node crash does to the
        // shipper is a kill -9 and a start on the same state once the node is back.
        Action::Kill(after) | Action::NodeRestart(after) => {
            for node in nodes.iter_mut() {
                if node.shipper.is_running() {
                    node.shipper.kill();
                }
                node.restart_at = Some(t + *after);
            }
        }
        Action::Term(after) => {
            for node in nodes.iter_mut() {
                let exit = node.shipper.terminate(grace + Duration::from_secs(10)).await;
                ctx.checks.push(Check {
                    name: format!("SIGTERM at {:.1}s", t.as_secs_f64()),
                    ok: exit == Some(0),
                    detail: format!("exit code {exit:?} within grace {grace:?}"),
                });
                node.restart_at = Some(t + *after);
            }
        }
        Action::Rotate(pod) => workload.force_rotate(pod)?,
        Action::ContainerRestart(pod) => workload.restart(pod)?,
        Action::PodDelete(pod) => {
            if let Some(ns) = workload.namespace_of(pod) {
                env.standin.delete_pod(&ns, pod).map_err(component("stand-in API"))?;
            }
            workload.delete(pod)?;
        }
        Action::PodRelabel(pod, labels) => {
            relabel_gate(&env.gateway, ctx.scenario, pod).await?;
            if let Some(ns) = workload.namespace_of(pod) {
                env.standin.set_labels(&ns, pod, labels.iter()).map_err(component("stand-in API"))?;
            }
        }
        Action::CreateGroups(groups) => {
            for group in groups {
                audit::groups::create_group(&env.client, group).await.map_err(component("backend"))?;
            }
        }
        Action::IdleOpen(count) => {
            let addr = shipper
                .listener()
                .ok_or_else(|| RunError::Unsupported("the shipper's listener has no address".into()))?;
            *ctx.idle = idle::open(addr, *count).await;
            let name = format!("/healthz under {count} idle connections at {:.1}s", t.as_secs_f64());
            ctx.checks.push(idle::probe(addr, name, ctx.idle.len()).await);
        }
        Action::IdleClose => {
            if let Some(addr) = shipper.listener() {
                let name = format!("/healthz at the end of the idle connections, {:.1}s", t.as_secs_f64());
                ctx.checks.push(idle::probe(addr, name, ctx.idle.len()).await);
            }
            ctx.idle.clear();
        }
        Action::NodeJoin | Action::PodReschedule(_) => {
            // Refused before the run starts (single_node_refusal); kept an error, not a no-op.
            return Err(RunError::Unsupported(format!(
                "{:?} needs several nodes (the kind tier)",
                step.action
            )));
        }
    }
    Ok(())
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

fn create_pod(standin: &Standin, pod: &crate::scenario::PodSpec, node: &str) -> Result<String, RunError> {
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

/// Events the backend accepted so far, per the gateway's journal.
/// The drain gate, the same on every tier: wait until the backend holds every line of the
/// ledger, or the deadline.
struct DrainGate<'a> {
    /// The run's start (sample times).
    t0: Instant,
    /// The scenario's `drain_timeout`, from now.
    timeout: Duration,
    ledger: &'a Ledger,
    /// How the shipper writes messages (`SHIPPER_MESSAGE_FORMAT`).
    format: crate::scenario::MessageFormat,
    gateway: &'a GatewayHandle,
    client: &'a aws_sdk_cloudwatchlogs::Client,
}

impl DrainGate<'_> {
    /// Every 500 ms: sample the gateway's accepted count (with `written()`); once it covers the
    /// ledger, read the backend back and stop if the audit misses nothing. At the deadline,
    /// read back what is there. `between` runs between polls (the tier's own upkeep).
    /// Returns what was read back and when nothing was missing any more (`None`: never).
    async fn wait(
        self,
        samples: &mut Vec<Sample>,
        written: impl Fn() -> u64,
        mut between: impl AsyncFnMut(Duration) -> Result<(), RunError>,
    ) -> Result<(audit::Delivered, Option<Duration>), RunError> {
        let deadline = Instant::now() + self.timeout;
        let expected_lines = self.ledger.len() as u64;
        loop {
            let t = self.t0.elapsed();
            let accepted = delivered_events(self.gateway);
            samples.push(Sample { t: t.as_secs_f64(), written: written(), delivered: accepted });
            if accepted >= expected_lines {
                let delivered = audit::read_all(self.client).await.map_err(component("audit"))?;
                if audit::verdict_for(self.ledger, &delivered, self.format).missing_count() == 0 {
                    return Ok((delivered, Some(t)));
                }
            }
            if Instant::now() >= deadline {
                let delivered = audit::read_all(self.client).await.map_err(component("audit"))?;
                return Ok((delivered, None));
            }
            between(t).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn delivered_events(gateway: &GatewayHandle) -> u64 {
    gateway.summary().accepted.values().flat_map(|streams| streams.values()).map(|t| t.events).sum()
}

fn gateway_fault(f: &crate::scenario::Fault) -> GatewayFault {
    use crate::scenario::FaultKind as K;
    let kind = match crate::cluster::local_equivalent(f.kind) {
        K::Blackhole => GatewayFaultKind::Blackhole,
        K::Refuse => GatewayFaultKind::Refuse,
        K::Reset => GatewayFaultKind::Reset,
        K::Latency => GatewayFaultKind::Latency(f.latency.map(|d| d.0).unwrap_or(Duration::from_millis(500))),
        K::Bandwidth => GatewayFaultKind::Bandwidth(f.bytes_per_sec.unwrap_or(64 * 1024)),
        K::Throttle => GatewayFaultKind::Throttle,
        K::Unavailable => GatewayFaultKind::ServiceUnavailable,
        K::AccessDenied => GatewayFaultKind::AccessDenied,
        _ => GatewayFaultKind::Ambiguous,
    };
    let mut fault = GatewayFault::new(kind);
    if let Some(ops) = &f.ops {
        fault = fault.only(ops.iter().cloned());
    }
    if let Some(p) = f.probability {
        fault = fault.with_probability(p);
    }
    if let Some(groups) = &f.groups {
        fault = fault.for_groups(groups.iter().cloned());
    }
    fault
}

/// How long a relabel waits for the first accepted event of its pod (the file's group is
/// decided by then); beyond it the relabel would race the shipper's first look at the file.
const RELABEL_GATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether an event of one of `streams` was accepted, in the group `expected` names for it
/// (any group when it names none): the gate of a relabel.
fn first_event_accepted(
    accepted: &BTreeMap<String, BTreeMap<String, crate::gateway::journal::StreamTotals>>,
    expected: &BTreeMap<String, std::collections::BTreeSet<String>>,
    streams: &[String],
) -> bool {
    streams.iter().any(|stream| {
        let groups: Vec<&String> =
            expected.iter().filter(|(_, s)| s.contains(stream)).map(|(g, _)| g).collect();
        accepted.iter().any(|(group, by_stream)| {
            (groups.is_empty() || groups.contains(&group))
                && by_stream.get(stream).is_some_and(|t| t.events > 0)
        })
    })
}

/// The gate of a `pod_relabel`, on every tier. A file's group is decided by the shipper's
/// first look at it, which comes after its pod's metadata is listed: relabelling before then
/// would make the group a coin flip (a loaded machine lists late). So wait, bounded, for the
/// first event of one of `pod`'s streams accepted in its expected group.
async fn relabel_gate(gateway: &GatewayHandle, scenario: &Scenario, pod: &str) -> Result<(), RunError> {
    let streams: Vec<String> =
        scenario.expanded_pods().iter().filter(|p| p.name == pod).flat_map(|p| p.streams()).collect();
    let expected = scenario.expected_layout();
    let deadline = Instant::now() + RELABEL_GATE_TIMEOUT;
    while !first_event_accepted(&gateway.summary().accepted, &expected, &streams) {
        if Instant::now() >= deadline {
            return Err(RunError::Component {
                component: "pod_relabel",
                reason: format!(
                    "{pod}: no event of {streams:?} accepted within {RELABEL_GATE_TIMEOUT:?}; \
                     relabelling now would race the shipper's first look"
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn fmt_dur(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn active_faults(scenario: &Scenario, t: Duration) -> String {
    let active: Vec<String> = scenario
        .faults
        .iter()
        .filter(|f| f.at.0 <= t && t < f.end().max(f.at.0 + Duration::from_millis(500)))
        .map(|f| format!("{:?}", f.kind).to_lowercase())
        .collect();
    if active.is_empty() { String::new() } else { format!("faults: {}", active.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relabel_waits_for_an_accepted_event_of_the_pods_group() {
        use crate::gateway::StreamTotals;
        let expected = BTreeMap::from([(
            "k8s_local_shop_web_nginx".to_owned(),
            std::collections::BTreeSet::from(["web-0_nginx".to_owned()]),
        )]);
        let streams = vec!["web-0_nginx".to_owned()];
        let totals = |events| StreamTotals { events, bytes: 0, requests: 1 };
        let mut accepted = BTreeMap::new();
        assert!(!first_event_accepted(&accepted, &expected, &streams));
        // Another pod's events, or this pod's stream in another group, do not open the gate.
        accepted.insert(
            "k8s_local_shop_web_nginx".to_owned(),
            BTreeMap::from([("web-1_nginx".to_owned(), totals(3))]),
        );
        accepted.insert(
            "k8s_local_shop_web-v2_nginx".to_owned(),
            BTreeMap::from([("web-0_nginx".to_owned(), totals(3))]),
        );
        assert!(!first_event_accepted(&accepted, &expected, &streams));
        accepted
            .get_mut("k8s_local_shop_web_nginx")
            .expect("group")
            .insert("web-0_nginx".to_owned(), totals(1));
        assert!(first_event_accepted(&accepted, &expected, &streams));
        // Without an expected layout, any group.
        assert!(first_event_accepted(&accepted, &BTreeMap::new(), &streams));
    }
}
