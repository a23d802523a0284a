//! The node-scoped pod watch feeding the cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::cache::{PodCache, PodInfo};
use crate::route::MetadataKeys;
use crate::telemetry::Metrics;

/// A client from `KUBECONFIG` (or `~/.kube/config`) if present, else in-cluster config.
pub async fn client_from_env() -> Result<Client, kube::Error> {
    Client::try_default().await
}

/// How long to wait before trying again to build a Kubernetes client.
const CLIENT_RETRY: Duration = Duration::from_secs(5);

/// [`run_pod_watch`] with a client from the environment, built again every 5 s until one
/// can be (no kubeconfig yet, in-cluster variables missing): lines meanwhile wait for
/// metadata up to `metadata_wait`, then route from their file names.
pub async fn watch_pods(
    node: &str,
    keys: &MetadataKeys,
    cache: Arc<PodCache>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    loop {
        match client_from_env().await {
            Ok(client) => return run_pod_watch(client, node, keys, cache, metrics, cancel).await,
            Err(e) => {
                tracing::error!(error = %e, "no Kubernetes client (KUBECONFIG or in-cluster config); retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(CLIENT_RETRY) => {}
                }
            }
        }
    }
}

/// Watch this node's pods until `cancel` fires, keeping `cache` current with what routing
/// can read of them (`keys`). Errors are retried
/// with kube-runtime's default backoff; lines keep waiting (bounded) meanwhile.
pub async fn run_pod_watch(
    client: Client,
    node: &str,
    keys: &MetadataKeys,
    cache: Arc<PodCache>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut relisted: Vec<(String, String)> = Vec::new();
    let mut evict_tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = evict_tick.tick() => { cache.evict(Instant::now()); }
            event = stream.next() => {
                let Some(event) = event else { return };
                match event {
                    Ok(watcher::Event::Init) => relisted.clear(),
                    Ok(watcher::Event::InitApply(pod)) => {
                        if let Some(info) = PodInfo::from_pod(&pod).map(|info| info.trimmed(keys)) {
                            relisted.push((info.namespace.clone(), info.name.clone()));
                            cache.apply(info);
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        cache.resync(&relisted, Instant::now());
                        relisted.clear();
                        Metrics::set(&metrics.metadata_ready, 1);
                        tracing::info!(pods = cache.len(), node, "pod metadata synced");
                    }
                    Ok(watcher::Event::Apply(pod)) => {
                        if let Some(info) = PodInfo::from_pod(&pod).map(|info| info.trimmed(keys)) {
                            cache.apply(info);
                        }
                    }
                    Ok(watcher::Event::Delete(pod)) => {
                        if let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) {
                            cache.delete(ns, name, Instant::now());
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying with backoff"),
                }
            }
        }
    }
}
