//! Agent scoring: points per event, each event stored as its own `score_events` row.
//!
//! A visit +1, a promise +2, a payment received +3, a refusal (outcome REFUSED) -1. A call on
//! its own earns nothing; a visit that ends in a refusal earns +1 - 1 = 0. Reversing a payment
//! takes its +3 back (a `payment_reversal` event, -3), so a day's score stays a plain sum.

use std::fmt;
use std::str::FromStr;

use super::outcome::{InteractionKind, InteractionOutcome, UnknownDbValue};

/// One scoring event (`score_events.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoreEventKind {
    Visit,
    Promise,
    Payment,
    Refusal,
    /// The reversal of a payment: cancels the payment's points.
    PaymentReversal,
}

/// Which column of `score_events` names the event's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoreSource {
    /// `interaction_id`: the call or visit.
    Interaction,
    /// `promise_id`: the promise made.
    Promise,
    /// `payment_id`: the payment (for a reversal event, the reversal entry).
    Payment,
}

impl ScoreEventKind {
    pub const ALL: [ScoreEventKind; 5] = [
        ScoreEventKind::Visit,
        ScoreEventKind::Promise,
        ScoreEventKind::Payment,
        ScoreEventKind::Refusal,
        ScoreEventKind::PaymentReversal,
    ];

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreEventKind::Visit => "visit",
            ScoreEventKind::Promise => "promise",
            ScoreEventKind::Payment => "payment",
            ScoreEventKind::Refusal => "refusal",
            ScoreEventKind::PaymentReversal => "payment_reversal",
        }
    }

    /// The source column the database requires for this kind.
    pub fn source(self) -> ScoreSource {
        match self {
            ScoreEventKind::Visit | ScoreEventKind::Refusal => ScoreSource::Interaction,
            ScoreEventKind::Promise => ScoreSource::Promise,
            ScoreEventKind::Payment | ScoreEventKind::PaymentReversal => ScoreSource::Payment,
        }
    }

    pub fn points(self) -> i64 {
        match self {
            ScoreEventKind::Visit => 1,
            ScoreEventKind::Promise => 2,
            ScoreEventKind::Payment => 3,
            ScoreEventKind::Refusal => -1,
            ScoreEventKind::PaymentReversal => -3,
        }
    }
}

impl fmt::Display for ScoreEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScoreEventKind {
    type Err = UnknownDbValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScoreEventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownDbValue {
                kind: "score event kind",
                value: s.to_owned(),
            })
    }
}

impl TryFrom<String> for ScoreEventKind {
    type Error = UnknownDbValue;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The events a call or visit earns, one `score_events` row each: the visit itself, the
/// promise made during it, the refusal.
pub fn events_for_interaction(
    kind: InteractionKind,
    outcome: InteractionOutcome,
    promise_made: bool,
) -> Vec<ScoreEventKind> {
    let mut events = Vec::with_capacity(2);
    if kind == InteractionKind::Visit {
        events.push(ScoreEventKind::Visit);
    }
    if promise_made {
        events.push(ScoreEventKind::Promise);
    }
    if outcome == InteractionOutcome::Refused {
        events.push(ScoreEventKind::Refusal);
    }
    events
}

/// The points a call or visit earns (`score_points` of RecordCall/RecordVisit).
pub fn points_for_interaction(
    kind: InteractionKind,
    outcome: InteractionOutcome,
    promise_made: bool,
) -> i64 {
    events_for_interaction(kind, outcome, promise_made)
        .into_iter()
        .map(ScoreEventKind::points)
        .sum()
}

/// The points a payment earns its collecting agent.
pub fn points_for_payment() -> i64 {
    ScoreEventKind::Payment.points()
}

/// The points a reversal takes back from the agent who collected the reversed payment.
pub fn points_for_reversal() -> i64 {
    ScoreEventKind::PaymentReversal.points()
}

#[cfg(test)]
mod tests {
    use super::*;
    use InteractionKind::{Call, Visit};
    use InteractionOutcome as O;

    #[test]
    fn database_spellings_and_points() {
        let table: Vec<(&str, i64)> = ScoreEventKind::ALL
            .iter()
            .map(|k| (k.as_str(), k.points()))
            .collect();
        assert_eq!(
            table,
            [
                ("visit", 1),
                ("promise", 2),
                ("payment", 3),
                ("refusal", -1),
                ("payment_reversal", -3)
            ]
        );
        assert_eq!(points_for_payment() + points_for_reversal(), 0);
        assert_eq!(ScoreEventKind::Visit.source(), ScoreSource::Interaction);
        assert_eq!(ScoreEventKind::Refusal.source(), ScoreSource::Interaction);
        assert_eq!(ScoreEventKind::Promise.source(), ScoreSource::Promise);
        assert_eq!(ScoreEventKind::Payment.source(), ScoreSource::Payment);
        assert_eq!(
            ScoreEventKind::PaymentReversal.source(),
            ScoreSource::Payment
        );
        for kind in ScoreEventKind::ALL {
            assert_eq!(kind.as_str().parse(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert!("Visit".parse::<ScoreEventKind>().is_err());
        assert_eq!(points_for_payment(), 3);
    }

    #[test]
    fn calls_score_only_promises_and_refusals() {
        assert_eq!(points_for_interaction(Call, O::NoAnswer, false), 0);
        assert_eq!(points_for_interaction(Call, O::Paid, false), 0);
        assert_eq!(points_for_interaction(Call, O::PromiseMade, true), 2);
        assert_eq!(points_for_interaction(Call, O::Refused, false), -1);
        assert!(events_for_interaction(Call, O::Absent, false).is_empty());
        assert_eq!(
            events_for_interaction(Call, O::PromiseMade, true),
            [ScoreEventKind::Promise]
        );
    }

    #[test]
    fn visits_score_one_plus_their_events() {
        assert_eq!(points_for_interaction(Visit, O::Absent, false), 1);
        assert_eq!(points_for_interaction(Visit, O::PromiseMade, true), 3);
        assert_eq!(points_for_interaction(Visit, O::Refused, false), 0);
        assert_eq!(
            events_for_interaction(Visit, O::Refused, false),
            [ScoreEventKind::Visit, ScoreEventKind::Refusal]
        );
        assert_eq!(
            events_for_interaction(Visit, O::PromiseMade, true),
            [ScoreEventKind::Visit, ScoreEventKind::Promise]
        );
    }

    #[test]
    fn every_combination_sums_its_events() {
        for kind in [Call, Visit] {
            for &outcome in InteractionOutcome::ALL {
                for promise in [false, true] {
                    let events = events_for_interaction(kind, outcome, promise);
                    let expected = i64::from(kind == Visit) + if promise { 2 } else { 0 }
                        - i64::from(outcome == O::Refused);
                    assert_eq!(points_for_interaction(kind, outcome, promise), expected);
                    assert_eq!(events.iter().map(|e| e.points()).sum::<i64>(), expected);
                }
            }
        }
    }
}
