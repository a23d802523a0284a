//! Sorting SDK errors into what the error policy does with them (DESIGN §2 "Error policy").

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_cloudwatchlogs::config::http::HttpResponse;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};

use crate::telemetry::PutOutcome;

/// What a failed call means for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Rate exceeded: wait and retry.
    Throttled,
    /// 5xx / `ServiceUnavailableException`: wait and retry.
    ServerError,
    /// No answer (timeout, refused, reset, DNS): wait and retry.
    Network,
    /// Group or stream missing: create, then retry.
    NotFound,
    /// Create of something that exists: success.
    AlreadyExists,
    /// The request's data (or names) are invalid: retrying the same request cannot help.
    Invalid,
    /// Legacy: the exact batch was already accepted.
    DataAlreadyAccepted,
    /// Missing, expired or rejected credentials: wait (the data waits too) and retry.
    Credentials,
    /// Anything else: wait and retry, since dropping would be loss.
    Other,
}

impl Failure {
    /// The `shipper_put_requests_total` outcome label.
    pub(crate) fn outcome(self) -> PutOutcome {
        match self {
            Failure::Throttled => PutOutcome::Throttled,
            Failure::ServerError => PutOutcome::ServerError,
            Failure::Network => PutOutcome::Network,
            Failure::NotFound => PutOutcome::NotFound,
            Failure::Invalid => PutOutcome::Invalid,
            Failure::Credentials => PutOutcome::Credentials,
            // Both mean "the service has the data".
            Failure::AlreadyExists | Failure::DataAlreadyAccepted => PutOutcome::Ok,
            Failure::Other => PutOutcome::Other,
        }
    }
}

/// Error codes that mean the caller's identity is the problem.
const CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "AccessDeniedException",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "SignatureDoesNotMatch",
];

/// Classify an SDK error from any CloudWatch Logs operation.
pub(crate) fn classify<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match err {
        SdkError::TimeoutError(_) => Failure::Network,
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
            if caused_by_credentials(err) {
                Failure::Credentials
            } else if matches!(err, SdkError::DispatchFailure(_)) {
                Failure::Network
            } else {
                Failure::Other
            }
        }
        SdkError::ResponseError(_) => Failure::ServerError,
        SdkError::ServiceError(_) => {
            classify_code(err.code(), err.raw_response().map(|r| r.status().as_u16()))
        }
        _ => Failure::Other,
    }
}

/// Classify a service error by its code (the `__type` of the answer) and HTTP status.
pub(crate) fn classify_code(code: Option<&str>, status: Option<u16>) -> Failure {
    // `__type` may carry a namespace prefix (`com.amazonaws.logs#ThrottlingException`).
    let code = code.map(|c| c.rsplit('#').next().unwrap_or(c));
    match code {
        Some("ResourceNotFoundException") => Failure::NotFound,
        Some("ResourceAlreadyExistsException") => Failure::AlreadyExists,
        Some("InvalidParameterException") => Failure::Invalid,
        Some("DataAlreadyAcceptedException") => Failure::DataAlreadyAccepted,
        Some(
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException",
        ) => Failure::Throttled,
        Some("ServiceUnavailableException" | "InternalFailure" | "InternalServerError") => {
            Failure::ServerError
        }
        Some(c) if CREDENTIAL_CODES.contains(&c) => Failure::Credentials,
        _ => match status {
            Some(429) => Failure::Throttled,
            Some(s) if s >= 500 => Failure::ServerError,
            Some(401 | 403) => Failure::Credentials,
            _ => Failure::Other,
        },
    }
}

/// Whether the error chain contains a credentials-provider failure (no credentials found,
/// IMDS/STS unreachable, expired web identity token...).
fn caused_by_credentials(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_map_to_the_error_policy() {
        let cases = [
            ("ThrottlingException", 400, Failure::Throttled),
            ("com.amazonaws.logs#ThrottlingException", 400, Failure::Throttled),
            ("ServiceUnavailableException", 503, Failure::ServerError),
            ("ResourceNotFoundException", 400, Failure::NotFound),
            ("ResourceAlreadyExistsException", 400, Failure::AlreadyExists),
            ("InvalidParameterException", 400, Failure::Invalid),
            ("DataAlreadyAcceptedException", 400, Failure::DataAlreadyAccepted),
            ("UnrecognizedClientException", 400, Failure::Credentials),
            ("ExpiredTokenException", 400, Failure::Credentials),
            ("SomethingNew", 502, Failure::ServerError),
            ("SomethingNew", 429, Failure::Throttled),
            ("SomethingNew", 403, Failure::Credentials),
            ("SomethingNew", 400, Failure::Other),
        ];
        for (code, status, want) in cases {
            assert_eq!(classify_code(Some(code), Some(status)), want, "{code} {status}");
        }
        assert_eq!(classify_code(None, Some(500)), Failure::ServerError);
    }
}
