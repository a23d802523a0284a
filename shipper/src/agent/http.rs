//! `/metrics` (Prometheus text), `/healthz` and `/readyz`.
//!
//! Every pod in the cluster can reach this port, so a tenant must not be able to starve the
//! shipper of file descriptors or keep kubelet's probes from being answered: connections are
//! capped ([`MAX_CONNECTIONS`]; at the cap the oldest is closed to make room, so a flood of
//! idle connections pushes out itself, not the next probe), a request's headers must arrive
//! within [`HEADER_TIMEOUT`], and no connection lives longer than [`MAX_CONNECTION_AGE`].

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

use crate::kube::PodCache;
use crate::telemetry::Metrics;

/// Connections served at once. Prometheus, kubelet's probes and a curl need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a request's headers may take to arrive (an idle connection included).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection is kept, keep-alive included; scrapers reconnect.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    pods: Arc<PodCache>,
}

/// Serve until `cancel` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    pods: Arc<PodCache>,
    cancel: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AppState { metrics: Arc::clone(&metrics), pods });
    let open = Connections::default();
    let mut next_id: u64 = 0;
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: wait rather than spin; the cap keeps this rare.
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let id = next_id;
        let closing = cancel.child_token();
        if let Some(evicted) = open.admit(id, closing.clone()) {
            evicted.cancel();
            metrics.http_connections_evicted.fetch_add(1, Ordering::Relaxed);
        }
        metrics.http_connections.fetch_add(1, Ordering::Relaxed);
        let (app, open, metrics) = (app.clone(), open.clone(), Arc::clone(&metrics));
        tokio::spawn(async move {
            serve_connection(stream, app, closing).await;
            open.remove(id);
            metrics.http_connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One connection, HTTP/1.1, until it ends, times out, or `closing` fires (then in-flight
/// requests finish and idle keep-alive ends at once).
async fn serve_connection(stream: tokio::net::TcpStream, app: Router, closing: CancellationToken) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(connection);
    let age = tokio::time::sleep(MAX_CONNECTION_AGE);
    tokio::pin!(age);
    tokio::select! {
        _ = &mut connection => return,
        _ = closing.cancelled() => {}
        _ = &mut age => {}
    }
    connection.as_mut().graceful_shutdown();
    // A request still in flight gets a moment to finish.
    let _ = tokio::time::timeout(HEADER_TIMEOUT, connection).await;
}

/// The open connections, oldest first, each with the token that closes it.
#[derive(Clone, Default)]
struct Connections(Arc<Mutex<BTreeMap<u64, CancellationToken>>>);

impl Connections {
    /// Register connection `id`; at the cap, hand back the oldest one's token to close.
    fn admit(&self, id: u64, closing: CancellationToken) -> Option<CancellationToken> {
        let mut open = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let evicted =
            if open.len() >= MAX_CONNECTIONS { open.pop_first().map(|(_, token)| token) } else { None };
        open.insert(id, closing);
        evicted
    }

    fn remove(&self, id: u64) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&id);
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.metrics.state_lock_waiting.load(Ordering::Relaxed) != 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "waiting for another shipper to release the state directory\n")
    } else if state.pods.is_synced() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "pod metadata not synced yet\n")
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    async fn start() -> (std::net::SocketAddr, Arc<Metrics>, CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        let cancel = CancellationToken::new();
        let pods = Arc::new(PodCache::new(Duration::from_secs(60)));
        tokio::spawn(serve(listener, Arc::clone(&metrics), pods, cancel.clone()));
        (addr, metrics, cancel)
    }

    /// A blocking GET on a fresh connection (std, so it runs beside the server's runtime).
    fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(conn, "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        answer
    }

    /// A tenant holding many more idle connections than the cap: the listener never holds
    /// more than the cap open, and a probe arriving after them is still answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_past_the_cap_never_starve_the_probe() {
        let (addr, metrics, cancel) = start().await;
        let idle: Vec<std::net::TcpStream> =
            (0..MAX_CONNECTIONS * 3).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        let probe = tokio::task::spawn_blocking(move || get(addr, "/healthz")).await.unwrap();
        assert!(probe.starts_with("HTTP/1.1 200") && probe.ends_with("ok\n"), "{probe:?}");
        // Evicted connections finish closing on their own tasks: wait for them to settle.
        let mut open = metrics.http_connections.load(Ordering::Relaxed);
        for _ in 0..100 {
            if open <= MAX_CONNECTIONS as i64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            open = metrics.http_connections.load(Ordering::Relaxed);
        }
        assert!(open <= MAX_CONNECTIONS as i64, "{open} connections open, cap {MAX_CONNECTIONS}");
        assert!(metrics.http_connections_evicted.load(Ordering::Relaxed) >= (MAX_CONNECTIONS * 2) as u64);
        drop(idle);
        cancel.cancel();
    }

    /// A connection that never sends its headers is closed by the server.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_that_sends_nothing_is_closed() {
        let (addr, _metrics, cancel) = start().await;
        let outcome = tokio::task::spawn_blocking(move || {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            // Far above HEADER_TIMEOUT: only a server that closes ends the read.
            conn.set_read_timeout(Some(HEADER_TIMEOUT * 6)).unwrap();
            let mut buf = [0u8; 256];
            conn.read(&mut buf)
        })
        .await
        .unwrap();
        // Closed (EOF, or a 408 then EOF), not a read timeout.
        assert!(outcome.is_ok(), "the server kept a silent connection open: {outcome:?}");
        cancel.cancel();
    }
}
