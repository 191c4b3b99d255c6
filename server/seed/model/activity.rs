//! Field work of the last weeks: calls, visits, promises, missions and positions.

use super::*;

#[derive(Clone, Debug)]
pub struct Interaction {
    pub id: Uuid,
    pub visit: bool,
    pub tenant: usize,
    pub agent: usize,
    pub outcome: &'static str,
    pub notes: &'static str,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// Visit location: latitude, longitude, accuracy, distance to the tenant.
    pub location: Option<(f64, f64, f64, f64)>,
    /// The server's proof-of-presence verdict (a mocked fix counts as far away).
    pub is_far_from_tenant: bool,
    pub is_mock_location: bool,
    pub mission_id: Option<Uuid>,
    pub request_id: Uuid,
}

#[derive(Clone, Debug)]
pub struct Promise {
    pub id: Uuid,
    pub tenant: usize,
    pub agent: usize,
    pub interaction_id: Uuid,
    pub amount: i64,
    pub promised_date: NaiveDate,
    pub status: &'static str,
    /// When the call or visit it was made in took place: payments from then on count.
    pub made_at: DateTime<Utc>,
    pub covered: i64,
    pub status_changed_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<&'static str>,
    pub rescheduled_from: Option<NaiveDate>,
    pub reschedule_reason: Option<&'static str>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Mission {
    pub id: Uuid,
    pub date: NaiveDate,
    pub agent: usize,
    pub tenant: usize,
    pub site: usize,
    pub priority: f64,
    pub outstanding: i64,
    pub days_overdue: i64,
    pub route_order: i32,
    pub estimated_distance_m: f64,
    pub status: &'static str,
    pub failure_reason: Option<FailureReason>,
    pub started_at: DateTime<Utc>,
    pub arrived_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub closing_interaction_id: Uuid,
    pub closing_payment_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScoreSource {
    Interaction(Uuid),
    Payment(Uuid),
    Promise(Uuid),
}

#[derive(Clone, Debug)]
pub struct ScoreEvent {
    pub agent: usize,
    pub day: NaiveDate,
    pub kind: &'static str,
    pub points: i32,
    pub source: ScoreSource,
    pub occurred_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DailyScore {
    pub score: i32,
    pub calls: i32,
    pub visits: i32,
    pub promises: i32,
    pub payments_count: i32,
    pub payments_gnf: i64,
    pub refusals: i32,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Calls, visits, promises, missions and scores.
#[derive(Clone, Debug, Default)]
pub struct Activity {
    pub interactions: Vec<Interaction>,
    pub promises: Vec<Promise>,
    pub missions: Vec<Mission>,
    pub score_events: Vec<ScoreEvent>,
    /// (agent index, day) -> figures.
    pub daily_scores: BTreeMap<(usize, NaiveDate), DailyScore>,
    /// Each agent's last known position (`Spec::start_points`).
    pub last_positions: Vec<Position>,
}

/// An agent's last known position (`agent_last_positions`), WGS84 degrees, metres.
#[derive(Clone, Debug)]
pub struct Position {
    pub agent: usize,
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy_m: f64,
    pub battery_percent: i64,
    pub fix_time: DateTime<Utc>,
}

/// Overdue amount of a tenant at the start of `day` and its oldest due date, from the
/// ledger's history (allocations made before `day` count).
pub(super) fn overdue_at(
    ledger: &Ledger,
    charges: &[usize],
    payments: &[usize],
    day: NaiveDate,
) -> (i64, Option<NaiveDate>) {
    let start = at(day, 0);
    let mut outstanding: HashMap<usize, i64> = charges
        .iter()
        .filter(|&&c| ledger.charges[c].due_date < day)
        .map(|&c| (c, ledger.charges[c].amount_due))
        .collect();
    for &p in payments {
        let payment = &ledger.payments[p];
        if payment.occurred_at >= start {
            continue;
        }
        for &(c, a) in &payment.allocations {
            if let Some(o) = outstanding.get_mut(&c) {
                *o -= a;
            }
        }
    }
    let total = outstanding.values().sum();
    let oldest = outstanding
        .iter()
        .filter(|(_, o)| **o > 0)
        .map(|(c, _)| ledger.charges[*c].due_date)
        .min();
    (total, oldest)
}

/// Recent activity of the agents of `sites` (whose tenants `ledger` holds; every agent
/// covering one of them covers only sites of the range): visits that collected payments, other
/// calls and visits, the promises they obtained, the missions they were part of, the scores,
/// and (with `Spec::start_points`) where each agent was last seen. Links payments to the visit
/// and promise they belong to.
///
/// Proportions, per agent and working day (Monday to Saturday) of the last
/// [`ACTIVITY_DAYS`] days: a visit for 70 % of the cash and mobile-money payments they
/// collected, 2 to 5 more visits of tenants who owed something overdue that morning (outcomes:
/// promise 35 %, absent 25 %, other 20 %, refused 10 %, dispute 8 %, moved 2 %), and 3 to 8
/// calls (no answer 35 %, promise 25 %, other 22 %, refused 8 %, dispute 6 %, wrong number
/// 4 %). A tenant has one pending promise at a time; 80 % of the promises name about the day
/// and amount of a payment the tenant really makes within three weeks. Each visit is a mission
/// of its day (done, or failed when absent, refused or moved). 95 % of the visits are within
/// 60 m of the tenant's home, 1 % from a mocked position.
pub fn simulate_activity(world: &World, sites: Range<usize>, ledger: &mut Ledger) -> Activity {
    let spec = &world.spec;
    let mut rng = stream(spec.seed, STREAM_ACTIVITY, sites.start as u64);
    let first_day = spec.today - Duration::days(ACTIVITY_DAYS);

    let mut tenant_charges: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, c) in ledger.charges.iter().enumerate() {
        tenant_charges.entry(c.tenant).or_default().push(i);
    }
    let mut tenant_payments: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, p) in ledger.payments.iter().enumerate() {
        if !p.reversal {
            tenant_payments.entry(p.tenant).or_default().push(i);
        }
    }
    // Payments that count towards a promise: neither reversals nor reversed.
    let reversed: HashSet<Uuid> = ledger.payments.iter().filter_map(|p| p.reverses).collect();
    let mut promise_payments: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, p) in ledger.payments.iter().enumerate() {
        if !p.reversal && !reversed.contains(&p.id) {
            promise_payments.entry(p.tenant).or_default().push(i);
        }
    }
    let no_ids: Vec<usize> = Vec::new();
    let overdue = |ledger: &Ledger, t: usize, day: NaiveDate| {
        overdue_at(
            ledger,
            tenant_charges.get(&t).unwrap_or(&no_ids),
            tenant_payments.get(&t).unwrap_or(&no_ids),
            day,
        )
    };

    // Candidates: tenants followed by each agent who were not always good payers.
    let mut candidates: HashMap<usize, Vec<usize>> = HashMap::new();
    for t in world.site_tenants[sites.clone()]
        .iter()
        .flat_map(Clone::clone)
    {
        let tenant = &world.tenants[t];
        if tenant.active && tenant.profile != Profile::Good {
            candidates.entry(tenant.main_agent).or_default().push(t);
        }
    }
    let agents: Vec<usize> = (0..world.users.len())
        .filter(|&u| {
            let user = &world.users[u];
            user.role == "agent" && user.sites.iter().any(|s| sites.contains(s))
        })
        .collect();
    debug_assert!(
        agents
            .iter()
            .all(|&u| world.users[u].sites.iter().all(|s| sites.contains(s))),
        "an agent's sites are in one batch"
    );

    let mut activity = Activity::default();
    let mut visited: HashSet<(NaiveDate, usize)> = HashSet::new();
    let mut promised_until: HashMap<usize, NaiveDate> = HashMap::new();
    // Payments collected by agents during the window, by (agent, day).
    let mut collected: BTreeMap<(usize, NaiveDate), Vec<usize>> = BTreeMap::new();
    for (i, p) in ledger.payments.iter().enumerate() {
        let day = p.occurred_at.date_naive();
        if !p.reversal
            && day >= first_day
            && world.users[p.agent].role == "agent"
            && p.method != Method::BankTransfer
        {
            collected.entry((p.agent, day)).or_default().push(i);
        }
    }

    let mut day = first_day;
    while day < spec.today {
        let working = day.weekday() != Weekday::Sun;
        for &agent in &agents {
            let mut visits: Vec<(usize, DateTime<Utc>, &'static str, Option<usize>)> = Vec::new();
            // Visits that collected a payment.
            for &p in collected.get(&(agent, day)).unwrap_or(&no_ids) {
                let t = ledger.payments[p].tenant;
                if rng.random_bool(0.7) && visited.insert((day, t)) {
                    let when = ledger.payments[p].occurred_at
                        - Duration::seconds(rng.random_range(300..1_200));
                    visits.push((t, when.max(at(day, 7 * 3600)), "paid", Some(p)));
                }
            }
            let pool = candidates.get(&agent).unwrap_or(&no_ids);
            // Other visits of tenants in arrears, Monday to Saturday.
            if working && !pool.is_empty() {
                let wanted = visits.len() + rng.random_range(2..=5usize);
                let mut tries = 0;
                while visits.len() < wanted && tries < 20 {
                    tries += 1;
                    let t = pool[rng.random_range(0..pool.len())];
                    if visited.contains(&(day, t)) || overdue(ledger, t, day).0 <= 0 {
                        continue;
                    }
                    visited.insert((day, t));
                    let outcome = pick_weighted(
                        &mut rng,
                        &[
                            ("promise_made", 35),
                            ("absent", 25),
                            ("refused", 10),
                            ("dispute", 8),
                            ("other", 20),
                            ("tenant_moved", 2),
                        ],
                    );
                    let when = at(day, rng.random_range(9 * 3600..17 * 3600));
                    visits.push((t, when, outcome, None));
                }
            }
            // Each visit was a mission of the day, in route order.
            visits.sort_by_key(|v| (v.1, v.0));
            for (order, (t, when, outcome, payment)) in visits.into_iter().enumerate() {
                let mission_id = uuid_from(&mut rng);
                let (outstanding, oldest) = overdue(ledger, t, day);
                let id = record_interaction(
                    world,
                    ledger,
                    &mut activity,
                    &mut rng,
                    &mut promised_until,
                    &promise_payments,
                    Contact {
                        visit: true,
                        agent,
                        tenant: t,
                        when,
                        outcome,
                        payment,
                        mission_id: Some(mission_id),
                    },
                );
                let days_overdue = oldest.map(|d| (day - d).num_days()).unwrap_or(0);
                let outstanding = outstanding.max(0);
                let failure_reason = match outcome {
                    "absent" => Some(FailureReason::TenantAbsent),
                    "refused" => Some(FailureReason::Refused),
                    "tenant_moved" => Some(FailureReason::TenantMoved),
                    _ => None,
                };
                let failed = failure_reason.is_some();
                let priority =
                    (outstanding as f64 / 1e6).ln_1p() * 10.0 + days_overdue as f64 / 30.0;
                activity.missions.push(Mission {
                    id: mission_id,
                    date: day,
                    agent,
                    tenant: t,
                    site: world.tenants[t].site,
                    priority: (priority * 100.0).round() / 100.0,
                    outstanding,
                    days_overdue,
                    route_order: order as i32,
                    estimated_distance_m: rng.random_range(300..2_500) as f64,
                    status: if failed { "failed" } else { "done" },
                    failure_reason,
                    started_at: when - Duration::seconds(rng.random_range(600..1_800)),
                    arrived_at: when - Duration::seconds(rng.random_range(60..300)),
                    finished_at: when + Duration::seconds(rng.random_range(300..1_200)),
                    closing_interaction_id: id,
                    closing_payment_id: payment.map(|p| ledger.payments[p].id),
                    created_at: at(day - Duration::days(1), 20 * 3600),
                });
            }
            // Calls.
            if working && !pool.is_empty() {
                for _ in 0..rng.random_range(3..=8) {
                    let t = pool[rng.random_range(0..pool.len())];
                    if overdue(ledger, t, day).0 <= 0 {
                        continue;
                    }
                    let outcome = pick_weighted(
                        &mut rng,
                        &[
                            ("no_answer", 35),
                            ("promise_made", 25),
                            ("refused", 8),
                            ("wrong_number", 4),
                            ("dispute", 6),
                            ("other", 22),
                        ],
                    );
                    let when = at(day, rng.random_range(8 * 3600 + 1_800..18 * 3600));
                    record_interaction(
                        world,
                        ledger,
                        &mut activity,
                        &mut rng,
                        &mut promised_until,
                        &promise_payments,
                        Contact {
                            visit: false,
                            agent,
                            tenant: t,
                            when,
                            outcome,
                            payment: None,
                            mission_id: None,
                        },
                    );
                }
            }
        }
        day += Duration::days(1);
    }

    // Promise outcomes from the payments that followed them.
    for promise in &mut activity.promises {
        settle_promise(
            promise,
            ledger,
            promise_payments.get(&promise.tenant).unwrap_or(&no_ids),
            spec.today,
            &mut rng,
        );
    }

    scores(world, ledger, &mut activity);
    if spec.start_points {
        activity.last_positions = last_positions(world, &agents, &activity.interactions);
    }
    activity
}

/// Where each of `agents` was last seen: a few metres from their last visit (10 minutes after
/// it), else at their first site the evening before `today`.
pub(super) fn last_positions(
    world: &World,
    agents: &[usize],
    interactions: &[Interaction],
) -> Vec<Position> {
    let cutoff = world.spec.cutoff();
    let mut last: HashMap<usize, &Interaction> = HashMap::new();
    for i in interactions
        .iter()
        .filter(|i| i.visit && !i.is_mock_location)
    {
        let entry = last.entry(i.agent).or_insert(i);
        if (i.occurred_at, i.id) > (entry.occurred_at, entry.id) {
            *entry = i;
        }
    }
    agents
        .iter()
        .map(|&agent| {
            let mut rng = stream(world.spec.seed, STREAM_POSITIONS, agent as u64);
            let (latitude, longitude, fix_time) = match last.get(&agent) {
                Some(visit) => {
                    let (lat, lon, _, _) = visit.location.expect("a visit has a location");
                    let (lat, lon) = offset(
                        lat,
                        lon,
                        rng.random_range(0.0..40.0),
                        rng.random_range(0.0..std::f64::consts::TAU),
                    );
                    let when = (visit.occurred_at + Duration::minutes(10))
                        .min(cutoff - Duration::seconds(1));
                    (lat, lon, when)
                }
                None => {
                    let site = &world.sites[world.users[agent].sites[0]];
                    let (lat, lon) = offset(
                        site.latitude,
                        site.longitude,
                        rng.random_range(0.0..80.0),
                        rng.random_range(0.0..std::f64::consts::TAU),
                    );
                    (lat, lon, cutoff - Duration::hours(6))
                }
            };
            Position {
                agent,
                latitude,
                longitude,
                accuracy_m: rng.random_range(4..25) as f64,
                battery_percent: rng.random_range(15..95),
                fix_time,
            }
        })
        .collect()
}
