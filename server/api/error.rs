//! The API layer's one error type and its one mapping to `tonic::Status`. Handlers return
//! `Result<_, ApiError>`; clients get a standard code, a message, and google.rpc details
//! (BadRequest field violations, ErrorInfo reason, RetryInfo) they can localise.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Domain of our ErrorInfo details.
pub const ERROR_DOMAIN: &str = "akig";

/// The RetryInfo of UNAVAILABLE.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more request fields are invalid; each violation names its field path.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// A field is invalid for a reason apps explain in their own words (an ErrorReason name),
    /// e.g. a promised date in the past.
    #[error("invalid request: {}", describe(.violations))]
    InvalidArgumentBecause {
        violations: Vec<FieldViolation>,
        reason: &'static str,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// What the request would create exists already; `reason` is an ErrorReason name when
    /// apps have one to explain it.
    #[error("{message}")]
    AlreadyExists {
        reason: Option<&'static str>,
        message: String,
    },
    /// The caller's credentials are missing, invalid or revoked. The message is generic on
    /// purpose: which check failed is logged, never told to the client.
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    PermissionDenied(String),
    /// The request is valid but the system's state forbids it; `reason` is an ErrorReason name.
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    Aborted {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        retry_after: Duration,
    },
    #[error("service temporarily unavailable")]
    Unavailable,
    /// A bug or an unexpected failure: logged with its cause, answered with a generic message.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn invalid_because(
        field: impl Into<String>,
        description: impl Into<String>,
        reason: &'static str,
    ) -> Self {
        Self::InvalidArgumentBecause {
            violations: vec![FieldViolation::new(field, description)],
            reason,
        }
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::PermissionDenied(message.into())
    }

    /// The field violations of an INVALID_ARGUMENT error, with or without a reason.
    pub fn field_violations(&self) -> Option<&[FieldViolation]> {
        match self {
            Self::InvalidArgument(violations) | Self::InvalidArgumentBecause { violations, .. } => {
                Some(violations)
            }
            _ => None,
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        match error {
            ApiError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for violation in violations {
                    details.add_bad_request_violation(violation.field, violation.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ApiError::InvalidArgumentBecause { violations, reason } => {
                let mut details = ErrorDetails::new();
                for violation in violations {
                    details.add_bad_request_violation(violation.field, violation.description);
                }
                details.set_error_info(reason, ERROR_DOMAIN, []);
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ApiError::NotFound(_) => Status::not_found(message),
            ApiError::AlreadyExists { reason, .. } => match reason {
                Some(reason) => Status::with_error_details(
                    Code::AlreadyExists,
                    message,
                    ErrorDetails::with_error_info(reason, ERROR_DOMAIN, []),
                ),
                None => Status::already_exists(message),
            },
            ApiError::Unauthenticated => Status::unauthenticated(message),
            ApiError::PermissionDenied(_) => Status::permission_denied(message),
            ApiError::FailedPrecondition { reason, .. } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(reason, ERROR_DOMAIN, []),
            ),
            ApiError::Aborted { reason, .. } => {
                // The call it collided with is still running: worth retrying shortly.
                let mut details = ErrorDetails::new();
                details
                    .set_error_info(reason, ERROR_DOMAIN, [])
                    .set_retry_info(Some(Duration::from_secs(1)));
                Status::with_error_details(Code::Aborted, message, details)
            }
            ApiError::ResourceExhausted { retry_after, .. } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
            // The database is briefly out of reach: the health probe looks every 2 s.
            ApiError::Unavailable => Status::with_error_details(
                Code::Unavailable,
                message,
                ErrorDetails::with_retry_info(Some(UNAVAILABLE_RETRY_AFTER)),
            ),
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                Status::internal(message)
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    /// Named constraints are client errors; a pool timeout means the database is struggling;
    /// anything else is ours.
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
                tracing::warn!(error = %error, "database unavailable");
                Self::Unavailable
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let (reason, message) = match db.constraint() {
                    Some("users_username_key") => (
                        Some("ERROR_REASON_USER_ALREADY_EXISTS"),
                        "username already taken",
                    ),
                    Some("users_phone_key") => (
                        Some("ERROR_REASON_USER_ALREADY_EXISTS"),
                        "phone number already used",
                    ),
                    _ => (None, "already exists"),
                };
                Self::AlreadyExists {
                    reason,
                    message: message.to_owned(),
                }
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Self::NotFound("referenced object")
            }
            _ => Self::Internal(error.into()),
        }
    }
}

impl From<crate::idempotency::IdempotencyError> for ApiError {
    fn from(error: crate::idempotency::IdempotencyError) -> Self {
        use crate::idempotency::IdempotencyError;
        let message = error.to_string();
        match error {
            IdempotencyError::Mismatch => Self::FailedPrecondition {
                reason: "ERROR_REASON_REQUEST_ID_REUSED",
                message,
            },
            IdempotencyError::InProgress => Self::Aborted {
                reason: "ERROR_REASON_REQUEST_IN_PROGRESS",
                message,
            },
            IdempotencyError::Database(cause) => Self::from(cause),
        }
    }
}

impl From<crate::ratelimit::Limited> for ApiError {
    fn from(limited: crate::ratelimit::Limited) -> Self {
        Self::ResourceExhausted {
            message: limited.message(),
            retry_after: limited.wait,
        }
    }
}

/// The ErrorReason (common.proto) a domain error is reported with, for errors that apps explain
/// in their own words. The mapping lives here, at the edge: the domain knows no wire names.
pub trait WireReason {
    fn wire_reason(&self) -> Option<&'static str>;
}

impl WireReason for crate::domain::clock::OccurredAtError {
    fn wire_reason(&self) -> Option<&'static str> {
        use crate::domain::clock::OccurredAtError;
        Some(match self {
            OccurredAtError::InFuture => "ERROR_REASON_OCCURRED_AT_IN_FUTURE",
            OccurredAtError::TooOld { .. } => "ERROR_REASON_OCCURRED_AT_TOO_OLD",
        })
    }
}

impl WireReason for crate::domain::promise::PromisedDateError {
    fn wire_reason(&self) -> Option<&'static str> {
        self.is_in_past()
            .then_some("ERROR_REASON_PROMISE_DATE_IN_PAST")
    }
}

/// Collects field violations so a handler reports every bad field at once.
#[derive(Debug, Default)]
pub struct Violations {
    violations: Vec<FieldViolation>,
    /// The first ErrorReason met, sent as ErrorInfo with the field violations.
    reason: Option<&'static str>,
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations
            .push(FieldViolation::new(field, description));
    }

    /// Like [`Violations::check`], and keeps the error's ErrorReason.
    pub fn check_reasoned<T, E: std::fmt::Display + WireReason>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        if let Err(e) = &result {
            self.reason = self.reason.or(e.wire_reason());
        }
        self.check(field, result)
    }

    /// Records the error of `result` under `field` and returns its value, if any.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    /// Takes the field violations of a parser's error and returns its value, if any.
    pub fn absorb<T>(&mut self, result: Result<T, ApiError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(ApiError::InvalidArgument(violations)) => {
                self.violations.extend(violations);
                None
            }
            Err(ApiError::InvalidArgumentBecause { violations, reason }) => {
                self.violations.extend(violations);
                self.reason = self.reason.or(Some(reason));
                None
            }
            Err(other) => {
                self.add("", other.to_string());
                None
            }
        }
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        match (self.violations.is_empty(), self.reason) {
            (true, _) => Ok(()),
            (false, None) => Err(ApiError::InvalidArgument(self.violations)),
            (false, Some(reason)) => Err(ApiError::InvalidArgumentBecause {
                violations: self.violations,
                reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_each_field() {
        let mut violations = Violations::new();
        violations.add("user.username", "must not be empty");
        violations.add("user.phone", "must be an E.164 number");
        let status = Status::from(violations.into_result().unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument);
        let fields: Vec<String> = status
            .get_details_bad_request()
            .expect("bad request details")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["user.username", "user.phone"]);
    }

    #[test]
    fn invalid_because_carries_the_reason() {
        let status = Status::from(ApiError::invalid_because(
            "promise.promised_date",
            "is in the past",
            "ERROR_REASON_PROMISE_DATE_IN_PAST",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.get_details_error_info().expect("reason").reason,
            "ERROR_REASON_PROMISE_DATE_IN_PAST"
        );
        assert_eq!(
            status
                .get_details_bad_request()
                .expect("field")
                .field_violations[0]
                .field,
            "promise.promised_date"
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status = Status::from(ApiError::internal(anyhow::anyhow!("secret detail")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }

    #[test]
    fn idempotency_errors_map_to_the_documented_statuses() {
        use crate::idempotency::IdempotencyError;
        let reused = Status::from(ApiError::from(IdempotencyError::Mismatch));
        assert_eq!(reused.code(), Code::FailedPrecondition);
        let info = reused.get_details_error_info().expect("error info");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("ERROR_REASON_REQUEST_ID_REUSED", "akig")
        );
        let running = Status::from(ApiError::from(IdempotencyError::InProgress));
        assert_eq!(running.code(), Code::Aborted);
        assert_eq!(
            running.get_details_error_info().expect("error info").reason,
            "ERROR_REASON_REQUEST_IN_PROGRESS"
        );
        assert!(running.get_details_retry_info().is_some());
        let broken = Status::from(ApiError::from(IdempotencyError::Database(
            sqlx::Error::Protocol("secret detail".into()),
        )));
        assert_eq!(broken.code(), Code::Internal);
        assert!(!broken.message().contains("secret"));
        let down = Status::from(ApiError::from(IdempotencyError::Database(
            sqlx::Error::PoolTimedOut,
        )));
        assert_eq!(down.code(), Code::Unavailable);
    }

    #[test]
    fn resource_exhausted_carries_retry_info() {
        let status = Status::from(ApiError::ResourceExhausted {
            message: "too many attempts".into(),
            retry_after: Duration::from_secs(30),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        let retry = status.get_details_retry_info().expect("retry info");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(30)));
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let status = Status::from(ApiError::Unavailable);
        assert_eq!(status.code(), Code::Unavailable);
        let retry = status.get_details_retry_info().expect("retry info");
        assert_eq!(retry.retry_delay, Some(UNAVAILABLE_RETRY_AFTER));
    }
}
