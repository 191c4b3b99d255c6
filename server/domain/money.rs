//! Guinean francs. The franc has no minor unit: every amount is a whole number of francs in an
//! `i64`, like the `*_gnf bigint` columns and the `int64 *_gnf` proto fields.

use std::fmt;

/// An amount of Guinean francs: a balance, a charge, an allocation, a total. It may be negative
/// (reversal entries, deltas); amounts that come from clients go through [`PaymentAmount`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gnf(i64);

/// The thousands separator of [`Gnf`]'s `Display`: U+202F NARROW NO-BREAK SPACE, the thin space
/// of French typography (CLDR `fr-GN`), which keeps a number on one line.
pub const THOUSANDS_SEPARATOR: char = '\u{202F}';

/// The largest amount a client may send for one payment or promise: one billion francs (about
/// 100,000 euros). Anything larger is a typing error, not rent.
pub const MAX_PAYMENT_GNF: i64 = 1_000_000_000;

/// A sum left the `i64` range. No real figure gets there; the caller answers INTERNAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("amount out of range")]
pub struct MoneyOverflow;

impl Gnf {
    pub const ZERO: Gnf = Gnf(0);

    /// Any whole number of francs, as read from the database or computed.
    pub const fn new(francs: i64) -> Self {
        Self(francs)
    }

    pub const fn francs(self) -> i64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn checked_add(self, other: Gnf) -> Option<Gnf> {
        self.0.checked_add(other.0).map(Gnf)
    }

    pub fn checked_sub(self, other: Gnf) -> Option<Gnf> {
        self.0.checked_sub(other.0).map(Gnf)
    }

    pub fn checked_neg(self) -> Option<Gnf> {
        self.0.checked_neg().map(Gnf)
    }

    /// `self + other`, or [`MoneyOverflow`].
    pub fn try_add(self, other: Gnf) -> Result<Gnf, MoneyOverflow> {
        self.checked_add(other).ok_or(MoneyOverflow)
    }

    /// `self - other`, or [`MoneyOverflow`].
    pub fn try_sub(self, other: Gnf) -> Result<Gnf, MoneyOverflow> {
        self.checked_sub(other).ok_or(MoneyOverflow)
    }

    /// Zero for negative amounts.
    pub fn at_least_zero(self) -> Gnf {
        self.max(Gnf::ZERO)
    }

    /// The sum of `amounts`, or [`MoneyOverflow`].
    pub fn checked_sum(amounts: impl IntoIterator<Item = Gnf>) -> Result<Gnf, MoneyOverflow> {
        amounts
            .into_iter()
            .try_fold(Gnf::ZERO, |total, amount| total.try_add(amount))
    }
}

impl From<Gnf> for i64 {
    fn from(amount: Gnf) -> i64 {
        amount.0
    }
}

/// `1 250 000 GNF` (thin spaces between thousands), `-5 000 GNF`.
impl fmt::Display for Gnf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() * 2 + 5);
        if self.0 < 0 {
            out.push('-');
        }
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(THOUSANDS_SEPARATOR);
            }
            out.push(digit);
        }
        out.push_str(" GNF");
        f.pad(&out)
    }
}

/// An amount a client sent for a payment (or a promise): more than 0, at most
/// [`MAX_PAYMENT_GNF`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PaymentAmount(Gnf);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be greater than 0")]
    NotPositive,
    #[error("must be at most {MAX_PAYMENT_GNF}")]
    TooLarge,
}

impl PaymentAmount {
    pub fn parse(francs: i64) -> Result<Self, AmountError> {
        if francs <= 0 {
            Err(AmountError::NotPositive)
        } else if francs > MAX_PAYMENT_GNF {
            Err(AmountError::TooLarge)
        } else {
            Ok(Self(Gnf(francs)))
        }
    }

    pub const fn gnf(self) -> Gnf {
        self.0
    }

    pub const fn francs(self) -> i64 {
        self.0.0
    }
}

impl From<PaymentAmount> for Gnf {
    fn from(amount: PaymentAmount) -> Gnf {
        amount.0
    }
}

impl fmt::Display for PaymentAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(francs: i64) -> String {
        Gnf::new(francs)
            .to_string()
            .replace(THOUSANDS_SEPARATOR, " ")
    }

    #[test]
    fn display_groups_thousands_with_thin_spaces() {
        assert_eq!(
            Gnf::new(1_250_000).to_string(),
            "1\u{202F}250\u{202F}000 GNF"
        );
        assert_eq!(shown(0), "0 GNF");
        assert_eq!(shown(999), "999 GNF");
        assert_eq!(shown(1_000), "1 000 GNF");
        assert_eq!(shown(12_345), "12 345 GNF");
        assert_eq!(shown(123_456), "123 456 GNF");
        assert_eq!(shown(-5_000), "-5 000 GNF");
        assert_eq!(shown(-999), "-999 GNF");
        assert_eq!(shown(i64::MAX), "9 223 372 036 854 775 807 GNF");
        assert_eq!(shown(i64::MIN), "-9 223 372 036 854 775 808 GNF");
    }

    #[test]
    fn payment_amounts_are_positive_and_bounded() {
        assert_eq!(PaymentAmount::parse(0), Err(AmountError::NotPositive));
        assert_eq!(PaymentAmount::parse(-1), Err(AmountError::NotPositive));
        assert_eq!(
            PaymentAmount::parse(i64::MIN),
            Err(AmountError::NotPositive)
        );
        assert_eq!(
            PaymentAmount::parse(MAX_PAYMENT_GNF + 1),
            Err(AmountError::TooLarge)
        );
        assert_eq!(PaymentAmount::parse(i64::MAX), Err(AmountError::TooLarge));
        assert_eq!(PaymentAmount::parse(1).map(PaymentAmount::francs), Ok(1));
        assert_eq!(
            PaymentAmount::parse(MAX_PAYMENT_GNF).map(PaymentAmount::gnf),
            Ok(Gnf::new(MAX_PAYMENT_GNF))
        );
    }

    #[test]
    fn amount_errors_read_as_field_violations() {
        assert_eq!(
            AmountError::NotPositive.to_string(),
            "must be greater than 0"
        );
        assert_eq!(
            AmountError::TooLarge.to_string(),
            "must be at most 1000000000"
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Gnf::new(i64::MAX).checked_add(Gnf::new(1)), None);
        assert_eq!(Gnf::new(i64::MIN).checked_sub(Gnf::new(1)), None);
        assert_eq!(Gnf::new(i64::MIN).checked_neg(), None);
        assert_eq!(Gnf::new(5).try_sub(Gnf::new(7)), Ok(Gnf::new(-2)));
        assert_eq!(
            Gnf::checked_sum([Gnf::new(1), Gnf::new(2), Gnf::new(3)]),
            Ok(Gnf::new(6))
        );
        assert_eq!(
            Gnf::checked_sum([Gnf::new(i64::MAX), Gnf::new(1)]),
            Err(MoneyOverflow)
        );
        assert_eq!(Gnf::new(-3).at_least_zero(), Gnf::ZERO);
        assert!(Gnf::new(1) > Gnf::ZERO);
    }
}
