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
    Gnf, InteractionKind, InteractionOutcome, PaymentAmount, PromiseProgress, PromiseStatus,
    ScoreEventKind, events_for_interaction,
};

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

fn demo_sites(spec: &Spec) -> Vec<Site> {
    let created_at = at(spec.go_live() - Duration::days(14), 9 * 3600);
    let mut rng = stream(spec.seed, STREAM_SITES, 0);
    let mut sites: Vec<Site> = names::DEMO_SITES
        .iter()
        .map(|&(code, name, commune, kind, is_sensitive, quartier)| {
            let (commune_name, lat, lon, _) = names::COMMUNES[commune];
            // Kaloum is a narrow peninsula: stay close to its centre.
            let jitter_m = if commune == 0 { 600.0 } else { 1_500.0 };
            let (latitude, longitude) = offset(
                lat,
                lon,
                jitter_m * rng.random::<f64>().sqrt(),
                rng.random_range(0.0..std::f64::consts::TAU),
            );
            Site {
                id: uuid_from(&mut rng),
                code: code.to_owned(),
                name: name.to_owned(),
                commune: commune_name,
                address: format!("{quartier}, {commune_name}, Conakry"),
                latitude,
                longitude,
                kind,
                is_sensitive,
                tenant_count: 0,
                created_at,
            }
        })
        .collect();
    // Commercial sites are smaller; spread DEMO_TENANTS by weight.
    let weights: Vec<f64> = sites
        .iter()
        .map(|s| {
            let base = if s.kind == "commercial" { 0.6 } else { 1.0 };
            base * rng.random_range(0.8..1.25)
        })
        .collect();
    distribute(spec.tenants, &weights)
        .into_iter()
        .zip(sites.iter_mut())
        .for_each(|(n, s)| s.tenant_count = n);
    sites
}

/// Splits `total` in proportion to `weights`, exactly.
fn distribute(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|w| ((total as f64) * w / sum).floor() as u64)
        .collect();
    let mut left = total - counts.iter().sum::<u64>();
    let n = counts.len();
    let mut i = 0;
    while left > 0 {
        counts[i % n] += 1;
        left -= 1;
        i += 1;
    }
    counts
}

fn scale_sites(spec: &Spec) -> anyhow::Result<Vec<Site>> {
    let count = spec.tenants.div_ceil(SCALE_TENANTS_PER_SITE).max(1);
    anyhow::ensure!(
        count <= 26 * 26 * 26,
        "too many tenants for 4-letter site codes"
    );
    let created_at = at(spec.go_live() - Duration::days(14), 9 * 3600);
    let counts = distribute(spec.tenants, &vec![1.0; count as usize]);
    let mut sites = Vec::with_capacity(count as usize);
    for (i, tenant_count) in counts.into_iter().enumerate() {
        let mut rng = stream(spec.seed, STREAM_SITES, i as u64);
        let commune = pick_weighted(&mut rng, &[(0usize, 1), (1, 2), (2, 2), (3, 4), (4, 3)]);
        let (commune_name, lat, lon, quartiers) = names::COMMUNES[commune];
        let quartier = quartiers[rng.random_range(0..quartiers.len())];
        let kind = pick_weighted(
            &mut rng,
            &[("residential", 70), ("commercial", 15), ("mixed", 15)],
        );
        let prefix = match kind {
            "commercial" => "Galerie",
            "mixed" => "Centre",
            _ => ["Résidence", "Cité", "Immeuble"][rng.random_range(0..3)],
        };
        let jitter_m = if commune == 0 { 600.0 } else { 2_000.0 };
        let (latitude, longitude) = offset(
            lat,
            lon,
            jitter_m * rng.random::<f64>().sqrt(),
            rng.random_range(0.0..std::f64::consts::TAU),
        );
        let n = i as u32;
        let code: String = [
            'S',
            char::from(b'A' + (n / 676) as u8),
            char::from(b'A' + ((n / 26) % 26) as u8),
            char::from(b'A' + (n % 26) as u8),
        ]
        .iter()
        .collect();
        sites.push(Site {
            id: uuid_from(&mut rng),
            name: format!("{prefix} {quartier} {}", i + 1),
            code,
            commune: commune_name,
            address: format!("{quartier}, {commune_name}, Conakry"),
            latitude,
            longitude,
            kind,
            is_sensitive: rng.random_bool(0.1),
            tenant_count,
            created_at,
        });
    }
    Ok(sites)
}

struct UserPlan {
    username: String,
    role: &'static str,
    sites: Vec<usize>,
    /// Index of the supervisor in the plan.
    supervisor: Option<usize>,
}

fn demo_users(spec: &Spec, site_count: usize) -> Vec<User> {
    let mut plans = Vec::new();
    let mut plan = |username: String, role, sites, supervisor| {
        plans.push(UserPlan {
            username,
            role,
            sites,
            supervisor,
        });
        plans.len() - 1
    };
    plan("admin".into(), "admin", vec![], None);
    plan("directeur".into(), "director", vec![], None);
    plan("comptable".into(), "accountant", vec![], None);
    let supervisors: Vec<usize> = ["superviseur", "superviseur2", "superviseur3"]
        .iter()
        .map(|name| plan((*name).into(), "supervisor", vec![], None))
        .collect();
    for (m, name) in [
        "gestionnaire",
        "gestionnaire2",
        "gestionnaire3",
        "gestionnaire4",
    ]
    .iter()
    .enumerate()
    {
        let sites = (m * 3..(m * 3 + 3).min(site_count)).collect();
        plan((*name).into(), "site_manager", sites, None);
    }
    for k in 0..20usize {
        let username = if k == 0 {
            "agent".to_owned()
        } else {
            format!("agent{:02}", k + 1)
        };
        let mut sites = vec![k % site_count];
        if k >= site_count {
            sites.push((k + site_count / 2) % site_count);
        }
        plan(
            username,
            "agent",
            sites,
            Some(supervisors[k % supervisors.len()]),
        );
    }
    materialise_users(spec, plans, |i| format!("+2246200000{i:02}"))
}

/// How many field agents the scale data set has for `tenants` tenants on `site_count` sites.
pub fn scale_agent_count(tenants: u64, site_count: usize) -> usize {
    let wanted = (tenants * SCALE_AGENTS_PER_1000_TENANTS).div_ceil(1_000) as usize;
    wanted.max(site_count)
}

/// The site agent `j` of `agents` covers: sites are shared out in consecutive runs, so each
/// site has `agents / sites` or one more agents and each agent works on one site (which keeps
/// every agent's tenants inside one batch of sites).
fn scale_agent_site(j: usize, agents: usize, site_count: usize) -> usize {
    j * site_count / agents
}

fn scale_users(spec: &Spec, site_count: usize) -> Vec<User> {
    let mut plans = Vec::new();
    let mut plan = |username: String, role, sites, supervisor| {
        plans.push(UserPlan {
            username,
            role,
            sites,
            supervisor,
        });
        plans.len() - 1
    };
    plan("scale.admin".into(), "admin", vec![], None);
    plan("scale.directeur".into(), "director", vec![], None);
    plan("scale.comptable".into(), "accountant", vec![], None);
    let agents = scale_agent_count(spec.tenants, site_count);
    let supervisors: Vec<usize> = (0..agents.div_ceil(10))
        .map(|i| {
            plan(
                format!("scale.superviseur{:02}", i + 1),
                "supervisor",
                vec![],
                None,
            )
        })
        .collect();
    for m in 0..site_count.div_ceil(10) {
        let sites = (m * 10..(m * 10 + 10).min(site_count)).collect();
        plan(
            format!("scale.gestionnaire{:02}", m + 1),
            "site_manager",
            sites,
            None,
        );
    }
    for j in 0..agents {
        plan(
            format!("scale.agent{:04}", j + 1),
            "agent",
            vec![scale_agent_site(j, agents, site_count)],
            Some(supervisors[j / 10]),
        );
    }
    materialise_users(spec, plans, |i| format!("+224620{:06}", 100_000 + i))
}

fn materialise_users(
    spec: &Spec,
    plans: Vec<UserPlan>,
    phone: impl Fn(usize) -> String,
) -> Vec<User> {
    let created_at = at(spec.go_live() - Duration::days(7), 10 * 3600);
    let ids: Vec<Uuid> = (0..plans.len())
        .map(|i| uuid_from(&mut stream(spec.seed, STREAM_USERS, i as u64)))
        .collect();
    plans
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut rng = stream(spec.seed, STREAM_USERS, i as u64);
            let id = uuid_from(&mut rng);
            User {
                id,
                username: p.username,
                phone: Some(phone(i)),
                full_name: names::person_name(&mut rng),
                role: p.role,
                supervisor: p.supervisor.map(|s| ids[s]),
                sites: p.sites,
                created_at,
            }
        })
        .collect()
}

fn tenants(
    spec: &Spec,
    sites: &[Site],
    site_agents: &[Vec<usize>],
) -> (Vec<Tenant>, Vec<std::ops::Range<usize>>) {
    let window_start = spec.window_start();
    let go_live = spec.go_live();
    let window_days = (spec.today - window_start).num_days();
    let mut phones_rng = stream(spec.seed, STREAM_PHONES, 0);
    let mut phones = HashSet::with_capacity(spec.tenants as usize);
    let mut out = Vec::with_capacity(spec.tenants as usize);
    let mut ranges = Vec::with_capacity(sites.len());
    for (s, site) in sites.iter().enumerate() {
        let start = out.len();
        for k in 0..site.tenant_count {
            let index = out.len();
            let mut rng = stream(spec.seed, STREAM_TENANTS, index as u64);
            let phone = loop {
                let p = names::mobile_number(&mut phones_rng);
                if phones.insert(p.clone()) {
                    break p;
                }
            };
            let shop = match site.kind {
                "commercial" => true,
                "mixed" => rng.random_bool(0.3),
                _ => false,
            };
            let unit = if shop {
                format!("BTQ-{:03}", k + 1)
            } else {
                let building = k / 24;
                let letter = if building < 26 {
                    char::from(b'A' + building as u8).to_string()
                } else {
                    format!(
                        "{}{}",
                        char::from(b'A' + (building / 26 - 1) as u8),
                        char::from(b'A' + (building % 26) as u8)
                    )
                };
                format!("{letter}-{:02}", k % 24 + 1)
            };
            // Rents skewed towards the low end, in whole 50,000 GNF.
            let u: f64 = rng.random::<f64>().powf(1.6);
            let rent = if shop {
                round_gnf(1_500_000.0 * (u * (5.0f64 / 1.5).ln()).exp())
            } else {
                round_gnf(500_000.0 * (u * 6.0f64.ln()).exp())
            };
            let (latitude, longitude) = offset(
                site.latitude,
                site.longitude,
                300.0 * rng.random::<f64>().sqrt(),
                rng.random_range(0.0..std::f64::consts::TAU),
            );
            let roll: f64 = rng.random();
            let (moved_in_on, moved_out_on) = if roll < 0.03 && window_days > 90 {
                let moved_in = window_start - Duration::days(rng.random_range(60..2_000));
                let out = window_start + Duration::days(rng.random_range(60..window_days - 10));
                (moved_in, Some(out))
            } else if roll < 0.12 && window_days > 40 {
                (
                    window_start + Duration::days(rng.random_range(1..window_days - 20)),
                    None,
                )
            } else {
                (
                    window_start - Duration::days(rng.random_range(30..2_900)),
                    None,
                )
            };
            let profile = pick_weighted(
                &mut rng,
                &[
                    (Profile::Good, 55),
                    (Profile::Late, 30),
                    (Profile::Chronic, 15),
                ],
            );
            let preferred_method = if site.kind != "residential" && rng.random_bool(0.35) {
                Method::BankTransfer
            } else {
                match names::operator_of(&phone) {
                    Operator::Orange if rng.random_bool(0.55) => Method::OrangeMoney,
                    Operator::Mtn if rng.random_bool(0.55) => Method::MtnMomo,
                    Operator::Other if rng.random_bool(0.1) => Method::BankTransfer,
                    _ => Method::Cash,
                }
            };
            let agents = &site_agents[s];
            let created_day = moved_in_on.max(go_live);
            out.push(Tenant {
                id: uuid_from(&mut rng),
                site: s,
                unit,
                full_name: names::person_name(&mut rng),
                phone,
                latitude,
                longitude,
                rent,
                active: moved_out_on.is_none(),
                moved_in_on,
                moved_out_on,
                profile,
                preferred_method,
                main_agent: agents[(k as usize) % agents.len()],
                created_at: at(created_day, rng.random_range(8 * 3600..17 * 3600)),
            });
        }
        ranges.push(start..out.len());
    }
    (out, ranges)
}

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
fn apply(charges: &mut [Charge], lines: &[(usize, i64)], when: DateTime<Utc>) {
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
fn issued_outstanding(charges: &[Charge], when: DateTime<Utc>) -> i64 {
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

enum Event {
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

fn simulate_tenant(world: &World, t: usize, ledger: &mut Ledger) {
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
fn remaining(charges: &[Charge], lines: &[(usize, i64)]) -> Vec<i64> {
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
fn operator_reference(rng: &mut ChaCha8Rng, method: Method, when: DateTime<Utc>) -> Option<String> {
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
    pub failure_reason: Option<&'static str>,
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
fn overdue_at(
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
                let failed = matches!(outcome, "absent" | "refused" | "tenant_moved");
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
                    failure_reason: failed.then_some(outcome),
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
fn last_positions(world: &World, agents: &[usize], interactions: &[Interaction]) -> Vec<Position> {
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

/// A call or visit to record.
struct Contact {
    visit: bool,
    agent: usize,
    tenant: usize,
    when: DateTime<Utc>,
    outcome: &'static str,
    /// The payment collected during the visit (index into `Ledger::payments`).
    payment: Option<usize>,
    mission_id: Option<Uuid>,
}

/// Records a call or visit (and the promise it obtained); returns the interaction id.
fn record_interaction(
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

fn settle_promise(
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
fn scores(world: &World, ledger: &Ledger, activity: &mut Activity) {
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
fn points(kind: ScoreEventKind) -> i32 {
    i32::try_from(kind.points()).expect("points fit in i32")
}

fn source_key(s: &ScoreSource) -> Uuid {
    match s {
        ScoreSource::Interaction(id) | ScoreSource::Payment(id) | ScoreSource::Promise(id) => *id,
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
