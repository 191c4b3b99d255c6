//! A tenant's ledger replayed: where the money of every valid payment goes, as a function of
//! the facts alone (charges, payments, reversals), whatever order they were uploaded in.
//!
//! Decisions (ADR 0010, `docs/adr/0010-ledger-replay.md`):
//! - Facts: charges, payments and reversals. Derived: the allocation of each payment to
//!   charges, what each charge has been paid (and when it became fully paid), the tenant's
//!   credit. [`replay`] derives them all at once.
//! - Charges are taken oldest first: by period, then charge id. Valid payments (not reversed)
//!   are taken in the order the money changed hands: by `occurred_at`, then `received_at`
//!   (the server's receipt order), then payment id, so the order is total.
//! - FIFO matching of the sorted payments against the sorted charges is the overlap of
//!   cumulative sums: with `P_j` the total of the first `j` payments and `C_i` the total due
//!   on the first `i` charges, payment `j` pays charge `i` the length of
//!   `[P_{j-1}, P_j) ∩ [C_{i-1}, C_i)`. What no charge needs is the tenant's credit:
//!   `credit = sum(valid payments) - sum(allocated)`, never negative, and credit and open
//!   charges never live together.
//! - The figures as of a past day ([`as_of`]) are the same function over the charges issued by
//!   that day (period on or before it) and the payments that had happened by its end (Conakry
//!   day of `occurred_at` on or before it), a payment counting as valid unless its reversal had
//!   happened by then too.
//! - What the store holds is updated by difference ([`line_changes`], [`Replayed::changed_charges`]):
//!   a replay writes only the rows that change.
//! - A payment that sorts after every other payment of the tenant (the usual case: recorded as
//!   it happens) changes nothing that came before it: [`append`] derives its part from the
//!   open charges and the credit alone, equal to the replay from scratch.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::arrears::ChargePaid;
use super::clock::conakry_day;
use super::money::{Gnf, MoneyOverflow};

/// A charge of the tenant (a fact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerCharge {
    pub charge_id: i64,
    /// First day of the month the rent is for.
    pub period: NaiveDate,
    pub due_date: NaiveDate,
    /// Amount due, GNF (a negative figure counts as 0).
    pub due: Gnf,
}

/// A payment of the tenant (a fact), with when its reversal happened, if it was reversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerPayment {
    pub payment_id: Uuid,
    /// When the money changed hands (the device's time).
    pub occurred_at: DateTime<Utc>,
    /// When the server received it: the receipt order, second sort key.
    pub received_at: DateTime<Utc>,
    /// GNF, > 0 (a negative figure counts as 0).
    pub amount: Gnf,
    /// `occurred_at` of the reversal entry that cancels it, if any.
    pub reversed_at: Option<DateTime<Utc>>,
}

impl LedgerPayment {
    /// The replay order: occurred_at, then received_at, then id.
    pub fn order_key(&self) -> (DateTime<Utc>, DateTime<Utc>, Uuid) {
        (self.occurred_at, self.received_at, self.payment_id)
    }
}

/// The part of a payment applied to one charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub payment_id: Uuid,
    pub charge_id: i64,
    /// > 0.
    pub amount: Gnf,
    /// What remained to pay on the charge right after this line, in replay order (>= 0).
    pub outstanding_after: Gnf,
}

/// Where one charge stands after the replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeOutcome {
    pub charge: LedgerCharge,
    /// Paid on it, 0..=due.
    pub paid: Gnf,
    /// `occurred_at` of the payment whose line completed it (None while open, and for a
    /// charge of nothing due, which no line touches).
    pub paid_in_full_at: Option<DateTime<Utc>>,
    /// `occurred_at` of the last payment with a line on it.
    pub last_paid_at: Option<DateTime<Utc>>,
}

/// The derived figures of a tenant's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replayed {
    /// Every line, in replay order (payments in order, each one's charges oldest first).
    pub lines: Vec<Line>,
    /// Every charge given, oldest first (period, then id).
    pub charges: Vec<ChargeOutcome>,
    /// What no charge needed: `sum(valid payments) - sum(lines)`, >= 0.
    pub credit: Gnf,
    /// Sum of the valid payments replayed.
    pub paid_in: Gnf,
}

/// Replays the valid payments among `payments` (those with no `reversed_at`) over `charges`
/// (any order each; ids are unique). Errors only when a sum overflows i64.
pub fn replay(
    charges: &[LedgerCharge],
    payments: &[LedgerPayment],
) -> Result<Replayed, MoneyOverflow> {
    let mut charges: Vec<ChargeOutcome> = charges
        .iter()
        .map(|&charge| ChargeOutcome {
            charge,
            paid: Gnf::ZERO,
            paid_in_full_at: None,
            last_paid_at: None,
        })
        .collect();
    charges.sort_by_key(|c| (c.charge.period, c.charge.charge_id));
    let mut valid: Vec<&LedgerPayment> = payments
        .iter()
        .filter(|p| p.reversed_at.is_none())
        .collect();
    valid.sort_by_key(|p| p.order_key());

    let mut lines = Vec::new();
    let mut credit = Gnf::ZERO;
    let mut paid_in = Gnf::ZERO;
    // The charge being filled and what it still needs.
    let mut current = 0;
    let mut needs = charges
        .first()
        .map_or(Gnf::ZERO, |c| c.charge.due.at_least_zero());
    for payment in valid {
        let mut left = payment.amount.at_least_zero();
        paid_in = paid_in.try_add(left)?;
        while left.is_positive() && current < charges.len() {
            if needs.is_zero() {
                current += 1;
                needs = charges
                    .get(current)
                    .map_or(Gnf::ZERO, |c| c.charge.due.at_least_zero());
                continue;
            }
            let take = left.min(needs);
            // 0 < take <= needs, take <= left: no subtraction can overflow.
            needs = Gnf::new(needs.francs() - take.francs());
            left = Gnf::new(left.francs() - take.francs());
            lines.push(pay_line(&mut charges[current], payment, take, needs));
        }
        credit = credit.try_add(left)?;
    }
    Ok(Replayed {
        lines,
        charges,
        credit,
        paid_in,
    })
}

/// [`replay`] of a ledger whose every other payment (valid or reversed) sorts before `payment`
/// (by [`LedgerPayment::order_key`]), from where the replay of those others left the charges:
/// `open`, the outcomes of the charges not fully paid (any order), and `credit`, the credit.
/// The charges already paid and the other payments' lines are the replay's before `payment`,
/// unchanged: FIFO takes `payment` after all the others, from the oldest open charge (the
/// "append" case that needs no reprocessing, as in Fineract's loan transaction processing).
///
/// Answers the lines of `payment` alone, the outcomes of the `open` charges after it (oldest
/// first) and the credit after it; `paid_in` is `payment`'s amount. Errors only when a sum
/// overflows i64. `append(open, credit, p)` equals `replay(charges, others + [p])` on those
/// parts: a property test checks it against the replay from scratch.
pub fn append(
    open: &[ChargeOutcome],
    credit: Gnf,
    payment: &LedgerPayment,
) -> Result<Replayed, MoneyOverflow> {
    let mut charges = open.to_vec();
    charges.sort_by_key(|c| (c.charge.period, c.charge.charge_id));
    let mut left = payment.amount.at_least_zero();
    let paid_in = left;
    let mut lines = Vec::new();
    for outcome in &mut charges {
        let needs = outcome.charge.due.at_least_zero().francs() - outcome.paid.francs();
        if !left.is_positive() || needs <= 0 {
            continue;
        }
        let take = left.min(Gnf::new(needs));
        // 0 < take <= needs, take <= left: no subtraction can overflow.
        left = Gnf::new(left.francs() - take.francs());
        let after = Gnf::new(needs - take.francs());
        lines.push(pay_line(outcome, payment, take, after));
    }
    Ok(Replayed {
        lines,
        charges,
        credit: credit.try_add(left)?,
        paid_in,
    })
}

/// Pays `take` of `payment` on `outcome`, which then still needs `after` (its paid figure
/// stays within what is due: no overflow), and answers the line.
fn pay_line(outcome: &mut ChargeOutcome, payment: &LedgerPayment, take: Gnf, after: Gnf) -> Line {
    outcome.paid = Gnf::new(outcome.paid.francs() + take.francs());
    outcome.last_paid_at = Some(payment.occurred_at);
    if after.is_zero() {
        outcome.paid_in_full_at = Some(payment.occurred_at);
    }
    Line {
        payment_id: payment.payment_id,
        charge_id: outcome.charge.charge_id,
        amount: take,
        outstanding_after: after,
    }
}

/// The figures as they stood at the end of `day`: [`replay`] over the charges issued by then
/// (period on or before `day`) and the payments that had happened by then (Conakry day of
/// `occurred_at` on or before `day`), a payment reversed only if its reversal had happened by
/// then too.
pub fn as_of(
    charges: &[LedgerCharge],
    payments: &[LedgerPayment],
    day: NaiveDate,
) -> Result<Replayed, MoneyOverflow> {
    let issued: Vec<LedgerCharge> = charges
        .iter()
        .filter(|c| c.period <= day)
        .copied()
        .collect();
    let happened: Vec<LedgerPayment> = payments
        .iter()
        .filter(|p| conakry_day(p.occurred_at) <= day)
        .map(|p| LedgerPayment {
            reversed_at: p.reversed_at.filter(|&at| conakry_day(at) <= day),
            ..*p
        })
        .collect();
    replay(&issued, &happened)
}

impl Replayed {
    /// The lines of one payment, oldest charge first.
    pub fn lines_of(&self, payment_id: Uuid) -> impl Iterator<Item = &Line> {
        self.lines
            .iter()
            .filter(move |l| l.payment_id == payment_id)
    }

    /// What of `payment` went to no charge: its amount less its lines (0 for a payment not
    /// replayed).
    pub fn credit_part(&self, payment: &LedgerPayment) -> Gnf {
        if payment.reversed_at.is_some() {
            return Gnf::ZERO;
        }
        let allocated: i64 = self
            .lines_of(payment.payment_id)
            .map(|l| l.amount.francs())
            .sum();
        Gnf::new(payment.amount.at_least_zero().francs() - allocated)
    }

    /// Outstanding on the charges due by `day` (due date on or before it).
    pub fn outstanding_due_by(&self, day: NaiveDate) -> Gnf {
        Gnf::new(
            self.charges
                .iter()
                .filter(|c| c.charge.due_date <= day)
                .map(|c| c.charge.due.at_least_zero().francs() - c.paid.francs())
                .sum(),
        )
    }

    /// The charges due by `day` as the arrears report takes them (`domain::arrears`): by due
    /// date, then period, then id, with what had been paid on each.
    pub fn charges_due_by(&self, day: NaiveDate) -> Vec<ChargePaid> {
        let mut due: Vec<ChargePaid> = self
            .charges
            .iter()
            .filter(|c| c.charge.due_date <= day)
            .map(|c| ChargePaid {
                charge_id: c.charge.charge_id,
                period: c.charge.period,
                due_date: c.charge.due_date,
                due_gnf: c.charge.due.francs(),
                paid_gnf: c.paid.francs(),
                last_paid_at: c.last_paid_at,
                paid_in_full_at: c.paid_in_full_at,
            })
            .collect();
        due.sort_by_key(|c| (c.due_date, c.period, c.charge_id));
        due
    }

    /// The charges whose stored figures differ from the replay's; `stored` is (charge id,
    /// paid, paid_in_full_at) as the store holds them. A charge of nothing due is never
    /// changed (no line touches it).
    pub fn changed_charges(
        &self,
        stored: &[(i64, Gnf, Option<DateTime<Utc>>)],
    ) -> Vec<ChargeOutcome> {
        let stored: BTreeMap<i64, (Gnf, Option<DateTime<Utc>>)> = stored
            .iter()
            .map(|&(id, paid, at)| (id, (paid, at)))
            .collect();
        self.charges
            .iter()
            .filter(|c| c.charge.due.is_positive())
            .filter(|c| stored.get(&c.charge.charge_id) != Some(&(c.paid, c.paid_in_full_at)))
            .copied()
            .collect()
    }
}

/// What turns the stored lines of the valid payments into the replayed ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineChanges {
    /// New (payment, charge) lines.
    pub insert: Vec<Line>,
    /// Lines whose amount or outstanding_after changes.
    pub update: Vec<Line>,
    /// (payment id, charge id) of lines that go.
    pub delete: Vec<(Uuid, i64)>,
}

impl LineChanges {
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }

    /// Rows written: inserted + updated + deleted.
    pub fn len(&self) -> usize {
        self.insert.len() + self.update.len() + self.delete.len()
    }

    /// `stored` with these changes applied, sorted by (payment id, charge id).
    pub fn apply(&self, stored: &[Line]) -> Vec<Line> {
        let mut rows: BTreeMap<(Uuid, i64), Line> = stored
            .iter()
            .map(|l| ((l.payment_id, l.charge_id), *l))
            .collect();
        for key in &self.delete {
            rows.remove(key);
        }
        for line in self.insert.iter().chain(&self.update) {
            rows.insert((line.payment_id, line.charge_id), *line);
        }
        rows.into_values().collect()
    }
}

/// The difference between the `stored` lines of the valid payments and the `target` ones
/// (each at most one line per payment and charge).
pub fn line_changes(stored: &[Line], target: &[Line]) -> LineChanges {
    let stored: BTreeMap<(Uuid, i64), &Line> = stored
        .iter()
        .map(|l| ((l.payment_id, l.charge_id), l))
        .collect();
    let target: BTreeMap<(Uuid, i64), &Line> = target
        .iter()
        .map(|l| ((l.payment_id, l.charge_id), l))
        .collect();
    let mut changes = LineChanges::default();
    for (key, &line) in &target {
        match stored.get(key) {
            None => changes.insert.push(*line),
            Some(&old) if old != line => changes.update.push(*line),
            Some(_) => {}
        }
    }
    changes.delete = stored
        .keys()
        .filter(|key| !target.contains_key(key))
        .copied()
        .collect();
    changes
}

#[cfg(test)]
mod tests;
