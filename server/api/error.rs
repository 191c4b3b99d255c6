//! The API layer's one error type and its one mapping to `tonic::Status`. Handlers return
//! `Result<_, ApiError>`; clients get a standard code, a message, and google.rpc details
//! (BadRequest field violations, ErrorInfo reason, RetryInfo) they can localise.
//!
//! Decisions:
//! - ErrorInfo reasons are values of the generated `akig.v1.ErrorReason` enum (common.proto),
//!   named on the wire by `as_str_name()`, so a reason the proto does not know does not
//!   compile. Build errors with the typed constructors ([`ApiError::invalid_with_reason`],
//!   [`ApiError::failed_precondition`], [`ApiError::permission_missing`], ...).
//! - PERMISSION_DENIED says which of the two kinds it is: the role lacks the RPC's permission
//!   (`ERROR_REASON_PERMISSION_MISSING`) or the object is outside the caller's scope
//!   (`ERROR_REASON_OUT_OF_SCOPE`); a disabled account logging in gets
//!   `ERROR_REASON_ACCOUNT_DISABLED`.
//! - The database out of reach (connection lost or refused, PostgreSQL shutting down, starting
//!   or crash-restarting, pool timed out or closed) is UNAVAILABLE with RetryInfo, never
//!   INTERNAL, wherever the `sqlx::Error` comes from: such a call rolled back and is safe to
//!   retry with its request_id.
//! - What an error echoes is bounded where the `Status` is built: the message to
//!   [`MESSAGE_MAX_BYTES`], each field path to [`FIELD_MAX_BYTES`], each description to
//!   [`DESCRIPTION_MAX_BYTES`], at most [`VIOLATIONS_MAX`] violations. grpc-message and the
//!   details travel in HTTP/2 headers: an error must not outgrow them whatever the client sent.

use std::borrow::Cow;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::auth::rbac::Permission;
use crate::proto::v1 as pb;
use crate::store::StoreError;
use crate::store::error::is_outage;

/// Domain of our ErrorInfo details.
pub const ERROR_DOMAIN: &str = "akig";

/// The RetryInfo of UNAVAILABLE.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The RetryInfo of ABORTED: the call it collided with is still running.
pub const ABORTED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Longest grpc-message sent, in bytes; a longer one is cut and ends with `...`.
pub const MESSAGE_MAX_BYTES: usize = 1024;

/// Longest field path of a BadRequest violation, in bytes.
pub const FIELD_MAX_BYTES: usize = 128;

/// Longest description of a BadRequest violation, in bytes.
pub const DESCRIPTION_MAX_BYTES: usize = 256;

/// Most field violations sent in BadRequest; the message says how many more there were.
pub const VIOLATIONS_MAX: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more request fields are invalid; each violation names its field path.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// A field is invalid for a reason apps explain in their own words (an ErrorReason name),
    /// e.g. a promised date in the past. Build it with [`ApiError::invalid_with_reason`].
    #[error("invalid request: {}", describe(.violations))]
    InvalidArgumentBecause {
        violations: Vec<FieldViolation>,
        reason: pb::ErrorReason,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// What the request would create exists already; `reason` is an ErrorReason name when
    /// apps have one to explain it ([`ApiError::already_exists`]).
    #[error("{message}")]
    AlreadyExists {
        reason: Option<pb::ErrorReason>,
        message: String,
    },
    /// The caller's credentials are missing, invalid or revoked. The message is generic on
    /// purpose: which check failed is logged, never told to the client.
    #[error("authentication required")]
    Unauthenticated,
    /// The credentials were refused for a reason the app acts on: log in again
    /// (`INVALID_CREDENTIALS`, `TOKEN_INVALID`, `REFRESH_TOKEN_REUSED`) or refresh
    /// (`TOKEN_EXPIRED`). Built by [`ApiError::unauthenticated`].
    #[error("{}", unauthenticated_message(*.0))]
    UnauthenticatedBecause(pb::ErrorReason),
    /// The caller may not do this: `reason` tells a missing permission from an object outside
    /// the caller's scope or a disabled account ([`ApiError::permission_missing`],
    /// [`ApiError::out_of_scope`], [`ApiError::account_disabled`]).
    #[error("{message}")]
    PermissionDenied {
        reason: Option<pb::ErrorReason>,
        message: String,
    },
    /// The request is valid but the system's state forbids it; `reason` is an ErrorReason name
    /// ([`ApiError::failed_precondition`]).
    #[error("{message}")]
    FailedPrecondition {
        reason: pb::ErrorReason,
        message: String,
    },
    /// A concurrent call got in the way; retried after [`ABORTED_RETRY_AFTER`]
    /// ([`ApiError::aborted`]).
    #[error("{message}")]
    Aborted {
        reason: pb::ErrorReason,
        message: String,
    },
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        retry_after: Duration,
    },
    /// Too many failed sign-ins for the account or the address: RESOURCE_EXHAUSTED with
    /// `ERROR_REASON_ACCOUNT_LOCKED` and when to retry.
    #[error("too many failed sign-ins; retry later")]
    AccountLocked { retry_after: Duration },
    #[error("service temporarily unavailable")]
    Unavailable,
    /// A bug or an unexpected failure: logged with its cause, answered with a generic message.
    /// A database outage found in its cause chain answers UNAVAILABLE instead.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn describe(violations: &[FieldViolation]) -> String {
    let mut text = violations
        .iter()
        .take(VIOLATIONS_MAX)
        .map(|v| {
            format!(
                "{}: {}",
                bounded(&v.field, FIELD_MAX_BYTES),
                bounded(&v.description, DESCRIPTION_MAX_BYTES)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(more) = violations
        .len()
        .checked_sub(VIOLATIONS_MAX)
        .filter(|n| *n > 0)
    {
        text.push_str(&format!("; and {more} more"));
    }
    text
}

fn unauthenticated_message(reason: pb::ErrorReason) -> &'static str {
    match reason {
        pb::ErrorReason::InvalidCredentials => "wrong username, phone or password",
        pb::ErrorReason::TokenExpired => "the token has expired",
        pb::ErrorReason::TokenMissing => "no bearer token: send `authorization: Bearer <token>`",
        pb::ErrorReason::RefreshTokenReused => {
            "this refresh token was already used: the session is closed, log in again"
        }
        _ => "authentication required",
    }
}

/// `text` cut to at most `max` bytes on a character boundary, ending with `...` when cut.
fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    const ELLIPSIS: &str = "...";
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{ELLIPSIS}", &text[..end]))
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// INVALID_ARGUMENT on `field` with an ErrorReason, e.g.
    /// `invalid_with_reason("page_token", pb::ErrorReason::PageTokenInvalid, "not a token of this list")`.
    pub fn invalid_with_reason(
        field: impl Into<String>,
        reason: pb::ErrorReason,
        description: impl Into<String>,
    ) -> Self {
        Self::InvalidArgumentBecause {
            violations: vec![FieldViolation::new(field, description)],
            reason,
        }
    }

    /// ALREADY_EXISTS with an ErrorReason.
    pub fn already_exists(reason: pb::ErrorReason, message: impl Into<String>) -> Self {
        Self::AlreadyExists {
            reason: Some(reason),
            message: message.into(),
        }
    }

    /// FAILED_PRECONDITION with an ErrorReason.
    pub fn failed_precondition(reason: pb::ErrorReason, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    /// ABORTED with an ErrorReason and RetryInfo.
    pub fn aborted(reason: pb::ErrorReason, message: impl Into<String>) -> Self {
        Self::Aborted {
            reason,
            message: message.into(),
        }
    }

    /// UNAUTHENTICATED with an ErrorReason, e.g. `TOKEN_EXPIRED` (call Refresh) or
    /// `REFRESH_TOKEN_REUSED` (log in again). The message is fixed per reason.
    pub fn unauthenticated(reason: pb::ErrorReason) -> Self {
        Self::UnauthenticatedBecause(reason)
    }

    /// PERMISSION_DENIED (`ERROR_REASON_PERMISSION_MISSING`): the caller's role lacks
    /// `permission`, which the message names.
    pub fn permission_missing(permission: Permission) -> Self {
        Self::PermissionDenied {
            reason: Some(pb::ErrorReason::PermissionMissing),
            message: format!("missing permission {}", permission.as_str()),
        }
    }

    /// PERMISSION_DENIED (`ERROR_REASON_OUT_OF_SCOPE`): the object is outside the caller's
    /// scope, e.g. `out_of_scope("this tenant is outside your sites")`.
    pub fn out_of_scope(message: impl Into<String>) -> Self {
        Self::PermissionDenied {
            reason: Some(pb::ErrorReason::OutOfScope),
            message: message.into(),
        }
    }

    /// PERMISSION_DENIED (`ERROR_REASON_ACCOUNT_DISABLED`): the account is disabled.
    pub fn account_disabled() -> Self {
        Self::PermissionDenied {
            reason: Some(pb::ErrorReason::AccountDisabled),
            message: "this account is disabled".to_owned(),
        }
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

    /// An [`ApiError::Internal`] whose cause is a database outage becomes
    /// [`ApiError::Unavailable`]: errors wrapped on their way up (a store's own error type, an
    /// `anyhow` context) answer what the database did, not INTERNAL.
    fn outage_revealed(self) -> Self {
        match self {
            Self::Internal(cause)
                if cause
                    .chain()
                    .filter_map(|e| e.downcast_ref::<sqlx::Error>())
                    .any(is_outage) =>
            {
                tracing::warn!(error = %cause, "database unavailable");
                Self::Unavailable
            }
            other => other,
        }
    }
}

/// BadRequest details of `violations`, bounded, with ErrorInfo when there is a reason.
fn bad_request(violations: Vec<FieldViolation>, reason: Option<pb::ErrorReason>) -> ErrorDetails {
    let mut details = ErrorDetails::new();
    for violation in violations.into_iter().take(VIOLATIONS_MAX) {
        details.add_bad_request_violation(
            bounded(&violation.field, FIELD_MAX_BYTES),
            bounded(&violation.description, DESCRIPTION_MAX_BYTES),
        );
    }
    if let Some(reason) = reason {
        details.set_error_info(reason.as_str_name(), ERROR_DOMAIN, []);
    }
    details
}

fn error_info(reason: pb::ErrorReason) -> ErrorDetails {
    ErrorDetails::with_error_info(reason.as_str_name(), ERROR_DOMAIN, [])
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let error = error.outage_revealed();
        let message = bounded(&error.to_string(), MESSAGE_MAX_BYTES).into_owned();
        let (code, details) = match error {
            ApiError::InvalidArgument(violations) => {
                (Code::InvalidArgument, Some(bad_request(violations, None)))
            }
            ApiError::InvalidArgumentBecause { violations, reason } => (
                Code::InvalidArgument,
                Some(bad_request(violations, Some(reason))),
            ),
            ApiError::NotFound(_) => (Code::NotFound, None),
            ApiError::AlreadyExists { reason, .. } => (Code::AlreadyExists, reason.map(error_info)),
            ApiError::Unauthenticated => (Code::Unauthenticated, None),
            ApiError::UnauthenticatedBecause(reason) => {
                (Code::Unauthenticated, Some(error_info(reason)))
            }
            ApiError::PermissionDenied { reason, .. } => {
                (Code::PermissionDenied, reason.map(error_info))
            }
            ApiError::FailedPrecondition { reason, .. } => {
                (Code::FailedPrecondition, Some(error_info(reason)))
            }
            ApiError::Aborted { reason, .. } => {
                let mut details = error_info(reason);
                details.set_retry_info(Some(ABORTED_RETRY_AFTER));
                (Code::Aborted, Some(details))
            }
            ApiError::ResourceExhausted { retry_after, .. } => (
                Code::ResourceExhausted,
                Some(ErrorDetails::with_retry_info(Some(retry_after))),
            ),
            ApiError::AccountLocked { retry_after } => {
                let mut details = error_info(pb::ErrorReason::AccountLocked);
                details.set_retry_info(Some(retry_after));
                (Code::ResourceExhausted, Some(details))
            }
            // The database is briefly out of reach: the health probe looks every 2 s.
            ApiError::Unavailable => (
                Code::Unavailable,
                Some(ErrorDetails::with_retry_info(Some(UNAVAILABLE_RETRY_AFTER))),
            ),
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                (Code::Internal, None)
            }
        };
        match details {
            Some(details) => Status::with_error_details(code, message, details),
            None => Status::new(code, message),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    /// What the store makes of the error ([`StoreError`]'s `From<sqlx::Error>`), then its
    /// status: one reading of a database error, wherever it comes from.
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(error).into()
    }
}

impl From<StoreError> for ApiError {
    /// A named constraint that reached this point was not handled by its use case: it is
    /// ALREADY_EXISTS without a reason, as any other unique violation. A missing reference is
    /// NOT_FOUND "referenced object"; a database out of reach UNAVAILABLE (with RetryInfo);
    /// anything else INTERNAL, logged with its cause.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(_) | StoreError::Duplicate(_) => Self::AlreadyExists {
                reason: None,
                message: "already exists".to_owned(),
            },
            StoreError::MissingReference(_) => Self::NotFound("referenced object"),
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::Unavailable
            }
            StoreError::Other(cause) => Self::internal(cause),
        }
    }
}

impl From<crate::idempotency::IdempotencyError> for ApiError {
    fn from(error: crate::idempotency::IdempotencyError) -> Self {
        use crate::idempotency::IdempotencyError;
        let message = error.to_string();
        match error {
            IdempotencyError::Mismatch => {
                Self::failed_precondition(pb::ErrorReason::RequestIdReused, message)
            }
            IdempotencyError::InProgress => {
                Self::aborted(pb::ErrorReason::RequestInProgress, message)
            }
            IdempotencyError::Database(cause) => Self::from(cause),
        }
    }
}

impl From<crate::auth::caller::CallerError> for ApiError {
    fn from(error: crate::auth::caller::CallerError) -> Self {
        use crate::auth::caller::CallerError;
        match error {
            CallerError::Unauthenticated => Self::Unauthenticated,
            CallerError::PermissionMissing(permission) => Self::permission_missing(permission),
        }
    }
}

impl From<crate::auth::caller::CallerError> for Status {
    fn from(error: crate::auth::caller::CallerError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<crate::auth::tokens::TokenError> for ApiError {
    /// UNAUTHENTICATED: `TOKEN_EXPIRED` for a genuine token past its expiry (the app
    /// refreshes it), `TOKEN_INVALID` for anything else (the app logs in again).
    fn from(error: crate::auth::tokens::TokenError) -> Self {
        use crate::auth::tokens::TokenError;
        Self::unauthenticated(match error {
            TokenError::Expired => pb::ErrorReason::TokenExpired,
            _ => pb::ErrorReason::TokenInvalid,
        })
    }
}

impl From<crate::limits::Limited> for ApiError {
    fn from(limited: crate::limits::Limited) -> Self {
        Self::ResourceExhausted {
            message: limited.message(),
            retry_after: limited.wait,
        }
    }
}

/// The ErrorReason (common.proto) a domain error is reported with, for errors that apps explain
/// in their own words. The mapping lives here, at the edge: the domain knows no wire names.
pub trait WireReason {
    /// The reason, if the error has one apps explain.
    fn wire_reason(&self) -> Option<pb::ErrorReason>;
}

impl WireReason for crate::domain::clock::OccurredAtError {
    fn wire_reason(&self) -> Option<pb::ErrorReason> {
        use crate::domain::clock::OccurredAtError;
        let reason = match self {
            OccurredAtError::InFuture => pb::ErrorReason::OccurredAtInFuture,
            OccurredAtError::TooOld { .. } => pb::ErrorReason::OccurredAtTooOld,
        };
        Some(reason)
    }
}

impl WireReason for crate::domain::promise::PromisedDateError {
    fn wire_reason(&self) -> Option<pb::ErrorReason> {
        self.is_in_past()
            .then_some(pb::ErrorReason::PromiseDateInPast)
    }
}

impl WireReason for crate::auth::password::PasswordPolicyError {
    fn wire_reason(&self) -> Option<pb::ErrorReason> {
        Some(pb::ErrorReason::PasswordTooWeak)
    }
}

/// Collects field violations so a handler reports every bad field at once.
#[derive(Debug, Default)]
pub struct Violations {
    violations: Vec<FieldViolation>,
    /// The first ErrorReason met, sent as ErrorInfo with the field violations.
    reason: Option<pb::ErrorReason>,
}

impl Violations {
    /// No violation so far.
    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

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
    use crate::testing::TestDb;
    use std::borrow::Cow;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    fn reason(status: &Status) -> String {
        status.get_details_error_info().expect("error info").reason
    }

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
    fn invalid_with_reason_carries_the_reason() {
        let status = Status::from(ApiError::invalid_with_reason(
            "promise.promised_date",
            pb::ErrorReason::PromiseDateInPast,
            "is in the past",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(reason(&status), "ERROR_REASON_PROMISE_DATE_IN_PAST");
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
    fn typed_constructors_send_the_proto_reason_names() {
        let cases = [
            (
                ApiError::failed_precondition(pb::ErrorReason::SelfLockout, "no"),
                Code::FailedPrecondition,
                "ERROR_REASON_SELF_LOCKOUT",
            ),
            (
                ApiError::already_exists(pb::ErrorReason::UserAlreadyExists, "taken"),
                Code::AlreadyExists,
                "ERROR_REASON_USER_ALREADY_EXISTS",
            ),
            (
                ApiError::aborted(pb::ErrorReason::RequestInProgress, "wait"),
                Code::Aborted,
                "ERROR_REASON_REQUEST_IN_PROGRESS",
            ),
            (
                ApiError::unauthenticated(pb::ErrorReason::RefreshTokenReused),
                Code::Unauthenticated,
                "ERROR_REASON_REFRESH_TOKEN_REUSED",
            ),
            (
                ApiError::account_disabled(),
                Code::PermissionDenied,
                "ERROR_REASON_ACCOUNT_DISABLED",
            ),
            (
                ApiError::AccountLocked {
                    retry_after: Duration::from_secs(30),
                },
                Code::ResourceExhausted,
                "ERROR_REASON_ACCOUNT_LOCKED",
            ),
        ];
        for (error, code, name) in cases {
            let status = Status::from(error);
            assert_eq!((status.code(), reason(&status).as_str()), (code, name));
            assert_eq!(
                status.get_details_error_info().expect("info").domain,
                ERROR_DOMAIN
            );
        }
    }

    #[test]
    fn refused_access_tokens_say_whether_to_refresh() {
        use crate::auth::tokens::TokenError;
        let expired = Status::from(ApiError::from(TokenError::Expired));
        assert_eq!(expired.code(), Code::Unauthenticated);
        assert_eq!(reason(&expired), "ERROR_REASON_TOKEN_EXPIRED");
        for other in [TokenError::UnknownKid, TokenError::Invalid("x".into())] {
            let status = Status::from(ApiError::from(other));
            assert_eq!(status.code(), Code::Unauthenticated);
            assert_eq!(reason(&status), "ERROR_REASON_TOKEN_INVALID");
        }
    }

    #[test]
    fn permission_denied_says_which_kind() {
        let missing = Status::from(ApiError::permission_missing(Permission::UsersCreate));
        assert_eq!(missing.code(), Code::PermissionDenied);
        assert_eq!(reason(&missing), "ERROR_REASON_PERMISSION_MISSING");
        assert!(missing.message().contains("users.create"));

        let scope = Status::from(ApiError::out_of_scope("this user is outside your scope"));
        assert_eq!(scope.code(), Code::PermissionDenied);
        assert_eq!(reason(&scope), "ERROR_REASON_OUT_OF_SCOPE");
        assert_eq!(scope.message(), "this user is outside your scope");
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
        assert_eq!(reason(&running), "ERROR_REASON_REQUEST_IN_PROGRESS");
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

    /// A database error with a given SQLSTATE, as PostgreSQL would send it.
    #[derive(Debug)]
    struct FakeDbError {
        code: &'static str,
        kind: ErrorKind,
    }

    impl std::fmt::Display for FakeDbError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.code)
        }
    }

    impl std::error::Error for FakeDbError {}

    impl DatabaseError for FakeDbError {
        fn message(&self) -> &str {
            "terminating connection due to administrator command"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.code))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            match self.kind {
                ErrorKind::UniqueViolation => ErrorKind::UniqueViolation,
                ErrorKind::ForeignKeyViolation => ErrorKind::ForeignKeyViolation,
                _ => ErrorKind::Other,
            }
        }
    }

    fn db_error(code: &'static str, kind: ErrorKind) -> sqlx::Error {
        sqlx::Error::Database(Box::new(FakeDbError { code, kind }))
    }

    fn code_of(error: sqlx::Error) -> Code {
        Status::from(ApiError::from(error)).code()
    }

    #[test]
    fn database_outages_are_unavailable_with_retry_info() {
        let io = |kind| sqlx::Error::Io(std::io::Error::from(kind));
        let outages = [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            io(std::io::ErrorKind::ConnectionRefused),
            io(std::io::ErrorKind::ConnectionReset),
            io(std::io::ErrorKind::UnexpectedEof),
            io(std::io::ErrorKind::BrokenPipe),
            db_error("57P01", ErrorKind::Other), // admin_shutdown
            db_error("57P02", ErrorKind::Other), // crash_shutdown
            db_error("57P03", ErrorKind::Other), // cannot_connect_now
            db_error("08006", ErrorKind::Other), // connection_failure
            db_error("08003", ErrorKind::Other), // connection_does_not_exist
            db_error("53300", ErrorKind::Other), // too_many_connections
        ];
        for error in outages {
            let shown = error.to_string();
            let status = Status::from(ApiError::from(error));
            assert_eq!(status.code(), Code::Unavailable, "{shown}");
            assert_eq!(
                status
                    .get_details_retry_info()
                    .expect("retry info")
                    .retry_delay,
                Some(UNAVAILABLE_RETRY_AFTER),
                "{shown}"
            );
        }
    }

    #[test]
    fn statement_errors_are_not_outages() {
        assert_eq!(
            code_of(db_error("23505", ErrorKind::UniqueViolation)),
            Code::AlreadyExists
        );
        assert_eq!(
            code_of(db_error("23503", ErrorKind::ForeignKeyViolation)),
            Code::NotFound
        );
        for other in [
            db_error("57014", ErrorKind::Other), // query_canceled
            db_error("22P02", ErrorKind::Other), // invalid_text_representation
            db_error("42P01", ErrorKind::Other), // undefined_table
            sqlx::Error::RowNotFound,
            sqlx::Error::Protocol("unexpected message".into()),
        ] {
            assert_eq!(code_of(other), Code::Internal);
        }
    }

    #[test]
    fn a_wrapped_outage_is_unavailable_too() {
        let wrapped = anyhow::Error::new(db_error("57P01", ErrorKind::Other))
            .context("recording the payment");
        assert_eq!(
            Status::from(ApiError::internal(wrapped)).code(),
            Code::Unavailable
        );
        let store = crate::idempotency::IdempotencyError::Database(sqlx::Error::PoolClosed);
        assert_eq!(
            Status::from(ApiError::internal(store)).code(),
            Code::Unavailable
        );
    }

    #[tokio::test]
    async fn a_terminated_connection_is_unavailable() {
        let db = TestDb::empty().await;
        let pool = db.pool.clone();
        let mut victim = pool.acquire().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *victim)
            .await
            .unwrap();
        // What a restart of PostgreSQL does to every open connection (57P01).
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(killed);
        let gone = async {
            loop {
                let alive: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
                )
                .bind(pid)
                .fetch_one(&pool)
                .await
                .unwrap();
                if !alive {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), gone)
            .await
            .expect("the backend exits");
        let error = sqlx::query("SELECT 1")
            .execute(&mut *victim)
            .await
            .expect_err("the connection was terminated");
        let shown = error.to_string();
        assert_eq!(code_of(error), Code::Unavailable, "{shown}");
        victim.detach();
    }

    #[test]
    fn huge_client_input_is_not_echoed_whole() {
        let path = "a".repeat(20 * 1024);
        let status = Status::from(ApiError::invalid(
            "update_mask",
            format!("{path:?} cannot be changed"),
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().len() <= MESSAGE_MAX_BYTES,
            "{}",
            status.message().len()
        );
        let violation = &status
            .get_details_bad_request()
            .expect("details")
            .field_violations[0];
        assert_eq!(violation.field, "update_mask");
        assert!(violation.description.len() <= DESCRIPTION_MAX_BYTES);
        assert!(violation.description.ends_with("..."));

        let status = Status::from(ApiError::invalid(path.clone(), "unknown field"));
        let violation = &status
            .get_details_bad_request()
            .expect("details")
            .field_violations[0];
        assert!(violation.field.len() <= FIELD_MAX_BYTES);
        assert!(status.message().len() <= MESSAGE_MAX_BYTES);
        // What goes on the wire stays far below HTTP/2 header limits (16 KiB by default).
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).expect("headers");
        let size: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        assert!(size < 4 * 1024, "{size} bytes of headers");
    }

    #[test]
    fn many_violations_are_capped() {
        let mut violations = Violations::new();
        for i in 0..500 {
            violations.add(format!("site_ids[{i}]"), "must be a UUID");
        }
        let status = Status::from(violations.into_result().unwrap_err());
        let sent = status
            .get_details_bad_request()
            .expect("details")
            .field_violations;
        assert_eq!(sent.len(), VIOLATIONS_MAX);
        assert_eq!(sent[0].field, "site_ids[0]");
        assert!(
            status.message().ends_with("and 490 more"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn bounded_cuts_on_a_character_boundary() {
        assert_eq!(bounded("court", 10), "court");
        let cut = bounded("éééééééééé", 9);
        assert!(cut.len() <= 9);
        assert!(cut.ends_with("..."));
        assert_eq!(cut, "ééé...");
    }
}
