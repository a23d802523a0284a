//! The metadata cache the agent reads when it routes a file's lines.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use super::workload::{OwnerRef, Workload};
use crate::route::MetadataKeys;

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

impl PodInfo {
    /// Only the labels and annotations `keys` says routing can read (the workload was
    /// derived from the full set already).
    pub fn trimmed(mut self, keys: &MetadataKeys) -> PodInfo {
        self.labels.retain(|key, _| keys.keeps_label(key));
        self.annotations.retain(|key, _| keys.keeps_annotation(key));
        self
    }

    /// Roughly the heap bytes it holds (strings and map entries), for the deleted-pod budget.
    pub fn approx_bytes(&self) -> usize {
        const ENTRY: usize = 64;
        let map =
            |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| k.len() + v.len() + ENTRY).sum::<usize>();
        self.namespace.len()
            + self.name.len()
            + self.uid.len()
            + map(&self.labels)
            + map(&self.annotations)
            + map(&self.images)
            + size_of::<PodInfo>()
    }
}

#[derive(Debug)]
struct Entry {
    info: Arc<PodInfo>,
    deleted_at: Option<Instant>,
}

/// Deleted pods are kept (so their last lines still route right) within this many bytes;
/// past it the longest-deleted go first. A tenant churning pods cannot grow the cache.
pub const DELETED_PODS_BUDGET_BYTES: usize = 8 * 1024 * 1024;

/// Pods of this node by (namespace, name). Deleted pods stay for `retain_deleted`, within
/// [`DELETED_PODS_BUDGET_BYTES`].
#[derive(Debug)]
pub struct PodCache {
    pods: RwLock<HashMap<(String, String), Entry>>,
    synced: AtomicBool,
    retain_deleted: Duration,
    deleted_budget: usize,
}

impl PodCache {
    /// An empty, unsynced cache.
    pub fn new(retain_deleted: Duration) -> Self {
        Self::with_budget(retain_deleted, DELETED_PODS_BUDGET_BYTES)
    }

    /// An empty cache keeping deleted pods within `deleted_budget` bytes.
    pub fn with_budget(retain_deleted: Duration, deleted_budget: usize) -> Self {
        PodCache {
            pods: RwLock::new(HashMap::new()),
            synced: AtomicBool::new(false),
            retain_deleted,
            deleted_budget,
        }
    }

    /// Forget the longest-deleted pods until the deleted ones fit the budget; returns how
    /// many went.
    fn enforce_budget(&self, pods: &mut HashMap<(String, String), Entry>) -> usize {
        let mut deleted: Vec<(Instant, usize, (String, String))> = pods
            .iter()
            .filter_map(|(key, e)| Some((e.deleted_at?, e.info.approx_bytes(), key.clone())))
            .collect();
        let mut total: usize = deleted.iter().map(|(_, bytes, _)| bytes).sum();
        if total <= self.deleted_budget {
            return 0;
        }
        deleted.sort_unstable_by_key(|(at, _, _)| *at);
        let mut evicted = 0;
        for (_, bytes, key) in deleted {
            if total <= self.deleted_budget {
                break;
            }
            pods.remove(&key);
            total -= bytes;
            evicted += 1;
        }
        tracing::debug!(evicted, budget = self.deleted_budget, "deleted pods over budget forgotten early");
        evicted
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
        self.enforce_budget(&mut pods);
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
        self.enforce_budget(&mut pods);
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
    use proptest::prelude::*;

    use super::*;
    use crate::route::{
        MatcherSpec, MessageField, MessageFormat, MultilineRuleSpec, RouteInput, Routing, RoutingSettings,
    };

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

    /// Settings reading labels and annotations every way they can be read.
    fn routing() -> Routing {
        let exclude: Vec<MatcherSpec> =
            toml::from_str::<toml::Table>(r#"x = [{ labels = "tier=debug" }, { labels = "team in (a,b)" }]"#)
                .expect("toml")["x"]
                .clone()
                .try_into()
                .expect("matchers");
        let rules: Vec<MultilineRuleSpec> =
            toml::from_str::<toml::Table>(r#"x = [{ detector = "java", match = { labels = "lang=java" } }]"#)
                .expect("toml")["x"]
                .clone()
                .try_into()
                .expect("rules");
        let fields = MessageField::parse_list("labels.team,annotations.owner").expect("fields");
        Routing::new(&RoutingSettings {
            group_template: "k8s_{cluster}_{namespace}_{labels.app|labels.k8s-app|annotations.owner|workload}_{container}",
            stream_template: "{pod}_{container}_{labels.app.kubernetes.io/version}",
            include: &[],
            exclude: &exclude,
            multiline_rules: &rules,
            multiline: None,
            message_format: MessageFormat::Envelope,
            message_fields: &fields,
        })
        .expect("routing")
    }

    #[test]
    fn the_settings_name_the_keys_they_read() {
        let keys = routing().metadata_keys();
        for label in ["app", "k8s-app", "app.kubernetes.io/version", "tier", "team", "lang"] {
            assert!(keys.keeps_label(label), "{label}");
        }
        assert!(!keys.keeps_label("pod-template-hash") && !keys.keeps_label("noise"));
        for annotation in ["owner", "shipper.io/exclude", "shipper.io/multiline.main", "shipper.io/anything"]
        {
            assert!(keys.keeps_annotation(annotation), "{annotation}");
        }
        assert!(!keys.keeps_annotation("kubectl.kubernetes.io/last-applied-configuration"));
    }

    /// A pod aimed at the node with 1,000 labels and 200 KiB of annotations: the cache keeps
    /// what the default settings read (app, k8s-app, the shipper's annotations) and little else.
    #[test]
    fn a_pod_with_huge_metadata_costs_only_what_routing_reads() {
        let default = Routing::new(&RoutingSettings {
            message_format: MessageFormat::Envelope,
            ..RoutingSettings::defaults()
        })
        .expect("routing");
        let mut pod = info("hostile");
        pod.labels = (0..1000).map(|i| (format!("l{i}"), "v".repeat(63))).collect();
        pod.labels.insert("app".into(), "web".into());
        pod.annotations = (0..200).map(|i| (format!("a{i}"), "x".repeat(1024))).collect();
        pod.annotations.insert("shipper.io/multiline".into(), "java".into());
        let full = pod.approx_bytes();
        let kept = pod.trimmed(&default.metadata_keys());
        assert_eq!(kept.labels.keys().collect::<Vec<_>>(), ["app"]);
        assert_eq!(kept.annotations.keys().collect::<Vec<_>>(), ["shipper.io/multiline"]);
        assert!(full > 300_000 && kept.approx_bytes() < 2_000, "{full} -> {}", kept.approx_bytes());
    }

    #[test]
    fn deleted_pods_past_the_budget_go_longest_deleted_first() {
        let budget = 10 * info("p-0").approx_bytes();
        let cache = PodCache::with_budget(Duration::from_secs(600), budget);
        let t0 = Instant::now();
        cache.apply(info("live"));
        for i in 0..50 {
            cache.apply(info(&format!("p-{i}")));
            cache.delete("ns", &format!("p-{i}"), t0 + Duration::from_secs(i));
        }
        // The newest deleted fit the budget; the live pod is never evicted for it.
        assert!(cache.get("ns", "live").is_some());
        assert!(cache.get("ns", "p-49").is_some(), "the most recently deleted stays");
        assert!(cache.get("ns", "p-0").is_none(), "the longest deleted goes");
        let deleted = (0..50).filter(|i| cache.get("ns", &format!("p-{i}")).is_some()).count();
        assert!((1..=10).contains(&deleted), "{deleted} deleted pods kept");
    }

    /// Maps of up to `max` entries, keys and values drawn from the lists.
    fn pool(
        keys: Vec<&'static str>,
        values: Vec<&'static str>,
        max: usize,
    ) -> impl Strategy<Value = BTreeMap<String, String>> {
        let key = prop::sample::select(keys).prop_map(str::to_owned);
        let value = prop::sample::select(values).prop_map(str::to_owned);
        prop::collection::btree_map(key, value, 0..max)
    }

    fn label_pool() -> impl Strategy<Value = BTreeMap<String, String>> {
        let keys = vec!["app", "k8s-app", "team", "tier", "lang", "noise", "app.kubernetes.io/version"];
        pool(keys, vec!["a", "b", "web", "debug", "java", ""], 7)
    }

    fn annotation_pool() -> impl Strategy<Value = BTreeMap<String, String>> {
        let keys = vec![
            "owner",
            "noise",
            "shipper.io/exclude",
            "shipper.io/exclude-containers",
            "shipper.io/multiline",
            "shipper.io/multiline.main",
        ];
        pool(keys, vec!["true", "main", "java", "python", "team-x", ""], 6)
    }

    proptest! {
        /// Trimming never changes a decision: every plan made from the trimmed metadata is
        /// the plan made from the full metadata.
        #[test]
        fn trimming_never_changes_a_plan(labels in label_pool(), annotations in annotation_pool()) {
            let routing = routing();
            let mut pod = info("web-0");
            pod.labels = labels;
            pod.annotations = annotations;
            let trimmed = pod.clone().trimmed(&routing.metadata_keys());
            let plan = |p: &PodInfo| {
                let input = RouteInput {
                    cluster: "c",
                    node: "n",
                    namespace: &p.namespace,
                    pod: &p.name,
                    container: "main",
                    workload: &p.workload.name,
                    workload_kind: "",
                    labels: &p.labels,
                    annotations: &p.annotations,
                };
                format!("{:?}", routing.plan(&input, "img", true))
            };
            prop_assert_eq!(plan(&pod), plan(&trimmed));
        }
    }
}
