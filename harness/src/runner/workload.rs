//! The workload: containers on the simulated node writing sequence-numbered, self-verifying
//! lines at their scenario's rate, kubelet's rotation, restarts and pod deletion. Every line
//! written goes into the ledger first — the ledger is the audit's truth.

use std::time::{Duration, SystemTime};

use crate::audit::{Charset, Ledger, LineClass, Payload, SizeClass};
use crate::scenario::{ContainerSpec, NodeSettings, PodSpec};
use crate::simnode::{ContainerLog, LogFormat, SimNode, SimNodeError, Stream};

/// The scenario's names for line classes (`sizes = [...]`).
pub fn line_class(name: &str) -> Result<LineClass, String> {
    let ascii = LineClass::ascii;
    Ok(match name {
        "small" => ascii(SizeClass::Minimal),
        "100B" => ascii(SizeClass::B100),
        "16KiB-1" => ascii(SizeClass::K16Minus1),
        "16KiB" => ascii(SizeClass::K16),
        "16KiB+1" => ascii(SizeClass::K16Plus1),
        "256KiB" => ascii(SizeClass::K256),
        "1MiB+" => ascii(SizeClass::OverMiB),
        "unicode" => LineClass { size: SizeClass::B100, charset: Charset::Unicode },
        "invalid-utf8" => LineClass { size: SizeClass::B100, charset: Charset::InvalidUtf8 },
        other => {
            return Err(format!(
                "unknown size class {other:?}; use small, 100B, 16KiB-1, 16KiB, 16KiB+1, 256KiB, 1MiB+, unicode or invalid-utf8"
            ));
        }
    })
}

/// One container's writer.
#[derive(Debug)]
struct Writer {
    namespace: String,
    pod: String,
    uid: String,
    spec: ContainerSpec,
    classes: Vec<LineClass>,
    log: Option<ContainerLog>,
    start: Duration,
    written: u64,
}

impl Writer {
    fn due(&self, t: Duration) -> u64 {
        if t < self.start {
            return 0;
        }
        let due = ((t - self.start).as_secs_f64() * self.spec.rate).floor() as u64 + 1;
        due.min(self.spec.lines)
    }

    fn stream(&self, seq: u64) -> Stream {
        match self.spec.stream.as_str() {
            "stderr" => Stream::Stderr,
            "both" if seq % 2 == 1 => Stream::Stderr,
            _ => Stream::Stdout,
        }
    }
}

/// All writers of the node.
#[derive(Debug)]
pub struct Workload {
    node: SimNode,
    run: String,
    writers: Vec<Writer>,
    settings: NodeSettings,
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
        Workload { node, run, writers: Vec::new(), settings }
    }

    /// Add a pod's containers; they start writing at `pod.start`.
    pub fn add_pod(&mut self, pod: &PodSpec, uid: &str) -> Result<(), WorkloadError> {
        for c in &pod.containers {
            let classes =
                c.sizes.iter().map(|s| line_class(s)).collect::<Result<Vec<_>, _>>().map_err(|reason| {
                    WorkloadError::Spec { pod: pod.name.clone(), container: c.name.clone(), reason }
                })?;
            if classes.is_empty() {
                return Err(WorkloadError::Spec {
                    pod: pod.name.clone(),
                    container: c.name.clone(),
                    reason: "`sizes` is empty".into(),
                });
            }
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
                spec: c.clone(),
                classes,
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
                w.log = Some(self.node.add_container_with_format(
                    &w.namespace,
                    &w.pod,
                    &w.uid,
                    &w.spec.name,
                    format,
                )?);
            }
            while w.written < due {
                let seq = w.written;
                let class = w.classes[(seq as usize) % w.classes.len()];
                let bytes = Payload::line(&self.run, &w.pod, &w.spec.name, seq, class).map_err(|e| {
                    WorkloadError::Spec {
                        pod: w.pod.clone(),
                        container: w.spec.name.clone(),
                        reason: format!("{e:?}"),
                    }
                })?;
                let stream = w.stream(seq);
                let stamped = match w.spec.age {
                    Some(age) => SystemTime::now() - age.0,
                    None => {
                        ledger.record_payload(&w.pod, &w.spec.name, seq, class);
                        SystemTime::now()
                    }
                };
                if let Some(log) = w.log.as_mut() {
                    log.write_line_at(stream, &bytes, stamped)?;
                }
                w.written += 1;
                n += 1;
            }
        }
        Ok(n)
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
        let mut namespace_uid = None;
        for w in self.writers.iter_mut().filter(|w| w.pod == pod) {
            w.spec.lines = w.written;
            namespace_uid = Some((w.namespace.clone(), w.uid.clone()));
            w.log = None;
        }
        if let Some((ns, uid)) = namespace_uid {
            self.node.delete_pod(&ns, pod, &uid)?;
        }
        Ok(())
    }

    /// The namespace of a pod of the workload.
    pub fn namespace_of(&self, pod: &str) -> Option<String> {
        self.writers.iter().find(|w| w.pod == pod).map(|w| w.namespace.clone())
    }

    /// Every writer has written all its lines.
    pub fn done(&self) -> bool {
        self.writers.iter().all(|w| w.written >= w.spec.lines)
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
        self.writers.iter().map(|w| w.spec.lines).sum()
    }
}
