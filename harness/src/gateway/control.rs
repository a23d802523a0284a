//! The control API under `/_gateway/`, for driving a gateway from another process.
//!
//! | method | path | effect |
//! |---|---|---|
//! | GET | `/_gateway/state` | [`State`]: active faults and summary |
//! | GET | `/_gateway/journal` | the journal entries, oldest first |
//! | POST | `/_gateway/faults` | inject a [`Fault`](super::Fault) (JSON); answers `{"id": N}` |
//! | DELETE | `/_gateway/faults` | remove every fault |
//! | DELETE | `/_gateway/faults/{id}` | remove one fault (404 if not active) |
//!
//! Control requests are not journaled and never see faults.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::faults::{ActiveFault, Fault, FaultId};
use super::journal::Summary;
use super::{Shared, lock};

/// Path prefix of the control API.
pub const PREFIX: &str = "/_gateway";

/// Largest control request body accepted.
const MAX_CONTROL_BODY: usize = 64 * 1024;

/// Answer of `GET /_gateway/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Active faults, in injection order.
    pub faults: Vec<ActiveFault>,
    /// Cumulative counts.
    pub summary: Summary,
}

/// Answer of `POST /_gateway/faults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injected {
    /// The new fault's id.
    pub id: FaultId,
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value)
        .unwrap_or_else(|error| format!(r#"{{"error":"cannot serialise answer: {error}"}}"#).into_bytes());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &serde_json::json!({ "error": message }))
}

/// Serves one control request.
pub(super) async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().strip_prefix(PREFIX).unwrap_or_default().trim_end_matches('/').to_owned();
    match (&method, path.as_str()) {
        (&Method::GET, "/state") => {
            let state =
                State { faults: lock(&shared.faults).list(), summary: lock(&shared.journal).summary() };
            json_response(StatusCode::OK, &state)
        }
        (&Method::GET, "/journal") => {
            let entries = lock(&shared.journal).entries();
            json_response(StatusCode::OK, &entries)
        }
        (&Method::POST, "/faults") => {
            let body = match Limited::new(request.into_body(), MAX_CONTROL_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) => return error_response(StatusCode::BAD_REQUEST, &error.to_string()),
            };
            let fault: Fault = match serde_json::from_slice(&body) {
                Ok(fault) => fault,
                Err(error) => return error_response(StatusCode::BAD_REQUEST, &error.to_string()),
            };
            match shared.inject(fault) {
                Ok(id) => json_response(StatusCode::CREATED, &Injected { id }),
                Err(error) => error_response(StatusCode::BAD_REQUEST, &error.to_string()),
            }
        }
        (&Method::DELETE, "/faults") => {
            shared.clear();
            json_response(StatusCode::OK, &serde_json::json!({ "cleared": true }))
        }
        (&Method::DELETE, other) => {
            match other.strip_prefix("/faults/").and_then(|id| id.parse::<u64>().ok()) {
                Some(id) if shared.remove(FaultId(id)) => {
                    json_response(StatusCode::OK, &serde_json::json!({ "removed": id }))
                }
                Some(id) => error_response(StatusCode::NOT_FOUND, &format!("no active fault {id}")),
                None => error_response(StatusCode::NOT_FOUND, "unknown control path"),
            }
        }
        _ => error_response(StatusCode::NOT_FOUND, "unknown control path"),
    }
}
