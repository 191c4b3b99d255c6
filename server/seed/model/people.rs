//! Sites, users and tenants of a data set: where they are, who covers what.

use super::*;

pub(super) fn demo_sites(spec: &Spec) -> Vec<Site> {
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
pub(super) fn distribute(total: u64, weights: &[f64]) -> Vec<u64> {
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

pub(super) fn scale_sites(spec: &Spec) -> anyhow::Result<Vec<Site>> {
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

pub(super) struct UserPlan {
    username: String,
    role: &'static str,
    sites: Vec<usize>,
    /// Index of the supervisor in the plan.
    supervisor: Option<usize>,
}

pub(super) fn demo_users(spec: &Spec, site_count: usize) -> Vec<User> {
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
pub(super) fn scale_agent_site(j: usize, agents: usize, site_count: usize) -> usize {
    j * site_count / agents
}

pub(super) fn scale_users(spec: &Spec, site_count: usize) -> Vec<User> {
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

pub(super) fn materialise_users(
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

pub(super) fn tenants(
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
