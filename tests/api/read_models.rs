//! The read models (ADR 0011) equal a recomputation from the raw facts after random writes
//! through gRPC (payments, back-dated payments, reversals), new charges, a tenant moving to
//! another site or home, a charge written then deleted, a tenant moving out, and after the demo
//! seed's bulk COPY.

use akig::proto::v1::{PaymentMethod, RecordPaymentRequest, ReversePaymentRequest};
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::assert_stored_is_the_replay;
use crate::support::{
    TestDb, create_charge, create_site, create_tenant, create_user, message, spawn_app, today, ts,
};

/// A charge whose stored last payment time differs from the facts': (id, stored, facts).
type LastPaidDrift = (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
/// An `open_due` cell that differs from the facts': (site, due date, shard, facts, stored).
type OpenDueDrift = (
    Option<Uuid>,
    Option<NaiveDate>,
    Option<i16>,
    Option<i64>,
    Option<i64>,
);

/// Every read model against its recomputation from the rows it summarises:
/// - `charges.last_paid_at` = the latest `occurred_at` of the valid payments (not reversed)
///   with rows on the charge;
/// - `open_due`, summed per (site, due date, shard) = due − paid of the charges of the site's
///   tenants of that shard falling due that day (no row of `open_due` without such charges
///   unless it holds 0);
/// - `tenant_open` = per tenant, from its charges with something outstanding: their sum, earliest
///   and latest due dates, the sum of those due on the latest, the latest due date before it,
///   and the tenant's site, status and home (a tenant without such charges has no row, or one
///   of zeros);
/// - `name_norm`, `unit_norm` = the normalisation of the name and unit;
/// - the site figures (`assert_site_figures_are_the_facts`).
async fn assert_read_models_are_the_facts(pool: &PgPool) {
    let last_paid: Vec<LastPaidDrift> = sqlx::query_as(
        "WITH facts AS (
             SELECT c.id, c.last_paid_at,
                    (SELECT max(p.occurred_at) FROM payment_allocations pa
                     JOIN payments p ON p.id = pa.payment_id
                     WHERE pa.charge_id = c.id AND p.kind = 'payment'
                       AND NOT EXISTS (SELECT 1 FROM payments r
                                       WHERE r.reverses_payment_id = p.id)) AS last_valid
             FROM charges c)
         SELECT id, last_paid_at, last_valid FROM facts
         WHERE last_paid_at IS DISTINCT FROM last_valid",
    )
    .fetch_all(pool)
    .await
    .expect("last paid");
    assert_eq!(
        last_paid,
        vec![],
        "charges whose last_paid_at is not the facts'"
    );

    let open: Vec<OpenDueDrift> = sqlx::query_as(
        "WITH facts AS (
                 SELECT t.site_id, c.due_date, tenant_shard(c.tenant_id) AS shard,
                        sum(c.amount_due_gnf - c.amount_paid_gnf)::bigint AS open_gnf
                 FROM charges c JOIN tenants t ON t.id = c.tenant_id
                 GROUP BY 1, 2, 3)
             SELECT coalesce(f.site_id, o.site_id), coalesce(f.due_date, o.due_date),
                    coalesce(f.shard, o.shard), f.open_gnf, o.open_gnf
             FROM facts f
             FULL JOIN open_due o
               ON o.site_id = f.site_id AND o.due_date = f.due_date AND o.shard = f.shard
             WHERE f.open_gnf IS DISTINCT FROM o.open_gnf
               AND NOT (f.open_gnf IS NULL AND o.open_gnf = 0)",
    )
    .fetch_all(pool)
    .await
    .expect("open due");
    assert_eq!(open, vec![], "open_due rows that are not the facts'");

    // Each side as text, written independently of the trigger's function (`tenant_open_of`).
    let tenant_open: Vec<(Uuid, Option<String>, Option<String>)> = sqlx::query_as(
        "WITH open AS (
                 SELECT tenant_id, due_date, amount_due_gnf - amount_paid_gnf AS gnf
                 FROM charges WHERE amount_paid_gnf < amount_due_gnf),
             last AS (
                 SELECT tenant_id, max(due_date) AS last_due FROM open GROUP BY tenant_id),
             facts AS (
                 SELECT t.id AS tenant_id, t.site_id, t.active, t.home_latitude, t.home_longitude,
                        coalesce((SELECT sum(gnf) FROM open o WHERE o.tenant_id = t.id), 0)
                            ::bigint AS open_gnf,
                        (SELECT min(due_date) FROM open o WHERE o.tenant_id = t.id) AS first_due,
                        l.last_due,
                        coalesce((SELECT sum(gnf) FROM open o
                                  WHERE o.tenant_id = t.id AND o.due_date = l.last_due), 0)
                            ::bigint AS last_gnf,
                        (SELECT max(due_date) FROM open o
                         WHERE o.tenant_id = t.id AND o.due_date < l.last_due) AS before_last_due
                 FROM tenants t LEFT JOIN last l ON l.tenant_id = t.id)
         SELECT f.tenant_id,
                concat_ws(' ', f.site_id, f.active, f.home_latitude, f.home_longitude, f.open_gnf,
                          f.first_due, f.last_due, f.last_gnf, f.before_last_due),
                concat_ws(' ', s.site_id, s.active, s.home_latitude, s.home_longitude, s.open_gnf,
                          s.open_first_due, s.open_last_due, s.open_last_gnf,
                          s.open_before_last_due)
         FROM facts f LEFT JOIN tenant_open s ON s.tenant_id = f.tenant_id
         WHERE CASE WHEN s.tenant_id IS NULL THEN f.open_gnf <> 0
                    ELSE (f.site_id, f.active, f.home_latitude, f.home_longitude, f.open_gnf,
                          f.first_due, f.last_due, f.last_gnf, f.before_last_due)
                         IS DISTINCT FROM
                         (s.site_id, s.active, s.home_latitude, s.home_longitude, s.open_gnf,
                          s.open_first_due, s.open_last_due, s.open_last_gnf,
                          s.open_before_last_due)
               END",
    )
    .fetch_all(pool)
    .await
    .expect("tenant open");
    assert_eq!(
        tenant_open,
        vec![],
        "tenant_open rows that are not the facts' (tenant, facts, stored)"
    );
    assert_site_figures_are_the_facts(pool).await;

    let names = crate::support::count(
        pool,
        "SELECT count(*) FROM tenants
         WHERE name_norm <> immutable_unaccent(lower(full_name))
            OR unit_norm <> immutable_unaccent(lower(unit))",
    )
    .await;
    assert_eq!(names, 0, "normalised search columns");
}

/// The first day of the month `months_ago` months before this one.
fn month(months_ago: u32) -> NaiveDate {
    today()
        .with_day(1)
        .and_then(|d| d.checked_sub_months(Months::new(months_ago)))
        .expect("valid month")
}

fn ago(minutes: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::minutes(minutes)
}

#[tokio::test]
async fn read_models_follow_random_payments_reversals_charges_and_moves() {
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let sites = [
        create_site(&pool, "KAL").await,
        create_site(&pool, "RAT").await,
    ];
    create_user(&pool, "agent.both", "agent", &sites, None).await;
    create_user(&pool, "compta", "accountant", &[], None).await;
    let mut tenants = Vec::new();
    for (i, name) in ["Mariama Diallo", "Fodé Camara", "Aïssatou Bah"]
        .into_iter()
        .enumerate()
    {
        tenants.push(create_tenant(&pool, sites[i % 2], name, 1_500_000, None).await);
    }
    let app = spawn_app(&db).await;
    let agent = app.token("agent.both").await;
    let accountant = app.token("compta").await;

    // Charges for the last 4 months (due on the 5th), of different amounts per tenant.
    for (i, tenant) in tenants.iter().enumerate() {
        for months_ago in 1..=4u32 {
            let period = month(months_ago);
            let due = 1_000_000 + i64::from(months_ago) * 100_000 + i as i64 * 25_000;
            create_charge(&pool, *tenant, period, period + Days::new(4), due).await;
        }
    }
    assert_read_models_are_the_facts(&pool).await;

    let mut rng = ChaCha8Rng::seed_from_u64(0x0011_2EAD);
    let mut live: Vec<(String, DateTime<Utc>, Uuid)> = Vec::new();
    let mut next_charge_month = 0u32;
    for step in 0..40 {
        let tenant = tenants[rng.random_range(0..tenants.len())];
        match rng.random_range(0..10) {
            0..=2 if !live.is_empty() => {
                let (payment_id, occurred_at, tenant) =
                    live.swap_remove(rng.random_range(0..live.len()));
                let at = (occurred_at.max(ago(60)) + chrono::Duration::seconds(1)).min(Utc::now());
                let request = ReversePaymentRequest {
                    request_id: Uuid::new_v4().to_string(),
                    payment_id,
                    reason: "Chèque sans provision".to_owned(),
                    occurred_at: Some(ts(at)),
                };
                message(app.collections(&accountant).await.reverse_payment(request))
                    .await
                    .unwrap_or_else(|status| panic!("reversal refused: {status:?}"));
                assert_stored_is_the_replay(&pool, tenant).await;
            }
            3 if next_charge_month == 0 => {
                // This month's charges appear (as the monthly job would write them).
                next_charge_month += 1;
                for (i, tenant) in tenants.iter().enumerate() {
                    let period = month(0);
                    create_charge(
                        &pool,
                        *tenant,
                        period,
                        period + Days::new(4),
                        900_000 + i as i64,
                    )
                    .await;
                    // Next month's, due in the future: paid on time if paid in full.
                    let next = period + Months::new(1);
                    create_charge(&pool, *tenant, next, next + Days::new(24), 400_000).await;
                }
            }
            4 => {
                // The tenant moves to the other site, to a new home.
                sqlx::query(
                    "UPDATE tenants SET site_id = CASE WHEN site_id = $2 THEN $3 ELSE $2 END,
                            home_latitude = $4, home_longitude = -13.7
                     WHERE id = $1",
                )
                .bind(tenant)
                .bind(sites[0])
                .bind(sites[1])
                .bind(9.5 + rng.random_range(0.0..0.1))
                .execute(&pool)
                .await
                .expect("move");
            }
            5 => {
                // A charge due in two months appears, then goes (written by mistake).
                let period = month(0)
                    .checked_add_months(Months::new(2))
                    .expect("valid month");
                let id = create_charge(&pool, tenant, period, period + Days::new(4), 700_000).await;
                assert_read_models_are_the_facts(&pool).await;
                sqlx::query("DELETE FROM charges WHERE id = $1")
                    .bind(id)
                    .execute(&pool)
                    .await
                    .expect("delete charge");
            }
            _ => {
                // Often back-dated (an offline payment uploaded late).
                let at = ago(rng.random_range(61..20 * 24 * 60));
                let request = RecordPaymentRequest {
                    request_id: Uuid::new_v4().to_string(),
                    tenant_id: tenant.to_string(),
                    amount_gnf: rng.random_range(1..30) * 50_000,
                    method: PaymentMethod::Cash as i32,
                    occurred_at: Some(ts(at)),
                    ..Default::default()
                };
                let response = message(app.collections(&agent).await.record_payment(request))
                    .await
                    .unwrap_or_else(|status| panic!("step {step}: payment refused: {status:?}"));
                live.push((response.payment.expect("payment").payment_id, at, tenant));
                assert_stored_is_the_replay(&pool, tenant).await;
            }
        }
        assert_read_models_are_the_facts(&pool).await;
    }
    // A tenant moving out keeps its charges; its copy follows.
    sqlx::query("UPDATE tenants SET active = false WHERE id = $1")
        .bind(tenants[0])
        .execute(&pool)
        .await
        .expect("move out");
    assert_read_models_are_the_facts(&pool).await;
    let open_rows = crate::support::count(&pool, "SELECT count(*) FROM tenant_open").await;
    assert_eq!(open_rows, 3, "one row per tenant with charges");

    let reversed = crate::support::count(
        &pool,
        "SELECT count(*) FROM payments WHERE kind = 'reversal'",
    )
    .await;
    let paid = crate::support::count(
        &pool,
        "SELECT count(*) FROM payments WHERE kind = 'payment'",
    )
    .await;
    assert!(
        reversed > 0 && paid > reversed,
        "{paid} payments, {reversed} reversals"
    );
}

#[tokio::test]
async fn read_models_after_the_demo_seed() {
    let db = TestDb::new().await;
    let demo_day = NaiveDate::from_ymd_opt(2026, 11, 16).expect("date");
    akig::seed::seed_demo(&db.pool, demo_day)
        .await
        .expect("seed");
    let with_last_paid = crate::support::count(
        &db.pool,
        "SELECT count(*) FROM charges WHERE last_paid_at IS NOT NULL",
    )
    .await;
    assert!(with_last_paid > 1_000, "{with_last_paid} charges paid");
    assert_read_models_are_the_facts(&db.pool).await;
}

/// The site figures of migration `20261130202000_site_figures.sql` against their recomputation
/// from the raw rows, each query below giving the rows that differ (none expected):
/// - `charges.paid_by_due_gnf` = the charge's allocation rows of entries that occurred by the
///   end of its due date (Africa/Conakry), a reversal's dated by the payment it cancels, and
///   `paid_on_time` = asks something, paid in full, and that sum reaches the amount due (the
///   punctuality rule GetSummary used to compute per read); `last_payment_on` = the day of the
///   latest payment with rows on the charge that no reversal cancels;
/// - `due_days` per (site, due date, shard) = the counts and sums of the charges of the site's
///   tenants, punctuality recomputed from the allocations (not read from the flag);
/// - `tenant_oldest_open` = each tenant's oldest charge with something outstanding, and
///   `arrears_oldest` the number of such tenants per site, day and shard;
/// - `collected_days` = payments minus reversals per site and day;
/// - `paid_months` = allocation rows per site, due date and month of the entry;
/// - `promise_days` = promises per site, status and day of their last status change, and
///   `site_tenants` = active tenants per site.
///
/// Cells of the aggregates without facts must hold zeros.
pub async fn assert_site_figures_are_the_facts(pool: &PgPool) {
    const BY_DUE: &str = "coalesce((SELECT sum(pa.amount_gnf) FROM payment_allocations pa
                 JOIN payments p ON p.id = pa.payment_id
                 LEFT JOIN payments o ON o.id = p.reverses_payment_id
                 WHERE pa.charge_id = c.id
                   AND (coalesce(o.occurred_at, p.occurred_at) AT TIME ZONE 'Africa/Conakry')::date
                       <= c.due_date), 0)";
    let drift = |sql: String| async move {
        let rows: Vec<(String,)> = sqlx::query_as(&sql)
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        rows.into_iter().map(|(r,)| r).collect::<Vec<String>>()
    };
    let charges = drift(format!(
        "SELECT format('charge %s: stored %s/%s, facts %s/%s', c.id, c.paid_by_due_gnf,
                       c.paid_on_time, f.by_due, f.on_time)
         FROM charges c,
              LATERAL (SELECT {BY_DUE} AS by_due) b,
              LATERAL (SELECT b.by_due,
                              c.amount_due_gnf > 0 AND c.amount_paid_gnf = c.amount_due_gnf
                              AND b.by_due >= c.amount_due_gnf AS on_time) f
         WHERE c.paid_by_due_gnf <> f.by_due OR c.paid_on_time <> f.on_time"
    ))
    .await;
    assert_eq!(charges, Vec::<String>::new(), "charges' punctuality");
    let last_payment = drift(
        "SELECT format('charge %s: stored %s, facts %s', c.id, c.last_payment_on, f.last_on)
         FROM charges c,
              LATERAL (SELECT max((p.occurred_at AT TIME ZONE 'Africa/Conakry')::date) AS last_on
                       FROM payment_allocations pa JOIN payments p ON p.id = pa.payment_id
                       WHERE pa.charge_id = c.id AND p.kind = 'payment'
                         AND NOT EXISTS (SELECT 1 FROM payments r
                                         WHERE r.reverses_payment_id = p.id)) f
         WHERE c.last_payment_on IS DISTINCT FROM f.last_on"
            .to_owned(),
    )
    .await;
    assert_eq!(
        last_payment,
        Vec::<String>::new(),
        "charges' last payment day"
    );

    let due_days = drift(format!(
        "WITH facts AS (
             SELECT t.site_id, c.due_date, tenant_shard(c.tenant_id) AS shard,
                    count(*) FILTER (WHERE c.amount_due_gnf > 0) AS charges,
                    sum(c.amount_due_gnf)::bigint AS due_gnf,
                    sum(c.amount_paid_gnf)::bigint AS paid_gnf,
                    count(*) FILTER (WHERE c.amount_due_gnf > 0
                                     AND c.amount_paid_gnf = c.amount_due_gnf
                                     AND {BY_DUE} >= c.amount_due_gnf) AS on_time,
                    count(*) FILTER (WHERE c.amount_paid_gnf < c.amount_due_gnf) AS open_charges
             FROM charges c JOIN tenants t ON t.id = c.tenant_id
             GROUP BY 1, 2, 3)
         SELECT format('%s %s %s: facts %s, stored %s', coalesce(f.site_id, d.site_id),
                       coalesce(f.due_date, d.due_date), coalesce(f.shard, d.shard),
                       (f.charges, f.due_gnf, f.paid_gnf, f.on_time, f.open_charges),
                       (d.charges, d.due_gnf, d.paid_gnf, d.on_time, d.open_charges))
         FROM facts f FULL JOIN due_days d
           ON d.site_id = f.site_id AND d.due_date = f.due_date AND d.shard = f.shard
         WHERE (f.charges, f.due_gnf, f.paid_gnf, f.on_time, f.open_charges)
               IS DISTINCT FROM (d.charges, d.due_gnf, d.paid_gnf, d.on_time, d.open_charges)
           AND NOT (f.site_id IS NULL
                    AND (d.charges, d.due_gnf, d.paid_gnf, d.on_time, d.open_charges)
                        = (0, 0, 0, 0, 0))"
    ))
    .await;
    assert_eq!(due_days, Vec::<String>::new(), "due_days");

    let oldest = drift(
        "WITH facts AS (
             SELECT c.tenant_id, t.site_id, min(c.due_date) AS oldest_due
             FROM charges c JOIN tenants t ON t.id = c.tenant_id
             WHERE c.amount_paid_gnf < c.amount_due_gnf
             GROUP BY 1, 2)
         SELECT format('tenant %s: facts %s, stored %s', coalesce(f.tenant_id, o.tenant_id),
                       (f.site_id, f.oldest_due), (o.site_id, o.oldest_due))
         FROM facts f FULL JOIN tenant_oldest_open o USING (tenant_id)
         WHERE (f.site_id, f.oldest_due) IS DISTINCT FROM (o.site_id, o.oldest_due)
         UNION ALL
         SELECT format('%s %s %s: facts %s, stored %s', coalesce(f.site_id, a.site_id),
                       coalesce(f.due_date, a.due_date), coalesce(f.shard, a.shard),
                       f.tenants, a.tenants)
         FROM (SELECT t.site_id, x.oldest AS due_date, tenant_shard(x.tenant_id) AS shard,
                      count(*) AS tenants
               FROM (SELECT c.tenant_id, min(c.due_date) AS oldest FROM charges c
                     WHERE c.amount_paid_gnf < c.amount_due_gnf GROUP BY 1) x
               JOIN tenants t ON t.id = x.tenant_id
               GROUP BY 1, 2, 3) f
         FULL JOIN arrears_oldest a
           ON a.site_id = f.site_id AND a.due_date = f.due_date AND a.shard = f.shard
         WHERE f.tenants IS DISTINCT FROM a.tenants AND NOT (f.tenants IS NULL AND a.tenants = 0)"
            .to_owned(),
    )
    .await;
    assert_eq!(
        oldest,
        Vec::<String>::new(),
        "tenant_oldest_open, arrears_oldest"
    );

    let collected = drift(
        "WITH facts AS (
             SELECT site_id, (occurred_at AT TIME ZONE 'Africa/Conakry')::date AS day,
                    tenant_shard(tenant_id) AS shard,
                    sum(CASE WHEN kind = 'payment' THEN amount_gnf ELSE -amount_gnf END)::bigint
                        AS collected_gnf
             FROM payments GROUP BY 1, 2, 3)
         SELECT format('%s %s %s: facts %s, stored %s', coalesce(f.site_id, d.site_id),
                       coalesce(f.day, d.day), coalesce(f.shard, d.shard), f.collected_gnf,
                       d.collected_gnf)
         FROM facts f FULL JOIN collected_days d
           ON d.site_id = f.site_id AND d.day = f.day AND d.shard = f.shard
         WHERE f.collected_gnf IS DISTINCT FROM d.collected_gnf
           AND NOT (f.collected_gnf IS NULL AND d.collected_gnf = 0)"
            .to_owned(),
    )
    .await;
    assert_eq!(collected, Vec::<String>::new(), "collected_days");

    let paid = drift(
        "WITH facts AS (
             SELECT t.site_id, c.due_date,
                    date_trunc('month', p.occurred_at AT TIME ZONE 'Africa/Conakry')::date AS month,
                    tenant_shard(c.tenant_id) AS shard, sum(pa.amount_gnf)::bigint AS paid_gnf
             FROM payment_allocations pa
             JOIN payments p ON p.id = pa.payment_id
             JOIN charges c ON c.id = pa.charge_id
             JOIN tenants t ON t.id = c.tenant_id
             GROUP BY 1, 2, 3, 4)
         SELECT format('%s %s %s %s: facts %s, stored %s', coalesce(f.site_id, m.site_id),
                       coalesce(f.due_date, m.due_date), coalesce(f.month, m.month),
                       coalesce(f.shard, m.shard), f.paid_gnf, m.paid_gnf)
         FROM facts f FULL JOIN paid_months m
           ON m.site_id = f.site_id AND m.due_date = f.due_date AND m.month = f.month
          AND m.shard = f.shard
         WHERE f.paid_gnf IS DISTINCT FROM m.paid_gnf
           AND NOT (f.paid_gnf IS NULL AND m.paid_gnf = 0)
           AND NOT (m.paid_gnf IS NULL AND f.paid_gnf = 0)"
            .to_owned(),
    )
    .await;
    assert_eq!(paid, Vec::<String>::new(), "paid_months");

    let promises = drift(
        "WITH facts AS (
             SELECT t.site_id, pr.status,
                    coalesce((pr.status_changed_at AT TIME ZONE 'Africa/Conakry')::date,
                             date '1970-01-01') AS changed_on,
                    tenant_shard(pr.tenant_id) AS shard, count(*) AS promises,
                    sum(pr.amount_gnf)::bigint AS amount_gnf
             FROM promises pr JOIN tenants t ON t.id = pr.tenant_id
             GROUP BY 1, 2, 3, 4)
         SELECT format('%s %s %s %s: facts %s, stored %s', coalesce(f.site_id, d.site_id),
                       coalesce(f.status, d.status), coalesce(f.changed_on, d.changed_on),
                       coalesce(f.shard, d.shard), (f.promises, f.amount_gnf),
                       (d.promises, d.amount_gnf))
         FROM facts f FULL JOIN promise_days d
           ON d.site_id = f.site_id AND d.status = f.status AND d.changed_on = f.changed_on
          AND d.shard = f.shard
         WHERE (f.promises, f.amount_gnf) IS DISTINCT FROM (d.promises, d.amount_gnf)
           AND NOT (f.site_id IS NULL AND (d.promises, d.amount_gnf) = (0, 0))
         UNION ALL
         SELECT format('site %s: facts %s, stored %s', coalesce(f.site_id, s.site_id), f.n,
                       s.active)
         FROM (SELECT site_id, count(*) AS n FROM tenants WHERE active GROUP BY 1) f
         FULL JOIN site_tenants s USING (site_id)
         WHERE f.n IS DISTINCT FROM s.active AND NOT (f.n IS NULL AND s.active = 0)"
            .to_owned(),
    )
    .await;
    assert_eq!(promises, Vec::<String>::new(), "promise_days, site_tenants");
}
