//! Data written straight in the tables: users, sites, tenants, charges and a ledger, for the
//! set-up of a test (the demo seed is there for bigger data sets).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Today, UTC (the same day as Africa/Conakry).
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// A moment `minutes` (at most 120) before now that is still today: in the first two hours of
/// the day the minutes are scaled into the time elapsed since midnight, keeping their order, so
/// a test of "today's figures" passes at 00:10 as at noon.
pub fn today_minutes_ago(minutes: i64) -> DateTime<Utc> {
    assert!((0..=120).contains(&minutes), "at most two hours back");
    let now = Utc::now();
    let midnight = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let elapsed = now - midnight;
    if elapsed > Duration::minutes(121) {
        now - Duration::minutes(minutes)
    } else {
        midnight + elapsed * (120 - minutes as i32) / 121
    }
}

/// One number read from the database, such as a `count(*)`.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub const PASSWORD: &str = "mot-de-passe-solide";

/// A user with `PASSWORD`, created straight in the database (the hash is computed once).
pub async fn create_user(
    pool: &PgPool,
    username: &str,
    role: &str,
    site_ids: &[Uuid],
    supervisor_id: Option<Uuid>,
) -> Uuid {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let hash = HASH
        .get_or_init(|| async {
            akig::auth::password::hash(PASSWORD.to_owned())
                .await
                .expect("hash")
        })
        .await;
    let mut conn = pool.acquire().await.expect("conn");
    akig::store::users::create(
        &mut conn,
        &akig::store::users::NewUser {
            username: username.to_owned(),
            full_name: format!("Test {username}"),
            phone: None,
            role_id: role.to_owned(),
            supervisor_id,
            site_ids: site_ids.to_vec(),
            password_hash: Some(hash.clone()),
        },
    )
    .await
    .expect("create user")
    .id
}

/// Gives demo users the test password (the seed leaves them without one).
pub async fn set_demo_passwords(pool: &PgPool, usernames: &[&str]) {
    let hash = akig::auth::password::hash(PASSWORD.to_owned())
        .await
        .expect("hash");
    sqlx::query("UPDATE users SET password_hash = $1 WHERE username = ANY($2)")
        .bind(hash)
        .bind(usernames)
        .execute(pool)
        .await
        .expect("set passwords");
}

/// Takes `permission` away from `role` (the grant table is data).
pub async fn revoke(pool: &PgPool, role: &str, permission: &str) {
    sqlx::query("DELETE FROM role_permissions WHERE role_id = $1 AND permission_id = $2")
        .bind(role)
        .bind(permission)
        .execute(pool)
        .await
        .expect("revoke");
}

/// A site, for scope tests.
pub async fn create_site(pool: &PgPool, code: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO sites (code, name, commune, address, latitude, longitude, kind)
         VALUES ($1, $1, 'Kaloum', '', 9.51, -13.71, 'residential') RETURNING id",
    )
    .bind(code)
    .fetch_one(pool)
    .await
    .expect("create site")
}

/// Kaloum, Conakry: the home of test tenants unless a test says otherwise.
pub const KALOUM: (f64, f64) = (9.5092, -13.7122);

pub async fn create_tenant(
    pool: &PgPool,
    site_id: Uuid,
    full_name: &str,
    monthly_rent_gnf: i64,
    home: Option<(f64, f64)>,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO tenants (site_id, unit, full_name, phone, home_latitude, home_longitude,
                              monthly_rent_gnf)
         VALUES ($1, 'U-' || substr(md5(random()::text), 1, 6), $2, NULL, $3, $4, $5)
         RETURNING id",
    )
    .bind(site_id)
    .bind(full_name)
    .bind(home.map(|h| h.0))
    .bind(home.map(|h| h.1))
    .bind(monthly_rent_gnf)
    .fetch_one(pool)
    .await
    .expect("create tenant")
}

/// One unpaid charge per month from `first` (first day of a month) for `months` months, each
/// due on the 5th, of `amount` GNF. Returns the charge ids, oldest first.
pub async fn create_charges(
    pool: &PgPool,
    tenant_id: Uuid,
    first: NaiveDate,
    months: u32,
    amount: i64,
) -> Vec<i64> {
    let mut ids = Vec::new();
    for m in 0..months {
        let period = first
            .with_day(1)
            .and_then(|d| d.checked_add_months(chrono::Months::new(m)))
            .expect("valid month");
        let due = period.with_day(5).expect("5th");
        ids.push(create_charge(pool, tenant_id, period, due, amount).await);
    }
    ids
}

/// A charge with an explicit period (first of a month) and due date; returns its id.
pub async fn create_charge(
    pool: &PgPool,
    tenant_id: Uuid,
    period: NaiveDate,
    due_date: NaiveDate,
    amount: i64,
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO charges (tenant_id, period, amount_due_gnf, due_date)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(tenant_id)
    .bind(period)
    .bind(amount)
    .bind(due_date)
    .fetch_one(pool)
    .await
    .expect("create charge")
}

/// Marks `agent_id` online: a position received just now (`agent_last_positions`).
pub async fn put_online(pool: &PgPool, agent_id: Uuid) {
    sqlx::query(
        "INSERT INTO agent_last_positions (agent_id, max_sequence, sequence, latitude, longitude,
                                           fix_time, received_at)
         VALUES ($1, 1, 1, 9.51, -13.71, now(), now())",
    )
    .bind(agent_id)
    .execute(pool)
    .await
    .expect("position");
}

/// A payment (`reverses` `None`) or reversal of `amount` on one charge by `agent_id`, written
/// with [`insert_ledger_entry`]. Returns its id.
pub async fn pay_charge(
    pool: &PgPool,
    (tenant_id, agent_id): (Uuid, Uuid),
    charge: i64,
    amount: i64,
    occurred_at: chrono::DateTime<chrono::Utc>,
    reverses: Option<Uuid>,
) -> Uuid {
    let signed = if reverses.is_some() { -amount } else { amount };
    insert_ledger_entry(
        pool,
        &LedgerEntry {
            tenant_id,
            agent_id,
            amount,
            occurred_at,
            reverses,
            allocations: &[(charge, signed)],
        },
    )
    .await
}

/// A ledger entry written straight in the tables, as the payment RPCs would leave it.
pub struct LedgerEntry<'a> {
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
    /// > 0, also for a reversal.
    pub amount: i64,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// The payment a reversal cancels; `None` for a payment.
    pub reverses: Option<Uuid>,
    /// (charge, amount): negative amounts for a reversal.
    pub allocations: &'a [(i64, i64)],
}

/// Inserts a payment or reversal (received one minute after it occurred), its allocations,
/// and the charges' new `amount_paid_gnf` / `paid_in_full_at`. Returns its id.
pub async fn insert_ledger_entry(pool: &PgPool, entry: &LedgerEntry<'_>) -> Uuid {
    let mut tx = pool.begin().await.expect("begin");
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO payments (tenant_id, site_id, kind, amount_gnf, method, receipt_number,
                               occurred_at, received_at, agent_id, reverses_payment_id, reason,
                               request_id)
         SELECT t.id, t.site_id, CASE WHEN $5::uuid IS NULL THEN 'payment' ELSE 'reversal' END,
                $2, 'cash', 'TST-2026-' || lpad(floor(random() * 1e9)::bigint::text, 9, '0'),
                $3, $3 + interval '1 minute', $4, $5,
                CASE WHEN $5::uuid IS NULL THEN NULL ELSE 'erreur de saisie' END,
                gen_random_uuid()
         FROM tenants t WHERE t.id = $1
         RETURNING id",
    )
    .bind(entry.tenant_id)
    .bind(entry.amount)
    .bind(entry.occurred_at)
    .bind(entry.agent_id)
    .bind(entry.reverses)
    .fetch_one(&mut *tx)
    .await
    .expect("insert ledger entry");
    for &(charge_id, amount) in entry.allocations {
        sqlx::query(
            "INSERT INTO payment_allocations (payment_id, charge_id, amount_gnf, outstanding_after_gnf)
             SELECT $1, $2, $3, c.amount_due_gnf - c.amount_paid_gnf - $3
             FROM charges c WHERE c.id = $2",
        )
        .bind(id)
        .bind(charge_id)
        .bind(amount)
        .execute(&mut *tx)
        .await
        .expect("insert allocation");
        sqlx::query(
            "UPDATE charges SET amount_paid_gnf = amount_paid_gnf + $2,
                    paid_in_full_at = CASE WHEN amount_paid_gnf + $2 = amount_due_gnf
                                           THEN coalesce(paid_in_full_at, $3) END
             WHERE id = $1",
        )
        .bind(charge_id)
        .bind(amount)
        .bind(entry.occurred_at)
        .execute(&mut *tx)
        .await
        .expect("update charge");
    }
    tx.commit().await.expect("commit");
    id
}

/// A call or visit written straight in the table (received one minute after it occurred).
/// A visit gets a fix at Kaloum, `far` sets the far-away flag.
pub async fn insert_interaction(
    pool: &PgPool,
    kind: &str,
    tenant_id: Uuid,
    agent_id: Uuid,
    outcome: &str,
    occurred_at: chrono::DateTime<chrono::Utc>,
    far: bool,
) -> Uuid {
    let visit = kind == "visit";
    sqlx::query_scalar(
        "INSERT INTO interactions (kind, tenant_id, agent_id, outcome, notes, occurred_at,
                                   received_at, latitude, longitude, accuracy_m,
                                   distance_to_tenant_m, is_far_from_tenant, request_id, fix_time)
         VALUES ($1, $2, $3, $4, 'notes ' || $4, $5, $5 + interval '1 minute', $6, $7, $8, $9,
                 $10, gen_random_uuid(), $11)
         RETURNING id",
    )
    .bind(kind)
    .bind(tenant_id)
    .bind(agent_id)
    .bind(outcome)
    .bind(occurred_at)
    .bind(visit.then_some(KALOUM.0))
    .bind(visit.then_some(KALOUM.1))
    .bind(visit.then_some(10.0_f64))
    .bind(visit.then_some(if far { 850.0_f64 } else { 20.0 }))
    .bind(far)
    // The fix is taken half a minute before the visit: a proof of presence.
    .bind(visit.then_some(occurred_at - chrono::Duration::seconds(30)))
    .fetch_one(pool)
    .await
    .expect("insert interaction")
}

/// A pending promise made in `interaction_id`, stored one minute after `made_at`.
pub async fn insert_promise(
    pool: &PgPool,
    tenant_id: Uuid,
    agent_id: Uuid,
    interaction_id: Option<Uuid>,
    amount: i64,
    promised_date: NaiveDate,
    made_at: chrono::DateTime<chrono::Utc>,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO promises (tenant_id, agent_id, interaction_id, amount_gnf, promised_date,
                               created_at)
         VALUES ($1, $2, $3, $4, $5, $6 + interval '1 minute') RETURNING id",
    )
    .bind(tenant_id)
    .bind(agent_id)
    .bind(interaction_id)
    .bind(amount)
    .bind(promised_date)
    .bind(made_at)
    .fetch_one(pool)
    .await
    .expect("insert promise")
}

/// Today's mission of `agent` for `tenant` of `site`; returns its id.
pub async fn insert_mission(pool: &PgPool, agent_id: Uuid, tenant_id: Uuid, site_id: Uuid) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO missions (mission_date, agent_id, tenant_id, site_id)
         VALUES (current_date, $1, $2, $3) RETURNING id",
    )
    .bind(agent_id)
    .bind(tenant_id)
    .bind(site_id)
    .fetch_one(pool)
    .await
    .expect("mission")
}

/// The source of a score event.
pub enum ScoreOf {
    Interaction(Uuid),
    Payment(Uuid),
    Promise(Uuid),
}

/// A score event of `kind` (visit, promise, payment, refusal, payment_reversal) on the
/// Africa/Conakry day of `occurred_at`, with the points the rules give it.
pub async fn insert_score_event(
    pool: &PgPool,
    agent_id: Uuid,
    kind: &str,
    source: ScoreOf,
    occurred_at: chrono::DateTime<chrono::Utc>,
) {
    let points = match kind {
        "visit" => 1,
        "promise" => 2,
        "payment" => 3,
        "refusal" => -1,
        "payment_reversal" => -3,
        other => panic!("unknown score event kind {other}"),
    };
    let (interaction, payment, promise) = match source {
        ScoreOf::Interaction(id) => (Some(id), None, None),
        ScoreOf::Payment(id) => (None, Some(id), None),
        ScoreOf::Promise(id) => (None, None, Some(id)),
    };
    sqlx::query(
        "INSERT INTO score_events (agent_id, day, kind, points, interaction_id, payment_id,
                                   promise_id, occurred_at)
         VALUES ($1, ($2 AT TIME ZONE 'Africa/Conakry')::date, $3, $4, $5, $6, $7, $2)",
    )
    .bind(agent_id)
    .bind(occurred_at)
    .bind(kind)
    .bind(points)
    .bind(interaction)
    .bind(payment)
    .bind(promise)
    .execute(pool)
    .await
    .expect("insert score event");
}

/// A cash payment written straight into the ledger (no allocation, no score): enough for what
/// reads the ledger only, such as promise coverage. Returns the payment id.
pub async fn insert_cash_payment(
    pool: &PgPool,
    tenant_id: Uuid,
    agent_id: Uuid,
    amount: i64,
    occurred_at: chrono::DateTime<chrono::Utc>,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO payments (tenant_id, site_id, amount_gnf, method, receipt_number,
                               occurred_at, received_at, agent_id, request_id)
         SELECT t.id, t.site_id, $2, 'cash',
                next_receipt_number(t.site_id, extract(year FROM $4::timestamptz)::int),
                $4, $4, $3, gen_random_uuid()
         FROM tenants t WHERE t.id = $1
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(amount)
    .bind(agent_id)
    .bind(occurred_at)
    .fetch_one(pool)
    .await
    .expect("insert payment")
}

/// The reversal entry of a payment written by [`insert_cash_payment`].
pub async fn insert_reversal(pool: &PgPool, payment_id: Uuid, agent_id: Uuid) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO payments (tenant_id, site_id, kind, amount_gnf, method, receipt_number,
                               occurred_at, agent_id, reverses_payment_id, reason, request_id)
         SELECT p.tenant_id, p.site_id, 'reversal', p.amount_gnf, p.method,
                next_receipt_number(p.site_id, extract(year FROM now())::int),
                now(), $2, p.id, 'Erreur de saisie', gen_random_uuid()
         FROM payments p WHERE p.id = $1
         RETURNING id",
    )
    .bind(payment_id)
    .bind(agent_id)
    .fetch_one(pool)
    .await
    .expect("insert reversal")
}
