//! The tenant timeline's promises: how a promise looked right after it was made and right after
//! each of its events, rebuilt from the promise as it is now and its events.
//!
//! Decisions:
//! - A timeline entry shows the promise's date, status and reschedule count as they were right
//!   after the entry; its amount and paid figure as they are now (the ledger does not date
//!   amount changes).
//! - The promised date of each step comes from the next reschedule's `previous_promised_date`
//!   (the date it replaced), or the current date after the last one; right after it was made,
//!   the original promised date.
//! - The last reason shown is that of the latest reschedule or cancellation.

use chrono::{DateTime, NaiveDate, Utc};

use super::promise::{PromiseEventKind, PromiseStatus};

/// A promise as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromiseNow {
    pub promised_date: NaiveDate,
    pub original_promised_date: NaiveDate,
    /// As shown on the day of the read (`promise::shown_status`).
    pub status: PromiseStatus,
    pub reschedule_count: i32,
    pub cancel_reason: Option<String>,
    pub reschedule_reason: Option<String>,
    pub status_changed_at: Option<DateTime<Utc>>,
}

/// One event of a promise (`promise_events`), in the order they were written (by `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromiseChange {
    pub id: i64,
    pub kind: PromiseEventKind,
    pub occurred_at: DateTime<Utc>,
    /// For a reschedule: the date it replaced.
    pub previous_promised_date: Option<NaiveDate>,
    pub reason: Option<String>,
}

/// How a promise looked at one point of its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromiseSnapshot {
    pub promised_date: NaiveDate,
    pub status: PromiseStatus,
    pub reschedule_count: i32,
    pub last_change_reason: Option<String>,
    /// When a final status took effect.
    pub resolve_time: Option<DateTime<Utc>>,
}

impl PromiseSnapshot {
    /// The promise as it is now.
    pub fn current(promise: &PromiseNow) -> Self {
        Self {
            promised_date: promise.promised_date,
            status: promise.status,
            reschedule_count: promise.reschedule_count,
            last_change_reason: if promise.status == PromiseStatus::Cancelled {
                promise.cancel_reason.clone()
            } else {
                promise.reschedule_reason.clone()
            },
            resolve_time: if promise.status.is_final() {
                promise.status_changed_at
            } else {
                None
            },
        }
    }

    /// The promise right after the event `upto` (`None`: right after it was made), from the
    /// promise now and all its `events`, in the order they were written.
    pub fn after(promise: &PromiseNow, events: &[PromiseChange], upto: Option<i64>) -> Self {
        let reschedules: Vec<&PromiseChange> = events
            .iter()
            .filter(|e| e.kind == PromiseEventKind::Rescheduled)
            .collect();
        let date_after = |count: usize| -> NaiveDate {
            if count == 0 {
                return promise.original_promised_date;
            }
            reschedules
                .get(count)
                .and_then(|next| next.previous_promised_date)
                .unwrap_or(promise.promised_date)
        };
        let Some(upto) = upto else {
            return Self {
                promised_date: date_after(0),
                status: PromiseStatus::Pending,
                reschedule_count: 0,
                last_change_reason: None,
                resolve_time: None,
            };
        };
        let seen: Vec<&PromiseChange> = events.iter().take_while(|e| e.id <= upto).collect();
        let count = seen
            .iter()
            .filter(|e| e.kind == PromiseEventKind::Rescheduled)
            .count();
        let last = seen.last();
        let status = last.map_or(PromiseStatus::Pending, |e| e.kind.status_after());
        Self {
            promised_date: date_after(count),
            status,
            reschedule_count: i32::try_from(count).unwrap_or(i32::MAX),
            last_change_reason: seen
                .iter()
                .rev()
                .find(|e| {
                    matches!(
                        e.kind,
                        PromiseEventKind::Rescheduled | PromiseEventKind::Cancelled
                    )
                })
                .and_then(|e| e.reason.clone()),
            resolve_time: if status.is_final() {
                last.map(|e| e.occurred_at)
            } else {
                None
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn promise() -> PromiseNow {
        PromiseNow {
            promised_date: day(2026, 3, 20),
            original_promised_date: day(2026, 3, 5),
            status: PromiseStatus::Cancelled,
            reschedule_count: 2,
            cancel_reason: Some("départ".into()),
            reschedule_reason: Some("salaire en retard".into()),
            status_changed_at: Some(at("2026-03-12T08:00:00Z")),
        }
    }

    fn event(
        id: i64,
        kind: PromiseEventKind,
        previous: Option<NaiveDate>,
        reason: &str,
    ) -> PromiseChange {
        PromiseChange {
            id,
            kind,
            occurred_at: at("2026-03-10T08:00:00Z") + chrono::TimeDelta::hours(id),
            previous_promised_date: previous,
            reason: Some(reason.into()),
        }
    }

    #[test]
    fn promise_snapshots_replay_reschedules() {
        let now = promise();
        let events = [
            event(
                10,
                PromiseEventKind::Rescheduled,
                Some(day(2026, 3, 5)),
                "r1",
            ),
            event(
                11,
                PromiseEventKind::Rescheduled,
                Some(day(2026, 3, 12)),
                "r2",
            ),
            event(12, PromiseEventKind::Cancelled, None, "départ"),
        ];
        let made = PromiseSnapshot::after(&now, &events, None);
        assert_eq!(
            (made.promised_date, made.status, made.reschedule_count),
            (day(2026, 3, 5), PromiseStatus::Pending, 0)
        );
        let first = PromiseSnapshot::after(&now, &events, Some(10));
        assert_eq!(
            (first.promised_date, first.reschedule_count),
            (day(2026, 3, 12), 1)
        );
        assert_eq!(first.last_change_reason.as_deref(), Some("r1"));
        let second = PromiseSnapshot::after(&now, &events, Some(11));
        assert_eq!(
            (second.promised_date, second.reschedule_count),
            (day(2026, 3, 20), 2)
        );
        let cancelled = PromiseSnapshot::after(&now, &events, Some(12));
        assert_eq!(cancelled.status, PromiseStatus::Cancelled);
        assert_eq!(cancelled.promised_date, day(2026, 3, 20));
        assert_eq!(cancelled.resolve_time, Some(events[2].occurred_at));
        assert_eq!(cancelled.last_change_reason.as_deref(), Some("départ"));

        let current = PromiseSnapshot::current(&now);
        assert_eq!(current.last_change_reason.as_deref(), Some("départ"));
        assert_eq!(current.resolve_time, now.status_changed_at);
        let pending = PromiseSnapshot::current(&PromiseNow {
            status: PromiseStatus::Pending,
            ..now
        });
        assert_eq!(
            pending.last_change_reason.as_deref(),
            Some("salaire en retard")
        );
        assert_eq!(pending.resolve_time, None);
    }
}
