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
}
