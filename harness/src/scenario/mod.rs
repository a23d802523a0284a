//! Scenario files (contract, DESIGN §4): outage scenarios as data.
//!
//! ```toml
//! name = "short-blackhole"
//! why = "CloudWatch unreachable for a few seconds: everything must arrive once it is back."
//!
//! [[pods]]
//! namespace = "shop"
//! name = "web-0"
//! labels = { app = "web" }
//! containers = [{ name = "nginx", image = "nginx:1.27", lines = 400, rate = 200 }]
//!
//! [[faults]]
//! at = "1s"
//! for = "3s"
//! kind = "blackhole"
//!
//! [expect]
//! groups = { "k8s_local_shop_web_nginx" = ["web-0_nginx"] }
//! max_duplicates = 0
//! drain_timeout = "60s"
//! ```
//!
//! Node scaling (kind tier only, `scenarios/kind/`): fault `node_join` (a held-back worker
//! joins at `at`; at most one) and `pod_reschedule` with `pod` (the pod's lines due by `at`
//! are written on its node; a pod of the same name writes the rest, numbered on, on another
//! node). The local and container tiers refuse scenarios with them.
//!
//! Node restart (every tier): fault `node_restart` crashes the scenario's node at `at` (no
//! `pod`, no `for`; `restart_after` is how long it stays down, default at once). The ledger
//! rule: every pod that starts before `at` must have its last line due (`start + (lines - 1) /
//! rate`, `stagger` included) at least [`NODE_RESTART_MARGIN`] before `at`, so only the
//! shipper and the files already on disk go through the restart; pods starting later are
//! created once the node is back. Not combined with node scaling (which node would it be?).
//! The kind tier kills and starts the node's container; the local and container tiers have
//! no node to restart and SIGKILL the shipper, then start it again on the same state.
//!
//! Unknown keys are errors everywhere. Expected names are written out by hand: the harness
//! never computes them with the shipper's routing code.

mod model;

pub use model::*;

use std::path::Path;
use std::time::Duration;

/// A scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not readable.
    #[error("scenario {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML for the format (unknown keys included).
    #[error("scenario {path}: {reason}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// Why, with line and column.
        reason: String,
    },
    /// Parsed, but inconsistent.
    #[error("scenario {path}: {reason}")]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// What is inconsistent.
        reason: String,
    },
}

impl Scenario {
    /// Load and validate a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|e| match e {
            ScenarioError::Parse { reason, .. } => ScenarioError::Parse { path: path.to_owned(), reason },
            ScenarioError::Invalid { reason, .. } => ScenarioError::Invalid { path: path.to_owned(), reason },
            other => other,
        })
    }

    /// Parse and validate scenario text.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text)
            .map_err(|e| ScenarioError::Parse { path: "<text>".into(), reason: e.to_string() })?;
        scenario.validate().map_err(|reason| ScenarioError::Invalid { path: "<text>".into(), reason })?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("`name` must not be empty".into());
        }
        if self.why.trim().is_empty() {
            return Err("`why` must say what incident this reproduces".into());
        }
        for pod in &self.pods {
            if pod.replicas.is_some() != pod.name.contains("{i}") {
                return Err(format!("pod {:?}: `replicas` and `{{i}}` in the name go together", pod.name));
            }
            if pod.stagger.is_some() && pod.replicas.is_none() {
                return Err(format!("pod {:?}: `stagger` needs `replicas`", pod.name));
            }
        }
        let pods = self.expanded_pods();
        let mut seen = std::collections::BTreeSet::new();
        for pod in &pods {
            if !seen.insert((pod.namespace.as_str(), pod.name.as_str())) {
                return Err(format!("pod {}/{} is listed twice", pod.namespace, pod.name));
            }
            if pod.containers.is_empty() {
                return Err(format!("pod {}/{} has no containers", pod.namespace, pod.name));
            }
            if let Some(lifetime) = pod.lifetime {
                for c in &pod.containers {
                    // The last line is due at (lines - 1) / rate; leave a tick of slack.
                    let needs = Duration::from_secs_f64(c.lines as f64 / c.rate) + Duration::from_millis(100);
                    if needs > lifetime.0 {
                        return Err(format!(
                            "pod {}/{}: container {} needs {needs:?} to write its lines, longer than lifetime {:?}",
                            pod.namespace, pod.name, c.name, lifetime.0
                        ));
                    }
                }
            }
            for c in &pod.containers {
                if c.rate <= 0.0 {
                    return Err(format!("container {} of {}: rate must be > 0 lines/s", c.name, pod.name));
                }
            }
        }
        for f in &self.faults {
            if let Some(target) = f.target_pod()
                && !pods.iter().any(|p| p.name == target)
            {
                return Err(format!("fault {:?} at {:?} names unknown pod {target:?}", f.kind, f.at));
            }
        }
        for f in &self.faults {
            if matches!(f.kind, FaultKind::PodReschedule | FaultKind::PodDelete | FaultKind::PodRelabel)
                && f.target_pod().is_none()
            {
                return Err(format!("fault {:?} at {:?} needs `pod`", f.kind, f.at));
            }
            if f.kind == FaultKind::PodReschedule
                && let Some(pod) = pods.iter().find(|p| Some(p.name.as_str()) == f.target_pod())
                && f.at.0 <= pod.start.0
            {
                return Err(format!(
                    "pod_reschedule at {:?}: pod {} starts only at {:?}",
                    f.at.0, pod.name, pod.start.0
                ));
            }
        }
        for f in self.faults.iter().filter(|f| f.kind == FaultKind::NodeRestart) {
            node_restart_allowed(f, &pods, &self.faults)?;
        }
        if self.faults.iter().filter(|f| f.kind == FaultKind::NodeJoin).count() > 1 {
            return Err("at most one `node_join`: the multi-node kind config holds one worker back".into());
        }
        self.validate_new_keys(&pods)?;
        self.validate_fleet()?;
        for f in self.faults.iter().filter(|f| f.kind == FaultKind::CreateGroup) {
            if f.groups.as_ref().is_none_or(Vec::is_empty) {
                return Err(format!("create_group at {:?} needs `groups`: the names to create", f.at.0));
            }
        }
        for key in self.expect.group_settings.keys() {
            glob::Pattern::new(key)
                .map_err(|e| format!("[expect.group_settings] key {key:?} is not a glob: {e}"))?;
        }
        for d in &self.expect.delivered_by {
            if let Some(g) = d.groups.iter().find(|g| !self.expect.groups.contains_key(*g)) {
                return Err(format!(
                    "expect.delivered_by names group {g:?}, which [expect.groups] does not list"
                ));
            }
        }
        Ok(())
    }

    /// `[fleet]` and `[expect.fleet]`: several shippers share the gateway, the API and the
    /// ledger; what acts on one shipper process cannot be said of a fleet.
    fn validate_fleet(&self) -> Result<(), String> {
        let nodes = self.fleet.nodes;
        if !(1..=MAX_FLEET_NODES).contains(&nodes) {
            return Err(format!("[fleet] nodes = {nodes}: use 1 to {MAX_FLEET_NODES}"));
        }
        if let Some(expect) = &self.expect.fleet {
            if self.account.put_log_events_per_second.is_none() {
                return Err(
                    "[expect.fleet] measures the account's quota: set [account] put_log_events_per_second"
                        .into(),
                );
            }
            if !(expect.max_ask_ratio.is_finite() && expect.max_ask_ratio > 0.0) {
                return Err(format!(
                    "[expect.fleet] max_ask_ratio = {}: use a number > 0",
                    expect.max_ask_ratio
                ));
            }
        }
        if nodes == 1 {
            return Ok(());
        }
        let per_shipper = self.faults.iter().find(|f| {
            f.kind.restarts_shipper()
                || f.kind.needs_several_nodes()
                || matches!(
                    f.kind,
                    FaultKind::IdleConnections | FaultKind::BackendPause | FaultKind::NetworkDisconnect
                )
        });
        if let Some(f) = per_shipper {
            return Err(format!(
                "[fleet]: fault {:?} at {:?} acts on one shipper process or node; a fleet scenario has {nodes}",
                f.kind, f.at.0
            ));
        }
        if !self.shipper.crash_points.is_empty()
            || !self.expect.metrics.is_empty()
            || !self.expect.dropped.is_empty()
        {
            return Err(
                "[fleet]: crash_points, expect.metrics and expect.dropped are about one shipper process"
                    .into(),
            );
        }
        Ok(())
    }

    /// Owners, exclusions, traces, encodings and the message and metrics expectations.
    fn validate_new_keys(&self, pods: &[PodSpec]) -> Result<(), String> {
        for pod in pods {
            if let Some(owner) = &pod.owner
                && (owner.kind.trim().is_empty() || owner.name.trim().is_empty())
            {
                return Err(format!("pod {}/{}: `owner` needs a kind and a name", pod.namespace, pod.name));
            }
            for c in &pod.containers {
                let at = || format!("pod {}/{} container {}", pod.namespace, pod.name, c.name);
                if let Some(kind) = &c.traces {
                    crate::audit::TraceKind::parse(kind).map_err(|e| format!("{}: {e}", at()))?;
                    if c.encoding != "text" {
                        return Err(format!("{}: `traces` are text; drop `encoding`", at()));
                    }
                }
                if !matches!(c.encoding.as_str(), "text" | "json") {
                    return Err(format!("{}: encoding {:?}: use \"text\" or \"json\"", at(), c.encoding));
                }
                if c.encoding == "json" && c.sizes.iter().any(|s| s == "invalid-utf8") {
                    return Err(format!("{}: a JSON line cannot carry invalid UTF-8", at()));
                }
                if c.excluded_by.as_deref().is_some_and(|r| r.trim().is_empty()) {
                    return Err(format!("{}: `excluded_by` names the rule; it is empty", at()));
                }
                if c.excluded_by.is_some() && c.age.is_some() {
                    return Err(format!(
                        "{}: an excluded container is never sent; `age` means nothing",
                        at()
                    ));
                }
            }
        }
        let msg = &self.expect.message;
        let envelope = ["container_image", "container_name", "host", "log", "namespace", "pod_name"];
        if let Some(k) = msg.extra_keys.iter().find(|k| envelope.contains(&k.as_str())) {
            return Err(format!("expect.message.extra_keys: {k:?} is an envelope key already"));
        }
        if msg.format == MessageFormat::Raw && (!msg.extra_keys.is_empty() || !msg.fields.is_empty()) {
            return Err("expect.message: a raw message has no keys; drop `extra_keys` and `fields`".into());
        }
        if !self.expect.metrics.is_empty() {
            let restarts = self.faults.iter().find(|f| f.kind.restarts_shipper());
            if let Some(f) = restarts {
                return Err(format!(
                    "expect.metrics needs a single start of the shipper (counters restart with it); \
                     fault {:?} at {:?} restarts it",
                    f.kind, f.at.0
                ));
            }
            if !self.shipper.crash_points.is_empty() {
                return Err("expect.metrics needs a single start of the shipper; drop `crash_points`".into());
            }
        }
        // The excluded-line counters must be what the scenario's own containers add up to,
        // so a value typed by hand cannot drift from the workload.
        for (series, value) in &self.expect.metrics {
            if let Some(rule) = series
                .strip_prefix("shipper_lines_excluded_total{rule=\"")
                .and_then(|r| r.strip_suffix("\"}"))
            {
                let lines: u64 = pods
                    .iter()
                    .flat_map(|p| &p.containers)
                    .filter(|c| c.excluded_by.as_deref() == Some(rule))
                    .map(|c| c.lines)
                    .sum();
                if lines != *value {
                    return Err(format!(
                        "expect.metrics {series} = {value}, but the containers with excluded_by = {rule:?} \
                         write {lines} lines"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every line the scenario writes, over all containers.
    pub fn total_lines(&self) -> u64 {
        self.expanded_pods().iter().flat_map(|p| &p.containers).map(|c| c.lines).sum()
    }

    /// Pods with `replicas` expanded.
    pub fn expanded_pods(&self) -> Vec<PodSpec> {
        let mut out = Vec::new();
        for pod in &self.pods {
            match pod.replicas {
                None => out.push(pod.clone()),
                Some(n) => {
                    for i in 0..n {
                        let mut p = pod.clone();
                        p.name = pod.name.replace("{i}", &i.to_string());
                        p.replicas = None;
                        if let Some(stagger) = pod.stagger {
                            p.start = Dur(pod.start.0 + stagger.0 * i);
                        }
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    /// The expected layout with `{i}` streams expanded over the replica count.
    pub fn expected_layout(&self) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        let replicas = self.pods.iter().filter_map(|p| p.replicas).max().unwrap_or(0);
        self.expect
            .groups
            .iter()
            .map(|(group, streams)| {
                let expanded = streams
                    .iter()
                    .flat_map(|s| {
                        if s.contains("{i}") {
                            (0..replicas).map(|i| s.replace("{i}", &i.to_string())).collect::<Vec<_>>()
                        } else {
                            vec![s.clone()]
                        }
                    })
                    .collect();
                (group.clone(), expanded)
            })
            .collect()
    }
}

/// Why `node_restart` fault `f` cannot be applied with an exact ledger, if it cannot.
fn node_restart_allowed(f: &Fault, pods: &[PodSpec], faults: &[Fault]) -> Result<(), String> {
    let at = f.at.0;
    if f.pod.is_some() {
        return Err(format!("node_restart at {at:?} restarts the node; it takes no `pod`"));
    }
    if f.duration.is_some() {
        return Err(format!(
            "node_restart at {at:?} is instant; `restart_after` says how long the node stays down, not `for`"
        ));
    }
    if let Some(scaling) = faults.iter().find(|g| g.kind.needs_several_nodes()) {
        return Err(format!(
            "node_restart at {at:?} restarts the scenario's one node; it cannot be combined with {:?} at {:?}",
            scaling.kind, scaling.at.0
        ));
    }
    // A pod starting at `at` or later is created after the restart step (both runners apply
    // a tick's faults before creating its pods; the kind runner returns once the node is back).
    for pod in pods.iter().filter(|p| p.start.0 < at) {
        for c in &pod.containers {
            // The same arithmetic as the line plan's due times: the n-th line (from 0) is due
            // at start + n / rate.
            let last_due = pod.start.0 + Duration::from_secs_f64(c.lines.saturating_sub(1) as f64 / c.rate);
            if last_due + NODE_RESTART_MARGIN > at {
                return Err(format!(
                    "node_restart at {at:?}: pod {}/{} container {} is still writing (its last line is \
                     due at {last_due:?}; a restart needs every writer on the node done {NODE_RESTART_MARGIN:?} \
                     before, else the ledger of a writer killed mid-write is unknown)",
                    pod.namespace, pod.name, c.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
