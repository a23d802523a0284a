//! The metadata cache the agent reads when it routes a file's lines.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use super::workload::{OwnerRef, Workload};

/// What routing needs to know about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Container name → image (spec, including init and ephemeral containers; status image
    /// when the spec has none).
    pub images: BTreeMap<String, String>,
    /// The workload it belongs to, from its owner reference.
    pub workload: Workload,
}

impl PodInfo {
    /// Extract what routing needs; `None` for a pod without name or namespace.
    pub fn from_pod(pod: &Pod) -> Option<PodInfo> {
        let meta = &pod.metadata;
        let mut images = BTreeMap::new();
        if let Some(status) = &pod.status {
            for s in status
                .container_statuses
                .iter()
                .flatten()
                .chain(status.init_container_statuses.iter().flatten())
            {
                images.insert(s.name.clone(), s.image.clone());
            }
        }
        if let Some(spec) = &pod.spec {
            for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
                if let Some(image) = &c.image {
                    images.insert(c.name.clone(), image.clone());
                }
            }
            for c in spec.ephemeral_containers.iter().flatten() {
                if let Some(image) = &c.image {
                    images.insert(c.name.clone(), image.clone());
                }
            }
        }
        let name = meta.name.clone()?;
        let labels = meta.labels.clone().unwrap_or_default();
        let owner = meta.owner_references.as_deref().and_then(OwnerRef::controller_of);
        Some(PodInfo {
            namespace: meta.namespace.clone()?,
            workload: Workload::from_owner(&name, owner.as_ref(), &labels),
            name,
            uid: meta.uid.clone().unwrap_or_default(),
            labels,
            annotations: meta.annotations.clone().unwrap_or_default(),
            images,
        })
    }
}

#[derive(Debug)]
struct Entry {
    info: Arc<PodInfo>,
    deleted_at: Option<Instant>,
}

/// Pods of this node by (namespace, name). Deleted pods stay for `retain_deleted`.
#[derive(Debug)]
pub struct PodCache {
    pods: RwLock<HashMap<(String, String), Entry>>,
    synced: AtomicBool,
    retain_deleted: Duration,
}

impl PodCache {
    /// An empty, unsynced cache.
    pub fn new(retain_deleted: Duration) -> Self {
        PodCache { pods: RwLock::new(HashMap::new()), synced: AtomicBool::new(false), retain_deleted }
    }

    /// The pod, if known (also recently deleted ones).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let pods = self.pods.read().unwrap_or_else(|e| e.into_inner());
        pods.get(&(namespace.to_owned(), name.to_owned())).map(|e| e.info.clone())
    }

    /// True once the initial list has been applied.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Insert or replace a live pod.
    pub fn apply(&self, info: PodInfo) {
        let key = (info.namespace.clone(), info.name.clone());
        let mut pods = self.pods.write().unwrap_or_else(|e| e.into_inner());
        pods.insert(key, Entry { info: Arc::new(info), deleted_at: None });
    }

    /// Mark a pod deleted (kept for `retain_deleted`, so its last lines still route right).
    pub fn delete(&self, namespace: &str, name: &str, now: Instant) {
        let mut pods = self.pods.write().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = pods.get_mut(&(namespace.to_owned(), name.to_owned())) {
            e.deleted_at.get_or_insert(now);
        }
    }

    /// A full relist finished: pods not in `live` were deleted meanwhile.
    pub fn resync(&self, live: &[(String, String)], now: Instant) {
        let live: std::collections::HashSet<&(String, String)> = live.iter().collect();
        let mut pods = self.pods.write().unwrap_or_else(|e| e.into_inner());
        for (key, e) in pods.iter_mut() {
            if !live.contains(key) {
                e.deleted_at.get_or_insert(now);
            }
        }
        self.synced.store(true, Ordering::Release);
    }

    /// Forget pods deleted more than `retain_deleted` ago.
    pub fn evict(&self, now: Instant) -> usize {
        let mut pods = self.pods.write().unwrap_or_else(|e| e.into_inner());
        let before = pods.len();
        let keep = self.retain_deleted;
        pods.retain(|_, e| e.deleted_at.is_none_or(|t| now.saturating_duration_since(t) < keep));
        before - pods.len()
    }

    /// Number of pods held (live and recently deleted).
    pub fn len(&self) -> usize {
        self.pods.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no pod is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> PodInfo {
        PodInfo {
            namespace: "ns".into(),
            name: name.into(),
            uid: "u".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            images: BTreeMap::new(),
            workload: Workload::from_owner(name, None, &BTreeMap::new()),
        }
    }

    #[test]
    fn deleted_pods_stay_until_retention_passes() {
        let cache = PodCache::new(Duration::from_secs(60));
        let t0 = Instant::now();
        cache.apply(info("a"));
        cache.delete("ns", "a", t0);
        assert!(cache.get("ns", "a").is_some(), "deleted pod must still route its last lines");
        assert_eq!(cache.evict(t0 + Duration::from_secs(59)), 0);
        assert_eq!(cache.evict(t0 + Duration::from_secs(61)), 1);
        assert!(cache.get("ns", "a").is_none());
    }

    #[test]
    fn resync_marks_vanished_pods_deleted_and_sets_synced() {
        let cache = PodCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        cache.apply(info("a"));
        cache.apply(info("b"));
        assert!(!cache.is_synced());
        cache.resync(&[("ns".into(), "b".into())], t0);
        assert!(cache.is_synced());
        cache.evict(t0 + Duration::from_secs(2));
        assert!(cache.get("ns", "a").is_none());
        assert!(cache.get("ns", "b").is_some());
    }

    #[test]
    fn reapplied_pod_is_live_again() {
        let cache = PodCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        cache.apply(info("a"));
        cache.delete("ns", "a", t0);
        cache.apply(info("a"));
        assert_eq!(cache.evict(t0 + Duration::from_secs(5)), 0);
    }
}
