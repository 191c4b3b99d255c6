//! The metrics port: every series `akig::metrics` names is exported, streams are counted while
//! open, and the business gauges equal the figures of the rows they are computed from.

use std::net::SocketAddr;
use std::time::Duration;

use akig::proto::v1::{PaymentMethod, RecordPaymentRequest};
use chrono::{Datelike, Days, NaiveDate, Utc};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::support::{
    KALOUM, TestDb, create_charge, create_site, create_tenant, create_user, message, spawn_app,
    today, ts,
};

/// The first of the month of `day`.
fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("first of the month")
}

/// The value of the sample of `name` whose labels include each of `labels` (`key="value"`).
fn sample(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

async fn scrape(addr: SocketAddr) -> String {
    crate::grpc_web::http1_get(addr, "/metrics").await
}

/// Scrapes until `ready` holds of the body (the jobs run at start, on their own tasks).
async fn scrape_until(addr: SocketAddr, ready: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let body = scrape(addr).await;
        if ready(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready in:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_metrics_port_exports_every_named_series() {
    let db = TestDb::new().await;
    // A sensitive site of its own code: the gauges of other tests' servers, which share this
    // process's recorder, never carry its label.
    let site = create_site(&db.pool, "MTQ").await;
    sqlx::query("UPDATE sites SET is_sensitive = true WHERE id = $1")
        .bind(site)
        .execute(&db.pool)
        .await
        .expect("sensitive");
    create_user(&db.pool, "agent.mesures", "agent", &[site], None).await;
    // A tenant owing two charges, one due 100 days ago and one 20 days ago; another whose
    // charge, due 20 days ago, was paid in full two days before its due date.
    let owing = create_tenant(&db.pool, site, "Fatoumata Camara", 1_000_000, Some(KALOUM)).await;
    let punctual = create_tenant(&db.pool, site, "Alpha Condé", 800_000, Some(KALOUM)).await;
    for (tenant, due_days_ago, amount) in [
        (owing, 100, 1_000_000),
        (owing, 20, 1_000_000),
        (punctual, 20, 800_000),
    ] {
        let due = today() - Days::new(due_days_ago);
        create_charge(&db.pool, tenant, month_of(due), due, amount).await;
    }

    let app = spawn_app(&db).await;
    let metrics = app.metrics_addr.expect("metrics enabled");
    let token = app.token("agent.mesures").await;
    // Paid in full two days before its due date, uploaded today.
    message(
        app.collections(&token)
            .await
            .record_payment(RecordPaymentRequest {
                request_id: Uuid::new_v4().to_string(),
                tenant_id: punctual.to_string(),
                amount_gnf: 800_000,
                method: PaymentMethod::Cash as i32,
                occurred_at: Some(ts(Utc::now() - chrono::Duration::days(22))),
                ..Default::default()
            }),
    )
    .await
    .expect("back-dated payment recorded");
    // Paid today: allocated to the oldest charge (600,000 left on it).
    message(
        app.collections(&token)
            .await
            .record_payment(RecordPaymentRequest {
                request_id: Uuid::new_v4().to_string(),
                tenant_id: owing.to_string(),
                amount_gnf: 400_000,
                method: PaymentMethod::Cash as i32,
                occurred_at: Some(ts(Utc::now() - chrono::Duration::minutes(1))),
                ..Default::default()
            }),
    )
    .await
    .expect("payment recorded");
    // The scheduled run happened at start, before the payment; this is the job's own run.
    akig::jobs::gauges::refresh_business(&db.pool)
        .await
        .expect("business gauges");
    // A stream held open while the endpoint is read.
    let mut health = HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    watch
        .message()
        .await
        .expect("first status")
        .expect("status");

    let body = scrape_until(metrics, |body| {
        ["business_gauges", "pool_sampler"].iter().all(|job| {
            sample(
                body,
                akig::metrics::JOB_LAST_SUCCESS,
                &[&format!("job=\"{job}\"")],
            )
            .is_some()
        })
    })
    .await;
    for name in akig::metrics::ALL {
        let exported = if akig::metrics::HISTOGRAMS.contains(&name) {
            format!("{name}_bucket")
        } else {
            name.to_owned()
        };
        assert!(
            sample(&body, &exported, &[]).is_some(),
            "{exported} is not exported:\n{body}"
        );
        assert!(
            body.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
    }
    let open = sample(&body, akig::metrics::STREAMS_OPEN, &["kind=\"Watch\""]);
    assert!(open.is_some_and(|n| n >= 1.0), "the open Watch: {open:?}");

    let site_label = "site=\"MTQ\"";
    let gauge = |name: &str| sample(&body, name, &[site_label]);
    assert_eq!(gauge(akig::metrics::ARREARS_TENANTS), Some(1.0));
    assert_eq!(gauge(akig::metrics::ARREARS_GNF), Some(1_600_000.0));
    assert_eq!(gauge(akig::metrics::ARREARS_OVER_60_DAYS), Some(1.0));
    assert_eq!(gauge(akig::metrics::SITE_SENSITIVE), Some(1.0));
    assert_eq!(gauge(akig::metrics::COLLECTED_TODAY_GNF), Some(400_000.0));
    let punctuality = gauge(akig::metrics::PUNCTUALITY_RATIO).expect("punctuality");
    assert!((punctuality - 1.0 / 3.0).abs() < 1e-12, "{punctuality}");
    let score: i64 = sqlx::query_scalar(
        "SELECT d.score::bigint FROM agent_daily_scores d JOIN users u ON u.id = d.agent_id
         WHERE u.username = 'agent.mesures' AND d.day = $1",
    )
    .bind(today())
    .fetch_one(&db.pool)
    .await
    .expect("the payment scored");
    assert!(score > 0);
    assert_eq!(
        sample(
            &body,
            akig::metrics::AGENT_SCORE_TODAY,
            &["agent=\"agent.mesures\""]
        ),
        Some(score as f64)
    );
    for state in ["in_use", "idle"] {
        let label = format!("state=\"{state}\"");
        assert!(sample(&body, akig::metrics::DB_POOL_CONNECTIONS, &[&label]).is_some());
    }

    drop(watch);
    let closed = scrape_until(metrics, |body| {
        sample(body, akig::metrics::STREAMS_OPEN, &["kind=\"Watch\""])
            .is_some_and(|n| n < open.unwrap_or(1.0))
    })
    .await;
    assert!(closed.contains(akig::metrics::STREAMS_OPEN));
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}
