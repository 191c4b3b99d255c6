//! Arrears: where a tenant's charges stand on a day — what is due, paid and outstanding, how
//! long overdue, in which aging bucket — and the arrears report of one tenant (GetTenantArrears,
//! the tenant card and the timeline use the same figures; so will dashboards, map markers and
//! mission priority).
//!
//! Decisions:
//! - A charge is *due* from its due date on (listed, counted in outstanding); it is *overdue*
//!   from the next day (days overdue and aging bucket, `domain::aging`).
//! - Figures read from the database are clamped: due never below 0, paid within 0..=due.
//! - The report lists every unpaid charge due by the day, and with `include_paid` the fully
//!   paid ones of the eleven months before the day's month and of that month.
//! - The report's days overdue and bucket are those of its oldest unpaid charge; that bucket's
//!   `tenant_count` is 1 (one tenant), the others 0.
//! - A paid charge shows the day it was paid: for a report on a past day, the day of the last
//!   payment counted; for today, that or, failing it, the day it became fully paid.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

use super::aging::{AgingBuckets, Bucket};
use super::clock::conakry_day;
use super::money::MoneyOverflow;

/// Where one charge stands on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeStanding {
    /// Amount due, >= 0.
    pub due: i64,
    /// Paid on it, 0..=due.
    pub paid: i64,
    /// `due - paid`.
    pub outstanding: i64,
    /// Days overdue as the API shows them (0 when nothing is outstanding or not yet overdue).
    pub days_overdue: i32,
    /// `None` when nothing is outstanding or not yet overdue.
    pub bucket: Option<Bucket>,
}

impl ChargeStanding {
    /// A charge of `due_gnf` due on `due_date` with `paid_gnf` paid, seen on `day`.
    pub fn on(
        due_gnf: i64,
        paid_gnf: i64,
        due_date: NaiveDate,
        day: NaiveDate,
        aging: &AgingBuckets,
    ) -> Self {
        let due = due_gnf.max(0);
        let paid = paid_gnf.clamp(0, due);
        let outstanding = due - paid;
        let overdue = if outstanding > 0 {
            aging.overdue(due_date, day)
        } else {
            Default::default()
        };
        Self {
            due,
            paid,
            outstanding,
            days_overdue: overdue.days,
            bucket: overdue.bucket,
        }
    }
}

/// A charge due on or before the report day, with what had been paid on it by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargePaid {
    pub charge_id: i64,
    /// First day of the month the rent is for.
    pub period: NaiveDate,
    pub due_date: NaiveDate,
    pub due_gnf: i64,
    pub paid_gnf: i64,
    /// When the latest payment or reversal counted in `paid_gnf` occurred.
    pub last_paid_at: Option<DateTime<Utc>>,
    /// When the charge became fully paid (current figures only).
    pub paid_in_full_at: Option<DateTime<Utc>>,
}

/// One charge of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrearsLine {
    pub charge_id: i64,
    pub period: NaiveDate,
    pub due_date: NaiveDate,
    pub standing: ChargeStanding,
    /// The Africa/Conakry day a fully paid charge was paid.
    pub paid_on: Option<NaiveDate>,
}

/// The outstanding amount of one aging bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgingLine {
    pub bucket: Bucket,
    pub outstanding: i64,
    pub charge_count: i64,
    /// 1 for the bucket of the oldest unpaid charge, else 0.
    pub tenant_count: i64,
}

/// The arrears of one tenant on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrears {
    /// Oldest first.
    pub lines: Vec<ArrearsLine>,
    pub total_due: i64,
    pub total_paid: i64,
    pub outstanding: i64,
    /// Of the oldest unpaid charge.
    pub days_overdue: i32,
    /// The four buckets, youngest first.
    pub aging: Vec<AgingLine>,
}

/// The arrears on `as_of` from the tenant's charges due by then, oldest first (see the module's
/// decisions). `current`: the paid figures are today's (a paid charge may then be dated by when
/// it became fully paid).
pub fn arrears(
    charges: &[ChargePaid],
    as_of: NaiveDate,
    include_paid: bool,
    current: bool,
    aging: &AgingBuckets,
) -> Result<Arrears, MoneyOverflow> {
    let paid_since = NaiveDate::from_ymd_opt(as_of.year(), as_of.month(), 1)
        .and_then(|first| first.checked_sub_months(Months::new(11)))
        .unwrap_or(NaiveDate::MIN);
    let mut report = Arrears {
        lines: Vec::new(),
        total_due: 0,
        total_paid: 0,
        outstanding: 0,
        days_overdue: 0,
        aging: Vec::new(),
    };
    // (outstanding, charge count) per bucket, youngest first.
    let mut buckets = [(0_i64, 0_i64); 4];
    let mut oldest_bucket: Option<Bucket> = None;
    let add = |a: i64, b: i64| a.checked_add(b).ok_or(MoneyOverflow);
    for charge in charges {
        let standing = ChargeStanding::on(
            charge.due_gnf,
            charge.paid_gnf,
            charge.due_date,
            as_of,
            aging,
        );
        if standing.outstanding == 0 && !(include_paid && charge.period >= paid_since) {
            continue;
        }
        if standing.outstanding > 0 && report.outstanding == 0 {
            // Charges come oldest first: the first unpaid one is the oldest.
            report.days_overdue = standing.days_overdue;
            oldest_bucket = standing.bucket;
        }
        if let Some(bucket) = standing.bucket {
            let slot = &mut buckets[bucket.index()];
            slot.0 = add(slot.0, standing.outstanding)?;
            slot.1 += 1;
        }
        let paid_on = if standing.outstanding == 0 && standing.due > 0 {
            charge
                .last_paid_at
                .or(if current {
                    charge.paid_in_full_at
                } else {
                    None
                })
                .map(conakry_day)
        } else {
            None
        };
        report.total_due = add(report.total_due, standing.due)?;
        report.total_paid = add(report.total_paid, standing.paid)?;
        report.outstanding = add(report.outstanding, standing.outstanding)?;
        report.lines.push(ArrearsLine {
            charge_id: charge.charge_id,
            period: charge.period,
            due_date: charge.due_date,
            standing,
            paid_on,
        });
    }
    report.aging = Bucket::ALL
        .into_iter()
        .map(|bucket| {
            let (outstanding, charge_count) = buckets[bucket.index()];
            AgingLine {
                bucket,
                outstanding,
                charge_count,
                tenant_count: i64::from(oldest_bucket == Some(bucket)),
            }
        })
        .collect();
    Ok(report)
}

/// A tenant's open charges summed up (the read model `tenant_open`, migration
/// `20261130213000`): enough to know what the tenant owes on any day without its charges, but
/// in one rare case ([`Owed::ReadCharges`]). An open charge is one with something outstanding
/// (`ChargeStanding`'s clamps: due never below 0, paid within 0..=due).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenCharges {
    /// Σ outstanding of the open charges, GNF (0: none).
    pub open_gnf: i64,
    /// The earliest due date of the open charges.
    pub first_due: Option<NaiveDate>,
    /// The latest.
    pub last_due: Option<NaiveDate>,
    /// Σ outstanding of the open charges due on `last_due`, GNF.
    pub last_gnf: i64,
    /// The latest due date of the open charges due before `last_due`.
    pub before_last_due: Option<NaiveDate>,
}

/// What a tenant owes on a day, from its [`OpenCharges`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owed {
    /// Nothing due by the day is unpaid.
    Nothing,
    /// `outstanding` GNF (> 0) on the charges due by the day, the oldest of them due on
    /// `oldest_due` (the report's `outstanding` and oldest unpaid line of [`arrears`]).
    Owes {
        outstanding: i64,
        oldest_due: NaiveDate,
    },
    /// Two open due dates or more fall after the day while one at least falls on or before it:
    /// the figures do not tell how much of the later charges is already due. The caller sums
    /// the tenant's open charges due by the day (only then does it read them); the oldest due
    /// date is still `oldest_due`.
    ReadCharges { oldest_due: NaiveDate },
}

impl OpenCharges {
    /// The summary of `charges` (any order). Errors when a sum overflows.
    pub fn of(charges: &[ChargePaid]) -> Result<Self, MoneyOverflow> {
        let mut open = Self::default();
        let open_charges = charges.iter().filter_map(|c| {
            let due = c.due_gnf.max(0);
            let outstanding = due - c.paid_gnf.clamp(0, due);
            (outstanding > 0).then_some((c.due_date, outstanding))
        });
        let add = |a: i64, b: i64| a.checked_add(b).ok_or(MoneyOverflow);
        for (due_date, outstanding) in open_charges {
            open.open_gnf = add(open.open_gnf, outstanding)?;
            open.first_due = open.first_due.min(Some(due_date)).or(Some(due_date));
            match open.last_due {
                Some(last) if due_date == last => open.last_gnf = add(open.last_gnf, outstanding)?,
                Some(last) if due_date < last => {
                    open.before_last_due = open.before_last_due.max(Some(due_date));
                }
                last => {
                    open.before_last_due = last;
                    open.last_due = Some(due_date);
                    open.last_gnf = outstanding;
                }
            }
        }
        Ok(open)
    }

    /// What the tenant owes on `day` (charges due on or before it), by the rule:
    /// - no open charge due by the day (`first_due` after it, or none): nothing;
    /// - `last_due` on or before the day: every open charge is due, `open_gnf`;
    /// - else `before_last_due` on or before the day: all but those due on `last_due`,
    ///   `open_gnf - last_gnf`;
    /// - else (two open due dates or more after the day): [`Owed::ReadCharges`].
    ///
    /// The oldest due date is always `first_due`. `store::markers` holds the SQL mirror of
    /// this rule.
    pub fn owed_on(&self, day: NaiveDate) -> Owed {
        let Some(oldest_due) = self.first_due.filter(|first| *first <= day) else {
            return Owed::Nothing;
        };
        if self.last_due.is_none_or(|last| last <= day) {
            Owed::Owes {
                outstanding: self.open_gnf,
                oldest_due,
            }
        } else if self.before_last_due.is_some_and(|before| before <= day) {
            Owed::Owes {
                outstanding: self.open_gnf - self.last_gnf,
                oldest_due,
            }
        } else {
            Owed::ReadCharges { oldest_due }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn charge(id: i64, due_date: NaiveDate, due: i64, paid: i64) -> ChargePaid {
        ChargePaid {
            charge_id: id,
            period: due_date.with_day(1).expect("first"),
            due_date,
            due_gnf: due,
            paid_gnf: paid,
            last_paid_at: (paid > 0).then(|| at("2026-01-10T10:00:00Z")),
            paid_in_full_at: None,
        }
    }

    #[test]
    fn arrears_buckets_totals_and_paid_months() {
        let as_of = day(2026, 6, 30);
        let rows = [
            charge(1, day(2025, 5, 5), 1_000, 1_000), // paid, more than 12 months ago
            charge(2, day(2026, 1, 5), 1_000, 1_000), // paid, recent
            charge(3, day(2026, 3, 5), 1_000, 400),   // 117 days: over 90
            charge(4, day(2026, 5, 31), 1_000, 0),    // 30 days: 0-30
            charge(5, day(2026, 6, 30), 1_000, 0),    // due today: not overdue
        ];
        let aging = AgingBuckets::default();
        let report = arrears(&rows, as_of, false, true, &aging).expect("report");
        let ids: Vec<i64> = report.lines.iter().map(|c| c.charge_id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert_eq!(report.outstanding, 600 + 1_000 + 1_000);
        assert_eq!(report.total_due, 3_000);
        assert_eq!(report.total_paid, 400);
        assert_eq!(report.days_overdue, 117);
        assert_eq!(report.lines[1].standing.days_overdue, 30);
        assert_eq!(report.lines[1].standing.bucket, Some(Bucket::Days0To30));
        assert_eq!(report.lines[2].standing.days_overdue, 0);
        assert_eq!(report.lines[2].standing.bucket, None);
        let aging_rows: Vec<(i64, i64, i64)> = report
            .aging
            .iter()
            .map(|a| (a.outstanding, a.charge_count, a.tenant_count))
            .collect();
        assert_eq!(
            aging_rows,
            [(1_000, 1, 0), (0, 0, 0), (0, 0, 0), (600, 1, 1)]
        );

        let with_paid = arrears(&rows, as_of, true, true, &aging).expect("report");
        let ids: Vec<i64> = with_paid.lines.iter().map(|c| c.charge_id).collect();
        assert_eq!(ids, [2, 3, 4, 5]);
        assert_eq!(with_paid.lines[0].paid_on, Some(day(2026, 1, 10)));
        assert_eq!(with_paid.outstanding, report.outstanding);
        assert_eq!(with_paid.total_paid, 1_400);
    }

    #[test]
    fn standings_clamp_what_the_database_says() {
        let aging = AgingBuckets::default();
        let due_date = day(2026, 3, 5);
        let overpaid = ChargeStanding::on(1_000, 1_500, due_date, day(2026, 6, 1), &aging);
        assert_eq!((overpaid.paid, overpaid.outstanding), (1_000, 0));
        assert_eq!((overpaid.days_overdue, overpaid.bucket), (0, None));
        let negative = ChargeStanding::on(-5, -1, due_date, day(2026, 6, 1), &aging);
        assert_eq!(
            (negative.due, negative.paid, negative.outstanding),
            (0, 0, 0)
        );
        let open = ChargeStanding::on(1_000, 200, due_date, day(2026, 4, 5), &aging);
        assert_eq!(
            (open.outstanding, open.days_overdue, open.bucket),
            (800, 31, Some(Bucket::Days31To60))
        );
        assert!(
            arrears(
                &[charge(1, due_date, i64::MAX, 0), charge(2, due_date, 1, 0)],
                day(2026, 6, 1),
                false,
                true,
                &aging,
            )
            .is_err()
        );
    }

    fn arb_charges() -> impl Strategy<Value = Vec<ChargePaid>> {
        // Due dates over ten days (so that several charges share one), amounts with zeros.
        proptest::collection::vec((0_u64..10, 0_i64..5, 0_i64..6), 0..8).prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (offset, due, paid))| {
                    let due_date = day(2026, 3, 1) + chrono::Days::new(offset);
                    let mut c = charge(i as i64, due_date, due * 1_000, paid * 1_000);
                    c.paid_gnf = c.paid_gnf.min(c.due_gnf);
                    c
                })
                .collect()
        })
    }

    proptest! {
        /// The summary's rule gives what `arrears` says of the charges due by the day; when it
        /// cannot, two open due dates or more do fall after the day.
        #[test]
        fn open_charges_owe_what_arrears_says(
            charges in arb_charges(),
            offset in 0_u64..12,
        ) {
            let on = day(2026, 2, 28) + chrono::Days::new(offset);
            let aging = AgingBuckets::default();
            let mut due_by: Vec<ChargePaid> =
                charges.iter().copied().filter(|c| c.due_date <= on).collect();
            due_by.sort_by_key(|c| (c.due_date, c.charge_id));
            let report = arrears(&due_by, on, false, true, &aging).expect("no overflow");
            let oldest = report.lines.first().map(|line| line.due_date);
            let open = OpenCharges::of(&charges).expect("no overflow");
            match open.owed_on(on) {
                Owed::Nothing => prop_assert_eq!(report.outstanding, 0),
                Owed::Owes { outstanding, oldest_due } => {
                    prop_assert!(outstanding > 0);
                    prop_assert_eq!(outstanding, report.outstanding);
                    prop_assert_eq!(Some(oldest_due), oldest);
                }
                Owed::ReadCharges { oldest_due } => {
                    prop_assert!(report.outstanding > 0);
                    prop_assert_eq!(Some(oldest_due), oldest);
                    let mut later: Vec<NaiveDate> = charges
                        .iter()
                        .filter(|c| c.due_date > on && c.paid_gnf < c.due_gnf)
                        .map(|c| c.due_date)
                        .collect();
                    later.sort();
                    later.dedup();
                    prop_assert!(later.len() >= 2, "{:?}", later);
                }
            }
        }
    }

    #[test]
    fn open_charges_sum_up_by_due_date() {
        let rows = [
            charge(1, day(2026, 1, 5), 1_000, 1_000), // paid: not open
            charge(2, day(2026, 2, 5), 1_000, 400),
            charge(3, day(2026, 3, 5), 1_000, 0),
            charge(4, day(2026, 3, 5), 500, 100),
            charge(5, day(2026, 1, 1), 0, 0), // nothing due: not open
        ];
        let open = OpenCharges::of(&rows).expect("no overflow");
        assert_eq!(
            open,
            OpenCharges {
                open_gnf: 600 + 1_000 + 400,
                first_due: Some(day(2026, 2, 5)),
                last_due: Some(day(2026, 3, 5)),
                last_gnf: 1_400,
                before_last_due: Some(day(2026, 2, 5)),
            }
        );
        assert_eq!(open.owed_on(day(2026, 2, 4)), Owed::Nothing);
        let oldest_due = day(2026, 2, 5);
        assert_eq!(
            open.owed_on(day(2026, 2, 5)),
            Owed::Owes {
                outstanding: 600,
                oldest_due
            }
        );
        assert_eq!(
            open.owed_on(day(2026, 3, 5)),
            Owed::Owes {
                outstanding: 2_000,
                oldest_due
            }
        );
        let later = [
            charge(1, day(2026, 1, 5), 1_000, 0),
            charge(2, day(2026, 2, 5), 1_000, 0),
            charge(3, day(2026, 3, 5), 1_000, 0),
        ];
        let open = OpenCharges::of(&later).expect("no overflow");
        assert_eq!(
            open.owed_on(day(2026, 1, 31)),
            Owed::ReadCharges {
                oldest_due: day(2026, 1, 5)
            }
        );
        assert_eq!(
            OpenCharges::of(&[]).map(|o| o.owed_on(day(2026, 1, 1))),
            Ok(Owed::Nothing)
        );
        assert!(
            OpenCharges::of(&[
                charge(1, day(2026, 1, 5), i64::MAX, 0),
                charge(2, day(2026, 1, 5), 1, 0)
            ])
            .is_err()
        );
    }
}
