//! The running agent: wires source → parse → route → spool (the ingest loop) and
//! spool → sink (the dispatcher), the pod watch, the HTTP endpoints and shutdown.
//!
//! Shutdown (contract): on SIGTERM reading stops, open chunks are sealed and committed, the
//! dispatcher keeps delivering for the grace period, then everything left stays in the spool
//! for the next start. A second signal exits at once; only committed data counts as spooled,
//! and the checkpoints never ran ahead of it, so nothing is lost either way.

mod dispatch;
mod http;
mod ingest;
mod limits;
mod lock;
mod pipeline;
#[cfg(test)]
mod shutdown_tests;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::kube::PodCache;
use crate::sink::{CloudWatch, GroupOptions, SinkOptions};
use crate::source::{SourceState, Tailer, TailerOptions};
use crate::spool::{Spool, SpoolOptions};
use crate::telemetry::{InternalEvent, Metrics, SpoolEventsLost};

pub use dispatch::Dispatcher;
pub use ingest::{Ingest, IngestOptions, IngestOptionsError};

/// The agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The state directory is unusable.
    #[error("state directory {path}: {reason}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// The tailer could not start.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// A naming template does not parse (`check` reports this before `run` gets here).
    #[error("naming template: {0}")]
    Template(String),
    /// Reading stopped because the spool failed.
    #[error("ingest stopped: {0}")]
    Ingest(String),
    /// The state directory's lock cannot be taken (not: another process holds it).
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    /// The HTTP endpoint could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// How long deleted pods stay in the metadata cache (their last lines still route right).
const RETAIN_DELETED_PODS: Duration = Duration::from_secs(600);

/// Most bytes decompressed from one gzipped rotation found on restart: kubelet rotates at
/// `containerLogMaxSize` (10 MiB by default), so this leaves room for generous settings
/// while bounding scratch disk use.
const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

/// What stops the agent: `requested` (the first SIGTERM/SIGINT) stops reading and starts
/// the drain; `now` (a second one) ends the drain at once. A test cancels them itself.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    /// Stop reading, drain within the grace period.
    pub requested: CancellationToken,
    /// Stop draining: exit now; committed data stays in the spool.
    pub now: CancellationToken,
}

impl Stop {
    /// Tokens the process's signals cancel: the first SIGTERM/SIGINT `requested`, the next
    /// one `now`.
    fn from_signals() -> Stop {
        let stop = Stop::default();
        let mut signals = Signals::new();
        let tokens = stop.clone();
        tokio::spawn(async move {
            signals.recv().await;
            tokens.requested.cancel();
            signals.recv().await;
            tokens.now.cancel();
        });
        stop
    }
}

/// Where the agent's CloudWatch client comes from.
#[derive(Debug)]
pub enum ClientSource {
    /// The SDK's environment (region, endpoint, credentials; the role to assume, if set).
    Environment,
    /// This client (tests: a fake CloudWatch).
    Given(aws_sdk_cloudwatchlogs::Client),
}

/// Run until SIGTERM/SIGINT, then drain within the grace period.
pub async fn run(config: Config) -> Result<(), AgentError> {
    let stop = Stop::from_signals();
    match start(config, ClientSource::Environment, &stop).await? {
        Some(agent) => agent.run_until(&stop).await,
        None => Ok(()),
    }
}

/// The agent, started: reading, spooling and delivering, until [`Running::run_until`]'s stop.
#[derive(Debug)]
pub struct Running {
    shutdown_grace: Duration,
    spool: Arc<Mutex<Spool>>,
    wake: Arc<tokio::sync::Notify>,
    /// Stops reading (the ingest loop seals and commits, then ends).
    stop_reading: CancellationToken,
    /// Stops delivery, the pod watch and the HTTP endpoints.
    stop_delivery: CancellationToken,
    ingest_task: tokio::task::JoinHandle<Result<(), crate::spool::SpoolError>>,
    dispatch_task: tokio::task::JoinHandle<()>,
    watch: tokio::task::JoinHandle<()>,
    http: tokio::task::JoinHandle<()>,
    _state_lock: lock::StateLock,
}

/// Start the agent: the HTTP endpoints, the state directory's lock (waited for; `None` when
/// `stop` is requested meanwhile: nothing was touched), the spool recovered, the tailer, the
/// pod watch, the dispatcher and the ingest loop.
pub async fn start(config: Config, client: ClientSource, stop: &Stop) -> Result<Option<Running>, AgentError> {
    let metrics = Arc::new(Metrics::default());
    let open_files = limits::raise_open_file_limit().map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    Metrics::set(&metrics.open_fds_limit, open_files);
    Metrics::set(&metrics.spool_max_bytes, i64::try_from(config.spool_max_bytes).unwrap_or(i64::MAX));
    // The spool, the manifest and the dead letters hold every tenant's logs: everything the
    // agent creates is its owner's alone (files 0600, directories 0700), and the state
    // directory itself is closed to others, also when an older version created it open.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| AgentError::StateDir { path: config.state_dir.clone(), reason: e.to_string() })?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| AgentError::StateDir { path: config.state_dir.clone(), reason: e.to_string() })?;
    }
    let pods = Arc::new(PodCache::new(RETAIN_DELETED_PODS));
    let stop_reading = CancellationToken::new();
    let stop_delivery = CancellationToken::new();

    // Served first, so that an instance waiting for the state directory says so on /readyz.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| AgentError::Listen { addr: config.listen, source })?;
    tracing::info!(addr = %config.listen, "serving /metrics, /healthz, /readyz");
    let http = tokio::spawn(http::serve(listener, metrics.clone(), pods.clone(), stop_delivery.clone()));

    let Some(_state_lock) =
        lock::acquire(&config.state_dir, &metrics.state_lock_waiting, stop.requested.cancelled()).await?
    else {
        tracing::info!("signal while waiting for the state directory: exiting, nothing touched");
        stop_delivery.cancel();
        let _ = http.await;
        return Ok(None);
    };

    let spool_dir = config.state_dir.join("spool");
    std::fs::create_dir_all(&spool_dir)
        .map_err(|e| AgentError::StateDir { path: spool_dir.clone(), reason: e.to_string() })?;

    // A first install has never committed anything: `read_from` and `ignore_older` apply
    // only then (a lost or damaged manifest is not a first install: it reads from the head).
    let had_state = spool_dir.join("manifest").exists() || spool_dir.join("quarantine").exists();
    let (spool, recovery) = Spool::open(
        &spool_dir,
        SpoolOptions { max_bytes: config.spool_max_bytes, flush_interval: config.flush_interval },
    )?;
    if recovery.corrupt_events > 0 {
        let error = format!("{} chunk(s) quarantined", recovery.quarantined.len());
        SpoolEventsLost { count: recovery.corrupt_events, dest: None, error: &error }.emit(&metrics);
    }
    tracing::info!(
        spool_bytes = spool.bytes(),
        spool_events = spool.events(),
        truncated_bytes = recovery.truncated_bytes,
        quarantined = recovery.quarantined.len(),
        corrupt_events = recovery.corrupt_events,
        "spool recovered"
    );
    let recovery_was_empty = recovery.source_state.is_none() && recovery.quarantined.is_empty();
    let restored: SourceState = match recovery.source_state.as_deref() {
        None => SourceState::default(),
        Some(bytes) => serde_json::from_slice(bytes).unwrap_or_else(|e| {
            // The manifest checksum passed, so this is a format change, not corruption:
            // starting over re-reads files from the start (duplicates, never loss).
            tracing::error!(error = %e, "stored checkpoints unreadable; re-reading files from the start");
            SourceState::default()
        }),
    };
    let spool = Arc::new(Mutex::new(spool));

    let tailer = Tailer::new(
        TailerOptions {
            globs: config.log_paths.clone(),
            rescan_interval: Duration::from_secs(1),
            watched_rescan_interval: Duration::from_secs(10),
            read_chunk_bytes: 256 * 1024,
            scratch_dir: config.state_dir.join("scratch"),
            max_decompressed_bytes: MAX_DECOMPRESSED_BYTES,
            read_from: config.read_from,
            ignore_older: config.ignore_older,
            first_install: !had_state && recovery_was_empty,
            max_deleted_open_bytes: crate::source::MAX_DELETED_OPEN_BYTES,
        },
        restored,
    )?;

    // The pod cache keeps only the labels and annotations the settings can read.
    let keys = config.routing().map_err(|e| AgentError::Template(e.to_string()))?.metadata_keys();
    let watch = {
        let pods = pods.clone();
        let metrics = metrics.clone();
        let node = config.node_name.clone();
        let cancel = stop_delivery.clone();
        tokio::spawn(async move { crate::kube::watch_pods(&node, &keys, pods, metrics, cancel).await })
    };

    let client = match client {
        ClientSource::Given(client) => client,
        ClientSource::Environment => {
            crate::sink::client_from_env(
                Duration::from_secs(30),
                config.aws_region.clone(),
                config.assume_role.as_ref(),
            )
            .await
        }
    };
    let ingest_options =
        IngestOptions::from_config(&config).map_err(|e| AgentError::Template(e.to_string()))?;
    metrics.set_flush_interval(ingest_options.pace.interval());
    let sink = CloudWatch::new(
        client,
        SinkOptions {
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            dead_letter_dir: config.state_dir.join("dead-letters"),
            create_group_rate: 5.0,
            groups: GroupOptions {
                policy: Arc::new(config.group_settings.clone()),
                retention_apply: config.retention_apply,
                create_groups: config.create_groups,
                pending_file: Some(config.state_dir.join("groups-pending.json")),
            },
            pace: ingest_options.pace.clone(),
        },
        metrics.clone(),
    );

    let wake = Arc::new(tokio::sync::Notify::new());
    let dispatcher =
        Dispatcher::new(spool.clone(), sink, metrics.clone(), config.max_concurrency, wake.clone());
    let dispatch_task = tokio::spawn(dispatcher.run(stop_delivery.clone()));

    let ingest =
        Ingest::new(tailer, spool.clone(), pods.clone(), metrics.clone(), ingest_options, wake.clone());
    let ingest_stop = stop_reading.clone();
    let ingest_task = tokio::task::spawn_blocking(move || ingest.run_blocking(ingest_stop));
    Ok(Some(Running {
        shutdown_grace: config.shutdown_grace,
        spool,
        wake,
        stop_reading,
        stop_delivery,
        ingest_task,
        dispatch_task,
        watch,
        http,
        _state_lock,
    }))
}

impl Running {
    /// Run until `stop` is requested (or reading fails), then shut down: reading stops, open
    /// chunks are sealed and committed, the dispatcher delivers for the grace period (or
    /// until `stop.now`), and what is left stays in the spool for the next start.
    pub async fn run_until(mut self, stop: &Stop) -> Result<(), AgentError> {
        // Ingest only ends by itself on a spool failure (disk full, I/O error): then the agent
        // stops too, delivering what is already spooled, and exits non-zero so that it is
        // restarted and recovers, rather than living on without reading.
        let mut failure = None;
        let ingest_result = tokio::select! {
            _ = stop.requested.cancelled() => {
                tracing::info!(grace = ?self.shutdown_grace, "shutdown requested: reading stops, draining the spool");
                self.stop_reading.cancel();
                tokio::select! {
                    r = &mut self.ingest_task => r,
                    _ = stop.now.cancelled() => {
                        tracing::warn!("second signal: exiting now; committed data stays in the spool");
                        return Ok(());
                    }
                }
            }
            r = &mut self.ingest_task => r,
        };
        match ingest_result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading stopped: the spool failed; lines not committed will be re-read after a restart");
                failure = Some(AgentError::Ingest(e.to_string()));
            }
            Err(e) => {
                tracing::error!(error = %e, "ingest task failed");
                failure = Some(AgentError::Ingest(e.to_string()));
            }
        }
        self.wake.notify_one();

        let drained = {
            let spool = self.spool.clone();
            async move {
                loop {
                    let events = spool.lock().unwrap_or_else(|e| e.into_inner()).events();
                    if events == 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        tokio::select! {
            _ = drained => tracing::info!("spool drained"),
            _ = tokio::time::sleep(self.shutdown_grace) => {
                let left = self.spool.lock().unwrap_or_else(|e| e.into_inner()).events();
                tracing::warn!(events = left, "grace period over; undelivered events stay in the spool for the next start");
            }
            _ = stop.now.cancelled() => tracing::warn!("second signal: exiting now; spooled events stay for the next start"),
        }
        self.stop_delivery.cancel();
        let _ = self.dispatch_task.await;
        self.watch.abort();
        self.http.abort();
        let left = self.spool.lock().unwrap_or_else(|e| e.into_inner()).events();
        tracing::info!(spooled_events = left, "stopped");
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// SIGTERM and SIGINT, registered once at start so that no signal falls between two waits.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Signals { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
    }

    /// The next SIGTERM or SIGINT. Without handlers this waits forever: the process is then
    /// stopped by SIGKILL, which the spool is built to survive.
    async fn recv(&mut self) {
        let term = async {
            match self.term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let int = async {
            match self.int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term => {}
            _ = int => {}
        }
    }
}
