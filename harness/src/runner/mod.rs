//! The scenario engine (DESIGN §4): one loop for every tier ([`engine`]) owning the clock,
//! the workload plan, the fault timeline ([`timeline`]), the drain gate, the checks and the
//! report ([`verdict`]). Where the node, the pods and the shipper run is a tier's driver
//! ([`crate::tiers`]); what a tier cannot run is refused before it starts
//! ([`crate::tiers::needs`]).
//!
//! **Adding a fault kind:** the scenario model (`scenario/`), its step in [`timeline::plan`],
//! each driver's `apply`, and what tiers cannot apply it in [`crate::tiers::needs::cannot`].

mod engine;
mod timeline;
mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backend::BackendKind;
use crate::gateway::{Fault as GatewayFault, FaultKind as GatewayFaultKind, GatewayHandle};
use crate::report::Report;
use crate::scenario::Scenario;
use crate::shipper_proc::{ShipperEnv, ShipperError, ShipperLaunch};
use crate::tiers::ClusterChoice;
use crate::tiers::local::WorkloadError;

pub use crate::tiers::local::up;
pub(crate) use timeline::crash_plan;
pub use timeline::{Action, Step, last_fault_end, plan};

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

    pub(crate) fn kind(&self) -> BackendKind {
        match self {
            BackendChoice::Moto => BackendKind::Moto,
            BackendChoice::LocalStack => BackendKind::LocalStack,
            BackendChoice::Url(u) => BackendKind::Url(u.clone()),
        }
    }

    pub(crate) fn name(&self) -> String {
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
    #[error("{component}: {source}")]
    Component {
        /// Which one.
        component: &'static str,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The run found a component in a state it cannot go on from.
    #[error("{component}: {reason}")]
    Failed {
        /// Which one.
        component: &'static str,
        /// What was found.
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

/// Wraps a component's error, keeping it as the source.
pub(crate) fn component<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    component: &'static str,
) -> impl Fn(E) -> RunError {
    move |e| RunError::Component { component, source: e.into() }
}

/// Events accepted per group so far, per the gateway's journal (`expect.delivered_by`).
pub(crate) fn accepted_per_group(gateway: &GatewayHandle) -> BTreeMap<String, u64> {
    gateway
        .summary()
        .accepted
        .into_iter()
        .map(|(group, streams)| (group, streams.values().map(|s| s.events).sum()))
        .collect()
}

/// The report directory of a scenario.
pub fn report_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("harness").join(name)
}

/// How long SIGTERM is waited for (`shipper.shutdown_grace`, default 5 s in scenarios).
pub(crate) fn shutdown_grace(scenario: &Scenario) -> Duration {
    scenario.shipper.shutdown_grace.map(|d| d.0).unwrap_or(Duration::from_secs(5))
}

/// The shipper's environment for the scenario's `[shipper]` settings (every tier).
pub(crate) fn shipper_settings_env(scenario: &Scenario) -> BTreeMap<String, String> {
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
/// `shutdown_grace` still sets how long SIGTERM is waited for. The local tier only.
pub async fn run_scenario_with(
    scenario: &Scenario,
    options: &RunOptions,
    launch: Option<LaunchHook<'_>>,
) -> Result<Report, RunError> {
    let tier = options.cluster;
    if let Some(reason) = crate::tiers::needs::refusal(scenario, tier, &options.backend, launch.is_some()) {
        return Err(RunError::Unsupported(reason));
    }
    let out_dir = options.out_dir.clone().unwrap_or_else(|| match tier {
        ClusterChoice::Kind => report_dir(&format!("{}@kind", scenario.name)),
        _ => report_dir(&scenario.name),
    });
    std::fs::create_dir_all(&out_dir).map_err(component("report dir"))?;
    match tier {
        ClusterChoice::Local | ClusterChoice::Container => {
            let mut driver =
                crate::tiers::local::NodeTier::start(scenario, options, &out_dir, launch).await?;
            engine::run(&mut driver, scenario, options, &out_dir).await
        }
        #[cfg(feature = "e2e")]
        ClusterChoice::Kind => {
            let mut driver = crate::tiers::kind::KindTier::start(scenario, options).await?;
            engine::run(&mut driver, scenario, options, &out_dir).await
        }
        #[cfg(not(feature = "e2e"))]
        ClusterChoice::Kind => {
            Err(component("cluster")(crate::tiers::local::host::ClusterError::NotCompiled))
        }
    }
}

/// Events the backend accepted so far, per the gateway's journal.
pub(crate) fn delivered_events(gateway: &GatewayHandle) -> u64 {
    gateway.summary().accepted.values().flat_map(|streams| streams.values()).map(|t| t.events).sum()
}

/// The gateway fault a scenario fault becomes (docker-level faults: their gateway twin).
pub(crate) fn gateway_fault(f: &crate::scenario::Fault) -> GatewayFault {
    use crate::scenario::FaultKind as K;
    let kind = match crate::tiers::local::host::local_equivalent(f.kind) {
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
pub(crate) async fn relabel_gate(
    gateway: &GatewayHandle,
    scenario: &Scenario,
    pod: &str,
) -> Result<(), RunError> {
    let streams: Vec<String> =
        scenario.expanded_pods().iter().filter(|p| p.name == pod).flat_map(|p| p.streams()).collect();
    let expected = scenario.expected_layout();
    let deadline = Instant::now() + RELABEL_GATE_TIMEOUT;
    while !first_event_accepted(&gateway.summary().accepted, &expected, &streams) {
        if Instant::now() >= deadline {
            return Err(RunError::Failed {
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

pub(crate) fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
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
