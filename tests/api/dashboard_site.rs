//! GetSite through a real gRPC client, on a small data set dated by whole months before this
//! one, every figure computed by hand from the rows written: overview (equal to ListSites'
//! line), aging, top debtors, agents, the 12-month trend, pending promises; scope, bad input,
//! and the read cache (HIT, then MISS after a payment on the site).

use akig::proto::v1::{
    AgentPresence, GetDailyStatsRequest, GetSiteRequest, GetSiteResponse, ListSitesRequest,
    PaymentMethod, RecordPaymentRequest, ReversePaymentRequest,
};
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeDelta, Utc};
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    RedisMode, TestApp, TestDb, authed, bad_fields, create_charge, create_site, create_tenant,
    create_user, date, insert_mission, insert_promise, pay_charge, put_online, spawn_app,
    spawn_app_with, test_config, ts,
};

fn today() -> NaiveDate {
    akig::domain::conakry_day(Utc::now())
}

/// The first day of the month `k` months before this one.
fn m(k: u32) -> NaiveDate {
    today()
        .with_day(1)
        .and_then(|d| d.checked_sub_months(Months::new(k)))
        .expect("month")
}

/// Day `d` (1-based) of the month `k` months ago.
fn day(k: u32, d: u64) -> NaiveDate {
    m(k) + Days::new(d - 1)
}

fn noon(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(12, 0, 0).expect("valid time").and_utc()
}

/// The aging bucket (1..=4, default bounds 30/60/90) of a charge due on `due`.
fn bucket(due: NaiveDate) -> i32 {
    match (today() - due).num_days() {
        ..=30 => 1,
        31..=60 => 2,
        61..=90 => 3,
        _ => 4,
    }
}

/// ((year, month), due, collected, collection rate, arrears at the end, punctuality).
type TrendLine = ((i32, i32), i64, i64, f64, i64, f64);

struct World {
    app: TestApp,
    kal: Uuid,
    mat: Uuid,
    aminata: Uuid,
    djenabou: Uuid,
    fanta: Uuid,
}

/// KAL and MAT; "dir" (director), "gest.kal" (manager of KAL); agents "agent.un" (KAL and
/// MAT, online), "agent.deux" (KAL), "agent.trois" (MAT), "agent.off" (KAL, disabled).
///
/// KAL, with M(k) the month k months ago and day(k, d) its day d:
/// - Aminata: 500 due M(12) day 1, paid day(11, 4); 1,000,000 due day(3, 5), 400,000 paid
///   day(3, 3) and 600,000 day(2, 10) (late); 1,000,000 due day(1, 5), unpaid.
/// - Binta: 2,000 due day(2, 5) paid day(2, 2) (on time); 2,000 due day(1, 5) paid day(1, 3),
///   reversed day(1, 11), paid again today by agent.un.
/// - Chérif: 3,000 due today, unpaid.
/// - Djénabou: 1,000,000 due day(1, 5), unpaid.
/// - Fanta: 300,000 due day(2, 5), 100,000 paid day(1, 7).
///
/// MAT: Fodé, 1,500 due day(1, 5), unpaid. Promises pending: Aminata (KAL), Fodé (MAT); one
/// kept (Binta). Missions today: agent.un done (Aminata), agent.deux planned (Binta), agent.trois
/// failed (Fodé, MAT).
async fn world(db: &TestDb) -> World {
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    let mat = create_site(pool, "MAT").await;
    let un = create_user(pool, "agent.un", "agent", &[kal, mat], None).await;
    let deux = create_user(pool, "agent.deux", "agent", &[kal], None).await;
    let trois = create_user(pool, "agent.trois", "agent", &[mat], None).await;
    let off = create_user(pool, "agent.off", "agent", &[kal], None).await;
    sqlx::query("UPDATE users SET disabled = true WHERE id = $1")
        .bind(off)
        .execute(pool)
        .await
        .expect("disable");
    create_user(pool, "gest.kal", "site_manager", &[kal], None).await;
    create_user(pool, "dir", "director", &[], None).await;
    put_online(pool, un).await;

    let pay =
        |tenant: Uuid, charge: i64, amount: i64, at: DateTime<Utc>, reverses: Option<Uuid>| {
            pay_charge(pool, (tenant, un), charge, amount, at, reverses)
        };
    let charge = |tenant: Uuid, due: NaiveDate, amount: i64| {
        let pool = pool.clone();
        async move {
            let period = due.with_day(1).expect("first");
            create_charge(&pool, tenant, period, due, amount).await
        }
    };

    let aminata = create_tenant(pool, kal, "Aminata Bah", 1_000_000, None).await;
    let c = charge(aminata, m(12), 500).await;
    pay(aminata, c, 500, noon(day(11, 4)), None).await;
    let c = charge(aminata, day(3, 5), 1_000_000).await;
    pay(aminata, c, 400_000, noon(day(3, 3)), None).await;
    pay(aminata, c, 600_000, noon(day(2, 10)), None).await;
    charge(aminata, day(1, 5), 1_000_000).await;

    let binta = create_tenant(pool, kal, "Binta Camara", 2_000, None).await;
    let c = charge(binta, day(2, 5), 2_000).await;
    pay(binta, c, 2_000, noon(day(2, 2)), None).await;
    let c = charge(binta, day(1, 5), 2_000).await;
    let bounced = pay(binta, c, 2_000, noon(day(1, 3)), None).await;
    pay(binta, c, 2_000, noon(day(1, 11)), Some(bounced)).await;
    pay(binta, c, 2_000, Utc::now() - TimeDelta::seconds(30), None).await;

    let cherif = create_tenant(pool, kal, "Chérif Diallo", 3_000, None).await;
    charge(cherif, today(), 3_000).await;

    let djenabou = create_tenant(pool, kal, "Djénabou Sow", 1_000_000, None).await;
    charge(djenabou, day(1, 5), 1_000_000).await;

    let fanta = create_tenant(pool, kal, "Fanta Kaba", 300_000, None).await;
    let c = charge(fanta, day(2, 5), 300_000).await;
    pay(fanta, c, 100_000, noon(day(1, 7)), None).await;

    let fode = create_tenant(pool, mat, "Fodé Touré", 1_500, None).await;
    charge(fode, day(1, 5), 1_500).await;

    let now = Utc::now() - TimeDelta::seconds(20);
    insert_promise(pool, aminata, un, None, 600, today(), now).await;
    insert_promise(pool, fode, un, None, 900, today(), now).await;
    let kept = insert_promise(pool, binta, un, None, 700, today(), now).await;
    sqlx::query("UPDATE promises SET status = 'kept', status_changed_at = now() WHERE id = $1")
        .bind(kept)
        .execute(pool)
        .await
        .expect("kept");

    for (agent, tenant, site, status) in [
        (un, aminata, kal, "done"),
        (deux, binta, kal, "planned"),
        (trois, fode, mat, "failed"),
    ] {
        let id = insert_mission(pool, agent, tenant, site).await;
        sqlx::query(
            "UPDATE missions SET status = $2,
                    failure_reason = CASE WHEN $2 = 'failed' THEN 'tenant_absent' END
             WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .execute(pool)
        .await
        .expect("mission status");
    }

    World {
        app: spawn_app(db).await,
        kal,
        mat,
        aminata,
        djenabou,
        fanta,
    }
}

async fn get_site(
    app: &TestApp,
    username: &str,
    site_id: &str,
    top_debtor_count: i32,
) -> Result<tonic::Response<GetSiteResponse>, tonic::Status> {
    let token = app.token(username).await;
    let mut client = app.dashboard_client().await;
    client
        .get_site(authed(
            GetSiteRequest {
                site_id: site_id.to_owned(),
                top_debtor_count,
            },
            &token,
        ))
        .await
}

fn x_cache<T>(response: &tonic::Response<T>) -> String {
    response
        .metadata()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("absent")
        .to_owned()
}

#[tokio::test]
async fn site_page_equals_the_rows() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let app = &w.app;
    let page = get_site(app, "dir", &w.kal.to_string(), 0)
        .await
        .expect("director")
        .into_inner();

    // Overview: ListSites' line for KAL, figures by hand.
    let listed = app
        .dashboard_client()
        .await
        .list_sites(authed(ListSitesRequest::default(), &app.token("dir").await))
        .await
        .expect("list")
        .into_inner();
    let line = listed
        .sites
        .iter()
        .find(|s| {
            s.site
                .as_ref()
                .is_some_and(|s| s.site_id == w.kal.to_string())
        })
        .expect("KAL listed");
    let overview = page.overview.clone().expect("overview");
    assert_eq!(&overview, line);
    let over_60 = i64::from((today() - day(2, 5)).num_days() > 60);
    assert_eq!(
        (
            overview.arrears_gnf,
            overview.tenants_count,
            overview.tenants_in_arrears_count,
            overview.collection_rate,
            overview.punctuality_rate,
            overview.charges_over_60_days_count,
            overview.agents_count,
        ),
        // Arrears: Aminata 1,000,000 + Djénabou 1,000,000 + Fanta 200,000; due this month:
        // Chérif's 3,000, unpaid; last 12 months: six charges, Binta's day(2, 5) alone on time.
        (2_200_000, 5, 3, 0.0, 1.0 / 6.0, over_60, 2)
    );

    // Aging: all four buckets, summing to the arrears.
    let mut expected = [(1, 0, 0, 0), (2, 0, 0, 0), (3, 0, 0, 0), (4, 0, 0, 0)];
    for (due, outstanding, tenants) in [
        (day(1, 5), 2_000_000, 2), // Aminata and Djénabou
        (day(2, 5), 200_000, 1),   // Fanta
    ] {
        let line = &mut expected[usize::try_from(bucket(due) - 1).expect("index")];
        line.1 += outstanding;
        line.2 += tenants; // one charge per tenant
        line.3 += tenants;
    }
    let aging: Vec<(i32, i64, i64, i64)> = page
        .aging
        .iter()
        .map(|l| (l.bucket, l.outstanding_gnf, l.charge_count, l.tenant_count))
        .collect();
    assert_eq!(aging, expected);
    assert_eq!(aging.iter().map(|l| l.1).sum::<i64>(), overview.arrears_gnf);

    // Top debtors: Aminata and Djénabou tie at 1,000,000 (by name), then Fanta.
    let debtors: Vec<(String, i64)> = page
        .top_debtors
        .iter()
        .map(|t| (t.tenant_id.clone(), t.outstanding_gnf))
        .collect();
    assert_eq!(
        debtors,
        [
            (w.aminata.to_string(), 1_000_000),
            (w.djenabou.to_string(), 1_000_000),
            (w.fanta.to_string(), 200_000),
        ]
    );
    let two = get_site(app, "dir", &w.kal.to_string(), 2)
        .await
        .expect("two debtors")
        .into_inner();
    let names: Vec<&str> = two
        .top_debtors
        .iter()
        .map(|t| t.full_name.as_str())
        .collect();
    assert_eq!(names, ["Aminata Bah", "Djénabou Sow"]);

    // Agents on KAL by name (the disabled one left out): presence, today's work there.
    let agents: Vec<(String, i32, i64, i64, i64, i64)> = page
        .agents
        .iter()
        .map(|a| {
            let today = a.today.unwrap_or_default();
            let missions = a.missions_today.unwrap_or_default();
            (
                a.agent.clone().unwrap_or_default().full_name,
                a.presence,
                today.payment_count,
                today.collected_gnf,
                missions.planned_count,
                missions.done_count,
            )
        })
        .collect();
    assert_eq!(
        agents,
        [
            (
                "Test agent.deux".to_owned(),
                AgentPresence::Offline as i32,
                0,
                0,
                1,
                0
            ),
            (
                "Test agent.un".to_owned(),
                AgentPresence::Online as i32,
                1,
                2_000,
                1,
                1
            ),
        ]
    );
    assert_eq!(page.promises_pending_count, 1);
    assert!(page.compute_time.is_some());

    // The trend: 12 months, oldest first; (due, collected, rate, arrears at the end,
    // punctuality) computed by hand from the rows above.
    let trend: Vec<TrendLine> = page
        .trend
        .iter()
        .map(|p| {
            let month = p.month.unwrap_or_default();
            (
                (month.year, month.month),
                p.due_gnf,
                p.collected_gnf,
                p.collection_rate,
                p.arrears_end_gnf,
                p.punctuality_rate,
            )
        })
        .collect();
    let ym = |k: u32| (m(k).year(), i32::try_from(m(k).month()).expect("month"));
    let mut expected = Vec::new();
    for k in (0..12).rev() {
        expected.push(match k {
            11 => (ym(k), 0, 500, 0.0, 0, 0.0),
            3 => (ym(k), 1_000_000, 400_000, 1.0, 600_000, 0.0),
            2 => (ym(k), 302_000, 602_000, 102_000.0 / 302_000.0, 300_000, 0.5),
            1 => (
                ym(k),
                2_002_000,
                100_000,
                2_000.0 / 2_002_000.0,
                2_202_000,
                0.0,
            ),
            0 => (ym(k), 3_000, 2_000, 0.0, 2_200_000, 0.0),
            _ => (ym(k), 0, 0, 0.0, 0, 0.0),
        });
    }
    assert_eq!(trend, expected);
    assert_eq!(trend[11].4, overview.arrears_gnf, "now = the arrears");
}

#[tokio::test]
async fn site_scope_bad_input_and_cache() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let app = &w.app;

    // The manager of KAL sees KAL, not MAT.
    let own = get_site(app, "gest.kal", &w.kal.to_string(), 0)
        .await
        .expect("own site")
        .into_inner();
    assert_eq!(own.overview.expect("overview").arrears_gnf, 2_200_000);
    let other = get_site(app, "gest.kal", &w.mat.to_string(), 0)
        .await
        .expect_err("another site");
    assert_eq!(other.code(), Code::PermissionDenied);
    let unknown = get_site(app, "dir", &Uuid::new_v4().to_string(), 0)
        .await
        .expect_err("unknown site");
    assert_eq!(unknown.code(), Code::NotFound);
    let mat = get_site(app, "dir", &w.mat.to_string(), 0)
        .await
        .expect("director on MAT")
        .into_inner();
    assert_eq!(mat.overview.expect("overview").arrears_gnf, 1_500);
    assert_eq!(mat.promises_pending_count, 1);

    let kal = w.kal.to_string();
    for (site_id, count, field) in [
        ("", 0, "site_id"),
        ("KAL", 0, "site_id"),
        (kal.as_str(), 51, "top_debtor_count"),
        (kal.as_str(), -1, "top_debtor_count"),
    ] {
        let bad = get_site(app, "dir", site_id, count)
            .await
            .expect_err("bad input");
        assert_eq!(bad.code(), Code::InvalidArgument, "{site_id} {count}");
        assert_eq!(bad_fields(&bad), [field]);
    }

    // Cached: MISS, then HIT; a payment on KAL makes the next read a MISS with the new figure.
    let first = get_site(app, "dir", &w.kal.to_string(), 5)
        .await
        .expect("first");
    assert_eq!(x_cache(&first), "MISS");
    let second = get_site(app, "dir", &w.kal.to_string(), 5)
        .await
        .expect("second");
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(first.get_ref(), second.get_ref());
    let token = app.token("agent.un").await;
    app.collections_client()
        .await
        .record_payment(authed(
            RecordPaymentRequest {
                request_id: Uuid::new_v4().to_string(),
                tenant_id: w.djenabou.to_string(),
                amount_gnf: 250_000,
                method: PaymentMethod::Cash as i32,
                occurred_at: Some(ts(Utc::now())),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("payment");
    let third = get_site(app, "dir", &w.kal.to_string(), 5)
        .await
        .expect("third");
    assert_eq!(x_cache(&third), "MISS");
    let page = third.into_inner();
    assert_eq!(page.overview.expect("overview").arrears_gnf, 1_950_000);
    assert_eq!(page.trend[11].collected_gnf, 252_000);
    assert_eq!(page.trend[11].arrears_end_gnf, 1_950_000);
}

/// A payment that cleared last month, a later one that went to credit, and the first one
/// reversed today: last month's figures stay what they were (the reversal happened today),
/// in GetSite's trend and in GetDailyStats' amount due at the start of a day of last month.
#[tokio::test]
async fn a_payment_reversed_after_its_month_leaves_that_months_figures() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    create_user(pool, "agent.un", "agent", &[kal], None).await;
    create_user(pool, "admin", "admin", &[], None).await;
    create_user(pool, "dir", "director", &[], None).await;
    let tenant = create_tenant(pool, kal, "Aminata Bah", 1_000_000, None).await;
    for k in [3, 2, 1] {
        create_charge(pool, tenant, m(k), day(k, 5), 1_000_000).await;
    }
    // Last month may be further back than the default offline window of 30 days.
    let mut config = test_config(db.connect_options(), RedisMode::Real);
    config.collections.max_offline_age = std::time::Duration::from_secs(90 * 86_400);
    let app = spawn_app_with(config, pool.clone()).await;
    let agent = app.token("agent.un").await;
    let admin = app.token("admin").await;
    let pay = |amount: i64, at: DateTime<Utc>| {
        let (app, agent) = (&app, &agent);
        async move {
            let request = RecordPaymentRequest {
                request_id: Uuid::new_v4().to_string(),
                tenant_id: tenant.to_string(),
                amount_gnf: amount,
                method: PaymentMethod::Cash as i32,
                occurred_at: Some(ts(at)),
                ..Default::default()
            };
            let recorded = app.collections(agent).await.record_payment(request).await;
            recorded
                .expect("paid")
                .into_inner()
                .payment
                .expect("payment")
        }
    };
    let cleared = pay(3_000_000, noon(day(1, 20))).await;
    pay(5_000_000, noon(day(1, 21))).await;

    // Last month's end, now (as of yesterday) and the 25th of last month: nothing owed.
    assert_eq!(reversal_figures(&app, kal).await, (0, 0, 0));

    let reversed = app
        .collections(&admin)
        .await
        .reverse_payment(ReversePaymentRequest {
            request_id: Uuid::new_v4().to_string(),
            payment_id: cleared.payment_id.clone(),
            reason: "Chèque sans provision".into(),
            occurred_at: Some(ts(Utc::now() - TimeDelta::seconds(5))),
        })
        .await;
    reversed.expect("reversed");
    // The later payment now covers the three months: still nothing owed, and last month's
    // figures unchanged (they counted the reversed payment's months twice).
    assert_eq!(reversal_figures(&app, kal).await, (0, 0, 0));
}

/// The arrears at the end of last month and now in GetSite's trend of `site`, and the amount
/// due at the start of the 25th of last month in GetDailyStats.
async fn reversal_figures(app: &TestApp, site: Uuid) -> (i64, i64, i64) {
    let page = get_site(app, "dir", &site.to_string(), 5)
        .await
        .expect("site")
        .into_inner();
    let stats = app
        .collections(&app.token("dir").await)
        .await
        .get_daily_stats(GetDailyStatsRequest {
            date: Some(date(day(1, 25))),
            ..Default::default()
        })
        .await
        .expect("stats")
        .into_inner();
    let due = stats.total.expect("total").due_gnf;
    (
        page.trend[10].arrears_end_gnf,
        page.trend[11].arrears_end_gnf,
        due,
    )
}
