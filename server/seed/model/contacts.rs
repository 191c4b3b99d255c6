//! One call or visit and its consequences (promise, settlement), and the agents' scores.

use super::*;

/// A call or visit to record.
pub(super) struct Contact {
    pub(super) visit: bool,
    pub(super) agent: usize,
    pub(super) tenant: usize,
    pub(super) when: DateTime<Utc>,
    pub(super) outcome: &'static str,
    /// The payment collected during the visit (index into `Ledger::payments`).
    pub(super) payment: Option<usize>,
    pub(super) mission_id: Option<Uuid>,
}

/// Records a call or visit (and the promise it obtained); returns the interaction id.
pub(super) fn record_interaction(
    world: &World,
    ledger: &mut Ledger,
    activity: &mut Activity,
    rng: &mut ChaCha8Rng,
    promised_until: &mut HashMap<usize, NaiveDate>,
    promise_payments: &HashMap<usize, Vec<usize>>,
    contact: Contact,
) -> Uuid {
    let cutoff = world.spec.cutoff();
    let Contact {
        visit,
        agent,
        tenant: t,
        when,
        outcome,
        payment,
        mission_id,
    } = contact;
    let tenant = &world.tenants[t];
    let day = when.date_naive();
    // One pending promise at a time.
    let outcome = if outcome == "promise_made" && promised_until.get(&t).is_some_and(|&d| d >= day)
    {
        "other"
    } else {
        outcome
    };
    let location = visit.then(|| {
        let far = rng.random_bool(0.05);
        let distance = if far {
            rng.random_range(300.0..1_500.0)
        } else {
            rng.random_range(0.0..60.0)
        };
        let (lat, lon) = offset(
            tenant.latitude,
            tenant.longitude,
            distance,
            rng.random_range(0.0..std::f64::consts::TAU),
        );
        let accuracy = rng.random_range(4..36) as f64;
        let measured =
            (haversine_m(lat, lon, tenant.latitude, tenant.longitude) * 10.0).round() / 10.0;
        (lat, lon, accuracy, measured)
    });
    let received_at = if rng.random_bool(0.1) {
        when + Duration::seconds(rng.random_range(3_600..4 * 3_600))
    } else {
        when + Duration::seconds(rng.random_range(2..300))
    }
    .min(cutoff - Duration::seconds(1))
    .max(when);
    let id = uuid_from(rng);
    let notes = names::interaction_note(rng, outcome);
    let is_mock_location = visit && rng.random_bool(0.01);
    activity.interactions.push(Interaction {
        id,
        visit,
        tenant: t,
        agent,
        outcome,
        notes,
        occurred_at: when,
        received_at,
        location,
        is_far_from_tenant: far_from_tenant(location, is_mock_location, tenant),
        is_mock_location,
        mission_id,
        request_id: uuid_from(rng),
    });
    if let Some(p) = payment {
        ledger.payments[p].interaction_id = Some(id);
    }
    if outcome == "promise_made" {
        // Most promises name the day and about the amount of a payment the tenant really makes
        // within three weeks, so the demo has kept and partially kept promises besides broken
        // ones; the others are a guess from the rent.
        let next_payment = promise_payments
            .get(&t)
            .into_iter()
            .flatten()
            .map(|&p| &ledger.payments[p])
            .filter(|p| {
                p.occurred_at > received_at && p.occurred_at < received_at + Duration::days(21)
            })
            .min_by_key(|p| p.occurred_at)
            .map(|p| (p.occurred_at.date_naive(), p.amount));
        let (promised_date, amount) = match next_payment {
            Some((paid_on, paid)) if rng.random_bool(0.8) => {
                let date = paid_on + Duration::days(rng.random_range(0..=3));
                // One in five promises more than is then paid.
                let steps = paid / ROUNDING_GNF;
                let promised_steps = if rng.random_bool(0.8) {
                    rng.random_range((steps / 2).max(1)..=steps.max(1))
                } else {
                    steps + rng.random_range(1..=steps.max(1))
                };
                (
                    date.max(day + Duration::days(1)),
                    promised_steps * ROUNDING_GNF,
                )
            }
            _ => (
                day + Duration::days(rng.random_range(2..=14)),
                round_gnf(tenant.rent as f64 * rng.random_range(0.5..1.5)),
            ),
        };
        promised_until.insert(t, promised_date);
        activity.promises.push(Promise {
            id: uuid_from(rng),
            tenant: t,
            agent,
            interaction_id: id,
            amount,
            promised_date,
            status: PromiseStatus::Pending.as_str(),
            made_at: when,
            covered: 0,
            status_changed_at: None,
            cancel_reason: None,
            rescheduled_from: None,
            reschedule_reason: None,
            created_at: received_at,
            updated_at: received_at,
        });
    }
    id
}

pub(super) fn settle_promise(
    promise: &mut Promise,
    ledger: &mut Ledger,
    payments: &[usize],
    today: NaiveDate,
    rng: &mut ChaCha8Rng,
) {
    let made_on = promise.created_at.date_naive();
    if rng.random_bool(0.05) && made_on + Duration::days(1) < today {
        promise.status = PromiseStatus::Cancelled.as_str();
        promise.cancel_reason = Some("Montant contesté, dossier transmis au gestionnaire");
        let when = at(made_on + Duration::days(1), 10 * 3600);
        promise.status_changed_at = Some(when);
        promise.updated_at = when;
        return;
    }
    if rng.random_bool(0.05) && made_on + Duration::days(1) < today {
        promise.rescheduled_from = Some(promise.promised_date);
        promise.reschedule_reason = Some("Salaire versé en retard");
        promise.promised_date += Duration::days(7);
        promise.updated_at = at(made_on + Duration::days(1), 11 * 3600).max(promise.created_at);
    }
    let mut kept_at = None;
    for &p in payments {
        let payment = &ledger.payments[p];
        let day = payment.occurred_at.date_naive();
        if payment.occurred_at < promise.made_at || day > promise.promised_date {
            continue;
        }
        promise.covered = (promise.covered + payment.amount).min(promise.amount);
        if ledger.payments[p].promise_id.is_none() {
            ledger.payments[p].promise_id = Some(promise.id);
        }
        if promise.covered >= promise.amount {
            kept_at = Some(ledger.payments[p].received_at);
            break;
        }
    }
    let status = PromiseProgress {
        amount: Gnf::new(promise.amount),
        promised_date: promise.promised_date,
        paid_by_promised_date: Gnf::new(promise.covered),
        cancelled: false,
    }
    .status_on(today);
    // Settled as the server settles it (`domain::promise::settled_at`): kept when the payment
    // covering it was received, the others when their promised date ended.
    let changed = match status {
        PromiseStatus::Kept => kept_at,
        PromiseStatus::PartiallyKept | PromiseStatus::Broken => {
            Some(settled_at(status, promise.promised_date, at(today, 0)))
        }
        PromiseStatus::Pending | PromiseStatus::Cancelled => None,
    };
    promise.status = status.as_str();
    promise.status_changed_at = changed;
    if let Some(when) = changed {
        promise.updated_at = promise.updated_at.max(when);
    }
}

/// Score events (`domain::scoring`: visit +1, promise +2, payment +3, refusal -1) of the users
/// with the agent role, and the daily figures they add up to.
pub(super) fn scores(world: &World, ledger: &Ledger, activity: &mut Activity) {
    let is_agent = |u: usize| world.users[u].role == "agent";
    let mut events = Vec::new();
    let mut daily: BTreeMap<(usize, NaiveDate), DailyScore> = BTreeMap::new();
    for i in &activity.interactions {
        let day = i.occurred_at.date_naive();
        let d = daily.entry((i.agent, day)).or_default();
        d.updated_at = d.updated_at.max(Some(i.received_at));
        let kind = if i.visit {
            d.visits += 1;
            InteractionKind::Visit
        } else {
            d.calls += 1;
            InteractionKind::Call
        };
        let outcome: InteractionOutcome = i.outcome.parse().expect("a seeded outcome is known");
        if outcome == InteractionOutcome::Refused {
            d.refusals += 1;
        }
        // The promise's event is its own (below), as the API writes it.
        for event in events_for_interaction(kind, outcome, false) {
            events.push(ScoreEvent {
                agent: i.agent,
                day,
                kind: event.as_str(),
                points: points(event),
                source: ScoreSource::Interaction(i.id),
                occurred_at: i.occurred_at,
                created_at: i.received_at,
            });
        }
    }
    for p in &activity.promises {
        let day = p.created_at.date_naive();
        let d = daily.entry((p.agent, day)).or_default();
        d.promises += 1;
        d.updated_at = d.updated_at.max(Some(p.created_at));
        events.push(ScoreEvent {
            agent: p.agent,
            day,
            kind: ScoreEventKind::Promise.as_str(),
            points: points(ScoreEventKind::Promise),
            source: ScoreSource::Promise(p.id),
            occurred_at: p.created_at,
            created_at: p.created_at,
        });
    }
    for p in ledger
        .payments
        .iter()
        .filter(|p| !p.reversal && is_agent(p.agent))
    {
        let day = p.occurred_at.date_naive();
        let d = daily.entry((p.agent, day)).or_default();
        d.payments_count += 1;
        d.payments_gnf += p.amount;
        d.updated_at = d.updated_at.max(Some(p.received_at));
        events.push(ScoreEvent {
            agent: p.agent,
            day,
            kind: ScoreEventKind::Payment.as_str(),
            points: points(ScoreEventKind::Payment),
            source: ScoreSource::Payment(p.id),
            occurred_at: p.occurred_at,
            created_at: p.received_at,
        });
    }
    events.sort_by(|a, b| {
        (a.occurred_at, a.kind, a.agent, source_key(&a.source)).cmp(&(
            b.occurred_at,
            b.kind,
            b.agent,
            source_key(&b.source),
        ))
    });
    for e in &events {
        if let Some(d) = daily.get_mut(&(e.agent, e.day)) {
            d.score += e.points;
        }
    }
    activity.score_events = events;
    activity.daily_scores = daily;
}

/// The points of an event (`domain::scoring`).
pub(super) fn points(kind: ScoreEventKind) -> i32 {
    i32::try_from(kind.points()).expect("points fit in i32")
}

pub(super) fn source_key(s: &ScoreSource) -> Uuid {
    match s {
        ScoreSource::Interaction(id) | ScoreSource::Payment(id) | ScoreSource::Promise(id) => *id,
    }
}
