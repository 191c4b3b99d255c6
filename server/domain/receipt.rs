//! Receipt numbers: `KAL-2026-000123` — the site's code, the calendar year of the payment's
//! Africa/Conakry day, and the site's counter for that year, zero-padded to 6 digits (numbers
//! beyond 999999 simply grow: `KAL-2026-1234567`). The database's `next_receipt_number()`
//! formats them the same way; the `payments_receipt_number_format` check is
//! `^[A-Z]{3,4}-[0-9]{4}-[0-9]{6,}$`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};

use super::clock::conakry_day;

/// A site's code, the receipt prefix: 3 or 4 capital letters (A–Z), e.g. `KAL`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SiteCode(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 3 or 4 capital letters (A-Z)")]
pub struct SiteCodeError;

impl SiteCode {
    pub fn parse(code: &str) -> Result<Self, SiteCodeError> {
        if (3..=4).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code.to_owned()))
        } else {
            Err(SiteCodeError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Years a receipt may carry (`receipt_counters_year_range`).
pub const RECEIPT_YEARS: std::ops::RangeInclusive<i32> = 2000..=9999;

/// The receipt year of a payment received at `received_at`: the calendar year of its
/// Africa/Conakry day.
pub fn receipt_year(received_at: DateTime<Utc>) -> i32 {
    conakry_day(received_at).year()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReceiptNumber {
    site: SiteCode,
    year: i32,
    number: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptNumberError {
    #[error("must look like KAL-2026-000123")]
    Format,
    #[error("must have a site code of 3 or 4 capital letters")]
    SiteCode,
    #[error("must have a year between 2000 and 9999")]
    Year,
    #[error("must have a number of at least 1")]
    Number,
}

impl ReceiptNumber {
    pub fn new(site: SiteCode, year: i32, number: i64) -> Result<Self, ReceiptNumberError> {
        if !RECEIPT_YEARS.contains(&year) {
            return Err(ReceiptNumberError::Year);
        }
        if number < 1 {
            return Err(ReceiptNumberError::Number);
        }
        Ok(Self { site, year, number })
    }

    /// The receipt of a payment received at `received_at`, with the site's next `number`.
    pub fn for_payment(
        site: SiteCode,
        received_at: DateTime<Utc>,
        number: i64,
    ) -> Result<Self, ReceiptNumberError> {
        Self::new(site, receipt_year(received_at), number)
    }

    /// Reads a receipt number in its one written form (surrounding blanks ignored): capital
    /// letters, 4-digit year, at least 6 digits without extra leading zeros.
    pub fn parse(text: &str) -> Result<Self, ReceiptNumberError> {
        let mut parts = text.trim().split('-');
        let (Some(site), Some(year), Some(number), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ReceiptNumberError::Format);
        };
        let site = SiteCode::parse(site).map_err(|_| ReceiptNumberError::SiteCode)?;
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReceiptNumberError::Format);
        }
        let year: i32 = year.parse().map_err(|_| ReceiptNumberError::Format)?;
        let canonical_width = number.len() == 6 || (number.len() > 6 && !number.starts_with('0'));
        if !canonical_width || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReceiptNumberError::Format);
        }
        let number: i64 = number.parse().map_err(|_| ReceiptNumberError::Format)?;
        Self::new(site, year, number)
    }

    pub fn site(&self) -> &SiteCode {
        &self.site
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    pub fn number(&self) -> i64 {
        self.number
    }
}

impl fmt::Display for ReceiptNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:04}-{:06}", self.site, self.year, self.number)
    }
}

impl FromStr for ReceiptNumber {
    type Err = ReceiptNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kal() -> SiteCode {
        SiteCode::parse("KAL").expect("valid code")
    }

    #[test]
    fn formats_with_six_digits_and_grows_beyond() {
        let receipt = |n| {
            ReceiptNumber::new(kal(), 2026, n)
                .expect("valid")
                .to_string()
        };
        assert_eq!(receipt(1), "KAL-2026-000001");
        assert_eq!(receipt(123), "KAL-2026-000123");
        assert_eq!(receipt(999_999), "KAL-2026-999999");
        assert_eq!(receipt(1_000_000), "KAL-2026-1000000");
        assert_eq!(receipt(i64::MAX), format!("KAL-2026-{}", i64::MAX));
    }

    #[test]
    fn parses_what_it_formats() {
        for text in [
            "KAL-2026-000123",
            "DIXN-2000-000001",
            "MAT-9999-999999",
            "RAT-2027-1000000",
        ] {
            let receipt = ReceiptNumber::parse(text).expect(text);
            assert_eq!(receipt.to_string(), text);
            assert_eq!(text.parse::<ReceiptNumber>(), Ok(receipt));
        }
        let receipt = ReceiptNumber::parse("  KAL-2026-000123\n").expect("trimmed");
        assert_eq!(receipt.site().as_str(), "KAL");
        assert_eq!((receipt.year(), receipt.number()), (2026, 123));
    }

    #[test]
    fn refuses_other_shapes() {
        for (text, error) in [
            ("", ReceiptNumberError::Format),
            ("KAL-2026", ReceiptNumberError::Format),
            ("KAL-2026-000123-1", ReceiptNumberError::Format),
            ("KA-2026-000123", ReceiptNumberError::SiteCode),
            ("KALOU-2026-000123", ReceiptNumberError::SiteCode),
            ("kal-2026-000123", ReceiptNumberError::SiteCode),
            ("KÀL-2026-000123", ReceiptNumberError::SiteCode),
            ("KAL-26-000123", ReceiptNumberError::Format),
            ("KAL-+026-000123", ReceiptNumberError::Format),
            ("KAL-1999-000123", ReceiptNumberError::Year),
            ("KAL-2026-00123", ReceiptNumberError::Format),
            ("KAL-2026-0000123", ReceiptNumberError::Format),
            ("KAL-2026-+00123", ReceiptNumberError::Format),
            ("KAL-2026-12345a", ReceiptNumberError::Format),
            ("KAL-2026-000000", ReceiptNumberError::Number),
            ("KAL-2026-99999999999999999999", ReceiptNumberError::Format),
        ] {
            assert_eq!(ReceiptNumber::parse(text), Err(error), "{text:?}");
        }
        assert_eq!(
            ReceiptNumber::new(kal(), 2026, 0),
            Err(ReceiptNumberError::Number)
        );
        assert_eq!(
            ReceiptNumber::new(kal(), 10_000, 1),
            Err(ReceiptNumberError::Year)
        );
        assert_eq!(
            ReceiptNumberError::Format.to_string(),
            "must look like KAL-2026-000123"
        );
    }

    #[test]
    fn site_codes_are_three_or_four_capitals() {
        assert!(SiteCode::parse("KAL").is_ok());
        assert!(SiteCode::parse("DIXN").is_ok());
        for bad in ["", "KA", "KALOU", "Kal", "K4L", "KAL ", "ÉTÉ"] {
            assert_eq!(SiteCode::parse(bad), Err(SiteCodeError), "{bad:?}");
        }
    }

    #[test]
    fn the_year_is_the_conakry_year_of_reception() {
        let new_year_eve = DateTime::parse_from_rfc3339("2026-12-31T23:59:59Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(receipt_year(new_year_eve), 2026);
        let receipt = ReceiptNumber::for_payment(kal(), new_year_eve, 42).expect("valid");
        assert_eq!(receipt.to_string(), "KAL-2026-000042");
        let new_year = new_year_eve + chrono::TimeDelta::seconds(1);
        assert_eq!(receipt_year(new_year), 2027);
    }
}
