//! Mission planning benchmark (ops/bench/missions.sh, docs/performance.md "Mission planning"):
//! times GenerateMissions' use case for the whole company on the database of DATABASE_URL (a
//! dry run, then a stored run, each in its own transaction), and writes the plan it made as
//! JSON for the VROOM comparison: per site, the agents (start point, capacity left) and the
//! planned tenants (home), with this planner's balance and route length.
//!
//!   akig-plan-bench [MAX_PER_AGENT] > plan.json      (default 12)

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use akig::app::config::MissionsConfig;
use akig::app::missions::{self, GenerateInput, Planner};
use akig::auth::caller::Scope;
use akig::domain::conakry_day;
use akig::domain::route::problem::TravelMode;
use akig::geo::RouteConfig;
use akig::store::{locations, missions as store};
use chrono::Utc;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let max: usize = std::env::args().nth(1).map_or(Ok(12), |a| a.parse())?;
    let url = std::env::var("DATABASE_URL")?;
    // The server's session settings (JIT off), as GenerateMissions runs with them.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(akig::db::session_options(url.parse()?))
        .await?;
    let config = MissionsConfig::default();
    let speed = RouteConfig::default().speeds.of(TravelMode::Walking);
    let now = Utc::now();
    let day = conakry_day(now).succ_opt().unwrap_or(conakry_day(now));
    let planner = Planner {
        scope: Scope::Company,
        now,
    };
    let input = |dry_run| GenerateInput {
        day,
        site_ids: None,
        agent_ids: None,
        max_per_agent: max,
        dry_run,
    };

    let mut tx = pool.begin().await?;
    let started = Instant::now();
    let preview = missions::generate(&mut tx, &planner, &input(true), &config, speed).await?;
    let dry_secs = started.elapsed().as_secs_f64();
    tx.rollback().await?;

    let mut tx = pool.begin().await?;
    let started = Instant::now();
    let stored = missions::generate(&mut tx, &planner, &input(false), &config, speed).await?;
    let stored_secs = started.elapsed().as_secs_f64();
    tx.rollback().await?;

    // The plan's inputs and result, per site.
    let mut conn = pool.acquire().await?;
    let sites = store::plan_sites(&mut conn, None).await?;
    let site_ids: Vec<_> = sites.iter().map(|s| s.id).collect();
    let agents = store::plan_agents(&mut conn, &site_ids, None, None).await?;
    let tenant_ids: Vec<_> = preview.missions.iter().map(|m| m.tenant_id).collect();
    let homes: HashMap<_, _> = locations::tenant_homes(&mut *conn, &tenant_ids)
        .await?
        .into_iter()
        .map(|h| (h.tenant_id, h))
        .collect();
    let mut out_sites = Vec::new();
    let mut total_distance = 0.0;
    let mut worst_balance = 0;
    // Each agent's missions over the whole plan (an agent may cover several sites).
    let mut totals: HashMap<_, usize> = HashMap::new();
    for m in &preview.missions {
        *totals.entry(m.agent_id).or_default() += 1;
    }
    for site in &sites {
        let covering: Vec<_> = agents
            .iter()
            .filter(|a| a.site_ids.contains(&site.id))
            .collect();
        let mine: Vec<_> = preview
            .missions
            .iter()
            .filter(|m| m.site_id == site.id)
            .collect();
        if covering.is_empty() || mine.is_empty() {
            continue;
        }
        // Balance: missions per agent covering the site, over the whole plan.
        let loads: Vec<usize> = covering
            .iter()
            .map(|a| totals.get(&a.id).copied().unwrap_or(0))
            .collect();
        let balance = loads.iter().max().unwrap_or(&0) - loads.iter().min().unwrap_or(&0);
        worst_balance = worst_balance.max(balance);
        // VROOM gets this site's tenants and, as vehicles, the agents with missions here, each
        // with as many visits here as this plan gave them, from the same start.
        let mut here: BTreeMap<_, usize> = BTreeMap::new();
        let mut distance = 0.0;
        for m in &mine {
            *here.entry(m.agent_id).or_default() += 1;
            distance += m.estimated_distance_m.unwrap_or(0.0);
        }
        total_distance += distance;
        out_sites.push(json!({
            "site": site.code,
            "agents": covering.iter().filter(|a| here.contains_key(&a.id)).map(|a| json!({
                "id": a.id,
                "start": [a.latitude.unwrap_or(site.latitude), a.longitude.unwrap_or(site.longitude)],
                "capacity": here[&a.id],
            })).collect::<Vec<_>>(),
            "jobs": mine.iter().filter_map(|m| homes.get(&m.tenant_id)).map(|h| json!([h.latitude, h.longitude])).collect::<Vec<_>>(),
            "distance_m": distance,
            "balance": balance,
        }));
    }
    println!(
        "{}",
        json!({
            "agents": agents.len(),
            "candidates": preview.candidate_count,
            "planned": preview.missions.len(),
            "unassigned": preview.unassigned_count,
            "dry_run_secs": dry_secs,
            "stored_run_secs": stored_secs,
            "stored_created": stored.created_count,
            "distance_m": total_distance,
            "worst_balance": worst_balance,
            "sites": out_sites,
        })
    );
    Ok(())
}
