//! AWS JSON 1.1 on the wire: reading the operation, writing answers the SDK understands.
//!
//! Errors follow the awsJson1_1 protocol: HTTP status, `Content-Type:
//! application/x-amz-json-1.1`, an `x-amzn-RequestId`, the `x-amzn-ErrorType` header and a
//! body `{"__type": CODE, "message": TEXT}`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};

/// `X-Amz-Target` prefix of every CloudWatch Logs operation.
pub const TARGET_PREFIX: &str = "Logs_20140328.";
/// Content type of AWS JSON 1.1.
pub const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// The operation named by `X-Amz-Target` (`PutLogEvents`, ...), or `-` when absent.
pub fn operation(headers: &HeaderMap) -> &str {
    headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .map_or("-", |target| target.strip_prefix(TARGET_PREFIX).unwrap_or(target))
}

/// The access key that signed the request (SigV4 `Authorization: ... Credential=KEY/...`).
pub fn signer(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    auth.split("Credential=").nth(1)?.split('/').next().filter(|key| !key.is_empty())
}

fn request_id(seq: u64) -> String {
    format!("6a7c0000-0000-4000-8000-{seq:012x}")
}

/// A JSON 1.1 answer with the given status and body.
pub fn json(status: StatusCode, body: impl Into<Bytes>, seq: u64) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    if let Ok(id) = HeaderValue::from_str(&request_id(seq)) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// An AWS error answer: `{"__type": error_type, "message": message}`.
pub fn error(status: u16, error_type: &str, message: &str, seq: u64) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "__type": error_type, "message": message }).to_string();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = json(status, body, seq);
    if let Ok(value) = HeaderValue::from_str(error_type) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}

/// The 503 `ServiceUnavailableException` CloudWatch answers when it is unavailable.
pub fn service_unavailable(seq: u64) -> Response<Full<Bytes>> {
    error(503, "ServiceUnavailableException", "The service cannot complete the request.", seq)
}

/// Sink-mode acknowledgement of a valid request.
pub fn acknowledge(operation: &str, seq: u64) -> Response<Full<Bytes>> {
    let body = if operation == "PutLogEvents" {
        // Sequence tokens are ignored by CloudWatch since 2023 but still returned.
        format!(r#"{{"nextSequenceToken":"{seq:056}"}}"#)
    } else {
        "{}".to_owned()
    };
    json(StatusCode::OK, body, seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_comes_from_the_target_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(operation(&headers), "-");
        headers.insert("x-amz-target", HeaderValue::from_static("Logs_20140328.PutLogEvents"));
        assert_eq!(operation(&headers), "PutLogEvents");
    }

    #[test]
    fn error_answers_carry_type_header_and_body() {
        let response = error(400, "ThrottlingException", "Rate exceeded", 9);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[CONTENT_TYPE], AMZ_JSON);
        assert_eq!(response.headers()["x-amzn-errortype"], "ThrottlingException");
        let body = response.into_body();
        let bytes = futures::executor::block_on(http_body_util::BodyExt::collect(body))
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json body");
        assert_eq!(value, serde_json::json!({"__type": "ThrottlingException", "message": "Rate exceeded"}));
    }
}
