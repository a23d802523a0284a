//! `/metrics` (Prometheus text), `/healthz` and `/readyz`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::kube::PodCache;
use crate::telemetry::Metrics;

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
        .with_state(AppState { metrics, pods });
    let result =
        axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await;
    if let Err(e) = result {
        tracing::error!(error = %e, "metrics endpoint failed");
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.metrics.state_lock_waiting.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "waiting for another shipper to release the state directory\n")
    } else if state.pods.is_synced() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "pod metadata not synced yet\n")
    }
}
