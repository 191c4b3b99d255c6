//! Pure, deterministic generation of the seed data sets: no I/O, no clock.
//!
//! Every random choice comes from a ChaCha8 stream derived from the data set's fixed seed,
//! one stream per purpose and entity, so the same `Spec` always gives the same rows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, Utc, Weekday};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use super::names::{self, Operator};
use crate::domain::allocation::{self, OpenCharge};
use crate::domain::ledger::{self, LedgerCharge, LedgerPayment};
use crate::domain::presence::{Accuracy, LatLng, MaxDistance, check_visit};
use crate::domain::promise::settled_at;
use crate::domain::{
    FailureReason, Gnf, InteractionKind, InteractionOutcome, PaymentAmount, PromiseProgress,
    PromiseStatus, ScoreEventKind, events_for_interaction,
};

mod activity;
mod contacts;
mod people;
mod rent;

pub use activity::*;
use contacts::*;
pub use people::*;
pub use rent::*;

/// Months of charges, ending with the current month.
pub const MONTHS: u32 = 18;
/// Rent is due on the 5th of the month.
pub const DUE_DAY: u32 = 5;
/// Rents and partial payments are whole multiples of this (GNF).
pub const ROUNDING_GNF: i64 = 50_000;
/// Days before `today` with calls, visits, promises and missions.
pub const ACTIVITY_DAYS: i64 = 42;

// Purposes of the random streams (any distinct constants).
const STREAM_SITES: u64 = 1;
const STREAM_USERS: u64 = 2;
const STREAM_TENANTS: u64 = 3;
const STREAM_PHONES: u64 = 4;
const STREAM_LEDGER: u64 = 5;
const STREAM_ACTIVITY: u64 = 6;
const STREAM_POSITIONS: u64 = 7;

/// A random stream for one purpose and one entity of a data set.
pub fn stream(seed: u64, purpose: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(index);
    rng
}

/// A UUID drawn from the stream (version 4 layout), never from the OS.
pub fn uuid_from<R: RngCore>(rng: &mut R) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A time-ordered UUID (version 7 layout) for an event at `when`, its random part drawn
/// from the stream. Rows written in time order then append to their indexes.
pub fn uuid_at<R: RngCore>(rng: &mut R, when: DateTime<Utc>) -> Uuid {
    let mut bytes = [0u8; 10];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_unix_timestamp_millis(when.timestamp_millis() as u64, &bytes).into_uuid()
}

pub fn first_of_month(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("day 1 exists")
}

pub fn add_months(d: NaiveDate, months: i32) -> NaiveDate {
    let m = Months::new(months.unsigned_abs());
    if months >= 0 {
        d.checked_add_months(m)
    } else {
        d.checked_sub_months(m)
    }
    .expect("date within range")
}

/// The instant `secs` seconds after midnight UTC (= Africa/Conakry) of `date`.
pub fn at(date: NaiveDate, secs: i64) -> DateTime<Utc> {
    (date.and_time(NaiveTime::MIN) + Duration::seconds(secs)).and_utc()
}

/// Rounds to the nearest 50,000 GNF, at least 50,000.
pub fn round_gnf(amount: f64) -> i64 {
    let steps = (amount / ROUNDING_GNF as f64).round() as i64;
    steps.max(1) * ROUNDING_GNF
}

/// 'KAL-2026-000123'.
pub fn receipt_number(site_code: &str, year: i32, number: u64) -> String {
    format!("{site_code}-{year:04}-{number:06}")
}

/// Great-circle distance in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const R: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * a.sqrt().asin()
}

/// The verdict the server gives a visit (`domain::presence`, default distance limit), so that
/// seeded visits are judged as recorded ones are.
fn far_from_tenant(location: Option<(f64, f64, f64, f64)>, is_mock: bool, tenant: &Tenant) -> bool {
    let fix = location.and_then(|(lat, lon, ..)| LatLng::parse(lat, lon).ok());
    let accuracy = location
        .and_then(|(_, _, accuracy, _)| Accuracy::parse(accuracy).ok())
        .unwrap_or_default();
    let home = LatLng::parse(tenant.latitude, tenant.longitude).ok();
    check_visit(fix, accuracy, is_mock, home, MaxDistance::default()).far_away
}

/// The point `distance_m` away from (lat, lon) in direction `bearing` (radians), rounded to
/// 6 decimals (~0.1 m).
fn offset(lat: f64, lon: f64, distance_m: f64, bearing: f64) -> (f64, f64) {
    let dlat = distance_m * bearing.cos() / 111_320.0;
    let dlon = distance_m * bearing.sin() / (111_320.0 * lat.to_radians().cos());
    (round6(lat + dlat), round6(lon + dlon))
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn pick_weighted<R: Rng, T: Copy>(rng: &mut R, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total);
    for &(item, weight) in items {
        if roll < weight {
            return item;
        }
        roll -= weight;
    }
    items[items.len() - 1].0
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub seed: u64,
    pub today: NaiveDate,
    pub tenants: u64,
    /// Demo: the 12 named sites and named users; otherwise generated ones ("scale.*").
    pub demo: bool,
    /// Calls, visits, promises, missions and scores of the last weeks.
    pub activity: bool,
    /// Each agent's last known position (`agent_last_positions`), where the next day's plan
    /// starts: the place of their last visit, else their site.
    pub start_points: bool,
}

pub const DEMO_SEED: u64 = 0xA41C_2026_0001;
pub const SCALE_SEED: u64 = 0xA41C_2026_5CA1;
pub const DEMO_TENANTS: u64 = 2_000;
/// Tenants per site in the scale data set.
pub const SCALE_TENANTS_PER_SITE: u64 = 400;
/// Field agents per 1,000 tenants in the scale data set (300 at 100,000 tenants, about 333
/// tenants each), never fewer than one per site.
pub const SCALE_AGENTS_PER_1000_TENANTS: u64 = 3;

impl Spec {
    pub fn demo(today: NaiveDate) -> Self {
        Self {
            name: "demo",
            seed: DEMO_SEED,
            today,
            tenants: DEMO_TENANTS,
            demo: true,
            activity: true,
            start_points: false,
        }
    }

    pub fn scale(tenants: u64, today: NaiveDate) -> Self {
        Self {
            name: "scale",
            seed: SCALE_SEED,
            today,
            tenants,
            demo: false,
            activity: true,
            start_points: true,
        }
    }

    /// First day of the current month.
    pub fn current_period(&self) -> NaiveDate {
        first_of_month(self.today)
    }

    /// First month with charges.
    pub fn window_start(&self) -> NaiveDate {
        add_months(self.current_period(), -(MONTHS as i32 - 1))
    }

    /// When the company started using the system: rows before the window are dated then.
    pub fn go_live(&self) -> NaiveDate {
        add_months(self.window_start(), -1)
    }

    /// Midnight of `today`: nothing generated happens at or after it.
    pub fn cutoff(&self) -> DateTime<Utc> {
        at(self.today, 0)
    }
}

#[derive(Clone, Debug)]
pub struct Site {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub commune: &'static str,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    pub kind: &'static str,
    pub is_sensitive: bool,
    pub tenant_count: u64,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub phone: Option<String>,
    pub full_name: String,
    pub role: &'static str,
    pub supervisor: Option<Uuid>,
    /// Indexes into `World::sites` (user_sites).
    pub sites: Vec<usize>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Pays in full by the due date (55 %).
    Good,
    /// Pays 10-60 days late, sometimes in part (30 %).
    Late,
    /// Leaves many months unpaid (15 %).
    Chronic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Cash,
    OrangeMoney,
    MtnMomo,
    BankTransfer,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Cash => "cash",
            Method::OrangeMoney => "orange_money",
            Method::MtnMomo => "mtn_momo",
            Method::BankTransfer => "bank_transfer",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: Uuid,
    pub site: usize,
    pub unit: String,
    pub full_name: String,
    pub phone: String,
    pub latitude: f64,
    pub longitude: f64,
    pub rent: i64,
    pub active: bool,
    pub moved_in_on: NaiveDate,
    pub moved_out_on: Option<NaiveDate>,
    pub profile: Profile,
    pub preferred_method: Method,
    /// Index into `World::users`: the agent who usually collects.
    pub main_agent: usize,
    pub created_at: DateTime<Utc>,
}

/// Sites, users and tenants of a data set.
#[derive(Clone, Debug)]
pub struct World {
    pub spec: Spec,
    pub sites: Vec<Site>,
    pub users: Vec<User>,
    pub tenants: Vec<Tenant>,
    /// Agents (indexes into `users`) covering each site.
    pub site_agents: Vec<Vec<usize>>,
    /// The accountant who records bank transfers and reversals.
    pub accountant: usize,
    /// Tenants of each site, in order (indexes into `tenants`).
    pub site_tenants: Vec<std::ops::Range<usize>>,
}

impl World {
    pub fn build(spec: &Spec) -> anyhow::Result<Self> {
        let sites = if spec.demo {
            demo_sites(spec)
        } else {
            scale_sites(spec)?
        };
        let users = if spec.demo {
            demo_users(spec, sites.len())
        } else {
            scale_users(spec, sites.len())
        };
        let mut site_agents = vec![Vec::new(); sites.len()];
        for (i, user) in users.iter().enumerate() {
            if user.role == "agent" {
                for &s in &user.sites {
                    site_agents[s].push(i);
                }
            }
        }
        anyhow::ensure!(
            site_agents.iter().all(|a| !a.is_empty()),
            "every site needs an agent"
        );
        let accountant = users
            .iter()
            .position(|u| u.role == "accountant")
            .ok_or_else(|| anyhow::anyhow!("no accountant"))?;
        let (tenants, site_tenants) = tenants(spec, &sites, &site_agents);
        Ok(Self {
            spec: spec.clone(),
            sites,
            users,
            tenants,
            site_agents,
            accountant,
            site_tenants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn charge(period: NaiveDate, due: i64) -> Charge {
        let created = at(period, 0);
        Charge {
            tenant: 0,
            period,
            due_date: period + Duration::days(4),
            amount_due: due,
            amount_paid: 0,
            paid_in_full_at: None,
            created_at: created,
            updated_at: created,
        }
    }

    #[test]
    fn fifo_pays_oldest_issued_charges_first() {
        let mut charges = vec![
            charge(date(2026, 1, 1), 1_000_000),
            charge(date(2026, 2, 1), 1_000_000),
            charge(date(2026, 3, 1), 1_000_000),
        ];
        let when = at(date(2026, 2, 10), 36_000);
        let allocations = allocate_fifo(&mut charges, 1_500_000, when);
        assert_eq!(allocations, vec![(0, 1_000_000), (1, 500_000)]);
        assert_eq!(charges[0].paid_in_full_at, Some(when));
        assert_eq!(charges[1].amount_paid, 500_000);
        assert_eq!(charges[1].paid_in_full_at, None);
        // March is not issued yet on 10 February: the rest is an overpayment.
        let allocations = allocate_fifo(&mut charges, 1_000_000, when);
        assert_eq!(allocations, vec![(1, 500_000)]);
        assert_eq!(charges[2].amount_paid, 0);
    }

    #[test]
    fn reversal_reopens_charges() {
        let mut charges = vec![
            charge(date(2026, 1, 1), 800_000),
            charge(date(2026, 2, 1), 800_000),
        ];
        let when = at(date(2026, 2, 6), 0);
        let allocations = allocate_fifo(&mut charges, 1_000_000, when);
        reverse_allocations(&mut charges, &allocations, when + Duration::days(1));
        assert!(
            charges
                .iter()
                .all(|c| c.amount_paid == 0 && c.paid_in_full_at.is_none())
        );
        assert_eq!(charges[0].updated_at, when + Duration::days(1));
    }

    #[test]
    fn receipts_and_rounding() {
        assert_eq!(receipt_number("KAL", 2026, 123), "KAL-2026-000123");
        assert_eq!(receipt_number("SABC", 2026, 1_234_567), "SABC-2026-1234567");
        assert_eq!(round_gnf(1_234_567.0), 1_250_000);
        assert_eq!(round_gnf(10.0), 50_000);
        assert_eq!(distribute(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
    }

    #[test]
    fn haversine_is_sane() {
        let d = haversine_m(9.51, -13.71, 9.60, -13.64);
        assert!((d - 12_580.0).abs() < 200.0, "{d}");
        let (lat, lon) = offset(9.5, -13.7, 250.0, 1.0);
        assert!((haversine_m(9.5, -13.7, lat, lon) - 250.0).abs() < 1.0);
    }

    fn demo_world() -> (World, Ledger, Activity) {
        let spec = Spec::demo(date(2026, 11, 26));
        let world = World::build(&spec).expect("demo world");
        let mut ledger = simulate_sites(&world, 0..world.sites.len());
        let activity = simulate_activity(&world, 0..world.sites.len(), &mut ledger);
        (world, ledger, activity)
    }

    #[test]
    fn demo_generation_is_deterministic_and_consistent() {
        let (world, ledger, activity) = demo_world();
        let (world2, ledger2, activity2) = demo_world();
        assert_eq!(world.tenants.len(), DEMO_TENANTS as usize);
        assert_eq!(world.sites.len(), 12);
        assert_eq!(
            world.tenants.iter().map(|t| t.id).collect::<Vec<_>>(),
            world2.tenants.iter().map(|t| t.id).collect::<Vec<_>>()
        );
        assert_eq!(ledger.charges, ledger2.charges);
        assert_eq!(
            ledger
                .payments
                .iter()
                .map(|p| (p.id, p.receipt_number.clone()))
                .collect::<Vec<_>>(),
            ledger2
                .payments
                .iter()
                .map(|p| (p.id, p.receipt_number.clone()))
                .collect::<Vec<_>>()
        );
        assert_eq!(activity.daily_scores, activity2.daily_scores);

        // charges.amount_paid = sum of allocations, and never above the amount due.
        let mut paid = vec![0i64; ledger.charges.len()];
        for p in &ledger.payments {
            let sum: i64 = p.allocations.iter().map(|a| a.1).sum();
            assert_eq!(sum, if p.reversal { -p.amount } else { p.amount });
            for &(c, a) in &p.allocations {
                paid[c] += a;
            }
        }
        for (c, charge) in ledger.charges.iter().enumerate() {
            assert_eq!(paid[c], charge.amount_paid);
            assert!(charge.amount_paid <= charge.amount_due);
            assert_eq!(
                charge.paid_in_full_at.is_some(),
                charge.amount_paid == charge.amount_due
            );
        }
        // Nothing at or after today.
        let cutoff = world.spec.cutoff();
        assert!(
            ledger
                .payments
                .iter()
                .all(|p| p.occurred_at < cutoff && p.received_at < cutoff)
        );
        assert!(activity.interactions.iter().all(|i| i.received_at < cutoff));
        // Phones and units are unique.
        let phones: HashSet<_> = world.tenants.iter().map(|t| &t.phone).collect();
        assert_eq!(phones.len(), world.tenants.len());
        let units: HashSet<_> = world.tenants.iter().map(|t| (t.site, &t.unit)).collect();
        assert_eq!(units.len(), world.tenants.len());
        // A mix of arrears: some tenants owe many months, most owe nothing overdue.
        let today = world.spec.today;
        let mut overdue_months = vec![0; world.tenants.len()];
        for c in &ledger.charges {
            if c.due_date < today && c.amount_paid < c.amount_due {
                overdue_months[c.tenant] += 1;
            }
        }
        let clean = overdue_months.iter().filter(|&&m| m == 0).count();
        let chronic = overdue_months.iter().filter(|&&m| m >= 4).count();
        assert!(clean > world.tenants.len() / 2, "{clean}");
        assert!(chronic > world.tenants.len() / 20, "{chronic}");
        assert!(ledger.payments.iter().any(|p| p.reversal));
        assert!(!activity.promises.is_empty() && !activity.missions.is_empty());
    }

    #[test]
    fn receipts_are_gap_free_per_site_and_year() {
        let (world, ledger, _) = demo_world();
        let mut seen: BTreeMap<(usize, i32), Vec<u64>> = BTreeMap::new();
        for p in &ledger.payments {
            let n: u64 = p
                .receipt_number
                .rsplit('-')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("number");
            assert!(p.receipt_number.starts_with(&world.sites[p.site].code));
            seen.entry((p.site, p.received_at.year()))
                .or_default()
                .push(n);
        }
        for ((s, y), mut numbers) in seen {
            numbers.sort_unstable();
            assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
            assert!(
                ledger
                    .receipt_counters
                    .contains(&(s, y, numbers.len() as u64))
            );
        }
    }

    #[test]
    fn scale_world_has_four_letter_codes_and_all_tenants() {
        let spec = Spec::scale(1_001, date(2026, 11, 26));
        let world = World::build(&spec).expect("scale world");
        assert_eq!(world.tenants.len(), 1_001);
        assert_eq!(world.sites.len(), 3);
        assert_eq!(world.sites[0].code, "SAAA");
        assert!(world.users.iter().any(|u| u.username == "scale.agent0001"));
    }

    #[test]
    fn scale_agents_cover_every_site_with_three_per_thousand_tenants() {
        // 100,000 tenants: 250 sites, 300 agents, each on one site, 1 or 2 per site.
        assert_eq!(scale_agent_count(100_000, 250), 300);
        let world = World::build(&Spec::scale(100_000, date(2026, 11, 26))).expect("world");
        assert_eq!(world.sites.len(), 250);
        let agents: Vec<&User> = world.users.iter().filter(|u| u.role == "agent").collect();
        assert_eq!(agents.len(), 300);
        assert!(agents.iter().all(|a| a.sites.len() == 1));
        let per_site: Vec<usize> = world.site_agents.iter().map(Vec::len).collect();
        assert_eq!(per_site.iter().sum::<usize>(), 300);
        assert!(per_site.iter().all(|&n| n == 1 || n == 2), "{per_site:?}");
        assert_eq!(per_site.iter().filter(|&&n| n == 2).count(), 50);
        // Small data sets keep at least one agent per site.
        assert_eq!(scale_agent_count(1_001, 3), 4);
        assert_eq!(scale_agent_count(10, 1), 1);
    }

    /// The scale data set of `tenants` tenants, simulated as the seed writes it: batch by batch.
    fn scale_run(tenants: u64) -> (World, Vec<(Ledger, Activity)>) {
        let world = World::build(&Spec::scale(tenants, date(2026, 11, 26))).expect("world");
        let mut runs = Vec::new();
        // Two batches: the first two sites, then the rest.
        for sites in [0..2, 2..world.sites.len()] {
            let mut ledger = simulate_sites(&world, sites.clone());
            let activity = simulate_activity(&world, sites, &mut ledger);
            runs.push((ledger, activity));
        }
        (world, runs)
    }

    #[test]
    fn scale_activity_is_consistent_with_the_payments() {
        let (world, runs) = scale_run(2_000);
        assert_eq!(world.sites.len(), 5);
        let today = world.spec.today;
        let cutoff = world.spec.cutoff();
        let first_day = today - Duration::days(ACTIVITY_DAYS);
        let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
        let (mut calls, mut visits, mut positions) = (0, 0, 0);
        for (ledger, activity) in &runs {
            let tenants: HashSet<usize> = ledger.charges.iter().map(|c| c.tenant).collect();
            let reversed: HashSet<Uuid> =
                ledger.payments.iter().filter_map(|p| p.reverses).collect();
            for i in &activity.interactions {
                // Each contact is by an agent of the tenant's site, in the window, about a
                // tenant of this batch; visits carry a location, calls none.
                assert!(tenants.contains(&i.tenant));
                assert!(world.site_agents[world.tenants[i.tenant].site].contains(&i.agent));
                assert!(i.occurred_at >= at(first_day, 0) && i.received_at < cutoff);
                assert_eq!(i.visit, i.location.is_some());
                if i.visit {
                    visits += 1;
                } else {
                    calls += 1;
                }
            }
            let interactions: HashMap<Uuid, &Interaction> =
                activity.interactions.iter().map(|i| (i.id, i)).collect();
            for m in &activity.missions {
                let visit = interactions[&m.closing_interaction_id];
                assert!(visit.visit && visit.mission_id == Some(m.id));
                assert_eq!((visit.tenant, visit.agent), (m.tenant, m.agent));
            }
            for p in &activity.promises {
                *statuses.entry(p.status).or_default() += 1;
                let made_in = interactions[&p.interaction_id];
                assert_eq!((made_in.tenant, made_in.agent), (p.tenant, p.agent));
                if p.status == PromiseStatus::Cancelled.as_str() {
                    continue;
                }
                // Recomputed from the raw payments: valid payments of the tenant from when it
                // was made through its promised day.
                let paid: i64 = ledger
                    .payments
                    .iter()
                    .filter(|q| q.tenant == p.tenant && !q.reversal && !reversed.contains(&q.id))
                    .filter(|q| {
                        q.occurred_at >= p.made_at && q.occurred_at.date_naive() <= p.promised_date
                    })
                    .map(|q| q.amount)
                    .sum();
                let expected = if paid >= p.amount {
                    "kept"
                } else if today <= p.promised_date {
                    "pending"
                } else if paid > 0 {
                    "partially_kept"
                } else {
                    "broken"
                };
                assert_eq!(p.status, expected, "{p:?}");
            }
            for q in ledger.payments.iter().filter(|q| q.promise_id.is_some()) {
                let promise = activity
                    .promises
                    .iter()
                    .find(|p| Some(p.id) == q.promise_id)
                    .expect("a linked promise");
                assert_eq!(promise.tenant, q.tenant);
            }
            // One start point per agent of the batch, in Conakry, before today.
            for pos in &activity.last_positions {
                assert!(world.users[pos.agent].role == "agent");
                assert!((9.4..9.9).contains(&pos.latitude), "{pos:?}");
                assert!((-13.9..-13.4).contains(&pos.longitude), "{pos:?}");
                assert!(pos.fix_time < cutoff);
            }
            positions += activity.last_positions.len();
        }
        let agents = world.users.iter().filter(|u| u.role == "agent").count();
        assert_eq!(positions, agents);
        // Six agents over six weeks: hundreds of contacts each, and every promise outcome.
        assert!(
            visits > 1_000 && calls > 500,
            "{visits} visits, {calls} calls"
        );
        for status in ["pending", "kept", "partially_kept", "broken"] {
            assert!(
                statuses.get(status).copied().unwrap_or(0) > 0,
                "{statuses:?}"
            );
        }
        assert!(statuses["kept"] > statuses["broken"] / 3, "{statuses:?}");
    }

    #[test]
    fn scale_activity_is_deterministic() {
        let (_, a) = scale_run(900);
        let (_, b) = scale_run(900);
        for ((la, aa), (lb, ab)) in a.iter().zip(&b) {
            assert_eq!(la.charges, lb.charges);
            assert_eq!(aa.daily_scores, ab.daily_scores);
            let ids = |x: &Activity| x.interactions.iter().map(|i| i.id).collect::<Vec<_>>();
            assert_eq!(ids(aa), ids(ab));
        }
    }
}
