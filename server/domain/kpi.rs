//! Dashboard key figures over charges: the collection rate of a span of due dates, the
//! punctuality rate (share of charges paid in full by their due date), the good-payer ranking
//! (« bons payeurs ») and the pairing of a day's report lines with the day before. Arrears and
//! aging stay in `domain::arrears` and `domain::aging`; the day's activity sums in
//! `domain::daily`.
//!
//! Decisions:
//! - Input is one [`ChargeFacts`] per charge, read from the raw rows: the amount due, what is
//!   paid on it now (net of reversals), what was paid by the end of its due date (allocations
//!   of payments that occurred on or before the due date, Africa/Conakry, net of the reversal
//!   of those payments whenever it occurred), and the day it became fully paid.
//! - A charge of 0 GNF asks nothing of the tenant: it is counted neither in a collection rate
//!   nor in punctuality.
//! - Collection rate: paid / due over the charges whose due date falls in the span, within
//!   0..1, 0 when nothing is due (`domain::daily::collection_rate`).
//! - Punctuality: on-time charges / charges; a charge is on time when what was paid by the end
//!   of its due date covers it. 0 when there is no charge.
//! - Good payers: tenants with at least `min_charges` charges, ranked by punctuality with
//!   RANK() semantics (equal rates share a rank, the next rank skips); rates are compared as
//!   exact fractions, never as floats. Within a rank: paid amount (highest first), then name
//!   (case ignored), then id.
//! - Days early: per fully paid charge, its due date minus the day it became fully paid
//!   (positive: paid early); a tenant's figure is the mean over those charges, 0 without any.
//! - The day before a report day is the calendar day before. Report lines are paired by key:
//!   a key present on one day only gets zeros for the other (`Default`); the order is that of
//!   the report day's lines, then the keys seen only the day before, in their order.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::Hash;

use chrono::{Days, NaiveDate};
use uuid::Uuid;

use super::daily::collection_rate;
use super::money::MoneyOverflow;

/// What the raw rows say about one charge. Money in whole GNF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeFacts {
    pub tenant_id: Uuid,
    pub due_date: NaiveDate,
    /// Amount due, >= 0.
    pub due_gnf: i64,
    /// Paid on it now, net of reversals, 0..=due.
    pub paid_gnf: i64,
    /// Paid on it by the end of its due date (payments that occurred by then, net of their
    /// reversals), 0..=due.
    pub paid_by_due_date_gnf: i64,
    /// The Africa/Conakry day it became fully paid; `None` while something is outstanding.
    pub paid_in_full_on: Option<NaiveDate>,
}

impl ChargeFacts {
    /// Something is asked of the tenant (due > 0).
    pub fn counts(&self) -> bool {
        self.due_gnf > 0
    }

    /// Paid in full by the end of its due date.
    pub fn on_time(&self) -> bool {
        self.counts() && self.paid_by_due_date_gnf >= self.due_gnf
    }
}

/// Due and paid over the charges with a due date in `from..=to`, and their ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Collection {
    pub due_gnf: i64,
    pub paid_gnf: i64,
    /// paid / due within 0..1, 0 when nothing is due.
    pub rate: f64,
}

/// The collection of the charges falling due in `from..=to` (inclusive days).
pub fn collection(
    charges: &[ChargeFacts],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Collection, MoneyOverflow> {
    let mut due = 0_i64;
    let mut paid = 0_i64;
    for charge in charges
        .iter()
        .filter(|c| c.counts() && (from..=to).contains(&c.due_date))
    {
        due = due.checked_add(charge.due_gnf).ok_or(MoneyOverflow)?;
        let paid_on_it = charge.paid_gnf.clamp(0, charge.due_gnf);
        paid = paid.checked_add(paid_on_it).ok_or(MoneyOverflow)?;
    }
    Ok(Collection {
        due_gnf: due,
        paid_gnf: paid,
        rate: collection_rate(paid, due),
    })
}

/// How many charges were paid by their due date.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Punctuality {
    /// Charges with something due.
    pub charges_count: i64,
    /// Of which paid in full by their due date.
    pub on_time_count: i64,
}

impl Punctuality {
    /// Counts `charges` (0 GNF charges left out).
    pub fn of<'a>(charges: impl IntoIterator<Item = &'a ChargeFacts>) -> Self {
        let mut out = Self::default();
        for charge in charges.into_iter().filter(|c| c.counts()) {
            out.charges_count += 1;
            out.on_time_count += i64::from(charge.on_time());
        }
        out
    }

    /// on time / charges, 0..1; 0 when there is no charge.
    pub fn rate(&self) -> f64 {
        if self.charges_count == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = self.on_time_count as f64 / self.charges_count as f64;
        rate
    }

    /// Compares rates exactly (cross-multiplication), an empty count as 0.
    pub fn cmp_rate(&self, other: &Self) -> Ordering {
        let lhs = i128::from(self.on_time_count) * i128::from(other.charges_count.max(1));
        let rhs = i128::from(other.on_time_count) * i128::from(self.charges_count.max(1));
        lhs.cmp(&rhs)
    }
}

/// The punctuality of the charges falling due in `from..=to`.
pub fn punctuality(charges: &[ChargeFacts], from: NaiveDate, to: NaiveDate) -> Punctuality {
    Punctuality::of(charges.iter().filter(|c| (from..=to).contains(&c.due_date)))
}

/// A tenant the ranking may list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName {
    pub id: Uuid,
    pub full_name: String,
}

/// One ranked tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct GoodPayer {
    /// 1-based, RANK() semantics.
    pub rank: i32,
    pub tenant_id: Uuid,
    pub full_name: String,
    pub punctuality: Punctuality,
    /// Paid on the counted charges, GNF.
    pub paid_gnf: i64,
    /// Mean of due date minus the day fully paid, over fully paid charges (positive: early).
    pub average_days_early: f64,
}

/// The tenants of `tenants` with at least `min_charges` counted charges among `charges`,
/// ranked (see the module's decisions). Charges of tenants not listed are ignored.
pub fn good_payers(
    tenants: &[TenantName],
    charges: &[ChargeFacts],
    min_charges: i64,
) -> Result<Vec<GoodPayer>, MoneyOverflow> {
    #[derive(Default)]
    struct Acc {
        punctuality: Punctuality,
        paid: i64,
        days_early_sum: i64,
        fully_paid: i64,
    }
    let mut per_tenant: HashMap<Uuid, Acc> = HashMap::new();
    for charge in charges.iter().filter(|c| c.counts()) {
        let acc = per_tenant.entry(charge.tenant_id).or_default();
        acc.punctuality.charges_count += 1;
        acc.punctuality.on_time_count += i64::from(charge.on_time());
        acc.paid = acc
            .paid
            .checked_add(charge.paid_gnf.clamp(0, charge.due_gnf))
            .ok_or(MoneyOverflow)?;
        if let Some(day) = charge.paid_in_full_on {
            acc.days_early_sum += charge.due_date.signed_duration_since(day).num_days();
            acc.fully_paid += 1;
        }
    }
    let mut rows: Vec<GoodPayer> = tenants
        .iter()
        .filter_map(|tenant| {
            let acc = per_tenant.remove(&tenant.id)?;
            if acc.punctuality.charges_count < min_charges.max(1) {
                return None;
            }
            #[allow(clippy::cast_precision_loss)]
            let average_days_early = if acc.fully_paid == 0 {
                0.0
            } else {
                acc.days_early_sum as f64 / acc.fully_paid as f64
            };
            Some(GoodPayer {
                rank: 0,
                tenant_id: tenant.id,
                full_name: tenant.full_name.clone(),
                punctuality: acc.punctuality,
                paid_gnf: acc.paid,
                average_days_early,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.punctuality
            .cmp_rate(&a.punctuality)
            .then_with(|| b.paid_gnf.cmp(&a.paid_gnf))
            .then_with(|| a.full_name.to_lowercase().cmp(&b.full_name.to_lowercase()))
            .then_with(|| a.tenant_id.cmp(&b.tenant_id))
    });
    let mut rank = 0_i32;
    for i in 0..rows.len() {
        let tied = i > 0
            && rows[i]
                .punctuality
                .cmp_rate(&rows[i - 1].punctuality)
                .is_eq();
        if !tied {
            rank = i32::try_from(i + 1).unwrap_or(i32::MAX);
        }
        rows[i].rank = rank;
    }
    Ok(rows)
}

/// The calendar day before `day` (the report's comparison day).
pub fn previous_day(day: NaiveDate) -> NaiveDate {
    day.checked_sub_days(Days::new(1)).unwrap_or(day)
}

/// One line of a report next to the same line the day before.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared<K, F> {
    pub key: K,
    pub day: F,
    pub previous_day: F,
}

/// Pairs `day` and `previous` lines by key (see the module's decisions).
pub fn compare_days<K, F>(day: Vec<(K, F)>, previous: Vec<(K, F)>) -> Vec<Compared<K, F>>
where
    K: Eq + Hash + Clone,
    F: Default,
{
    let mut previous_order: Vec<K> = Vec::with_capacity(previous.len());
    let mut previous_of: HashMap<K, F> = HashMap::with_capacity(previous.len());
    for (key, figures) in previous {
        previous_order.push(key.clone());
        previous_of.insert(key, figures);
    }
    let mut out: Vec<Compared<K, F>> = day
        .into_iter()
        .map(|(key, figures)| Compared {
            previous_day: previous_of.remove(&key).unwrap_or_default(),
            key,
            day: figures,
        })
        .collect();
    for key in previous_order {
        if let Some(figures) = previous_of.remove(&key) {
            out.push(Compared {
                key,
                day: F::default(),
                previous_day: figures,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn charge(
        tenant: u128,
        due_date: NaiveDate,
        due: i64,
        paid: i64,
        by_due: i64,
        full_on: Option<NaiveDate>,
    ) -> ChargeFacts {
        ChargeFacts {
            tenant_id: Uuid::from_u128(tenant),
            due_date,
            due_gnf: due,
            paid_gnf: paid,
            paid_by_due_date_gnf: by_due,
            paid_in_full_on: full_on,
        }
    }

    #[test]
    fn collection_counts_charges_due_in_the_span() {
        let rows = [
            charge(1, day(2026, 5, 31), 1_000, 1_000, 1_000, None), // before the span
            charge(1, day(2026, 6, 5), 1_000, 600, 0, None),
            charge(2, day(2026, 6, 10), 3_000, 3_000, 3_000, None),
            charge(3, day(2026, 6, 10), 0, 0, 0, None), // nothing due
            charge(3, day(2026, 6, 20), 5_000, 0, 0, None), // after the span
        ];
        let c = collection(&rows, day(2026, 6, 1), day(2026, 6, 15)).expect("sum");
        assert_eq!((c.due_gnf, c.paid_gnf), (4_000, 3_600));
        assert_eq!(c.rate, 0.9);
        let none = collection(&rows, day(2027, 1, 1), day(2027, 1, 31)).expect("sum");
        assert_eq!((none.due_gnf, none.rate), (0, 0.0));
        let huge = [
            charge(1, day(2026, 6, 5), i64::MAX, 0, 0, None),
            charge(2, day(2026, 6, 5), 1, 0, 0, None),
        ];
        assert!(collection(&huge, day(2026, 6, 1), day(2026, 6, 30)).is_err());
    }

    #[test]
    fn punctuality_is_paid_in_full_by_the_due_date() {
        let rows = [
            charge(
                1,
                day(2026, 6, 5),
                1_000,
                1_000,
                1_000,
                Some(day(2026, 6, 5)),
            ),
            charge(1, day(2026, 7, 5), 1_000, 1_000, 999, Some(day(2026, 7, 6))), // late
            charge(1, day(2026, 8, 5), 1_000, 0, 0, None),
            charge(1, day(2026, 8, 6), 0, 0, 0, None), // nothing due: not counted
        ];
        let p = punctuality(&rows, day(2026, 1, 1), day(2026, 12, 31));
        assert_eq!((p.charges_count, p.on_time_count), (3, 1));
        assert_eq!(p.rate(), 1.0 / 3.0);
        assert_eq!(Punctuality::default().rate(), 0.0);
        let june = punctuality(&rows, day(2026, 6, 1), day(2026, 6, 30));
        assert_eq!(june.rate(), 1.0);
    }

    #[test]
    fn good_payers_rank_with_ties_and_skips() {
        let names = ["Bah", "alpha", "Camara", "Diallo", "Sow"];
        let tenants: Vec<TenantName> = names
            .iter()
            .enumerate()
            .map(|(i, n)| TenantName {
                id: Uuid::from_u128(i as u128 + 1),
                full_name: (*n).into(),
            })
            .collect();
        let d = |m| day(2026, m, 5);
        let on = |t, m, amount| charge(t, d(m), amount, amount, amount, Some(day(2026, m, 2)));
        let late = |t, m, amount| charge(t, d(m), amount, amount, 0, Some(day(2026, m, 9)));
        let rows = [
            // Bah: 2/2 on time, 2_000 paid, 3 days early on average.
            on(1, 1, 1_000),
            on(1, 2, 1_000),
            // alpha: 2/2, 2_000 paid: tie with Bah, alpha first by name (case ignored).
            on(2, 1, 1_000),
            on(2, 2, 1_000),
            // Camara: 2/2 with 5_000 paid: first within the tie.
            on(3, 1, 2_500),
            on(3, 2, 2_500),
            // Diallo: 1/2 on time: rank 4 (three share rank 1).
            on(4, 1, 1_000),
            late(4, 2, 1_000),
            // Sow: a single charge: below the minimum of 2.
            on(5, 1, 1_000),
        ];
        let ranked = good_payers(&tenants, &rows, 2).expect("ranking");
        let got: Vec<(i32, &str)> = ranked
            .iter()
            .map(|g| (g.rank, g.full_name.as_str()))
            .collect();
        assert_eq!(
            got,
            [(1, "Camara"), (1, "alpha"), (1, "Bah"), (4, "Diallo")]
        );
        assert_eq!(ranked[0].paid_gnf, 5_000);
        assert_eq!(ranked[2].average_days_early, 3.0);
        // Diallo: +3 and -4 days.
        assert_eq!(ranked[3].average_days_early, -0.5);
        assert_eq!(ranked[3].punctuality.rate(), 0.5);
    }

    #[test]
    fn report_lines_pair_with_the_day_before() {
        assert_eq!(previous_day(day(2026, 3, 1)), day(2026, 2, 28));
        let paired = compare_days(vec![("b", 2), ("a", 1)], vec![("c", 7), ("a", 5)]);
        let got: Vec<(&str, i32, i32)> = paired
            .iter()
            .map(|c| (c.key, c.day, c.previous_day))
            .collect();
        assert_eq!(got, [("b", 2, 0), ("a", 1, 5), ("c", 0, 7)]);
    }

    fn arb_charge() -> impl Strategy<Value = ChargeFacts> {
        (
            0_u128..6,
            0_u64..120,
            0_i64..5_000,
            0_i64..=100,
            0_i64..=100,
        )
            .prop_map(|(tenant, offset, due, paid_pct, by_due_pct)| {
                let paid = due * paid_pct / 100;
                let by_due = paid * by_due_pct / 100;
                let due_date = day(2026, 1, 1) + Days::new(offset);
                let full_on = (paid == due).then_some(due_date);
                charge(tenant, due_date, due, paid, by_due, full_on)
            })
    }

    proptest! {
        #[test]
        fn ranking_is_ordered_and_partitions_the_counts(
            rows in proptest::collection::vec(arb_charge(), 0..60),
            min in 0_i64..4,
        ) {
            let tenants: Vec<TenantName> = (0..6_u128)
                .map(|i| TenantName { id: Uuid::from_u128(i), full_name: format!("T{i}") })
                .collect();
            let ranked = good_payers(&tenants, &rows, min).expect("ranking");
            for pair in ranked.windows(2) {
                prop_assert!(pair[0].punctuality.cmp_rate(&pair[1].punctuality).is_ge());
                prop_assert!(pair[0].rank <= pair[1].rank);
                prop_assert_eq!(
                    pair[0].rank == pair[1].rank,
                    pair[0].punctuality.cmp_rate(&pair[1].punctuality).is_eq()
                );
            }
            if let Some(first) = ranked.first() {
                prop_assert_eq!(first.rank, 1);
            }
            for g in &ranked {
                prop_assert!(g.punctuality.charges_count >= min.max(1));
                let own: Vec<ChargeFacts> =
                    rows.iter().copied().filter(|c| c.tenant_id == g.tenant_id).collect();
                prop_assert_eq!(g.punctuality, Punctuality::of(&own));
            }
            // Every tenant's counts add up to the whole when nobody is filtered out.
            let all = good_payers(&tenants, &rows, 0).expect("ranking");
            let total: i64 = all.iter().map(|g| g.punctuality.charges_count).sum();
            prop_assert_eq!(total, Punctuality::of(&rows).charges_count);
            let rate = punctuality(&rows, day(2000, 1, 1), day(2100, 1, 1)).rate();
            prop_assert!((0.0..=1.0).contains(&rate));
        }
    }
}
