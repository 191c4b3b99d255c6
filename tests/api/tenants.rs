//! GetTenant, GetTenantArrears, GetTenantHistory and SearchTenants through a real gRPC client,
//! on small explicit fixtures and on the demo data set.

use std::collections::HashSet;

use akig::proto::v1::{
    AgingBucket, Date, GetTenantArrearsRequest, GetTenantArrearsResponse, GetTenantHistoryRequest,
    GetTenantHistoryResponse, GetTenantRequest, HistoryEntry, HistoryEntryKind, InteractionKind,
    PaymentKind, PromiseEventKind, PromiseStatus, SearchTenantsRequest, SearchTenantsResponse,
    Tenant, TimeRange, history_entry::Entry,
};
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeDelta, Timelike, Utc};
use sqlx::PgPool;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::support::{
    KALOUM, LedgerEntry, TestApp, TestDb, authed, bad_fields, create_charge, create_charges,
    create_site, create_tenant, create_user, date, insert_interaction, insert_ledger_entry,
    insert_promise, message, revoke, set_demo_passwords, spawn_app, today, ts,
};

const MONTH: i64 = 1_000_000;

fn days_ago(days: u64) -> NaiveDate {
    today() - Days::new(days)
}

fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("first of month")
}

/// Now, to the second (fixtures compare instants exactly).
fn now_s() -> DateTime<Utc> {
    Utc::now().with_nanosecond(0).expect("valid")
}

/// Two sites (KAL, MAT), an agent of each, a site manager of KAL, a director, an accountant.
struct World {
    app: TestApp,
    pool: PgPool,
    kal: Uuid,
    mat: Uuid,
    agent: Uuid,
    manager: Uuid,
    accountant: Uuid,
    agent_token: String,
    director_token: String,
    /// Dropped last: the database outlives the server.
    _db: TestDb,
}

impl World {
    async fn new() -> Self {
        Self::on(TestDb::new().await).await
    }

    /// The world on `db`, which may hold data already.
    async fn on(db: TestDb) -> Self {
        let pool = &db.pool;
        let kal = create_site(pool, "KAL").await;
        let mat = create_site(pool, "MAT").await;
        let agent = create_user(pool, "agent.kal", "agent", &[kal], None).await;
        create_user(pool, "agent.mat", "agent", &[mat], None).await;
        let manager = create_user(pool, "gest.kal", "site_manager", &[kal], None).await;
        let accountant = create_user(pool, "compta", "accountant", &[], None).await;
        create_user(pool, "dir", "director", &[], None).await;
        let app = spawn_app(&db).await;
        let agent_token = app.token("agent.kal").await;
        let director_token = app.token("dir").await;
        Self {
            app,
            pool: db.pool.clone(),
            kal,
            mat,
            agent,
            manager,
            accountant,
            agent_token,
            director_token,
            _db: db,
        }
    }

    async fn get_tenant(&self, tenant_id: &str, token: &str) -> Result<Tenant, tonic::Status> {
        let tenant_id = tenant_id.to_owned();
        let request = GetTenantRequest { tenant_id };
        let response = message(self.app.collections(token).await.get_tenant(request)).await;
        response.map(|r| r.tenant.expect("tenant"))
    }

    async fn arrears(
        &self,
        request: GetTenantArrearsRequest,
        token: &str,
    ) -> Result<GetTenantArrearsResponse, tonic::Status> {
        message(
            self.app
                .collections(token)
                .await
                .get_tenant_arrears(request),
        )
        .await
    }

    async fn history(
        &self,
        request: GetTenantHistoryRequest,
        token: &str,
    ) -> Result<GetTenantHistoryResponse, tonic::Status> {
        message(
            self.app
                .collections(token)
                .await
                .get_tenant_history(request),
        )
        .await
    }

    async fn search(
        &self,
        request: SearchTenantsRequest,
        token: &str,
    ) -> Result<SearchTenantsResponse, tonic::Status> {
        message(self.app.collections(token).await.search_tenants(request)).await
    }

    /// Names found by a search.
    async fn names(&self, request: SearchTenantsRequest, token: &str) -> Vec<String> {
        self.search(request, token)
            .await
            .expect("search")
            .results
            .into_iter()
            .map(|r| r.tenant.expect("tenant").full_name)
            .collect()
    }
}

fn query(text: &str) -> SearchTenantsRequest {
    SearchTenantsRequest {
        query: text.to_owned(),
        ..Default::default()
    }
}

async fn set_phone_unit(pool: &PgPool, tenant: Uuid, phone: Option<&str>, unit: &str) {
    sqlx::query("UPDATE tenants SET phone = $2, unit = $3, address = 'Rue KA-020' WHERE id = $1")
        .bind(tenant)
        .bind(phone)
        .bind(unit)
        .execute(pool)
        .await
        .expect("update tenant");
}

// ---------------------------------------------------------------------------------------------
// GetTenant.

#[tokio::test]
async fn get_tenant_shows_balance_last_interaction_and_pending_promise() {
    let w = World::new().await;
    let tenant = create_tenant(&w.pool, w.kal, "Fatoumata Camara", MONTH, Some(KALOUM)).await;
    set_phone_unit(
        &w.pool,
        tenant,
        Some("+224621234567"),
        "Bâtiment B, appt 12",
    )
    .await;
    // Periods are distinct months long before; only the due dates matter here.
    let period = |n: u32| NaiveDate::from_ymd_opt(2020, n, 1).expect("month");
    let old = create_charge(&w.pool, tenant, period(1), days_ago(45), MONTH).await;
    create_charge(&w.pool, tenant, period(2), days_ago(15), MONTH).await;
    create_charge(&w.pool, tenant, period(3), today(), MONTH).await;
    create_charge(&w.pool, tenant, period(4), today() + Days::new(10), MONTH).await;
    let now = now_s();
    insert_ledger_entry(
        &w.pool,
        &LedgerEntry {
            tenant_id: tenant,
            agent_id: w.agent,
            amount: 400_000,
            occurred_at: now - TimeDelta::days(3),
            reverses: None,
            allocations: &[(old, 400_000)],
        },
    )
    .await;
    insert_interaction(
        &w.pool,
        "call",
        tenant,
        w.agent,
        "no_answer",
        now - TimeDelta::days(3),
        false,
    )
    .await;
    let visit = insert_interaction(
        &w.pool,
        "visit",
        tenant,
        w.agent,
        "promise_made",
        now - TimeDelta::days(1),
        true,
    )
    .await;
    // Broken 20 days ago (nothing paid by its date), broken long ago, and pending.
    insert_promise(
        &w.pool,
        tenant,
        w.agent,
        None,
        300_000,
        days_ago(20),
        now - TimeDelta::days(30),
    )
    .await;
    let ancient = insert_promise(
        &w.pool,
        tenant,
        w.agent,
        None,
        300_000,
        days_ago(400),
        now - TimeDelta::days(410),
    )
    .await;
    sqlx::query("UPDATE promises SET status = 'broken', status_changed_at = now() WHERE id = $1")
        .bind(ancient)
        .execute(&w.pool)
        .await
        .expect("break");
    let pending = insert_promise(
        &w.pool,
        tenant,
        w.agent,
        Some(visit),
        500_000,
        today() + Days::new(5),
        now - TimeDelta::days(1),
    )
    .await;

    let card = w
        .get_tenant(&tenant.to_string(), &w.agent_token)
        .await
        .expect("agent of the site reads the card");
    assert_eq!(card.full_name, "Fatoumata Camara");
    assert_eq!(card.phones, ["+224621234567"]);
    assert_eq!(card.unit_label, "Bâtiment B, appt 12");
    assert_eq!(card.site_id, w.kal.to_string());
    assert_eq!(card.site_name, "KAL");
    assert_eq!(card.address, "Rue KA-020");
    assert_eq!(
        card.home_location.map(|l| (l.latitude, l.longitude)),
        Some(KALOUM)
    );
    assert_eq!(card.monthly_rent_gnf, MONTH);
    assert!(card.active);
    // 600,000 left on the oldest, two full months due (one of them today); not the future one.
    assert_eq!(card.outstanding_gnf, 2_600_000);
    assert_eq!(card.credit_gnf, 0);
    assert_eq!(card.days_overdue, 45);
    assert_eq!(card.aging_bucket, AgingBucket::Days31To60 as i32);
    assert_eq!(card.broken_promise_count, 1);
    let last = card.last_interaction.expect("last interaction");
    assert_eq!(last.interaction_id, visit.to_string());
    assert_eq!(last.kind, InteractionKind::Visit as i32);
    assert_eq!(last.agent.expect("agent").full_name, "Test agent.kal");
    assert_eq!(last.notes_excerpt, "notes promise_made");
    let promise = card.pending_promise.expect("pending promise");
    assert_eq!(promise.promise_id, pending.to_string());
    assert_eq!(promise.status, PromiseStatus::Pending as i32);
    assert_eq!(promise.amount_gnf, 500_000);
    assert_eq!(promise.interaction_id, visit.to_string());
    assert_eq!(
        promise.tenant.expect("tenant").tenant_id,
        tenant.to_string()
    );

    // A tenant with nothing owed.
    let clean = create_tenant(&w.pool, w.kal, "Ibrahima Sow", MONTH, None).await;
    let card = w
        .get_tenant(&clean.to_string(), &w.director_token)
        .await
        .expect("director reads any card");
    assert_eq!(
        (card.outstanding_gnf, card.days_overdue, card.aging_bucket),
        (0, 0, AgingBucket::Unspecified as i32)
    );
    assert!(card.last_interaction.is_none() && card.pending_promise.is_none());
    assert!(card.phones.is_empty() && card.home_location.is_none());
}

#[tokio::test]
async fn get_tenant_checks_ids_scope_and_permission() {
    let db = TestDb::new().await;
    // The accountant loses the read permission (the grant table is data).
    revoke(&db.pool, "accountant", "collections.tenants.read").await;
    let w = World::on(db).await;
    let mat_tenant = create_tenant(&w.pool, w.mat, "Ibrahima Diallo", MONTH, None).await;

    let unknown = w
        .get_tenant(&Uuid::new_v4().to_string(), &w.agent_token)
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let other_site = w
        .get_tenant(&mat_tenant.to_string(), &w.agent_token)
        .await
        .expect_err("other site");
    assert_eq!(other_site.code(), Code::PermissionDenied);
    let bad = w
        .get_tenant("abc", &w.agent_token)
        .await
        .expect_err("bad id");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&bad), ["tenant_id"]);
    let accountant = w.app.token("compta").await;
    let denied = w
        .get_tenant(&mat_tenant.to_string(), &accountant)
        .await
        .expect_err("no permission");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // The director sees every site.
    w.get_tenant(&mat_tenant.to_string(), &w.director_token)
        .await
        .expect("director");
}

// ---------------------------------------------------------------------------------------------
// GetTenantArrears.

#[tokio::test]
async fn arrears_aging_buckets_at_exact_boundaries() {
    let w = World::new().await;
    let tenant = create_tenant(&w.pool, w.kal, "Mariama Bah", MONTH, None).await;
    // (days overdue, amount); periods are distinct months long before.
    let layout: [(u64, i64); 7] = [
        (91, 1_000),
        (90, 2_000),
        (61, 4_000),
        (60, 8_000),
        (31, 16_000),
        (30, 32_000),
        (0, 64_000),
    ];
    let base = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
    for (i, (days, amount)) in layout.iter().enumerate() {
        create_charge(
            &w.pool,
            tenant,
            base + Months::new(i as u32),
            days_ago(*days),
            *amount,
        )
        .await;
    }
    create_charge(
        &w.pool,
        tenant,
        base + Months::new(7),
        today() + Days::new(1),
        128_000,
    )
    .await;

    let report = w
        .arrears(
            GetTenantArrearsRequest {
                tenant_id: tenant.to_string(),
                ..Default::default()
            },
            &w.agent_token,
        )
        .await
        .expect("arrears");
    assert_eq!(report.as_of_date, Some(date(today())));
    assert_eq!(report.tenant.expect("tenant").full_name, "Mariama Bah");
    let listed: Vec<(i32, i32, i64)> = report
        .charges
        .iter()
        .map(|c| (c.days_overdue, c.aging_bucket, c.outstanding_gnf))
        .collect();
    use AgingBucket as B;
    assert_eq!(
        listed,
        [
            (91, B::DaysOver90 as i32, 1_000),
            (90, B::Days61To90 as i32, 2_000),
            (61, B::Days61To90 as i32, 4_000),
            (60, B::Days31To60 as i32, 8_000),
            (31, B::Days31To60 as i32, 16_000),
            (30, B::Days0To30 as i32, 32_000),
            (0, B::Unspecified as i32, 64_000),
        ]
    );
    assert_eq!(report.total_due_gnf, 127_000);
    assert_eq!(report.total_paid_gnf, 0);
    assert_eq!(report.outstanding_gnf, 127_000);
    assert_eq!(report.days_overdue, 91);
    let aging: Vec<(i32, i64, i64, i64)> = report
        .aging
        .iter()
        .map(|a| (a.bucket, a.outstanding_gnf, a.charge_count, a.tenant_count))
        .collect();
    assert_eq!(
        aging,
        [
            (B::Days0To30 as i32, 32_000, 1, 0),
            (B::Days31To60 as i32, 24_000, 2, 0),
            (B::Days61To90 as i32, 6_000, 2, 0),
            (B::DaysOver90 as i32, 1_000, 1, 1),
        ]
    );

    // One day earlier every charge is a day younger and today's is not due yet.
    let yesterday = w
        .arrears(
            GetTenantArrearsRequest {
                tenant_id: tenant.to_string(),
                as_of_date: Some(date(days_ago(1))),
                include_paid: false,
            },
            &w.director_token,
        )
        .await
        .expect("arrears yesterday");
    let aging: Vec<(i64, i64)> = yesterday
        .aging
        .iter()
        .map(|a| (a.outstanding_gnf, a.charge_count))
        .collect();
    // 90, 89 | 60, 59 | 30, 29 days.
    assert_eq!(
        aging,
        [
            (32_000 + 16_000, 2),
            (8_000 + 4_000, 2),
            (2_000 + 1_000, 2),
            (0, 0)
        ]
    );
    assert_eq!((yesterday.charges.len(), yesterday.days_overdue), (6, 90));
    assert_eq!(yesterday.outstanding_gnf, 63_000);
}

#[tokio::test]
async fn arrears_of_a_past_day_count_payments_made_by_then() {
    let w = World::new().await;
    let tenant = create_tenant(&w.pool, w.kal, "Aïssatou Keïta", MONTH, None).await;
    sqlx::query("UPDATE tenants SET credit_gnf = 250000 WHERE id = $1")
        .bind(tenant)
        .execute(&w.pool)
        .await
        .expect("credit");
    // 14 months: m[0] thirteen months ago .. m[13] this month, each due on the 5th.
    let first = first_of_month(today()) - Months::new(13);
    let m = create_charges(&w.pool, tenant, first, 14, MONTH).await;
    let now = now_s();
    let pay = |occurred_at: DateTime<Utc>,
               reverses: Option<Uuid>,
               allocations: &'static [(usize, i64)]| {
        let allocations: Vec<(i64, i64)> = allocations.iter().map(|&(i, a)| (m[i], a)).collect();
        let pool = w.pool.clone();
        let agent = w.agent;
        async move {
            insert_ledger_entry(
                &pool,
                &LedgerEntry {
                    tenant_id: tenant,
                    agent_id: agent,
                    amount: allocations.iter().map(|a| a.1.abs()).sum(),
                    occurred_at,
                    reverses,
                    allocations: &allocations,
                },
            )
            .await
        }
    };
    let first_due = first.with_day(5).expect("5th");
    pay(
        first_due.and_hms_opt(12, 0, 0).expect("t").and_utc() + TimeDelta::days(2),
        None,
        &[(0, MONTH), (1, MONTH)],
    )
    .await;
    let p2 = pay(now - TimeDelta::days(10), None, &[(2, MONTH), (3, 300_000)]).await;
    pay(
        now - TimeDelta::days(2),
        Some(p2),
        &[(2, -MONTH), (3, -300_000)],
    )
    .await;
    pay(now - TimeDelta::days(1), None, &[(2, MONTH)]).await;

    let arrears = |as_of: NaiveDate, include_paid: bool| {
        let request = GetTenantArrearsRequest {
            tenant_id: tenant.to_string(),
            as_of_date: Some(date(as_of)),
            include_paid,
        };
        let w = &w;
        async move { w.arrears(request, &w.agent_token).await.expect("arrears") }
    };
    let id = |i: usize| m[i].to_string();
    let due_by = |as_of: NaiveDate| {
        (0..14)
            .filter(|&i| (first + Months::new(i as u32)).with_day(5).expect("5th") <= as_of)
            .count() as i64
    };

    // Today: m0..m2 paid, m3.. open.
    let now_unpaid = arrears(today(), false).await;
    assert_eq!(now_unpaid.charges[0].charge_id, id(3));
    assert_eq!(now_unpaid.outstanding_gnf, (due_by(today()) - 3) * MONTH);
    assert_eq!(now_unpaid.credit_gnf, 250_000);
    let now_all = arrears(today(), true).await;
    // Paid months of the last 12 months only: m2, not m0 or m1.
    assert_eq!(now_all.charges[0].charge_id, id(2));
    assert_eq!(now_all.charges[0].paid_gnf, MONTH);
    assert_eq!(
        now_all.charges[0].paid_date,
        Some(date((now - TimeDelta::days(1)).date_naive()))
    );
    assert_eq!(
        now_all.charges[0].aging_bucket,
        AgingBucket::Unspecified as i32
    );
    assert_eq!(now_all.charges.len(), now_unpaid.charges.len() + 1);
    assert_eq!(now_all.outstanding_gnf, now_unpaid.outstanding_gnf);
    assert_eq!(now_all.total_paid_gnf, MONTH);
    assert_eq!(now_all.total_due_gnf, now_all.charges.len() as i64 * MONTH);

    // Five days ago: the reversed payment still counted, the last one not yet made.
    let as_of = (now - TimeDelta::days(5)).date_naive();
    let past = arrears(as_of, true).await;
    let m2 = past
        .charges
        .iter()
        .find(|c| c.charge_id == id(2))
        .expect("m2");
    assert_eq!((m2.paid_gnf, m2.outstanding_gnf), (MONTH, 0));
    assert_eq!(
        m2.paid_date,
        Some(date((now - TimeDelta::days(10)).date_naive()))
    );
    let m3 = past
        .charges
        .iter()
        .find(|c| c.charge_id == id(3))
        .expect("m3");
    assert_eq!((m3.paid_gnf, m3.outstanding_gnf), (300_000, 700_000));
    assert!(m3.paid_date.is_none());
    // m4.. in full, and what is left of m3.
    assert_eq!(past.outstanding_gnf, (due_by(as_of) - 4) * MONTH + 700_000);
    assert_eq!(past.as_of_date, Some(date(as_of)));

    // Twenty days ago: nothing of m2 and m3 paid yet.
    let as_of = (now - TimeDelta::days(20)).date_naive();
    let older = arrears(as_of, false).await;
    assert_eq!(older.charges[0].charge_id, id(2));
    assert_eq!(older.charges[0].paid_gnf, 0);
    assert_eq!(older.outstanding_gnf, (due_by(as_of) - 2) * MONTH);

    // Bad date, unknown tenant, other site.
    let bad = w
        .arrears(
            GetTenantArrearsRequest {
                tenant_id: tenant.to_string(),
                as_of_date: Some(Date {
                    year: 2026,
                    month: 13,
                    day: 1,
                }),
                include_paid: false,
            },
            &w.agent_token,
        )
        .await
        .expect_err("bad date");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&bad), ["as_of_date.month"]);
    let unknown = w
        .arrears(
            GetTenantArrearsRequest {
                tenant_id: Uuid::new_v4().to_string(),
                ..Default::default()
            },
            &w.agent_token,
        )
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let mat_tenant = create_tenant(&w.pool, w.mat, "Sékou Touré", MONTH, None).await;
    let other = w
        .arrears(
            GetTenantArrearsRequest {
                tenant_id: mat_tenant.to_string(),
                ..Default::default()
            },
            &w.agent_token,
        )
        .await
        .expect_err("other site");
    assert_eq!(other.code(), Code::PermissionDenied);
}

// ---------------------------------------------------------------------------------------------
// GetTenantHistory.

/// A short label of an entry, for order checks.
fn label(entry: &HistoryEntry) -> String {
    match entry.entry.as_ref().expect("entry") {
        Entry::Charge(c) => format!("charge:{}", c.charge_id),
        Entry::Payment(p) => format!("payment:{}", p.payment_id),
        Entry::Reversal(p) => format!("reversal:{}", p.payment_id),
        Entry::Call(i) => format!("call:{}", i.interaction_id),
        Entry::Visit(i) => format!("visit:{}", i.interaction_id),
        Entry::PromiseEvent(e) => format!(
            "promise:{}:{}",
            e.kind,
            e.promise.as_ref().expect("promise").promise_id
        ),
    }
}

fn actor(entry: &HistoryEntry) -> Option<String> {
    entry.actor.as_ref().map(|a| a.full_name.clone())
}

struct HistoryFixture {
    tenant: Uuid,
    charges: [i64; 2],
    call1: Uuid,
    call2: Uuid,
    visit: Uuid,
    promise: Uuid,
    payments: [Uuid; 2],
    reversal: Uuid,
    base: DateTime<Utc>,
    first_date: NaiveDate,
    new_date: NaiveDate,
}

async fn history_fixture(w: &World) -> HistoryFixture {
    let pool = &w.pool;
    let tenant = create_tenant(pool, w.kal, "Kadiatou Sylla", MONTH, Some(KALOUM)).await;
    let period = |n: u32| NaiveDate::from_ymd_opt(2020, n, 1).expect("month");
    let c1 = create_charge(pool, tenant, period(1), days_ago(40), MONTH).await;
    let c2 = create_charge(pool, tenant, period(2), days_ago(10), MONTH).await;
    let base = now_s() - TimeDelta::days(2);
    let hour = TimeDelta::hours(1);
    let call1 = insert_interaction(pool, "call", tenant, w.agent, "no_answer", base, false).await;
    // Three entries at the very same instants (occurred and received): a tie.
    let call2 = insert_interaction(
        pool,
        "call",
        tenant,
        w.agent,
        "promise_made",
        base + hour,
        false,
    )
    .await;
    let visit =
        insert_interaction(pool, "visit", tenant, w.agent, "absent", base + hour, true).await;
    let first_date = today() + Days::new(3);
    let new_date = today() + Days::new(9);
    let promise = insert_promise(
        pool,
        tenant,
        w.agent,
        Some(call2),
        400_000,
        first_date,
        base + hour,
    )
    .await;
    sqlx::query(
        "UPDATE promises SET original_promised_date = promised_date, promised_date = $2,
                rescheduled_from = promised_date, reschedule_reason = 'salaire en retard',
                reschedule_count = 1
         WHERE id = $1",
    )
    .bind(promise)
    .bind(new_date)
    .execute(pool)
    .await
    .expect("reschedule");
    sqlx::query(
        "INSERT INTO promise_events (promise_id, kind, occurred_at, received_at, actor_id,
                                     previous_promised_date, reason)
         VALUES ($1, 'rescheduled', $2, $2 + interval '1 minute', $3, $4, 'salaire en retard')",
    )
    .bind(promise)
    .bind(base + hour * 2)
    .bind(w.manager)
    .bind(first_date)
    .execute(pool)
    .await
    .expect("event");
    // Two payments at the same instants too.
    let mut payments = Vec::new();
    for (charge, amount) in [(c1, 500_000), (c1, 200_000)] {
        payments.push(
            insert_ledger_entry(
                pool,
                &LedgerEntry {
                    tenant_id: tenant,
                    agent_id: w.agent,
                    amount,
                    occurred_at: base + hour * 3,
                    reverses: None,
                    allocations: &[(charge, amount)],
                },
            )
            .await,
        );
    }
    let reversal = insert_ledger_entry(
        pool,
        &LedgerEntry {
            tenant_id: tenant,
            agent_id: w.accountant,
            amount: 500_000,
            occurred_at: base + hour * 4,
            reverses: Some(payments[0]),
            allocations: &[(c1, -500_000)],
        },
    )
    .await;
    payments.sort_by_key(|id| id.to_string());
    HistoryFixture {
        tenant,
        charges: [c1, c2],
        call1,
        call2,
        visit,
        promise,
        payments: [payments[0], payments[1]],
        reversal,
        base,
        first_date,
        new_date,
    }
}

async fn all_pages(w: &World, request: GetTenantHistoryRequest, token: &str) -> Vec<HistoryEntry> {
    let mut entries = Vec::new();
    let mut request = request;
    for _ in 0..100 {
        let page = w
            .history(request.clone(), token)
            .await
            .expect("history page");
        assert!(page.entries.len() <= request.page_size.max(1) as usize || request.page_size == 0);
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        request.page_token = page.next_page_token;
    }
    panic!("too many pages");
}

#[tokio::test]
async fn history_is_one_ordered_timeline_with_who_did_what() {
    let w = World::new().await;
    let f = history_fixture(&w).await;
    let request = GetTenantHistoryRequest {
        tenant_id: f.tenant.to_string(),
        oldest_first: true,
        ..Default::default()
    };
    let oldest = w
        .history(request.clone(), &w.agent_token)
        .await
        .expect("history");
    assert!(oldest.next_page_token.is_empty());
    let labels: Vec<String> = oldest.entries.iter().map(label).collect();
    let made = PromiseEventKind::Made as i32;
    let rescheduled = PromiseEventKind::Rescheduled as i32;
    let expected = [
        format!("charge:{}", f.charges[0]),
        format!("charge:{}", f.charges[1]),
        format!("call:{}", f.call1),
        // The tie (same occurred_at and received_at): by kind, call < promise < visit.
        format!("call:{}", f.call2),
        format!("promise:{made}:{}", f.promise),
        format!("visit:{}", f.visit),
        format!("promise:{rescheduled}:{}", f.promise),
        format!("payment:{}", f.payments[0]),
        format!("payment:{}", f.payments[1]),
        format!("reversal:{}", f.reversal),
    ];
    assert_eq!(labels, expected);

    // Who did what.
    let actors: Vec<Option<String>> = oldest.entries.iter().map(actor).collect();
    let agent = Some("Test agent.kal".to_owned());
    assert_eq!(
        actors,
        [
            None,
            None,
            agent.clone(),
            agent.clone(),
            agent.clone(),
            agent.clone(),
            Some("Test gest.kal".to_owned()),
            agent.clone(),
            agent.clone(),
            Some("Test compta".to_owned()),
        ]
    );
    // Charges fall due at 00:00 of their due date.
    let charge_at = oldest.entries[0].occurred_at.expect("at");
    assert_eq!(
        charge_at,
        ts(days_ago(40).and_hms_opt(0, 0, 0).expect("t").and_utc())
    );
    assert_eq!(oldest.entries[2].occurred_at, Some(ts(f.base)));
    assert_eq!(
        oldest.entries[2].received_at,
        Some(ts(f.base + TimeDelta::minutes(1)))
    );

    // Details of each kind.
    let Some(Entry::Call(call2)) = &oldest.entries[3].entry else {
        panic!("call")
    };
    assert_eq!(call2.promise_id, f.promise.to_string());
    assert_eq!(
        call2.tenant.as_ref().expect("tenant").full_name,
        "Kadiatou Sylla"
    );
    let Some(Entry::PromiseEvent(made_event)) = &oldest.entries[4].entry else {
        panic!("promise made")
    };
    let made_promise = made_event.promise.as_ref().expect("promise");
    assert_eq!(made_promise.promised_date, Some(date(f.first_date)));
    assert_eq!(made_promise.reschedule_count, 0);
    assert_eq!(made_promise.status, PromiseStatus::Pending as i32);
    let Some(Entry::Visit(visit)) = &oldest.entries[5].entry else {
        panic!("visit")
    };
    let details = match &visit.details {
        Some(akig::proto::v1::interaction::Details::Visit(v)) => v,
        other => panic!("visit details: {other:?}"),
    };
    assert!(details.far_away);
    assert_eq!(details.distance_to_home_m, Some(850.0));
    let Some(Entry::PromiseEvent(event)) = &oldest.entries[6].entry else {
        panic!("promise event")
    };
    assert_eq!(event.previous_promised_date, Some(date(f.first_date)));
    assert_eq!(event.reason, "salaire en retard");
    let after = event.promise.as_ref().expect("promise");
    assert_eq!(
        (after.promised_date, after.reschedule_count),
        (Some(date(f.new_date)), 1)
    );
    let reversed_payment = oldest
        .entries
        .iter()
        .find_map(|e| match &e.entry {
            Some(Entry::Payment(p)) if p.amount_gnf == 500_000 => Some(p),
            _ => None,
        })
        .expect("reversed payment");
    assert!(reversed_payment.reversed);
    assert_eq!(reversed_payment.reversal_payment_id, f.reversal.to_string());
    assert_eq!(
        reversed_payment.allocations[0].charge_outstanding_after_gnf,
        500_000
    );
    let Some(Entry::Reversal(reversal)) = &oldest.entries[9].entry else {
        panic!("reversal")
    };
    assert_eq!(reversal.kind, PaymentKind::Reversal as i32);
    assert_eq!(reversal.amount_gnf, -500_000);
    assert_eq!(reversal.allocations[0].amount_gnf, -500_000);
    assert_eq!(reversal.reversal_reason, "erreur de saisie");

    // Newest first is the exact reverse.
    let newest = w
        .history(
            GetTenantHistoryRequest {
                oldest_first: false,
                ..request.clone()
            },
            &w.agent_token,
        )
        .await
        .expect("newest first");
    let mut reversed: Vec<String> = newest.entries.iter().map(label).collect();
    reversed.reverse();
    assert_eq!(reversed, expected);

    // Pages of 1, 2 and 3 entries, both ways, cut through the ties without loss or repeat.
    for page_size in [1, 2, 3] {
        for oldest_first in [true, false] {
            let paged = all_pages(
                &w,
                GetTenantHistoryRequest {
                    page_size,
                    oldest_first,
                    ..request.clone()
                },
                &w.agent_token,
            )
            .await;
            let mut labels: Vec<String> = paged.iter().map(label).collect();
            if !oldest_first {
                labels.reverse();
            }
            assert_eq!(
                labels, expected,
                "page size {page_size}, oldest first {oldest_first}"
            );
        }
    }
}

#[tokio::test]
async fn history_filters_kinds_and_time_and_checks_its_input() {
    let w = World::new().await;
    let f = history_fixture(&w).await;
    let base = GetTenantHistoryRequest {
        tenant_id: f.tenant.to_string(),
        oldest_first: true,
        ..Default::default()
    };
    let calls_and_promises = w
        .history(
            GetTenantHistoryRequest {
                kinds: vec![
                    HistoryEntryKind::Call as i32,
                    HistoryEntryKind::Promise as i32,
                ],
                ..base.clone()
            },
            &w.agent_token,
        )
        .await
        .expect("filtered");
    let labels: Vec<String> = calls_and_promises.entries.iter().map(label).collect();
    assert_eq!(
        labels,
        [
            format!("call:{}", f.call1),
            format!("call:{}", f.call2),
            format!("promise:{}:{}", PromiseEventKind::Made as i32, f.promise),
            format!(
                "promise:{}:{}",
                PromiseEventKind::Rescheduled as i32,
                f.promise
            ),
        ]
    );
    let money = w
        .history(
            GetTenantHistoryRequest {
                kinds: vec![
                    HistoryEntryKind::Reversal as i32,
                    HistoryEntryKind::Charge as i32,
                ],
                ..base.clone()
            },
            &w.agent_token,
        )
        .await
        .expect("filtered");
    assert_eq!(money.entries.len(), 3);

    // [base, base + 3h): the calls, the promise, the visit and the reschedule.
    let window = w
        .history(
            GetTenantHistoryRequest {
                time_range: Some(TimeRange {
                    start_time: Some(ts(f.base)),
                    end_time: Some(ts(f.base + TimeDelta::hours(3))),
                }),
                ..base.clone()
            },
            &w.agent_token,
        )
        .await
        .expect("window");
    assert_eq!(window.entries.len(), 5);
    assert_eq!(label(&window.entries[0]), format!("call:{}", f.call1));

    // A token is tied to its filters.
    let first = w
        .history(
            GetTenantHistoryRequest {
                page_size: 2,
                ..base.clone()
            },
            &w.agent_token,
        )
        .await
        .expect("first page");
    assert!(!first.next_page_token.is_empty());
    let misused = w
        .history(
            GetTenantHistoryRequest {
                page_size: 2,
                page_token: first.next_page_token.clone(),
                kinds: vec![HistoryEntryKind::Call as i32],
                ..base.clone()
            },
            &w.agent_token,
        )
        .await
        .expect_err("token of other filters");
    assert_eq!(misused.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&misused), ["page_token"]);
    assert_eq!(
        misused.get_details_error_info().expect("reason").reason,
        "ERROR_REASON_PAGE_TOKEN_INVALID"
    );

    let bad = w
        .history(
            GetTenantHistoryRequest {
                kinds: vec![99],
                page_size: -1,
                time_range: Some(TimeRange {
                    start_time: Some(ts(f.base)),
                    end_time: Some(ts(f.base)),
                }),
                ..base.clone()
            },
            &w.agent_token,
        )
        .await
        .expect_err("bad input");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&bad),
        ["page_size", "time_range.end_time", "kinds[0]"]
    );
    let unknown = w
        .history(
            GetTenantHistoryRequest {
                tenant_id: Uuid::new_v4().to_string(),
                ..Default::default()
            },
            &w.agent_token,
        )
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let mat_token = w.app.token("agent.mat").await;
    let other = w
        .history(base.clone(), &mat_token)
        .await
        .expect_err("other site");
    assert_eq!(other.code(), Code::PermissionDenied);
}

// ---------------------------------------------------------------------------------------------
// SearchTenants.

struct SearchFixture {
    keita: Uuid,
    mamadou: Uuid,
    camara: Uuid,
    ibrahima_mat: Uuid,
    moussa_gone: Uuid,
}

async fn search_fixture(w: &World) -> SearchFixture {
    let pool = &w.pool;
    let keita = create_tenant(pool, w.kal, "Aïssatou Keïta", MONTH, None).await;
    let mamadou = create_tenant(pool, w.kal, "Mamadou Diallo", MONTH, None).await;
    set_phone_unit(pool, mamadou, Some("+224621234567"), "A-3").await;
    let camara = create_tenant(pool, w.kal, "Fatoumata Camara", MONTH, None).await;
    set_phone_unit(pool, camara, Some("+224655000111"), "Bâtiment B, appt 12").await;
    create_tenant(pool, w.kal, "Ousmane Bangoura", MONTH, None).await;
    let ibrahima_mat = create_tenant(pool, w.mat, "Ibrahima Diallo", MONTH, None).await;
    let moussa_gone = create_tenant(pool, w.kal, "Moussa Diallo", MONTH, None).await;
    sqlx::query("UPDATE tenants SET active = false, moved_out_on = current_date WHERE id = $1")
        .bind(moussa_gone)
        .execute(pool)
        .await
        .expect("move out");
    // Mamadou owes a month.
    create_charge(
        pool,
        mamadou,
        first_of_month(days_ago(20)),
        days_ago(20),
        MONTH,
    )
    .await;
    SearchFixture {
        keita,
        mamadou,
        camara,
        ibrahima_mat,
        moussa_gone,
    }
}

#[tokio::test]
async fn search_ignores_accents_and_typos_and_finds_phones_and_units() {
    let w = World::new().await;
    let f = search_fixture(&w).await;
    let director = &w.director_token;
    let first_id = |response: SearchTenantsResponse| {
        response
            .results
            .first()
            .map(|r| r.tenant.as_ref().expect("tenant").tenant_id.clone())
    };

    for text in ["Keita", "keïta", "KEITA", "aissatou"] {
        let hit = w.search(query(text), director).await.expect("search");
        assert_eq!(hit.results.len(), 1, "{text}");
        assert_eq!(first_id(hit), Some(f.keita.to_string()), "{text}");
    }
    // A typo still finds the Diallos (and only people named close to it).
    let names: HashSet<String> = w
        .names(query("Dialo"), director)
        .await
        .into_iter()
        .collect();
    assert!(
        names.contains("Mamadou Diallo") && names.contains("Ibrahima Diallo"),
        "{names:?}"
    );
    assert!(!names.contains("Ousmane Bangoura") && !names.contains("Moussa Diallo"));
    let hit = w
        .search(query("Fatoumata Kamara"), director)
        .await
        .expect("search");
    assert_eq!(first_id(hit), Some(f.camara.to_string()));
    // A prefix of a word.
    assert_eq!(
        w.names(query("Bangou"), director).await,
        ["Ousmane Bangoura"]
    );
    // Phone digits, with or without the country code (`+` or the international prefix `00`)
    // and spaces.
    for text in [
        "621 23 45",
        "+224 621234567",
        "62123",
        "00224 621 23 45 67",
        "00224621234567",
        "224 621 23",
    ] {
        let hit = w.search(query(text), director).await.expect("search");
        assert_eq!(first_id(hit), Some(f.mamadou.to_string()), "{text}");
    }
    // The unit, accents or not, and the site with a name.
    for text in ["batiment b", "Bâtiment", "appt 12"] {
        let hit = w.search(query(text), director).await.expect("search");
        assert_eq!(first_id(hit), Some(f.camara.to_string()), "{text}");
    }
    let names: HashSet<String> = w
        .names(query("Diallo MAT"), director)
        .await
        .into_iter()
        .collect();
    assert!(names.contains("Ibrahima Diallo"), "{names:?}");
    let top = w
        .search(query("Diallo MAT"), director)
        .await
        .expect("search");
    assert_eq!(first_id(top), Some(f.ibrahima_mat.to_string()));

    // Relevance is ordered; the hit is a full card.
    let hits = w
        .search(query("Diallo"), director)
        .await
        .expect("search")
        .results;
    assert!(hits.windows(2).all(|p| p[0].relevance >= p[1].relevance));
    let mamadou = hits
        .iter()
        .filter_map(|r| r.tenant.as_ref())
        .find(|t| t.tenant_id == f.mamadou.to_string())
        .expect("Mamadou");
    assert_eq!(mamadou.outstanding_gnf, MONTH);
    assert_eq!(mamadou.phones, ["+224621234567"]);

    // Filters: inactive tenants on demand, arrears only.
    let with_gone = w
        .names(
            SearchTenantsRequest {
                show_inactive: true,
                ..query("Diallo")
            },
            director,
        )
        .await;
    assert!(with_gone.contains(&"Moussa Diallo".to_owned()));
    let gone_card = w
        .search(
            SearchTenantsRequest {
                show_inactive: true,
                ..query("Moussa")
            },
            director,
        )
        .await
        .expect("search");
    assert_eq!(first_id(gone_card), Some(f.moussa_gone.to_string()));
    let in_arrears = w
        .names(
            SearchTenantsRequest {
                only_in_arrears: true,
                ..query("Diallo")
            },
            director,
        )
        .await;
    assert_eq!(in_arrears, ["Mamadou Diallo"]);
}

#[tokio::test]
async fn search_stays_in_scope_pages_and_checks_its_input() {
    let w = World::new().await;
    let f = search_fixture(&w).await;
    // An agent never sees another site's tenants, even when asking for that site.
    let names = w.names(query("Diallo"), &w.agent_token).await;
    assert_eq!(names, ["Mamadou Diallo"]);
    let elsewhere = w
        .search(
            SearchTenantsRequest {
                site_ids: vec![w.mat.to_string()],
                ..query("Diallo")
            },
            &w.agent_token,
        )
        .await
        .expect("search outside the scope answers an empty list");
    assert!(elsewhere.results.is_empty() && elsewhere.next_page_token.is_empty());
    let mat_only = w
        .search(
            SearchTenantsRequest {
                site_ids: vec![w.mat.to_string()],
                ..query("Diallo")
            },
            &w.director_token,
        )
        .await
        .expect("director, one site");
    let ids: Vec<String> = mat_only
        .results
        .iter()
        .map(|r| r.tenant.as_ref().expect("tenant").tenant_id.clone())
        .collect();
    assert_eq!(ids, [f.ibrahima_mat.to_string()]);

    // Paging one hit at a time gives the same hits as one page.
    let request = SearchTenantsRequest {
        show_inactive: true,
        ..query("Diallo")
    };
    let all: Vec<String> = w
        .search(request.clone(), &w.director_token)
        .await
        .expect("search")
        .results
        .into_iter()
        .map(|r| r.tenant.expect("tenant").tenant_id)
        .collect();
    assert_eq!(all.len(), 3);
    let mut paged = Vec::new();
    let mut page_request = SearchTenantsRequest {
        page_size: 1,
        ..request.clone()
    };
    loop {
        let page = w
            .search(page_request.clone(), &w.director_token)
            .await
            .expect("page");
        assert!(page.results.len() <= 1);
        paged.extend(
            page.results
                .into_iter()
                .map(|r| r.tenant.expect("tenant").tenant_id),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        page_request.page_token = page.next_page_token;
    }
    assert_eq!(paged, all);
    let first = w
        .search(
            SearchTenantsRequest {
                page_size: 1,
                ..request.clone()
            },
            &w.director_token,
        )
        .await
        .expect("first page");
    let misused = w
        .search(
            SearchTenantsRequest {
                page_size: 1,
                page_token: first.next_page_token,
                ..query("Camara")
            },
            &w.director_token,
        )
        .await
        .expect_err("token of another query");
    assert_eq!(bad_fields(&misused), ["page_token"]);
    assert_eq!(
        misused.get_details_error_info().expect("reason").reason,
        "ERROR_REASON_PAGE_TOKEN_INVALID"
    );

    // Bad input.
    for text in ["", "   ", &"x".repeat(201)] {
        let status = w
            .search(query(text), &w.agent_token)
            .await
            .expect_err("bad query");
        assert_eq!(status.code(), Code::InvalidArgument, "{text:?}");
        assert_eq!(bad_fields(&status), ["query"]);
    }
    assert!(
        w.names(query(&"x".repeat(200)), &w.agent_token)
            .await
            .is_empty()
    );
    let bad_site = w
        .search(
            SearchTenantsRequest {
                site_ids: vec!["nope".into()],
                ..query("Diallo")
            },
            &w.agent_token,
        )
        .await
        .expect_err("bad site id");
    assert_eq!(bad_fields(&bad_site), ["site_ids[0]"]);
    // Query characters that mean something to to_tsquery are only text.
    for text in ["Diallo & | ! ( ) : * ' \\", "'", ":*", "!!"] {
        w.search(query(text), &w.director_token)
            .await
            .unwrap_or_else(|s| panic!("{text:?}: {s:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The demo data set.

#[tokio::test]
async fn reads_on_the_demo_data_set() {
    let db = TestDb::new().await;
    let demo_day = NaiveDate::from_ymd_opt(2026, 11, 16).expect("date");
    akig::seed::seed_demo(&db.pool, demo_day)
        .await
        .expect("seed");
    set_demo_passwords(&db.pool, &["directeur", "agent"]).await;
    let app = spawn_app(&db).await;
    let director = app.token("directeur").await;
    let agent = app.token("agent").await;
    let mut client = app.collections_client().await;
    let agent_sites: Vec<Uuid> = sqlx::query_scalar(
        "SELECT us.site_id FROM user_sites us JOIN users u ON u.id = us.user_id
         WHERE u.username = 'agent'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("agent sites");
    assert!(!agent_sites.is_empty());

    // Search: the director finds Diallos everywhere, the agent only on their sites.
    let search = |token: &str| {
        authed(
            SearchTenantsRequest {
                page_size: 100,
                ..query("Diallo")
            },
            token,
        )
    };
    let everywhere = client
        .search_tenants(search(&director))
        .await
        .expect("director search")
        .into_inner()
        .results;
    assert!(!everywhere.is_empty());
    assert!(
        everywhere
            .windows(2)
            .all(|p| p[0].relevance >= p[1].relevance)
    );
    let top = everywhere[0].tenant.as_ref().expect("tenant");
    assert!(top.full_name.contains("Diallo"), "{}", top.full_name);
    let mine = client
        .search_tenants(search(&agent))
        .await
        .expect("agent search")
        .into_inner()
        .results;
    assert!(!mine.is_empty());
    for hit in &mine {
        let site: Uuid = hit
            .tenant
            .as_ref()
            .expect("tenant")
            .site_id
            .parse()
            .expect("uuid");
        assert!(agent_sites.contains(&site));
    }
    assert!(everywhere.iter().any(|hit| {
        let site: Uuid = hit
            .tenant
            .as_ref()
            .expect("tenant")
            .site_id
            .parse()
            .expect("uuid");
        !agent_sites.contains(&site)
    }));

    // The tenant owing the most: card, arrears and history agree with the tables.
    let (tenant, outstanding, site): (Uuid, i64, Uuid) = sqlx::query_as(
        "SELECT c.tenant_id, sum(c.amount_due_gnf - c.amount_paid_gnf)::bigint, t.site_id
         FROM charges c JOIN tenants t ON t.id = c.tenant_id
         WHERE c.due_date <= $1 AND c.amount_paid_gnf < c.amount_due_gnf
         GROUP BY c.tenant_id, t.site_id ORDER BY 2 DESC, 1 LIMIT 1",
    )
    .bind(today())
    .fetch_one(&db.pool)
    .await
    .expect("largest arrears");
    let card = client
        .get_tenant(authed(
            GetTenantRequest {
                tenant_id: tenant.to_string(),
            },
            &director,
        ))
        .await
        .expect("card")
        .into_inner()
        .tenant
        .expect("tenant");
    assert_eq!(card.outstanding_gnf, outstanding);
    assert_eq!(card.aging_bucket, AgingBucket::DaysOver90 as i32);
    let arrears = client
        .get_tenant_arrears(authed(
            GetTenantArrearsRequest {
                tenant_id: tenant.to_string(),
                ..Default::default()
            },
            &director,
        ))
        .await
        .expect("arrears")
        .into_inner();
    assert_eq!(arrears.outstanding_gnf, outstanding);
    let aged: i64 = arrears.aging.iter().map(|a| a.outstanding_gnf).sum();
    let not_overdue: i64 = arrears
        .charges
        .iter()
        .filter(|c| c.aging_bucket == AgingBucket::Unspecified as i32)
        .map(|c| c.outstanding_gnf)
        .sum();
    assert_eq!(aged + not_overdue, outstanding);
    assert_eq!(arrears.aging.iter().map(|a| a.tenant_count).sum::<i64>(), 1);

    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM charges WHERE tenant_id = $1)
              + (SELECT count(*) FROM payments WHERE tenant_id = $1)
              + (SELECT count(*) FROM interactions WHERE tenant_id = $1)
              + (SELECT count(*) FROM promises WHERE tenant_id = $1)
              + (SELECT count(*) FROM promise_events e JOIN promises p ON p.id = e.promise_id
                 WHERE p.tenant_id = $1)",
    )
    .bind(tenant)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    let mut entries: Vec<HistoryEntry> = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .get_tenant_history(authed(
                GetTenantHistoryRequest {
                    tenant_id: tenant.to_string(),
                    page_size: 7,
                    page_token: token.clone(),
                    ..Default::default()
                },
                &director,
            ))
            .await
            .expect("history")
            .into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(entries.len() as i64, rows);
    let instants: Vec<(i64, i32)> = entries
        .iter()
        .map(|e| {
            let at = e.occurred_at.expect("occurred_at");
            (at.seconds, at.nanos)
        })
        .collect();
    assert!(instants.windows(2).all(|p| p[0] >= p[1]), "newest first");

    // The agent may not read a tenant of another site.
    if !agent_sites.contains(&site) {
        let denied = client
            .get_tenant(authed(
                GetTenantRequest {
                    tenant_id: tenant.to_string(),
                },
                &agent,
            ))
            .await
            .expect_err("other site");
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
    let other: Uuid = sqlx::query_scalar(
        "SELECT id FROM tenants WHERE NOT (site_id = ANY($1)) ORDER BY id LIMIT 1",
    )
    .bind(&agent_sites)
    .fetch_one(&db.pool)
    .await
    .expect("tenant elsewhere");
    let denied = client
        .get_tenant_history(authed(
            GetTenantHistoryRequest {
                tenant_id: other.to_string(),
                ..Default::default()
            },
            &agent,
        ))
        .await
        .expect_err("other site");
    assert_eq!(denied.code(), Code::PermissionDenied);
}
