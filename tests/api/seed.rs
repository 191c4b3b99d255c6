use chrono::NaiveDate;
use sqlx::PgConnection;

use crate::support::TestDb;

const TODAY: NaiveDate = NaiveDate::from_ymd_opt(2026, 11, 26).expect("valid date");

/// Every user table, in a stable order.
async fn tables(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables
         WHERE schemaname = 'public' AND tablename NOT LIKE '\\_sqlx%' ORDER BY tablename",
    )
    .fetch_all(conn)
    .await
    .expect("list tables")
}

/// One digest per table over all rows, without the columns a database fills with `now()`.
async fn fingerprint(conn: &mut PgConnection) -> Vec<(String, i64, String)> {
    let mut digests = Vec::new();
    for table in tables(conn).await {
        let (rows, digest): (i64, Option<String>) = sqlx::query_as(&format!(
            "SELECT count(*), md5(string_agg(r::text, '|' ORDER BY r::text)) FROM (
               SELECT to_jsonb(t) - 'created_at' - 'updated_at' - 'received_at' AS r
               FROM {table} t) s"
        ))
        .fetch_one(&mut *conn)
        .await
        .expect("digest");
        digests.push((table, rows, digest.unwrap_or_default()));
    }
    digests
}

#[tokio::test]
async fn demo_seed_is_idempotent_and_deterministic() {
    let db = TestDb::new().await;
    let report = akig::seed::seed_demo(&db.pool, TODAY).await.expect("seed");
    assert!((10..=15).contains(&report.sites), "{} sites", report.sites);
    assert!(
        (1_800..=2_200).contains(&report.tenants),
        "{} tenants",
        report.tenants
    );
    assert!(report.users >= 20);

    let mut conn = db.pool.acquire().await.expect("conn");
    let first = fingerprint(&mut conn).await;
    akig::seed::seed_demo(&db.pool, TODAY)
        .await
        .expect("second seed");
    assert_eq!(
        first,
        fingerprint(&mut conn).await,
        "a second run changed data"
    );

    // The same seed into another fresh database gives the same rows.
    let twin = TestDb::empty().await;
    akig::db::MIGRATOR
        .run(&twin.pool)
        .await
        .expect("migrate twin");
    akig::seed::seed_demo(&twin.pool, TODAY)
        .await
        .expect("seed twin");
    let mut twin_conn = twin.pool.acquire().await.expect("conn");
    let twin_fingerprint = fingerprint(&mut twin_conn).await;
    drop(twin_conn);
    assert_eq!(first, twin_fingerprint, "two fresh databases differ");
}

#[tokio::test]
async fn demo_seed_money_is_consistent() {
    let db = TestDb::new().await;
    akig::seed::seed_demo(&db.pool, TODAY).await.expect("seed");
    // charges.amount_paid equals the sum of its allocations, and never exceeds the amount due.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM charges c
         LEFT JOIN (SELECT charge_id, sum(amount_gnf) AS s FROM payment_allocations GROUP BY 1) a
           ON a.charge_id = c.id
         WHERE c.amount_paid_gnf <> coalesce(a.s, 0) OR c.amount_paid_gnf > c.amount_due_gnf",
    )
    .fetch_one(&db.pool)
    .await
    .expect("query");
    assert_eq!(mismatched, 0);
    // The demo has good payers, late payers and chronic arrears.
    let in_arrears: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT tenant_id) FROM charges
         WHERE amount_paid_gnf < amount_due_gnf AND due_date < $1 - 90",
    )
    .bind(TODAY)
    .fetch_one(&db.pool)
    .await
    .expect("query");
    let fully_paid: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT tenant_id FROM charges WHERE due_date < $1
           GROUP BY tenant_id HAVING bool_and(amount_paid_gnf = amount_due_gnf)) t",
    )
    .bind(TODAY)
    .fetch_one(&db.pool)
    .await
    .expect("query");
    assert!(
        in_arrears > 100,
        "{in_arrears} tenants over 90 days in arrears"
    );
    assert!(fully_paid > 500, "{fully_paid} tenants fully paid");
    // The seed gathered statistics on what it loaded (no plan waits for autovacuum).
    let analyzed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_user_tables
         WHERE relname IN ('tenants', 'charges', 'payments', 'payment_allocations',
                           'interactions', 'promises', 'missions')
           AND last_analyze IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .expect("query");
    assert_eq!(analyzed, 7, "tables without statistics after the seed");
}

#[tokio::test]
async fn seeded_ledgers_are_the_ones_a_replay_gives() {
    let db = TestDb::new().await;
    akig::seed::seed_demo(&db.pool, TODAY).await.expect("seed");
    // Tenants with a reversal (their later payments move to the reopened months), and a few
    // without.
    let tenants: Vec<uuid::Uuid> = sqlx::query_scalar(
        "(SELECT DISTINCT tenant_id FROM payments WHERE kind = 'reversal')
         UNION ALL
         (SELECT id FROM tenants ORDER BY id LIMIT 20)",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tenants");
    assert!(tenants.len() > 25, "{} tenants", tenants.len());
    for tenant in tenants {
        crate::ledger::assert_stored_is_the_replay(&db.pool, tenant).await;
    }
}

#[tokio::test]
async fn demo_visits_are_judged_as_the_server_judges_recorded_ones() {
    let db = TestDb::new().await;
    use akig::domain::presence::{Accuracy, LatLng, MaxDistance, check_visit, fix_time_problem};

    akig::seed::seed_demo(&db.pool, TODAY).await.expect("seed");
    type Row = (
        Option<f64>,
        Option<f64>,
        Option<f64>,
        bool,
        bool,
        Option<f64>,
        Option<f64>,
        Option<chrono::DateTime<chrono::Utc>>,
        chrono::DateTime<chrono::Utc>,
    );
    let visits: Vec<Row> = sqlx::query_as(
        "SELECT i.latitude, i.longitude, i.accuracy_m, i.is_mock_location, i.is_far_from_tenant,
                t.home_latitude, t.home_longitude, i.fix_time, i.occurred_at
         FROM interactions i JOIN tenants t ON t.id = i.tenant_id
         WHERE i.kind = 'visit'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("visits");
    let position = |lat: Option<f64>, lng: Option<f64>| {
        lat.zip(lng)
            .map(|(lat, lng)| LatLng::parse(lat, lng).expect("valid position"))
    };
    let (mut far, mut mocked) = (0, 0);
    for (lat, lng, accuracy, is_mock, stored_far, home_lat, home_lng, fix_time, occurred_at) in
        visits
    {
        // Every seeded fix carries a time that lets it prove the visit.
        assert_eq!(
            (lat.is_some(), fix_time.is_some()),
            (lat.is_some(), lat.is_some()),
            "{lat:?} {fix_time:?}"
        );
        if lat.is_some() {
            assert_eq!(fix_time_problem(fix_time, occurred_at), None);
        }
        let accuracy = Accuracy::parse(accuracy.unwrap_or(0.0)).expect("valid accuracy");
        let verdict = check_visit(
            position(lat, lng),
            accuracy,
            is_mock,
            position(home_lat, home_lng),
            MaxDistance::default(),
        );
        assert_eq!(
            stored_far, verdict.far_away,
            "{lat:?} {lng:?} mock={is_mock}"
        );
        far += usize::from(stored_far);
        mocked += usize::from(is_mock);
    }
    assert!(mocked > 0 && far > mocked, "{far} far, {mocked} mocked");
}

#[tokio::test]
async fn demo_promises_are_settled_by_the_money_rule() {
    let db = TestDb::new().await;
    akig::seed::seed_demo(&db.pool, TODAY).await.expect("seed");
    // Each stored status is what the ledger says (`promise_derived_status` as of the seed's
    // day, from pending); cancelled ones were cancelled by hand.
    let by_status: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT pr.status,
                promise_derived_status('pending', pr.amount_gnf, pr.promised_date,
                                       pp.paid_by_date_gnf, $1),
                count(*)
         FROM promises pr CROSS JOIN LATERAL promise_payments(pr.id) pp
         WHERE pr.status <> 'cancelled'
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(TODAY)
    .fetch_all(&db.pool)
    .await
    .expect("statuses");
    for (stored, derived, count) in &by_status {
        assert_eq!(stored, derived, "{count} promises");
    }
    // Agents obtain kept promises as well as broken ones.
    let count = |status: &str| {
        by_status
            .iter()
            .filter(|(stored, ..)| stored == status)
            .map(|(.., n)| n)
            .sum::<i64>()
    };
    assert!(count("kept") * 3 > count("broken"), "{by_status:?}");
    assert!(
        count("partially_kept") > 0 && count("pending") > 0,
        "{by_status:?}"
    );
}
