use chrono::{Days, Months, TimeZone};
use proptest::prelude::*;

use super::*;
use crate::domain::aging::AgingBuckets;
use crate::domain::arrears::arrears;

fn month(m: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, 1)
        .and_then(|d| d.checked_add_months(Months::new(m)))
        .expect("valid month")
}

fn charge(charge_id: i64, m: u32, due: i64) -> LedgerCharge {
    let period = month(m);
    LedgerCharge {
        charge_id,
        period,
        due_date: period + Days::new(4),
        due: Gnf::new(due),
    }
}

fn at(day: NaiveDate, secs: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
        + chrono::Duration::seconds(i64::from(secs))
}

fn payment(n: u128, occurred_at: DateTime<Utc>, amount: i64) -> LedgerPayment {
    LedgerPayment {
        payment_id: Uuid::from_u128(n),
        occurred_at,
        received_at: occurred_at,
        amount: Gnf::new(amount),
        reversed_at: None,
    }
}

fn paid(replayed: &Replayed) -> Vec<i64> {
    replayed.charges.iter().map(|c| c.paid.francs()).collect()
}

#[test]
fn a_reversed_payment_lets_the_credit_cover_the_reopened_month() {
    // Arrears of 3,750,000; P1 clears them, P2 becomes credit; P1 bounces.
    let charges = [charge(1, 0, 2_000_000), charge(2, 1, 1_750_000)];
    let mut payments = [
        payment(1, at(month(2), 3_600), 3_750_000),
        payment(2, at(month(2) + Days::new(3), 3_600), 5_000_000),
    ];
    let before = replay(&charges, &payments).expect("replay");
    assert_eq!(paid(&before), [2_000_000, 1_750_000]);
    assert_eq!(before.credit, Gnf::new(5_000_000));
    assert_eq!(before.credit_part(&payments[1]), Gnf::new(5_000_000));

    payments[0].reversed_at = Some(at(month(2) + Days::new(10), 0));
    let after = replay(&charges, &payments).expect("replay");
    assert_eq!(paid(&after), [2_000_000, 1_750_000]);
    assert_eq!(after.outstanding_due_by(month(3)), Gnf::ZERO);
    assert_eq!(after.credit, Gnf::new(1_250_000));
    assert_eq!(after.credit_part(&payments[1]), Gnf::new(1_250_000));
    assert_eq!(after.credit_part(&payments[0]), Gnf::ZERO);
    assert_eq!(after.lines_of(payments[0].payment_id).count(), 0);
    let p2: Vec<(i64, i64, i64)> = after
        .lines_of(payments[1].payment_id)
        .map(|l| (l.charge_id, l.amount.francs(), l.outstanding_after.francs()))
        .collect();
    assert_eq!(p2, [(1, 2_000_000, 0), (2, 1_750_000, 0)]);
}

#[test]
fn as_of_yesterday_ignores_todays_payment() {
    let charges = [charge(1, 0, 2_000_000), charge(2, 1, 2_350_000)];
    let today = month(3) + Days::new(9);
    let payments = [payment(1, at(today, 36_000), 6_350_000)];
    let yesterday = today - Days::new(1);
    let then = as_of(&charges, &payments, yesterday).expect("replay");
    assert_eq!(then.outstanding_due_by(yesterday), Gnf::new(4_350_000));
    assert_eq!(then.credit, Gnf::ZERO);
    let now = as_of(&charges, &payments, today).expect("replay");
    assert_eq!(now.outstanding_due_by(today), Gnf::ZERO);
    assert_eq!(now.credit, Gnf::new(2_000_000));
}

#[test]
fn a_reversal_counts_from_its_own_day() {
    let charges = [charge(1, 0, 1_000)];
    let mut p = payment(1, at(month(1), 0), 1_000);
    p.reversed_at = Some(at(month(1) + Days::new(5), 0));
    assert_eq!(
        as_of(&charges, &[p], month(1) + Days::new(4))
            .expect("replay")
            .outstanding_due_by(month(2)),
        Gnf::ZERO
    );
    assert_eq!(
        as_of(&charges, &[p], month(1) + Days::new(5))
            .expect("replay")
            .outstanding_due_by(month(2)),
        Gnf::new(1_000)
    );
}

#[test]
fn ties_go_by_received_at_then_id_and_zero_charges_are_skipped() {
    let charges = [charge(7, 1, 500), charge(3, 1, 0), charge(5, 0, 500)];
    let when = at(month(2), 0);
    let mut late = payment(1, when, 500);
    late.received_at = when + chrono::Duration::hours(1);
    let early = payment(2, when, 500);
    let replayed = replay(&charges, &[late, early]).expect("replay");
    let lines: Vec<(u128, i64)> = replayed
        .lines
        .iter()
        .map(|l| (l.payment_id.as_u128(), l.charge_id))
        .collect();
    assert_eq!(lines, [(2, 5), (1, 7)]);
    assert!(
        replayed
            .changed_charges(&[])
            .iter()
            .all(|c| c.charge.charge_id != 3)
    );
}

#[test]
fn line_changes_write_only_the_difference() {
    let p = Uuid::from_u128(1);
    let line = |charge_id, amount, after| Line {
        payment_id: p,
        charge_id,
        amount: Gnf::new(amount),
        outstanding_after: Gnf::new(after),
    };
    let stored = [line(1, 100, 0), line(2, 50, 50)];
    let target = [line(1, 100, 0), line(2, 100, 0), line(3, 20, 80)];
    let changes = line_changes(&stored, &target);
    assert_eq!(changes.insert, [line(3, 20, 80)]);
    assert_eq!(changes.update, [line(2, 100, 0)]);
    assert!(changes.delete.is_empty());
    assert_eq!(changes.len(), 2);
    assert_eq!(changes.apply(&stored), target);
    let back = line_changes(&target, &stored);
    assert_eq!(back.delete, [(p, 3)]);
    assert!(line_changes(&target, &target).is_empty());
}

#[test]
fn overflow_is_an_error() {
    let payments = [
        payment(1, at(month(0), 0), i64::MAX),
        payment(2, at(month(0), 1), i64::MAX),
    ];
    assert_eq!(replay(&[], &payments), Err(MoneyOverflow));
}

// ---------------------------------------------------------------------------------------------
// Properties

/// One write of the ledger, in upload order.
#[derive(Debug, Clone)]
enum Op {
    /// A charge for month `m` (skipped if the month has one already).
    Charge { m: u32, due: i64 },
    /// A payment that happened `minute` minutes after 2025-01-01 (any upload order: payments
    /// come back-dated), received `delay` minutes later.
    Pay {
        minute: u32,
        delay: u32,
        amount: i64,
    },
    /// The reversal of the `which`-th payment (modulo their count), if still valid.
    Reverse { which: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..24_u32, prop_oneof![Just(0_i64), 1..3_000_000_i64])
            .prop_map(|(m, due)| Op::Charge { m, due }),
        4 => (0..24 * 31 * 24 * 60_u32, 0..5 * 24 * 60_u32, 1..5_000_000_i64)
            .prop_map(|(minute, delay, amount)| Op::Pay { minute, delay, amount }),
        1 => any::<usize>().prop_map(|which| Op::Reverse { which }),
    ]
}

fn start() -> DateTime<Utc> {
    at(month(0), 0)
}

/// The store as the server keeps it: the lines of valid payments (replaceable), the frozen
/// lines of reversed payments and their reversals, the charges' paid figures, the credit.
#[derive(Default)]
struct Store {
    charges: Vec<LedgerCharge>,
    payments: Vec<LedgerPayment>,
    lines: Vec<Line>,
    frozen: Vec<(i64, i64)>,
    paid: BTreeMap<i64, (Gnf, Option<DateTime<Utc>>)>,
    credit: Gnf,
    writes: usize,
}

impl Store {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Charge { m, due } => {
                if self.charges.iter().any(|c| c.period == month(m)) {
                    return;
                }
                let id = 1_000 + self.charges.len() as i64 * 7 % 13 * 100 + i64::from(m);
                self.charges.push(charge(id, m, due));
                self.paid.insert(id, (Gnf::ZERO, None));
            }
            Op::Pay {
                minute,
                delay,
                amount,
            } => {
                let occurred_at = start() + chrono::Duration::minutes(i64::from(minute));
                let n = self.payments.len() as u128 + 1;
                self.payments.push(LedgerPayment {
                    received_at: occurred_at + chrono::Duration::minutes(i64::from(delay)),
                    ..payment(n.wrapping_mul(0x9E37_79B9_7F4A_7C15), occurred_at, amount)
                });
            }
            Op::Reverse { which } => {
                if self.payments.is_empty() {
                    return;
                }
                let i = which % self.payments.len();
                if self.payments[i].reversed_at.is_some() {
                    return;
                }
                let id = self.payments[i].payment_id;
                self.payments[i].reversed_at = Some(self.payments[i].occurred_at);
                // The payment's lines are frozen and a reversal entry negates them.
                let (gone, kept): (Vec<Line>, Vec<Line>) =
                    self.lines.iter().partition(|l| l.payment_id == id);
                self.lines = kept;
                for l in gone {
                    self.frozen.push((l.charge_id, l.amount.francs()));
                    self.frozen.push((l.charge_id, -l.amount.francs()));
                }
            }
        }
        // The replay under the tenant lock: only the difference is written.
        let replayed = replay(&self.charges, &self.payments).expect("no overflow");
        let changes = line_changes(&self.lines, &replayed.lines);
        self.writes += changes.len();
        self.lines = changes.apply(&self.lines);
        let stored: Vec<(i64, Gnf, Option<DateTime<Utc>>)> = self
            .paid
            .iter()
            .map(|(&id, &(p, at))| (id, p, at))
            .collect();
        for c in replayed.changed_charges(&stored) {
            self.paid
                .insert(c.charge.charge_id, (c.paid, c.paid_in_full_at));
        }
        self.credit = replayed.credit;
    }
}

fn sorted(lines: &[Line]) -> Vec<Line> {
    let mut lines = lines.to_vec();
    lines.sort_by_key(|l| (l.payment_id, l.charge_id));
    lines
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Applying the writes one by one, replaying each time and writing only the difference,
    /// ends where a replay from scratch does; money is conserved at every step.
    #[test]
    fn incremental_replays_equal_a_replay_from_scratch(ops in prop::collection::vec(op(), 1..60)) {
        let mut store = Store::default();
        for op in &ops {
            store.apply(op);
            let scratch = replay(&store.charges, &store.payments).expect("no overflow");
            prop_assert_eq!(sorted(&store.lines), sorted(&scratch.lines));
            prop_assert_eq!(store.credit, scratch.credit);
            let valid: i64 = store
                .payments
                .iter()
                .filter(|p| p.reversed_at.is_none())
                .map(|p| p.amount.francs())
                .sum();
            let allocated: i64 = store.lines.iter().map(|l| l.amount.francs()).sum();
            // Conservation: allocated + credit = sum of valid payments.
            prop_assert_eq!(allocated + store.credit.francs(), valid);
            prop_assert_eq!(scratch.paid_in.francs(), valid);
            let mut open = 0;
            for c in &scratch.charges {
                let id = c.charge.charge_id;
                let on_charge: i64 = store
                    .lines
                    .iter()
                    .filter(|l| l.charge_id == id)
                    .map(|l| l.amount.francs())
                    .chain(store.frozen.iter().filter(|f| f.0 == id).map(|f| f.1))
                    .sum();
                let (paid, full_at) = store.paid[&id];
                prop_assert_eq!(on_charge, c.paid.francs());
                if c.charge.due.is_positive() {
                    prop_assert_eq!(paid, c.paid);
                    prop_assert_eq!(full_at, c.paid_in_full_at);
                    prop_assert_eq!(full_at.is_some(), c.paid == c.charge.due);
                }
                prop_assert!(c.paid <= c.charge.due.at_least_zero() && !c.paid.is_negative());
                open += c.charge.due.at_least_zero().francs() - c.paid.francs();
            }
            // Credit and open charges never live together.
            prop_assert!(store.credit.is_zero() || open == 0);
        }
    }

    /// The lines are the overlap of cumulative sums: payment j pays charge i the length of
    /// [P_{j-1}, P_j) ∩ [C_{i-1}, C_i); outstanding_after is the charge's due less its
    /// overlap with [0, P_j).
    #[test]
    fn lines_are_the_overlap_of_cumulative_sums(ops in prop::collection::vec(op(), 1..40)) {
        let mut store = Store::default();
        for op in &ops {
            store.apply(op);
        }
        let replayed = replay(&store.charges, &store.payments).expect("no overflow");
        let mut charges = store.charges.clone();
        charges.sort_by_key(|c| (c.period, c.charge_id));
        let mut payments: Vec<LedgerPayment> =
            store.payments.iter().filter(|p| p.reversed_at.is_none()).copied().collect();
        payments.sort_by_key(LedgerPayment::order_key);
        let mut expected = Vec::new();
        let mut p_before = 0_i64;
        for p in &payments {
            let p_after = p_before + p.amount.francs();
            let mut c_before = 0_i64;
            for c in &charges {
                let c_after = c_before + c.due.francs();
                let overlap = p_after.min(c_after) - p_before.max(c_before);
                if overlap > 0 {
                    expected.push(Line {
                        payment_id: p.payment_id,
                        charge_id: c.charge_id,
                        amount: Gnf::new(overlap),
                        outstanding_after: Gnf::new(c_after - p_after.clamp(c_before, c_after)),
                    });
                }
                c_before = c_after;
            }
            p_before = p_after;
        }
        prop_assert_eq!(&replayed.lines, &expected);
        let total_due: i64 = charges.iter().map(|c| c.due.francs()).sum();
        prop_assert_eq!(replayed.credit.francs(), (p_before - total_due).max(0));
    }

    /// For every as-of day (the days around each due date and aging bound included), the
    /// report's bucket totals add up exactly to what is overdue, and with what is due that
    /// very day to the outstanding amount; a day after everything is the current replay.
    #[test]
    fn aging_adds_up_on_every_day(
        ops in prop::collection::vec(op(), 1..40),
        extra in prop::collection::vec(0..800_u64, 4),
    ) {
        let mut store = Store::default();
        for op in &ops {
            store.apply(op);
        }
        let aging = AgingBuckets::default();
        let mut days: Vec<NaiveDate> = extra.iter().map(|&d| month(0) + Days::new(d)).collect();
        for c in &store.charges {
            for offset in [-1_i64, 0, 1, 30, 31, 60, 61, 90, 91] {
                days.push(c.due_date + chrono::Duration::days(offset));
            }
        }
        for p in &store.payments {
            days.push(conakry_day(p.occurred_at));
        }
        for day in days {
            let replayed = as_of(&store.charges, &store.payments, day).expect("no overflow");
            let report = arrears(&replayed.charges_due_by(day), day, false, false, &aging)
                .expect("no overflow");
            let buckets: i64 = report.aging.iter().map(|a| a.outstanding).sum();
            let overdue: i64 = report
                .lines
                .iter()
                .filter(|l| l.due_date < day)
                .map(|l| l.standing.outstanding)
                .sum();
            let due_today: i64 = report
                .lines
                .iter()
                .filter(|l| l.due_date == day)
                .map(|l| l.standing.outstanding)
                .sum();
            prop_assert_eq!(buckets, overdue);
            prop_assert_eq!(buckets + due_today, report.outstanding);
            prop_assert_eq!(report.outstanding, replayed.outstanding_due_by(day).francs());
            let counted: i64 = report.aging.iter().map(|a| a.charge_count).sum();
            prop_assert_eq!(
                counted,
                report.lines.iter().filter(|l| l.standing.bucket.is_some()).count() as i64
            );
            // Nothing after the day counts.
            let counted_only_past = replayed.lines.iter().all(|l| {
                store.payments.iter().any(|p| {
                    p.payment_id == l.payment_id && conakry_day(p.occurred_at) <= day
                })
            });
            prop_assert!(counted_only_past);
        }
        let end = month(30);
        prop_assert_eq!(
            as_of(&store.charges, &store.payments, end).expect("no overflow"),
            replay(&store.charges, &store.payments).expect("no overflow")
        );
    }

    /// A payment that sorts after every other one, appended from the open charges and the
    /// credit, gives what the replay from scratch gives: its lines, the open charges' outcomes,
    /// the credit; nothing else moves.
    #[test]
    fn appending_a_later_payment_equals_a_replay_from_scratch(
        ops in prop::collection::vec(op(), 0..50),
        after in 0..3 * 24 * 60_i64,
        amount in 1..12_000_000_i64,
    ) {
        let mut store = Store::default();
        for op in &ops {
            store.apply(op);
        }
        let before = replay(&store.charges, &store.payments).expect("no overflow");
        let last = store
            .payments
            .iter()
            .map(|p| p.occurred_at)
            .max()
            .unwrap_or_else(start);
        let occurred_at = last + chrono::Duration::minutes(after);
        let latest = store.payments.iter().map(|p| p.received_at).max().unwrap_or_else(start);
        let new = LedgerPayment {
            received_at: latest.max(occurred_at) + chrono::Duration::seconds(1),
            ..payment(u128::MAX, occurred_at, amount)
        };
        prop_assert!(store.payments.iter().all(|p| p.order_key() < new.order_key()));
        let open: Vec<ChargeOutcome> = before
            .charges
            .iter()
            .filter(|c| c.paid < c.charge.due.at_least_zero())
            .copied()
            .collect();
        let appended = append(&open, before.credit, &new).expect("no overflow");

        let mut payments = store.payments.clone();
        payments.push(new);
        let scratch = replay(&store.charges, &payments).expect("no overflow");
        let new_lines: Vec<Line> = scratch.lines_of(new.payment_id).copied().collect();
        prop_assert_eq!(&appended.lines, &new_lines);
        let others: Vec<Line> = scratch
            .lines
            .iter()
            .filter(|l| l.payment_id != new.payment_id)
            .copied()
            .collect();
        prop_assert_eq!(&others, &before.lines);
        prop_assert_eq!(appended.credit, scratch.credit);
        prop_assert_eq!(appended.paid_in, Gnf::new(amount));
        prop_assert_eq!(appended.charges.len(), open.len());
        for c in &scratch.charges {
            let id = c.charge.charge_id;
            match appended.charges.iter().find(|a| a.charge.charge_id == id) {
                Some(a) => {
                    prop_assert_eq!(a.paid, c.paid);
                    prop_assert_eq!(a.paid_in_full_at, c.paid_in_full_at);
                }
                None => {
                    let old = before.charges.iter().find(|b| b.charge.charge_id == id);
                    prop_assert_eq!(old.map(|b| (b.paid, b.paid_in_full_at)),
                                    Some((c.paid, c.paid_in_full_at)));
                }
            }
        }
        prop_assert_eq!(appended.credit_part(&new), scratch.credit_part(&new));
        for day in [month(0), month(6), month(12), month(24)] {
            prop_assert_eq!(appended.outstanding_due_by(day), scratch.outstanding_due_by(day));
        }
    }
}
