//! The Kubernetes endpoints: pods LIST/WATCH/GET, discovery, `/version`, `Status` errors.
//!
//! Everything answers JSON (kube-rs sends no `Accept`); errors are `Status` objects with the
//! HTTP code, which kube-rs and kubectl both parse.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::selector::PodSelector;
use super::store::StoreError;
use super::watch::{self, Start, WatchRequest};
use super::{Availability, Shared};

/// The API router (without the control endpoints), gated by the availability switch.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/apis", get(api_groups))
        .route("/api/v1", get(api_resources))
        .route("/api/v1/pods", get(all_pods))
        .route("/api/v1/namespaces/{namespace}/pods", get(namespaced_pods))
        .route("/api/v1/namespaces/{namespace}/pods/{name}", get(get_pod))
        .fallback(not_found_path)
        .layer(middleware::from_fn_with_state(shared.clone(), availability_gate))
        .with_state(shared)
}

/// 503 for every API request while the stand-in is marked unavailable.
async fn availability_gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if *shared.availability.borrow() != Availability::Available {
        return status_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the stand-in API server is unavailable (simulated outage)".into(),
            None,
        );
    }
    next.run(request).await
}

/// A `Status` error body with the given HTTP code.
pub(crate) fn status_response(
    code: StatusCode,
    reason: &str,
    message: String,
    details: Option<Value>,
) -> Response {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    json_response(code, &status)
}

/// A JSON body with `Content-Type: application/json`.
pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Maps a store error to the status the real API server would send.
pub(crate) fn store_error_response(error: &StoreError) -> Response {
    match error {
        StoreError::NotFound { name, .. } => status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            error.to_string(),
            Some(json!({"name": name, "kind": "pods"})),
        ),
        StoreError::InvalidPod { .. } => {
            status_response(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", error.to_string(), None)
        }
        StoreError::TooOld { .. } => status_response(StatusCode::GONE, "Expired", error.to_string(), None),
    }
}

async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "33",
            "gitVersion": "v1.33.0-standin",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

async fn api_versions(State(shared): State<Arc<Shared>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": shared.api_addr.to_string()}
            ],
        }),
    )
}

async fn api_groups() -> Response {
    json_response(StatusCode::OK, &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
}

async fn api_resources() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "v1",
            "resources": [{
                "name": "pods",
                "singularName": "pod",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get", "list", "watch"],
                "shortNames": ["po"],
                "categories": ["all"],
            }],
        }),
    )
}

async fn not_found_path(request: Request) -> Response {
    status_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("the server could not find the requested resource ({})", request.uri().path()),
        None,
    )
}

async fn get_pod(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match shared.store.get(&namespace, &name) {
        Some(pod) => json_response(StatusCode::OK, &pod),
        None => store_error_response(&StoreError::NotFound { namespace, name }),
    }
}

async fn all_pods(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    pods(shared, None, &query)
}

async fn namespaced_pods(
    State(shared): State<Arc<Shared>>,
    Path(namespace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    pods(shared, Some(&namespace), &query)
}

fn bad_request(message: String) -> Response {
    status_response(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

fn invalid(message: &str) -> Response {
    status_response(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message.to_owned(), None)
}

fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    matches!(query.get(name).map(String::as_str), Some("true" | "1"))
}

/// LIST or WATCH, depending on `watch`.
fn pods(shared: Arc<Shared>, namespace: Option<&str>, query: &HashMap<String, String>) -> Response {
    let text = |name: &str| query.get(name).map_or("", String::as_str);
    let selector = match PodSelector::parse(text("fieldSelector"), text("labelSelector"), namespace) {
        Ok(selector) => selector,
        Err(error) => return bad_request(error.to_string()),
    };
    if flag(query, "watch") { start_watch(shared, selector, query) } else { list(&shared, &selector, query) }
}

fn start_watch(shared: Arc<Shared>, selector: PodSelector, query: &HashMap<String, String>) -> Response {
    let bookmarks = flag(query, "allowWatchBookmarks");
    let resource_version = query.get("resourceVersion").map_or("", String::as_str);
    let start = if flag(query, "sendInitialEvents") {
        if query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
            return invalid("sendInitialEvents requires resourceVersionMatch=NotOlderThan");
        }
        if !bookmarks {
            return invalid("sendInitialEvents requires allowWatchBookmarks=true");
        }
        Start::Snapshot { initial_events_end: true }
    } else if resource_version.is_empty() || resource_version == "0" {
        Start::Snapshot { initial_events_end: false }
    } else {
        match resource_version.parse::<u64>() {
            Ok(rv) => Start::After(rv),
            Err(_) => return bad_request(format!("invalid resource version: {resource_version}")),
        }
    };
    let timeout = match query.get("timeoutSeconds") {
        None => shared.options.default_watch_timeout,
        Some(seconds) => match seconds.parse::<u64>() {
            Ok(seconds) => Duration::from_secs(seconds),
            Err(_) => return bad_request(format!("invalid timeoutSeconds: {seconds}")),
        },
    };
    let counters = &shared.counters;
    counters.watches.fetch_add(1, Ordering::Relaxed);
    counters.last_watch_rv.store(resource_version.parse().unwrap_or(0), Ordering::Relaxed);
    let body = Body::from_stream(watch::stream(shared, WatchRequest { selector, start, bookmarks, timeout }));
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A `continue` token: the snapshot resourceVersion and the last key returned.
fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    format!("{rv}/{namespace}/{name}")
}

fn decode_continue(token: &str) -> Option<(u64, (String, String))> {
    let mut parts = token.splitn(3, '/');
    let rv = parts.next()?.parse().ok()?;
    let namespace = parts.next()?.to_owned();
    let name = parts.next()?.to_owned();
    Some((rv, (namespace, name)))
}

fn list(shared: &Shared, selector: &PodSelector, query: &HashMap<String, String>) -> Response {
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => None,
        Some(Ok(0)) => None,
        Some(Ok(limit)) => Some(limit),
        Some(Err(_)) => return bad_request("invalid limit".into()),
    };
    let (snapshot, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        None => (shared.store.snapshot(), None),
        Some(token) => {
            let Some((rv, after)) = decode_continue(token) else {
                return bad_request(format!("invalid continue token: {token}"));
            };
            match shared.store.snapshot_at(rv) {
                Ok(snapshot) => (snapshot, Some(after)),
                Err(_) => {
                    return status_response(
                        StatusCode::GONE,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter."
                            .into(),
                        None,
                    );
                }
            }
        }
    };
    let range = match &after {
        Some(after) => snapshot
            .pods
            .range::<(String, String), _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
        None => snapshot.pods.range::<(String, String), _>(..),
    };
    let mut matching = range.filter(|(_, pod)| selector.matches(pod));
    let mut items = Vec::new();
    let mut last_key = None;
    for (key, pod) in matching.by_ref() {
        items.push(Value::clone(pod));
        last_key = Some(key);
        if limit.is_some_and(|limit| items.len() >= limit) {
            break;
        }
    }
    let mut metadata = json!({"resourceVersion": snapshot.rv.to_string()});
    if let (Some(_), Some((namespace, name))) = (matching.next(), last_key) {
        metadata["continue"] = json!(encode_continue(snapshot.rv, namespace, name));
    }
    shared.counters.lists.fetch_add(1, Ordering::Relaxed);
    json_response(
        StatusCode::OK,
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": items}),
    )
}
