//! The nodes of a run: each a simulated node's files, a state directory and a shipper.
//! One node for most scenarios; `[fleet]` runs several behind one gateway and API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::host::Shipper;
use crate::report::Check;
use crate::scenario::{PodSpec, Scenario};

/// One node of the run.
pub(super) struct NodeRun {
    /// Its name (`spec.nodeName`, the messages' `host`).
    pub name: String,
    /// Its shipper's state directory.
    pub state_dir: PathBuf,
    /// Its shipper.
    pub shipper: Shipper,
    /// When its shipper starts again after a kill, a SIGTERM or its own exit.
    pub restart_at: Option<Duration>,
    /// Its shipper's own exits.
    pub crashes: Crashes,
}

impl NodeRun {
    /// Reap an exit the shipper made by itself and schedule its restart; start it when due.
    pub(super) fn upkeep(&mut self, t: Duration) -> Result<(), crate::shipper_proc::ShipperError> {
        if self.restart_at.is_none()
            && let Some(status) = self.shipper.reap_exit()
        {
            self.crashes.record(self.shipper.armed_crash_point(), status, t);
            self.restart_at = Some(t + CRASH_RESTART_DELAY);
        }
        if let Some(at) = self.restart_at
            && t >= at
        {
            self.shipper.start()?;
            self.restart_at = None;
        }
        Ok(())
    }
}

/// The scenario's node names: its node, or `<node>-1` .. `<node>-n` for a fleet.
pub(super) fn node_names(scenario: &Scenario) -> Vec<String> {
    match scenario.fleet.nodes {
        1 => vec![scenario.node.name.clone()],
        n => (1..=n).map(|k| format!("{}-{k}", scenario.node.name)).collect(),
    }
}

/// Which node each pod runs on: round-robin over `nodes` in the scenario's order.
pub(super) fn placement(pods: &[PodSpec], nodes: usize) -> BTreeMap<String, usize> {
    pods.iter().enumerate().map(|(i, pod)| (pod.name.clone(), i % nodes.max(1))).collect()
}

/// The node of each stream `<pod>_<container>` (the default stream template).
pub(super) fn node_of_stream(
    pods: &[PodSpec],
    placement: &BTreeMap<String, usize>,
    names: &[String],
) -> BTreeMap<String, String> {
    pods.iter()
        .flat_map(|pod| {
            let node = &names[placement[&pod.name]];
            pod.streams().map(move |stream| (stream, node.clone()))
        })
        .collect()
}

/// Every node's exits as one: a node's are named after it when there are several.
pub(super) fn all_crashes(nodes: &[NodeRun]) -> Crashes {
    let mut all = Crashes::default();
    let named = |node: &NodeRun, what: &String| {
        if nodes.len() == 1 { what.clone() } else { format!("{}: {what}", node.name) }
    };
    for node in nodes {
        all.planned.extend(node.crashes.planned.iter().map(|w| named(node, w)));
        all.unexpected.extend(node.crashes.unexpected.iter().map(|w| named(node, w)));
    }
    all
}

/// SIGTERM every shipper; one check for all of them.
pub(super) async fn shut_down(nodes: &mut [NodeRun], timeout: Duration) -> Check {
    let mut exits = Vec::new();
    for node in nodes.iter_mut() {
        exits.push((node.name.clone(), node.shipper.terminate(timeout).await));
    }
    let ok = exits.iter().all(|(_, exit)| *exit == Some(0));
    let detail = match exits.as_slice() {
        [(_, exit)] => format!("exit code {exit:?} after SIGTERM"),
        _ if ok => format!("{} shippers exited 0 after SIGTERM", exits.len()),
        _ => {
            let bad: Vec<String> =
                exits.iter().filter(|(_, e)| *e != Some(0)).map(|(n, e)| format!("{n}: {e:?}")).collect();
            format!("exit codes after SIGTERM: {}", bad.join(", "))
        }
    };
    Check { name: "clean shutdown".into(), ok, detail }
}

/// Pause between a shipper's own exit and its restart (a DaemonSet restarts it too).
pub(super) const CRASH_RESTART_DELAY: Duration = Duration::from_millis(300);

/// Exits the shipper made by itself: at armed crash points (expected) or not (a failure).
#[derive(Debug, Default)]
pub(super) struct Crashes {
    planned: Vec<String>,
    unexpected: Vec<String>,
}

impl Crashes {
    pub(super) fn record(&mut self, armed: Option<&str>, status: std::process::ExitStatus, t: Duration) {
        use std::os::unix::process::ExitStatusExt;
        let aborted = status.signal() == Some(6);
        let what = format!("{status} at {:.1}s", t.as_secs_f64());
        match armed {
            Some(point) if aborted => self.planned.push(format!("{point} ({what})")),
            _ => self.unexpected.push(what),
        }
    }

    pub(super) fn checks(&self, crash_points: &[String]) -> Vec<Check> {
        let mut checks = vec![Check {
            name: "no unexpected exit".into(),
            ok: self.unexpected.is_empty(),
            detail: if self.unexpected.is_empty() {
                "the shipper exited only when told to".into()
            } else {
                format!("exited by itself: {}", self.unexpected.join(", "))
            },
        }];
        if !crash_points.is_empty() {
            checks.push(Check {
                name: "crash points reached".into(),
                ok: self.planned.len() == crash_points.len(),
                detail: format!(
                    "{} of {} armed crash points fired: {}",
                    self.planned.len(),
                    crash_points.len(),
                    self.planned.join(", ")
                ),
            });
        }
        checks
    }
}
