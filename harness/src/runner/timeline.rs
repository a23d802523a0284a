//! The fault timeline: what each scenario fault does to the gateway, the stand-in API, the
//! workload and the shipper process, and when it ends.

use std::time::Duration;

use crate::report::FaultWindow;
use crate::scenario::{Fault, FaultKind, Scenario};

/// A fault action at a point in time.
#[derive(Debug, Clone)]
pub struct Step {
    /// When.
    pub at: Duration,
    /// What.
    pub action: Action,
}

/// What happens at a step.
#[derive(Debug, Clone)]
pub enum Action {
    /// Start a gateway fault.
    GatewayStart(Fault),
    /// End gateway faults.
    GatewayEnd,
    /// Make the API unavailable.
    ApiDown,
    /// Make the API available again.
    ApiUp,
    /// Compact history and drop watches.
    ApiCompact,
    /// SIGKILL the shipper, restart after the delay.
    Kill(Duration),
    /// SIGTERM the shipper, restart after the delay.
    Term(Duration),
    /// Force rotation of a pod's logs.
    Rotate(String),
    /// Restart a pod's containers.
    ContainerRestart(String),
    /// Delete a pod.
    PodDelete(String),
    /// Relabel a pod.
    PodRelabel(String, std::collections::BTreeMap<String, String>),
    /// A held-back node joins the cluster (kind tier).
    NodeJoin,
    /// Move a pod to another node, continuing its sequence (kind tier).
    PodReschedule(String),
    /// Crash the node; it is back after the delay (kind tier). The local and container
    /// tiers SIGKILL the shipper and restart it after the delay, as for [`Action::Kill`].
    NodeRestart(Duration),
    /// Create these log groups in the backend (an operator's action, past the gateway).
    CreateGroups(Vec<String>),
    /// Open and hold this many idle connections to the shipper's listener.
    IdleOpen(u32),
    /// Close them.
    IdleClose,
}

/// The scenario's faults as an ordered list of steps; random points come from `seed`.
pub fn plan(scenario: &Scenario, seed: u64) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut steps = Vec::new();
    for f in &scenario.faults {
        let at = f.at.0;
        let end = f.end();
        let restart = f.restart_after.map(|d| d.0).unwrap_or_default();
        let pod = f.pod.clone().unwrap_or_default();
        match f.kind {
            FaultKind::Blackhole
            | FaultKind::Refuse
            | FaultKind::Reset
            | FaultKind::Latency
            | FaultKind::Bandwidth
            | FaultKind::Throttle
            | FaultKind::Unavailable
            | FaultKind::Ambiguous
            | FaultKind::AccessDenied
            | FaultKind::BackendPause
            | FaultKind::NetworkDisconnect => {
                steps.push(Step { at, action: Action::GatewayStart(f.clone()) });
                steps.push(Step { at: end, action: Action::GatewayEnd });
            }
            FaultKind::ApiUnavailable => {
                steps.push(Step { at, action: Action::ApiDown });
                steps.push(Step { at: end, action: Action::ApiUp });
            }
            FaultKind::ApiCompact => steps.push(Step { at, action: Action::ApiCompact }),
            FaultKind::ShipperKill => steps.push(Step { at, action: Action::Kill(restart) }),
            FaultKind::ShipperTerm => steps.push(Step { at, action: Action::Term(restart) }),
            FaultKind::ShipperKillRandom => {
                let window = end.saturating_sub(at).as_millis().max(1) as u64;
                let mut points: Vec<Duration> = (0..f.count.unwrap_or(1))
                    .map(|_| at + Duration::from_millis(rng.u64(0..window)))
                    .collect();
                points.sort();
                steps.extend(points.into_iter().map(|p| Step { at: p, action: Action::Kill(restart) }));
            }
            FaultKind::Rotate => steps.push(Step { at, action: Action::Rotate(pod) }),
            FaultKind::ContainerRestart => steps.push(Step { at, action: Action::ContainerRestart(pod) }),
            FaultKind::PodDelete => steps.push(Step { at, action: Action::PodDelete(pod) }),
            FaultKind::PodRelabel => {
                steps.push(Step { at, action: Action::PodRelabel(pod, f.labels.clone().unwrap_or_default()) })
            }
            FaultKind::NodeJoin => steps.push(Step { at, action: Action::NodeJoin }),
            FaultKind::PodReschedule => steps.push(Step { at, action: Action::PodReschedule(pod) }),
            FaultKind::NodeRestart => steps.push(Step { at, action: Action::NodeRestart(restart) }),
            FaultKind::CreateGroup => {
                steps.push(Step { at, action: Action::CreateGroups(f.groups.clone().unwrap_or_default()) })
            }
            FaultKind::IdleConnections => {
                steps.push(Step { at, action: Action::IdleOpen(f.count.unwrap_or(1)) });
                steps.push(Step { at: end, action: Action::IdleClose });
            }
        }
    }
    steps.sort_by_key(|s| s.at);
    steps
}

/// Fault windows for the report and chart.
pub fn windows(scenario: &Scenario) -> Vec<FaultWindow> {
    scenario
        .faults
        .iter()
        .map(|f| FaultWindow {
            kind: serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            start: f.at.0.as_secs_f64(),
            end: f.end().as_secs_f64(),
        })
        .collect()
}

/// When the last fault (including restart delays) is over.
pub fn last_fault_end(scenario: &Scenario) -> Duration {
    scenario
        .faults
        .iter()
        .map(|f| f.end() + f.restart_after.map(|d| d.0).unwrap_or_default())
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_kills_are_seeded_sorted_and_inside_the_window() {
        let s = Scenario::parse(
            r#"
name = "k"
why = "w"
[[pods]]
namespace = "n"
name = "p"
containers = [{ name = "c", lines = 1 }]
[[faults]]
at = "1s"
for = "2s"
kind = "shipper_kill_random"
count = 5
[expect]
groups = { g = ["p_c"] }
"#,
        )
        .expect("valid");
        let a = plan(&s, 7);
        let b = plan(&s, 7);
        let c = plan(&s, 8);
        let times = |p: &[Step]| p.iter().map(|s| s.at).collect::<Vec<_>>();
        assert_eq!(times(&a), times(&b), "same seed, same kill points");
        assert_ne!(times(&a), times(&c), "another seed, other kill points");
        assert_eq!(a.len(), 5);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(a.iter().all(|s| s.at >= Duration::from_secs(1) && s.at < Duration::from_secs(3)));
    }
}

/// Highest hit number drawn for a crash point given without one.
const MAX_DRAWN_HIT: u64 = 8;

/// Resolve a scenario's crash points into `SHIPPER_CRASH_AT` values: `point:n` stays, a bare
/// `point` gets a hit number in `1..=MAX_DRAWN_HIT` drawn from `seed`, so a seed reproduces a run.
pub fn crash_plan(points: &[String], seed: u64) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x6372_6173_6821);
    points
        .iter()
        .map(|p| if p.contains(':') { p.clone() } else { format!("{p}:{}", rng.u64(1..=MAX_DRAWN_HIT)) })
        .collect()
}

#[cfg(test)]
mod crash_plan_tests {
    use super::*;

    #[test]
    fn explicit_counts_stay_and_drawn_ones_follow_the_seed() {
        let points = vec!["send.after_put".to_owned(), "manifest.renamed:3".to_owned()];
        let a = crash_plan(&points, 7);
        assert_eq!(a, crash_plan(&points, 7));
        assert_eq!(a[1], "manifest.renamed:3");
        let n: u64 = a[0].strip_prefix("send.after_put:").unwrap().parse().unwrap();
        assert!((1..=MAX_DRAWN_HIT).contains(&n));
        let drawn: std::collections::BTreeSet<String> =
            (0..64).map(|seed| crash_plan(&points, seed).remove(0)).collect();
        assert!(drawn.len() > 1, "the seed must change the drawn hit: {drawn:?}");
    }
}
