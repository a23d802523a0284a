//! The `/_standin/` control endpoints, so a separate process can drive the stand-in.
//!
//! | request | effect |
//! |---|---|
//! | `PUT /_standin/pods` (pod JSON) | create or replace a pod |
//! | `DELETE /_standin/pods/{ns}/{name}` | delete a pod |
//! | `PUT /_standin/pods/{ns}/{name}/labels` (`{"k":"v"}`) | replace its labels |
//! | `PUT /_standin/pods/{ns}/{name}/node` (`{"nodeName":"n"}`) | bind it to a node |
//! | `PUT /_standin/pods/{ns}/{name}/container-statuses` (array) | set `status.containerStatuses` |
//! | `POST /_standin/compact` | forget the change history |
//! | `POST /_standin/drop-watches` | end all open watches |
//! | `PUT /_standin/availability` (`{"availability":"available\|unavailable\|refusing"}`) | outage switch |
//! | `GET /_standin/stats` | request counters and the current resourceVersion |
//!
//! Pod-changing requests answer with the stored pod; errors are `Status` bodies.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::{json_response, store_error_response};
use super::store::StoreError;
use super::{Availability, Shared};

/// The control router; always answers, whatever the availability switch says.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_standin/pods", put(apply_pod))
        .route("/_standin/pods/{namespace}/{name}", delete(delete_pod))
        .route("/_standin/pods/{namespace}/{name}/labels", put(set_labels))
        .route("/_standin/pods/{namespace}/{name}/node", put(bind))
        .route("/_standin/pods/{namespace}/{name}/container-statuses", put(set_container_statuses))
        .route("/_standin/compact", post(compact))
        .route("/_standin/drop-watches", post(drop_watches))
        .route("/_standin/availability", put(set_availability))
        .route("/_standin/stats", get(stats))
        .with_state(shared)
}

fn pod_result(result: Result<Value, StoreError>) -> Response {
    match result {
        Ok(pod) => json_response(StatusCode::OK, &pod),
        Err(error) => store_error_response(&error),
    }
}

async fn apply_pod(State(shared): State<Arc<Shared>>, Json(pod): Json<Value>) -> Response {
    pod_result(shared.store.apply(pod))
}

async fn delete_pod(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    pod_result(shared.store.delete(&namespace, &name))
}

async fn set_labels(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    Json(labels): Json<BTreeMap<String, String>>,
) -> Response {
    let labels: Map<String, Value> = labels.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    pod_result(shared.store.set_labels(&namespace, &name, labels))
}

/// Body of `PUT .../node`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Binding {
    node_name: String,
}

async fn bind(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    Json(binding): Json<Binding>,
) -> Response {
    pod_result(shared.store.bind(&namespace, &name, &binding.node_name))
}

async fn set_container_statuses(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    Json(statuses): Json<Value>,
) -> Response {
    pod_result(shared.store.set_container_statuses(&namespace, &name, statuses))
}

async fn compact(State(shared): State<Arc<Shared>>) -> Response {
    shared.store.compact();
    json_response(StatusCode::OK, &json!({"resourceVersion": shared.store.resource_version().to_string()}))
}

async fn drop_watches(State(shared): State<Arc<Shared>>) -> Response {
    shared.drop_watches();
    json_response(StatusCode::OK, &json!({}))
}

/// Body of `PUT /_standin/availability`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AvailabilitySwitch {
    availability: Availability,
}

async fn set_availability(
    State(shared): State<Arc<Shared>>,
    Json(switch): Json<AvailabilitySwitch>,
) -> Response {
    shared.set_availability(switch.availability);
    json_response(StatusCode::OK, &json!({"availability": switch.availability}))
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "resourceVersion": shared.store.resource_version().to_string(),
            "availability": *shared.availability.borrow(),
            "stats": shared.stats(),
        }),
    )
}
