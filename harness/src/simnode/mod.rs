//! SimNode: writes exactly what kubelet and containerd write on a node
//! (`reference/kubelet-logs.md`), under a root directory of our choosing.
//!
//! - real files `root/var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log`;
//! - symlinks `root/var/log/containers/<pod>_<ns>_<container>-<64 hex id>.log` → real file;
//! - CRI records (or Docker json-file objects), lines over 16 KiB split like the runtime;
//! - kubelet's size-based rotation, container restarts and pod deletion.
//!
//! Every line is written with a single `write` on an unbuffered file, so a concurrent
//! reader never waits for a flush.

mod format;
mod rotate;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use format::{LogFormat, MAX_RECORD_BYTES, Stream, push_line, push_rfc3339_nano, rotation_stamp};

/// What can go wrong while writing a node's log files.
#[derive(Debug, thiserror::Error)]
pub enum SimNodeError {
    /// A file system operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What we tried to do.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A Kubernetes name that would produce paths kubelet never writes.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// Which name (namespace, pod, uid, container).
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
}

impl SimNodeError {
    fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SimNodeError::Io { op, path: path.into(), source }
    }
}

/// One simulated node: the `var/log/pods` and `var/log/containers` trees under a root.
#[derive(Debug, Clone)]
pub struct SimNode {
    pods_dir: PathBuf,
    containers_dir: PathBuf,
}

impl SimNode {
    /// Create (or reuse) `root/var/log/pods` and `root/var/log/containers`.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, SimNodeError> {
        let root = root.as_ref();
        let pods_dir = root.join("var/log/pods");
        let containers_dir = root.join("var/log/containers");
        for dir in [&pods_dir, &containers_dir] {
            fs::create_dir_all(dir).map_err(|source| SimNodeError::io("create", dir, source))?;
        }
        Ok(SimNode { pods_dir, containers_dir })
    }

    /// `root/var/log/pods`.
    pub fn pods_dir(&self) -> &Path {
        &self.pods_dir
    }

    /// `root/var/log/containers`: where the shipper's default glob points.
    pub fn containers_dir(&self) -> &Path {
        &self.containers_dir
    }

    /// Start a container (restart count 0) writing CRI records: creates its directory,
    /// `0.log` and the symlink.
    pub fn add_container(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
    ) -> Result<ContainerLog, SimNodeError> {
        self.add_container_with_format(namespace, pod, uid, container, LogFormat::Cri)
    }

    /// [`SimNode::add_container`] with an explicit file format.
    pub fn add_container_with_format(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        format: LogFormat,
    ) -> Result<ContainerLog, SimNodeError> {
        validate_dns_name("namespace", namespace, 63)?;
        validate_dns_name("pod", pod, 253)?;
        validate_dns_name("container", container, 63)?;
        if uid.is_empty() || uid.contains(['/', '_']) {
            return Err(SimNodeError::InvalidName {
                what: "uid",
                value: uid.to_owned(),
                reason: "must be non-empty without '/' or '_'",
            });
        }
        let container_dir = self.pods_dir.join(format!("{namespace}_{pod}_{uid}")).join(container);
        fs::create_dir_all(&container_dir)
            .map_err(|source| SimNodeError::io("create", &container_dir, source))?;
        let mut log = ContainerLog {
            containers_dir: self.containers_dir.clone(),
            container_dir,
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            format,
            restart_count: 0,
            container_id: String::new(),
            file: None,
            dead: VecDeque::new(),
            last_rotation_secs: None,
            buffer: Vec::with_capacity(512),
        };
        log.start()?;
        Ok(log)
    }

    /// Delete a pod the way kubelet does: every container's symlinks, then the pod
    /// directory with all log files (rotated ones included).
    pub fn delete_pod(&self, namespace: &str, pod: &str, uid: &str) -> Result<(), SimNodeError> {
        let pod_dir = self.pods_dir.join(format!("{namespace}_{pod}_{uid}"));
        let entries = fs::read_dir(&self.containers_dir)
            .map_err(|source| SimNodeError::io("list", &self.containers_dir, source))?;
        for entry in entries {
            let link = entry.map_err(|source| SimNodeError::io("list", &self.containers_dir, source))?.path();
            if fs::read_link(&link).is_ok_and(|target| target.starts_with(&pod_dir)) {
                remove_if_exists(&link)?;
            }
        }
        match fs::remove_dir_all(&pod_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SimNodeError::io("remove", &pod_dir, e)),
            _ => Ok(()),
        }
    }
}

/// The log of one container of one pod: the current file, its symlink, rotation and
/// restarts. Owned by the workload that writes it.
#[derive(Debug)]
pub struct ContainerLog {
    containers_dir: PathBuf,
    container_dir: PathBuf,
    namespace: String,
    pod: String,
    container: String,
    format: LogFormat,
    restart_count: u32,
    container_id: String,
    file: Option<File>,
    /// Exited containers kubelet still keeps (restart count, id), oldest first.
    dead: VecDeque<(u32, String)>,
    /// Seconds-since-epoch of the last rotation stamp used (collision avoidance).
    last_rotation_secs: Option<u64>,
    /// Reused for every line: no per-line allocation once grown.
    buffer: Vec<u8>,
}

/// kubelet's default `MaxPerPodContainer`: one exited instance per container is kept (for
/// `kubectl logs --previous`), older ones are garbage collected with their logs.
const KEPT_DEAD_CONTAINERS: usize = 1;

impl ContainerLog {
    /// Path of the file being written now (`<restart>.log`).
    pub fn path(&self) -> PathBuf {
        self.log_path(self.restart_count)
    }

    /// Path of the current container's symlink in `var/log/containers`.
    pub fn symlink(&self) -> PathBuf {
        self.symlink_for(&self.container_id)
    }

    /// The current container id (64 hex characters).
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// `containerd://<id>`, as in the pod's `status.containerStatuses[].containerID`.
    pub fn runtime_container_id(&self) -> String {
        format!("containerd://{}", self.container_id)
    }

    /// How often this container restarted.
    pub fn restart_count(&self) -> u32 {
        self.restart_count
    }

    /// The container directory `var/log/pods/<ns>_<pod>_<uid>/<container>`.
    pub fn dir(&self) -> &Path {
        &self.container_dir
    }

    /// Rotated files of the current log (`<n>.log.*`), oldest first.
    pub fn rotated_files(&self) -> Result<Vec<PathBuf>, SimNodeError> {
        rotate::rotated_files(&self.path())
    }

    /// Write one line (without its newline) timestamped now.
    pub fn write_line(&mut self, stream: Stream, line: &[u8]) -> Result<(), SimNodeError> {
        self.write_line_at(stream, line, SystemTime::now())
    }

    /// Write one line with a given runtime timestamp (deterministic tests).
    pub fn write_line_at(
        &mut self,
        stream: Stream,
        line: &[u8],
        time: SystemTime,
    ) -> Result<(), SimNodeError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        push_line(&mut buffer, self.format, stream, time, line);
        let result = self.write_raw(&buffer);
        self.buffer = buffer;
        result
    }

    /// Append raw bytes to the current file: e.g. half a record, to imitate a reader
    /// catching the runtime mid-write.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), SimNodeError> {
        let path = self.path();
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| SimNodeError::io("write", &path, io::Error::other("log file is closed")))?;
        file.write_all(bytes).map_err(|source| SimNodeError::io("write", path, source))
    }

    /// kubelet's rotation check, now: rotate if the current file is at least `max_size`
    /// bytes. Returns whether it rotated.
    pub fn rotate_if_needed(&mut self, max_size: u64, max_files: usize) -> Result<bool, SimNodeError> {
        self.rotate_if_needed_at(max_size, max_files, SystemTime::now())
    }

    /// [`ContainerLog::rotate_if_needed`] at a given wall-clock time (names the rotated file).
    ///
    /// kubelet never rotates one container twice within a second (its monitor period is
    /// 10 s), so it never meets a name collision; a simulation can rotate faster. We then
    /// take the next free second, which keeps kubelet's name layout and keeps name order
    /// equal to rotation order, the property readers and kubelet's own cleanup rely on.
    pub fn rotate_if_needed_at(
        &mut self,
        max_size: u64,
        max_files: usize,
        now: SystemTime,
    ) -> Result<bool, SimNodeError> {
        let current = self.path();
        let size = fs::metadata(&current).map_err(|source| SimNodeError::io("stat", &current, source))?.len();
        if size < max_size {
            return Ok(false);
        }
        rotate::prepare_rotation(&current, max_files)?;
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut secs = match self.last_rotation_secs {
            Some(last) if last >= now_secs => last + 1,
            _ => now_secs,
        };
        let rotated = loop {
            let candidate = PathBuf::from(format!("{}.{}", current.display(), rotation_stamp(secs)));
            let gz = PathBuf::from(format!("{}.gz", candidate.display()));
            if !candidate.exists() && !gz.exists() {
                break candidate;
            }
            secs += 1;
        };
        fs::rename(&current, &rotated).map_err(|source| SimNodeError::io("rename", &current, source))?;
        self.last_rotation_secs = Some(secs);
        // ReopenContainerLog: the runtime closes its descriptor and creates a fresh file.
        self.file = Some(create_log_file(&current)?);
        Ok(true)
    }

    /// The container exits and kubelet starts it again: a new container id, a new file
    /// `<restart>.log` and a new symlink. The exited instance's file and symlink stay (kubelet
    /// keeps one exited instance per container); the one before it is garbage collected with
    /// its files (`<n>.log*`) and symlink, as kubelet's container GC does.
    pub fn restart(&mut self) -> Result<(), SimNodeError> {
        self.file = None;
        self.dead.push_back((self.restart_count, std::mem::take(&mut self.container_id)));
        while self.dead.len() > KEPT_DEAD_CONTAINERS {
            if let Some((restart, id)) = self.dead.pop_front() {
                self.remove_instance(restart, &id)?;
            }
        }
        self.restart_count += 1;
        self.start()
    }

    /// kubelet's container GC evicting every exited instance (e.g. after the pod's
    /// `MaxPerPodContainer` drops to 0): removes their files and symlinks.
    pub fn remove_exited(&mut self) -> Result<(), SimNodeError> {
        while let Some((restart, id)) = self.dead.pop_front() {
            self.remove_instance(restart, &id)?;
        }
        Ok(())
    }

    /// Create the current instance's file and symlink with a fresh id.
    fn start(&mut self) -> Result<(), SimNodeError> {
        self.container_id = new_container_id();
        let path = self.path();
        self.file = Some(create_log_file(&path)?);
        let link = self.symlink();
        remove_if_exists(&link)?;
        std::os::unix::fs::symlink(&path, &link).map_err(|source| SimNodeError::io("symlink", &link, source))
    }

    /// kubelet's `removeContainerLog`: `Clean` removes `<n>.log*`, then the symlink goes.
    fn remove_instance(&self, restart: u32, id: &str) -> Result<(), SimNodeError> {
        let log = self.log_path(restart);
        for file in rotate::rotated_files(&log)? {
            remove_if_exists(&file)?;
        }
        remove_if_exists(&log)?;
        remove_if_exists(&self.symlink_for(id))
    }

    fn log_path(&self, restart: u32) -> PathBuf {
        self.container_dir.join(format!("{restart}.log"))
    }

    fn symlink_for(&self, id: &str) -> PathBuf {
        self.containers_dir.join(format!("{}_{}_{}-{id}.log", self.pod, self.namespace, self.container))
    }
}

fn create_log_file(path: &Path) -> Result<File, SimNodeError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| SimNodeError::io("create", path, source))
}

fn remove_if_exists(path: &Path) -> Result<(), SimNodeError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SimNodeError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// 64 lowercase hex characters, like a containerd container id.
fn new_container_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..64).map(|_| char::from(HEX[fastrand::usize(..16)])).collect()
}

/// DNS-1123 label/subdomain characters: what Kubernetes allows in these names, and what
/// keeps the `_`-separated path layout unambiguous.
fn validate_dns_name(what: &'static str, value: &str, max_len: usize) -> Result<(), SimNodeError> {
    let reason = if value.is_empty() || value.len() > max_len {
        Some("length out of range")
    } else if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
        Some("only lowercase letters, digits, '-' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SimNodeError::InvalidName { what, value: value.to_owned(), reason }),
        None => Ok(()),
    }
}
