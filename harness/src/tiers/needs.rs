//! What a scenario needs from the tier that runs it, what each tier declares it cannot do,
//! and the one place a scenario is refused: a scenario a tier cannot apply as written is
//! refused up front with every reason, never run with a fault silently left out.
//!
//! **Adding a fault kind or a tier:** say here which tiers cannot apply it ([`cannot`]).

use crate::runner::BackendChoice;
use crate::scenario::{FaultKind, Scenario};
use crate::tiers::ClusterChoice;

/// Something a scenario asks of a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A fault of this kind, at some time.
    Fault(FaultKind),
    /// A `node_restart` while the nodes are disconnected from the harness.
    RestartWhileDisconnected,
    /// Groups made before the run or their settings read back (`existing_groups`,
    /// `[expect.group_settings]`).
    GroupsOnTheSide,
    /// Several shipper processes on simulated nodes (`[fleet]`).
    Fleet,
    /// Account quotas enforced by the gateway (`[account]`).
    AccountQuotas,
    /// Who signed each write (`expect.written_by`).
    WrittenBy,
    /// Filler labels and annotations served by the API (`filler`).
    FillerMetadata,
    /// An owner reference to an object that does not exist (`owner`).
    MissingOwner,
    /// Lines stamped in the past (`age`).
    AgedLines,
    /// Crash points armed in the shipper (`shipper.crash_points`).
    CrashPoints,
    /// The dead-letter file on the node (`expect.dropped`).
    DeadLetters,
    /// The shipper's memory measured (`expect.max_rss_mib`).
    ProcessMemory,
    /// The spool cap reached on cue (`expect.backpressure`).
    Backpressure,
    /// The shipper launched by a hook (`run_scenario_with`).
    LaunchHook,
    /// A backend at a URL rather than an emulator the tier starts.
    BackendUrl,
}

/// Why `tier` cannot meet `need`, as it declares; `None`: it can.
pub fn cannot(tier: ClusterChoice, need: Need) -> Option<&'static str> {
    match tier {
        ClusterChoice::Local => local_cannot(need),
        ClusterChoice::Container => container_cannot(need),
        ClusterChoice::Kind => kind_cannot(need),
    }
}

/// The local tier: one simulated node per shipper, everything but a cluster.
fn local_cannot(need: Need) -> Option<&'static str> {
    match need {
        Need::Fault(kind) if kind.needs_several_nodes() => Some(SEVERAL_NODES),
        _ => None,
    }
}

const SEVERAL_NODES: &str = "needs several nodes; this tier has one. Run it on kind: \
     cargo test --workspace --features harness/e2e --test kind_tier";

/// The container tier: the local tier with the shipper in its image, as the DaemonSet runs it.
fn container_cannot(need: Need) -> Option<&'static str> {
    match need {
        Need::Fleet => Some("[fleet] runs one shipper process per simulated node: the local tier only"),
        Need::LaunchHook | Need::CrashPoints => {
            Some("launch hooks and crash points need the local tier's shipper process")
        }
        Need::BackendUrl => Some("the tier runs its own backend container: use --backend moto or localstack"),
        other => local_cannot(other),
    }
}

/// The kind tier: a real cluster, where the harness controls less.
fn kind_cannot(need: Need) -> Option<&'static str> {
    Some(match need {
        Need::Fault(FaultKind::ApiUnavailable | FaultKind::ApiCompact) => {
            "the real API server cannot be made unavailable or compacted on cue"
        }
        Need::Fault(FaultKind::Rotate) => {
            "kubelet rotates by size only (kind-config sets containerLogMaxSize)"
        }
        Need::Fault(FaultKind::ContainerRestart) => {
            "a writer container that restarts would print its lines again"
        }
        Need::Fault(FaultKind::PodDelete) => {
            "a pod deleted mid-write leaves an unknown number of lines written; use `lifetime` or \
             `pod_reschedule`"
        }
        Need::Fault(FaultKind::ShipperTerm) => "the shipper pod's exit code after SIGTERM is not observable",
        Need::Fault(FaultKind::CreateGroup) => {
            "creating groups in the kind tier's backend mid-run is not implemented"
        }
        Need::Fault(FaultKind::IdleConnections) => {
            "the harness does not reach the shipper pods' listeners on kind"
        }
        Need::Fault(_) => return None,
        Need::RestartWhileDisconnected => {
            "the nodes are disconnected then: the harness cannot see the restarted node come back"
        }
        Need::GroupsOnTheSide => "read and written on the local tier only",
        Need::Fleet => "runs one shipper process per simulated node: the local tier only",
        Need::AccountQuotas => "enforced by the local and container tiers' gateway only",
        Need::WrittenBy => "checked by the local and container tiers' loop only",
        Need::FillerMetadata => "served by the local and container tiers' stand-in API only",
        Need::MissingOwner => {
            "does not exist on the cluster, and its garbage collector deletes pods whose owner is missing"
        }
        Need::AgedLines => "needs a node clock the harness controls",
        Need::CrashPoints => "need the local tier's shipper process",
        Need::DeadLetters => "reads the dead-letter file on the node",
        Need::ProcessMemory => "measures the shipper process on the host",
        Need::Backpressure => "needs a spool cap reached on cue",
        Need::LaunchHook => "on kind the DaemonSet launches the shipper",
        Need::BackendUrl => {
            "the kind tier runs its own backend container on the kind network: use --backend \
             localstack or moto"
        }
    })
}

/// Every need of `scenario` (and of how it is run), each with what in the scenario asks it.
pub fn needs(scenario: &Scenario, backend: &BackendChoice, hooked: bool) -> Vec<(Need, String)> {
    let mut needs = Vec::new();
    for f in &scenario.faults {
        let at = format!("fault {} at {:?}", fault_name(f.kind), f.at.0);
        needs.push((Need::Fault(f.kind), at.clone()));
        let disconnected = scenario
            .faults
            .iter()
            .any(|g| g.kind == FaultKind::NetworkDisconnect && g.at.0 <= f.at.0 && f.at.0 < g.end());
        if f.kind == FaultKind::NodeRestart && disconnected {
            needs.push((Need::RestartWhileDisconnected, at));
        }
    }
    let mut add = |need, what: &str| needs.push((need, what.to_owned()));
    if !scenario.existing_groups.is_empty() || !scenario.expect.group_settings.is_empty() {
        add(Need::GroupsOnTheSide, "existing_groups and [expect.group_settings]");
    }
    if scenario.fleet.nodes > 1 {
        add(Need::Fleet, "[fleet]");
    }
    if scenario.account.put_log_events_per_second.is_some() {
        add(Need::AccountQuotas, "[account] quotas");
    }
    if scenario.expect.written_by.is_some() {
        add(Need::WrittenBy, "expect.written_by");
    }
    if !scenario.shipper.crash_points.is_empty() {
        add(Need::CrashPoints, "`shipper.crash_points`");
    }
    if !scenario.expect.dropped.is_empty() {
        add(Need::DeadLetters, "`expect.dropped`");
    }
    if scenario.expect.max_rss_mib.is_some() {
        add(Need::ProcessMemory, "`expect.max_rss_mib`");
    }
    if scenario.expect.backpressure {
        add(Need::Backpressure, "`expect.backpressure`");
    }
    if hooked {
        add(Need::LaunchHook, "a launch hook");
    }
    if let BackendChoice::Url(url) = backend {
        add(Need::BackendUrl, &format!("--backend {url}"));
    }
    if let Some(pod) = scenario.pods.iter().find(|pod| pod.filler.is_some()) {
        add(Need::FillerMetadata, &format!("{}: `filler` metadata", pod.name));
    }
    for pod in scenario.expanded_pods() {
        if let Some(owner) = &pod.owner {
            add(Need::MissingOwner, &format!("{}: `owner` {} {}", pod.name, owner.kind, owner.name));
        }
        for c in pod.containers.iter().filter(|c| c.age.is_some()) {
            add(Need::AgedLines, &format!("{}/{}: `age`", pod.name, c.name));
        }
    }
    needs
}

/// Why `tier` cannot run `scenario` (with a launch hook when `hooked`, against `backend`),
/// with every reason; `None`: it can.
pub fn refusal(
    scenario: &Scenario,
    tier: ClusterChoice,
    backend: &BackendChoice,
    hooked: bool,
) -> Option<String> {
    let reasons: Vec<String> = needs(scenario, backend, hooked)
        .into_iter()
        .filter_map(|(need, what)| cannot(tier, need).map(|why| format!("{what}: {why}")))
        .collect();
    (!reasons.is_empty()).then(|| {
        format!("scenario {} cannot run on the {} tier: {}", scenario.name, tier.name(), reasons.join("; "))
    })
}

/// Why the kind tier cannot run `scenario` as written against an emulator it starts.
pub fn kind_refusal(scenario: &Scenario) -> Option<String> {
    refusal(scenario, ClusterChoice::Kind, &BackendChoice::LocalStack, false)
}

/// What the kind tier runs differently from the scenario's letter, and says so in the
/// report: its nodes run containerd, so every container's file is CRI.
pub fn kind_substitutions(scenario: &Scenario) -> Vec<String> {
    scenario
        .expanded_pods()
        .iter()
        .flat_map(|pod| pod.containers.iter().map(move |c| (pod, c)))
        .filter(|(_, c)| c.format != "cri")
        .map(|(pod, c)| {
            format!(
                "{}/{}: {} format written as CRI (kind's nodes run containerd)",
                pod.name, c.name, c.format
            )
        })
        .collect()
}

fn fault_name(kind: FaultKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
why = "w"
[[pods]]
namespace = "ns"
name = "p"
containers = [{ name = "c", lines = 10 }]
[expect]
groups = { "g" = ["p_c"] }
"#;

    fn with_fault(kind: &str) -> Scenario {
        Scenario::parse(&format!("{BASE}\n[[faults]]\nat = \"2s\"\nkind = \"{kind}\"\npod = \"p\"\n"))
            .expect("valid")
    }

    #[test]
    fn owners_are_refused_on_kind() {
        let owned = BASE.replace("name = \"p\"", "name = \"p\"\nowner = { kind = \"Job\", name = \"j-1\" }");
        let refusal = kind_refusal(&Scenario::parse(&owned).expect("valid")).expect("refused");
        assert!(refusal.contains("`owner` Job j-1") && refusal.contains("garbage collector"), "{refusal}");
        assert!(kind_refusal(&Scenario::parse(BASE).expect("valid")).is_none());
    }

    #[test]
    fn node_scaling_is_refused_on_one_node_and_accepted_on_kind() {
        for kind in ["node_join", "pod_reschedule"] {
            let s = with_fault(kind);
            let refusal = refusal(&s, ClusterChoice::Local, &BackendChoice::Moto, false).expect("refused");
            assert!(refusal.contains(kind) && refusal.contains("several nodes"), "{refusal}");
            assert_eq!(kind_refusal(&s), None);
        }
        assert_eq!(
            refusal(&with_fault("blackhole"), ClusterChoice::Container, &BackendChoice::Moto, false),
            None
        );
    }

    #[test]
    fn kind_refuses_what_it_cannot_apply_and_says_what() {
        for kind in ["api_unavailable", "rotate", "container_restart", "pod_delete", "shipper_term"] {
            let refusal = kind_refusal(&with_fault(kind)).expect("refused");
            assert!(refusal.contains(kind), "{refusal}");
        }
        for kind in ["blackhole", "backend_pause", "network_disconnect", "shipper_kill", "pod_relabel"] {
            assert_eq!(kind_refusal(&with_fault(kind)), None, "{kind}");
        }
        // A node restart runs on kind, except while the nodes are cut off from the harness.
        let restart = format!("{BASE}\n[[faults]]\nat = \"3s\"\nkind = \"node_restart\"\n");
        let restart = Scenario::parse(&restart).expect("valid");
        assert_eq!(kind_refusal(&restart), None);
        assert_eq!(
            refusal(&restart, ClusterChoice::Local, &BackendChoice::Moto, false),
            None,
            "mapped to a kill on one node"
        );
        let cut_off = Scenario::parse(&format!(
            "{BASE}\n[[faults]]\nat = \"2s\"\nfor = \"2s\"\nkind = \"network_disconnect\"\n\
             [[faults]]\nat = \"3s\"\nkind = \"node_restart\"\n"
        ))
        .expect("valid");
        let refusal = kind_refusal(&cut_off).expect("refused");
        assert!(refusal.contains("node_restart") && refusal.contains("disconnected"), "{refusal}");
        let aged = Scenario::parse(&BASE.replace("lines = 10", "lines = 10, age = \"20d\"")).expect("valid");
        assert!(kind_refusal(&aged).expect("refused").contains("`age`"));
    }

    #[test]
    fn docker_format_runs_on_kind_as_cri_and_is_reported() {
        let docker =
            Scenario::parse(&BASE.replace("lines = 10", "lines = 10, format = \"docker\"")).expect("valid");
        assert_eq!(kind_refusal(&docker), None);
        assert_eq!(
            kind_substitutions(&docker),
            ["p/c: docker format written as CRI (kind's nodes run containerd)"]
        );
        assert!(kind_substitutions(&Scenario::parse(BASE).expect("valid")).is_empty());
    }

    #[test]
    fn every_scenario_file_is_either_runnable_on_kind_or_refused_with_reasons() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut runnable = 0;
        for entry in std::fs::read_dir(&dir).expect("scenarios/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                match kind_refusal(&s) {
                    None => runnable += 1,
                    Some(reason) => assert!(reason.contains(": "), "{reason}"),
                }
            }
        }
        assert!(runnable >= 5, "only {runnable} scenario files run on kind");
    }
}
