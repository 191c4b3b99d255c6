//! The ledger replayed (ADR 0010): reversals and back-dated payments re-allocate, as-of reads
//! follow what had happened by their day, and the stored rows are always what a replay from
//! scratch gives.

use std::collections::HashSet;

use akig::domain::Gnf;
use akig::domain::ledger::{self, LedgerCharge, LedgerPayment};
use akig::proto::v1::{
    GetTenantArrearsRequest, GetTenantArrearsResponse, GetTenantRequest, PaymentMethod,
    RecordPaymentRequest, ReversePaymentRequest, Tenant,
};
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::support::{
    KALOUM, TestApp, TestDb, count, create_charge, create_site, create_tenant, create_user, date,
    message, spawn_app, today, ts,
};

struct World {
    app: TestApp,
    pool: PgPool,
    tenant: Uuid,
    agent_token: String,
    accountant_token: String,
    _db: TestDb,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let site = create_site(&pool, "KAL").await;
        create_user(&pool, "agent.kal", "agent", &[site], None).await;
        create_user(&pool, "compta", "accountant", &[], None).await;
        let tenant = create_tenant(&pool, site, "Mariama Diallo", 2_000_000, Some(KALOUM)).await;
        let app = spawn_app(&db).await;
        let agent_token = app.token("agent.kal").await;
        let accountant_token = app.token("compta").await;
        Self {
            app,
            pool,
            tenant,
            agent_token,
            accountant_token,
            _db: db,
        }
    }

    /// A charge for the month `months_ago` months before this one, due on its 5th.
    async fn charge(&self, months_ago: u32, due: i64) -> i64 {
        let period = today()
            .with_day(1)
            .and_then(|d| d.checked_sub_months(Months::new(months_ago)))
            .expect("valid month");
        create_charge(&self.pool, self.tenant, period, period + Days::new(4), due).await
    }

    async fn pay(&self, amount: i64, occurred_at: DateTime<Utc>) -> String {
        let request = RecordPaymentRequest {
            request_id: Uuid::new_v4().to_string(),
            tenant_id: self.tenant.to_string(),
            amount_gnf: amount,
            method: PaymentMethod::Cash as i32,
            occurred_at: Some(ts(occurred_at)),
            ..Default::default()
        };
        let response = message(
            self.app
                .collections(&self.agent_token)
                .await
                .record_payment(request),
        )
        .await
        .unwrap_or_else(|status| panic!("payment refused: {status:?}"));
        response.payment.expect("payment").payment_id
    }

    async fn reverse(&self, payment_id: &str, occurred_at: DateTime<Utc>) {
        let request = ReversePaymentRequest {
            request_id: Uuid::new_v4().to_string(),
            payment_id: payment_id.to_owned(),
            reason: "Chèque sans provision".to_owned(),
            occurred_at: Some(ts(occurred_at)),
        };
        message(
            self.app
                .collections(&self.accountant_token)
                .await
                .reverse_payment(request),
        )
        .await
        .unwrap_or_else(|status| panic!("reversal refused: {status:?}"));
    }

    async fn card(&self) -> Tenant {
        let request = GetTenantRequest {
            tenant_id: self.tenant.to_string(),
        };
        message(
            self.app
                .collections(&self.accountant_token)
                .await
                .get_tenant(request),
        )
        .await
        .expect("tenant")
        .tenant
        .expect("tenant")
    }

    async fn arrears(&self, as_of: Option<NaiveDate>) -> GetTenantArrearsResponse {
        let request = GetTenantArrearsRequest {
            tenant_id: self.tenant.to_string(),
            as_of_date: as_of.map(date),
            include_paid: false,
        };
        message(
            self.app
                .collections(&self.accountant_token)
                .await
                .get_tenant_arrears(request),
        )
        .await
        .expect("arrears")
    }

    /// (outstanding, credit) as GetTenantArrears shows them on `as_of`.
    async fn standing(&self, as_of: Option<NaiveDate>) -> (i64, i64) {
        let arrears = self.arrears(as_of).await;
        (arrears.outstanding_gnf, arrears.credit_gnf)
    }

    async fn replays_audited(&self) -> i64 {
        count(
            &self.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'collections.allocation.replayed'",
        )
        .await
    }
}

/// id, period, due date, due, paid, paid in full at.
type ChargeFigures = (i64, NaiveDate, NaiveDate, i64, i64, Option<DateTime<Utc>>);
/// id, occurred at, received at, amount, reversed at.
type PaymentFacts = (
    Uuid,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    Option<DateTime<Utc>>,
);

fn ago(minutes: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::minutes(minutes)
}

/// The stored rows equal a replay from scratch of the stored facts: the rows of the valid
/// payments, every charge's paid figure, the credit; and paid = sum of all rows per charge.
pub(crate) async fn assert_stored_is_the_replay(pool: &PgPool, tenant: Uuid) {
    let charges: Vec<ChargeFigures> = sqlx::query_as(
        "SELECT id, period, due_date, amount_due_gnf, amount_paid_gnf, paid_in_full_at
             FROM charges WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .expect("charges");
    let payments: Vec<PaymentFacts> = sqlx::query_as(
        "SELECT p.id, p.occurred_at, p.received_at, p.amount_gnf, r.occurred_at
             FROM payments p LEFT JOIN payments r ON r.reverses_payment_id = p.id
             WHERE p.tenant_id = $1 AND p.kind = 'payment'",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .expect("payments");
    let facts: Vec<LedgerCharge> = charges
        .iter()
        .map(|c| LedgerCharge {
            charge_id: c.0,
            period: c.1,
            due_date: c.2,
            due: Gnf::new(c.3),
        })
        .collect();
    let paid: Vec<LedgerPayment> = payments
        .iter()
        .map(|p| LedgerPayment {
            payment_id: p.0,
            occurred_at: p.1,
            received_at: p.2,
            amount: Gnf::new(p.3),
            reversed_at: p.4,
        })
        .collect();
    let replayed = ledger::replay(&facts, &paid).expect("replay");

    let mut stored: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(
        "SELECT a.payment_id, a.charge_id, a.amount_gnf, a.outstanding_after_gnf
         FROM payment_allocations a JOIN payments p ON p.id = a.payment_id
         WHERE p.tenant_id = $1 AND p.kind = 'payment'
           AND NOT EXISTS (SELECT 1 FROM payments r WHERE r.reverses_payment_id = p.id)",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .expect("rows");
    stored.sort();
    let mut expected: Vec<(Uuid, i64, i64, i64)> = replayed
        .lines
        .iter()
        .map(|l| {
            (
                l.payment_id,
                l.charge_id,
                l.amount.francs(),
                l.outstanding_after.francs(),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(stored, expected, "rows of the valid payments");
    for outcome in &replayed.charges {
        let row = charges
            .iter()
            .find(|c| c.0 == outcome.charge.charge_id)
            .expect("charge");
        assert_eq!(row.4, outcome.paid.francs(), "paid on charge {}", row.0);
        assert_eq!(
            row.5, outcome.paid_in_full_at,
            "paid in full, charge {}",
            row.0
        );
    }
    let credit: i64 = sqlx::query_scalar("SELECT credit_gnf FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await
        .expect("credit");
    assert_eq!(credit, replayed.credit.francs());
    let broken = count(
        pool,
        "SELECT count(*) FROM charges c WHERE c.amount_paid_gnf <>
             (SELECT coalesce(sum(a.amount_gnf), 0) FROM payment_allocations a
              WHERE a.charge_id = c.id)",
    )
    .await;
    assert_eq!(broken, 0, "paid = sum of the rows of each charge");
}

#[tokio::test]
async fn a_bounced_payment_lets_the_credit_cover_the_reopened_month() {
    let w = World::new().await;
    w.charge(3, 2_000_000).await;
    w.charge(2, 1_750_000).await;
    assert_eq!(w.standing(None).await, (3_750_000, 0));

    let p1 = w.pay(3_750_000, ago(2 * 24 * 60)).await;
    w.pay(5_000_000, ago(24 * 60)).await;
    assert_eq!(w.standing(None).await, (0, 5_000_000));

    w.reverse(&p1, ago(1)).await;

    assert_eq!(w.standing(None).await, (0, 1_250_000));
    let card = w.card().await;
    assert_eq!((card.outstanding_gnf, card.credit_gnf), (0, 1_250_000));
    assert_eq!(card.days_overdue, 0);
    assert_eq!(w.replays_audited().await, 1);
    let details: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = 'collections.allocation.replayed'",
    )
    .fetch_one(&w.pool)
    .await
    .expect("audit");
    assert_eq!(details["credit_before_gnf"], 5_000_000);
    assert_eq!(details["credit_after_gnf"], 1_250_000);
    assert_stored_is_the_replay(&w.pool, w.tenant).await;
}

#[tokio::test]
async fn arrears_as_of_yesterday_ignore_todays_payment() {
    let w = World::new().await;
    w.charge(3, 2_000_000).await;
    w.charge(2, 2_350_000).await;
    w.pay(6_350_000, Utc::now()).await;

    let yesterday = today() - Days::new(1);
    let then = w.arrears(Some(yesterday)).await;
    assert_eq!((then.outstanding_gnf, then.credit_gnf), (4_350_000, 0));
    assert!(then.days_overdue > 0);
    let buckets: i64 = then.aging.iter().map(|b| b.outstanding_gnf).sum();
    assert_eq!(buckets, 4_350_000);
    assert_eq!(w.standing(None).await, (0, 2_000_000));
    assert_eq!(w.standing(Some(today())).await, (0, 2_000_000));
    assert_eq!(
        w.replays_audited().await,
        0,
        "a payment in order re-allocates nothing"
    );
}

#[tokio::test]
async fn a_late_offline_payment_takes_its_place_in_time() {
    let w = World::new().await;
    let old = w.charge(2, 1_000_000).await;
    let recent = w.charge(1, 1_000_000).await;
    let today_pay = w.pay(1_000_000, ago(10)).await;
    // Collected three days ago on a phone that was offline, uploaded now.
    let offline = w.pay(1_500_000, ago(3 * 24 * 60)).await;

    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT payment_id::text, charge_id, amount_gnf FROM payment_allocations
         ORDER BY payment_id, charge_id",
    )
    .fetch_all(&w.pool)
    .await
    .expect("rows");
    let mut expected = vec![
        (offline.clone(), old, 1_000_000),
        (offline.clone(), recent, 500_000),
        (today_pay.clone(), recent, 500_000),
    ];
    expected.sort();
    assert_eq!(rows, expected);
    assert_eq!(w.standing(None).await, (0, 500_000));
    // Two days ago the offline payment had been made, today's not.
    let two_days_ago = today() - Days::new(2);
    assert_eq!(w.standing(Some(two_days_ago)).await, (500_000, 0));
    assert_eq!(w.replays_audited().await, 1);
    assert_stored_is_the_replay(&w.pool, w.tenant).await;
}

#[tokio::test]
async fn random_payments_and_reversals_leave_the_rows_a_replay_gives() {
    let w = World::new().await;
    for months_ago in 1..=6 {
        w.charge(months_ago, 1_000_000 + i64::from(months_ago) * 125_000)
            .await;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x1ED6E2);
    let mut live: Vec<(String, DateTime<Utc>)> = Vec::new();
    for _ in 0..30 {
        if !live.is_empty() && rng.random_bool(0.3) {
            let (payment_id, occurred_at) = live.swap_remove(rng.random_range(0..live.len()));
            let at = occurred_at.max(ago(60)) + chrono::Duration::seconds(1);
            w.reverse(&payment_id, at.min(Utc::now())).await;
        } else {
            let at = ago(rng.random_range(61..20 * 24 * 60));
            let amount = rng.random_range(1..40) * 50_000;
            live.push((w.pay(amount, at).await, at));
        }
        assert_stored_is_the_replay(&w.pool, w.tenant).await;
    }
}

/// A payment for `tenant` of `amount`, occurred `minutes` ago, as a request.
fn cash(tenant: Uuid, amount: i64, minutes: i64) -> RecordPaymentRequest {
    RecordPaymentRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        amount_gnf: amount,
        method: PaymentMethod::Cash as i32,
        occurred_at: Some(ts(ago(minutes))),
        ..Default::default()
    }
}

/// Payments and reversals of one site and one agent at once: every call succeeds (no two wait
/// on each other in opposite orders: the read models first, then the agent's daily score and
/// last the site's receipt counter, in the numbering statement), receipts are gap-free and
/// unique across payments and reversals, and every tenant's rows are what a replay gives.
#[tokio::test]
async fn payments_and_reversals_at_once_keep_receipts_gap_free_and_rows_replayed() {
    let w = World::new().await;
    let site: Uuid = sqlx::query_scalar("SELECT site_id FROM tenants WHERE id = $1")
        .bind(w.tenant)
        .fetch_one(&w.pool)
        .await
        .expect("site");
    let mut tenants = vec![w.tenant];
    for i in 1..8 {
        let name = format!("Locataire {i}");
        tenants.push(create_tenant(&w.pool, site, &name, 1_000_000, Some(KALOUM)).await);
    }
    for (i, tenant) in tenants.iter().enumerate() {
        let period = today().with_day(1).expect("first of the month");
        let due = 900_000 + i64::try_from(i).expect("small") * 10_000;
        create_charge(&w.pool, *tenant, period, period + Days::new(4), due).await;
    }
    let agent = w.app.collections(&w.agent_token).await;
    let accountant = w.app.collections(&w.accountant_token).await;

    // First, one payment per tenant at once.
    let mut calls = JoinSet::new();
    for (i, tenant) in tenants.iter().enumerate() {
        let mut client = agent.clone();
        let request = cash(
            *tenant,
            400_000 + i64::try_from(i).expect("small") * 1_000,
            90,
        );
        calls.spawn(async move { message(client.record_payment(request)).await });
    }
    let mut first = Vec::new();
    while let Some(done) = calls.join_next().await {
        let payment = done.expect("task").expect("payment recorded");
        first.push(payment.payment.expect("payment").payment_id);
    }

    // Then, at once: each first payment reversed, and two more payments per tenant.
    let mut calls = JoinSet::new();
    for payment_id in first {
        let mut client = accountant.clone();
        let request = ReversePaymentRequest {
            request_id: Uuid::new_v4().to_string(),
            payment_id,
            reason: "Chèque sans provision".to_owned(),
            occurred_at: Some(ts(ago(30))),
        };
        calls.spawn(async move {
            message(client.reverse_payment(request))
                .await
                .map(|reversed| reversed.reversal.expect("entry").receipt_number)
        });
    }
    for tenant in &tenants {
        for (amount, minutes) in [(300_000, 60), (700_000, 20)] {
            let mut client = agent.clone();
            let request = cash(*tenant, amount, minutes);
            calls.spawn(async move {
                message(client.record_payment(request))
                    .await
                    .map(|paid| paid.payment.expect("payment").receipt_number)
            });
        }
    }
    let mut answered = Vec::new();
    while let Some(done) = calls.join_next().await {
        answered.push(done.expect("task").expect("payment or reversal recorded"));
    }
    assert_eq!(answered.len(), 24);

    let year = Utc::now().year();
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT receipt_number FROM payments WHERE site_id = $1 ORDER BY receipt_number",
    )
    .bind(site)
    .fetch_all(&w.pool)
    .await
    .expect("receipts");
    let expected: Vec<String> = (1..=32).map(|n| format!("KAL-{year}-{n:06}")).collect();
    assert_eq!(stored, expected);
    let unique: HashSet<&String> = answered.iter().collect();
    assert_eq!(unique.len(), 24, "no receipt answered twice");
    assert!(answered.iter().all(|r| stored.contains(r)), "{answered:?}");
    let last: i64 = sqlx::query_scalar(
        "SELECT last_number FROM receipt_counters WHERE site_id = $1 AND year = $2",
    )
    .bind(site)
    .bind(year)
    .fetch_one(&w.pool)
    .await
    .expect("counter");
    assert_eq!(last, 32);
    for tenant in tenants {
        assert_stored_is_the_replay(&w.pool, tenant).await;
    }
}
