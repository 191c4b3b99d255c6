use crate::support::TestDb;

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_twice_is_a_no_op() {
    let db = TestDb::empty().await;
    akig::db::MIGRATOR
        .run(&db.pool)
        .await
        .expect("migrations apply");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(applied as usize, akig::db::MIGRATOR.iter().count());

    akig::db::MIGRATOR
        .run(&db.pool)
        .await
        .expect("second run is a no-op");

    for table in [
        "sites",
        "tenants",
        "charges",
        "payments",
        "payment_allocations",
        "interactions",
        "promises",
        "users",
        "roles",
        "permissions",
        "role_permissions",
        "refresh_tokens",
        "missions",
        "agent_positions",
        "agent_daily_scores",
        "audit_log",
        "idempotency_keys",
    ] {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("public.{table}"))
            .fetch_one(&db.pool)
            .await
            .expect("lookup");
        assert!(exists, "table {table} missing");
    }
}

#[tokio::test]
async fn constraints_refuse_insane_data() {
    let db = TestDb::new().await;
    let site: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO sites (code, name, commune, address, latitude, longitude, kind)
         VALUES ('TST', 'Test', 'Kaloum', 'Rue KA-001', 9.51, -13.71, 'residential') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .expect("a sane site inserts");

    let bad_latitude = sqlx::query(
        "INSERT INTO sites (code, name, commune, address, latitude, longitude, kind)
         VALUES ('BAD', 'Bad', 'Kaloum', 'x', 91, -13.71, 'residential')",
    )
    .execute(&db.pool)
    .await;
    assert!(bad_latitude.is_err(), "latitude 91 accepted");

    let negative_rent = sqlx::query(
        "INSERT INTO tenants (site_id, unit, full_name, phone, monthly_rent_gnf)
         VALUES ($1, 'A-1', 'Mamadou Diallo', '+224621000000', -5)",
    )
    .bind(site)
    .execute(&db.pool)
    .await;
    assert!(negative_rent.is_err(), "negative rent accepted");

    sqlx::query("INSERT INTO audit_log (action, outcome) VALUES ('test.action', 'ok')")
        .execute(&db.pool)
        .await
        .expect("audit insert");
    let update = sqlx::query("UPDATE audit_log SET action = 'tampered'")
        .execute(&db.pool)
        .await;
    assert!(update.is_err(), "audit rows can be updated");
    let delete = sqlx::query("DELETE FROM audit_log").execute(&db.pool).await;
    assert!(delete.is_err(), "audit rows can be deleted");
}
