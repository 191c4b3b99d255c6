//! Charges and payments of each tenant over the months of a data set, allocated FIFO and
//! replayed as the server's ledger does.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    pub tenant: usize,
    pub period: NaiveDate,
    pub due_date: NaiveDate,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub paid_in_full_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Charge {
    pub fn outstanding(&self) -> i64 {
        self.amount_due - self.amount_paid
    }
}

/// Allocates up to `amount` to the charges issued by `when` (period on or before its date)
/// that are not fully paid, oldest first, as a recorded payment is allocated
/// (`domain::allocation::allocate`). Returns the (charge index, amount) pairs; what is left of
/// `amount` is an overpayment.
pub fn allocate_fifo(
    charges: &mut [Charge],
    amount: i64,
    when: DateTime<Utc>,
) -> Vec<(usize, i64)> {
    let Ok(amount) = PaymentAmount::parse(amount) else {
        return Vec::new();
    };
    let issued: Vec<OpenCharge> = charges
        .iter()
        .enumerate()
        .filter(|(_, charge)| charge.period <= when.date_naive())
        .map(|(i, charge)| OpenCharge {
            charge_id: i as i64,
            period: charge.period,
            due_date: charge.due_date,
            due: Gnf::new(charge.amount_due),
            paid: Gnf::new(charge.amount_paid),
        })
        .collect();
    let lines: Vec<(usize, i64)> = allocation::allocate(&issued, amount)
        .lines
        .iter()
        .map(|line| (line.charge_id as usize, line.amount.francs()))
        .collect();
    apply(charges, &lines, when);
    lines
}

/// Undoes `allocations` (a reversal, `domain::allocation::reverse`): the charges are reopened
/// by the same amounts.
pub fn reverse_allocations(
    charges: &mut [Charge],
    allocations: &[(usize, i64)],
    when: DateTime<Utc>,
) {
    let paid: Vec<(i64, Gnf)> = allocations
        .iter()
        .map(|&(i, amount)| (i as i64, Gnf::new(amount)))
        .collect();
    // The seed leaves no credit: the whole payment went to charges.
    let reversal = allocation::reverse(&paid, Gnf::ZERO, Gnf::ZERO)
        .expect("a seeded payment's allocations are positive and distinct");
    let lines: Vec<(usize, i64)> = reversal
        .lines
        .iter()
        .map(|line| (line.charge_id as usize, line.amount.francs()))
        .collect();
    apply(charges, &lines, when);
}

/// Moves each charge's paid amount by its line (negative for a reversal): `paid_in_full_at`
/// is set when a charge becomes fully paid and cleared when it reopens.
pub(super) fn apply(charges: &mut [Charge], lines: &[(usize, i64)], when: DateTime<Utc>) {
    for &(i, amount) in lines {
        let charge = &mut charges[i];
        charge.amount_paid += amount;
        charge.updated_at = charge.updated_at.max(when);
        if charge.amount_paid == charge.amount_due {
            charge.paid_in_full_at = Some(when);
        } else if charge.amount_paid < charge.amount_due {
            charge.paid_in_full_at = None;
        }
    }
}

/// Outstanding amount issued by `when` (what a payment at `when` can settle).
pub(super) fn issued_outstanding(charges: &[Charge], when: DateTime<Utc>) -> i64 {
    charges
        .iter()
        .take_while(|c| c.period <= when.date_naive())
        .map(Charge::outstanding)
        .sum()
}

#[derive(Clone, Debug)]
pub struct Payment {
    pub id: Uuid,
    pub tenant: usize,
    pub site: usize,
    pub reversal: bool,
    pub amount: i64,
    pub method: Method,
    pub operator_reference: Option<String>,
    pub receipt_number: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// Index into `World::users`.
    pub agent: usize,
    pub interaction_id: Option<Uuid>,
    pub promise_id: Option<Uuid>,
    pub reverses: Option<Uuid>,
    pub reason: Option<&'static str>,
    pub request_id: Uuid,
    /// (index into `Ledger::charges`, signed amount).
    pub allocations: Vec<(usize, i64)>,
    /// For each allocation, what remained to pay on its charge right after it
    /// (`payment_allocations.outstanding_after_gnf`).
    pub outstanding_after: Vec<i64>,
}

/// Charges and payments of a group of sites.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub charges: Vec<Charge>,
    /// Sorted by site, then receipt number.
    pub payments: Vec<Payment>,
    /// (site index, year, last receipt number).
    pub receipt_counters: Vec<(usize, i32, u64)>,
}

pub(super) enum Event {
    Pay {
        at: DateTime<Utc>,
        amount: i64,
        method: Method,
        agent: usize,
    },
    Reverse {
        at: DateTime<Utc>,
        of: usize,
        reason: &'static str,
    },
}

impl Event {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Event::Pay { at, .. } | Event::Reverse { at, .. } => *at,
        }
    }
}

/// Simulates 18 months of charges and payments of the tenants of `sites`.
pub fn simulate_sites(world: &World, sites: std::ops::Range<usize>) -> Ledger {
    let mut ledger = Ledger::default();
    for s in sites.clone() {
        for t in world.site_tenants[s].clone() {
            simulate_tenant(world, t, &mut ledger);
        }
    }
    // Receipt numbers: per site and calendar year, in the order the server received them.
    ledger
        .payments
        .sort_by_key(|p| (p.site, p.received_at, p.id));
    let mut counters: BTreeMap<(usize, i32), u64> = BTreeMap::new();
    for p in &mut ledger.payments {
        let year = p.received_at.year();
        let n = counters.entry((p.site, year)).or_insert(0);
        *n += 1;
        p.receipt_number = receipt_number(&world.sites[p.site].code, year, *n);
    }
    ledger.receipt_counters = counters.into_iter().map(|((s, y), n)| (s, y, n)).collect();
    ledger
}

pub(super) fn simulate_tenant(world: &World, t: usize, ledger: &mut Ledger) {
    let spec = &world.spec;
    let tenant = &world.tenants[t];
    let mut rng = stream(spec.seed, STREAM_LEDGER, t as u64);
    let cutoff = spec.cutoff();

    // Charges: one per month the tenant occupied the unit, within the window.
    let window_start = spec.window_start();
    let first = if tenant.moved_in_on >= window_start {
        let m = first_of_month(tenant.moved_in_on);
        if tenant.moved_in_on.day() > 15 {
            add_months(m, 1)
        } else {
            m
        }
    } else {
        window_start
    };
    let last = tenant
        .moved_out_on
        .map(first_of_month)
        .unwrap_or_else(|| spec.current_period())
        .min(spec.current_period());
    let mut charges = Vec::new();
    let mut period = first;
    while period <= last {
        let created_at = at(period, 5 * 60).max(tenant.created_at);
        charges.push(Charge {
            tenant: t,
            period,
            due_date: period + Duration::days(DUE_DAY as i64 - 1),
            amount_due: tenant.rent,
            amount_paid: 0,
            paid_in_full_at: None,
            created_at,
            updated_at: created_at,
        });
        period = add_months(period, 1);
    }

    // Payment events of the tenant's profile.
    let agents = &world.site_agents[tenant.site];
    let mut events: Vec<Event> = Vec::new();
    let pay = |rng: &mut ChaCha8Rng, events: &mut Vec<Event>, day: NaiveDate, amount: i64| {
        let method = if rng.random_bool(0.7) {
            tenant.preferred_method
        } else {
            Method::Cash
        };
        let agent = if method == Method::BankTransfer {
            world.accountant
        } else if rng.random_bool(0.8) {
            tenant.main_agent
        } else {
            agents[rng.random_range(0..agents.len())]
        };
        let when = at(day, rng.random_range(8 * 3600..19 * 3600));
        events.push(Event::Pay {
            at: when,
            amount,
            method,
            agent,
        });
        // A few payments are reversed by the accountant a few days later.
        if rng.random_bool(0.004) {
            let reason = match method {
                Method::OrangeMoney | Method::MtnMomo if rng.random_bool(0.5) => {
                    "Transaction annulée par l'opérateur"
                }
                Method::BankTransfer => "Virement rejeté par la banque",
                _ => [
                    "Montant saisi erroné",
                    "Paiement enregistré sur le mauvais locataire",
                    "Doublon de saisie",
                ][rng.random_range(0..3)],
            };
            let of = events.len() - 1;
            let reversed_on = day + Duration::days(rng.random_range(1..=5));
            events.push(Event::Reverse {
                at: at(reversed_on, rng.random_range(9 * 3600..17 * 3600)),
                of,
                reason,
            });
            if reason != "Doublon de saisie" && rng.random_bool(0.7) {
                let repaid_on = reversed_on + Duration::days(rng.random_range(0..=3));
                events.push(Event::Pay {
                    at: at(repaid_on, rng.random_range(8 * 3600..19 * 3600)),
                    amount,
                    method: Method::Cash,
                    agent: tenant.main_agent,
                });
            }
        }
    };
    let n = charges.len();
    let stop_paying = if tenant.profile == Profile::Chronic && rng.random_bool(0.4) {
        rng.random_range(n / 3..n.max(1))
    } else {
        usize::MAX
    };
    for (i, c) in charges.iter().enumerate() {
        let due = c.amount_due;
        match tenant.profile {
            Profile::Good => {
                let day = if rng.random_bool(0.9) {
                    c.period + Duration::days(rng.random_range(0..DUE_DAY as i64))
                } else {
                    c.due_date + Duration::days(rng.random_range(1..10))
                };
                pay(&mut rng, &mut events, day, due);
            }
            Profile::Late => {
                let day = c.due_date + Duration::days(rng.random_range(10..=60));
                if rng.random_bool(0.75) {
                    pay(&mut rng, &mut events, day, due);
                } else {
                    let part = round_gnf(due as f64 * rng.random_range(0.4..0.8)).min(due);
                    pay(&mut rng, &mut events, day, part);
                    if part < due && rng.random_bool(0.7) {
                        let later = day + Duration::days(rng.random_range(7..=30));
                        pay(&mut rng, &mut events, later, due - part);
                    }
                }
            }
            Profile::Chronic => {
                let p = if i >= stop_paying {
                    0.03
                } else if i < n / 3 {
                    0.6
                } else {
                    0.3
                };
                if rng.random_bool(p) {
                    let day = c.due_date + Duration::days(rng.random_range(0..=90));
                    let amount = if rng.random_bool(0.5) {
                        due
                    } else {
                        round_gnf(due as f64 * rng.random_range(0.3..0.7)).min(due)
                    };
                    pay(&mut rng, &mut events, day, amount);
                }
                if i < stop_paying && rng.random_bool(0.1) {
                    let day = c.due_date + Duration::days(rng.random_range(20..80));
                    pay(&mut rng, &mut events, day, 2 * due);
                }
            }
        }
    }

    // Replay the events in time order, allocating FIFO. Nothing happens from today on.
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&e| (events[e].at(), e));
    let offset = ledger.charges.len();
    let first_payment = ledger.payments.len();
    let mut paid_by_event: HashMap<usize, usize> = HashMap::new();
    for e in order {
        let event = &events[e];
        if event.at() >= cutoff {
            continue;
        }
        let occurred_at = event.at();
        let received_at = if rng.random_bool(0.1) {
            occurred_at + Duration::seconds(rng.random_range(3_600..6 * 3_600))
        } else {
            occurred_at + Duration::seconds(rng.random_range(2..600))
        }
        .min(cutoff - Duration::seconds(1));
        match *event {
            Event::Pay {
                amount,
                method,
                agent,
                ..
            } => {
                let amount = amount.min(issued_outstanding(&charges, occurred_at));
                if amount <= 0 {
                    continue;
                }
                let allocations = allocate_fifo(&mut charges, amount, occurred_at);
                let outstanding_after = remaining(&charges, &allocations);
                let operator_reference = operator_reference(&mut rng, method, occurred_at);
                paid_by_event.insert(e, ledger.payments.len());
                ledger.payments.push(Payment {
                    id: uuid_at(&mut rng, occurred_at),
                    tenant: t,
                    site: tenant.site,
                    reversal: false,
                    amount,
                    method,
                    operator_reference,
                    receipt_number: String::new(),
                    occurred_at,
                    received_at,
                    agent,
                    interaction_id: None,
                    promise_id: None,
                    reverses: None,
                    reason: None,
                    request_id: uuid_at(&mut rng, occurred_at),
                    allocations: allocations
                        .into_iter()
                        .map(|(i, a)| (offset + i, a))
                        .collect(),
                    outstanding_after,
                });
            }
            Event::Reverse { of, reason, .. } => {
                let Some(&p) = paid_by_event.get(&of) else {
                    continue;
                };
                let original = &ledger.payments[p];
                let local: Vec<(usize, i64)> = original
                    .allocations
                    .iter()
                    .map(|&(i, a)| (i - offset, a))
                    .collect();
                reverse_allocations(&mut charges, &local, occurred_at);
                let outstanding_after = remaining(&charges, &local);
                let reversal = Payment {
                    id: uuid_at(&mut rng, occurred_at),
                    tenant: t,
                    site: tenant.site,
                    reversal: true,
                    amount: original.amount,
                    method: original.method,
                    operator_reference: None,
                    receipt_number: String::new(),
                    occurred_at,
                    received_at,
                    agent: world.accountant,
                    interaction_id: None,
                    promise_id: None,
                    reverses: Some(original.id),
                    reason: Some(reason),
                    request_id: uuid_at(&mut rng, occurred_at),
                    allocations: original.allocations.iter().map(|&(i, a)| (i, -a)).collect(),
                    outstanding_after,
                };
                ledger.payments.push(reversal);
            }
        }
    }
    replay_ledger(&mut ledger.payments[first_payment..], &mut charges, offset);
    ledger.charges.extend(charges);
}

/// What remains to pay on each charge of `lines` (indices into `charges`), as `charges` stand.
pub(super) fn remaining(charges: &[Charge], lines: &[(usize, i64)]) -> Vec<i64> {
    lines
        .iter()
        .map(|&(i, _)| charges[i].outstanding())
        .collect()
}

/// Rewrites one tenant's derived figures as the server's replay of its ledger derives them
/// (`domain::ledger::replay`, ADR 0010), so that a seeded ledger is one a replay leaves
/// unchanged: the rows of valid payments (with what remained after each), each charge's paid
/// amount and `paid_in_full_at`. The rows of reversed payments and of reversal entries stay as
/// the simulation wrote them: they are history. `payments` are the tenant's (allocations
/// indexing `Ledger::charges`, `offset` before `charges`).
pub fn replay_ledger(payments: &mut [Payment], charges: &mut [Charge], offset: usize) {
    let reversed_at: HashMap<Uuid, DateTime<Utc>> = payments
        .iter()
        .filter_map(|p| p.reverses.map(|original| (original, p.occurred_at)))
        .collect();
    let ledger_charges: Vec<LedgerCharge> = charges
        .iter()
        .enumerate()
        .map(|(i, c)| LedgerCharge {
            charge_id: i as i64,
            period: c.period,
            due_date: c.due_date,
            due: Gnf::new(c.amount_due),
        })
        .collect();
    let ledger_payments: Vec<LedgerPayment> = payments
        .iter()
        .filter(|p| !p.reversal)
        .map(|p| LedgerPayment {
            payment_id: p.id,
            occurred_at: p.occurred_at,
            received_at: p.received_at,
            amount: Gnf::new(p.amount),
            reversed_at: reversed_at.get(&p.id).copied(),
        })
        .collect();
    let replayed = ledger::replay(&ledger_charges, &ledger_payments)
        .expect("a seeded tenant's sums fit in i64");
    // Payments are capped to what was outstanding: the valid ones never exceed the charges.
    debug_assert!(replayed.credit.is_zero(), "seeded ledgers leave no credit");
    for p in payments
        .iter_mut()
        .filter(|p| !p.reversal && !reversed_at.contains_key(&p.id))
    {
        let lines: Vec<_> = replayed.lines_of(p.id).collect();
        p.allocations = lines
            .iter()
            .map(|l| (offset + l.charge_id as usize, l.amount.francs()))
            .collect();
        p.outstanding_after = lines.iter().map(|l| l.outstanding_after.francs()).collect();
    }
    for outcome in &replayed.charges {
        let charge = &mut charges[outcome.charge.charge_id as usize];
        charge.amount_paid = outcome.paid.francs();
        charge.paid_in_full_at = outcome.paid_in_full_at;
        if let Some(at) = outcome.last_paid_at {
            charge.updated_at = charge.updated_at.max(at);
        }
    }
}

/// Mobile-money transaction id or bank reference, as the operator prints it.
pub(super) fn operator_reference(
    rng: &mut ChaCha8Rng,
    method: Method,
    when: DateTime<Utc>,
) -> Option<String> {
    match method {
        Method::Cash => None,
        Method::OrangeMoney => Some(format!(
            "MP{}.{}.{}{:05}",
            when.format("%y%m%d"),
            when.format("%H%M"),
            char::from(b'A' + rng.random_range(0..26u8)),
            rng.random_range(0..100_000u32)
        )),
        Method::MtnMomo => Some(format!(
            "{}",
            rng.random_range(1_000_000_000u64..10_000_000_000)
        )),
        Method::BankTransfer => Some(format!(
            "VIR{}{:06}",
            when.format("%Y%m%d"),
            rng.random_range(0..1_000_000u32)
        )),
    }
}
