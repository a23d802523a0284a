//! The ingest loop in-process, on tokio's paused clock: real files in a kubelet-like
//! directory, a real spool, a pod cache the test fills, and `Ingest::step` driven by hand
//! with the clock moved on between passes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Ingest, IngestOptions};
use crate::kube::{PodCache, PodInfo, Workload};
use crate::route::{Routing, RoutingSettings};
use crate::sink::Pace;
use crate::source::{ReadFrom, SourceState, Tailer, TailerOptions};
use crate::spool::{Spool, SpoolOptions};
use crate::telemetry::Metrics;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const METADATA_WAIT: Duration = Duration::from_secs(5);
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

/// A node's container log directory, a spool and an ingest loop over them.
struct Rig {
    dir: tempfile::TempDir,
    pods: Arc<PodCache>,
    spool: Arc<Mutex<Spool>>,
    metrics: Arc<Metrics>,
    ingest: Ingest,
}

impl Rig {
    fn new(spool_max_bytes: u64) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("containers")).expect("containers dir");
        let pods = Arc::new(PodCache::new(Duration::from_secs(600)));
        // The pod list has synced: an unknown pod waits `METADATA_WAIT`, not ten times it.
        pods.resync(&[], crate::clock::now());
        let options = SpoolOptions { max_bytes: spool_max_bytes, flush_interval: Duration::from_millis(1) };
        let spool = Arc::new(Mutex::new(Spool::open(&dir.path().join("spool"), options).expect("spool").0));
        let metrics = Arc::new(Metrics::default());
        let tailer = Tailer::new(
            TailerOptions {
                globs: vec![format!("{}/containers/*.log", dir.path().display())],
                rescan_interval: Duration::from_secs(3600),
                watched_rescan_interval: Duration::from_secs(3600),
                read_chunk_bytes: 4096,
                scratch_dir: dir.path().join("scratch"),
                max_decompressed_bytes: u64::MAX,
                read_from: ReadFrom::Head,
                ignore_older: None,
                first_install: false,
                max_deleted_open_bytes: u64::MAX,
            },
            SourceState::default(),
        )
        .expect("tailer");
        let options = IngestOptions {
            cluster: "c".into(),
            node: "node-a".into(),
            routing: routing(),
            detectors: HashMap::new(),
            metadata_wait: METADATA_WAIT,
            commit_interval: COMMIT_INTERVAL,
            commit_bytes: 8 * 1024 * 1024,
            idle_wait: Duration::from_millis(100),
            pace: Arc::new(Pace::fixed(Duration::from_millis(1))),
        };
        let ingest = Ingest::new(
            tailer,
            spool.clone(),
            pods.clone(),
            metrics.clone(),
            options,
            Arc::new(Notify::new()),
        );
        Rig { dir, pods, spool, metrics, ingest }
    }

    /// Container `container` of pod `pod` in namespace `shop` writes `lines` CRI lines of
    /// `size` bytes each.
    fn write(&self, pod: &str, container: &str, lines: usize, size: usize) -> std::path::PathBuf {
        let path = self.dir.path().join(format!("containers/{pod}_shop_{container}-{ID}.log"));
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("log file");
        for n in 0..lines {
            let text = format!("{pod} line {n} ");
            let pad = "x".repeat(size.saturating_sub(text.len()));
            writeln!(file, "2026-12-04T10:00:00.000000000Z stdout F {text}{pad}").expect("write");
        }
        path
    }

    /// Move the clock on by `by`, then one pass of the loop.
    async fn pass(&mut self, by: Duration) -> usize {
        tokio::time::advance(by).await;
        self.ingest.step().expect("pass")
    }

    /// Events committed so far, per `group/stream`, read from the sealed chunks.
    fn spooled(&self) -> BTreeMap<String, usize> {
        let spool = self.spool.lock().expect("spool");
        let mut out = BTreeMap::new();
        for chunk in spool.ready(&|_| false) {
            let batch = Spool::read(&chunk).expect("read");
            *out.entry(format!("{}/{}", batch.dest.group, batch.dest.stream)).or_default() +=
                batch.events.len();
        }
        out
    }
}

fn routing() -> Routing {
    Routing::new(&RoutingSettings::defaults()).expect("valid routing")
}

fn pod(name: &str, app: &str) -> PodInfo {
    PodInfo {
        namespace: "shop".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
        annotations: BTreeMap::new(),
        images: BTreeMap::new(),
        workload: Workload::from_pod_name(name),
    }
}

/// The checkpoints the spool's last commit stored for `path` (`None`: none yet).
fn committed_offset(spool_dir: &Path, path: &Path) -> Option<u64> {
    let state = crate::spool::committed_source_state(spool_dir)?;
    let state: serde_json::Value = serde_json::from_slice(&state).expect("state JSON");
    let path = path.to_str().expect("utf-8 path");
    // The stored state names each file by path somewhere with its safe offset next to it.
    find_offset(&state, path)
}

fn find_offset(value: &serde_json::Value, path: &str) -> Option<u64> {
    match value {
        serde_json::Value::Object(map) => {
            if map.values().any(|v| v.as_str() == Some(path)) {
                return map.get("offset").and_then(serde_json::Value::as_u64);
            }
            map.values().find_map(|v| find_offset(v, path))
        }
        serde_json::Value::Array(items) => items.iter().find_map(|v| find_offset(v, path)),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn lines_wait_for_their_pods_metadata_and_go_by_name_when_the_wait_runs_out() {
    let mut rig = Rig::new(1 << 30);
    rig.write("api-0", "app", 3, 40);
    rig.write("web-0", "nginx", 2, 40);
    assert_eq!(rig.pass(Duration::ZERO).await, 0, "no file is read before its pod is known");

    // api-0's pod arrives within the wait: its lines go by its label.
    rig.pods.apply(pod("api-0", "api"));
    rig.pass(Duration::from_secs(1)).await;
    rig.pass(COMMIT_INTERVAL).await;
    assert_eq!(rig.spooled(), BTreeMap::from([("k8s_c_shop_api_app/api-0_app".to_owned(), 3)]));

    // web-0's never does: just before the wait runs out its lines still wait...
    rig.pass(METADATA_WAIT - Duration::from_secs(1) - COMMIT_INTERVAL * 2).await;
    rig.pass(COMMIT_INTERVAL / 2).await;
    assert!(!rig.spooled().keys().any(|k| k.contains("web-0")), "{:?}", rig.spooled());
    // ...and once it has, they go, routed from the file name, and that is counted.
    rig.pass(COMMIT_INTERVAL).await;
    rig.pass(COMMIT_INTERVAL).await;
    let spooled = rig.spooled();
    assert_eq!(spooled.get("k8s_c_shop_web-0_nginx/web-0_nginx"), Some(&2), "{spooled:?}");
    assert!(rig.metrics.render().contains("shipper_workload_from_name_total"));
}

#[tokio::test(start_paused = true)]
async fn checkpoints_are_stored_only_with_the_commit_of_their_lines() {
    let mut rig = Rig::new(1 << 30);
    rig.pods.apply(pod("api-0", "api"));
    let path = rig.write("api-0", "app", 10, 50);
    let len = std::fs::metadata(&path).expect("stat").len();
    let spool_dir = rig.dir.path().join("spool");

    // The lines are read and appended, but the commit interval has not passed: neither the
    // lines nor the file's checkpoint are stored yet.
    assert!(rig.pass(Duration::ZERO).await > 0);
    assert_eq!(committed_offset(&spool_dir, &path), None);
    assert!(rig.spooled().is_empty());

    // The commit stores both together.
    rig.pass(COMMIT_INTERVAL).await;
    assert_eq!(committed_offset(&spool_dir, &path), Some(len));
    assert_eq!(rig.spooled().values().sum::<usize>(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_stream_at_its_spool_share_pauses_only_its_own_files() {
    // Nothing delivers: the noisy stream fills its 3/4 share of a 64 KiB spool and stops
    // being read, while the quiet one's lines all get in.
    let cap = 64 * 1024;
    let mut rig = Rig::new(cap);
    rig.pods.apply(pod("noisy-0", "noisy"));
    rig.pods.apply(pod("quiet-0", "quiet"));
    rig.write("noisy-0", "app", 400, 500);
    for _ in 0..50 {
        rig.pass(COMMIT_INTERVAL).await;
    }
    assert!(rig.metrics.render().contains("shipper_streams_paused 1"), "the noisy stream is paused");
    rig.write("quiet-0", "app", 20, 100);
    for _ in 0..10 {
        rig.pass(COMMIT_INTERVAL).await;
    }
    let spooled = rig.spooled();
    assert_eq!(spooled.get("k8s_c_shop_quiet_app/quiet-0_app"), Some(&20), "{spooled:?}");
    let noisy = spooled.get("k8s_c_shop_noisy_app/noisy-0_app").copied().unwrap_or(0);
    assert!(noisy > 0 && noisy < 400, "the noisy stream stopped at its share: {noisy} of 400 lines");
    let bytes = rig.spool.lock().expect("spool").bytes();
    assert!(bytes <= cap, "the spool stays within its cap: {bytes}");
}
