//! Where money goes: a payment pays the tenant's oldest open charges first (FIFO), what is left
//! becomes tenant credit; a newly issued charge consumes the credit; a reversal undoes exactly
//! what its payment did.
//!
//! What the server records is the replay of the whole ledger (`domain::ledger`), which
//! applies this FIFO rule to the payments in time order; the functions here serve the seed's
//! simulation, which allocates one payment at a time in time order.
//!
//! Decisions:
//! - A payment pays every open charge it is given, oldest period first, whether the charge is
//!   already due or not: the current month's charge, once issued, is paid before anything turns
//!   into credit. Which charges exist (are issued) is the caller's business; `due_date` plays no
//!   part in the order.
//! - Existing credit is not touched by a payment: credit and open charges normally never live
//!   together (credit arises only once every open charge is paid, and a new charge consumes it
//!   when issued). Where they do, after a reversal reopened charges, the caller may spend the
//!   credit with [`allocate_credit`].
//! - A reversal gives back the payment's credit part from the tenant's credit; when the credit
//!   has been spent since, [`reverse`] refuses with [`ReversalError::CreditAlreadyUsed`] and the
//!   API answers FAILED_PRECONDITION.
//!
//! Invariants (`docs/schema.md`, money invariants): for a payment,
//! `sum(lines) + to_credit = amount`; for its reversal, the same lines negated and
//! `credit_delta = -to_credit`.

use std::collections::HashSet;

use chrono::NaiveDate;

use super::money::{Gnf, PaymentAmount};

/// A charge that may still be paid, as read (and locked) from `charges`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenCharge {
    pub charge_id: i64,
    /// First day of the month the rent is for.
    pub period: NaiveDate,
    pub due_date: NaiveDate,
    pub due: Gnf,
    pub paid: Gnf,
}

impl OpenCharge {
    /// `due - paid`, never negative: a row paid beyond its due (which the database forbids)
    /// counts as settled.
    pub fn outstanding(&self) -> Gnf {
        Gnf::new(self.due.francs().saturating_sub(self.paid.francs()).max(0))
    }
}

/// The part of a payment applied to one charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocationLine {
    pub charge_id: i64,
    /// Applied to the charge, > 0.
    pub amount: Gnf,
    /// Outstanding on the charge right after this line, >= 0.
    pub outstanding_after: Gnf,
}

/// How an amount is spread: one line per charge it pays, oldest first, and the rest as credit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allocation {
    pub lines: Vec<AllocationLine>,
    /// What no open charge needed: added to the tenant's credit (>= 0).
    pub to_credit: Gnf,
}

impl Allocation {
    /// Sum of the lines (the amount minus `to_credit`).
    pub fn allocated(&self) -> Gnf {
        Gnf::new(self.lines.iter().fold(0_i64, |total, line| {
            total.saturating_add(line.amount.francs())
        }))
    }

    /// What is left to pay on those of `charges` due by `day` (due date on or before it) once
    /// this allocation of them is applied: the tenant's outstanding balance right after the
    /// payment, when `charges` are all its open charges.
    pub fn outstanding_due_by(&self, charges: &[OpenCharge], day: NaiveDate) -> Gnf {
        let mut outstanding = 0_i64;
        for charge in charges.iter().filter(|c| c.due_date <= day) {
            let allocated = self
                .lines
                .iter()
                .filter(|line| line.charge_id == charge.charge_id)
                .fold(0_i64, |sum, line| sum.saturating_add(line.amount.francs()));
            outstanding = outstanding.saturating_add(
                charge
                    .due
                    .francs()
                    .saturating_sub(charge.paid.francs())
                    .saturating_sub(allocated),
            );
        }
        Gnf::new(outstanding)
    }
}

/// Spreads a payment over `charges` (any order), oldest period first (ties: lower charge id);
/// the rest goes to credit. Charges with nothing outstanding are skipped; a charge id given
/// twice is taken once.
pub fn allocate(charges: &[OpenCharge], amount: PaymentAmount) -> Allocation {
    fifo(charges, amount.gnf())
}

/// Spends existing tenant credit on open charges, oldest first, like a payment;
/// `to_credit` is the credit left. A negative credit spends nothing.
pub fn allocate_credit(charges: &[OpenCharge], credit: Gnf) -> Allocation {
    fifo(charges, credit)
}

fn fifo(charges: &[OpenCharge], amount: Gnf) -> Allocation {
    let mut order: Vec<&OpenCharge> = charges.iter().collect();
    order.sort_by_key(|charge| (charge.period, charge.charge_id));
    let mut seen = HashSet::with_capacity(order.len());
    let mut remaining = amount.at_least_zero();
    let mut lines = Vec::new();
    for charge in order {
        if remaining.is_zero() {
            break;
        }
        if !seen.insert(charge.charge_id) {
            continue;
        }
        let outstanding = charge.outstanding();
        if outstanding.is_zero() {
            continue;
        }
        let take = remaining.min(outstanding);
        // 0 < take <= outstanding and take <= remaining: neither subtraction can overflow.
        lines.push(AllocationLine {
            charge_id: charge.charge_id,
            amount: take,
            outstanding_after: Gnf::new(outstanding.francs() - take.francs()),
        });
        remaining = Gnf::new(remaining.francs() - take.francs());
    }
    Allocation {
        lines,
        to_credit: remaining,
    }
}

/// What tenant credit does to a newly issued charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditUse {
    /// Taken from the credit and allocated to the charge: `min(credit, due)`.
    pub used: Gnf,
    pub credit_after: Gnf,
    pub outstanding_after: Gnf,
}

/// A new charge of `due` consumes the tenant's `credit` (negative inputs count as zero).
pub fn apply_credit_to_new_charge(credit: Gnf, due: Gnf) -> CreditUse {
    let credit = credit.at_least_zero();
    let due = due.at_least_zero();
    let used = credit.min(due);
    CreditUse {
        used,
        credit_after: Gnf::new(credit.francs() - used.francs()),
        outstanding_after: Gnf::new(due.francs() - used.francs()),
    }
}

/// One line of a reversal entry: the charge and the (negative) amount taken back from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReversalLine {
    pub charge_id: i64,
    /// `-(what the payment allocated to the charge)`, < 0.
    pub amount: Gnf,
}

/// What reversing a payment does: its allocations negated, and its credit part removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    pub lines: Vec<ReversalLine>,
    /// Change to the tenant's credit: `-credit_part`, <= 0.
    pub credit_delta: Gnf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReversalError {
    /// The payment's credit part has been spent on later charges since: the tenant's credit is
    /// `missing` francs short of it. Answered FAILED_PRECONDITION.
    #[error("the credit from this payment has already been used ({missing} missing)")]
    CreditAlreadyUsed { missing: Gnf },
    /// An allocation of the payment is not positive, or names a charge twice.
    #[error("allocation of charge {charge_id} is not a positive, single amount")]
    InvalidAllocation { charge_id: i64 },
    /// The allocations add up to more than the payment (or out of range).
    #[error("allocations exceed the payment's amount")]
    AllocationsExceedPayment,
    /// A negative credit part or tenant credit.
    #[error("credit must not be negative")]
    NegativeCredit,
}

/// The payment's credit part: `payment_amount - sum(allocations)`, the part that went to the
/// tenant's credit when it was recorded (the `payments` table does not store it).
pub fn credit_part_of(
    payment_amount: Gnf,
    allocations_of_payment: &[(i64, Gnf)],
) -> Result<Gnf, ReversalError> {
    let allocated = Gnf::checked_sum(allocations_of_payment.iter().map(|&(_, amount)| amount))
        .map_err(|_| ReversalError::AllocationsExceedPayment)?;
    match payment_amount.checked_sub(allocated) {
        Some(credit) if !credit.is_negative() => Ok(credit),
        _ => Err(ReversalError::AllocationsExceedPayment),
    }
}

/// Reverses a payment that allocated `allocations_of_payment` (charge id, amount > 0) and
/// put `credit_part` into the tenant's credit, which now stands at `current_credit`. The
/// reversal reopens exactly those charges by the same amounts, in the same order.
pub fn reverse(
    allocations_of_payment: &[(i64, Gnf)],
    credit_part: Gnf,
    current_credit: Gnf,
) -> Result<Reversal, ReversalError> {
    if credit_part.is_negative() || current_credit.is_negative() {
        return Err(ReversalError::NegativeCredit);
    }
    if current_credit < credit_part {
        return Err(ReversalError::CreditAlreadyUsed {
            missing: Gnf::new(credit_part.francs() - current_credit.francs()),
        });
    }
    let mut seen = HashSet::with_capacity(allocations_of_payment.len());
    let mut lines = Vec::with_capacity(allocations_of_payment.len());
    for &(charge_id, amount) in allocations_of_payment {
        if !amount.is_positive() || !seen.insert(charge_id) {
            return Err(ReversalError::InvalidAllocation { charge_id });
        }
        lines.push(ReversalLine {
            charge_id,
            // amount > 0, so its negation fits.
            amount: Gnf::new(-amount.francs()),
        });
    }
    Ok(Reversal {
        lines,
        credit_delta: Gnf::new(-credit_part.francs()),
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn month(m: u32) -> NaiveDate {
        // 2025-01 + m months; the tests use m < 36.
        NaiveDate::from_ymd_opt(2025 + (m / 12) as i32, m % 12 + 1, 1).expect("valid month")
    }

    fn charge(charge_id: i64, m: u32, due: i64, paid: i64) -> OpenCharge {
        let period = month(m);
        OpenCharge {
            charge_id,
            period,
            due_date: period + chrono::Days::new(4),
            due: Gnf::new(due),
            paid: Gnf::new(paid),
        }
    }

    fn pay(francs: i64) -> PaymentAmount {
        PaymentAmount::parse(francs).expect("valid test amount")
    }

    fn line(charge_id: i64, amount: i64, outstanding_after: i64) -> AllocationLine {
        AllocationLine {
            charge_id,
            amount: Gnf::new(amount),
            outstanding_after: Gnf::new(outstanding_after),
        }
    }

    #[test]
    fn outstanding_after_a_payment_counts_only_charges_already_due() {
        // On the first day of the third month, the first two charges are due, the third not
        // yet (due on the 5th).
        let charges = [
            charge(1, 1, 1_000_000, 0),
            charge(2, 2, 1_000_000, 250_000),
            charge(3, 3, 1_000_000, 0),
        ];
        let allocation = allocate(&charges, pay(1_500_000));
        let day = month(3);
        // 1,750,000 due by then, 1,500,000 of it paid now.
        assert_eq!(
            allocation.outstanding_due_by(&charges, day),
            Gnf::new(250_000)
        );
        let later = month(3) + chrono::Days::new(4);
        assert_eq!(
            allocation.outstanding_due_by(&charges, later),
            Gnf::new(1_250_000)
        );
        assert_eq!(
            Allocation::default().outstanding_due_by(&[], day),
            Gnf::ZERO
        );
    }

    #[test]
    fn exact_payment_closes_the_oldest_charges() {
        let charges = [
            charge(12, 2, 1_500_000, 0),
            charge(10, 0, 1_500_000, 500_000),
            charge(11, 1, 1_500_000, 0),
        ];
        let allocation = allocate(&charges, pay(2_500_000));
        assert_eq!(
            allocation.lines,
            [line(10, 1_000_000, 0), line(11, 1_500_000, 0)]
        );
        assert_eq!(allocation.to_credit, Gnf::ZERO);
        assert_eq!(allocation.allocated(), Gnf::new(2_500_000));
    }

    #[test]
    fn partial_payment_leaves_the_rest_outstanding() {
        let charges = [charge(1, 0, 1_000_000, 0), charge(2, 1, 1_000_000, 0)];
        let allocation = allocate(&charges, pay(1_300_000));
        assert_eq!(
            allocation.lines,
            [line(1, 1_000_000, 0), line(2, 300_000, 700_000)]
        );
        assert_eq!(allocation.to_credit, Gnf::ZERO);
    }

    #[test]
    fn overpayment_becomes_credit() {
        let charges = [charge(1, 0, 800_000, 300_000)];
        let allocation = allocate(&charges, pay(1_000_000));
        assert_eq!(allocation.lines, [line(1, 500_000, 0)]);
        assert_eq!(allocation.to_credit, Gnf::new(500_000));
    }

    #[test]
    fn no_open_charge_makes_it_all_credit() {
        let allocation = allocate(&[], pay(750_000));
        assert!(allocation.lines.is_empty());
        assert_eq!(allocation.to_credit, Gnf::new(750_000));
        let settled = [charge(1, 0, 500_000, 500_000), charge(2, 1, 0, 0)];
        let allocation = allocate(&settled, pay(750_000));
        assert!(allocation.lines.is_empty());
        assert_eq!(allocation.to_credit, Gnf::new(750_000));
    }

    #[test]
    fn ties_on_period_go_by_charge_id_and_repeats_count_once() {
        let charges = [
            charge(7, 0, 100, 0),
            charge(3, 0, 100, 0),
            charge(3, 0, 100, 0),
        ];
        let allocation = allocate(&charges, pay(250));
        assert_eq!(allocation.lines, [line(3, 100, 0), line(7, 100, 0)]);
        assert_eq!(allocation.to_credit, Gnf::new(50));
    }

    #[test]
    fn not_yet_due_charges_are_paid_too() {
        // The current month's charge, issued but not due yet, is paid before any credit.
        let mut current = charge(2, 1, 1_000_000, 0);
        current.due_date = NaiveDate::from_ymd_opt(2030, 1, 1).expect("date");
        let allocation = allocate(&[charge(1, 0, 1_000_000, 0), current], pay(2_500_000));
        assert_eq!(
            allocation.lines,
            [line(1, 1_000_000, 0), line(2, 1_000_000, 0)]
        );
        assert_eq!(allocation.to_credit, Gnf::new(500_000));
    }

    #[test]
    fn inconsistent_rows_do_not_panic() {
        let charges = [
            charge(1, 0, 100, 500),
            charge(2, 1, i64::MAX, -10),
            charge(3, 2, i64::MIN, 0),
        ];
        let allocation = allocate(&charges, pay(MAX_TEST));
        assert_eq!(allocation.lines, [line(2, MAX_TEST, i64::MAX - MAX_TEST)]);
        assert_eq!(
            allocate_credit(&charges, Gnf::new(-5)),
            Allocation::default()
        );
    }

    const MAX_TEST: i64 = crate::domain::money::MAX_PAYMENT_GNF;

    #[test]
    fn existing_credit_can_pay_reopened_charges() {
        let charges = [charge(1, 0, 400, 100), charge(2, 1, 400, 0)];
        let allocation = allocate_credit(&charges, Gnf::new(500));
        assert_eq!(allocation.lines, [line(1, 300, 0), line(2, 200, 200)]);
        assert_eq!(allocation.to_credit, Gnf::ZERO);
    }

    #[test]
    fn credit_is_consumed_by_a_new_charge() {
        assert_eq!(
            apply_credit_to_new_charge(Gnf::new(300_000), Gnf::new(1_000_000)),
            CreditUse {
                used: Gnf::new(300_000),
                credit_after: Gnf::ZERO,
                outstanding_after: Gnf::new(700_000),
            }
        );
        assert_eq!(
            apply_credit_to_new_charge(Gnf::new(2_500_000), Gnf::new(1_000_000)),
            CreditUse {
                used: Gnf::new(1_000_000),
                credit_after: Gnf::new(1_500_000),
                outstanding_after: Gnf::ZERO,
            }
        );
        assert_eq!(
            apply_credit_to_new_charge(Gnf::ZERO, Gnf::new(1_000_000)).used,
            Gnf::ZERO
        );
        assert_eq!(
            apply_credit_to_new_charge(Gnf::new(-1), Gnf::new(i64::MIN)),
            CreditUse {
                used: Gnf::ZERO,
                credit_after: Gnf::ZERO,
                outstanding_after: Gnf::ZERO,
            }
        );
    }

    #[test]
    fn reversal_mirrors_the_allocation() {
        let charges = [charge(1, 0, 1_000_000, 200_000), charge(2, 1, 1_000_000, 0)];
        let allocation = allocate(&charges, pay(2_000_000));
        let rows: Vec<(i64, Gnf)> = allocation
            .lines
            .iter()
            .map(|l| (l.charge_id, l.amount))
            .collect();
        assert_eq!(
            credit_part_of(Gnf::new(2_000_000), &rows),
            Ok(Gnf::new(200_000))
        );
        let reversal = reverse(&rows, allocation.to_credit, Gnf::new(200_000)).expect("reversal");
        assert_eq!(
            reversal.lines,
            [
                ReversalLine {
                    charge_id: 1,
                    amount: Gnf::new(-800_000)
                },
                ReversalLine {
                    charge_id: 2,
                    amount: Gnf::new(-1_000_000)
                },
            ]
        );
        assert_eq!(reversal.credit_delta, Gnf::new(-200_000));
    }

    #[test]
    fn reversal_refuses_when_the_credit_was_spent() {
        let rows = [(1, Gnf::new(500_000))];
        assert_eq!(
            reverse(&rows, Gnf::new(300_000), Gnf::new(100_000)),
            Err(ReversalError::CreditAlreadyUsed {
                missing: Gnf::new(200_000)
            })
        );
        // Exactly enough credit left is fine.
        assert!(reverse(&rows, Gnf::new(300_000), Gnf::new(300_000)).is_ok());
        assert!(
            ReversalError::CreditAlreadyUsed {
                missing: Gnf::new(200_000)
            }
            .to_string()
            .contains("already been used")
        );
    }

    #[test]
    fn reversal_refuses_malformed_allocations() {
        assert_eq!(
            reverse(&[(1, Gnf::ZERO)], Gnf::ZERO, Gnf::ZERO),
            Err(ReversalError::InvalidAllocation { charge_id: 1 })
        );
        assert_eq!(
            reverse(&[(1, Gnf::new(5)), (1, Gnf::new(5))], Gnf::ZERO, Gnf::ZERO),
            Err(ReversalError::InvalidAllocation { charge_id: 1 })
        );
        assert_eq!(
            reverse(&[(1, Gnf::new(i64::MIN))], Gnf::ZERO, Gnf::ZERO),
            Err(ReversalError::InvalidAllocation { charge_id: 1 })
        );
        assert_eq!(
            reverse(&[], Gnf::new(-1), Gnf::ZERO),
            Err(ReversalError::NegativeCredit)
        );
        assert_eq!(
            credit_part_of(Gnf::new(10), &[(1, Gnf::new(11))]),
            Err(ReversalError::AllocationsExceedPayment)
        );
        assert_eq!(
            credit_part_of(
                Gnf::new(10),
                &[(1, Gnf::new(i64::MAX)), (2, Gnf::new(i64::MAX))]
            ),
            Err(ReversalError::AllocationsExceedPayment)
        );
    }

    fn random_charges(rng: &mut ChaCha8Rng) -> Vec<OpenCharge> {
        let count = rng.random_range(0..8_u32);
        let mut charges: Vec<OpenCharge> = (0..count)
            .map(|i| {
                let due = rng.random_range(0..3_000_000_i64);
                let paid = if rng.random_bool(0.3) {
                    rng.random_range(0..=due)
                } else {
                    0
                };
                charge(i64::from(100 + i), rng.random_range(0..36), due, paid)
            })
            .collect();
        // Shuffle by sorting on a random key: the input order must not matter.
        charges.sort_by_key(|_| rng.random::<u32>());
        charges
    }

    #[test]
    fn property_fifo_conserves_money_and_pays_oldest_first() {
        let mut rng = ChaCha8Rng::seed_from_u64(0xA416);
        for _ in 0..5_000 {
            let charges = random_charges(&mut rng);
            let amount = pay(rng.random_range(1..=10_000_000));
            let allocation = allocate(&charges, amount);

            // Conservation: lines + credit = amount.
            assert_eq!(
                allocation.allocated().francs() + allocation.to_credit.francs(),
                amount.francs()
            );
            assert!(!allocation.to_credit.is_negative());

            let total_outstanding: i64 = charges.iter().map(|c| c.outstanding().francs()).sum();
            // Credit only when every charge is settled, and exactly the excess.
            assert_eq!(
                allocation.to_credit.francs(),
                (amount.francs() - total_outstanding).max(0)
            );

            let mut sorted = charges.clone();
            sorted.sort_by_key(|c| (c.period, c.charge_id));
            let position = |id: i64| sorted.iter().position(|c| c.charge_id == id);
            let mut last = None;
            for (i, l) in allocation.lines.iter().enumerate() {
                let c = charges
                    .iter()
                    .find(|c| c.charge_id == l.charge_id)
                    .expect("a line names a given charge");
                assert!(l.amount.is_positive());
                assert_eq!(
                    l.amount.francs() + l.outstanding_after.francs(),
                    c.outstanding().francs()
                );
                // Lines are in FIFO order, and every line but the last closes its charge.
                assert!(position(l.charge_id) > last);
                last = position(l.charge_id);
                if i + 1 < allocation.lines.len() {
                    assert!(l.outstanding_after.is_zero());
                }
            }
            // Every open charge older than the last one paid was closed by this payment.
            if let Some(last) = last {
                for c in &sorted[..last] {
                    let closed = c.outstanding().is_zero()
                        || allocation
                            .lines
                            .iter()
                            .any(|l| l.charge_id == c.charge_id && l.outstanding_after.is_zero());
                    assert!(closed);
                }
            }

            // The reversal gives back exactly what the payment did.
            let rows: Vec<(i64, Gnf)> = allocation
                .lines
                .iter()
                .map(|l| (l.charge_id, l.amount))
                .collect();
            let credit_part = credit_part_of(amount.gnf(), &rows).expect("credit part");
            assert_eq!(credit_part, allocation.to_credit);
            let extra_credit = Gnf::new(rng.random_range(0..1_000_000));
            let current = Gnf::new(credit_part.francs() + extra_credit.francs());
            let reversal = reverse(&rows, credit_part, current).expect("reversal");
            assert_eq!(reversal.lines.len(), allocation.lines.len());
            for (r, l) in reversal.lines.iter().zip(&allocation.lines) {
                assert_eq!(r.charge_id, l.charge_id);
                assert_eq!(r.amount.francs(), -l.amount.francs());
            }
            let reversed: i64 = reversal.lines.iter().map(|r| r.amount.francs()).sum();
            assert_eq!(reversed + reversal.credit_delta.francs(), -amount.francs());
        }
    }

    #[test]
    fn property_credit_spent_on_a_new_charge_is_conserved() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..2_000 {
            let credit = Gnf::new(rng.random_range(0..5_000_000));
            let due = Gnf::new(rng.random_range(0..5_000_000));
            let usage = apply_credit_to_new_charge(credit, due);
            assert_eq!(
                usage.used.francs() + usage.credit_after.francs(),
                credit.francs()
            );
            assert_eq!(
                usage.used.francs() + usage.outstanding_after.francs(),
                due.francs()
            );
            assert!(usage.credit_after.is_zero() || usage.outstanding_after.is_zero());
        }
    }
}
