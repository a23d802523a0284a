//! A stand-in Kubernetes API server for Pods, served in-process over plain HTTP.
//!
//! No real kube-apiserver can run on the test machines, so the local tier serves Pods from
//! here. It implements exactly the surface that `kube::Client`, `kube::runtime::watcher` and
//! `kubectl get` rely on (see `reference/kube-standin.md`): LIST with field/label selectors and
//! `continue` tokens pinned to a snapshot, WATCH from a resourceVersion with filtered-watch
//! transitions, bookmarks, `timeoutSeconds`, 410 as an `ERROR` event, streaming lists, GET,
//! discovery and `Status` error bodies.
//!
//! The harness drives it through [`Standin`]'s methods, or over HTTP under `/_standin/` on
//! both the API port and a dedicated control port ([`Standin::control_url`]) that stays
//! reachable while the API refuses connections.
//!
//! Layout: [`store`] (pods, resourceVersions, bounded history), [`selector`] (field and label
//! selectors), `watch` (one watch stream), `api` (the Kubernetes endpoints), `control` (the
//! `/_standin/` endpoints), `server` (listeners and availability), [`pod`] (fabricated pods).

mod api;
mod control;
pub mod pod;
pub mod selector;
mod server;
pub mod store;
mod watch;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch as notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use pod::{container_statuses_json, owner_reference_json, pod_json};
pub use selector::SelectorError;
pub use store::StoreError;

/// Errors of the stand-in: starting it, and its control operations.
#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    /// The options do not describe a usable server.
    #[error("invalid stand-in options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// A listener could not be bound.
    #[error("cannot bind the stand-in {what} listener on {addr}")]
    Bind {
        /// `api` or `control`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig file could not be written.
    #[error("cannot write kubeconfig {path}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A store operation failed (unknown pod, invalid pod JSON).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How the stand-in answers API requests (the control endpoints always answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    /// Serve normally.
    Available,
    /// Answer every API request with `503` and a `Status` body; open watches are dropped.
    Unavailable,
    /// Close the API listener and every open connection: new connections are refused.
    Refusing,
}

/// Settings of a stand-in server.
#[derive(Debug, Clone)]
pub struct StandinOptions {
    /// How often an idle watch with `allowWatchBookmarks=true` gets a BOOKMARK (real servers:
    /// about a minute; tests use a fraction of a second).
    pub bookmark_interval: Duration,
    /// How many changes the history keeps for watches from an older resourceVersion; older
    /// ones are compacted away and such watches get a 410 `ERROR` event.
    pub history_limit: usize,
    /// Watch duration when the client sends no `timeoutSeconds` (kubectl `get -w`).
    pub default_watch_timeout: Duration,
    /// Address of the API listener (port 0: any free port).
    pub api_addr: SocketAddr,
    /// Address of the control listener (port 0: any free port).
    pub control_addr: SocketAddr,
}

impl Default for StandinOptions {
    fn default() -> Self {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self {
            bookmark_interval: Duration::from_secs(60),
            history_limit: 10_000,
            default_watch_timeout: Duration::from_secs(1800),
            api_addr: loopback,
            control_addr: loopback,
        }
    }
}

impl StandinOptions {
    /// Checks the options, so that a bad value fails at start rather than mid-test.
    pub fn validate(&self) -> Result<(), StandinError> {
        let invalid = |reason: &str| Err(StandinError::InvalidOptions { reason: reason.to_owned() });
        if self.bookmark_interval.is_zero() {
            return invalid("bookmark_interval must be positive");
        }
        if self.history_limit == 0 {
            return invalid("history_limit must be at least 1");
        }
        if self.default_watch_timeout.is_zero() {
            return invalid("default_watch_timeout must be positive");
        }
        Ok(())
    }
}

/// Request counters, for tests that must tell a relist from a resumed watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandinStats {
    /// LIST requests answered with 200.
    pub lists: u64,
    /// WATCH requests answered with 200 (including those ended by a 410 `ERROR` event).
    pub watches: u64,
    /// 410 `ERROR` events sent on watches (resourceVersion too old).
    pub expired_watches: u64,
    /// BOOKMARK events sent (initial-events-end ones included).
    pub bookmarks: u64,
    /// resourceVersion of the last BOOKMARK sent, 0 if none.
    pub last_bookmark_rv: u64,
    /// `resourceVersion` parameter of the last WATCH request, 0 if unset.
    pub last_watch_rv: u64,
}

#[derive(Debug, Default)]
struct Counters {
    lists: AtomicU64,
    watches: AtomicU64,
    expired_watches: AtomicU64,
    bookmarks: AtomicU64,
    last_bookmark_rv: AtomicU64,
    last_watch_rv: AtomicU64,
}

/// State shared by the handlers, the watch streams and the [`Standin`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    store: store::Store,
    options: StandinOptions,
    /// Cancelled to end every open watch; replaced by a fresh token each time.
    watch_generation: std::sync::Mutex<CancellationToken>,
    availability: notify::Sender<Availability>,
    counters: Counters,
    api_addr: SocketAddr,
}

impl Shared {
    fn watch_token(&self) -> CancellationToken {
        self.watch_generation.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn drop_watches(&self) {
        let mut current = self.watch_generation.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        current.cancel();
        *current = CancellationToken::new();
    }

    fn set_availability(&self, availability: Availability) {
        if availability != Availability::Available {
            // A real outage breaks open streams too.
            self.drop_watches();
        }
        self.availability.send_replace(availability);
    }

    fn stats(&self) -> StandinStats {
        let c = &self.counters;
        StandinStats {
            lists: c.lists.load(Ordering::Relaxed),
            watches: c.watches.load(Ordering::Relaxed),
            expired_watches: c.expired_watches.load(Ordering::Relaxed),
            bookmarks: c.bookmarks.load(Ordering::Relaxed),
            last_bookmark_rv: c.last_bookmark_rv.load(Ordering::Relaxed),
            last_watch_rv: c.last_watch_rv.load(Ordering::Relaxed),
        }
    }
}

/// Entry point: starts stand-in servers.
#[derive(Debug, Clone, Copy)]
pub struct StandinApi;

impl StandinApi {
    /// Binds the API and control listeners and starts serving on the current tokio runtime.
    pub async fn start(options: StandinOptions) -> Result<Standin, StandinError> {
        options.validate()?;
        let api_listener = server::bind(options.api_addr).map_err(|source| StandinError::Bind {
            what: "api",
            addr: options.api_addr,
            source,
        })?;
        let control_listener = server::bind(options.control_addr).map_err(|source| StandinError::Bind {
            what: "control",
            addr: options.control_addr,
            source,
        })?;
        let local = |listener: &tokio::net::TcpListener, what, addr| {
            listener.local_addr().map_err(|source| StandinError::Bind { what, addr, source })
        };
        let api_addr = local(&api_listener, "api", options.api_addr)?;
        let control_addr = local(&control_listener, "control", options.control_addr)?;

        let (availability, availability_rx) = notify::channel(Availability::Available);
        let shared = Arc::new(Shared {
            store: store::Store::new(options.history_limit),
            options,
            watch_generation: std::sync::Mutex::new(CancellationToken::new()),
            availability,
            counters: Counters::default(),
            api_addr,
        });
        let shutdown = CancellationToken::new();
        let api_router = api::router(shared.clone()).merge(control::router(shared.clone()));
        let control_router = control::router(shared.clone());
        let tasks = vec![
            tokio::spawn(server::serve_api(
                api_listener,
                api_addr,
                api_router,
                availability_rx,
                shutdown.clone(),
            )),
            tokio::spawn(server::serve_until(
                control_listener,
                control_router,
                shutdown.clone().cancelled_owned(),
            )),
        ];
        Ok(Standin { shared, api_addr, control_addr, shutdown, tasks })
    }
}

/// A running stand-in. Dropping it stops the servers (so does [`Standin::shutdown`]).
#[derive(Debug)]
pub struct Standin {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    control_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Standin {
    /// Base URL of the Kubernetes API, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// Base URL of the control listener, which answers `/_standin/...` even while the API
    /// refuses connections.
    pub fn control_url(&self) -> String {
        format!("http://{}", self.control_addr)
    }

    /// A kubeconfig (plain HTTP, anonymous user, namespace `default`) pointing at [`Self::url`].
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: \"{}\"\n\
             contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: nobody\n    namespace: default\n\
             current-context: standin\nusers:\n- name: nobody\n  user: {{}}\n",
            self.url()
        )
    }

    /// Writes [`Self::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), StandinError> {
        let path = path.as_ref();
        std::fs::write(path, self.kubeconfig())
            .map_err(|source| StandinError::Kubeconfig { path: path.to_owned(), source })
    }

    /// Creates the pod, or replaces the pod with the same namespace and name (keeping its uid
    /// and creationTimestamp). Returns the stored object with its new resourceVersion.
    pub fn apply_pod(&self, pod: Value) -> Result<Value, StandinError> {
        Ok(self.shared.store.apply(pod)?)
    }

    /// Replaces the labels of a pod.
    pub fn set_labels<I, K, V>(&self, namespace: &str, name: &str, labels: I) -> Result<Value, StandinError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let labels: serde_json::Map<String, Value> =
            labels.into_iter().map(|(k, v)| (k.into(), Value::String(v.into()))).collect();
        Ok(self.shared.store.set_labels(namespace, name, labels)?)
    }

    /// Binds a pod to a node (sets `spec.nodeName`), as the scheduler would.
    pub fn bind(&self, namespace: &str, name: &str, node: &str) -> Result<Value, StandinError> {
        Ok(self.shared.store.bind(namespace, name, node)?)
    }

    /// Sets `status.containerStatuses` (see [`container_statuses_json`]), as kubelet would.
    pub fn set_container_statuses(
        &self,
        namespace: &str,
        name: &str,
        statuses: Value,
    ) -> Result<Value, StandinError> {
        Ok(self.shared.store.set_container_statuses(namespace, name, statuses)?)
    }

    /// Deletes a pod; returns its last state.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> Result<Value, StandinError> {
        Ok(self.shared.store.delete(namespace, name)?)
    }

    /// A pod's current state, if it exists.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store.get(namespace, name)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    /// Forgets all change history: watches from any older resourceVersion get a 410 `ERROR`
    /// event, and `continue` tokens of older lists expire.
    pub fn compact(&self) {
        self.shared.store.compact();
    }

    /// Ends every open watch stream cleanly (clients re-watch from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.shared.drop_watches();
    }

    /// Makes the API available, answer 503, or refuse connections.
    pub fn set_availability(&self, availability: Availability) {
        self.shared.set_availability(availability);
    }

    /// Request counters since start.
    pub fn stats(&self) -> StandinStats {
        self.shared.stats()
    }

    /// Stops the servers and waits for them to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            // A task that panicked has nothing left to clean up.
            let _ = task.await;
        }
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}
