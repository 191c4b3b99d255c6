//! GetSummary and ListSites through a real gRPC client, on a small data set dated relative to
//! today with every figure computed by hand from the rows written, and their scope (the
//! manager of one site never sees another's).

use akig::proto::v1::{
    AgentPresence, AgingBucketTotal, GetSiteRequest, GetSummaryRequest, GetSummaryResponse,
    ListSitesRequest, ListSitesResponse, MissionFigures,
};
use chrono::{DateTime, Datelike, Days, NaiveDate, TimeDelta, Utc};
use tonic::Code;
use uuid::Uuid;

use crate::positions::Phone;
use crate::support::{
    TestApp, TestDb, authed, bad_fields, create_charge, create_site, create_tenant, create_user,
    insert_mission, insert_promise, pay_charge, put_online, spawn_app, x_cache,
};

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn ago(days: u64) -> NaiveDate {
    today() - Days::new(days)
}

fn noon(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(12, 0, 0).expect("valid time").and_utc()
}

fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("first")
}

async fn summary(
    app: &TestApp,
    username: &str,
    site_ids: Vec<String>,
) -> Result<GetSummaryResponse, tonic::Status> {
    let token = app.token(username).await;
    let mut client = app.dashboard_client().await;
    client
        .get_summary(authed(GetSummaryRequest { site_ids }, &token))
        .await
        .map(tonic::Response::into_inner)
}

async fn list_sites(
    app: &TestApp,
    username: &str,
    request: ListSitesRequest,
) -> Result<ListSitesResponse, tonic::Status> {
    let token = app.token(username).await;
    let mut client = app.dashboard_client().await;
    client
        .list_sites(authed(request, &token))
        .await
        .map(tonic::Response::into_inner)
}

fn aging(lines: &[AgingBucketTotal]) -> Vec<(i32, i64, i64, i64)> {
    lines
        .iter()
        .map(|l| (l.bucket, l.outstanding_gnf, l.charge_count, l.tenant_count))
        .collect()
}

/// (code, sensitive, arrears, tenants, in arrears, collection rate, punctuality, charges over
/// 60 days, agents) of a site.
type SiteLine = (String, bool, i64, i64, i64, f64, f64, i64, i64);

struct World {
    app: TestApp,
    kal: Uuid,
    mat: Uuid,
}

/// KAL (sensitive) and MAT; "dir" (director), "gest.kal" (manager of KAL), "agent.un" (KAL
/// and MAT, online: a position received just now), "agent.deux" (MAT, never seen).
///
/// KAL (T = today):
/// - Aminata: 1,000 due T-100, unpaid; 1,000 due T-40, 400 paid on T-45; 1,000 due T, paid
///   today.
/// - Binta: 2,000 due T-70, paid on T-72 (on time); 2,000 due T-40, paid on T-41, that payment
///   reversed on T-39 and paid again on T-39 (late); 2,000 due T, unpaid.
/// - Chérif: 3,000 due T-10, 500 paid today and reversed today.
///
/// MAT: Fodé: 1,500 due T-40, unpaid; 1,500 due T, paid today.
///
/// Promises: KAL pending 600 (Aminata), kept this month (Binta), broken this month (Chérif),
/// broken 60 days ago (Chérif); MAT pending 900 (Fodé). Missions today: KAL done (Aminata),
/// planned (Binta), cancelled (Chérif); MAT failed (Fodé).
async fn world(db: &TestDb) -> World {
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    let mat = create_site(pool, "MAT").await;
    sqlx::query("UPDATE sites SET is_sensitive = true WHERE id = $1")
        .bind(kal)
        .execute(pool)
        .await
        .expect("sensitive");
    let agent = create_user(pool, "agent.un", "agent", &[kal, mat], None).await;
    let agent2 = create_user(pool, "agent.deux", "agent", &[mat], None).await;
    create_user(pool, "gest.kal", "site_manager", &[kal], None).await;
    create_user(pool, "dir", "director", &[], None).await;
    put_online(pool, agent).await;

    let now = Utc::now() - TimeDelta::seconds(30);
    let pay =
        |tenant: Uuid, charge: i64, amount: i64, at: DateTime<Utc>, reverses: Option<Uuid>| {
            pay_charge(pool, (tenant, agent), charge, amount, at, reverses)
        };
    let charge = |tenant: Uuid, due: NaiveDate, amount: i64| {
        let pool = pool.clone();
        async move { create_charge(&pool, tenant, first_of_month(due), due, amount).await }
    };

    let aminata = create_tenant(pool, kal, "Aminata Bah", 1_000, None).await;
    charge(aminata, ago(100), 1_000).await;
    let c = charge(aminata, ago(40), 1_000).await;
    pay(aminata, c, 400, noon(ago(45)), None).await;
    let c = charge(aminata, today(), 1_000).await;
    pay(aminata, c, 1_000, now, None).await;

    let binta = create_tenant(pool, kal, "Binta Camara", 2_000, None).await;
    let c = charge(binta, ago(70), 2_000).await;
    pay(binta, c, 2_000, noon(ago(72)), None).await;
    let c = charge(binta, ago(40), 2_000).await;
    let early = pay(binta, c, 2_000, noon(ago(41)), None).await;
    pay(binta, c, 2_000, noon(ago(39)), Some(early)).await;
    pay(binta, c, 2_000, noon(ago(39)) + TimeDelta::hours(1), None).await;
    charge(binta, today(), 2_000).await;

    let cherif = create_tenant(pool, kal, "Chérif Diallo", 3_000, None).await;
    let c = charge(cherif, ago(10), 3_000).await;
    let wrong = pay(cherif, c, 500, now - TimeDelta::seconds(10), None).await;
    pay(cherif, c, 500, now, Some(wrong)).await;

    let fode = create_tenant(pool, mat, "Fodé Touré", 1_500, None).await;
    charge(fode, ago(40), 1_500).await;
    let c = charge(fode, today(), 1_500).await;
    pay(fode, c, 1_500, now, None).await;

    let promise = |tenant: Uuid,
                   amount: i64,
                   status: &'static str,
                   changed: Option<DateTime<Utc>>| {
        let pool = pool.clone();
        async move {
            let id = insert_promise(&pool, tenant, agent, None, amount, today(), now).await;
            sqlx::query("UPDATE promises SET status = $2, status_changed_at = $3 WHERE id = $1")
                .bind(id)
                .bind(status)
                .bind(changed)
                .execute(&pool)
                .await
                .expect("promise status");
        }
    };
    promise(aminata, 600, "pending", None).await;
    promise(binta, 700, "kept", Some(now)).await;
    promise(cherif, 800, "broken", Some(now)).await;
    promise(cherif, 850, "broken", Some(noon(ago(60)))).await;
    promise(fode, 900, "pending", None).await;

    let mission = |agent_id: Uuid, tenant: Uuid, site: Uuid, status: &'static str| {
        let pool = pool.clone();
        async move {
            let id = insert_mission(&pool, agent_id, tenant, site).await;
            sqlx::query(
                "UPDATE missions SET status = $2,
                        failure_reason = CASE WHEN $2 = 'failed' THEN 'tenant_absent' END
                 WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .execute(&pool)
            .await
            .expect("mission status");
        }
    };
    mission(agent, aminata, kal, "done").await;
    mission(agent, binta, kal, "planned").await;
    mission(agent, cherif, kal, "cancelled").await;
    mission(agent2, fode, mat, "failed").await;

    World {
        app: spawn_app(db).await,
        kal,
        mat,
    }
}

/// Whether Chérif's charge due T-10 falls in this month (then it is due this month, unpaid).
fn cherif_in_month() -> bool {
    ago(10) >= first_of_month(today())
}

fn missions(planned: i64, done: i64, failed: i64, cancelled: i64) -> Option<MissionFigures> {
    Some(MissionFigures {
        planned_count: planned,
        in_progress_count: 0,
        done_count: done,
        failed_count: failed,
        cancelled_count: cancelled,
    })
}

#[tokio::test]
async fn summary_figures_equal_the_rows_and_follow_scope() {
    let db = TestDb::new().await;
    let World { app, kal, mat } = world(&db).await;
    let cherif_due = if cherif_in_month() { 3_000 } else { 0 };

    // The director sees both sites.
    let all = summary(&app, "dir", vec![]).await.expect("director");
    assert_eq!(all.arrears_gnf, 1_000 + 600 + 3_000 + 1_500);
    assert_eq!(all.tenants_in_arrears_count, 3);
    assert_eq!(
        aging(&all.aging),
        [
            (1, 3_000, 1, 1),
            (2, 600 + 1_500, 2, 1),
            (3, 0, 0, 0),
            (4, 1_000, 1, 1)
        ]
    );
    // Paid today: Aminata 1,000, Fodé 1,500; Chérif's 500 is reversed the same day.
    assert_eq!(all.collected_today_gnf, 2_500);
    assert_eq!(all.collected_month_gnf, 2_500);
    assert_eq!(all.due_today_gnf, 1_000 + 2_000 + 1_500);
    assert_eq!(all.due_month_gnf, 4_500 + cherif_due);
    assert_eq!(all.collection_rate, 2_500.0 / (4_500.0 + cherif_due as f64));
    assert_eq!(
        (all.promises_pending_count, all.promises_pending_gnf),
        (2, 1_500)
    );
    assert_eq!((all.promises_kept_count, all.promises_broken_count), (1, 1));
    // Due in the last 12 months before today: six charges, Binta's T-70 alone on time.
    assert_eq!(all.punctuality_rate, 1.0 / 6.0);
    assert_eq!((all.agents_active_count, all.agents_total_count), (1, 2));
    assert_eq!(all.missions_today, missions(3, 1, 1, 1));
    assert_eq!(all.critical_alerts_count, 0);
    assert!(all.compute_time.is_some());

    // The manager of KAL: KAL's figures only, whatever the request names.
    let kal_only = summary(&app, "gest.kal", vec![]).await.expect("manager");
    assert_eq!(kal_only.arrears_gnf, 4_600);
    assert_eq!(kal_only.tenants_in_arrears_count, 2);
    assert_eq!(
        aging(&kal_only.aging),
        [
            (1, 3_000, 1, 1),
            (2, 600, 1, 0),
            (3, 0, 0, 0),
            (4, 1_000, 1, 1)
        ]
    );
    assert_eq!(kal_only.collected_today_gnf, 1_000);
    assert_eq!(kal_only.due_today_gnf, 3_000);
    assert_eq!(kal_only.due_month_gnf, 3_000 + cherif_due);
    assert_eq!(
        kal_only.collection_rate,
        1_000.0 / (3_000.0 + cherif_due as f64)
    );
    assert_eq!(
        (
            kal_only.promises_pending_count,
            kal_only.promises_pending_gnf,
            kal_only.promises_kept_count,
            kal_only.promises_broken_count
        ),
        (1, 600, 1, 1)
    );
    assert_eq!(kal_only.punctuality_rate, 1.0 / 5.0);
    assert_eq!(
        (kal_only.agents_active_count, kal_only.agents_total_count),
        (1, 1)
    );
    assert_eq!(kal_only.missions_today, missions(2, 1, 0, 1));
    let named = summary(&app, "gest.kal", vec![kal.to_string(), mat.to_string()])
        .await
        .expect("manager naming both");
    assert_eq!(named.arrears_gnf, 4_600);
    assert_eq!(named.collected_today_gnf, 1_000);
    let other = summary(&app, "gest.kal", vec![mat.to_string()])
        .await
        .expect("manager naming another site");
    assert_eq!(
        (
            other.arrears_gnf,
            other.collected_today_gnf,
            other.due_month_gnf,
            other.promises_pending_count,
            other.agents_total_count
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(aging(&other.aging).len(), 4);

    // The director on MAT only.
    let m = summary(&app, "dir", vec![mat.to_string()])
        .await
        .expect("director on MAT");
    assert_eq!((m.arrears_gnf, m.tenants_in_arrears_count), (1_500, 1));
    assert_eq!((m.collected_today_gnf, m.due_today_gnf), (1_500, 1_500));
    assert_eq!(m.collection_rate, 1.0);
    assert_eq!(m.punctuality_rate, 0.0);
    assert_eq!((m.agents_active_count, m.agents_total_count), (1, 2));
    assert_eq!(m.missions_today, missions(1, 0, 1, 0));

    let bad = summary(&app, "dir", vec!["pas-un-id".into()])
        .await
        .expect_err("bad id");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&bad), ["site_ids[0]"]);
}

#[tokio::test]
async fn sites_list_their_figures_ordered_filtered_paged_and_scoped() {
    let db = TestDb::new().await;
    let World { app, kal, mat } = world(&db).await;
    let cherif_due = if cherif_in_month() { 3_000.0 } else { 0.0 };
    let kal_rate = 1_000.0 / (3_000.0 + cherif_due);

    let all = list_sites(&app, "dir", ListSitesRequest::default())
        .await
        .expect("director");
    assert_eq!(all.total_size, 2);
    assert!(all.next_page_token.is_empty());
    let figures: Vec<SiteLine> = all
        .sites
        .iter()
        .map(|s| {
            let site = s.site.as_ref().expect("site");
            (
                site.code.clone(),
                site.sensitive,
                s.arrears_gnf,
                s.tenants_count,
                s.tenants_in_arrears_count,
                s.collection_rate,
                s.punctuality_rate,
                s.charges_over_60_days_count,
                s.agents_count,
            )
        })
        .collect();
    assert_eq!(
        figures,
        [
            ("KAL".into(), true, 4_600, 3, 2, kal_rate, 0.2, 1, 1),
            ("MAT".into(), false, 1_500, 1, 1, 1.0, 0.0, 0, 2),
        ]
    );
    assert_eq!(
        all.sites[0].site.as_ref().expect("site").site_id,
        kal.to_string()
    );

    let codes = |r: &ListSitesResponse| -> Vec<String> {
        r.sites
            .iter()
            .map(|s| s.site.as_ref().expect("site").code.clone())
            .collect()
    };
    let by = |order_by: &str| ListSitesRequest {
        order_by: order_by.into(),
        ..Default::default()
    };
    let desc = list_sites(&app, "dir", by("collection_rate desc"))
        .await
        .expect("rate desc");
    assert_eq!(codes(&desc), ["MAT", "KAL"]);
    let asc = list_sites(&app, "dir", by("collection_rate"))
        .await
        .expect("rate");
    assert_eq!(codes(&asc), ["KAL", "MAT"]);
    let sensitive = list_sites(
        &app,
        "dir",
        ListSitesRequest {
            only_sensitive: true,
            ..Default::default()
        },
    )
    .await
    .expect("sensitive");
    assert_eq!(codes(&sensitive), ["KAL"]);
    let text = list_sites(
        &app,
        "dir",
        ListSitesRequest {
            query: "ma".into(),
            ..Default::default()
        },
    )
    .await
    .expect("query");
    assert_eq!(codes(&text), ["MAT"]);

    let first = list_sites(
        &app,
        "dir",
        ListSitesRequest {
            page_size: 1,
            order_by: "name".into(),
            ..Default::default()
        },
    )
    .await
    .expect("page 1");
    assert_eq!(codes(&first), ["KAL"]);
    assert_eq!(first.total_size, 2);
    let second = list_sites(
        &app,
        "dir",
        ListSitesRequest {
            page_size: 1,
            order_by: "name".into(),
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("page 2");
    assert_eq!(codes(&second), ["MAT"]);
    assert!(second.next_page_token.is_empty());

    // The manager of KAL never sees MAT.
    let manager = list_sites(&app, "gest.kal", ListSitesRequest::default())
        .await
        .expect("manager");
    assert_eq!(codes(&manager), ["KAL"]);
    assert_eq!(manager.total_size, 1);
    assert_eq!(manager.sites[0].arrears_gnf, 4_600);
    let none = list_sites(
        &app,
        "gest.kal",
        ListSitesRequest {
            query: "MAT".into(),
            ..Default::default()
        },
    )
    .await
    .expect("manager searching another site");
    assert!(none.sites.is_empty());
    let _ = mat;

    let bad = list_sites(&app, "dir", by("arrears"))
        .await
        .expect_err("bad order");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&bad), ["order_by"]);
}

/// "Agents active now" is read from the live hub when the answer is sent: a summary served
/// from the cache (x-cache HIT) counts an agent who opened a session after it was computed,
/// every other figure staying as computed; a cached site page shows that agent online.
#[tokio::test]
async fn a_cached_summary_and_site_page_show_the_agents_online_at_answer_time() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    create_user(pool, "dir", "director", &[], None).await;
    let agent = create_user(pool, "agent.un", "agent", &[kal], None).await;
    create_user(pool, "agent.deux", "agent", &[kal], None).await;
    // Last seen yesterday: the hub knows the agent, offline.
    sqlx::query(
        "INSERT INTO agent_last_positions (agent_id, max_sequence, sequence, latitude, longitude,
                                           fix_time, received_at)
         VALUES ($1, 1, 1, 9.51, -13.71, now() - interval '1 day', now() - interval '1 day')",
    )
    .bind(agent)
    .execute(pool)
    .await
    .expect("position");
    let app = spawn_app(&db).await;
    let token = app.token("dir").await;
    let read = || async {
        let response = app
            .dashboard_client()
            .await
            .get_summary(authed(GetSummaryRequest::default(), &token))
            .await
            .expect("summary");
        let cache = x_cache(&response);
        let s = response.into_inner();
        (
            (s.agents_active_count, s.agents_total_count),
            s.compute_time,
            cache,
        )
    };
    // The site page: agent.un's presence, the page's computation time, x-cache.
    let site_page = || async {
        let response = app
            .dashboard_client()
            .await
            .get_site(authed(
                GetSiteRequest {
                    site_id: kal.to_string(),
                    top_debtor_count: 0,
                },
                &token,
            ))
            .await
            .expect("site");
        let cache = x_cache(&response);
        let page = response.into_inner();
        let presence = page
            .agents
            .iter()
            .find(|a| {
                a.agent
                    .as_ref()
                    .is_some_and(|u| u.user_id == agent.to_string())
            })
            .map(|a| a.presence())
            .expect("agent.un on the page");
        (presence, page.compute_time, cache)
    };
    let (counts, computed, cache) = read().await;
    assert_eq!((counts, cache.as_str()), ((0, 2), "MISS"));
    let (counts, again, cache) = read().await;
    assert_eq!((counts, cache.as_str()), ((0, 2), "HIT"));
    assert_eq!(again, computed);
    let (presence, page_computed, cache) = site_page().await;
    assert_eq!((presence, cache.as_str()), (AgentPresence::Offline, "MISS"));

    let mut phone = Phone::open(&app, &app.token("agent.un").await)
        .await
        .expect("session");
    phone.ack().await;
    // The hub knows the session once the hello is answered (its stored position loads at
    // start-up, in the background: allow it a few seconds).
    let mut seen = None;
    for _ in 0..50 {
        let answer = read().await;
        if answer.0 == (1, 2) {
            seen = Some(answer);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (counts, cached_at, cache) = seen.expect("the agent counted as active within 5 s");
    assert_eq!((counts, cache.as_str()), ((1, 2), "HIT"));
    assert_eq!(cached_at, computed, "the same cached entry");
    let (presence, page_at, cache) = site_page().await;
    assert_eq!((presence, cache.as_str()), (AgentPresence::Online, "HIT"));
    assert_eq!(page_at, page_computed, "the same cached page");
    drop(phone);
}
