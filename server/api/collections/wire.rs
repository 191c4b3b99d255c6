//! The collections vocabulary on the wire: domain enums and values to and from their protobuf
//! counterparts. The domain knows no protobuf; this is the one place that maps them.
//!
//! Decisions:
//! - A proto enum field a request must set answers INVALID_ARGUMENT "must be set" for
//!   UNSPECIFIED (0) and "is not a known value" for a number this server does not know.
//! - A domain value always has a proto value; UNSPECIFIED is only sent for "none" (an amount
//!   that is not overdue has no aging bucket).

use crate::domain::{
    Bucket, InteractionKind, InteractionOutcome, LatLng, LatLngError, LocationCheck, PaymentKind,
    PaymentMethod, PromiseEventKind, PromiseStatus,
};
use crate::proto::v1 as pb;

/// A proto enum value that is unset or unknown to this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnumValueError {
    #[error("must be set")]
    Unspecified,
    #[error("is not a known value")]
    Unknown,
}

/// Reads a request's proto enum number with `map`, which answers `None` for UNSPECIFIED.
fn known<P: TryFrom<i32>, T>(
    value: i32,
    map: impl FnOnce(P) -> Option<T>,
) -> Result<T, EnumValueError> {
    let proto = P::try_from(value).map_err(|_| EnumValueError::Unknown)?;
    map(proto).ok_or(EnumValueError::Unspecified)
}

/// A request's `outcome`.
pub fn outcome(value: i32) -> Result<InteractionOutcome, EnumValueError> {
    use pb::InteractionOutcome as P;
    known(value, |proto| match proto {
        P::Unspecified => None,
        P::Other => Some(InteractionOutcome::Other),
        P::NoAnswer => Some(InteractionOutcome::NoAnswer),
        P::WrongNumber => Some(InteractionOutcome::WrongNumber),
        P::PromiseMade => Some(InteractionOutcome::PromiseMade),
        P::Paid => Some(InteractionOutcome::Paid),
        P::Refused => Some(InteractionOutcome::Refused),
        P::Absent => Some(InteractionOutcome::Absent),
        P::TenantMoved => Some(InteractionOutcome::TenantMoved),
        P::Dispute => Some(InteractionOutcome::Dispute),
    })
}

/// A request's payment `method` (as a filter, the caller takes 0 as "any" first).
pub fn payment_method(value: i32) -> Result<PaymentMethod, EnumValueError> {
    use pb::PaymentMethod as P;
    known(value, |proto| match proto {
        P::Unspecified => None,
        P::Cash => Some(PaymentMethod::Cash),
        P::OrangeMoney => Some(PaymentMethod::OrangeMoney),
        P::MtnMomo => Some(PaymentMethod::MtnMomo),
        P::BankTransfer => Some(PaymentMethod::BankTransfer),
    })
}

/// A promise status of a request (filters, UpdatePromise).
pub fn promise_status(value: i32) -> Result<PromiseStatus, EnumValueError> {
    use pb::PromiseStatus as P;
    known(value, |proto| match proto {
        P::Unspecified => None,
        P::Pending => Some(PromiseStatus::Pending),
        P::Kept => Some(PromiseStatus::Kept),
        P::PartiallyKept => Some(PromiseStatus::PartiallyKept),
        P::Broken => Some(PromiseStatus::Broken),
        P::Cancelled => Some(PromiseStatus::Cancelled),
    })
}

/// A ledger entry kind of a request (a filter).
pub fn payment_kind(value: i32) -> Result<PaymentKind, EnumValueError> {
    use pb::PaymentKind as P;
    known(value, |proto| match proto {
        P::Unspecified => None,
        P::Payment => Some(PaymentKind::Payment),
        P::Reversal => Some(PaymentKind::Reversal),
    })
}

/// An aging bucket of a request (a filter).
pub fn aging_bucket(value: i32) -> Result<Bucket, EnumValueError> {
    use pb::AgingBucket as P;
    known(value, |proto| match proto {
        P::Unspecified => None,
        P::Days0To30 => Some(Bucket::Days0To30),
        P::Days31To60 => Some(Bucket::Days31To60),
        P::Days61To90 => Some(Bucket::Days61To90),
        P::DaysOver90 => Some(Bucket::Over90),
    })
}

/// A position of a request; the error names the coordinate (`LatLngError::field`).
pub fn lat_lng(position: &pb::LatLng) -> Result<LatLng, LatLngError> {
    LatLng::parse(position.latitude, position.longitude)
}

impl From<LatLng> for pb::LatLng {
    fn from(position: LatLng) -> Self {
        pb::LatLng {
            latitude: position.latitude(),
            longitude: position.longitude(),
        }
    }
}

impl From<PromiseStatus> for pb::PromiseStatus {
    fn from(status: PromiseStatus) -> Self {
        match status {
            PromiseStatus::Pending => pb::PromiseStatus::Pending,
            PromiseStatus::Kept => pb::PromiseStatus::Kept,
            PromiseStatus::PartiallyKept => pb::PromiseStatus::PartiallyKept,
            PromiseStatus::Broken => pb::PromiseStatus::Broken,
            PromiseStatus::Cancelled => pb::PromiseStatus::Cancelled,
        }
    }
}

impl From<PromiseEventKind> for pb::PromiseEventKind {
    fn from(kind: PromiseEventKind) -> Self {
        match kind {
            PromiseEventKind::Rescheduled => pb::PromiseEventKind::Rescheduled,
            PromiseEventKind::Cancelled => pb::PromiseEventKind::Cancelled,
            PromiseEventKind::Kept => pb::PromiseEventKind::Kept,
            PromiseEventKind::PartiallyKept => pb::PromiseEventKind::PartiallyKept,
            PromiseEventKind::Broken => pb::PromiseEventKind::Broken,
        }
    }
}

impl From<InteractionKind> for pb::InteractionKind {
    fn from(kind: InteractionKind) -> Self {
        match kind {
            InteractionKind::Call => pb::InteractionKind::Call,
            InteractionKind::Visit => pb::InteractionKind::Visit,
        }
    }
}

impl From<InteractionOutcome> for pb::InteractionOutcome {
    fn from(outcome: InteractionOutcome) -> Self {
        match outcome {
            InteractionOutcome::NoAnswer => pb::InteractionOutcome::NoAnswer,
            InteractionOutcome::WrongNumber => pb::InteractionOutcome::WrongNumber,
            InteractionOutcome::PromiseMade => pb::InteractionOutcome::PromiseMade,
            InteractionOutcome::Paid => pb::InteractionOutcome::Paid,
            InteractionOutcome::Refused => pb::InteractionOutcome::Refused,
            InteractionOutcome::Absent => pb::InteractionOutcome::Absent,
            InteractionOutcome::TenantMoved => pb::InteractionOutcome::TenantMoved,
            InteractionOutcome::Dispute => pb::InteractionOutcome::Dispute,
            InteractionOutcome::Other => pb::InteractionOutcome::Other,
        }
    }
}

impl From<PaymentMethod> for pb::PaymentMethod {
    fn from(method: PaymentMethod) -> Self {
        match method {
            PaymentMethod::Cash => pb::PaymentMethod::Cash,
            PaymentMethod::OrangeMoney => pb::PaymentMethod::OrangeMoney,
            PaymentMethod::MtnMomo => pb::PaymentMethod::MtnMomo,
            PaymentMethod::BankTransfer => pb::PaymentMethod::BankTransfer,
        }
    }
}

impl From<PaymentKind> for pb::PaymentKind {
    fn from(kind: PaymentKind) -> Self {
        match kind {
            PaymentKind::Payment => pb::PaymentKind::Payment,
            PaymentKind::Reversal => pb::PaymentKind::Reversal,
        }
    }
}

impl From<Bucket> for pb::AgingBucket {
    fn from(bucket: Bucket) -> Self {
        match bucket {
            Bucket::Days0To30 => pb::AgingBucket::Days0To30,
            Bucket::Days31To60 => pb::AgingBucket::Days31To60,
            Bucket::Days61To90 => pb::AgingBucket::Days61To90,
            Bucket::Over90 => pb::AgingBucket::DaysOver90,
        }
    }
}

impl From<LocationCheck> for pb::LocationCheck {
    fn from(check: LocationCheck) -> Self {
        match check {
            LocationCheck::Near => pb::LocationCheck::Near,
            LocationCheck::FarAway => pb::LocationCheck::FarAway,
            LocationCheck::NoFix => pb::LocationCheck::NoFix,
            LocationCheck::NoHomeLocation => pb::LocationCheck::NoHomeLocation,
            LocationCheck::MockLocation => pb::LocationCheck::MockLocation,
            LocationCheck::UnreliableFix => pb::LocationCheck::UnreliableFix,
            LocationCheck::StaleFix => pb::LocationCheck::StaleFix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::views::bucket;

    #[test]
    fn request_enums_round_trip_and_refuse_unset_or_unknown_values() {
        for &outcome_value in InteractionOutcome::ALL {
            let proto = pb::InteractionOutcome::from(outcome_value) as i32;
            assert_eq!(outcome(proto), Ok(outcome_value));
        }
        assert_eq!(outcome(0), Err(EnumValueError::Unspecified));
        assert_eq!(outcome(10), Err(EnumValueError::Unknown));
        assert_eq!(outcome(-1), Err(EnumValueError::Unknown));
        assert_eq!(EnumValueError::Unspecified.to_string(), "must be set");

        for &method in PaymentMethod::ALL {
            assert_eq!(
                payment_method(pb::PaymentMethod::from(method) as i32),
                Ok(method)
            );
        }
        assert_eq!(payment_method(0), Err(EnumValueError::Unspecified));
        assert_eq!(payment_method(5), Err(EnumValueError::Unknown));

        for status in PromiseStatus::ALL {
            assert_eq!(
                promise_status(pb::PromiseStatus::from(status) as i32),
                Ok(status)
            );
        }
        assert_eq!(promise_status(0), Err(EnumValueError::Unspecified));
        assert_eq!(promise_status(99), Err(EnumValueError::Unknown));

        for bucket in Bucket::ALL {
            assert_eq!(
                aging_bucket(pb::AgingBucket::from(bucket) as i32),
                Ok(bucket)
            );
        }
        assert_eq!(aging_bucket(0), Err(EnumValueError::Unspecified));
        assert_eq!(aging_bucket(5), Err(EnumValueError::Unknown));

        for &kind in PaymentKind::ALL {
            assert_eq!(payment_kind(pb::PaymentKind::from(kind) as i32), Ok(kind));
        }
        assert_eq!(payment_kind(0), Err(EnumValueError::Unspecified));
    }

    #[test]
    fn domain_values_map_to_their_proto_values() {
        assert_eq!(
            Bucket::ALL.map(pb::AgingBucket::from),
            [
                pb::AgingBucket::Days0To30,
                pb::AgingBucket::Days31To60,
                pb::AgingBucket::Days61To90,
                pb::AgingBucket::DaysOver90,
            ]
        );
        assert_eq!(bucket(None), pb::AgingBucket::Unspecified);
        assert_eq!(
            pb::InteractionKind::from(InteractionKind::Call),
            pb::InteractionKind::Call
        );
        assert_eq!(
            pb::InteractionKind::from(InteractionKind::Visit),
            pb::InteractionKind::Visit
        );
        assert_eq!(
            pb::LocationCheck::from(LocationCheck::Near),
            pb::LocationCheck::Near
        );
        assert_eq!(
            pb::LocationCheck::from(LocationCheck::FarAway),
            pb::LocationCheck::FarAway
        );
        assert_eq!(
            pb::LocationCheck::from(LocationCheck::NoFix),
            pb::LocationCheck::NoFix
        );
        assert_eq!(
            pb::LocationCheck::from(LocationCheck::NoHomeLocation),
            pb::LocationCheck::NoHomeLocation
        );
        assert_eq!(
            pb::LocationCheck::from(LocationCheck::MockLocation),
            pb::LocationCheck::MockLocation
        );
        let kaloum = LatLng::parse(9.5092, -13.7122).expect("valid");
        assert_eq!(lat_lng(&pb::LatLng::from(kaloum)), Ok(kaloum));
        assert_eq!(
            pb::PromiseEventKind::from(PromiseEventKind::PartiallyKept),
            pb::PromiseEventKind::PartiallyKept
        );
    }
}
