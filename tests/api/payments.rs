//! RecordPayment, ReversePayment, GetPayment and ListPayments through a real gRPC client.

use std::collections::HashSet;
use std::time::Duration;

use akig::proto::v1::{
    GetPaymentRequest, GetTenantRequest, ListPaymentsRequest, Payment, PaymentKind, PaymentMethod,
    PromiseStatus, RecordPaymentRequest, RecordPaymentResponse, ReversePaymentRequest,
    ReversePaymentResponse,
};
use chrono::{Datelike, NaiveDate, Utc};
use sqlx::PgPool;
use tokio::task::JoinSet;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::support::{
    KALOUM, RedisMode, TestApp, TestDb, authed, bad_fields, count, create_charge, create_charges,
    create_site, create_tenant, create_user, error_reason, insert_mission, message, spawn_app,
    spawn_app_with, test_config, ts,
};

const MONTH: i64 = 1_000_000;

fn minutes_ago(minutes: i64) -> prost_types::Timestamp {
    ts(Utc::now() - chrono::Duration::minutes(minutes))
}

fn month(year: i32, month: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, 1).expect("valid month")
}

/// A cash payment of `amount` by the caller, made ten minutes ago.
fn cash(tenant_id: Uuid, amount: i64) -> RecordPaymentRequest {
    RecordPaymentRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant_id.to_string(),
        amount_gnf: amount,
        method: PaymentMethod::Cash as i32,
        occurred_at: Some(minutes_ago(10)),
        ..Default::default()
    }
}

fn reversal(payment_id: &str, reason: &str) -> ReversePaymentRequest {
    ReversePaymentRequest {
        request_id: Uuid::new_v4().to_string(),
        payment_id: payment_id.to_owned(),
        reason: reason.to_owned(),
        occurred_at: Some(minutes_ago(1)),
    }
}

/// One site (KAL), its agent, the admin, an accountant, and a tenant of the site.
struct World {
    app: TestApp,
    pool: PgPool,
    site: Uuid,
    agent: Uuid,
    agent_token: String,
    accountant_token: String,
    admin_token: String,
    tenant: Uuid,
    /// Dropped last: the database outlives the server.
    _db: TestDb,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let pool = &db.pool;
        let site = create_site(pool, "KAL").await;
        let agent = create_user(pool, "agent.kal", "agent", &[site], None).await;
        create_user(pool, "compta", "accountant", &[], None).await;
        create_user(pool, "admin", "admin", &[], None).await;
        let tenant = create_tenant(pool, site, "Fatoumata Camara", MONTH, Some(KALOUM)).await;
        let app = spawn_app(&db).await;
        let agent_token = app.token("agent.kal").await;
        let accountant_token = app.token("compta").await;
        let admin_token = app.token("admin").await;
        Self {
            app,
            pool: db.pool.clone(),
            site,
            agent,
            agent_token,
            accountant_token,
            admin_token,
            tenant,
            _db: db,
        }
    }

    async fn record(
        &self,
        request: RecordPaymentRequest,
        token: &str,
    ) -> Result<RecordPaymentResponse, tonic::Status> {
        message(self.app.collections(token).await.record_payment(request)).await
    }

    async fn pay(&self, request: RecordPaymentRequest) -> RecordPaymentResponse {
        self.record(request, &self.agent_token)
            .await
            .unwrap_or_else(|status| panic!("payment refused: {status:?}"))
    }

    async fn reverse(
        &self,
        request: ReversePaymentRequest,
        token: &str,
    ) -> Result<ReversePaymentResponse, tonic::Status> {
        message(self.app.collections(token).await.reverse_payment(request)).await
    }

    async fn get(&self, payment_id: &str, token: &str) -> Result<Payment, tonic::Status> {
        let payment_id = payment_id.to_owned();
        let request = GetPaymentRequest { payment_id };
        let response = message(self.app.collections(token).await.get_payment(request)).await;
        response.map(|r| r.payment.expect("payment"))
    }

    async fn count(&self, sql: &str) -> i64 {
        count(&self.pool, sql).await
    }

    async fn charges(&self, ids: &[i64]) -> Vec<(i64, bool)> {
        let mut out = Vec::new();
        for id in ids {
            let row: (i64, bool) = sqlx::query_as(
                "SELECT amount_paid_gnf, paid_in_full_at IS NOT NULL FROM charges WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .expect("charge");
            out.push(row);
        }
        out
    }

    async fn credit(&self, tenant: Uuid) -> i64 {
        sqlx::query_scalar("SELECT credit_gnf FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_one(&self.pool)
            .await
            .expect("credit")
    }
}

/// The invariants of docs/schema.md: paid = sum of allocations per charge; per tenant,
/// payments - reversals = allocations + credit; daily scores = sum of score events.
async fn assert_ledger_consistent(pool: &PgPool) {
    let checks = [
        "SELECT count(*) FROM charges c WHERE c.amount_paid_gnf <>
             (SELECT coalesce(sum(a.amount_gnf), 0) FROM payment_allocations a
              WHERE a.charge_id = c.id)",
        "SELECT count(*) FROM tenants t WHERE
             (SELECT coalesce(sum(CASE WHEN p.kind = 'payment' THEN p.amount_gnf
                                       ELSE -p.amount_gnf END), 0)
              FROM payments p WHERE p.tenant_id = t.id)
             <> (SELECT coalesce(sum(a.amount_gnf), 0) FROM payment_allocations a
                 JOIN charges c ON c.id = a.charge_id WHERE c.tenant_id = t.id) + t.credit_gnf",
        "SELECT count(*) FROM agent_daily_scores s WHERE s.score <>
             (SELECT coalesce(sum(e.points), 0) FROM score_events e
              WHERE e.agent_id = s.agent_id AND e.day = s.day)",
        "SELECT count(*) FROM score_events e
         WHERE NOT EXISTS (SELECT 1 FROM agent_daily_scores s
                           WHERE s.agent_id = e.agent_id AND s.day = e.day)",
    ];
    for sql in checks {
        let broken: i64 = sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(broken, 0, "{sql}");
    }
}

fn assert_receipt(receipt: &str, number: u32) {
    let year = Utc::now().year();
    assert_eq!(receipt, format!("KAL-{year}-{number:06}"));
    // ^[A-Z]{3,4}-<year>-\d{6}$
    let parts: Vec<&str> = receipt.split('-').collect();
    assert_eq!(parts.len(), 3, "{receipt}");
    assert!((3..=4).contains(&parts[0].len()) && parts[0].bytes().all(|b| b.is_ascii_uppercase()));
    assert_eq!(parts[1], year.to_string());
    assert!(parts[2].len() == 6 && parts[2].bytes().all(|b| b.is_ascii_digit()));
}

/// (charge id, amount, outstanding after) of each allocation line.
fn lines(payment: &Payment) -> Vec<(i64, i64, i64)> {
    payment
        .allocations
        .iter()
        .map(|a| {
            (
                a.charge_id.parse().expect("numeric charge id"),
                a.amount_gnf,
                a.charge_outstanding_after_gnf,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_payment_pays_the_oldest_months_first() {
    let w = World::new().await;
    let charges = create_charges(&w.pool, w.tenant, month(2026, 8), 3, MONTH).await;

    let response = w.pay(cash(w.tenant, 2_500_000)).await;
    let payment = response.payment.expect("payment");
    assert_receipt(&payment.receipt_number, 1);
    assert_eq!(payment.kind, PaymentKind::Payment as i32);
    assert_eq!(payment.amount_gnf, 2_500_000);
    assert_eq!(
        lines(&payment),
        [
            (charges[0], MONTH, 0),
            (charges[1], MONTH, 0),
            (charges[2], 500_000, 500_000)
        ]
    );
    let months: Vec<(i32, i32)> = payment
        .allocations
        .iter()
        .map(|a| a.month.map(|m| (m.year, m.month)).expect("month"))
        .collect();
    assert_eq!(months, [(2026, 8), (2026, 9), (2026, 10)]);
    assert_eq!(payment.credit_gnf, 0);
    assert_eq!(
        payment.agent.as_ref().expect("agent").user_id,
        w.agent.to_string()
    );
    assert!(payment.recorded_by.is_none());
    assert_eq!(response.score_points, 3);
    let balance = response.balance.expect("balance");
    assert_eq!((balance.outstanding_gnf, balance.credit_gnf), (500_000, 0));
    assert!(response.promise.is_none());

    assert_eq!(
        w.charges(&charges).await,
        [(MONTH, true), (MONTH, true), (500_000, false)]
    );
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM payment_allocations").await, 3);
    let score: (i64, i32, i64) = sqlx::query_as(
        "SELECT score::bigint, payments_count, payments_gnf FROM agent_daily_scores
         WHERE agent_id = $1",
    )
    .bind(w.agent)
    .fetch_one(&w.pool)
    .await
    .expect("daily score");
    assert_eq!(score, (3, 1, 2_500_000));
    assert_eq!(
        w.count("SELECT count(*) FROM score_events WHERE kind = 'payment' AND points = 3")
            .await,
        1
    );
    assert_eq!(
        w.count(
            "SELECT count(*) FROM audit_log WHERE action = 'collections.payments.record'
             AND outcome = 'ok' AND target_type = 'payment'"
        )
        .await,
        1
    );

    // The next payment of the site takes the next number and finishes the third month.
    let second = w
        .pay(cash(w.tenant, 500_000))
        .await
        .payment
        .expect("payment");
    assert_receipt(&second.receipt_number, 2);
    assert_eq!(lines(&second), [(charges[2], 500_000, 0)]);
    assert_eq!(
        w.get(&payment.payment_id, &w.accountant_token)
            .await
            .expect("get"),
        payment
    );
}

/// The balance a payment answers is computed from what it wrote (`domain::allocation`); a read
/// computes it in SQL (`store::tenants`). Both count only the charges already due.
#[tokio::test]
async fn the_balance_a_payment_answers_is_the_one_a_read_shows() {
    let w = World::new().await;
    let today = Utc::now().date_naive();
    for due in [
        today - chrono::Duration::days(40),
        today - chrono::Duration::days(10),
        today + chrono::Duration::days(20),
    ] {
        let period = due.with_day(1).expect("first of the month");
        create_charge(&w.pool, w.tenant, period, due, MONTH).await;
    }
    let answered = w
        .pay(cash(w.tenant, 1_500_000))
        .await
        .balance
        .expect("balance");
    assert_eq!(answered.outstanding_gnf, 500_000);
    let card = w
        .app
        .collections(&w.agent_token)
        .await
        .get_tenant(GetTenantRequest {
            tenant_id: w.tenant.to_string(),
        })
        .await
        .expect("tenant")
        .into_inner()
        .tenant
        .expect("card");
    assert_eq!(
        (card.outstanding_gnf, card.credit_gnf),
        (answered.outstanding_gnf, answered.credit_gnf)
    );
}

#[tokio::test]
async fn an_overpayment_becomes_tenant_credit() {
    let w = World::new().await;
    let charges = create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;

    let response = w.pay(cash(w.tenant, 1_300_000)).await;
    let payment = response.payment.expect("payment");
    assert_eq!(lines(&payment), [(charges[0], MONTH, 0)]);
    assert_eq!(payment.credit_gnf, 300_000);
    let balance = response.balance.expect("balance");
    assert_eq!((balance.outstanding_gnf, balance.credit_gnf), (0, 300_000));
    assert_eq!(w.credit(w.tenant).await, 300_000);
    assert_eq!(
        w.count("SELECT credit_gnf FROM payments").await,
        300_000,
        "the credit part is stored with the payment"
    );

    // With nothing open, everything is credit.
    let all_credit = w
        .pay(cash(w.tenant, 200_000))
        .await
        .payment
        .expect("payment");
    assert!(all_credit.allocations.is_empty());
    assert_eq!(all_credit.credit_gnf, 200_000);
    assert_eq!(w.credit(w.tenant).await, 500_000);
}

#[tokio::test]
async fn a_hundred_concurrent_replays_record_one_payment() {
    let w = World::new().await;
    create_charges(&w.pool, w.tenant, month(2026, 9), 2, MONTH).await;
    let request = cash(w.tenant, 1_500_000);
    let client = w.app.collections_client().await;

    let mut calls = JoinSet::new();
    for _ in 0..100 {
        let mut client = client.clone();
        let request = authed(request.clone(), &w.agent_token);
        calls.spawn(async move { client.record_payment(request).await });
    }
    let mut successes = Vec::new();
    let mut in_flight = 0;
    while let Some(outcome) = calls.join_next().await {
        match outcome.expect("task") {
            Ok(response) => successes.push(response.into_inner()),
            Err(status) if status.code() == Code::Aborted => {
                assert_eq!(error_reason(&status), "ERROR_REASON_REQUEST_IN_PROGRESS");
                in_flight += 1;
            }
            Err(status) => panic!("unexpected answer: {status:?}"),
        }
    }
    assert_eq!(successes.len() + in_flight, 100);
    assert!(!successes.is_empty());
    assert!(successes.iter().all(|s| *s == successes[0]));
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM payment_allocations").await, 2);
    assert_eq!(w.count("SELECT count(*) FROM score_events").await, 1);
    assert_eq!(
        w.count("SELECT sum(amount_paid_gnf)::bigint FROM charges")
            .await,
        1_500_000
    );

    // Once settled, a replay answers the stored response.
    let replay = w.pay(request).await;
    assert_eq!(replay, successes[0]);
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 1);
    assert_ledger_consistent(&w.pool).await;
}

#[tokio::test]
async fn concurrent_payments_at_one_site_get_gap_free_receipts() {
    let w = World::new().await;
    let mut tenants = Vec::new();
    for i in 0..20 {
        let tenant = create_tenant(&w.pool, w.site, &format!("Locataire {i}"), MONTH, None).await;
        create_charges(&w.pool, tenant, month(2026, 10), 1, MONTH).await;
        tenants.push(tenant);
    }
    let client = w.app.collections_client().await;
    let mut calls = JoinSet::new();
    for (i, tenant) in tenants.iter().enumerate() {
        let mut client = client.clone();
        let amount = 100_000 + i64::try_from(i).expect("small") * 1_000;
        let request = authed(cash(*tenant, amount), &w.agent_token);
        calls.spawn(async move { client.record_payment(request).await });
    }
    let mut receipts = HashSet::new();
    while let Some(outcome) = calls.join_next().await {
        let response = outcome
            .expect("task")
            .expect("payment recorded")
            .into_inner();
        receipts.insert(response.payment.expect("payment").receipt_number);
    }
    let year = Utc::now().year();
    let expected: HashSet<String> = (1..=20).map(|n| format!("KAL-{year}-{n:06}")).collect();
    assert_eq!(receipts, expected);
    let last: i64 =
        sqlx::query_scalar("SELECT last_number FROM receipt_counters WHERE site_id = $1")
            .bind(w.site)
            .fetch_one(&w.pool)
            .await
            .expect("counter");
    assert_eq!(last, 20);
    assert_ledger_consistent(&w.pool).await;
}

#[tokio::test]
async fn a_reversal_reopens_exactly_the_charges_it_closed() {
    let w = World::new().await;
    let charges = create_charges(&w.pool, w.tenant, month(2026, 8), 3, MONTH).await;
    let first = w
        .pay(cash(w.tenant, 400_000))
        .await
        .payment
        .expect("payment");
    let before = w.charges(&charges).await;
    assert_eq!(before, [(400_000, false), (0, false), (0, false)]);

    let paid = w
        .pay(cash(w.tenant, 2_000_000))
        .await
        .payment
        .expect("payment");
    assert_eq!(
        lines(&paid),
        [
            (charges[0], 600_000, 0),
            (charges[1], MONTH, 0),
            (charges[2], 400_000, 600_000)
        ]
    );
    assert_eq!(
        w.charges(&charges).await,
        [(MONTH, true), (MONTH, true), (400_000, false)]
    );

    // A reversal dated before the payment it reverses is refused.
    let mut too_early = reversal(&paid.payment_id, "Chèque sans provision");
    too_early.occurred_at = Some(minutes_ago(20));
    let status = w
        .reverse(too_early, &w.accountant_token)
        .await
        .expect_err("before the payment");
    assert_eq!(bad_fields(&status), ["occurred_at"]);
    let status = w
        .reverse(reversal(&paid.payment_id, "ab"), &w.accountant_token)
        .await
        .expect_err("short reason");
    assert_eq!(bad_fields(&status), ["reason"]);
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 2);

    let response = w
        .reverse(
            reversal(&paid.payment_id, "Chèque sans provision"),
            &w.accountant_token,
        )
        .await
        .expect("reversed");
    assert_eq!(w.charges(&charges).await, before);
    let entry = response.reversal.expect("reversal");
    assert_eq!(entry.kind, PaymentKind::Reversal as i32);
    assert_eq!(entry.amount_gnf, -2_000_000);
    assert_eq!(entry.reversed_payment_id, paid.payment_id);
    assert_eq!(entry.reversal_reason, "Chèque sans provision");
    assert_receipt(&entry.receipt_number, 3);
    assert_eq!(
        lines(&entry),
        [
            (charges[0], -600_000, 600_000),
            (charges[1], -MONTH, MONTH),
            (charges[2], -400_000, MONTH)
        ]
    );
    let reversed = response.payment.expect("payment");
    assert!(reversed.reversed);
    assert_eq!(reversed.reversal_payment_id, entry.payment_id);
    assert_eq!(
        lines(&reversed),
        lines(&paid),
        "the payment's own lines stay"
    );
    let balance = response.balance.expect("balance");
    assert_eq!(balance.outstanding_gnf, 2_600_000);

    // In the database the reversal carries the same positive amount; nothing was updated.
    let stored: (i64, String) =
        sqlx::query_as("SELECT amount_gnf, kind FROM payments WHERE reverses_payment_id = $1")
            .bind(Uuid::parse_str(&paid.payment_id).expect("uuid"))
            .fetch_one(&w.pool)
            .await
            .expect("reversal row");
    assert_eq!(stored, (2_000_000, "reversal".to_owned()));
    // The points of the payment go back on the reversal's day: 3 + 3 - 3.
    let score: i64 =
        sqlx::query_scalar("SELECT sum(score)::bigint FROM agent_daily_scores WHERE agent_id = $1")
            .bind(w.agent)
            .fetch_one(&w.pool)
            .await
            .expect("score");
    assert_eq!(score, 3);
    assert_eq!(
        w.count(
            "SELECT count(*) FROM score_events WHERE kind = 'payment_reversal' AND points = -3"
        )
        .await,
        1
    );
    let fetched = w.get(&paid.payment_id, &w.admin_token).await.expect("get");
    assert!(fetched.reversed);
    assert_eq!(fetched.reversal_payment_id, entry.payment_id);
    assert_eq!(
        w.get(&first.payment_id, &w.admin_token).await.expect("get"),
        first,
        "the earlier payment is untouched"
    );
    assert_eq!(
        w.count(
            "SELECT count(*) FROM audit_log WHERE action = 'collections.payments.reverse'
             AND outcome = 'ok'"
        )
        .await,
        1
    );

    // Reversing twice (a new request) is refused and writes nothing.
    let again = w
        .reverse(reversal(&paid.payment_id, "encore"), &w.accountant_token)
        .await
        .expect_err("already reversed");
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(
        error_reason(&again),
        "ERROR_REASON_PAYMENT_ALREADY_REVERSED"
    );
    // A reversal entry cannot be reversed either.
    let of_reversal = w
        .reverse(reversal(&entry.payment_id, "erreur"), &w.accountant_token)
        .await
        .expect_err("a reversal entry");
    assert_eq!(of_reversal.code(), Code::InvalidArgument);
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 3);
    assert_eq!(w.charges(&charges).await, before);
    assert_ledger_consistent(&w.pool).await;
}

#[tokio::test]
async fn a_reversal_takes_back_the_credit() {
    // The credit is derived from the ledger (ADR 0010): a reversal is never refused because the
    // credit was spent since; the replay re-allocates what is left.
    let w = World::new().await;
    let charges = create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;
    let paid = w
        .pay(cash(w.tenant, 1_500_000))
        .await
        .payment
        .expect("payment");
    assert_eq!(paid.credit_gnf, 500_000);
    assert_eq!(w.credit(w.tenant).await, 500_000);

    let response = w
        .reverse(
            reversal(&paid.payment_id, "Erreur de saisie"),
            &w.admin_token,
        )
        .await
        .expect("reversed");
    assert_eq!(response.reversal.expect("reversal").credit_gnf, -500_000);
    assert_eq!(w.credit(w.tenant).await, 0);
    assert_eq!(w.charges(&charges).await, [(0, false)]);
    assert_ledger_consistent(&w.pool).await;
}

#[tokio::test]
async fn bad_payments_get_the_right_code_and_write_nothing() {
    let w = World::new().await;
    create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;

    for (amount, field) in [
        (-5, "amount_gnf"),
        (0, "amount_gnf"),
        (1_000_000_001, "amount_gnf"),
    ] {
        let status = w
            .record(cash(w.tenant, amount), &w.agent_token)
            .await
            .expect_err("bad amount");
        assert_eq!(status.code(), Code::InvalidArgument, "{amount}");
        assert_eq!(bad_fields(&status), [field], "{amount}");
    }

    let unknown = w
        .record(cash(Uuid::new_v4(), 100_000), &w.agent_token)
        .await
        .expect_err("unknown tenant");
    assert_eq!(unknown.code(), Code::NotFound);

    let mut orange = cash(w.tenant, 100_000);
    orange.method = PaymentMethod::OrangeMoney as i32;
    let missing = w
        .record(orange, &w.agent_token)
        .await
        .expect_err("no reference");
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&missing), ["operator_reference"]);

    let mut future = cash(w.tenant, 100_000);
    future.occurred_at = Some(ts(Utc::now() + chrono::Duration::hours(1)));
    let status = w.record(future, &w.agent_token).await.expect_err("future");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["occurred_at"]);
    assert_eq!(
        status.get_details_error_info().map(|i| i.reason),
        Some("ERROR_REASON_OCCURRED_AT_IN_FUTURE".to_owned())
    );

    let mut old = cash(w.tenant, 100_000);
    old.occurred_at = Some(ts(Utc::now() - chrono::Duration::days(31)));
    let status = w.record(old, &w.agent_token).await.expect_err("too old");
    assert_eq!(bad_fields(&status), ["occurred_at"]);
    assert_eq!(
        status.get_details_error_info().map(|i| i.reason),
        Some("ERROR_REASON_OCCURRED_AT_TOO_OLD".to_owned())
    );

    let mut no_id = cash(w.tenant, 100_000);
    no_id.request_id = String::new();
    let status = w
        .record(no_id, &w.agent_token)
        .await
        .expect_err("no request id");
    assert_eq!(bad_fields(&status), ["request_id"]);

    let mut unknown_visit = cash(w.tenant, 100_000);
    unknown_visit.visit_id = Uuid::new_v4().to_string();
    let status = w
        .record(unknown_visit, &w.agent_token)
        .await
        .expect_err("unknown visit");
    assert_eq!(status.code(), Code::NotFound);

    let mut unknown_promise = cash(w.tenant, 100_000);
    unknown_promise.promise_id = Uuid::new_v4().to_string();
    let status = w
        .record(unknown_promise, &w.agent_token)
        .await
        .expect_err("unknown promise");
    assert_eq!(status.code(), Code::NotFound);

    for table in [
        "payments",
        "payment_allocations",
        "receipt_counters",
        "score_events",
        "agent_daily_scores",
        "idempotency_keys",
    ] {
        assert_eq!(
            w.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        w.count("SELECT sum(amount_paid_gnf)::bigint FROM charges")
            .await,
        0
    );
}

#[tokio::test]
async fn scope_and_roles_of_payments() {
    let w = World::new().await;
    let other_site = create_site(&w.pool, "MAT").await;
    let stranger = create_tenant(&w.pool, other_site, "Mamadou Diallo", MONTH, None).await;
    create_user(&w.pool, "agent.mat", "agent", &[other_site], None).await;
    create_user(&w.pool, "gest.mat", "site_manager", &[other_site], None).await;
    create_user(&w.pool, "sup.kal", "supervisor", &[w.site], None).await;

    // An agent paying for a tenant of another site.
    let denied = w
        .record(cash(stranger, 100_000), &w.agent_token)
        .await
        .expect_err("other site");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&denied), "ERROR_REASON_OUT_OF_SCOPE");

    // An agent recording in the name of another agent.
    let other_agent = w.app.token("agent.mat").await;
    let mut for_other = cash(w.tenant, 100_000);
    for_other.agent_id = w.agent.to_string();
    let denied = w
        .record(for_other, &other_agent)
        .await
        .expect_err("for other");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&denied), "ERROR_REASON_PERMISSION_MISSING");
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 0);

    // The admin records a back-office entry for the agent: the agent collects and scores.
    let mut back_office = cash(w.tenant, 100_000);
    back_office.agent_id = w.agent.to_string();
    let response = w
        .record(back_office, &w.admin_token)
        .await
        .expect("recorded");
    let payment = response.payment.expect("payment");
    assert_eq!(
        payment.agent.as_ref().expect("agent").user_id,
        w.agent.to_string()
    );
    assert!(payment.recorded_by.is_some());
    assert_eq!(response.score_points, 3);
    // ...but not for an agent who does not cover the tenant's site.
    let mut wrong_agent = cash(w.tenant, 100_000);
    wrong_agent.agent_id =
        sqlx::query_scalar::<_, Uuid>("SELECT id FROM users WHERE username = 'agent.mat'")
            .fetch_one(&w.pool)
            .await
            .expect("agent.mat")
            .to_string();
    let refused = w
        .record(wrong_agent, &w.admin_token)
        .await
        .expect_err("site");
    assert_eq!(bad_fields(&refused), ["agent_id"]);

    // Agents cannot reverse (the role lacks the permission).
    let denied = w
        .reverse(reversal(&payment.payment_id, "Erreur"), &w.agent_token)
        .await
        .expect_err("agent");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // A site manager of another site does not see it.
    let manager = w.app.token("gest.mat").await;
    let hidden = w
        .get(&payment.payment_id, &manager)
        .await
        .expect_err("scope");
    assert_eq!(hidden.code(), Code::PermissionDenied);
    let page = w
        .app
        .collections_client()
        .await
        .list_payments(authed(ListPaymentsRequest::default(), &manager))
        .await
        .expect("list")
        .into_inner();
    assert_eq!((page.payments.len(), page.total_size), (0, 0));
    // A supervisor of the site may reverse.
    let supervisor = w.app.token("sup.kal").await;
    w.reverse(reversal(&payment.payment_id, "Erreur"), &supervisor)
        .await
        .expect("supervisor reverses");

    let unknown = w
        .get(&Uuid::new_v4().to_string(), &w.admin_token)
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let unknown = w
        .reverse(
            reversal(&Uuid::new_v4().to_string(), "Erreur"),
            &w.admin_token,
        )
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn replays_answer_the_same_and_reuses_are_refused() {
    let w = World::new().await;
    create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;
    let request = cash(w.tenant, 400_000);
    let first = w.pay(request.clone()).await;
    assert_eq!(w.pay(request.clone()).await, first);

    let mut other_body = request.clone();
    other_body.amount_gnf = 500_000;
    let reused = w
        .record(other_body.clone(), &w.agent_token)
        .await
        .expect_err("reused");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&reused), "ERROR_REASON_REQUEST_ID_REUSED");

    // After the idempotency key is gone, the payment's own request_id still answers.
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(&w.pool)
        .await
        .expect("expire keys");
    let late = w.pay(request.clone()).await;
    assert_eq!(late.payment, first.payment);
    assert_eq!(late.score_points, 3);
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(&w.pool)
        .await
        .expect("expire keys");
    let reused = w
        .record(other_body, &w.agent_token)
        .await
        .expect_err("reused");
    assert_eq!(error_reason(&reused), "ERROR_REASON_REQUEST_ID_REUSED");
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(w.count("SELECT last_number FROM receipt_counters").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM score_events").await, 1);

    // The same for a reversal: replayed, and found again after its key expired.
    let payment_id = first.payment.expect("payment").payment_id;
    let undo = reversal(&payment_id, "Doublon");
    let reversed = w
        .reverse(undo.clone(), &w.admin_token)
        .await
        .expect("reversed");
    assert_eq!(
        w.reverse(undo.clone(), &w.admin_token)
            .await
            .expect("replay"),
        reversed
    );
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(&w.pool)
        .await
        .expect("expire keys");
    let late = w.reverse(undo, &w.admin_token).await.expect("late replay");
    assert_eq!(late.reversal, reversed.reversal);
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 2);
}

#[tokio::test]
async fn a_retry_past_the_offline_window_is_answered_with_its_entry() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let site = create_site(pool, "KAL").await;
    create_user(pool, "agent.kal", "agent", &[site], None).await;
    create_user(pool, "admin", "admin", &[], None).await;
    let tenant = create_tenant(pool, site, "Fatoumata Camara", MONTH, Some(KALOUM)).await;
    create_charges(pool, tenant, month(2026, 10), 1, MONTH).await;
    // An offline window of 4 s: the retry below comes after it, as a phone's would days later.
    let mut config = test_config(db.connect_options(), RedisMode::Real);
    config.collections.max_offline_age = Duration::from_secs(4);
    let app = spawn_app_with(config, pool.clone()).await;
    let agent = app.token("agent.kal").await;
    let admin = app.token("admin").await;
    let record = |request: RecordPaymentRequest| {
        let app = &app;
        let agent = &agent;
        async move { message(app.collections(agent).await.record_payment(request)).await }
    };
    let reverse = |request: ReversePaymentRequest| {
        let app = &app;
        let admin = &admin;
        async move { message(app.collections(admin).await.reverse_payment(request)).await }
    };

    let made = Utc::now();
    let request = RecordPaymentRequest {
        occurred_at: Some(ts(made)),
        ..cash(tenant, 400_000)
    };
    let first = record(request.clone()).await.expect("recorded");
    let payment_id = first.payment.clone().expect("payment").payment_id;
    let undo = ReversePaymentRequest {
        occurred_at: Some(ts(made)),
        ..reversal(&payment_id, "Chèque sans provision")
    };
    let undone = reverse(undo.clone()).await.expect("reversed");
    tokio::time::sleep(
        Duration::from_secs(4)
            + (made - Utc::now()).to_std().unwrap_or_default()
            + Duration::from_millis(200),
    )
    .await;
    assert!(Utc::now() - made > chrono::Duration::seconds(4));

    // The retries are answered with what was recorded, by their key and, once the key is
    // gone, by the entries' own request_ids.
    let late = record(request.clone()).await.expect("late retry");
    assert_eq!(late.payment, first.payment);
    assert_eq!(
        reverse(undo.clone()).await.expect("late retry").reversal,
        undone.reversal
    );
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(pool)
        .await
        .expect("expire keys");
    // Answered from the entry as it stands now: the same payment and receipt, since reversed.
    let later = record(request.clone())
        .await
        .expect("later")
        .payment
        .expect("payment");
    let recorded = first.payment.clone().expect("payment");
    assert_eq!(
        (&later.payment_id, &later.receipt_number, later.reversed),
        (&recorded.payment_id, &recorded.receipt_number, true)
    );
    assert_eq!(
        reverse(undo).await.expect("later").reversal,
        undone.reversal
    );
    assert_eq!(count(pool, "SELECT count(*) FROM payments").await, 2);

    // A new payment that old is refused, as is another request under the stored id.
    let fresh = RecordPaymentRequest {
        request_id: Uuid::new_v4().to_string(),
        ..request.clone()
    };
    let status = record(fresh).await.expect_err("too old");
    assert_eq!(bad_fields(&status), ["occurred_at"]);
    assert_eq!(error_reason(&status), "ERROR_REASON_OCCURRED_AT_TOO_OLD");
    let other = RecordPaymentRequest {
        amount_gnf: 500_000,
        ..request
    };
    let status = record(other).await.expect_err("reused");
    assert_eq!(error_reason(&status), "ERROR_REASON_REQUEST_ID_REUSED");
    assert_eq!(count(pool, "SELECT count(*) FROM payments").await, 2);
}

#[tokio::test]
async fn an_operator_reference_pays_once() {
    let w = World::new().await;
    create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;
    let mut orange = cash(w.tenant, 300_000);
    orange.method = PaymentMethod::OrangeMoney as i32;
    orange.operator_reference = "MP261126.1533.A12345".into();
    orange.payer_phone = "+224 621 23 45 67".into();
    let paid = w.pay(orange.clone()).await.payment.expect("payment");
    assert_eq!(paid.method, PaymentMethod::OrangeMoney as i32);
    assert_eq!(paid.payer_phone, "+224621234567");

    let mut again = orange.clone();
    again.request_id = Uuid::new_v4().to_string();
    let duplicate = w
        .record(again.clone(), &w.agent_token)
        .await
        .expect_err("dup");
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    assert_eq!(
        error_reason(&duplicate),
        "ERROR_REASON_OPERATOR_REFERENCE_DUPLICATE"
    );
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 1);

    // Reversed (recorded on the wrong tenant, say), the reference can be used again.
    w.reverse(
        reversal(&paid.payment_id, "Mauvais locataire"),
        &w.admin_token,
    )
    .await
    .expect("reversed");
    w.pay(again).await;
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 3);
}

#[tokio::test]
async fn an_operator_reference_typed_otherwise_is_the_same_transfer() {
    let w = World::new().await;
    create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;
    let other_tenant = create_tenant(&w.pool, w.site, "Mamadou Diallo", MONTH, Some(KALOUM)).await;
    let orange = |tenant: Uuid, reference: &str| RecordPaymentRequest {
        method: PaymentMethod::OrangeMoney as i32,
        operator_reference: reference.to_owned(),
        ..cash(tenant, 100_000)
    };
    let paid = w
        .pay(orange(w.tenant, " MP261130.6186.A75896 "))
        .await
        .payment
        .expect("payment");
    // Kept as typed (trimmed).
    assert_eq!(paid.operator_reference, "MP261130.6186.A75896");
    for variant in [
        "MP261130.6186.A75896",
        "mp261130.6186.a75896",
        "MP261130 6186 A75896",
        "MP2611306186A75896",
        "mp261130-6186-a75896",
        "Mp 261130.6186.A75896",
    ] {
        // On another tenant too: a transfer pays once.
        for tenant in [w.tenant, other_tenant] {
            let duplicate = w
                .record(orange(tenant, variant), &w.agent_token)
                .await
                .expect_err(variant);
            assert_eq!(duplicate.code(), Code::AlreadyExists, "{variant}");
            assert_eq!(
                error_reason(&duplicate),
                "ERROR_REASON_OPERATOR_REFERENCE_DUPLICATE"
            );
        }
    }
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 1);
    // Another transfer, and the same reference with another operator, are payments of their own.
    w.pay(orange(w.tenant, "MP261130.6186.A75897")).await;
    let mtn = RecordPaymentRequest {
        method: PaymentMethod::MtnMomo as i32,
        ..orange(w.tenant, "mp261130.6186.a75896")
    };
    w.pay(mtn).await;
    // A reference with no letter or digit is no reference.
    let blank = w
        .record(orange(w.tenant, "..."), &w.agent_token)
        .await
        .expect_err("blank");
    assert_eq!(bad_fields(&blank), ["operator_reference"]);

    // ListPayments finds it however it is typed.
    let found = message(w.app.collections(&w.admin_token).await.list_payments(
        ListPaymentsRequest {
            operator_reference: "mp 2611306186 a75896".into(),
            method: PaymentMethod::OrangeMoney as i32,
            ..Default::default()
        },
    ))
    .await
    .expect("list");
    let ids: Vec<&str> = found
        .payments
        .iter()
        .map(|p| p.payment_id.as_str())
        .collect();
    assert_eq!(ids, [paid.payment_id.as_str()]);
}

#[tokio::test]
async fn the_databases_reference_key_is_the_domains() {
    use akig::domain::outcome::operator_reference_key;
    let db = TestDb::new().await;
    let mut samples: Vec<String> = [
        "MP261130.6186.A75896",
        "mp261130.6186.a75896",
        " a-b c/d_e:f#g ",
        "REC 12/3",
        "...",
        "~!@#$%^&*()_+{}|:<>?`-=[]\\;',./\"",
        "zZ09",
    ]
    .map(str::to_owned)
    .to_vec();
    // Every printable ASCII character, alone and between letters.
    for byte in b' '..=b'~' {
        let c = char::from(byte);
        samples.push(c.to_string());
        samples.push(format!("a{c}B9"));
    }
    for sample in samples {
        let sql: Option<String> = sqlx::query_scalar("SELECT operator_reference_key($1)")
            .bind(&sample)
            .fetch_one(&db.pool)
            .await
            .expect("key");
        let rust = operator_reference_key(&sample);
        assert_eq!(sql, (!rust.is_empty()).then_some(rust), "{sample:?}");
    }
}

#[tokio::test]
async fn a_payment_keeps_the_pending_promise_and_its_reversal_reopens_it() {
    let w = World::new().await;
    create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;
    let promised = (Utc::now() + chrono::Duration::days(3)).date_naive();
    let promise: Uuid = sqlx::query_scalar(
        "INSERT INTO promises (tenant_id, agent_id, amount_gnf, promised_date, created_at)
         VALUES ($1, $2, 800000, $3, now() - interval '1 hour') RETURNING id",
    )
    .bind(w.tenant)
    .bind(w.agent)
    .bind(promised)
    .fetch_one(&w.pool)
    .await
    .expect("promise");

    // Money handed over before the promise was made (synced late) does not count towards it.
    let mut earlier = cash(w.tenant, 100_000);
    earlier.occurred_at = Some(minutes_ago(120));
    let earlier = w.pay(earlier).await;
    let seen = earlier.promise.expect("the pending promise");
    assert_eq!(
        (seen.status, seen.paid_gnf),
        (PromiseStatus::Pending as i32, 0)
    );
    assert_eq!(earlier.payment.expect("payment").promise_id, "");

    // A first part leaves it pending; the second keeps it.
    let part = w.pay(cash(w.tenant, 300_000)).await;
    assert_eq!(
        part.payment.as_ref().expect("payment").promise_id,
        promise.to_string()
    );
    let seen = part.promise.expect("the pending promise");
    assert_eq!(seen.promise_id, promise.to_string());
    assert_eq!(seen.status, PromiseStatus::Pending as i32);
    assert_eq!(seen.paid_gnf, 300_000);
    let mut named = cash(w.tenant, 500_000);
    named.promise_id = promise.to_string();
    let rest = w.pay(named).await;
    let kept = rest.promise.expect("promise");
    assert_eq!(kept.status, PromiseStatus::Kept as i32);
    assert_eq!(kept.paid_gnf, 800_000);
    assert!(kept.resolve_time.is_some());
    let rest = rest.payment.expect("payment");
    assert_eq!(rest.promise_id, promise.to_string());
    assert_eq!(
        w.count("SELECT count(*) FROM promise_events WHERE kind = 'kept'")
            .await,
        1
    );

    // A kept promise takes no more payments by name, but the money is recorded all the same
    // (a phone that queued two payments of one visit names the promise in both).
    let mut late = cash(w.tenant, 100_000);
    late.promise_id = promise.to_string();
    let late = w.pay(late).await;
    let late_payment = late.payment.expect("payment");
    assert_eq!(late_payment.promise_id, "");
    assert_eq!(late_payment.amount_gnf, 100_000);
    assert!(
        late.promise.is_none(),
        "no pending promise to count towards"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM promise_events WHERE kind = 'kept'")
            .await,
        1
    );

    // Reversing the payment that kept it: back to pending, with what is left: the 300,000
    // before it and the 100,000 made since (payments since the promise count towards it).
    w.reverse(reversal(&rest.payment_id, "Erreur"), &w.admin_token)
        .await
        .expect("reversed");
    let (status, covered): (String, i64) =
        sqlx::query_as("SELECT status, covered_gnf FROM promises WHERE id = $1")
            .bind(promise)
            .fetch_one(&w.pool)
            .await
            .expect("promise");
    assert_eq!((status.as_str(), covered), ("pending", 400_000));
    assert_ledger_consistent(&w.pool).await;
}

#[tokio::test]
async fn list_payments_pages_newest_first_with_totals() {
    let w = World::new().await;
    create_charges(&w.pool, w.tenant, month(2026, 6), 6, MONTH).await;
    let mut ids = Vec::new();
    for (i, minutes) in [50, 40, 30, 20, 10].into_iter().enumerate() {
        let mut request = cash(w.tenant, 100_000 * (i64::try_from(i).expect("small") + 1));
        request.occurred_at = Some(minutes_ago(minutes));
        ids.push(w.pay(request).await.payment.expect("payment").payment_id);
    }
    // Reverse the 200,000 payment, five minutes ago.
    let mut undo = reversal(&ids[1], "Erreur");
    undo.occurred_at = Some(minutes_ago(5));
    let reversal_id = w
        .reverse(undo, &w.accountant_token)
        .await
        .expect("reversed")
        .reversal
        .expect("entry")
        .payment_id;

    let mut client = w.app.collections_client().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_payments(authed(
                ListPaymentsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
                &w.accountant_token,
            ))
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert_eq!(page.total_size, 6);
        // Reversals count negative: 1,500,000 received, 200,000 of it reversed.
        assert_eq!(page.total_amount_gnf, 1_300_000);
        seen.extend(
            page.payments
                .into_iter()
                .map(|p| (p.payment_id, p.amount_gnf)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let expected: Vec<(String, i64)> = vec![
        (reversal_id.clone(), -200_000),
        (ids[4].clone(), 500_000),
        (ids[3].clone(), 400_000),
        (ids[2].clone(), 300_000),
        (ids[1].clone(), 200_000),
        (ids[0].clone(), 100_000),
    ];
    assert_eq!(seen, expected);

    // Filters: reversals only; a token reused with other filters is refused.
    let reversals = client
        .list_payments(authed(
            ListPaymentsRequest {
                kind: PaymentKind::Reversal as i32,
                ..Default::default()
            },
            &w.accountant_token,
        ))
        .await
        .expect("reversals")
        .into_inner();
    assert_eq!(
        (reversals.total_size, reversals.total_amount_gnf),
        (1, -200_000)
    );
    let first_page = client
        .list_payments(authed(
            ListPaymentsRequest {
                page_size: 2,
                ..Default::default()
            },
            &w.accountant_token,
        ))
        .await
        .expect("page")
        .into_inner();
    let mismatch = client
        .list_payments(authed(
            ListPaymentsRequest {
                page_size: 2,
                page_token: first_page.next_page_token,
                kind: PaymentKind::Payment as i32,
                ..Default::default()
            },
            &w.accountant_token,
        ))
        .await
        .expect_err("token for other filters");
    assert_eq!(mismatch.code(), Code::InvalidArgument);
    let by_receipt = client
        .list_payments(authed(
            ListPaymentsRequest {
                receipt_number: format!("KAL-{}-000003", Utc::now().year()),
                ..Default::default()
            },
            &w.accountant_token,
        ))
        .await
        .expect("by receipt")
        .into_inner();
    assert_eq!(by_receipt.payments.len(), 1);
    assert_eq!(by_receipt.payments[0].payment_id, ids[2]);
    // The agent's money, reversal included.
    let by_agent = client
        .list_payments(authed(
            ListPaymentsRequest {
                agent_id: w.agent.to_string(),
                ..Default::default()
            },
            &w.accountant_token,
        ))
        .await
        .expect("by agent")
        .into_inner();
    assert_eq!(
        (by_agent.total_size, by_agent.total_amount_gnf),
        (6, 1_300_000)
    );
    let negative = client
        .list_payments(authed(
            ListPaymentsRequest {
                page_size: -1,
                ..Default::default()
            },
            &w.accountant_token,
        ))
        .await
        .expect_err("negative page size");
    assert_eq!(negative.code(), Code::InvalidArgument);
    w.app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn one_request_id_from_two_users_records_one_payment() {
    let w = World::new().await;
    create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;
    // The agent's phone and a back-office entry of the same action, at the same time.
    let by_agent = cash(w.tenant, 700_000);
    let mut by_admin = by_agent.clone();
    by_admin.agent_id = w.agent.to_string();
    let client = w.app.collections_client().await;
    let mut calls = JoinSet::new();
    for i in 0..20 {
        let mut client = client.clone();
        let request = if i % 2 == 0 {
            authed(by_agent.clone(), &w.agent_token)
        } else {
            authed(by_admin.clone(), &w.admin_token)
        };
        calls.spawn(async move { client.record_payment(request).await });
    }
    let mut payments = HashSet::new();
    while let Some(outcome) = calls.join_next().await {
        match outcome.expect("task") {
            Ok(response) => {
                let payment = response.into_inner().payment.expect("payment");
                payments.insert((payment.payment_id, payment.receipt_number));
            }
            Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        }
    }
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(w.count("SELECT last_number FROM receipt_counters").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM score_events").await, 1);
    assert_eq!(
        w.count("SELECT amount_paid_gnf FROM charges").await,
        700_000
    );
}

#[tokio::test]
async fn the_visit_and_mission_named_must_be_the_tenants() {
    let w = World::new().await;
    create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;
    let neighbour = create_tenant(&w.pool, w.site, "Aissatou Bah", MONTH, None).await;
    let interaction = |tenant: Uuid, kind: &'static str| {
        let pool = w.pool.clone();
        let agent = w.agent;
        async move {
            sqlx::query_scalar::<_, Uuid>(
                "INSERT INTO interactions (kind, tenant_id, agent_id, outcome, occurred_at,
                                           latitude, longitude, request_id)
                 VALUES ($1, $2, $3, 'paid', now() - interval '20 minutes', 9.5092, -13.7122,
                         gen_random_uuid())
                 RETURNING id",
            )
            .bind(kind)
            .bind(tenant)
            .bind(agent)
            .fetch_one(&pool)
            .await
            .expect("interaction")
        }
    };
    let visit = interaction(w.tenant, "visit").await;
    let call = interaction(w.tenant, "call").await;
    let other_visit = interaction(neighbour, "visit").await;
    let mission = |tenant| insert_mission(&w.pool, w.agent, tenant, w.site);
    let own_mission = mission(w.tenant).await;
    let other_mission = mission(neighbour).await;

    for (visit_id, mission_id, field) in [
        (call, None, "visit_id"),
        (other_visit, None, "visit_id"),
        (visit, Some(other_mission), "mission_id"),
    ] {
        let mut request = cash(w.tenant, 100_000);
        request.visit_id = visit_id.to_string();
        request.mission_id = mission_id.map(|id| id.to_string()).unwrap_or_default();
        let status = w.record(request, &w.agent_token).await.expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(bad_fields(&status), [field]);
        if field == "mission_id" {
            assert_eq!(error_reason(&status), "ERROR_REASON_MISSION_MISMATCH");
        }
    }
    let mut unknown_mission = cash(w.tenant, 100_000);
    unknown_mission.mission_id = Uuid::new_v4().to_string();
    let status = w
        .record(unknown_mission, &w.agent_token)
        .await
        .expect_err("unknown mission");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 0);

    let mut linked = cash(w.tenant, 100_000);
    linked.visit_id = visit.to_string();
    linked.mission_id = own_mission.to_string();
    linked.notes = "Payé à la porte".into();
    let payment = w.pay(linked).await.payment.expect("payment");
    assert_eq!(payment.visit_id, visit.to_string());
    assert_eq!(payment.mission_id, own_mission.to_string());
    assert_eq!(payment.notes, "Payé à la porte");
}

/// A mission named by a payment must be the collecting agent's, as for calls and visits: the
/// mission of another agent for the same tenant is refused, whoever records the payment.
#[tokio::test]
async fn the_mission_named_must_be_the_collecting_agents() {
    let w = World::new().await;
    create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;
    let colleague = create_user(&w.pool, "agent2.kal", "agent", &[w.site], None).await;
    let colleagues_mission = insert_mission(&w.pool, colleague, w.tenant, w.site).await;

    // The agent names a colleague's mission for this very tenant.
    let mut own_payment = cash(w.tenant, 100_000);
    own_payment.mission_id = colleagues_mission.to_string();
    let status = w
        .record(own_payment, &w.agent_token)
        .await
        .expect_err("another agent's mission");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["mission_id"]);
    assert_eq!(error_reason(&status), "ERROR_REASON_MISSION_MISMATCH");

    // The admin records it for the agent: still the colleague's mission.
    let mut for_the_agent = cash(w.tenant, 100_000);
    for_the_agent.agent_id = w.agent.to_string();
    for_the_agent.mission_id = colleagues_mission.to_string();
    let status = w
        .record(for_the_agent, &w.admin_token)
        .await
        .expect_err("another agent's mission");
    assert_eq!(error_reason(&status), "ERROR_REASON_MISSION_MISMATCH");
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 0);

    // Recorded for the colleague who collected it, the mission fits.
    let mut for_the_colleague = cash(w.tenant, 100_000);
    for_the_colleague.agent_id = colleague.to_string();
    for_the_colleague.mission_id = colleagues_mission.to_string();
    let payment = w
        .record(for_the_colleague, &w.admin_token)
        .await
        .expect("the collector's own mission")
        .payment
        .expect("payment");
    assert_eq!(payment.mission_id, colleagues_mission.to_string());
    assert_eq!(payment.agent.expect("agent").user_id, colleague.to_string());
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 1);
}

#[tokio::test]
async fn one_request_id_for_two_different_payments_records_one() {
    let w = World::new().await;
    let neighbour = create_tenant(&w.pool, w.site, "Aissatou Bah", MONTH, None).await;
    create_charges(&w.pool, w.tenant, month(2026, 10), 1, MONTH).await;
    create_charges(&w.pool, neighbour, month(2026, 10), 1, MONTH).await;
    for round in 0..5 {
        // A client bug: one request_id for two different payments, sent by two users at once.
        let first = cash(w.tenant, 10_000);
        let mut second = cash(neighbour, 20_000);
        second.request_id = first.request_id.clone();
        second.agent_id = w.agent.to_string();
        let (a, b) = tokio::join!(
            w.record(first, &w.agent_token),
            w.record(second, &w.admin_token)
        );
        let refused: Vec<tonic::Status> = [a, b].into_iter().filter_map(Result::err).collect();
        assert_eq!(refused.len(), 1, "round {round}: {refused:?}");
        assert_eq!(refused[0].code(), Code::FailedPrecondition);
        assert_eq!(error_reason(&refused[0]), "ERROR_REASON_REQUEST_ID_REUSED");
    }
    assert_eq!(w.count("SELECT count(*) FROM payments").await, 5);
    assert_eq!(w.count("SELECT last_number FROM receipt_counters").await, 5);
    assert_ledger_consistent(&w.pool).await;
}

#[tokio::test]
async fn an_agent_reads_the_receipt_of_their_own_payment_only() {
    let world = World::new().await;
    create_user(&world.pool, "agent.kal2", "agent", &[world.site], None).await;
    let other_agent = world.app.token("agent.kal2").await;
    let recorded = world
        .pay(cash(world.tenant, 250_000))
        .await
        .payment
        .expect("payment");

    let receipt = world
        .get(&recorded.payment_id, &world.agent_token)
        .await
        .expect("the collector reads the receipt");
    assert_eq!(receipt.receipt_number, recorded.receipt_number);
    assert_eq!(receipt.amount_gnf, 250_000);

    let status = world
        .get(&recorded.payment_id, &other_agent)
        .await
        .expect_err("another agent's payment");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    world.app.stop(Duration::from_secs(10)).await.expect("stop");
}
