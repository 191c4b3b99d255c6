//! The closed vocabularies of collections — interaction kinds and outcomes, payment methods,
//! ledger entry kinds — with their database spellings (the `CHECK (... IN (...))` lists), and
//! the operator reference rule of payments. The proto enums are the API's business
//! (`api::collections::wire`).

use std::fmt;
use std::str::FromStr;

/// A database value outside the column's check list (a bug or a newer schema).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownDbValue {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! db_enum {
    ($name:ident, $kind:literal, [$($variant:ident => $db:literal),+ $(,)?]) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The database spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $db),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownDbValue;

            /// Reads the database spelling.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($db => Ok($name::$variant),)+
                    _ => Err(UnknownDbValue { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownDbValue;

            /// Reads a column (the store decodes rows with it).
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

/// The database spelling, `Display`, `FromStr` and `TryFrom<String>` of a closed set of values.
pub(crate) use db_enum;

/// Call or visit (`interactions.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InteractionKind {
    Call,
    Visit,
}

db_enum!(InteractionKind, "interaction kind", [Call => "call", Visit => "visit"]);

/// What came out of a call or a visit (`interactions.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InteractionOutcome {
    NoAnswer,
    WrongNumber,
    PromiseMade,
    Paid,
    Refused,
    Absent,
    TenantMoved,
    Dispute,
    Other,
}

db_enum!(InteractionOutcome, "interaction outcome", [
    NoAnswer => "no_answer",
    WrongNumber => "wrong_number",
    PromiseMade => "promise_made",
    Paid => "paid",
    Refused => "refused",
    Absent => "absent",
    TenantMoved => "tenant_moved",
    Dispute => "dispute",
    Other => "other",
]);

/// The outcome and the promise of a call or visit do not go together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutcomePromiseMismatch {
    /// Reported on `promise`.
    #[error("is required when the outcome is INTERACTION_OUTCOME_PROMISE_MADE")]
    PromiseMissing,
    /// Reported on `promise` (or `outcome`).
    #[error("is only allowed when the outcome is INTERACTION_OUTCOME_PROMISE_MADE")]
    UnexpectedPromise,
}

/// PROMISE_MADE requires a promise, and a promise requires PROMISE_MADE.
pub fn check_outcome_promise(
    outcome: InteractionOutcome,
    has_promise: bool,
) -> Result<(), OutcomePromiseMismatch> {
    match (outcome == InteractionOutcome::PromiseMade, has_promise) {
        (true, false) => Err(OutcomePromiseMismatch::PromiseMissing),
        (false, true) => Err(OutcomePromiseMismatch::UnexpectedPromise),
        _ => Ok(()),
    }
}

/// How money was paid (`payments.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentMethod {
    Cash,
    OrangeMoney,
    MtnMomo,
    BankTransfer,
}

db_enum!(PaymentMethod, "payment method", [
    Cash => "cash",
    OrangeMoney => "orange_money",
    MtnMomo => "mtn_momo",
    BankTransfer => "bank_transfer",
]);

impl PaymentMethod {
    /// Mobile money and bank transfers leave an operator reference to check against; cash
    /// does not.
    pub fn requires_operator_reference(self) -> bool {
        !matches!(self, PaymentMethod::Cash)
    }
}

/// A ledger entry: a payment, or the reversal of one (`payments.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentKind {
    Payment,
    Reversal,
}

db_enum!(PaymentKind, "ledger entry kind", [Payment => "payment", Reversal => "reversal"]);

/// The longest operator reference accepted, in characters.
pub const MAX_OPERATOR_REFERENCE_CHARS: usize = 64;

/// The key an operator reference is compared by: its ASCII letters and digits, upper-cased;
/// everything else (spaces, dots, dashes, slashes, any other punctuation) is dropped.
///
/// Operators print and read their references aloud with separators and in either case:
/// `MP261130.6186.A75896`, `mp261130.6186.a75896`, `MP261130 6186 A75896` and
/// `MP2611306186A75896` are one Orange Money transfer, key `MP2611306186A75896`. No operator
/// tells two references apart by punctuation or case alone, so two references with one key
/// are one transfer. The database repeats this rule in `operator_reference_key(text)` (the
/// generated column `payments.operator_reference_key`); a test holds the two together.
pub fn operator_reference_key(reference: &str) -> String {
    reference
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// An operator's transaction reference, e.g. `MP260112.1533.A12345`: trimmed, 1..=64
/// printable ASCII characters (space included), at least one a letter or digit. The text is
/// kept as typed; payments are compared by its [`OperatorReference::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OperatorReference {
    text: String,
    key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OperatorReferenceError {
    #[error("is required for mobile money and bank transfers")]
    Required,
    #[error("must be at most 64 characters")]
    TooLong,
    #[error("must contain only printable ASCII characters")]
    NotPrintableAscii,
    #[error("must contain a letter or a digit")]
    NoLetterOrDigit,
}

impl OperatorReference {
    /// The reference of a payment by `method`: blank means none, which only cash may have.
    pub fn parse(method: PaymentMethod, raw: &str) -> Result<Option<Self>, OperatorReferenceError> {
        let reference = raw.trim();
        if reference.is_empty() {
            return if method.requires_operator_reference() {
                Err(OperatorReferenceError::Required)
            } else {
                Ok(None)
            };
        }
        if !reference.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(OperatorReferenceError::NotPrintableAscii);
        }
        // Only ASCII from here: bytes are characters.
        if reference.len() > MAX_OPERATOR_REFERENCE_CHARS {
            return Err(OperatorReferenceError::TooLong);
        }
        let key = operator_reference_key(reference);
        if key.is_empty() {
            return Err(OperatorReferenceError::NoLetterOrDigit);
        }
        Ok(Some(Self {
            text: reference.to_owned(),
            key,
        }))
    }

    /// The reference as typed (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key it is compared by ([`operator_reference_key`]).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for OperatorReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_match_the_database() {
        let spelled: Vec<&str> = InteractionOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            spelled,
            [
                "no_answer",
                "wrong_number",
                "promise_made",
                "paid",
                "refused",
                "absent",
                "tenant_moved",
                "dispute",
                "other"
            ]
        );
        for &outcome in InteractionOutcome::ALL {
            assert_eq!(outcome.as_str().parse(), Ok(outcome));
            assert_eq!(
                InteractionOutcome::try_from(outcome.as_str().to_owned()),
                Ok(outcome)
            );
        }
        assert_eq!(
            "REFUSED".parse::<InteractionOutcome>(),
            Err(UnknownDbValue {
                kind: "interaction outcome",
                value: "REFUSED".into()
            })
        );
    }

    #[test]
    fn kinds_match_the_database() {
        assert_eq!(InteractionKind::Call.as_str(), "call");
        assert_eq!(InteractionKind::Visit.to_string(), "visit");
        assert_eq!("visit".parse(), Ok(InteractionKind::Visit));
        assert!("Visit".parse::<InteractionKind>().is_err());
        assert_eq!(PaymentKind::Reversal.as_str(), "reversal");
        assert_eq!("payment".parse(), Ok(PaymentKind::Payment));
        assert!(PaymentKind::try_from("refund".to_owned()).is_err());
    }

    #[test]
    fn methods_match_the_database() {
        let spelled: Vec<&str> = PaymentMethod::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(
            spelled,
            ["cash", "orange_money", "mtn_momo", "bank_transfer"]
        );
        for &method in PaymentMethod::ALL {
            assert_eq!(method.as_str().parse(), Ok(method));
        }
        assert!(!PaymentMethod::Cash.requires_operator_reference());
        assert!(PaymentMethod::OrangeMoney.requires_operator_reference());
        assert!(PaymentMethod::MtnMomo.requires_operator_reference());
        assert!(PaymentMethod::BankTransfer.requires_operator_reference());
    }

    #[test]
    fn outcome_and_promise_go_together() {
        use InteractionOutcome::*;
        assert_eq!(check_outcome_promise(PromiseMade, true), Ok(()));
        assert_eq!(
            check_outcome_promise(PromiseMade, false),
            Err(OutcomePromiseMismatch::PromiseMissing)
        );
        assert_eq!(
            check_outcome_promise(Refused, true),
            Err(OutcomePromiseMismatch::UnexpectedPromise)
        );
        assert_eq!(check_outcome_promise(NoAnswer, false), Ok(()));
    }

    #[test]
    fn operator_reference_rule() {
        let parse = OperatorReference::parse;
        assert_eq!(parse(PaymentMethod::Cash, ""), Ok(None));
        assert_eq!(parse(PaymentMethod::Cash, "   "), Ok(None));
        for method in [
            PaymentMethod::OrangeMoney,
            PaymentMethod::MtnMomo,
            PaymentMethod::BankTransfer,
        ] {
            assert_eq!(parse(method, " \t"), Err(OperatorReferenceError::Required));
        }
        let reference = parse(PaymentMethod::OrangeMoney, "  MP260112.1533.A12345 ")
            .expect("valid")
            .expect("present");
        assert_eq!(reference.as_str(), "MP260112.1533.A12345");
        assert_eq!(
            parse(PaymentMethod::Cash, "REC 12/3")
                .expect("valid")
                .map(|r| r.to_string()),
            Some("REC 12/3".to_owned())
        );
        let longest = "A".repeat(64);
        assert!(parse(PaymentMethod::MtnMomo, &longest).is_ok());
        assert_eq!(
            parse(PaymentMethod::MtnMomo, &"A".repeat(65)),
            Err(OperatorReferenceError::TooLong)
        );
        for bad in ["MP\u{0}1", "réf-1", "A\tB", "A\nB", "MP\u{7f}"] {
            assert_eq!(
                parse(PaymentMethod::BankTransfer, bad),
                Err(OperatorReferenceError::NotPrintableAscii),
                "{bad:?}"
            );
        }
        // A long non-ASCII string is refused for its characters, not its length.
        assert_eq!(
            parse(PaymentMethod::OrangeMoney, &"é".repeat(40)),
            Err(OperatorReferenceError::NotPrintableAscii)
        );
    }

    #[test]
    fn equivalent_references_share_a_key() {
        let key = |raw: &str| {
            OperatorReference::parse(PaymentMethod::OrangeMoney, raw)
                .expect("valid")
                .expect("present")
                .key()
                .to_owned()
        };
        for variant in [
            "MP261130.6186.A75896",
            "mp261130.6186.a75896",
            "MP261130 6186 A75896",
            " Mp261130-6186-a75896 ",
            "MP2611306186A75896",
            "mp2611306186a75896",
            "MP261130/6186/A75896",
        ] {
            assert_eq!(key(variant), "MP2611306186A75896", "{variant:?}");
        }
        assert_ne!(key("MP261130.6186.A75896"), key("MP261130.6186.A75897"));
        let typed = OperatorReference::parse(PaymentMethod::MtnMomo, " mp1.a ")
            .expect("valid")
            .expect("present");
        assert_eq!((typed.as_str(), typed.key()), ("mp1.a", "MP1A"));
        for blank in ["...", "- -", "#/"] {
            assert_eq!(
                OperatorReference::parse(PaymentMethod::MtnMomo, blank),
                Err(OperatorReferenceError::NoLetterOrDigit),
                "{blank:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn the_key_ignores_case_and_separators(
            parts in proptest::collection::vec("[A-Za-z0-9]{1,6}", 1..5),
            separators in proptest::collection::vec("[ .\\-/_]{0,2}", 5),
        ) {
            let plain: String = parts.concat();
            let mut spaced = String::new();
            for (part, separator) in parts.iter().zip(&separators) {
                spaced.push_str(part);
                spaced.push_str(separator);
            }
            let key = operator_reference_key(&plain);
            proptest::prop_assert_eq!(&key, &plain.to_ascii_uppercase());
            proptest::prop_assert_eq!(operator_reference_key(&spaced), key.clone());
            proptest::prop_assert_eq!(operator_reference_key(&spaced.to_ascii_lowercase()), key.clone());
            proptest::prop_assert_eq!(operator_reference_key(&key), key.clone());
            proptest::prop_assert!(key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        }
    }
}
