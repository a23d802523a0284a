//! The fault-injecting CloudWatch Logs gateway (DESIGN §4).
//!
//! An HTTP proxy on `127.0.0.1:0` between the shipper and an emulator. It
//! - validates every PutLogEvents / CreateLogGroup (name, class, KMS key, tags) /
//!   CreateLogStream / PutRetentionPolicy / TagResource / TagLogGroup against real CloudWatch
//!   rules ([`rules`]) and answers violations exactly as AWS does; valid requests are forwarded
//!   byte-for-byte (headers included) and the upstream's answer relayed unchanged, except
//!   DescribeLogGroups, whose groups get the `logGroupClass` moto 5.x does not keep;
//! - injects faults on a timeline ([`faults`]): blackhole, refuse, reset, latency, bandwidth,
//!   throttling, 503, ambiguous success;
//! - journals every request and what it did ([`journal`]).
//!
//! Without an upstream (**sink mode**) it validates and acknowledges, storing nothing but
//! counting what it accepted per group and stream (for benchmarks).
//!
//! Faults are driven in-process through [`GatewayHandle`] or out-of-process through the
//! control API under `/_gateway/` (see [`control`]).

pub mod control;
pub mod faults;
pub mod journal;
mod proxy;
pub mod rules;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use reqwest::Url;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use faults::{ActiveFault, Fault, FaultError, FaultId, FaultKind};
pub use journal::{Entry, Outcome, StreamTotals, Summary};
pub use rules::{RejectReason, Rejection};

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Where valid requests go (an `http://` emulator URL); `None` = sink mode.
    pub upstream: Option<Url>,
    /// Seed of the RNG deciding probabilistic faults.
    pub seed: u64,
    /// Address to listen on; default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// CreateLogGroup quota, calls per second (CloudWatch: 10).
    pub create_log_group_per_second: u32,
    /// CreateLogStream quota, calls per second (CloudWatch: 50).
    pub create_log_stream_per_second: u32,
    /// The account's PutLogEvents quota, calls per second, shared by every shipper behind
    /// this gateway (CloudWatch: 5,000 per account and Region); `None`: not enforced.
    pub put_log_events_per_second: Option<u32>,
    /// Journal entries kept (oldest dropped first; the summary stays exact).
    pub journal_capacity: usize,
    /// Largest request body read; larger ones are answered 413.
    pub max_body_bytes: usize,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            upstream: None,
            seed: 0,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            create_log_group_per_second: 10,
            create_log_stream_per_second: 50,
            put_log_events_per_second: None,
            journal_capacity: 100_000,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why the gateway could not start or a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The upstream URL is not plain `http://host[:port]`.
    #[error("unsupported upstream {url}: only http:// URLs with a host are supported")]
    UnsupportedUpstream {
        /// The URL given.
        url: Url,
    },
    /// An option is out of range.
    #[error("invalid gateway option {name}: {detail}")]
    InvalidOption {
        /// Option name.
        name: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The fault is invalid.
    #[error(transparent)]
    Fault(#[from] FaultError),
}

/// Starts gateways.
#[derive(Debug)]
pub struct Gateway;

impl Gateway {
    /// Validates the options, binds the listener and starts serving on the current Tokio
    /// runtime. The gateway stops when the returned handle is dropped.
    pub async fn start(options: GatewayOptions) -> Result<GatewayHandle, GatewayError> {
        let upstream = match &options.upstream {
            Some(url) => {
                if url.scheme() != "http" || url.host_str().is_none() {
                    return Err(GatewayError::UnsupportedUpstream { url: url.clone() });
                }
                let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
                Some(Upstream { base: url.as_str().trim_end_matches('/').to_owned(), client })
            }
            None => None,
        };
        for (name, value) in [
            ("create_log_group_per_second", options.create_log_group_per_second),
            ("create_log_stream_per_second", options.create_log_stream_per_second),
        ] {
            if value == 0 {
                return Err(GatewayError::InvalidOption { name, detail: "must be at least 1".to_owned() });
            }
        }
        if options.journal_capacity == 0 {
            return Err(GatewayError::InvalidOption {
                name: "journal_capacity",
                detail: "must be at least 1".to_owned(),
            });
        }
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| GatewayError::Bind { addr: options.listen, source })?;
        let addr =
            listener.local_addr().map_err(|source| GatewayError::Bind { addr: options.listen, source })?;
        let now = Instant::now();
        let (fault_changes, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            upstream,
            max_body_bytes: options.max_body_bytes,
            started: now,
            faults: Mutex::new(faults::FaultSet::default()),
            fault_changes,
            listening: watch::Sender::new(true),
            rng: Mutex::new(fastrand::Rng::with_seed(options.seed)),
            group_bucket: Mutex::new(rules::TokenBucket::new(options.create_log_group_per_second, now)),
            stream_bucket: Mutex::new(rules::TokenBucket::new(options.create_log_stream_per_second, now)),
            put_bucket: options
                .put_log_events_per_second
                .map(|rate| Mutex::new(rules::TokenBucket::new(rate, now))),
            journal: Mutex::new(journal::Journal::new(options.journal_capacity)),
            group_classes: Mutex::new(std::collections::BTreeMap::new()),
            request_ids: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
        });
        tokio::spawn(proxy::accept_loop(Arc::clone(&shared), listener, addr));
        let url = Url::parse(&format!("http://{addr}/"))
            .map_err(|e| GatewayError::InvalidOption { name: "listen", detail: e.to_string() })?;
        Ok(GatewayHandle { shared, addr, url })
    }
}

/// A running gateway; dropping it stops the gateway and cuts its connections.
#[derive(Debug)]
pub struct GatewayHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: Url,
}

impl GatewayHandle {
    /// The endpoint URL to give the client (`http://127.0.0.1:PORT/`).
    pub fn url(&self) -> Url {
        self.url.clone()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts a fault; it lasts until [`remove`](Self::remove) or [`clear`](Self::clear).
    pub fn inject(&self, fault: Fault) -> Result<FaultId, GatewayError> {
        Ok(self.shared.inject(fault)?)
    }

    /// Ends one fault; false if it was not active.
    pub fn remove(&self, id: FaultId) -> bool {
        self.shared.remove(id)
    }

    /// Ends every fault: service is restored. After a certain `Refuse` the listener is
    /// re-opened asynchronously, within milliseconds; await [`listening`](Self::listening)
    /// to be sure new connections are accepted.
    pub fn clear(&self) {
        self.shared.clear();
    }

    /// Resolves once the listening socket is open (at once unless a certain `Refuse` is
    /// active or has just ended; while one is active it waits until it is removed).
    pub async fn listening(&self) {
        let mut listening = self.shared.listening.subscribe();
        // An error means the gateway is gone; nothing to wait for.
        let _ = listening.wait_for(|open| *open).await;
    }

    /// The active faults.
    pub fn faults(&self) -> Vec<ActiveFault> {
        lock(&self.shared.faults).list()
    }

    /// The journal entries kept, oldest first.
    pub fn journal(&self) -> Vec<Entry> {
        lock(&self.shared.journal).entries()
    }

    /// The class of each log group created through this gateway (`STANDARD` when the
    /// request named none). The emulator does not keep it; the audit reads it here.
    pub fn group_classes(&self) -> std::collections::BTreeMap<String, String> {
        lock(&self.shared.group_classes).clone()
    }

    /// Cumulative counts, including accepted events/bytes per group and stream.
    pub fn summary(&self) -> Summary {
        lock(&self.shared.journal).summary()
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// The upstream emulator and the client that reaches it.
#[derive(Debug)]
struct Upstream {
    /// URL without trailing slash; the request's path is appended.
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// State shared by the accept loop, connections and the handle.
#[derive(Debug)]
struct Shared {
    upstream: Option<Upstream>,
    max_body_bytes: usize,
    started: Instant,
    faults: Mutex<faults::FaultSet>,
    /// Bumped on every fault change, so held connections and the listener re-evaluate.
    fault_changes: watch::Sender<u64>,
    /// Whether the listening socket is open (false while a certain `Refuse` lasts and until
    /// the accept loop re-opens it afterwards).
    listening: watch::Sender<bool>,
    rng: Mutex<fastrand::Rng>,
    group_bucket: Mutex<rules::TokenBucket>,
    stream_bucket: Mutex<rules::TokenBucket>,
    /// The account-wide PutLogEvents quota, when enforced.
    put_bucket: Option<Mutex<rules::TokenBucket>>,
    journal: Mutex<journal::Journal>,
    /// `logGroupClass` of every group created through the gateway. moto 5.x drops the class,
    /// so the gateway keeps it and answers it in DescribeLogGroups as CloudWatch does.
    group_classes: Mutex<std::collections::BTreeMap<String, String>>,
    request_ids: AtomicU64,
    shutdown: CancellationToken,
}

impl Shared {
    fn inject(&self, fault: Fault) -> Result<FaultId, FaultError> {
        let id = lock(&self.faults).inject(fault)?;
        self.fault_changes.send_modify(|generation| *generation += 1);
        Ok(id)
    }

    fn remove(&self, id: FaultId) -> bool {
        let removed = lock(&self.faults).remove(id);
        self.fault_changes.send_modify(|generation| *generation += 1);
        removed
    }

    fn clear(&self) {
        lock(&self.faults).clear();
        self.fault_changes.send_modify(|generation| *generation += 1);
    }

    fn plan(&self, operation: &str) -> faults::Plan {
        let faults = lock(&self.faults);
        let mut rng = lock(&self.rng);
        faults.plan(operation, &mut rng)
    }

    fn answer_for_group(&self, operation: &str, group: Option<&str>) -> Option<(FaultId, FaultKind)> {
        let faults = lock(&self.faults);
        let mut rng = lock(&self.rng);
        faults.answer_for_group(operation, group, &mut rng)
    }

    /// Whether fault `id` names `operation` itself (or all operations).
    fn fault_covers(&self, id: FaultId, operation: &str) -> bool {
        lock(&self.faults).list().iter().any(|a| {
            a.id == id && a.fault.ops.as_ref().is_none_or(|ops| ops.iter().any(|op| op == operation))
        })
    }

    fn denied_for_implied(&self, implied: &str, group: Option<&str>) -> Option<(FaultId, FaultKind)> {
        let faults = lock(&self.faults);
        let mut rng = lock(&self.rng);
        faults.denied_for_implied(implied, group, &mut rng)
    }

    fn refuse_connection(&self) -> Option<FaultId> {
        let faults = lock(&self.faults);
        let mut rng = lock(&self.rng);
        faults.refuse_connection(&mut rng)
    }

    fn record(&self, mut entry: Entry) {
        entry.at_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        entry.unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        lock(&self.journal).record(entry);
    }

    /// A fresh number for the `x-amzn-RequestId` of answers the gateway writes itself.
    fn next_request_id(&self) -> u64 {
        self.request_ids.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the state consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
