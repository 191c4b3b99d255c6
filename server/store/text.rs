//! Closed vocabularies of `domain` stored as text, decoded as their domain types where a row
//! cannot use `#[sqlx(try_from = "String")]`: a nullable column (`Option<T>`) or a tuple.
//! A value the type does not know is a decode error, as with `try_from`.

use sqlx::Postgres;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, PgValueRef};

use crate::domain::{ArrivalSource, ClosingKind, FailureReason, InteractionKind};

/// `sqlx::Type` (text) and `sqlx::Decode` (through `FromStr`) for each domain type named.
macro_rules! decoded_from_text {
    ($($ty:ty),+ $(,)?) => {$(
        impl sqlx::Type<Postgres> for $ty {
            fn type_info() -> PgTypeInfo {
                <str as sqlx::Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <str as sqlx::Type<Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, Postgres> for $ty {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(<&str as sqlx::Decode<'r, Postgres>>::decode(value)?.parse::<$ty>()?)
            }
        }
    )+};
}

decoded_from_text!(FailureReason, ArrivalSource, ClosingKind, InteractionKind);
