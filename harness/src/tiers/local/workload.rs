//! The workload: containers on the simulated node writing sequence-numbered, self-verifying
//! lines at their scenario's rate, kubelet's rotation, restarts and pod deletion. Every line
//! written goes into the ledger first — the ledger is the audit's truth.

use std::time::{Duration, SystemTime};

use crate::audit::Ledger;
use crate::scenario::{ContainerSpec, NodeSettings, PodSpec};
use crate::simnode::{ContainerLog, LogFormat, SimNode, SimNodeError};
use crate::writer::LinePlan;

/// One container's writer.
#[derive(Debug)]
struct Writer {
    namespace: String,
    pod: String,
    uid: String,
    /// The node the pod runs on (its kubelet writes the files).
    node: SimNode,
    spec: ContainerSpec,
    plan: LinePlan,
    log: Option<ContainerLog>,
    start: Duration,
    written: u64,
}

impl Writer {
    fn due(&self, t: Duration) -> u64 {
        if t < self.start {
            return 0;
        }
        self.plan.due(t - self.start)
    }
}

/// All writers of the node (or of the nodes of a fleet: each pod on its own).
#[derive(Debug)]
pub struct Workload {
    /// Where pods go unless they are placed on another node.
    node: SimNode,
    run: String,
    writers: Vec<Writer>,
    settings: NodeSettings,
    /// Rotations that fell between two lines of one stack trace.
    rotations_mid_trace: u64,
}

/// A workload failure (the scenario cannot run as written).
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// Writing the node's files failed.
    #[error(transparent)]
    Node(#[from] SimNodeError),
    /// The scenario names an unknown size class or format.
    #[error("pod {pod}, container {container}: {reason}")]
    Spec {
        /// Pod.
        pod: String,
        /// Container.
        container: String,
        /// Why.
        reason: String,
    },
}

impl Workload {
    /// A workload on `node`; `run` goes into every payload so lines of other runs are spurious.
    pub fn new(node: SimNode, run: String, settings: NodeSettings) -> Self {
        Workload { node, run, writers: Vec::new(), settings, rotations_mid_trace: 0 }
    }

    /// Add a pod's containers; they start writing at `pod.start`.
    pub fn add_pod(&mut self, pod: &PodSpec, uid: &str) -> Result<(), WorkloadError> {
        let node = self.node.clone();
        self.add_pod_on(pod, uid, &node)
    }

    /// [`Workload::add_pod`], on `node` (a fleet's nodes share one workload and ledger).
    pub fn add_pod_on(&mut self, pod: &PodSpec, uid: &str, node: &SimNode) -> Result<(), WorkloadError> {
        for c in &pod.containers {
            let plan = LinePlan::new(&self.run, &pod.name, c).map_err(|e| WorkloadError::Spec {
                pod: e.pod,
                container: e.container,
                reason: e.reason,
            })?;
            if !matches!(c.format.as_str(), "cri" | "docker") {
                return Err(WorkloadError::Spec {
                    pod: pod.name.clone(),
                    container: c.name.clone(),
                    reason: format!("format {:?}: use \"cri\" or \"docker\"", c.format),
                });
            }
            self.writers.push(Writer {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                uid: uid.to_owned(),
                node: node.clone(),
                spec: c.clone(),
                plan,
                log: None,
                start: pod.start.0,
                written: 0,
            });
        }
        Ok(())
    }

    /// Write every line due at `t` (containers start lazily at their pod's start).
    pub fn tick(&mut self, t: Duration, ledger: &mut Ledger) -> Result<u64, WorkloadError> {
        let mut n = 0;
        for w in &mut self.writers {
            let due = w.due(t);
            if due <= w.written {
                continue;
            }
            if w.log.is_none() {
                let format = if w.spec.format == "docker" { LogFormat::DockerJson } else { LogFormat::Cri };
                w.log = Some(w.node.add_container_with_format(
                    &w.namespace,
                    &w.pod,
                    &w.uid,
                    &w.spec.name,
                    format,
                )?);
            }
            while w.written < due {
                let seq = w.plan.first_seq + w.written;
                let line = w.plan.line(seq).map_err(|e| WorkloadError::Spec {
                    pod: w.pod.clone(),
                    container: w.spec.name.clone(),
                    reason: e.to_string(),
                })?;
                let stamped = match w.spec.age {
                    Some(age) => SystemTime::now() - age.0,
                    None => {
                        w.plan.record(seq, ledger);
                        if w.spec.excluded_by.is_some() {
                            ledger.exclude(&w.pod, &w.spec.name);
                        }
                        SystemTime::now()
                    }
                };
                if let Some(log) = w.log.as_mut() {
                    // A trace is several physical lines. Kubelet rotates asynchronously, so on
                    // a real node a rotation can fall between two lines of one trace: rotate
                    // there too whenever the file is over the limit, and the shipper must
                    // carry the unfinished trace into the new file.
                    let mut physical = line.physical_lines().peekable();
                    while let Some(text) = physical.next() {
                        log.write_line_at(line.stream, text, stamped)?;
                        if physical.peek().is_some()
                            && log.rotate_if_needed(
                                self.settings.container_log_max_size,
                                self.settings.container_log_max_files,
                            )?
                        {
                            self.rotations_mid_trace += 1;
                        }
                    }
                }
                w.written += 1;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Rotations that cut a stack trace in two (its first lines in the rotated file).
    pub fn rotations_mid_trace(&self) -> u64 {
        self.rotations_mid_trace
    }

    /// Kubelet's monitor pass: rotate every running container over the size limit.
    pub fn rotate_over_limit(&mut self) -> Result<u32, WorkloadError> {
        let mut n = 0;
        for w in &mut self.writers {
            if let Some(log) = w.log.as_mut()
                && log.rotate_if_needed(
                    self.settings.container_log_max_size,
                    self.settings.container_log_max_files,
                )?
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Rotate `pod`'s containers now, whatever their size.
    pub fn force_rotate(&mut self, pod: &str) -> Result<(), WorkloadError> {
        let max_files = self.settings.container_log_max_files;
        for w in self.writers.iter_mut().filter(|w| w.pod == pod) {
            if let Some(log) = w.log.as_mut() {
                log.rotate_if_needed(0, max_files)?;
            }
        }
        Ok(())
    }

    /// Restart `pod`'s containers (`1.log`, new container id).
    pub fn restart(&mut self, pod: &str) -> Result<(), WorkloadError> {
        for w in self.writers.iter_mut().filter(|w| w.pod == pod) {
            if let Some(log) = w.log.as_mut() {
                log.restart()?;
            }
        }
        Ok(())
    }

    /// Delete `pod`: its writers stop and its log directory goes, like kubelet's cleanup.
    pub fn delete(&mut self, pod: &str) -> Result<(), WorkloadError> {
        let mut placed = None;
        for w in self.writers.iter_mut().filter(|w| w.pod == pod) {
            w.plan.lines = w.written;
            placed = Some((w.namespace.clone(), w.uid.clone(), w.node.clone()));
            w.log = None;
        }
        if let Some((ns, uid, node)) = placed {
            node.delete_pod(&ns, pod, &uid)?;
        }
        Ok(())
    }

    /// The namespace of a pod of the workload.
    pub fn namespace_of(&self, pod: &str) -> Option<String> {
        self.writers.iter().find(|w| w.pod == pod).map(|w| w.namespace.clone())
    }

    /// Every writer has written all its lines.
    pub fn done(&self) -> bool {
        self.writers.iter().all(|w| w.written >= w.plan.lines)
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.writers.iter().map(|w| w.written).sum()
    }

    /// Lines written with an `age`, which CloudWatch is expected to reject.
    pub fn aged(&self) -> u64 {
        self.writers.iter().filter(|w| w.spec.age.is_some()).map(|w| w.written).sum()
    }

    /// Lines the workload will have written when done.
    pub fn planned(&self) -> u64 {
        self.writers.iter().map(|w| w.plan.lines).sum()
    }
}
