//! What the collections' use cases' errors mean on the wire: each [`AppError`] becomes one
//! [`ApiError`] (then one `tonic::Status`), with its ErrorReason from the proto enum, here and
//! nowhere else.
//!
//! Decisions:
//! - A store error inside an [`AppError`] is mapped where every [`StoreError`](crate::store::StoreError) is
//!   (`api::error`): a database error means the same whichever service meets it.

use crate::api::error::ApiError;
use crate::app::AppError;
use crate::proto::v1::ErrorReason;

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        let message = error.to_string();
        match error {
            AppError::NotFound(what) => Self::NotFound(what),
            AppError::OutOfScope(message) => Self::out_of_scope(message),
            AppError::NotAllowed(message) => Self::PermissionDenied {
                reason: Some(ErrorReason::PermissionMissing),
                message: message.to_owned(),
            },
            AppError::Invalid { field, message } => Self::invalid(field, message),
            AppError::MissionMismatch(mismatch) => Self::invalid_with_reason(
                "mission_id",
                ErrorReason::MissionMismatch,
                mismatch.to_string(),
            ),
            AppError::TenantInactive => {
                Self::failed_precondition(ErrorReason::TenantInactive, message)
            }
            AppError::GenerationRunning => {
                Self::aborted(ErrorReason::MissionGenerationRunning, message)
            }
            AppError::MissionTransition(_) => {
                Self::failed_precondition(ErrorReason::MissionTransitionInvalid, message)
            }
            AppError::MissionAlreadyStarted(_) => {
                Self::failed_precondition(ErrorReason::MissionAlreadyStarted, message)
            }
            AppError::PromiseNotPending(_) => {
                Self::failed_precondition(ErrorReason::PromiseNotPending, message)
            }
            AppError::AlertNotOpen(_) => {
                Self::failed_precondition(ErrorReason::AlertNotOpen, message)
            }
            AppError::OperatorReferenceDuplicate(_) => {
                Self::already_exists(ErrorReason::OperatorReferenceDuplicate, message)
            }
            AppError::PaymentAlreadyReversed => {
                Self::failed_precondition(ErrorReason::PaymentAlreadyReversed, message)
            }
            AppError::PaymentCreditUsed { .. } => {
                Self::failed_precondition(ErrorReason::PaymentCreditUsed, message)
            }
            // A request_id still taken after the run once more is a reuse by another request.
            AppError::RequestIdReused | AppError::RequestIdTaken => Self::failed_precondition(
                ErrorReason::RequestIdReused,
                AppError::RequestIdReused.to_string(),
            ),
            AppError::Store(error) => error.into(),
            AppError::Internal(cause) => Self::Internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};
    use tonic_types::StatusExt;

    use super::*;
    use crate::domain::{Gnf, MissionMismatch, PaymentMethod, PromiseStatus};
    use crate::store::StoreError;

    fn status(error: AppError) -> Status {
        Status::from(ApiError::from(error))
    }

    fn reason(status: &Status) -> String {
        status
            .get_details_error_info()
            .map(|info| info.reason)
            .unwrap_or_default()
    }

    #[test]
    fn app_errors_map_to_their_codes_and_reasons() {
        let cases = [
            (AppError::NotFound("tenant"), Code::NotFound, ""),
            (
                AppError::OutOfScope("this tenant is outside your sites"),
                Code::PermissionDenied,
                "ERROR_REASON_OUT_OF_SCOPE",
            ),
            (
                AppError::NotAllowed("only an admin may record a call or visit for another agent"),
                Code::PermissionDenied,
                "ERROR_REASON_PERMISSION_MISSING",
            ),
            (
                AppError::invalid("visit_id", "is a call, not a visit"),
                Code::InvalidArgument,
                "",
            ),
            (
                AppError::MissionMismatch(MissionMismatch),
                Code::InvalidArgument,
                "ERROR_REASON_MISSION_MISMATCH",
            ),
            (
                AppError::TenantInactive,
                Code::FailedPrecondition,
                "ERROR_REASON_TENANT_INACTIVE",
            ),
            (
                AppError::PromiseNotPending(PromiseStatus::Kept),
                Code::FailedPrecondition,
                "ERROR_REASON_PROMISE_NOT_PENDING",
            ),
            (
                AppError::AlertNotOpen(crate::domain::alerts::AlertState::Resolved),
                Code::FailedPrecondition,
                "ERROR_REASON_ALERT_NOT_OPEN",
            ),
            (
                AppError::OperatorReferenceDuplicate(PaymentMethod::OrangeMoney),
                Code::AlreadyExists,
                "ERROR_REASON_OPERATOR_REFERENCE_DUPLICATE",
            ),
            (
                AppError::PaymentAlreadyReversed,
                Code::FailedPrecondition,
                "ERROR_REASON_PAYMENT_ALREADY_REVERSED",
            ),
            (
                AppError::PaymentCreditUsed {
                    credit: Gnf::new(10),
                    missing: Gnf::new(5),
                },
                Code::FailedPrecondition,
                "ERROR_REASON_PAYMENT_CREDIT_USED",
            ),
            (
                AppError::RequestIdReused,
                Code::FailedPrecondition,
                "ERROR_REASON_REQUEST_ID_REUSED",
            ),
            (
                AppError::Store(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
                Code::Unavailable,
                "",
            ),
            (
                AppError::Store(StoreError::Other(sqlx::Error::RowNotFound)),
                Code::Internal,
                "",
            ),
        ];
        for (error, code, wanted) in cases {
            let shown = format!("{error:?}");
            let status = status(error);
            assert_eq!(status.code(), code, "{shown}");
            assert_eq!(reason(&status), wanted, "{shown}");
        }
        let status = status(AppError::PromiseNotPending(PromiseStatus::Broken));
        assert_eq!(status.message(), "the promise is broken, not pending");
        let status = status_of_mismatch();
        assert_eq!(
            status
                .get_details_bad_request()
                .expect("field")
                .field_violations[0]
                .field,
            "mission_id"
        );
    }

    fn status_of_mismatch() -> Status {
        status(AppError::MissionMismatch(MissionMismatch))
    }
}
