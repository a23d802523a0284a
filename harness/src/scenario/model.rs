//! The scenario file's types. Every struct denies unknown keys.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration written like `"1s"`, `"250ms"`, `"2m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!("{s:?} is not a duration ({e}); write e.g. \"1s\" or \"250ms\""))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// One scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (also the report directory).
    pub name: String,
    /// The incident or peer failure mode this reproduces.
    pub why: String,
    /// Shipper settings for this run.
    #[serde(default)]
    pub shipper: ShipperSettings,
    /// How the simulated node writes and rotates files.
    #[serde(default)]
    pub node: NodeSettings,
    /// The workload.
    pub pods: Vec<PodSpec>,
    /// Faults on the timeline.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Log groups that exist in the backend before the shipper starts (created by the harness
    /// directly, as Terraform would), e.g. for `create_groups = false`.
    #[serde(default)]
    pub existing_groups: Vec<String>,
    /// The account's quotas the gateway enforces for every shipper behind it.
    #[serde(default)]
    pub account: AccountQuotas,
    /// Several nodes, each with its own shipper, sharing the account (local tier).
    #[serde(default)]
    pub fleet: FleetSettings,
    /// The verdict's expectations.
    pub expect: Expect,
}

/// `[account]`: quotas shared by every shipper writing to the account (the gateway enforces
/// them). CreateLogGroup (10/s) and CreateLogStream (50/s) always are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountQuotas {
    /// PutLogEvents calls per second (CloudWatch: 5,000); unset: not enforced.
    pub put_log_events_per_second: Option<u32>,
}

/// `[fleet]`: `nodes` simulated nodes, each with its own files, state directory and shipper
/// process, behind one gateway (one account). Pods are spread over them in the order listed,
/// round-robin; node `k` (from 1) is named `<node.name>-<k>`. The local tier only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSettings {
    /// Nodes (1 to [`MAX_FLEET_NODES`]; default 1: the scenario's one node).
    pub nodes: usize,
}

/// The most nodes a `[fleet]` may have (each is a shipper process on this machine).
pub const MAX_FLEET_NODES: usize = 16;

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings { nodes: 1 }
    }
}

/// `[expect.fleet]`: how the fleet shares the account's PutLogEvents quota
/// (`[account] put_log_events_per_second`, required).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetExpect {
    /// By this time the PutLogEvents calls the fleet asks for (accepted and throttled
    /// together, per 5 s window) have come down to `max_ask_ratio` × the quota, and from then
    /// until the writers stop they average at most that. Nodes keep probing for room (and
    /// back off again when throttled), so single windows may peak above it: the report
    /// shows the peak.
    pub converged_by: Dur,
    /// Calls asked per second over the quota, at most (default 1.0: under the quota).
    #[serde(default = "default_ask_ratio")]
    pub max_ask_ratio: f64,
    /// No node's 99th-percentile latency (line written → its event accepted) above this:
    /// no node starves.
    pub max_node_p99: Dur,
}

fn default_ask_ratio() -> f64 {
    1.0
}

/// Settings passed to the shipper through its contract env.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipperSettings {
    /// `SHIPPER_FLUSH_INTERVAL` (default: 200ms, to keep scenarios short).
    pub flush_interval: Option<Dur>,
    /// `SHIPPER_SPOOL_MAX_BYTES`.
    pub spool_max_bytes: Option<String>,
    /// `SHIPPER_METADATA_WAIT` (default 5s in scenarios).
    pub metadata_wait: Option<Dur>,
    /// `SHIPPER_SHUTDOWN_GRACE`.
    pub shutdown_grace: Option<Dur>,
    /// Extra environment, verbatim.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Crash points, one per start of the shipper (the first start takes the first): the
    /// shipper aborts there (`SHIPPER_CRASH_AT`) and the harness restarts it. `point` alone
    /// crashes at a hit number drawn from the seed; `point:n` at the n-th hit.
    #[serde(default)]
    pub crash_points: Vec<String>,
}

/// Kubelet settings of the simulated node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// Node name.
    #[serde(default = "default_node")]
    pub name: String,
    /// `containerLogMaxSize` in bytes (kubelet default 10Mi; small values force rotations).
    #[serde(default = "default_max_size")]
    pub container_log_max_size: u64,
    /// `containerLogMaxFiles` (kubelet default 5).
    #[serde(default = "default_max_files")]
    pub container_log_max_files: usize,
    /// `containerLogMonitorInterval` (kubelet default 10s).
    #[serde(default = "default_monitor")]
    pub monitor_interval: Dur,
}

fn default_node() -> String {
    "node-a".into()
}
fn default_max_size() -> u64 {
    10 * 1024 * 1024
}
fn default_max_files() -> usize {
    5
}
fn default_monitor() -> Dur {
    Dur(Duration::from_secs(1))
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            name: default_node(),
            container_log_max_size: default_max_size(),
            container_log_max_files: default_max_files(),
            monitor_interval: default_monitor(),
        }
    }
}

/// A pod of the workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels (`app`, `k8s-app`, ...).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When the pod is created (and bound to the node), from the start of the run.
    #[serde(default)]
    pub start: Dur,
    /// Expand into this many pods: `{i}` in `name` becomes 0, 1, ...; an expected stream
    /// containing `{i}` stands for every replica.
    pub replicas: Option<u32>,
    /// With `replicas`: replica `i` starts at `start + i * stagger` (pods coming and going).
    pub stagger: Option<Dur>,
    /// Delete the pod (API object and log directory) this long after it starts; its
    /// containers must have written every line by then.
    pub lifetime: Option<Dur>,
    /// The pod's controller, served as `metadata.ownerReferences` (one reference,
    /// `controller: true`). Names are written literally, like kubelet-era names: a Deployment's
    /// pod `web-7d9f8b6c5d-x2k4p` with label `pod-template-hash = "7d9f8b6c5d"` is owned by
    /// ReplicaSet `web-7d9f8b6c5d`; a CronJob run's pod by Job `report-29081520`. None: a bare pod.
    pub owner: Option<OwnerRef>,
    /// Bulk metadata, as a hostile tenant's pod carries it (none of the shipper's settings
    /// read it).
    pub filler: Option<MetadataFiller>,
    /// Containers.
    pub containers: Vec<ContainerSpec>,
}

impl PodSpec {
    /// Its containers' CloudWatch streams under the contract's stream template,
    /// `<pod>_<container>`.
    pub fn streams(&self) -> impl Iterator<Item = String> + '_ {
        self.containers.iter().map(|c| format!("{}_{}", self.name, c.name))
    }
}

/// `filler = { labels = 1000, annotation_bytes = 204800 }`: `labels` extra labels
/// `filler-<n>` with 63-character values, and annotations `filler-<n>` of 1 KiB each up to
/// `annotation_bytes` (the API server's limit on a pod's annotations is 256 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataFiller {
    /// Extra labels.
    #[serde(default)]
    pub labels: u32,
    /// Bytes of extra annotations.
    #[serde(default)]
    pub annotation_bytes: u32,
}

/// `owner = { kind = "ReplicaSet", name = "web-7d9f8b6c5d" }`: a pod's controlling owner.
/// The stand-in makes up its uid (the same for every pod of one owner) and its `apiVersion`
/// from the kind (`apps/v1` for ReplicaSet, StatefulSet, DaemonSet, Deployment; `batch/v1` for
/// Job, CronJob; `v1` otherwise). Only the scenario says what workload it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerRef {
    /// `kind` of the owner (any string: `ReplicaSet`, `StatefulSet`, `Job`, ...).
    pub kind: String,
    /// `name` of the owner.
    pub name: String,
}

/// A container writing sequence-numbered, self-verifying lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// Name.
    pub name: String,
    /// Image (reported in each message's `container_image`).
    #[serde(default = "default_image")]
    pub image: String,
    /// Lines to write.
    pub lines: u64,
    /// Lines per second.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Size classes, cycled line by line (see the payload module for the names).
    #[serde(default = "default_sizes")]
    pub sizes: Vec<String>,
    /// `stdout`, `stderr` or `both` (alternating).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// `cri` (containerd) or `docker` (json-file).
    #[serde(default = "default_format")]
    pub format: String,
    /// Stamp every line this long in the past (a node clock far behind, an old file
    /// replayed). Beyond 14 days CloudWatch rejects the lines: they are not expected in
    /// CloudWatch but as explicit drops (`expect.dropped`) in the dead-letter file.
    pub age: Option<Dur>,
    /// The shipper must deliver nothing of this container: its lines are read and skipped
    /// under the named exclusion rule (`shipper_lines_excluded_total{rule="<name>"}`), e.g.
    /// `"no-kube-system"`, `"annotation:exclude"`, `"annotation:exclude-containers"`,
    /// `"not_included"`. The ledger does not count them as missing; any of them delivered
    /// fails the audit (`leaked`).
    pub excluded_by: Option<String>,
    /// Write each sequence number as a stack trace of several physical lines (`"java"` or
    /// `"python"`; see [`crate::audit::TraceKind`]): a header line carrying the payload, then
    /// frames, some over 16 KiB (CRI `P` records). The container is expected to be multiline
    /// in the shipper: each trace must arrive as ONE event whose `log` is the trace's lines
    /// joined by `\n`; a trace delivered in pieces fails the audit (`split_traces`).
    pub traces: Option<String>,
    /// What each line is: `"text"` (the payload line, default) or `"json"` (a JSON object
    /// `{"level":"info","logger":"<container>","msg":"<payload>","seq":N}`).
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Message fields every event of this container must carry, on top of
    /// `expect.message.fields` (see [`MessageExpect::fields`] for the paths).
    #[serde(default)]
    pub message_fields: BTreeMap<String, String>,
}

fn default_encoding() -> String {
    "text".into()
}

fn default_image() -> String {
    "registry.local/app:1.0".into()
}
fn default_rate() -> f64 {
    200.0
}
fn default_sizes() -> Vec<String> {
    vec!["small".into()]
}
fn default_stream() -> String {
    "stdout".into()
}
fn default_format() -> String {
    "cri".into()
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Gateway accepts connections and never answers.
    Blackhole,
    /// Gateway refuses connections.
    Refuse,
    /// Gateway resets connections mid-request.
    Reset,
    /// Gateway adds `latency` to every answer.
    Latency,
    /// Gateway caps bandwidth at `bytes_per_sec`.
    Bandwidth,
    /// Gateway answers ThrottlingException.
    Throttle,
    /// Gateway answers 503 ServiceUnavailableException.
    Unavailable,
    /// Gateway forwards, then drops the answer (the write happened; the shipper retries).
    Ambiguous,
    /// Gateway answers AccessDeniedException (usually scoped with `groups`: a policy that
    /// does not cover some log groups).
    AccessDenied,
    /// Container tier: `docker pause` of the backend container for the window (requests hang
    /// unanswered). The local tier injects `blackhole` at the gateway instead.
    BackendPause,
    /// Container tier: `docker network disconnect` of the shipper container for the window
    /// (no route to the gateway nor the API). The local tier injects `refuse` instead.
    NetworkDisconnect,
    /// SIGKILL the shipper at `at`; restart after `restart_after` (default at once).
    ShipperKill,
    /// SIGKILL the shipper `count` times at seeded random points within [at, at+for].
    ShipperKillRandom,
    /// SIGTERM the shipper at `at`; restart after `restart_after`.
    ShipperTerm,
    /// The Kubernetes API answers 503 for the window.
    ApiUnavailable,
    /// Compact the API's history and drop every watch (forces a 410 relist).
    ApiCompact,
    /// Rotate `pod`'s container logs now (kubelet rotation, regardless of size).
    Rotate,
    /// Restart `pod`'s containers (`1.log`, new container id).
    ContainerRestart,
    /// Delete `pod` (its log directory disappears once its lines are written).
    PodDelete,
    /// Replace `pod`'s labels with `labels`.
    PodRelabel,
    /// Kind tier, node scaling: a worker node joins the cluster at `at` (the DaemonSet must
    /// start a shipper on it). The multi-node kind config holds its last worker back until
    /// then. Local and container tiers (one node) refuse the scenario.
    NodeJoin,
    /// Kind tier, node scaling: `pod` moves to another node at `at`. The lines due by then
    /// are its first incarnation's; that pod is deleted once it wrote them, and a pod of the
    /// same name continues the sequence on another node (the joined one, if any). Local and
    /// container tiers (one node) refuse the scenario.
    PodReschedule,
    /// A crash of the scenario's node at `at`: every process on it dies at once (kubelet,
    /// the runtime, every container, the shipper's included) and it boots again
    /// `restart_after` later (default at once). The shipper's spool and checkpoints are on
    /// the node's disk and must carry it through. Refused while a scenario pod on the node
    /// would still be writing (see [`NODE_RESTART_MARGIN`]), so the ledger stays exact.
    /// Kind tier: `docker kill` + `docker start` of the node's container; the local and
    /// container tiers (no node to restart, writers already done) SIGKILL the shipper and
    /// start it again with the same state, like `shipper_kill`.
    NodeRestart,
    /// The harness creates the log groups named by `groups` in the backend (as an operator
    /// would), at `at`.
    CreateGroup,
    /// A tenant's pod opens `count` TCP connections to the shipper's `/metrics` port and
    /// holds them, silent, for the window. `/healthz` must answer at its start and end (a
    /// check each), and every line must still be delivered.
    IdleConnections,
}

/// `node_restart`: every scenario pod that starts before the restart must have its last line
/// due at least this long before it. The writers are then done and their files on disk when
/// the node dies (a writer killed mid-write and restarted by kubelet would print an unknown
/// part of its lines again); the kind tier also waits for each writer pod to have exited
/// before it restarts the node, so a slow pod start delays the restart, never the ledger.
pub const NODE_RESTART_MARGIN: Duration = Duration::from_secs(1);

impl FaultKind {
    /// The fault stops the shipper process and starts it again (its counters restart).
    pub fn restarts_shipper(self) -> bool {
        matches!(
            self,
            FaultKind::ShipperKill
                | FaultKind::ShipperKillRandom
                | FaultKind::ShipperTerm
                | FaultKind::NodeRestart
        )
    }

    /// The fault needs a cluster of more than one node (only the kind tier has one).
    pub fn needs_several_nodes(self) -> bool {
        matches!(self, FaultKind::NodeJoin | FaultKind::PodReschedule)
    }
}

/// One fault on the timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// When it starts, from the start of the run.
    pub at: Dur,
    /// How long it lasts (network and API faults).
    #[serde(rename = "for", default)]
    pub duration: Option<Dur>,
    /// What it does.
    pub kind: FaultKind,
    /// Gateway faults: only these operations (e.g. `["PutLogEvents"]`); default all.
    pub ops: Option<Vec<String>>,
    /// Gateway faults: fraction of requests affected (default 1.0).
    pub probability: Option<f64>,
    /// Gateway answer faults (`throttle`, `unavailable`, `access_denied`): only log groups
    /// starting with one of these.
    pub groups: Option<Vec<String>>,
    /// `latency`.
    pub latency: Option<Dur>,
    /// `bandwidth`.
    pub bytes_per_sec: Option<u64>,
    /// Shipper faults: delay before the restart; `node_restart`: how long the node is down.
    pub restart_after: Option<Dur>,
    /// `shipper_kill_random`: how many kills.
    pub count: Option<u32>,
    /// Pod faults: which pod (by name).
    pub pod: Option<String>,
    /// `pod_relabel`: the new labels.
    pub labels: Option<BTreeMap<String, String>>,
}

impl Fault {
    /// The pod a pod-level fault acts on.
    pub fn target_pod(&self) -> Option<&str> {
        self.pod.as_deref()
    }

    /// End of the fault window (`at` for instant faults).
    pub fn end(&self) -> Duration {
        self.at.0 + self.duration.map(|d| d.0).unwrap_or_default()
    }
}

/// Expectations of the verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exact layout: group → streams.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Most duplicate events allowed.
    #[serde(default)]
    pub max_duplicates: u64,
    /// How long delivery may take after the last fault and the last line.
    #[serde(default = "default_drain")]
    pub drain_timeout: Dur,
    /// Lines the shipper is expected to drop explicitly, by reason (e.g. `too_old = 3`).
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
    /// Groups whose every line must be accepted by a point in time, while other faults may
    /// still last (e.g. no head-of-line blocking behind an undeliverable group).
    #[serde(default)]
    pub delivered_by: Vec<DeliveredBy>,
    /// The spool must reach its cap during the run (the shipper reports backpressure), so
    /// the scenario really tests reading paused at the cap.
    #[serde(default)]
    pub backpressure: bool,
    /// Highest peak RSS of the shipper allowed, MiB (bounded memory: the backlog lives on
    /// disk, per-stream state is evicted).
    pub max_rss_mib: Option<u64>,
    /// The run must see kubelet's rotation fall between two lines of a stack trace (the
    /// scenario proves traces cut by rotation arrive whole, so the cut must happen).
    #[serde(default)]
    pub rotation_cuts_traces: bool,
    /// Exact values of Prometheus series of the shipper's `/metrics` at the end of the run,
    /// keyed as the shipper prints them, e.g. `'shipper_lines_excluded_total{rule="no-kube-system"}'
    /// = 500`. Counters restart with the process: only a run with a single start can be
    /// checked, so the scenario may not kill or crash the shipper. Each
    /// `shipper_lines_excluded_total{rule="X"}` must equal the lines of the containers with
    /// `excluded_by = "X"`.
    #[serde(default)]
    pub metrics: BTreeMap<String, u64>,
    /// The shape of the shipper's messages (default: the six-key envelope, `log` a string).
    #[serde(default)]
    pub message: MessageExpect,
    /// Settings the audit reads back from each log group, keyed by exact group name or glob:
    /// every group in `[expect.groups]` that a key matches (an exact key, else the longest
    /// matching glob) must carry exactly these settings, and every key must match some group.
    #[serde(default)]
    pub group_settings: BTreeMap<String, GroupSettingsExpect>,
    /// The identity that must have signed every accepted PutLogEvents, as the backend's STS
    /// names it (`arn:aws:sts::<account>:assumed-role/<role>/<session>` when the shipper
    /// assumes a role through `SHIPPER_ROLE_ARN`).
    pub written_by: Option<String>,
    /// The fleet's use of the account's quota (`[fleet]`, `[account]`).
    pub fleet: Option<FleetExpect>,
}

/// The settings one log group must carry (`[expect.group_settings]`). Absent keys mean the
/// service's defaults: never expire, `STANDARD`, no KMS key, no tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettingsExpect {
    /// `retentionInDays` (absent: never expire).
    pub retention_days: Option<u32>,
    /// `logGroupClass` (absent: `STANDARD`).
    pub class: Option<String>,
    /// `kmsKeyId` (absent: none).
    pub kms_key_id: Option<String>,
    /// Tags, exactly (absent: none).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `[expect.message]`: which message shape the audit accepts, and fields every event carries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageExpect {
    /// `SHIPPER_MESSAGE_FORMAT` the scenario sets.
    #[serde(default)]
    pub format: MessageFormat,
    /// Top-level keys beyond the six envelope keys (what `SHIPPER_MESSAGE_FIELDS` adds:
    /// `workload`, `workload_kind`, `node`, `labels`, `annotations`). The envelope must have
    /// exactly the six and these.
    #[serde(default)]
    pub extra_keys: Vec<String>,
    /// Fields every event must carry as JSON strings with exactly these values. A path is a
    /// top-level key, or `key.sub` (split at the FIRST dot) for a key of a top-level object:
    /// `"workload"`, `"log.level"`, `"labels.team"`, `"labels.app.kubernetes.io/name"`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// `SHIPPER_MESSAGE_FORMAT`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    /// Compact JSON envelope, `log` the line's text.
    #[default]
    Envelope,
    /// The envelope, but `log` is the line's JSON object when the line is one.
    EnvelopeJson,
    /// The line's text alone.
    Raw,
}

/// `[[expect.delivered_by]]`: by `at`, every line of the streams `groups` lists in
/// `[expect.groups]` was accepted by the gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveredBy {
    /// When, from the start of the run.
    pub at: Dur,
    /// Group names, keys of `[expect.groups]`.
    pub groups: Vec<String>,
}

fn default_drain() -> Dur {
    Dur(Duration::from_secs(60))
}
