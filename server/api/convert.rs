//! Small conversions between protobuf fields and domain values, each failing with the field's
//! name so the client learns exactly what to fix.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::api::error::ApiError;

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn from_timestamp(field: &str, ts: &prost_types::Timestamp) -> Result<DateTime<Utc>, ApiError> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
        .ok_or_else(|| ApiError::invalid(field, "not a valid timestamp"))
}

pub fn uuid(field: &str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value.trim()).map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

/// An empty string means "not given".
pub fn optional_uuid(field: &str, value: &str) -> Result<Option<Uuid>, ApiError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        uuid(field, value).map(Some)
    }
}

/// The client's idempotency key of a mutating request.
pub fn request_id(value: &str) -> Result<Uuid, ApiError> {
    crate::idempotency::parse_request_id(value)
        .map_err(|e| ApiError::invalid("request_id", e.to_string()))
}

/// `page_size` as a row limit: 0 means the default, larger than `max` is lowered to it.
pub fn page_size(value: i32, default: i64, max: i64) -> Result<i64, ApiError> {
    match value {
        v if v < 0 => Err(ApiError::invalid("page_size", "must not be negative")),
        0 => Ok(default),
        v => Ok(i64::from(v).min(max)),
    }
}

/// INVALID_ARGUMENT on `page_token` (`ERROR_REASON_PAGE_TOKEN_INVALID`).
pub fn invalid_page_token() -> ApiError {
    ApiError::invalid_with_reason(
        "page_token",
        crate::proto::v1::ErrorReason::PageTokenInvalid,
        "not a token this server issued",
    )
}

/// A phone number in E.164 form (`+224621234567`); the spaces, dots and dashes people type
/// are dropped.
pub fn phone(field: &str, value: &str) -> Result<String, ApiError> {
    let compact: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    let valid = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if valid {
        Ok(compact)
    } else {
        Err(ApiError::invalid(
            field,
            "must be an E.164 number such as +224621234567",
        ))
    }
}

/// An optional phone number: empty means not given.
pub fn optional_phone(field: &str, value: &str) -> Result<Option<String>, ApiError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        phone(field, value).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_e164() {
        assert_eq!(phone("p", "+224 621 23 45 67").unwrap(), "+224621234567");
        assert_eq!(phone("p", "+224-621.23.45.67").unwrap(), "+224621234567");
        assert!(phone("p", "621234567").is_err());
        assert!(phone("p", "+0224621234567").is_err());
        assert!(phone("p", "+22462123456789012").is_err());
        assert_eq!(optional_phone("p", " ").unwrap(), None);
    }

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(page_size(0, 50, 500).unwrap(), 50);
        assert_eq!(page_size(10, 50, 500).unwrap(), 10);
        assert_eq!(page_size(10_000, 50, 500).unwrap(), 500);
        assert!(page_size(-1, 50, 500).is_err());
    }

    #[test]
    fn request_id_is_required_and_a_uuid() {
        assert!(request_id("").is_err());
        assert!(request_id("abc").is_err());
        assert!(request_id("6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab").is_ok());
    }

    #[test]
    fn timestamps_round_trip() {
        let now = Utc::now();
        assert_eq!(from_timestamp("t", &timestamp(now)).unwrap(), now);
        let bad = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(from_timestamp("t", &bad).is_err());
    }
}
