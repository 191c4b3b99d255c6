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

/// `akig serve` on `db`, on free ports, without Redis.
fn serve_command(db: &TestDb, args: &[&str]) -> std::process::Command {
    let options = db.connect_options();
    let url = format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().expect("a database")
    );
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_akig"));
    command
        .arg("serve")
        .args(args)
        .env("DATABASE_URL", url)
        .env("AKIG_LISTEN", "127.0.0.1:0")
        .env("AKIG_METRICS_LISTEN", "127.0.0.1:0")
        .env_remove("REDIS_URL")
        .env_remove("AKIG_MIGRATE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    command
}

#[tokio::test]
async fn serve_refuses_an_unmigrated_database_and_migrates_it_when_asked() {
    let db = TestDb::empty().await;
    let mut refused = serve_command(&db, &[]);
    let output = tokio::task::spawn_blocking(move || refused.output())
        .await
        .expect("joined")
        .expect("akig runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started on an empty database");
    assert!(stderr.contains("akig migrate"), "{stderr}");
    assert!(stderr.contains("AKIG_MIGRATE"), "{stderr}");
    assert_eq!(
        akig::db::schema_state(&db.pool).await.expect("state"),
        akig::db::SchemaState::Behind {
            pending: akig::db::MIGRATOR.iter().count(),
            first_pending: akig::db::MIGRATOR.iter().next().expect("one").version,
        }
    );

    let mut server = serve_command(&db, &["--migrate"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("akig starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let state = loop {
        let state = akig::db::schema_state(&db.pool).await.expect("state");
        if state == akig::db::SchemaState::Current || std::time::Instant::now() > deadline {
            break state;
        }
        assert!(
            server.try_wait().expect("status").is_none(),
            "the server stopped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let running = server.try_wait().expect("status").is_none();
    server.kill().expect("stop the server");
    server.wait().expect("reaped");
    assert_eq!(state, akig::db::SchemaState::Current);
    assert!(running, "the server runs on the migrated database");
}
