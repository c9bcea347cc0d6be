//! Errors from AWS calls, classified.
//!
//! [`ErrorKind`] is decided from the SDK's error metadata — the service's error code and the
//! kind of SDK failure — never from message text. Callers pick their reaction from the kind:
//! back off on [`ErrorKind::Throttled`], fall back on [`ErrorKind::Capacity`], look up instead
//! of create on [`ErrorKind::AlreadyExists`], and so on.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What kind of failure an AWS call had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The API rate limit was hit (`RequestLimitExceeded`, `Throttling`, `SlowDown`, …).
    Throttled,
    /// No capacity for this request (`InsufficientInstanceCapacity`, …): try elsewhere.
    Capacity,
    /// A quota or in-flight limit (`ResourceLimitExceeded`, `VcpuLimitExceeded`, …).
    LimitExceeded,
    /// The resource does not exist.
    NotFound,
    /// The resource (or rule) already exists.
    AlreadyExists,
    /// Worth retrying later: timeouts, connection failures, 5xx.
    Transient,
    /// Retrying the same request will not help.
    Fatal,
}

impl ErrorKind {
    /// The closed label value used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Capacity => "capacity",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Transient => "transient",
            ErrorKind::Fatal => "fatal",
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled
                | ErrorKind::Capacity
                | ErrorKind::LimitExceeded
                | ErrorKind::Transient
        )
    }
}

/// A failed AWS call.
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation} in {region} failed ({kind:?}{code_sep}{code})", code_sep = if code.is_empty() { "" } else { ": " })]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub region: String,
    pub kind: ErrorKind,
    /// The service's error code, empty when there was no service response.
    pub code: String,
    /// The service's message, if any.
    pub message: Option<String>,
    #[source]
    pub source: Box<dyn StdError + Send + Sync + 'static>,
}

const THROTTLING: [&str; 9] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
];

const CAPACITY: [&str; 6] = [
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientDBInstanceCapacity",
    "InsufficientDBClusterCapacityFault",
];

const TRANSIENT: [&str; 6] = [
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
];

const ALREADY_EXISTS_EXACT: [&str; 5] = [
    "DuplicateLoadBalancerName",
    "DuplicateTargetGroupName",
    "BucketAlreadyOwnedByYou",
    "HostedZoneAlreadyExists",
    "IdempotentParameterMismatch",
];

/// Classifies a service error code.
pub fn classify_code(code: &str, http_status: Option<u16>) -> ErrorKind {
    if THROTTLING.contains(&code) {
        ErrorKind::Throttled
    } else if CAPACITY.contains(&code) {
        ErrorKind::Capacity
    } else if TRANSIENT.contains(&code) {
        ErrorKind::Transient
    } else if code.ends_with("LimitExceeded")
        || code.ends_with("QuotaExceeded")
        || code.ends_with("QuotaExceededFault")
    {
        ErrorKind::LimitExceeded
    } else if code.ends_with(".NotFound")
        || code.ends_with("NotFound")
        || code.ends_with("NotFoundFault")
        || code.starts_with("NoSuch")
    {
        ErrorKind::NotFound
    } else if code.ends_with(".Duplicate")
        || code.ends_with("AlreadyExists")
        || code.ends_with("AlreadyExistsFault")
        || ALREADY_EXISTS_EXACT.contains(&code)
    {
        ErrorKind::AlreadyExists
    } else {
        match http_status {
            Some(s) if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Fatal,
        }
    }
}

/// Classifies an SDK error.
pub fn classify<E, R>(err: &SdkError<E, R>) -> (ErrorKind, String, Option<String>)
where
    E: ProvideErrorMetadata,
    R: HttpStatus,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or_default().to_owned();
            let status = ctx.raw().status_code();
            let message = ctx.err().message().map(str::to_owned);
            (classify_code(&code, Some(status)), code, message)
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            (ErrorKind::Transient, String::new(), None)
        }
        SdkError::ResponseError(ctx) => {
            let kind = if ctx.raw().status_code() >= 500 {
                ErrorKind::Transient
            } else {
                ErrorKind::Fatal
            };
            (kind, String::new(), None)
        }
        _ => (ErrorKind::Fatal, String::new(), None),
    }
}

/// The HTTP status of a raw response (implemented for the SDK's response type).
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        let cases = [
            ("RequestLimitExceeded", 503, ErrorKind::Throttled),
            ("Throttling", 400, ErrorKind::Throttled),
            ("SlowDown", 503, ErrorKind::Throttled),
            ("InsufficientInstanceCapacity", 500, ErrorKind::Capacity),
            ("ResourceLimitExceeded", 400, ErrorKind::LimitExceeded),
            ("VcpuLimitExceeded", 400, ErrorKind::LimitExceeded),
            ("SnapshotQuotaExceeded", 400, ErrorKind::LimitExceeded),
            ("InvalidVpcID.NotFound", 400, ErrorKind::NotFound),
            ("DBSnapshotNotFound", 404, ErrorKind::NotFound),
            ("NoSuchBucket", 404, ErrorKind::NotFound),
            ("InvalidPermission.Duplicate", 400, ErrorKind::AlreadyExists),
            ("DBSnapshotAlreadyExists", 400, ErrorKind::AlreadyExists),
            ("InternalError", 500, ErrorKind::Transient),
            ("SomethingOdd", 503, ErrorKind::Transient),
            ("InvalidParameterValue", 400, ErrorKind::Fatal),
        ];
        for (code, status, kind) in cases {
            assert_eq!(classify_code(code, Some(status)), kind, "{code}");
        }
    }
}
