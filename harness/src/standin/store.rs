//! The pod store: objects as JSON, one global resourceVersion, and a bounded change history.
//!
//! Every write bumps the global resourceVersion and appends a [`Change`] holding the old and
//! the new object, which is what filtered watches need to compute their transitions and what
//! `continue` tokens need to rebuild an older snapshot. History older than the retained window
//! (or older than the last [`Store::compact`]) is gone: asking for it gives
//! [`StoreError::TooOld`], which the API turns into 410.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use serde_json::{Map, Value};
use tokio::sync::watch;

/// `(namespace, name)`: the store's key, ordered like the real server's etcd keys.
pub type PodKey = (String, String);

/// Errors of store operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No pod with this namespace and name.
    #[error("pods \"{name}\" not found in namespace \"{namespace}\"")]
    NotFound {
        /// Namespace asked for.
        namespace: String,
        /// Name asked for.
        name: String,
    },
    /// The JSON is not a pod the store can hold.
    #[error("invalid pod: {reason}")]
    InvalidPod {
        /// What is wrong with it.
        reason: String,
    },
    /// The history needed to answer from `requested` was compacted away.
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld {
        /// resourceVersion asked for.
        requested: u64,
        /// Oldest resourceVersion still answerable.
        oldest: u64,
    },
}

/// One write: `old` is `None` for a creation, `new` is `None` for a deletion.
#[derive(Debug)]
pub struct Change {
    /// resourceVersion of this change.
    pub rv: u64,
    /// The pod's key.
    pub key: PodKey,
    /// State before the change.
    pub old: Option<Arc<Value>>,
    /// State after the change.
    pub new: Option<Arc<Value>>,
}

#[derive(Debug)]
struct Inner {
    pods: BTreeMap<PodKey, Arc<Value>>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    /// Changes with rv > floor are all in `history`.
    floor: u64,
    history_limit: usize,
}

/// Thread-safe pod store; watchers are woken through [`Store::subscribe`].
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
}

/// A consistent view of all pods at one resourceVersion.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The resourceVersion the view is at.
    pub rv: u64,
    /// Every pod at that resourceVersion.
    pub pods: BTreeMap<PodKey, Arc<Value>>,
}

impl Store {
    /// An empty store at resourceVersion 1 keeping at most `history_limit` changes.
    pub fn new(history_limit: usize) -> Self {
        let (changed, _) = watch::channel(1);
        Self {
            inner: Mutex::new(Inner {
                pods: BTreeMap::new(),
                rv: 1,
                history: VecDeque::new(),
                floor: 1,
                history_limit: history_limit.max(1),
            }),
            changed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes on every change; the value is the new resourceVersion.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// A pod's current state.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Value> {
        let key = (namespace.to_owned(), name.to_owned());
        self.lock().pods.get(&key).map(|pod| Value::clone(pod))
    }

    /// All pods now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        Snapshot { rv: inner.rv, pods: inner.pods.clone() }
    }

    /// All pods as they were at `rv`, rebuilt by undoing the newer changes.
    pub fn snapshot_at(&self, rv: u64) -> Result<Snapshot, StoreError> {
        let inner = self.lock();
        if rv < inner.floor || rv > inner.rv {
            return Err(StoreError::TooOld { requested: rv, oldest: inner.floor });
        }
        let mut pods = inner.pods.clone();
        for change in inner.history.iter().rev().take_while(|c| c.rv > rv) {
            match &change.old {
                Some(old) => pods.insert(change.key.clone(), old.clone()),
                None => pods.remove(&change.key),
            };
        }
        Ok(Snapshot { rv, pods })
    }

    /// Changes with resourceVersion greater than `rv`, in order, and the current
    /// resourceVersion. `rv` ahead of the store is fine (nothing yet).
    pub fn changes_since(&self, rv: u64) -> Result<(Vec<Arc<Change>>, u64), StoreError> {
        let inner = self.lock();
        if rv < inner.floor {
            return Err(StoreError::TooOld { requested: rv, oldest: inner.floor });
        }
        let start = inner.history.partition_point(|c| c.rv <= rv);
        let changes = inner.history.range(start..).cloned().collect();
        Ok((changes, inner.rv))
    }

    /// Drops all history: only the current resourceVersion stays answerable.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.floor = inner.rv;
    }

    /// Creates or replaces a pod (see [`crate::standin::Standin::apply_pod`]).
    pub fn apply(&self, pod: Value) -> Result<Value, StoreError> {
        let Value::Object(mut object) = pod else {
            return Err(invalid("not a JSON object"));
        };
        check_type_field(&object, "apiVersion", "v1")?;
        check_type_field(&object, "kind", "Pod")?;
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| invalid("metadata is not an object"))?;
        let name = match metadata.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(invalid("metadata.name must be a non-empty string")),
        };
        let namespace = match metadata.get("namespace") {
            None | Some(Value::Null) => "default".to_owned(),
            Some(Value::String(ns)) if !ns.is_empty() => ns.clone(),
            Some(_) => return Err(invalid("metadata.namespace must be a non-empty string")),
        };
        metadata.insert("namespace".into(), Value::String(namespace.clone()));
        object.insert("apiVersion".into(), Value::String("v1".into()));
        object.insert("kind".into(), Value::String("Pod".into()));
        let key = (namespace, name);
        self.write(key, |existing| {
            let mut pod = Value::Object(object);
            let identity = existing.and_then(|old| old.get("metadata"));
            for field in ["uid", "creationTimestamp"] {
                let kept = identity.and_then(|m| m.get(field)).cloned();
                let value = match (kept, pod["metadata"].get(field)) {
                    (Some(kept), _) => kept,
                    (None, Some(Value::String(given))) if !given.is_empty() => Value::String(given.clone()),
                    (None, _) if field == "uid" => Value::String(crate::standin::pod::new_uid()),
                    (None, _) => Value::String(now_rfc3339()),
                };
                set_path(&mut pod, &["metadata", field], value);
            }
            Ok(pod)
        })
    }

    /// Replaces `metadata.labels`.
    pub fn set_labels(
        &self,
        namespace: &str,
        name: &str,
        labels: Map<String, Value>,
    ) -> Result<Value, StoreError> {
        self.modify(namespace, name, |pod| {
            set_path(pod, &["metadata", "labels"], Value::Object(labels));
        })
    }

    /// Sets `spec.nodeName`.
    pub fn bind(&self, namespace: &str, name: &str, node: &str) -> Result<Value, StoreError> {
        self.modify(namespace, name, |pod| {
            set_path(pod, &["spec", "nodeName"], Value::String(node.to_owned()));
        })
    }

    /// Sets `status.containerStatuses`.
    pub fn set_container_statuses(
        &self,
        namespace: &str,
        name: &str,
        statuses: Value,
    ) -> Result<Value, StoreError> {
        if !statuses.is_array() {
            return Err(invalid("containerStatuses must be an array"));
        }
        self.modify(namespace, name, |pod| {
            set_path(pod, &["status", "containerStatuses"], statuses);
        })
    }

    /// Deletes a pod; returns its last state stamped with the deletion resourceVersion.
    pub fn delete(&self, namespace: &str, name: &str) -> Result<Value, StoreError> {
        let key = (namespace.to_owned(), name.to_owned());
        let mut inner = self.lock();
        let Some(old) = inner.pods.remove(&key) else {
            return Err(not_found(&key));
        };
        let rv = inner.rv + 1;
        let mut last = Value::clone(&old);
        stamp(&mut last, rv);
        record(&mut inner, rv, key, Some(old), None);
        drop(inner);
        self.changed.send_replace(rv);
        Ok(last)
    }

    fn modify(
        &self,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Value, StoreError> {
        let key = (namespace.to_owned(), name.to_owned());
        self.write(key, |existing| {
            let mut pod = Value::clone(existing.ok_or_else(|| not_found(&(namespace.into(), name.into())))?);
            edit(&mut pod);
            Ok(pod)
        })
    }

    /// Stores `build(existing)` under `key` with the next resourceVersion.
    fn write(
        &self,
        key: PodKey,
        build: impl FnOnce(Option<&Value>) -> Result<Value, StoreError>,
    ) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let old = inner.pods.get(&key).cloned();
        let mut pod = build(old.as_deref())?;
        let rv = inner.rv + 1;
        stamp(&mut pod, rv);
        let new = Arc::new(pod);
        inner.pods.insert(key.clone(), new.clone());
        record(&mut inner, rv, key, old, Some(new.clone()));
        drop(inner);
        self.changed.send_replace(rv);
        Ok(Value::clone(&new))
    }
}

fn record(inner: &mut Inner, rv: u64, key: PodKey, old: Option<Arc<Value>>, new: Option<Arc<Value>>) {
    inner.rv = rv;
    inner.history.push_back(Arc::new(Change { rv, key, old, new }));
    while inner.history.len() > inner.history_limit {
        if let Some(dropped) = inner.history.pop_front() {
            inner.floor = dropped.rv;
        }
    }
}

/// Sets `metadata.resourceVersion`.
pub(crate) fn stamp(pod: &mut Value, rv: u64) {
    set_path(pod, &["metadata", "resourceVersion"], Value::String(rv.to_string()));
}

/// Sets a nested field, creating (or replacing non-object) parents.
fn set_path(value: &mut Value, path: &[&str], leaf: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cursor = value;
    for part in parents {
        if !cursor.is_object() {
            *cursor = Value::Object(Map::new());
        }
        let Value::Object(map) = cursor else { return };
        cursor = map.entry(*part).or_insert_with(|| Value::Object(Map::new()));
    }
    if !cursor.is_object() {
        *cursor = Value::Object(Map::new());
    }
    if let Value::Object(map) = cursor {
        map.insert((*last).to_owned(), leaf);
    }
}

fn check_type_field(object: &Map<String, Value>, field: &str, expected: &str) -> Result<(), StoreError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s == expected => Ok(()),
        Some(other) => Err(invalid(&format!("{field} must be {expected:?}, got {other}"))),
    }
}

fn invalid(reason: &str) -> StoreError {
    StoreError::InvalidPod { reason: reason.to_owned() }
}

fn not_found(key: &PodKey) -> StoreError {
    StoreError::NotFound { namespace: key.0.clone(), name: key.1.clone() }
}

/// Now as RFC 3339 with seconds, like `creationTimestamp`.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}})
    }

    #[test]
    fn apply_fills_identity_and_keeps_it_on_replace() {
        let store = Store::new(10);
        let first = store.apply(pod("a")).unwrap();
        assert_eq!(first["metadata"]["resourceVersion"], "2");
        assert_eq!(first["kind"], "Pod");
        assert_eq!(first["apiVersion"], "v1");
        assert_eq!(first["metadata"]["uid"].as_str().unwrap().len(), 36);
        let second = store.apply(pod("a")).unwrap();
        assert_eq!(second["metadata"]["resourceVersion"], "3");
        assert_eq!(second["metadata"]["uid"], first["metadata"]["uid"]);
        assert_eq!(second["metadata"]["creationTimestamp"], first["metadata"]["creationTimestamp"]);
    }

    #[test]
    fn apply_rejects_foreign_kinds_and_nameless_pods() {
        let store = Store::new(10);
        assert!(matches!(
            store.apply(json!({"kind": "Service", "metadata": {"name": "a"}})),
            Err(StoreError::InvalidPod { .. })
        ));
        assert!(matches!(store.apply(json!({"metadata": {}})), Err(StoreError::InvalidPod { .. })));
        assert_eq!(store.resource_version(), 1);
    }

    #[test]
    fn history_is_bounded_and_old_snapshots_expire() {
        let store = Store::new(2);
        for name in ["a", "b", "c"] {
            store.apply(pod(name)).unwrap();
        }
        // rv 2,3,4 written; only changes 3 and 4 are retained, so a watch from rv 2 still
        // sees everything after it, while one from rv 1 would miss change 2.
        assert!(matches!(store.changes_since(1), Err(StoreError::TooOld { requested: 1, oldest: 2 })));
        let (changes, current) = store.changes_since(2).unwrap();
        assert_eq!((changes.len(), current), (2, 4));
        let (changes, _) = store.changes_since(3).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(store.snapshot_at(2).unwrap().pods.len(), 1);
        let at3 = store.snapshot_at(3).unwrap();
        assert_eq!(at3.pods.len(), 2);
        store.compact();
        assert!(store.snapshot_at(3).is_err());
        assert!(store.changes_since(4).unwrap().0.is_empty());
    }

    #[test]
    fn snapshot_at_undoes_modifications_and_deletions() {
        let store = Store::new(100);
        store.apply(pod("a")).unwrap();
        store.bind("ns", "a", "node-a").unwrap();
        let rv = store.resource_version();
        store.bind("ns", "a", "node-b").unwrap();
        store.delete("ns", "a").unwrap();
        store.apply(pod("z")).unwrap();
        let then = store.snapshot_at(rv).unwrap();
        let names: Vec<_> = then.pods.keys().map(|k| k.1.as_str()).collect();
        assert_eq!(names, ["a"]);
        let a = &then.pods[&("ns".to_owned(), "a".to_owned())];
        assert_eq!(a["spec"]["nodeName"], "node-a");
        assert_eq!(a["metadata"]["resourceVersion"], rv.to_string());
    }

    #[test]
    fn delete_of_unknown_pod_is_not_found() {
        let store = Store::new(10);
        assert_eq!(
            store.delete("ns", "x"),
            Err(StoreError::NotFound { namespace: "ns".into(), name: "x".into() })
        );
    }
}
