//! GetDailyStats through a real gRPC client: figures checked against values computed by hand
//! on a small ledger, per role; and against the demo data set's daily scores.

use akig::proto::v1::{
    ActivityFigures, DailyStatsFigures, Date, GetDailyStatsRequest, GetDailyStatsResponse,
};
use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::support::{
    LedgerEntry, ScoreOf, TestApp, TestDb, authed, create_charge, create_site, create_tenant,
    create_user, date, insert_interaction, insert_ledger_entry, insert_promise, insert_score_event,
    message, revoke, set_demo_passwords, spawn_app,
};

fn at(day: NaiveDate, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    day.and_hms_opt(hour, minute, second)
        .expect("valid time")
        .and_utc()
}

fn month(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, n, 1).expect("month")
}

/// Calls, visits, far-away visits, refusals, promises, promised, payments, collected,
/// reversals, score.
type Activity = [i64; 10];

fn activity(figures: &DailyStatsFigures) -> Activity {
    let a: &ActivityFigures = figures.activity.as_ref().expect("activity");
    [
        a.call_count,
        a.visit_count,
        a.far_away_visit_count,
        a.refusal_count,
        a.promise_count,
        a.promised_gnf,
        a.payment_count,
        a.collected_gnf,
        a.reversal_count,
        a.score_points,
    ]
}

const ZERO: Activity = [0; 10];

/// (name, activity, due, rate) of every agent line.
fn agent_lines(response: &GetDailyStatsResponse) -> Vec<(String, Activity, i64, f64)> {
    response
        .agents
        .iter()
        .map(|line| {
            let figures = line.figures.as_ref().expect("figures");
            (
                line.agent.as_ref().expect("agent").full_name.clone(),
                activity(figures),
                figures.due_gnf,
                figures.collection_rate,
            )
        })
        .collect()
}

/// (site name, activity, due, rate) of every site line.
fn site_lines(response: &GetDailyStatsResponse) -> Vec<(String, Activity, i64, f64)> {
    response
        .sites
        .iter()
        .map(|line| {
            let figures = line.figures.as_ref().expect("figures");
            (
                line.site_name.clone(),
                activity(figures),
                figures.due_gnf,
                figures.collection_rate,
            )
        })
        .collect()
}

fn total(response: &GetDailyStatsResponse) -> (Activity, i64, f64) {
    let figures = response.total.as_ref().expect("total");
    (activity(figures), figures.due_gnf, figures.collection_rate)
}

struct World {
    app: TestApp,
    day: NaiveDate,
    a1: Uuid,
    a2: Uuid,
    a3: Uuid,
}

impl World {
    async fn stats(
        &self,
        request: GetDailyStatsRequest,
        username: &str,
    ) -> Result<GetDailyStatsResponse, tonic::Status> {
        let token = self.app.token(username).await;
        message(self.app.collections(&token).await.get_daily_stats(request)).await
    }

    fn on_day(&self) -> GetDailyStatsRequest {
        GetDailyStatsRequest {
            date: Some(date(self.day)),
            ..Default::default()
        }
    }
}

/// Sites KAL and MAT. Agents: "agent.un" (KAL) and "agent.deux" (KAL, MAT) supervised by
/// "sup" (KAL, MAT), "agent.trois" (MAT), "agent.parti" (KAL, disabled); "gest.kal" manages
/// KAL; "dir", "compta". The day D is yesterday; rows just outside D must not count.
async fn world(db: &TestDb) -> World {
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    let mat = create_site(pool, "MAT").await;
    let sup = create_user(pool, "sup", "supervisor", &[kal, mat], None).await;
    let a1 = create_user(pool, "agent.un", "agent", &[kal], Some(sup)).await;
    let a2 = create_user(pool, "agent.deux", "agent", &[kal, mat], Some(sup)).await;
    let a3 = create_user(pool, "agent.trois", "agent", &[mat], None).await;
    let gone = create_user(pool, "agent.parti", "agent", &[kal], None).await;
    sqlx::query("UPDATE users SET disabled = true WHERE id = $1")
        .bind(gone)
        .execute(pool)
        .await
        .expect("disable");
    create_user(pool, "gest.kal", "site_manager", &[kal], None).await;
    create_user(pool, "dir", "director", &[], None).await;
    let accountant = create_user(pool, "compta", "accountant", &[], None).await;

    let day = Utc::now().date_naive() - Days::new(1);
    let d = |n: i64| day + TimeDelta::days(n);
    let t1 = create_tenant(pool, kal, "Mamadou Diallo", 1_000_000, None).await;
    let t2 = create_tenant(pool, kal, "Aïssatou Keïta", 700_000, None).await;
    let t3 = create_tenant(pool, mat, "Ibrahima Sow", 400_000, None).await;
    // T1: paid before D; due D-20 (half paid during D); due D; due D+1 (not counted).
    let c1 = create_charge(pool, t1, month(1), d(-50), 1_000_000).await;
    let c2 = create_charge(pool, t1, month(2), d(-20), 1_000_000).await;
    create_charge(pool, t1, month(3), day, 1_000_000).await;
    create_charge(pool, t1, month(4), d(1), 1_000_000).await;
    // T2: unpaid. T3: 100,000 paid on D-1, reversed during D; 200,000 paid during D.
    create_charge(pool, t2, month(1), d(-40), 700_000).await;
    let c6 = create_charge(pool, t3, month(1), d(-10), 400_000).await;

    let entry = |tenant: Uuid,
                 agent: Uuid,
                 amount: i64,
                 occurred_at: DateTime<Utc>,
                 reverses: Option<Uuid>,
                 allocations: &'static [i64]| {
        let pool = pool.clone();
        async move {
            let charge = match allocations.first().copied() {
                Some(1) => Some(c1),
                Some(2) => Some(c2),
                Some(6) => Some(c6),
                _ => None,
            };
            let signed = if reverses.is_some() { -amount } else { amount };
            let allocations: Vec<(i64, i64)> = charge.map(|c| (c, signed)).into_iter().collect();
            insert_ledger_entry(
                &pool,
                &LedgerEntry {
                    tenant_id: tenant,
                    agent_id: agent,
                    amount,
                    occurred_at,
                    reverses,
                    allocations: &allocations,
                },
            )
            .await
        }
    };
    let p0 = entry(t1, a1, 1_000_000, at(d(-5), 10, 0, 0), None, &[1]).await;
    entry(t2, a1, 50_000, at(d(-1), 23, 59, 59), None, &[]).await;
    let p1 = entry(t1, a1, 500_000, at(day, 12, 0, 0), None, &[2]).await;
    let p2 = entry(t3, a2, 100_000, at(d(-1), 10, 0, 0), None, &[6]).await;
    let p3 = entry(t3, a2, 200_000, at(day, 14, 0, 0), None, &[6]).await;
    let r2 = entry(t3, accountant, 100_000, at(day, 16, 0, 0), Some(p2), &[6]).await;

    insert_interaction(pool, "call", t1, a1, "no_answer", at(day, 9, 0, 0), false).await;
    let refused =
        insert_interaction(pool, "visit", t1, a1, "refused", at(day, 10, 0, 0), true).await;
    let promised = insert_interaction(
        pool,
        "call",
        t2,
        a1,
        "promise_made",
        at(day, 11, 0, 0),
        false,
    )
    .await;
    let promise = insert_promise(
        pool,
        t2,
        a1,
        Some(promised),
        300_000,
        d(5),
        at(day, 11, 0, 0),
    )
    .await;
    let a2_visit =
        insert_interaction(pool, "visit", t3, a2, "absent", at(day, 9, 30, 0), false).await;
    insert_interaction(pool, "call", t1, a1, "no_answer", at(d(1), 0, 0, 0), false).await;
    let before = insert_interaction(
        pool,
        "visit",
        t1,
        a1,
        "absent",
        at(d(-1), 23, 59, 59),
        false,
    )
    .await;

    for (agent, kind, source, occurred_at) in [
        (
            a1,
            "visit",
            ScoreOf::Interaction(refused),
            at(day, 10, 0, 0),
        ),
        (
            a1,
            "refusal",
            ScoreOf::Interaction(refused),
            at(day, 10, 0, 0),
        ),
        (a1, "promise", ScoreOf::Promise(promise), at(day, 11, 0, 0)),
        (a1, "payment", ScoreOf::Payment(p1), at(day, 12, 0, 0)),
        (a1, "payment", ScoreOf::Payment(p0), at(d(-5), 10, 0, 0)),
        (
            a1,
            "visit",
            ScoreOf::Interaction(before),
            at(d(-1), 23, 59, 59),
        ),
        (
            a2,
            "visit",
            ScoreOf::Interaction(a2_visit),
            at(day, 9, 30, 0),
        ),
        (a2, "payment", ScoreOf::Payment(p3), at(day, 14, 0, 0)),
        (a2, "payment", ScoreOf::Payment(p2), at(d(-1), 10, 0, 0)),
        (
            a2,
            "payment_reversal",
            ScoreOf::Payment(r2),
            at(day, 16, 0, 0),
        ),
    ] {
        insert_score_event(pool, agent, kind, source, occurred_at).await;
    }

    let app = spawn_app(db).await;
    World {
        app,
        day,
        a1,
        a2,
        a3,
    }
}

// Hand-computed figures of D.
//   calls visits far refusals promises promised payments collected reversals score
const A1: Activity = [2, 1, 1, 1, 1, 300_000, 1, 500_000, 0, 5];
const A2: Activity = [0, 1, 0, 0, 0, 0, 1, 100_000, 1, 1];
const TOTAL: Activity = [2, 2, 1, 1, 1, 300_000, 2, 600_000, 1, 6];
// Due at the start of D: KAL = 1,000,000 (due D-20) + 1,000,000 (due D) + 700,000;
// MAT = 400,000 - 100,000 paid on D-1.
const DUE_KAL: i64 = 2_700_000;
const DUE_MAT: i64 = 300_000;

#[tokio::test]
async fn director_sees_every_agent_and_site_with_hand_computed_figures() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let response = w.stats(w.on_day(), "dir").await.expect("stats");
    assert_eq!(response.date, Some(date(w.day)));
    assert!(response.compute_time.is_some());
    assert_eq!(total(&response), (TOTAL, 3_000_000, 0.2));
    assert_eq!(
        site_lines(&response),
        [
            (
                "KAL".to_owned(),
                [2, 1, 1, 1, 1, 300_000, 1, 500_000, 0, 5],
                DUE_KAL,
                500_000.0 / 2_700_000.0
            ),
            (
                "MAT".to_owned(),
                [0, 1, 0, 0, 0, 0, 1, 100_000, 1, 1],
                DUE_MAT,
                100_000.0 / 300_000.0
            ),
        ]
    );
    // By score, zeros included, the disabled agent without activity left out.
    assert_eq!(
        agent_lines(&response),
        [
            (
                "Test agent.un".to_owned(),
                A1,
                DUE_KAL,
                500_000.0 / 2_700_000.0
            ),
            (
                "Test agent.deux".to_owned(),
                A2,
                DUE_KAL + DUE_MAT,
                100_000.0 / 3_000_000.0
            ),
            ("Test agent.trois".to_owned(), ZERO, DUE_MAT, 0.0),
        ]
    );
    let ids: Vec<String> = response
        .agents
        .iter()
        .map(|l| l.agent.as_ref().expect("agent").user_id.clone())
        .collect();
    assert_eq!(ids, [w.a1.to_string(), w.a2.to_string(), w.a3.to_string()]);

    // Only MAT: its agents, their MAT activity.
    let mat = w
        .stats(
            GetDailyStatsRequest {
                site_ids: vec![response.sites[1].site_id.clone()],
                ..w.on_day()
            },
            "dir",
        )
        .await
        .expect("stats of MAT");
    assert_eq!(
        agent_lines(&mat),
        [
            (
                "Test agent.deux".to_owned(),
                A2,
                DUE_MAT,
                100_000.0 / 300_000.0
            ),
            ("Test agent.trois".to_owned(), ZERO, DUE_MAT, 0.0),
        ]
    );
    assert_eq!(total(&mat), (A2, DUE_MAT, 100_000.0 / 300_000.0));
    assert_eq!(mat.sites.len(), 1);

    // Only agent.trois: nothing done, the dues stay.
    let idle = w
        .stats(
            GetDailyStatsRequest {
                agent_ids: vec![w.a3.to_string()],
                ..w.on_day()
            },
            "dir",
        )
        .await
        .expect("stats of one agent");
    assert_eq!(
        agent_lines(&idle),
        [("Test agent.trois".to_owned(), ZERO, DUE_MAT, 0.0)]
    );
    assert_eq!(total(&idle), (ZERO, 3_000_000, 0.0));
}

#[tokio::test]
async fn each_role_sees_its_own_part() {
    let db = TestDb::new().await;
    let w = world(&db).await;

    // An agent: their own line only, their sites, their own activity.
    let agent = w.stats(w.on_day(), "agent.un").await.expect("agent");
    let rate = 500_000.0 / 2_700_000.0;
    assert_eq!(
        agent_lines(&agent),
        [("Test agent.un".to_owned(), A1, DUE_KAL, rate)]
    );
    assert_eq!(site_lines(&agent), [("KAL".to_owned(), A1, DUE_KAL, rate)]);
    assert_eq!(total(&agent), (A1, DUE_KAL, rate));
    let asks_for_other = w
        .stats(
            GetDailyStatsRequest {
                agent_ids: vec![w.a2.to_string()],
                ..w.on_day()
            },
            "agent.deux",
        )
        .await
        .expect("own id");
    assert_eq!(asks_for_other.agents.len(), 1);
    let not_mine = w
        .stats(
            GetDailyStatsRequest {
                agent_ids: vec![w.a2.to_string()],
                ..w.on_day()
            },
            "agent.un",
        )
        .await
        .expect("another agent's id");
    assert!(not_mine.agents.is_empty());
    assert_eq!(total(&not_mine).0, ZERO);

    // A site manager of KAL: KAL's agents, their KAL activity, everything done at KAL.
    let manager = w.stats(w.on_day(), "gest.kal").await.expect("manager");
    assert_eq!(
        agent_lines(&manager),
        [
            ("Test agent.un".to_owned(), A1, DUE_KAL, rate),
            ("Test agent.deux".to_owned(), ZERO, DUE_KAL, 0.0),
        ]
    );
    assert_eq!(site_lines(&manager).len(), 1);
    assert_eq!(total(&manager), (A1, DUE_KAL, rate));

    // A supervisor: their team, their sites.
    let supervisor = w.stats(w.on_day(), "sup").await.expect("supervisor");
    let names: Vec<String> = agent_lines(&supervisor).into_iter().map(|l| l.0).collect();
    assert_eq!(names, ["Test agent.un", "Test agent.deux"]);
    assert_eq!(total(&supervisor), (TOTAL, 3_000_000, 0.2));
}

#[tokio::test]
async fn bad_days_and_missing_permission_are_refused() {
    let db = TestDb::new().await;
    revoke(&db.pool, "accountant", "collections.stats.read").await;
    let w = world(&db).await;
    let tomorrow = w.day + Days::new(2);
    let future = w
        .stats(
            GetDailyStatsRequest {
                date: Some(date(tomorrow)),
                ..Default::default()
            },
            "dir",
        )
        .await
        .expect_err("future");
    assert_eq!(future.code(), Code::InvalidArgument);
    let fields: Vec<String> = future
        .get_details_bad_request()
        .expect("details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["date"]);
    let bad = w
        .stats(
            GetDailyStatsRequest {
                date: Some(Date {
                    year: 2026,
                    month: 13,
                    day: 1,
                }),
                site_ids: vec!["x".into()],
                ..Default::default()
            },
            "dir",
        )
        .await
        .expect_err("bad month");
    let fields: Vec<String> = bad
        .get_details_bad_request()
        .expect("details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["date.month", "site_ids[0]"]);
    let denied = w
        .stats(w.on_day(), "compta")
        .await
        .expect_err("no permission");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // Unset date: today, so far.
    let today = w
        .stats(GetDailyStatsRequest::default(), "dir")
        .await
        .expect("today");
    assert_eq!(today.date, Some(date(Utc::now().date_naive())));
    // Today nothing was done but the midnight call.
    assert_eq!(total(&today).0[0], 1);
}

#[tokio::test]
async fn demo_day_matches_the_daily_scores() {
    let db = TestDb::new().await;
    let demo_day = NaiveDate::from_ymd_opt(2026, 11, 16).expect("date");
    akig::seed::seed_demo(&db.pool, demo_day)
        .await
        .expect("seed");
    set_demo_passwords(&db.pool, &["directeur", "agent"]).await;
    // A working day of the seeded activity with the most of it.
    let day: NaiveDate = sqlx::query_scalar(
        "SELECT day FROM agent_daily_scores WHERE day < $1
         GROUP BY day ORDER BY sum(calls + visits) DESC, day LIMIT 1",
    )
    .bind(demo_day)
    .fetch_one(&db.pool)
    .await
    .expect("busy day");
    let start = at(day, 0, 0, 0);
    let app = spawn_app(&db).await;
    let mut client = app.collections_client().await;
    let request = GetDailyStatsRequest {
        date: Some(date(day)),
        ..Default::default()
    };
    let director = client
        .get_daily_stats(authed(request.clone(), &app.token("directeur").await))
        .await
        .expect("director")
        .into_inner();

    #[derive(sqlx::FromRow)]
    struct Daily {
        agent_id: Uuid,
        score: i32,
        calls: i32,
        visits: i32,
        promises: i32,
        payments_count: i32,
        payments_gnf: i64,
        refusals: i32,
        reversed_gnf: i64,
    }
    let rows: Vec<Daily> = sqlx::query_as(
        "SELECT s.agent_id, s.score, s.calls, s.visits, s.promises, s.payments_count,
                s.payments_gnf, s.refusals,
                (SELECT coalesce(sum(r.amount_gnf), 0)::bigint FROM payments r
                 JOIN payments o ON o.id = r.reverses_payment_id
                 WHERE o.agent_id = s.agent_id AND r.kind = 'reversal'
                   AND r.occurred_at >= $2 AND r.occurred_at < $2 + interval '1 day') AS reversed_gnf
         FROM agent_daily_scores s WHERE s.day = $1",
    )
    .bind(day)
    .bind(start)
    .fetch_all(&db.pool)
    .await
    .expect("daily scores");
    assert!(rows.len() > 5, "{} agents active", rows.len());
    for row in &rows {
        let line = director
            .agents
            .iter()
            .find(|l| l.agent.as_ref().expect("agent").user_id == row.agent_id.to_string())
            .expect("a line per active agent");
        let a = activity(line.figures.as_ref().expect("figures"));
        assert_eq!(
            [a[0], a[1], a[3], a[4], a[6], a[7], a[9]],
            [
                i64::from(row.calls),
                i64::from(row.visits),
                i64::from(row.refusals),
                i64::from(row.promises),
                i64::from(row.payments_count),
                row.payments_gnf - row.reversed_gnf,
                i64::from(row.score),
            ],
            "agent {}",
            row.agent_id
        );
    }
    let agents: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE role_id = 'agent' AND NOT disabled")
            .fetch_one(&db.pool)
            .await
            .expect("agents");
    assert_eq!(director.agents.len() as i64, agents);

    // Due at the start of the day, straight from the definition.
    let due: i64 = sqlx::query_scalar(
        "SELECT ((SELECT coalesce(sum(amount_due_gnf), 0) FROM charges WHERE due_date <= $1)
                 - (SELECT coalesce(sum(pa.amount_gnf), 0) FROM payment_allocations pa
                    JOIN payments p ON p.id = pa.payment_id
                    JOIN charges c ON c.id = pa.charge_id
                    WHERE c.due_date <= $1 AND p.occurred_at < $2))::bigint",
    )
    .bind(day)
    .bind(start)
    .fetch_one(&db.pool)
    .await
    .expect("due");
    let total = director.total.as_ref().expect("total");
    assert_eq!(total.due_gnf, due);
    let sites_due: i64 = director
        .sites
        .iter()
        .map(|s| s.figures.as_ref().expect("figures").due_gnf)
        .sum();
    assert_eq!(sites_due, due);

    // The demo agent: one line, theirs, equal to the director's line for them.
    let mine = client
        .get_daily_stats(authed(request, &app.token("agent").await))
        .await
        .expect("agent")
        .into_inner();
    assert_eq!(mine.agents.len(), 1);
    let own = &mine.agents[0];
    let same = director
        .agents
        .iter()
        .find(|l| l.agent == own.agent)
        .expect("in the director's list");
    assert_eq!(own.figures, same.figures);
}
