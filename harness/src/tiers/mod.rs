//! The tiers: where a scenario's node, pods and shipper run. The scenario engine
//! ([`crate::runner`]) owns the clock, the workload plan, the fault timeline, the drain gate,
//! the checks and the report; a tier is a driver behind [`Tier`] that does what only it can.
//!
//! - [`local`]: simulated nodes writing kubelet-style files, the stand-in API, the shipper as
//!   a host process (what plain `cargo test` runs). Also the driver of the container tier,
//!   whose shipper and docker faults live in [`container`];
//! - [`container`] (feature `e2e`): the shipper image on a simulated node, the backend in a
//!   container, faults injected with docker;
//! - [`kind`]: a kind cluster, the shipper as the DaemonSet, scenario pods as real pods
//!   (the driver needs feature `e2e`; its manifests render everywhere);
//! - [`docker`] (feature `e2e`): the docker plumbing both container-based tiers use;
//! - [`needs`]: what a scenario asks of a tier, what each tier declares it cannot do, and
//!   the one place a scenario is refused.
//!
//! **Adding a tier:** a folder here with a driver implementing [`Tier`], its entry in
//! [`ClusterChoice`] and in [`needs::cannot`], and one arm in
//! [`crate::runner::run_scenario_with`].

#[cfg(feature = "e2e")]
pub mod container;
#[cfg(feature = "e2e")]
pub mod docker;
pub mod kind;
pub mod local;
pub mod needs;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::audit::{Delivered, Ledger};
use crate::gateway::GatewayHandle;
use crate::report::Check;
use crate::runner::{RunError, Step};
use crate::scenario::Scenario;

/// Which tier runs the scenario (`harness run --cluster`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClusterChoice {
    /// The shipper binary as a host process (default).
    #[default]
    Local,
    /// The shipper image in a container on a docker network (feature `e2e`).
    Container,
    /// A kind cluster, the shipper as the DaemonSet, scenario pods as real pods (feature
    /// `e2e`, needs kind's node image).
    Kind,
}

impl ClusterChoice {
    /// `local`, `container` or `kind`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(ClusterChoice::Local),
            "container" => Ok(ClusterChoice::Container),
            "kind" => Ok(ClusterChoice::Kind),
            other => Err(format!("--cluster {other}: expected local, container or kind")),
        }
    }

    /// The tier's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ClusterChoice::Local => "local",
            ClusterChoice::Container => "container",
            ClusterChoice::Kind => "kind",
        }
    }
}

/// A docker-name-safe, run-unique tag: the scenario name's safe characters and a nonce.
pub fn run_tag(name: &str, nonce: u64) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' })
        .take(40)
        .collect();
    format!("{}-{:08x}", safe.trim_matches('-'), nonce & 0xffff_ffff)
}

/// How often the engine's loop turns on a tier, and how often it samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cadence {
    /// Between two turns.
    pub tick: Duration,
    /// Between two samples (written/delivered curve, metrics, progress).
    pub sample: Duration,
}

/// What the engine hands a tier after the drain.
pub(crate) struct Drained<'a> {
    /// The scenario as written.
    pub scenario: &'a Scenario,
    /// What was read back.
    pub delivered: &'a Delivered,
    /// Every line written (the kind tier counts its lines from it).
    #[cfg_attr(not(feature = "e2e"), allow(dead_code))]
    pub ledger: &'a Ledger,
    /// The run's start, Unix milliseconds (the gateway journal's clock).
    pub t0_unix_ms: u64,
    /// When the workload and the faults were over, since the start.
    pub quiet_since: Duration,
}

/// The figures and checks only a tier has, for the report.
#[derive(Default)]
pub(crate) struct TierFigures {
    /// The tier's own checks (crashes, restarts, daemonset coverage, dead letters, ...).
    pub checks: Vec<Check>,
    /// Lines written.
    pub lines_written: u64,
    /// Shipper starts.
    pub starts: u32,
    /// Peak RSS of a shipper, KiB (0: not measured).
    pub peak_rss_kib: u64,
    /// Peak spool bytes seen.
    pub peak_spool_bytes: u64,
    /// The last metrics scraped.
    pub metrics: BTreeMap<String, f64>,
    /// The nodes.
    pub hosts: BTreeSet<String>,
    /// `[expect.fleet]` figures.
    pub fleet: Option<local::FleetFigures>,
    /// The scenario as the report judges it on this tier, when not as written (kind: every
    /// container runs the writer image).
    pub view: Option<Scenario>,
}

/// A tier's driver. The engine calls, in order: [`Tier::advance`] and due [`Tier::apply`]s
/// every [`Cadence::tick`], [`Tier::observe`] every [`Cadence::sample`], until
/// [`Tier::settled`]; then [`Tier::while_draining`] between drain polls and [`Tier::finish`]
/// once. Bringing the tier up is the driver's own constructor: what is refused is decided
/// before, by [`needs::refusal`].
pub(crate) trait Tier {
    /// Its name in reports.
    fn name(&self) -> &'static str;
    /// The run's id: in every line's payload, and the ledger's.
    fn run_id(&self) -> &str;
    /// How often to turn and sample.
    fn cadence(&self) -> Cadence;
    /// The fault gateway in front of the backend.
    fn gateway(&self) -> &GatewayHandle;
    /// The backend, read back by the audit.
    fn client(&self) -> &aws_sdk_cloudwatchlogs::Client;
    /// The backend's endpoint, from the host (who signed what).
    fn backend_endpoint(&self) -> &str;
    /// Start the pods whose time came, write the lines due by `t` (recorded in `ledger`),
    /// end the pods whose lifetime is over, and keep the node going (rotation, restarts).
    async fn advance(&mut self, t: Duration, ledger: &mut Ledger) -> Result<(), RunError>;
    /// Apply one step of the fault timeline at `t`; checks the step makes go to `checks`.
    async fn apply(&mut self, step: &Step, t: Duration, checks: &mut Vec<Check>) -> Result<(), RunError>;
    /// Look at the shipper(s): memory, spool, metrics.
    async fn observe(&mut self);
    /// Lines written by `t`.
    fn written(&self, t: Duration) -> u64;
    /// Lines planned in all.
    fn planned(&self) -> u64;
    /// Whether every pod is done and no restart is pending, at `t`; an error when the tier
    /// gave up waiting.
    fn settled(&self, t: Duration) -> Result<bool, RunError>;
    /// Upkeep between two polls of the drain gate (a crashed shipper starts again).
    async fn while_draining(&mut self, t: Duration) -> Result<(), RunError>;
    /// After the drain: the tier's checks and figures; the shipper is shut down.
    async fn finish(&mut self, run: &Drained<'_>) -> Result<TierFigures, RunError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_parse() {
        assert_eq!(ClusterChoice::parse("local"), Ok(ClusterChoice::Local));
        assert_eq!(ClusterChoice::parse("container"), Ok(ClusterChoice::Container));
        assert_eq!(ClusterChoice::parse("kind"), Ok(ClusterChoice::Kind));
        assert!(ClusterChoice::parse("k3s").is_err());
    }

    #[test]
    fn run_tags_are_docker_names() {
        let tag = run_tag("Steady state/ü", 0x1234_5678_9abc);
        assert_eq!(tag, "steady-state-56789abc");
        assert!(tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_ne!(run_tag("a", 1), run_tag("a", 2));
    }
}
