//! What each tier can run. A scenario a tier cannot apply as written is refused up front
//! with the reason, never run with a fault silently left out.

use crate::scenario::{FaultKind, Scenario};

/// Why the local or container tier (one node) cannot run `scenario`, if it cannot.
pub fn single_node_refusal(scenario: &Scenario, tier: &str) -> Option<String> {
    let f = scenario.faults.iter().find(|f| f.kind.needs_several_nodes())?;
    Some(format!(
        "scenario {}: fault {} at {:?} needs several nodes; the {tier} tier has one. Run it on kind: \
         cargo test --workspace --features harness/e2e --test kind_tier",
        scenario.name,
        fault_name(f.kind),
        f.at.0
    ))
}

/// Why the kind tier cannot run `scenario`, if it cannot: every fault, container setting and
/// expectation it cannot apply or measure on a real cluster, listed.
pub fn kind_refusal(scenario: &Scenario) -> Option<String> {
    let mut reasons = Vec::new();
    for f in &scenario.faults {
        let why = match f.kind {
            FaultKind::ApiUnavailable | FaultKind::ApiCompact => {
                "the real API server cannot be made unavailable or compacted on cue"
            }
            FaultKind::Rotate => "kubelet rotates by size only (kind-config sets containerLogMaxSize)",
            FaultKind::ContainerRestart => "a writer container that restarts would print its lines again",
            FaultKind::PodDelete => {
                "a pod deleted mid-write leaves an unknown number of lines written; use `lifetime` or \
                 `pod_reschedule`"
            }
            FaultKind::ShipperTerm => "the shipper pod's exit code after SIGTERM is not observable",
            FaultKind::CreateGroup => "creating groups in the kind tier's backend mid-run is not implemented",
            FaultKind::IdleConnections => "the harness does not reach the shipper pods' listeners on kind",
            FaultKind::NodeRestart
                if scenario.faults.iter().any(|g| {
                    g.kind == FaultKind::NetworkDisconnect && g.at.0 <= f.at.0 && f.at.0 < g.end()
                }) =>
            {
                "the nodes are disconnected then: the harness cannot see the restarted node come back"
            }
            _ => continue,
        };
        reasons.push(format!("fault {} at {:?}: {why}", fault_name(f.kind), f.at.0));
    }
    if !scenario.existing_groups.is_empty() || !scenario.expect.group_settings.is_empty() {
        reasons.push(
            "existing_groups and [expect.group_settings] are read and written on the local tier only".into(),
        );
    }
    if scenario.fleet.nodes > 1 {
        reasons.push("[fleet] runs one shipper process per simulated node: the local tier only".into());
    }
    if scenario.account.put_log_events_per_second.is_some() {
        reasons.push("[account] quotas are enforced by the local and container tiers' gateway only".into());
    }
    if scenario.expect.written_by.is_some() {
        reasons.push("expect.written_by is checked by the local and container tiers' loop only".into());
    }
    if let Some(pod) = scenario.pods.iter().find(|pod| pod.filler.is_some()) {
        reasons.push(format!(
            "{}: `filler` metadata is served by the local and container tiers' stand-in API only",
            pod.name
        ));
    }
    for pod in scenario.expanded_pods() {
        if let Some(owner) = &pod.owner {
            reasons.push(format!(
                "{}: `owner` {} {} does not exist on the cluster, and its garbage collector deletes pods \
                 whose owner is missing",
                pod.name, owner.kind, owner.name
            ));
        }
        for c in &pod.containers {
            if c.age.is_some() {
                reasons
                    .push(format!("{}/{}: `age` needs a node clock the harness controls", pod.name, c.name));
            }
        }
    }
    if !scenario.shipper.crash_points.is_empty() {
        reasons.push("`shipper.crash_points` need the local tier's shipper process".into());
    }
    if !scenario.expect.dropped.is_empty() {
        reasons.push("`expect.dropped` reads the dead-letter file on the node".into());
    }
    if scenario.expect.max_rss_mib.is_some() {
        reasons.push("`expect.max_rss_mib` measures the shipper process on the host".into());
    }
    if scenario.expect.backpressure {
        reasons.push("`expect.backpressure` needs a spool cap reached on cue".into());
    }
    (!reasons.is_empty())
        .then(|| format!("scenario {} cannot run on the kind tier: {}", scenario.name, reasons.join("; ")))
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
            let refusal = single_node_refusal(&s, "local").expect("refused");
            assert!(refusal.contains(kind) && refusal.contains("several nodes"), "{refusal}");
            assert_eq!(kind_refusal(&s), None);
        }
        assert_eq!(single_node_refusal(&with_fault("blackhole"), "container"), None);
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
        assert_eq!(single_node_refusal(&restart, "local"), None, "mapped to a kill on one node");
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
