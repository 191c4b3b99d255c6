//! Promises to pay: a new promise's checks, reschedules, and the status the payments give it.
//!
//! The status is derived from money, never stored by hand (except cancelling):
//! - `Kept` as soon as the payments made on or before the promised date (inclusive, Africa/
//!   Conakry days, net of reversals) cover the amount — a promise covered early is kept at once;
//! - while the promised date has not passed (today <= promised date) and the amount is not
//!   covered: `Pending`;
//! - once it has passed (today > promised date): `PartiallyKept` if something but not all was
//!   paid by the date, `Broken` if nothing was;
//! - `Cancelled` overrides everything.
//!
//! Payments after the promised date count in `paid_gnf` (shown to users) but cannot change the
//! status. A reversal can: the caller derives the status again after one, so a promise that a
//! reversed payment had kept goes back to pending, partially kept or broken.
//!
//! Where the rule lives: [`PromiseProgress::status_on`] derives the status from the money;
//! [`shown_status`] is what a reader shows (a stored final status stands); [`settled_at`] dates
//! a final status. The SQL twin of [`shown_status`] is `promise_derived_status` (migration
//! `20261126000013_interactions.sql`), used where lists filter by status; a test in
//! `store::promises` proves that both agree. The settlement job, the payment and reversal
//! writes, the calls and visits that supersede a promise, the promise updates, the readers and
//! the seed all call these functions.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, Utc};

use super::clock::conakry_day_start;
use super::money::{AmountError, Gnf, PaymentAmount};
use super::outcome::UnknownDbValue;

/// How far ahead a promise may be made, by default, in days.
pub const DEFAULT_PROMISE_HORIZON_DAYS: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromiseStatus {
    Pending,
    Kept,
    PartiallyKept,
    Broken,
    Cancelled,
}

impl PromiseStatus {
    pub const ALL: [PromiseStatus; 5] = [
        PromiseStatus::Pending,
        PromiseStatus::Kept,
        PromiseStatus::PartiallyKept,
        PromiseStatus::Broken,
        PromiseStatus::Cancelled,
    ];

    /// The value of `promises.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            PromiseStatus::Pending => "pending",
            PromiseStatus::Kept => "kept",
            PromiseStatus::PartiallyKept => "partially_kept",
            PromiseStatus::Broken => "broken",
            PromiseStatus::Cancelled => "cancelled",
        }
    }

    /// Everything but `Pending`: the promise is settled one way or the other.
    pub fn is_final(self) -> bool {
        self != PromiseStatus::Pending
    }
}

impl fmt::Display for PromiseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PromiseStatus {
    type Err = UnknownDbValue;

    /// Reads `promises.status`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PromiseStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownDbValue {
                kind: "promise status",
                value: s.to_owned(),
            })
    }
}

impl TryFrom<String> for PromiseStatus {
    type Error = UnknownDbValue;

    /// Reads a column (the store decodes rows with it).
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// What decides a promise's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromiseProgress {
    pub amount: Gnf,
    pub promised_date: NaiveDate,
    /// Paid towards the promise from when it was made up to the promised date inclusive
    /// (payments whose Africa/Conakry day is <= the promised date), net of reversals.
    pub paid_by_promised_date: Gnf,
    pub cancelled: bool,
}

impl PromiseProgress {
    /// The status on `today` (an Africa/Conakry day).
    pub fn status_on(&self, today: NaiveDate) -> PromiseStatus {
        if self.cancelled {
            PromiseStatus::Cancelled
        } else if self.paid_by_promised_date >= self.amount {
            PromiseStatus::Kept
        } else if today <= self.promised_date {
            PromiseStatus::Pending
        } else if self.paid_by_promised_date.is_positive() {
            PromiseStatus::PartiallyKept
        } else {
            PromiseStatus::Broken
        }
    }
}

/// The status a promise shows on `today` when `stored` is its stored status: a stored final
/// status stands (the settlement job, a payment or a cancellation stored it); a stored pending
/// promise shows what the money gives it ([`PromiseProgress::status_on`], `progress.cancelled`
/// unused). Readers use it, so a due promise reads kept, partially kept or broken before the
/// settlement job has stored it. SQL twin: `promise_derived_status`.
pub fn shown_status(
    stored: PromiseStatus,
    progress: &PromiseProgress,
    today: NaiveDate,
) -> PromiseStatus {
    if stored.is_final() {
        stored
    } else {
        PromiseProgress {
            cancelled: false,
            ..*progress
        }
        .status_on(today)
    }
}

/// When a promise's final status took effect: a promise that ran out of time became partially
/// kept or broken when its promised date ended (00:00 Africa/Conakry the day after, or `now`
/// if that is later); a kept (or cancelled) promise when it was seen so (`now`).
pub fn settled_at(
    status: PromiseStatus,
    promised_date: NaiveDate,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match status {
        PromiseStatus::PartiallyKept | PromiseStatus::Broken => promised_date
            .checked_add_days(Days::new(1))
            .map(conakry_day_start)
            .map_or(now, |end| end.min(now)),
        _ => now,
    }
}

/// A change in a promise's life after it was made (`promise_events.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromiseEventKind {
    Rescheduled,
    Cancelled,
    Kept,
    PartiallyKept,
    Broken,
}

impl PromiseEventKind {
    pub const ALL: [PromiseEventKind; 5] = [
        PromiseEventKind::Rescheduled,
        PromiseEventKind::Cancelled,
        PromiseEventKind::Kept,
        PromiseEventKind::PartiallyKept,
        PromiseEventKind::Broken,
    ];

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PromiseEventKind::Rescheduled => "rescheduled",
            PromiseEventKind::Cancelled => "cancelled",
            PromiseEventKind::Kept => "kept",
            PromiseEventKind::PartiallyKept => "partially_kept",
            PromiseEventKind::Broken => "broken",
        }
    }

    /// The event that records a promise reaching `status` by the money (kept, partially kept,
    /// broken); `None` for the others (a return to pending has no event; a cancellation is
    /// written with its reason and actor).
    pub fn settled(status: PromiseStatus) -> Option<PromiseEventKind> {
        match status {
            PromiseStatus::Kept => Some(PromiseEventKind::Kept),
            PromiseStatus::PartiallyKept => Some(PromiseEventKind::PartiallyKept),
            PromiseStatus::Broken => Some(PromiseEventKind::Broken),
            PromiseStatus::Pending | PromiseStatus::Cancelled => None,
        }
    }

    /// The promise's status right after the event: a reschedule keeps it pending.
    pub fn status_after(self) -> PromiseStatus {
        match self {
            PromiseEventKind::Rescheduled => PromiseStatus::Pending,
            PromiseEventKind::Cancelled => PromiseStatus::Cancelled,
            PromiseEventKind::Kept => PromiseStatus::Kept,
            PromiseEventKind::PartiallyKept => PromiseStatus::PartiallyKept,
            PromiseEventKind::Broken => PromiseStatus::Broken,
        }
    }
}

impl fmt::Display for PromiseEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PromiseEventKind {
    type Err = UnknownDbValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PromiseEventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownDbValue {
                kind: "promise event kind",
                value: s.to_owned(),
            })
    }
}

impl TryFrom<String> for PromiseEventKind {
    type Error = UnknownDbValue;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A promised date: on or after the day of the action (the call or visit that obtained the
/// promise, or the decision to reschedule it), at most the horizon later (both inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromisedDate(NaiveDate);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PromisedDateError {
    /// Answered with ERROR_REASON_PROMISE_DATE_IN_PAST.
    #[error("must be on or after {earliest}")]
    InPast { earliest: NaiveDate },
    #[error("must be at most {max_days} days ahead ({latest} at the latest)")]
    TooFar { max_days: u32, latest: NaiveDate },
}

impl PromisedDateError {
    /// True for the error the API reports as ERROR_REASON_PROMISE_DATE_IN_PAST.
    pub fn is_in_past(&self) -> bool {
        matches!(self, PromisedDateError::InPast { .. })
    }
}

impl PromisedDate {
    pub fn parse(
        promised_date: NaiveDate,
        action_day: NaiveDate,
        max_horizon_days: u32,
    ) -> Result<Self, PromisedDateError> {
        if promised_date < action_day {
            return Err(PromisedDateError::InPast {
                earliest: action_day,
            });
        }
        // No latest day representable: nothing is too far.
        if let Some(latest) = action_day.checked_add_days(Days::new(u64::from(max_horizon_days)))
            && promised_date > latest
        {
            return Err(PromisedDateError::TooFar {
                max_days: max_horizon_days,
                latest,
            });
        }
        Ok(Self(promised_date))
    }

    pub fn get(self) -> NaiveDate {
        self.0
    }
}

/// A promise a client asked to record, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewPromise {
    amount: PaymentAmount,
    promised_date: PromisedDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NewPromiseError {
    #[error(transparent)]
    Amount(AmountError),
    #[error(transparent)]
    PromisedDate(PromisedDateError),
}

impl NewPromiseError {
    /// The field at fault, relative to the `NewPromise` message.
    pub fn field(&self) -> &'static str {
        match self {
            NewPromiseError::Amount(_) => "amount_gnf",
            NewPromiseError::PromisedDate(_) => "promised_date",
        }
    }
}

impl NewPromise {
    /// Checks amount (> 0, <= 1,000,000,000) and date (see [`PromisedDate`]); reports the
    /// amount's problem first. To report both, parse them apart and use [`NewPromise::new`].
    pub fn parse(
        amount_gnf: i64,
        promised_date: NaiveDate,
        action_day: NaiveDate,
        max_horizon_days: u32,
    ) -> Result<Self, NewPromiseError> {
        let amount = PaymentAmount::parse(amount_gnf).map_err(NewPromiseError::Amount)?;
        let promised_date = PromisedDate::parse(promised_date, action_day, max_horizon_days)
            .map_err(NewPromiseError::PromisedDate)?;
        Ok(Self::new(amount, promised_date))
    }

    pub fn new(amount: PaymentAmount, promised_date: PromisedDate) -> Self {
        Self {
            amount,
            promised_date,
        }
    }

    pub fn amount(&self) -> PaymentAmount {
        self.amount
    }

    pub fn promised_date(&self) -> NaiveDate {
        self.promised_date.get()
    }
}

/// A change asked of a promise that is no longer pending. FAILED_PRECONDITION
/// (ERROR_REASON_PROMISE_NOT_PENDING).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the promise is {status}, not pending")]
pub struct NotPending {
    pub status: PromiseStatus,
}

/// Only a pending promise may be rescheduled, have its amount changed, or be cancelled.
pub fn ensure_pending(status: PromiseStatus) -> Result<(), NotPending> {
    if status == PromiseStatus::Pending {
        Ok(())
    } else {
        Err(NotPending { status })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RescheduleError {
    #[error(transparent)]
    NotPending(NotPending),
    #[error(transparent)]
    PromisedDate(PromisedDateError),
}

/// Checks a reschedule: the promise is pending, and the new date is on or after the day the
/// change was decided (`decision_day`, the Africa/Conakry day of its `occurred_at`), at most
/// the horizon later.
pub fn reschedule(
    status: PromiseStatus,
    new_date: NaiveDate,
    decision_day: NaiveDate,
    max_horizon_days: u32,
) -> Result<PromisedDate, RescheduleError> {
    ensure_pending(status).map_err(RescheduleError::NotPending)?;
    PromisedDate::parse(new_date, decision_day, max_horizon_days)
        .map_err(RescheduleError::PromisedDate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn progress(paid_by_date: i64) -> PromiseProgress {
        PromiseProgress {
            amount: Gnf::new(1_000_000),
            promised_date: day(2026, 3, 20),
            paid_by_promised_date: Gnf::new(paid_by_date),
            cancelled: false,
        }
    }

    #[test]
    fn pending_until_the_promised_date_inclusive() {
        for today in [day(2026, 3, 10), day(2026, 3, 20)] {
            assert_eq!(progress(0).status_on(today), PromiseStatus::Pending);
            assert_eq!(progress(999_999).status_on(today), PromiseStatus::Pending);
        }
    }

    #[test]
    fn covered_early_is_kept_at_once_and_stays_kept() {
        assert_eq!(
            progress(1_000_000).status_on(day(2026, 3, 10)),
            PromiseStatus::Kept
        );
        assert_eq!(
            progress(1_500_000).status_on(day(2026, 3, 20)),
            PromiseStatus::Kept
        );
        assert_eq!(
            progress(1_000_000).status_on(day(2026, 4, 30)),
            PromiseStatus::Kept
        );
    }

    #[test]
    fn after_the_date_partial_or_broken() {
        let after = day(2026, 3, 21);
        assert_eq!(
            progress(400_000).status_on(after),
            PromiseStatus::PartiallyKept
        );
        assert_eq!(progress(1).status_on(after), PromiseStatus::PartiallyKept);
        assert_eq!(progress(0).status_on(after), PromiseStatus::Broken);
        // A net negative (reversal bookkeeping gone wrong) is nothing paid.
        assert_eq!(progress(-5).status_on(after), PromiseStatus::Broken);
    }

    #[test]
    fn cancelled_overrides_everything() {
        let mut cancelled = progress(1_000_000);
        cancelled.cancelled = true;
        assert_eq!(
            cancelled.status_on(day(2026, 3, 1)),
            PromiseStatus::Cancelled
        );
        assert_eq!(
            cancelled.status_on(day(2026, 5, 1)),
            PromiseStatus::Cancelled
        );
    }

    #[test]
    fn a_reversal_undoes_kept() {
        // Kept on the 15th by a payment; the payment is reversed on the 18th.
        assert_eq!(
            progress(1_000_000).status_on(day(2026, 3, 15)),
            PromiseStatus::Kept
        );
        assert_eq!(
            progress(0).status_on(day(2026, 3, 18)),
            PromiseStatus::Pending
        );
        assert_eq!(
            progress(0).status_on(day(2026, 3, 25)),
            PromiseStatus::Broken
        );
    }

    #[test]
    fn statuses_and_event_kinds_round_trip() {
        for status in PromiseStatus::ALL {
            assert_eq!(status.as_str().parse::<PromiseStatus>(), Ok(status));
            assert_eq!(
                PromiseStatus::try_from(status.as_str().to_owned()),
                Ok(status)
            );
            assert_eq!(status.is_final(), status != PromiseStatus::Pending);
        }
        assert!("kept ".parse::<PromiseStatus>().is_err());
        assert_eq!(PromiseStatus::PartiallyKept.to_string(), "partially_kept");
        for kind in PromiseEventKind::ALL {
            assert_eq!(kind.as_str().parse::<PromiseEventKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        // Settlement events carry the status they record, under the same spelling.
        for status in PromiseStatus::ALL {
            if let Some(kind) = PromiseEventKind::settled(status) {
                assert_eq!(kind.as_str(), status.as_str());
                assert_eq!(kind.status_after(), status);
            }
        }
        assert_eq!(PromiseEventKind::settled(PromiseStatus::Pending), None);
        assert_eq!(PromiseEventKind::settled(PromiseStatus::Cancelled), None);
        assert_eq!(
            PromiseEventKind::Rescheduled.status_after(),
            PromiseStatus::Pending
        );
    }

    #[test]
    fn a_stored_final_status_stands() {
        let after = day(2026, 3, 21);
        for stored in PromiseStatus::ALL.into_iter().filter(|s| s.is_final()) {
            assert_eq!(shown_status(stored, &progress(0), after), stored);
            assert_eq!(shown_status(stored, &progress(1_000_000), after), stored);
        }
        assert_eq!(
            shown_status(PromiseStatus::Pending, &progress(400_000), after),
            PromiseStatus::PartiallyKept
        );
        let mut cancelled_flag = progress(0);
        cancelled_flag.cancelled = true;
        assert_eq!(
            shown_status(PromiseStatus::Pending, &cancelled_flag, day(2026, 3, 1)),
            PromiseStatus::Pending
        );
    }

    #[test]
    fn a_promise_runs_out_of_time_when_its_day_ends() {
        let at = |rfc3339: &str| {
            DateTime::parse_from_rfc3339(rfc3339)
                .expect("valid")
                .with_timezone(&Utc)
        };
        let date = day(2026, 3, 20);
        let later = at("2026-03-25T08:00:00Z");
        let end = at("2026-03-21T00:00:00Z");
        assert_eq!(settled_at(PromiseStatus::Broken, date, later), end);
        assert_eq!(settled_at(PromiseStatus::PartiallyKept, date, later), end);
        assert_eq!(settled_at(PromiseStatus::Kept, date, later), later);
        // Never in the future, and the end of the calendar does not panic.
        let early = at("2026-03-20T10:00:00Z");
        assert_eq!(settled_at(PromiseStatus::Broken, date, early), early);
        assert_eq!(
            settled_at(PromiseStatus::Broken, NaiveDate::MAX, later),
            later
        );
    }

    #[test]
    fn new_promise_date_window_is_inclusive() {
        let action = day(2026, 3, 15);
        let ok = NewPromise::parse(500_000, action, action, 90).expect("same day");
        assert_eq!(ok.promised_date(), action);
        assert_eq!(ok.amount().francs(), 500_000);
        assert!(NewPromise::parse(500_000, day(2026, 6, 13), action, 90).is_ok());
        assert_eq!(
            NewPromise::parse(500_000, day(2026, 6, 14), action, 90),
            Err(NewPromiseError::PromisedDate(PromisedDateError::TooFar {
                max_days: 90,
                latest: day(2026, 6, 13)
            }))
        );
        let past = NewPromise::parse(500_000, day(2026, 3, 14), action, 90);
        assert_eq!(
            past,
            Err(NewPromiseError::PromisedDate(PromisedDateError::InPast {
                earliest: action
            }))
        );
        let past = past.expect_err("in the past");
        assert_eq!(past.field(), "promised_date");
        assert_eq!(past.to_string(), "must be on or after 2026-03-15");
        assert!(matches!(past, NewPromiseError::PromisedDate(e) if e.is_in_past()));
        // Horizon 0: today only.
        assert!(NewPromise::parse(1, action, action, 0).is_ok());
        assert!(NewPromise::parse(1, day(2026, 3, 16), action, 0).is_err());
        // The end of the calendar does not panic.
        assert!(NewPromise::parse(1, NaiveDate::MAX, NaiveDate::MAX, 90).is_ok());
        // A horizon past the end of the calendar: nothing is too far.
        assert!(NewPromise::parse(1, NaiveDate::MAX, NaiveDate::MIN, u32::MAX).is_ok());
    }

    #[test]
    fn new_promise_amount_is_checked_first() {
        let action = day(2026, 3, 15);
        let zero = NewPromise::parse(0, day(2026, 1, 1), action, 90).expect_err("zero");
        assert_eq!(zero, NewPromiseError::Amount(AmountError::NotPositive));
        assert_eq!(zero.field(), "amount_gnf");
        assert_eq!(zero.to_string(), "must be greater than 0");
        assert_eq!(
            NewPromise::parse(1_000_000_001, action, action, 90),
            Err(NewPromiseError::Amount(AmountError::TooLarge))
        );
        assert!(NewPromise::parse(1_000_000_000, action, action, 90).is_ok());
        assert_eq!(
            PromisedDateError::TooFar {
                max_days: 90,
                latest: day(2026, 6, 13)
            }
            .to_string(),
            "must be at most 90 days ahead (2026-06-13 at the latest)"
        );
    }

    #[test]
    fn reschedule_only_while_pending_and_within_the_window() {
        let decided = day(2026, 4, 1);
        assert_eq!(
            reschedule(PromiseStatus::Pending, decided, decided, 90).map(PromisedDate::get),
            Ok(decided)
        );
        assert!(reschedule(PromiseStatus::Pending, day(2026, 6, 30), decided, 90).is_ok());
        assert!(matches!(
            reschedule(PromiseStatus::Pending, day(2026, 7, 1), decided, 90),
            Err(RescheduleError::PromisedDate(
                PromisedDateError::TooFar { .. }
            ))
        ));
        assert!(matches!(
            reschedule(PromiseStatus::Pending, day(2026, 3, 31), decided, 90),
            Err(RescheduleError::PromisedDate(
                PromisedDateError::InPast { .. }
            ))
        ));
        for status in PromiseStatus::ALL
            .into_iter()
            .filter(|s| *s != PromiseStatus::Pending)
        {
            assert_eq!(
                reschedule(status, decided, decided, 90),
                Err(RescheduleError::NotPending(NotPending { status }))
            );
            assert_eq!(ensure_pending(status), Err(NotPending { status }));
        }
        assert_eq!(
            NotPending {
                status: PromiseStatus::Broken
            }
            .to_string(),
            "the promise is broken, not pending"
        );
        assert_eq!(ensure_pending(PromiseStatus::Pending), Ok(()));
    }
}
