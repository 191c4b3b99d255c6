//! GetDailyRanking, GetMonthlyRanking and GetPerformanceHistory through a real gRPC client:
//! RANK() ties and their order, medals, the caller's own entry, scope, idle days as zeros.

use akig::proto::v1::{
    GetDailyRankingRequest, GetMonthlyRankingRequest, GetPerformanceHistoryRequest, Medal,
    RankingEntry,
};
use chrono::{Datelike, Duration, NaiveDate};
use sqlx::PgPool;
use tonic::Code;
use uuid::Uuid;

use crate::support::{TestDb, authed, create_site, create_user, message, spawn_app, today};

async fn daily_row(pool: &PgPool, agent: Uuid, day: NaiveDate, score: i32, collected: i64) {
    sqlx::query(
        "INSERT INTO agent_daily_scores (agent_id, day, score, visits, payments_count, payments_gnf)
         VALUES ($1, $2, $3, 1, 1, $4)",
    )
    .bind(agent)
    .bind(day)
    .bind(score)
    .bind(collected)
    .execute(pool)
    .await
    .expect("daily row");
}

fn ranks(entries: &[RankingEntry]) -> Vec<(String, i32, i32)> {
    entries
        .iter()
        .map(|e| (e.agent.as_ref().unwrap().full_name.clone(), e.rank, e.medal))
        .collect()
}

#[tokio::test]
async fn rankings_tie_with_rank_semantics_and_show_the_callers_entry() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    let mat = create_site(pool, "MAT").await;
    let sup = create_user(pool, "sup", "supervisor", &[kal], None).await;
    create_user(pool, "sup2", "supervisor", &[mat], None).await;
    let scores = [10, 10, 8, 7, 6, 5, 5, 4, 3, 2, 1, 0];
    let mut agents = Vec::new();
    for (i, score) in scores.iter().enumerate() {
        let agent = create_user(pool, &format!("ag{:02}", i + 1), "agent", &[kal], Some(sup)).await;
        // ag02 collected more than ag01: listed first inside their tie.
        let collected = if i == 1 { 500 } else { 100 };
        daily_row(pool, agent, today(), *score, collected).await;
        agents.push(agent);
    }
    let other = create_user(pool, "other", "agent", &[mat], None).await;
    daily_row(pool, other, today(), 50, 0).await;
    // Last month's points do not count this month.
    let last_month = today().with_day(1).unwrap() - Duration::days(1);
    daily_row(pool, agents[11], last_month, 100, 0).await;
    let app = spawn_app(&db).await;
    let client = || async { app.missions_client().await };

    let ag12 = app.token("ag12").await;
    let daily = message(
        client()
            .await
            .get_daily_ranking(authed(GetDailyRankingRequest::default(), &ag12)),
    )
    .await
    .expect("daily");
    let (gold, silver, bronze, none) = (
        Medal::Gold as i32,
        Medal::Silver as i32,
        Medal::Bronze as i32,
        Medal::None as i32,
    );
    assert_eq!(
        ranks(&daily.entries),
        [
            ("Test ag02".to_owned(), 1, gold),
            ("Test ag01".to_owned(), 1, gold),
            ("Test ag03".to_owned(), 3, bronze),
            ("Test ag04".to_owned(), 4, none),
            ("Test ag05".to_owned(), 5, none),
            ("Test ag06".to_owned(), 6, none),
            ("Test ag07".to_owned(), 6, none),
            ("Test ag08".to_owned(), 8, none),
            ("Test ag09".to_owned(), 9, none),
            ("Test ag10".to_owned(), 10, none),
        ]
    );
    assert!(!ranks(&daily.entries).iter().any(|(_, _, m)| *m == silver));
    // The agent sees the agents of their own site only (not MAT's "other").
    assert_eq!(daily.ranked_agent_count, 12);
    let own = daily.caller_entry.expect("own entry");
    assert_eq!((own.rank, own.score_points), (12, 0));

    // Top 6 keeps the tie at rank 6.
    let top6 = message(client().await.get_daily_ranking(authed(
        GetDailyRankingRequest {
            top_count: 6,
            ..Default::default()
        },
        &ag12,
    )))
    .await
    .expect("top 6");
    assert_eq!(top6.entries.len(), 7);

    let monthly = message(
        client()
            .await
            .get_monthly_ranking(authed(GetMonthlyRankingRequest::default(), &ag12)),
    )
    .await
    .expect("monthly");
    assert_eq!(monthly.caller_entry.unwrap().score_points, 0);
    assert_eq!(monthly.entries[0].score_points, 10);

    // The other team's supervisor ranks no one of KAL's team; the director ranks everyone.
    let sup2 = app.token("sup2").await;
    let theirs = message(
        client()
            .await
            .get_daily_ranking(authed(GetDailyRankingRequest::default(), &sup2)),
    )
    .await
    .expect("sup2");
    assert_eq!(theirs.ranked_agent_count, 0);
    assert!(theirs.caller_entry.is_none());
    let status = message(client().await.get_daily_ranking(authed(
        GetDailyRankingRequest {
            top_count: 101,
            ..Default::default()
        },
        &sup2,
    )))
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // History: 30 days, zeros but today.
    let history = message(
        client()
            .await
            .get_performance_history(authed(GetPerformanceHistoryRequest::default(), &ag12)),
    )
    .await
    .expect("history");
    let points = &history.series[0].points;
    assert_eq!(points.len(), 30);
    assert!(
        points[..29]
            .iter()
            .filter(|p| p.date.as_ref().unwrap().month == points[29].date.as_ref().unwrap().month)
            .all(|p| p.activity.as_ref().unwrap().visit_count == 0)
    );
    assert_eq!(points[29].activity.as_ref().unwrap().visit_count, 1);
    // An agent may not read another agent's history; the supervisor may.
    let status = message(client().await.get_performance_history(authed(
        GetPerformanceHistoryRequest {
            agent_ids: vec![agents[0].to_string()],
            ..Default::default()
        },
        &ag12,
    )))
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let sup_token = app.token("sup").await;
    let team = message(client().await.get_performance_history(authed(
        GetPerformanceHistoryRequest {
            agent_ids: vec![agents[0].to_string(), agents[1].to_string()],
            ..Default::default()
        },
        &sup_token,
    )))
    .await
    .expect("team history");
    assert_eq!(team.series.len(), 2);
    assert_eq!(
        team.series[1]
            .points
            .last()
            .unwrap()
            .activity
            .as_ref()
            .unwrap()
            .score_points,
        10
    );
}

/// The daily table recomputed from the raw facts: points from the score events, counters from
/// the calls, visits and payments themselves.
const RECOMPUTED: &str = "
    WITH days AS (
        SELECT agent_id, day FROM score_events
        UNION SELECT agent_id, (occurred_at AT TIME ZONE 'Africa/Conakry')::date FROM interactions
        UNION SELECT agent_id, (occurred_at AT TIME ZONE 'Africa/Conakry')::date FROM payments
              WHERE kind = 'payment')
    SELECT d.agent_id, d.day,
           (SELECT coalesce(sum(points), 0) FROM score_events e
            WHERE e.agent_id = d.agent_id AND e.day = d.day)::int AS score,
           (SELECT count(*) FROM interactions i WHERE i.agent_id = d.agent_id AND i.kind = 'call'
              AND (i.occurred_at AT TIME ZONE 'Africa/Conakry')::date = d.day)::int AS calls,
           (SELECT count(*) FROM interactions i WHERE i.agent_id = d.agent_id AND i.kind = 'visit'
              AND (i.occurred_at AT TIME ZONE 'Africa/Conakry')::date = d.day)::int AS visits,
           (SELECT count(*) FROM score_events e WHERE e.agent_id = d.agent_id AND e.day = d.day
              AND e.kind = 'promise')::int AS promises,
           (SELECT count(*) FROM interactions i WHERE i.agent_id = d.agent_id
              AND i.outcome = 'refused'
              AND (i.occurred_at AT TIME ZONE 'Africa/Conakry')::date = d.day)::int AS refusals,
           (SELECT count(*) FROM payments p WHERE p.agent_id = d.agent_id AND p.kind = 'payment'
              AND (p.occurred_at AT TIME ZONE 'Africa/Conakry')::date = d.day)::int
              AS payments_count,
           (SELECT coalesce(sum(amount_gnf), 0) FROM payments p WHERE p.agent_id = d.agent_id
              AND p.kind = 'payment'
              AND (p.occurred_at AT TIME ZONE 'Africa/Conakry')::date = d.day)::bigint
              AS payments_gnf
    FROM days d";

const STORED: &str = "SELECT agent_id, day, score, calls, visits, promises, refusals,
                             payments_count, payments_gnf FROM agent_daily_scores";

#[tokio::test]
async fn daily_scores_equal_their_recomputation_from_the_raw_events() {
    use akig::proto::v1::{
        CallDetails, InteractionOutcome, LatLng, NewPromise, PaymentMethod, RecordCallRequest,
        RecordPaymentRequest, RecordVisitRequest, ReversePaymentRequest, VisitDetails,
    };
    use chrono::Utc;

    use crate::support::{KALOUM, create_charges, create_tenant, date, today_minutes_ago, ts};

    let db = TestDb::new().await;
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    let sup = create_user(pool, "sup", "supervisor", &[kal], None).await;
    create_user(pool, "a1", "agent", &[kal], Some(sup)).await;
    create_user(pool, "a2", "agent", &[kal], Some(sup)).await;
    let mut tenants = Vec::new();
    for i in 0..3 {
        let tenant = create_tenant(pool, kal, &format!("T{i}"), 200_000, Some(KALOUM)).await;
        create_charges(pool, tenant, today() - Duration::days(90), 3, 200_000).await;
        tenants.push(tenant);
    }
    let app = spawn_app(&db).await;
    let (a1, a2, sup) = (
        app.token("a1").await,
        app.token("a2").await,
        app.token("sup").await,
    );
    // Today's actions stay today even just after midnight; yesterday's is a day and a half-hour
    // back.
    let at = |minutes: i64| {
        Some(ts(if minutes > 120 {
            Utc::now() - Duration::minutes(minutes)
        } else {
            today_minutes_ago(minutes)
        }))
    };
    // A mixed sequence over two agents and, for a1, yesterday and today: visits (one refused),
    // calls (one with a promise, one refused), payments, and a reversal of one of them.
    let mut payments = Vec::new();
    for (token, tenant, minutes) in [
        (&a1, tenants[0], 60 * 24 + 30),
        (&a1, tenants[1], 50),
        (&a2, tenants[2], 40),
    ] {
        let mut collections = app.collections(token).await;
        for outcome in [InteractionOutcome::Absent, InteractionOutcome::Refused] {
            collections
                .record_visit(RecordVisitRequest {
                    request_id: Uuid::new_v4().to_string(),
                    tenant_id: tenant.to_string(),
                    occurred_at: at(minutes),
                    outcome: outcome as i32,
                    notes: "visite".into(),
                    visit: Some(VisitDetails {
                        location: Some(LatLng {
                            latitude: KALOUM.0,
                            longitude: KALOUM.1,
                        }),
                        accuracy_m: 10.0,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .expect("visit");
        }
        for (outcome, promise) in [
            (InteractionOutcome::PromiseMade, true),
            (InteractionOutcome::Refused, false),
        ] {
            collections
                .record_call(RecordCallRequest {
                    request_id: Uuid::new_v4().to_string(),
                    tenant_id: tenant.to_string(),
                    occurred_at: at(minutes - 1),
                    outcome: outcome as i32,
                    call: Some(CallDetails {
                        phone: "+224620000000".into(),
                        duration: Some(prost_types::Duration {
                            seconds: 60,
                            nanos: 0,
                        }),
                    }),
                    promise: promise.then(|| NewPromise {
                        amount_gnf: 100_000,
                        promised_date: Some(date(today() + Duration::days(5))),
                    }),
                    ..Default::default()
                })
                .await
                .expect("call");
        }
        let paid = collections
            .record_payment(RecordPaymentRequest {
                request_id: Uuid::new_v4().to_string(),
                tenant_id: tenant.to_string(),
                amount_gnf: 150_000,
                method: PaymentMethod::Cash as i32,
                occurred_at: at(minutes - 2),
                ..Default::default()
            })
            .await
            .expect("payment")
            .into_inner();
        payments.push(paid.payment.unwrap().payment_id);
    }
    app.collections(&sup)
        .await
        .reverse_payment(ReversePaymentRequest {
            request_id: Uuid::new_v4().to_string(),
            payment_id: payments[1].clone(),
            reason: "Billet faux".into(),
            occurred_at: at(5),
        })
        .await
        .expect("reversal");

    type Row = (Uuid, NaiveDate, i32, i32, i32, i32, i32, i32, i64);
    let mut stored: Vec<Row> = sqlx::query_as(STORED).fetch_all(pool).await.unwrap();
    let mut recomputed: Vec<Row> = sqlx::query_as(RECOMPUTED).fetch_all(pool).await.unwrap();
    stored.sort();
    recomputed.sort();
    assert_eq!(stored.len(), 3, "a1 yesterday and today, a2 today");
    assert_eq!(stored, recomputed);
    // a1 today: visits 1 + 1, promise 2, refusals -2, payment 3, reversal -3 = 2.
    let a1_today = stored
        .iter()
        .filter(|r| r.1 == crate::support::today())
        .map(|r| r.2)
        .collect::<Vec<_>>();
    assert!(a1_today.contains(&2), "{stored:?}");

    // The ranking's amount collected is net of reversals on their day, as GetDailyStats counts.
    let ranking = app
        .missions_client()
        .await
        .get_daily_ranking(authed(GetDailyRankingRequest::default(), &sup))
        .await
        .expect("ranking")
        .into_inner();
    assert_eq!(ranking.entries.len(), 2);
    for entry in &ranking.entries {
        let agent: Uuid = entry
            .agent
            .as_ref()
            .expect("agent")
            .user_id
            .parse()
            .unwrap();
        let net: i64 = sqlx::query_scalar(
            "SELECT ((SELECT coalesce(sum(amount_gnf), 0) FROM payments
                     WHERE agent_id = $1 AND kind = 'payment'
                       AND (occurred_at AT TIME ZONE 'Africa/Conakry')::date = $2)
                  - (SELECT coalesce(sum(r.amount_gnf), 0) FROM payments r
                     JOIN payments o ON o.id = r.reverses_payment_id
                     WHERE o.agent_id = $1 AND r.kind = 'reversal'
                       AND (r.occurred_at AT TIME ZONE 'Africa/Conakry')::date = $2))::bigint",
        )
        .bind(agent)
        .bind(today())
        .fetch_one(pool)
        .await
        .unwrap();
        let collected = entry.activity.as_ref().expect("activity").collected_gnf;
        assert_eq!(collected, net, "agent {agent}");
    }
    let collected: Vec<i64> = ranking
        .entries
        .iter()
        .map(|e| e.activity.as_ref().unwrap().collected_gnf)
        .collect();
    assert!(
        collected.contains(&0),
        "a1's payment today was reversed: {collected:?}"
    );
}
