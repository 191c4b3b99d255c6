//! GetAgentPerformance through a real gRPC client: a day of work recorded through the API
//! (visits near and far, calls with promises, payments, a reversal) and missions, read back
//! with exact figures; the rates; scope and bad input.

use akig::proto::v1::{
    AgentPerformance, CallDetails, DateRange, GetAgentPerformanceRequest, InteractionOutcome,
    LatLng, NewPromise, PaymentMethod, RecordCallRequest, RecordPaymentRequest, RecordVisitRequest,
    ReversePaymentRequest, VisitDetails,
};
use chrono::Duration;
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    KALOUM, TestApp, TestDb, authed, bad_fields, create_charges, create_site, create_tenant,
    create_user, date, insert_mission, spawn_app, today, today_minutes_ago, ts,
};

fn today_only() -> Option<DateRange> {
    Some(DateRange {
        start_date: Some(date(today())),
        end_date: Some(date(today())),
    })
}

async fn performance(
    app: &TestApp,
    token: &str,
    agent_id: &str,
    period: Option<DateRange>,
) -> Result<AgentPerformance, tonic::Status> {
    app.missions_client()
        .await
        .get_agent_performance(authed(
            GetAgentPerformanceRequest {
                agent_id: agent_id.to_owned(),
                period,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().performance.expect("performance"))
}

#[tokio::test]
async fn an_agents_day_reads_back_with_exact_figures_and_rates() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    let mat = create_site(pool, "MAT").await;
    let sup = create_user(pool, "sup", "supervisor", &[kal], None).await;
    let a1 = create_user(pool, "a1", "agent", &[kal], Some(sup)).await;
    create_user(pool, "a2", "agent", &[kal], Some(sup)).await;
    create_user(pool, "manager.mat", "site_manager", &[mat], None).await;
    let start = today() - Duration::days(90);
    let t0 = create_tenant(pool, kal, "Mariama Diallo", 200_000, Some(KALOUM)).await;
    let t1 = create_tenant(pool, kal, "Ibrahima Camara", 200_000, Some(KALOUM)).await;
    for tenant in [t0, t1] {
        create_charges(pool, tenant, start, 3, 200_000).await;
    }
    // Today's missions of a1: one done, one failed; a cancelled one does not count.
    let done = insert_mission(pool, a1, t0, kal).await;
    let failed = insert_mission(pool, a1, t1, kal).await;
    sqlx::query("UPDATE missions SET status = 'done' WHERE id = $1")
        .bind(done)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE missions SET status = 'failed', failure_reason = 'tenant_absent' WHERE id = $1",
    )
    .bind(failed)
    .execute(pool)
    .await
    .unwrap();
    let app = spawn_app(&db).await;
    let (a1_token, a2_token, sup_token) = (
        app.token("a1").await,
        app.token("a2").await,
        app.token("sup").await,
    );
    let at = today_minutes_ago;
    let mut collections = app.collections(&a1_token).await;
    let visit = |tenant: Uuid, outcome: InteractionOutcome, latitude: f64, minutes: i64| {
        RecordVisitRequest {
            request_id: Uuid::new_v4().to_string(),
            tenant_id: tenant.to_string(),
            occurred_at: Some(ts(at(minutes))),
            outcome: outcome as i32,
            notes: "visite".into(),
            visit: Some(VisitDetails {
                location: Some(LatLng {
                    latitude,
                    longitude: KALOUM.1,
                }),
                accuracy_m: 10.0,
                fix_time: Some(ts(at(minutes) - Duration::seconds(30))),
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    let call = |tenant: Uuid, promised: i64, due_in_days: i64, minutes: i64| RecordCallRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        occurred_at: Some(ts(at(minutes))),
        outcome: InteractionOutcome::PromiseMade as i32,
        call: Some(CallDetails {
            phone: "+224620000000".into(),
            duration: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
        }),
        promise: Some(NewPromise {
            amount_gnf: promised,
            promised_date: Some(date(today() + Duration::days(due_in_days))),
        }),
        ..Default::default()
    };
    let payment = |tenant: Uuid, amount: i64, minutes: i64| RecordPaymentRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        amount_gnf: amount,
        method: PaymentMethod::Cash as i32,
        occurred_at: Some(ts(at(minutes))),
        ..Default::default()
    };
    // t0: a visit at the door (+1), a promise of 100,000 due today (+2), kept by a payment of
    // 150,000 (+3).
    collections
        .record_visit(visit(t0, InteractionOutcome::Absent, KALOUM.0, 60))
        .await
        .expect("visit t0");
    collections
        .record_call(call(t0, 100_000, 0, 55))
        .await
        .expect("call t0");
    collections
        .record_payment(payment(t0, 150_000, 50))
        .await
        .expect("payment t0");
    // t1: a refusal about 1.1 km away (+1 -1, far), a promise of 80,000 due in five days (+2),
    // a payment of 50,000 (+3) reversed by the supervisor (-3).
    collections
        .record_visit(visit(t1, InteractionOutcome::Refused, KALOUM.0 + 0.01, 40))
        .await
        .expect("visit t1");
    collections
        .record_call(call(t1, 80_000, 5, 35))
        .await
        .expect("call t1");
    let reversed = collections
        .record_payment(payment(t1, 50_000, 30))
        .await
        .expect("payment t1")
        .into_inner()
        .payment
        .expect("payment")
        .payment_id;
    app.collections(&sup_token)
        .await
        .reverse_payment(ReversePaymentRequest {
            request_id: Uuid::new_v4().to_string(),
            payment_id: reversed,
            reason: "Billet faux".into(),
            occurred_at: Some(ts(at(10))),
        })
        .await
        .expect("reversal");
    // Another agent's work is not a1's.
    app.collections(&a2_token)
        .await
        .record_visit(visit(t0, InteractionOutcome::Absent, KALOUM.0, 20))
        .await
        .expect("visit by a2");

    // The arrears of t0 and t1 at the end of yesterday: every charge due by then, nothing was
    // paid before today.
    let assigned: i64 = sqlx::query_scalar(
        "SELECT sum(amount_due_gnf)::bigint FROM charges
         WHERE tenant_id = ANY($1) AND due_date < $2",
    )
    .bind([t0, t1].as_slice())
    .bind(today())
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(assigned >= 400_000, "{assigned}");

    let own = performance(&app, &a1_token, "", today_only())
        .await
        .expect("own performance");
    assert_eq!(own.agent.as_ref().unwrap().user_id, a1.to_string());
    let activity = own.activity.expect("activity");
    assert_eq!(
        (
            activity.call_count,
            activity.visit_count,
            activity.far_away_visit_count,
            activity.refusal_count,
            activity.promise_count,
            activity.promised_gnf,
        ),
        (2, 2, 1, 1, 2, 180_000)
    );
    assert_eq!(
        (
            activity.payment_count,
            activity.collected_gnf,
            activity.reversal_count,
            activity.score_points,
        ),
        (2, 150_000, 1, 8)
    );
    let missions = own.missions.expect("missions");
    assert_eq!(
        (
            missions.planned_count,
            missions.done_count,
            missions.failed_count
        ),
        (2, 1, 1)
    );
    assert_eq!(
        (
            own.promise_kept_count,
            own.promise_partially_kept_count,
            own.promise_broken_count
        ),
        (1, 0, 0)
    );
    assert_eq!(own.promise_kept_rate, 1.0);
    assert_eq!(own.mission_completion_rate, 0.5);
    assert_eq!(own.assigned_arrears_gnf, assigned);
    assert_eq!(own.collection_rate, 150_000.0 / assigned as f64);

    // The supervisor reads the same figures for a1; a period before today has none of them.
    let by_supervisor = performance(&app, &sup_token, &a1.to_string(), today_only())
        .await
        .expect("supervisor");
    assert_eq!(by_supervisor, own);
    let yesterday = today() - Duration::days(1);
    let before = performance(
        &app,
        &sup_token,
        &a1.to_string(),
        Some(DateRange {
            start_date: Some(date(yesterday)),
            end_date: Some(date(yesterday)),
        }),
    )
    .await
    .expect("yesterday");
    let idle = before.activity.expect("activity");
    assert_eq!(
        (idle.visit_count, idle.score_points, idle.collected_gnf),
        (0, 0, 0)
    );
    assert_eq!(before.assigned_arrears_gnf, 0, "no mission yesterday");
}

#[tokio::test]
async fn performance_is_limited_to_the_callers_scope_and_checks_its_input() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    let mat = create_site(pool, "MAT").await;
    let sup = create_user(pool, "sup", "supervisor", &[kal], None).await;
    create_user(pool, "a1", "agent", &[kal], Some(sup)).await;
    let a2 = create_user(pool, "a2", "agent", &[kal], Some(sup)).await;
    create_user(pool, "manager.mat", "site_manager", &[mat], None).await;
    create_user(pool, "manager.kal", "site_manager", &[kal], None).await;
    let app = spawn_app(&db).await;
    let a1_token = app.token("a1").await;
    let code = |r: Result<AgentPerformance, tonic::Status>| r.map(|_| ()).map_err(|s| s.code());

    assert_eq!(
        code(performance(&app, &a1_token, &a2.to_string(), None).await),
        Err(Code::PermissionDenied),
        "an agent reads only their own"
    );
    let mat_manager = app.token("manager.mat").await;
    assert_eq!(
        code(performance(&app, &mat_manager, &a2.to_string(), None).await),
        Err(Code::PermissionDenied),
        "another site's manager"
    );
    let kal_manager = app.token("manager.kal").await;
    let read = performance(&app, &kal_manager, &a2.to_string(), None)
        .await
        .expect("the site's manager");
    let period = read.period.expect("period");
    assert_eq!(period.end_date, Some(date(today())), "default: up to today");
    assert_eq!(
        period.start_date.map(|d| d.day),
        Some(1),
        "default: from the first of the month"
    );
    assert_eq!(
        code(performance(&app, &kal_manager, &Uuid::new_v4().to_string(), None).await),
        Err(Code::NotFound)
    );
    let bad = performance(&app, &kal_manager, "not-an-id", None)
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&bad), ["agent_id"]);
    let long = performance(
        &app,
        &kal_manager,
        &a2.to_string(),
        Some(DateRange {
            start_date: Some(date(today() - Duration::days(400))),
            end_date: Some(date(today())),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&long), ["period"]);
    let future = performance(
        &app,
        &kal_manager,
        &a2.to_string(),
        Some(DateRange {
            start_date: Some(date(today())),
            end_date: Some(date(today() + Duration::days(1))),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(future.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&future), ["period.end_date"]);
}
