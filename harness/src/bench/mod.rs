//! `harness bench`: the real shipper binary against the sink-mode gateway, measured.
//!
//! Per workload ([`workloads`]) a fresh environment, built with the local tier's pieces
//! ([`crate::tiers::local`]): a SimNode directory, the stand-in API
//! holding one pod per log file, a sink-mode gateway (validates PutLogEvents like
//! CloudWatch, acknowledges, stores nothing) and a shipper process with its own state
//! directory. The shipper starts on empty files; once it is ready the writer thread writes
//! the workload while the shipper runs, and the run ends when the gateway accepted every
//! expected event. Then the shipper idles for a few seconds (idle CPU) and is stopped.
//! Process figures come from `/proc` ([`process`]), latency from the gateway journal
//! ([`latency`]); the report ([`report`]) is printed and stored as JSON.

pub mod latency;
pub mod process;
pub mod report;
pub mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::gateway::{Fault, FaultKind, Gateway, GatewayHandle, GatewayOptions, Outcome};
use crate::shipper_proc::{ShipperError, ShipperProcess};
use crate::simnode::SimNode;
use crate::standin::StandinOptions;
use crate::standin::pod::pod_json;
use crate::tiers::local;

use self::latency::{Acceptance, latencies_ms, percentile};
use self::report::{BenchReport, CatchUp, WorkloadResult};
use self::workloads::{TargetFile, WorkloadSpec, Written};

/// How to run the bench.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Workload names to run (empty: all, in the default order).
    pub workloads: Vec<String>,
    /// Scaled-down sizes (smoke run).
    pub quick: bool,
    /// Total lines per workload, overriding its default size.
    pub lines: Option<u64>,
    /// The shipper binary to measure.
    pub shipper: PathBuf,
    /// Where the JSON reports go (`target/harness/bench`); work files go under `work/`.
    pub out_dir: PathBuf,
    /// Print progress lines.
    pub progress: bool,
}

/// Why the bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// `--workload` named something that does not exist.
    #[error("unknown workload {name:?}; known: {known}")]
    UnknownWorkload {
        /// The name given.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// A component of the environment failed.
    #[error("workload {workload}: {what}: {reason}")]
    Component {
        /// The workload running.
        workload: String,
        /// Which component.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The shipper could not be started.
    #[error("workload {workload}: {source}")]
    Shipper {
        /// The workload running.
        workload: String,
        /// Why.
        source: ShipperError,
    },
    /// Writing the report failed.
    #[error("writing the report to {path}: {source}")]
    Report {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Flush interval the shipper runs with (its default, set explicitly for the report).
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Namespace, node and cluster of every bench pod.
const NAMESPACE: &str = "bench";
const NODE: &str = "bench-node";
const CLUSTER: &str = "bench";

/// The workloads `options` selects, sized.
pub fn selected_workloads(options: &BenchOptions) -> Result<Vec<WorkloadSpec>, BenchError> {
    let all = workloads::all(options.quick);
    let chosen: Vec<WorkloadSpec> = if options.workloads.is_empty() {
        all
    } else {
        options
            .workloads
            .iter()
            .map(|name| {
                all.iter().find(|w| w.name == name).cloned().ok_or_else(|| BenchError::UnknownWorkload {
                    name: name.clone(),
                    known: all.iter().map(|w| w.name).collect::<Vec<_>>().join(", "),
                })
            })
            .collect::<Result<_, _>>()?
    };
    Ok(chosen
        .into_iter()
        .map(|w| if let Some(n) = options.lines { w.with_total_lines(n) } else { w })
        .collect())
}

/// Run the selected workloads one after the other, then print nothing: the caller gets the
/// report, already compared with the previous one and written under `out_dir`.
pub async fn run(options: &BenchOptions) -> Result<(BenchReport, PathBuf), BenchError> {
    let specs = selected_workloads(options)?;
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut report = BenchReport {
        started_unix,
        shipper: options.shipper.display().to_string(),
        quick: options.quick,
        flush_interval_ms: FLUSH_INTERVAL.as_millis() as u64,
        workloads: Vec::new(),
        delta_percent: BTreeMap::new(),
    };
    for spec in &specs {
        if options.progress {
            println!("bench {}: {} ({} lines)", spec.name, spec.about, spec.total_lines());
        }
        let result = run_workload(spec, options).await?;
        report.workloads.push(result);
    }
    let path = report
        .write(&options.out_dir)
        .map_err(|source| BenchError::Report { path: options.out_dir.clone(), source })?;
    Ok((report, path))
}

/// Maps a component failure of workload `spec` to a [`BenchError`].
fn component<E: std::fmt::Display>(spec: &WorkloadSpec, what: &'static str) -> impl Fn(E) -> BenchError {
    let workload = spec.name.to_owned();
    move |e| BenchError::Component { workload: workload.clone(), what, reason: e.to_string() }
}

/// The running environment of one workload.
struct Setup {
    gateway: GatewayHandle,
    shipper: ShipperProcess,
    files: Vec<TargetFile>,
    // Kept alive for the workload's duration.
    _standin: crate::standin::Standin,
}

async fn set_up(spec: &WorkloadSpec, options: &BenchOptions, work: &Path) -> Result<Setup, BenchError> {
    let gateway = Gateway::start(GatewayOptions {
        journal_capacity: 2_000_000,
        // The bench measures the shipper, not the account's creation quotas.
        create_log_group_per_second: 100_000,
        create_log_stream_per_second: 100_000,
        ..GatewayOptions::default()
    })
    .await
    .map_err(component(spec, "gateway"))?;
    // The local tier's node: its stand-in API, simulated node and shipper env.
    let (standin, kubeconfig) =
        local::start_api(StandinOptions::default(), work).await.map_err(component(spec, "local tier"))?;
    let node = SimNode::new(work.join("node")).map_err(component(spec, "simnode"))?;
    let mut files = Vec::with_capacity(spec.files);
    for i in 0..spec.files {
        let pod = format!("{}-{i}", spec.name);
        let stored = standin
            .apply_pod(pod_json(
                NAMESPACE,
                &pod,
                Some(NODE),
                &[("app", spec.name)],
                &[("app", "bench/app:1")],
            ))
            .map_err(component(spec, "stand-in API"))?;
        let uid = stored["metadata"]["uid"].as_str().unwrap_or("uid").to_owned();
        let log = node.add_container(NAMESPACE, &pod, &uid, "app").map_err(component(spec, "simnode"))?;
        files.push(TargetFile { log, stream: format!("{pod}_app") });
    }
    let mut extra = BTreeMap::from([
        ("SHIPPER_FLUSH_INTERVAL".to_owned(), format!("{}ms", FLUSH_INTERVAL.as_millis())),
        ("SHIPPER_SHUTDOWN_GRACE".to_owned(), "2s".to_owned()),
    ]);
    extra.extend(spec.env.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
    let mut env = local::node_shipper_env(NODE, &gateway, &kubeconfig, &node, work.join("state"), extra)
        .map_err(component(spec, "local tier"))?;
    env.cluster = CLUSTER.into();
    let shipper = ShipperProcess::spawn_binary(options.shipper.clone(), env, work.join("shipper.log"))
        .map_err(|source| BenchError::Shipper { workload: spec.name.into(), source })?;
    Ok(Setup { gateway, shipper, files, _standin: standin })
}

/// Wait for `/healthz`, then `/readyz` (pod metadata synced).
async fn wait_ready(spec: &WorkloadSpec, shipper: &mut ShipperProcess) -> Result<(), BenchError> {
    shipper
        .wait_healthy(Duration::from_secs(60))
        .await
        .map_err(|source| BenchError::Shipper { workload: spec.name.into(), source })?;
    let url = shipper.metrics_url().replace("/metrics", "/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BenchError::Component {
        workload: spec.name.into(),
        what: "shipper",
        reason: "not ready in 30 s".into(),
    })
}

fn accepted_events(gateway: &GatewayHandle) -> u64 {
    gateway.summary().accepted.values().flat_map(|streams| streams.values()).map(|t| t.events).sum()
}

fn sample(spec: &WorkloadSpec, shipper: &ShipperProcess) -> Result<process::ProcSample, BenchError> {
    let pid = shipper.pid().ok_or_else(|| BenchError::Component {
        workload: spec.name.into(),
        what: "shipper",
        reason: "not running".into(),
    })?;
    process::sample(pid).map_err(component(spec, "/proc"))
}

/// How long to wait for the last event before declaring the run incomplete.
fn drain_timeout(spec: &WorkloadSpec) -> Duration {
    Duration::from_secs(120)
        + spec.outage.unwrap_or_default()
        + Duration::from_secs(spec.total_lines() / 2_000)
}

async fn run_workload(spec: &WorkloadSpec, options: &BenchOptions) -> Result<WorkloadResult, BenchError> {
    let work = options.out_dir.join("work").join(spec.name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(component(spec, "work dir"))?;
    let Setup { gateway, mut shipper, files, _standin } = set_up(spec, options, &work).await?;
    wait_ready(spec, &mut shipper).await?;
    let expected = spec.expected_events();
    let idle_window = Duration::from_secs(if options.quick { 2 } else { 5 });

    let outage = match spec.outage {
        Some(length) => Some((
            gateway.inject(Fault::new(FaultKind::Blackhole)).map_err(component(spec, "gateway"))?,
            length,
        )),
        None => None,
    };
    let before = sample(spec, &shipper)?;
    let progress = Arc::new(AtomicU64::new(0));
    let writer = {
        let spec = spec.clone();
        let progress = Arc::clone(&progress);
        let mut files = files;
        tokio::task::spawn_blocking(move || workloads::write_all(&spec, &mut files, &progress))
    };
    let started = Instant::now();
    let mut restored: Option<(u64, u64)> = None; // (unix ms, lines not accepted then)
    let mut last_progress = Instant::now();
    let deadline = started + drain_timeout(spec);
    let mut accepted = 0;
    while Instant::now() < deadline {
        if let Some((_, length)) = outage
            && restored.is_none()
            && started.elapsed() >= length
        {
            gateway.clear();
            gateway.listening().await;
            let backlog = (progress.load(Ordering::Relaxed) * spec.events_per_line)
                .saturating_sub(accepted_events(&gateway));
            restored = Some((workloads::unix_us(SystemTime::now()) / 1000, backlog / spec.events_per_line));
        }
        accepted = accepted_events(&gateway);
        if accepted >= expected && writer.is_finished() {
            break;
        }
        if options.progress && last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            println!(
                "  [{:5.1}s] written {}/{} accepted {accepted}/{expected} events",
                started.elapsed().as_secs_f64(),
                progress.load(Ordering::Relaxed),
                spec.total_lines()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = sample(spec, &shipper)?;
    let written: Written =
        writer.await.map_err(component(spec, "writer thread"))?.map_err(component(spec, "writer"))?;
    tokio::time::sleep(idle_window).await;
    let idle = sample(spec, &shipper)?;
    shipper.terminate(Duration::from_secs(10)).await;

    let acceptances: Vec<Acceptance> = gateway
        .journal()
        .into_iter()
        .filter(|e| e.operation == "PutLogEvents" && e.outcome == Outcome::Acknowledged)
        .filter_map(|e| {
            Some(Acceptance { stream: e.stream?, events: u64::from(e.events), unix_ms: e.unix_ms })
        })
        .collect();
    let last_accept_ms = acceptances.iter().map(|a| a.unix_ms).max().unwrap_or(0);
    // Latency is per line; when several lines make one event it is not defined that way.
    let latencies = if spec.lines_per_event() == 1 {
        latencies_ms(&written.stamps, &acceptances, spec.events_per_line)
    } else {
        Vec::new()
    };
    let seconds = ((last_accept_ms * 1000).saturating_sub(written.first_unix_us) as f64 / 1e6).max(1e-3);
    let cpu_seconds = (done.cpu_seconds - before.cpu_seconds).max(0.0);
    let storage_write_bytes = done.write_bytes.saturating_sub(before.write_bytes);
    let input = written.bytes.max(1) as f64;
    let catch_up = match (spec.outage, restored) {
        (Some(length), Some((restored_ms, backlog_lines))) => {
            let drain_seconds = (last_accept_ms.saturating_sub(restored_ms) as f64 / 1000.0).max(1e-3);
            let lines_per_second = backlog_lines as f64 / drain_seconds;
            Some(CatchUp {
                outage_seconds: length.as_secs_f64(),
                backlog_lines,
                drain_seconds,
                lines_per_second,
                times_ingest_rate: spec.rate.map_or(0.0, |rate| lines_per_second / rate),
            })
        }
        _ => None,
    };
    Ok(WorkloadResult {
        name: spec.name.into(),
        files: spec.files,
        lines: written.lines,
        input_bytes: written.bytes,
        expected_events: expected,
        accepted_events: accepted,
        duplicate_events: accepted.saturating_sub(expected),
        seconds,
        write_seconds: written.last_unix_us.saturating_sub(written.first_unix_us) as f64 / 1e6,
        lines_per_second: written.lines as f64 / seconds,
        mib_per_second: input / (1024.0 * 1024.0) / seconds,
        cpu_seconds,
        cpu_us_per_line: cpu_seconds * 1e6 / written.lines.max(1) as f64,
        cpu_seconds_per_gib: cpu_seconds / (input / (1024.0 * 1024.0 * 1024.0)),
        peak_rss_mib: done.peak_rss_kib.max(idle.peak_rss_kib) as f64 / 1024.0,
        storage_write_bytes,
        write_amplification: storage_write_bytes as f64 / input,
        latency_samples: latencies.len() as u64,
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p99_ms: percentile(&latencies, 99.0),
        catch_up,
        idle_cpu_percent: (idle.cpu_seconds - done.cpu_seconds).max(0.0) / idle_window.as_secs_f64() * 100.0,
        idle_seconds: idle_window.as_secs_f64(),
    })
}
