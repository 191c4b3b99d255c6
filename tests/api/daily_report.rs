//! GetDailyReport and ExportDailyReport through a real gRPC client: figures of a day and the
//! day before checked against values computed by hand on a small ledger (a reversal on the
//! day of a payment of the day before, a far-away visit, missions done and failed), the CSV
//! file byte for byte (BOM, separator, line ends), and the scope of a site manager.

use akig::proto::v1::dashboard_service_client::DashboardServiceClient;
use akig::proto::v1::{
    CsvSeparator, DailyReportFigures, ExportDailyReportRequest, GetDailyReportRequest,
    GetDailyReportResponse,
};
use chrono::{DateTime, Days, NaiveDate, Utc};
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    LedgerEntry, ScoreOf, TestApp, TestDb, authed, bad_fields, create_charge, create_site,
    create_tenant, create_user, date, insert_interaction, insert_ledger_entry, insert_promise,
    insert_score_event, spawn_app,
};

fn at(day: NaiveDate, hour: u32) -> DateTime<Utc> {
    day.and_hms_opt(hour, 0, 0).expect("valid time").and_utc()
}

/// Calls, visits, far-away visits, refusals, promises, promised, payments, collected,
/// reversals, score; then missions planned, in progress, done, failed, cancelled.
type Figures = [i64; 15];

fn figures(f: Option<&DailyReportFigures>) -> Figures {
    let f = f.expect("figures");
    let a = f.activity.as_ref().expect("activity");
    let m = f.missions.as_ref().expect("missions");
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
        m.planned_count,
        m.in_progress_count,
        m.done_count,
        m.failed_count,
        m.cancelled_count,
    ]
}

// Hand-computed figures. Day D: agent.un visits far away (+1 point), calls and gets a promise
// of 200,000, collects 500,000, and the 300,000 collected on D-1 is reversed on D (net
// 200,000); mission done. agent.deux collects 100,000; mission failed.
// D-1: agent.un collects 300,000, mission failed; agent.deux calls, mission done.
const UN_D: Figures = [1, 1, 1, 0, 1, 200_000, 1, 200_000, 1, 1, 1, 0, 1, 0, 0];
const UN_D1: Figures = [0, 0, 0, 0, 0, 0, 1, 300_000, 0, 0, 1, 0, 0, 1, 0];
const DEUX_D: Figures = [0, 0, 0, 0, 0, 0, 1, 100_000, 0, 0, 1, 0, 0, 1, 0];
const DEUX_D1: Figures = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0];
const TOTAL_D: Figures = [1, 1, 1, 0, 1, 200_000, 2, 300_000, 1, 1, 2, 0, 1, 1, 0];
const TOTAL_D1: Figures = [1, 0, 0, 0, 0, 0, 1, 300_000, 0, 0, 2, 0, 1, 1, 0];

struct World {
    app: TestApp,
    day: NaiveDate,
    kal: Uuid,
    mat: Uuid,
    un: Uuid,
    deux: Uuid,
}

impl World {
    async fn client(
        &self,
        username: &str,
    ) -> (DashboardServiceClient<tonic::transport::Channel>, String) {
        let token = self.app.token(username).await;
        (self.app.dashboard_client().await, token)
    }

    async fn report(
        &self,
        username: &str,
        request: GetDailyReportRequest,
    ) -> Result<GetDailyReportResponse, tonic::Status> {
        let (mut client, token) = self.client(username).await;
        client
            .get_daily_report(authed(request, &token))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The messages of an export: (content type, file name, data) each.
    async fn export(
        &self,
        username: &str,
        request: ExportDailyReportRequest,
    ) -> Result<Vec<(String, String, Vec<u8>)>, tonic::Status> {
        let (mut client, token) = self.client(username).await;
        let mut stream = client
            .export_daily_report(authed(request, &token))
            .await?
            .into_inner();
        let mut out = Vec::new();
        while let Some(m) = stream.message().await? {
            out.push((m.content_type, m.filename, m.data));
        }
        Ok(out)
    }
}

async fn insert_mission(
    pool: &sqlx::PgPool,
    day: NaiveDate,
    agent: Uuid,
    tenant: Uuid,
    site: Uuid,
    status: &str,
) {
    sqlx::query(
        "INSERT INTO missions (mission_date, agent_id, tenant_id, site_id, status, failure_reason)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 = 'failed' THEN 'tenant_absent' END)",
    )
    .bind(day)
    .bind(agent)
    .bind(tenant)
    .bind(site)
    .bind(status)
    .execute(pool)
    .await
    .expect("mission");
}

/// Sites KAL and MAT; "agent.un" (KAL), "agent.deux" (MAT), "gest.kal" manages KAL, "dir",
/// "compta" (who reverses). D is yesterday, so both days are over.
async fn world(db: &TestDb) -> World {
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    let mat = create_site(pool, "MAT").await;
    let un = create_user(pool, "agent.un", "agent", &[kal], None).await;
    let deux = create_user(pool, "agent.deux", "agent", &[mat], None).await;
    create_user(pool, "gest.kal", "site_manager", &[kal], None).await;
    create_user(pool, "dir", "director", &[], None).await;
    let compta = create_user(pool, "compta", "accountant", &[], None).await;

    let day = Utc::now().date_naive() - Days::new(1);
    let before = day - Days::new(1);
    let month = NaiveDate::from_ymd_opt(2020, 1, 1).expect("month");
    let t1 = create_tenant(pool, kal, "Mamadou Diallo", 1_000_000, None).await;
    let t2 = create_tenant(pool, mat, "Ibrahima Sow", 800_000, None).await;
    let c1 = create_charge(pool, t1, month, day - Days::new(30), 1_000_000).await;
    let c2 = create_charge(pool, t2, month, day - Days::new(30), 800_000).await;
    let pay = |tenant, agent, amount: i64, when, reverses: Option<Uuid>, charge| {
        let pool = pool.clone();
        async move {
            let signed = if reverses.is_some() { -amount } else { amount };
            insert_ledger_entry(
                &pool,
                &LedgerEntry {
                    tenant_id: tenant,
                    agent_id: agent,
                    amount,
                    occurred_at: when,
                    reverses,
                    allocations: &[(charge, signed)],
                },
            )
            .await
        }
    };
    // D-1.
    let early = pay(t1, un, 300_000, at(before, 10), None, c1).await;
    insert_interaction(pool, "call", t2, deux, "no_answer", at(before, 9), false).await;
    insert_mission(pool, before, un, t1, kal, "failed").await;
    insert_mission(pool, before, deux, t2, mat, "done").await;
    // D.
    let visit = insert_interaction(pool, "visit", t1, un, "absent", at(day, 9), true).await;
    insert_score_event(pool, un, "visit", ScoreOf::Interaction(visit), at(day, 9)).await;
    let call = insert_interaction(pool, "call", t1, un, "promise_made", at(day, 10), false).await;
    insert_promise(
        pool,
        t1,
        un,
        Some(call),
        200_000,
        day + Days::new(5),
        at(day, 10),
    )
    .await;
    pay(t1, un, 500_000, at(day, 11), None, c1).await;
    pay(t2, deux, 100_000, at(day, 12), None, c2).await;
    pay(t1, compta, 300_000, at(day, 15), Some(early), c1).await;
    insert_mission(pool, day, un, t1, kal, "done").await;
    insert_mission(pool, day, deux, t2, mat, "failed").await;
    // D+1 (today): not in the report.
    pay(t2, deux, 7_000, at(day + Days::new(1), 0), None, c2).await;

    let app = spawn_app(db).await;
    World {
        app,
        day,
        kal,
        mat,
        un,
        deux,
    }
}

fn on(day: NaiveDate) -> GetDailyReportRequest {
    GetDailyReportRequest {
        date: Some(date(day)),
        ..Default::default()
    }
}

#[tokio::test]
async fn report_shows_each_agent_and_site_next_to_the_day_before() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let r = w.report("dir", on(w.day)).await.expect("report");
    assert_eq!(r.date, Some(date(w.day)));
    assert_eq!(r.previous_date, Some(date(w.day - Days::new(1))));
    assert!(r.compute_time.is_some());
    assert_eq!(figures(r.total.as_ref()), TOTAL_D);
    assert_eq!(figures(r.previous_total.as_ref()), TOTAL_D1);
    let sites: Vec<(String, String, Figures, Figures)> = r
        .sites
        .iter()
        .map(|s| {
            (
                s.site_id.clone(),
                s.site_name.clone(),
                figures(s.day.as_ref()),
                figures(s.previous_day.as_ref()),
            )
        })
        .collect();
    assert_eq!(
        sites,
        [
            (w.kal.to_string(), "KAL".to_owned(), UN_D, UN_D1),
            (w.mat.to_string(), "MAT".to_owned(), DEUX_D, DEUX_D1),
        ]
    );
    // By the day's score: agent.un (1 point) before agent.deux (0).
    let agents: Vec<(String, Vec<String>, Figures, Figures)> = r
        .agents
        .iter()
        .map(|a| {
            (
                a.agent.as_ref().expect("agent").user_id.clone(),
                a.site_ids.clone(),
                figures(a.day.as_ref()),
                figures(a.previous_day.as_ref()),
            )
        })
        .collect();
    assert_eq!(
        agents,
        [
            (w.un.to_string(), vec![w.kal.to_string()], UN_D, UN_D1),
            (w.deux.to_string(), vec![w.mat.to_string()], DEUX_D, DEUX_D1),
        ]
    );
}

#[tokio::test]
async fn report_is_limited_to_the_callers_sites_and_refuses_the_future() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let r = w.report("gest.kal", on(w.day)).await.expect("report");
    assert_eq!(figures(r.total.as_ref()), UN_D);
    assert_eq!(figures(r.previous_total.as_ref()), UN_D1);
    assert_eq!(r.sites.len(), 1);
    assert_eq!(r.sites[0].site_id, w.kal.to_string());
    assert_eq!(r.agents.len(), 1);
    assert_eq!(
        r.agents[0].agent.as_ref().expect("agent").user_id,
        w.un.to_string()
    );
    // Naming another site finds nothing there.
    let other = w
        .report(
            "gest.kal",
            GetDailyReportRequest {
                date: Some(date(w.day)),
                site_ids: vec![w.mat.to_string()],
            },
        )
        .await
        .expect("report");
    assert!(other.sites.is_empty());
    assert_eq!(figures(other.total.as_ref()), [0; 15]);

    let tomorrow = Utc::now().date_naive() + Days::new(2);
    let status = w.report("dir", on(tomorrow)).await.expect_err("future");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["date"]);
    // Agents have no dashboard report.
    let status = w.report("agent.un", on(w.day)).await.expect_err("agent");
    assert_eq!(status.code(), Code::PermissionDenied);
}

fn csv_line(kind: &str, id: &str, name: &str, day: NaiveDate, f: &Figures, sep: &str) -> String {
    let mut fields = vec![
        kind.to_owned(),
        id.to_owned(),
        name.to_owned(),
        day.format("%d/%m/%Y").to_string(),
    ];
    fields.extend(f.iter().map(ToString::to_string));
    fields.join(sep) + "\r\n"
}

const HEADER: &str = "Type;Identifiant;Nom;Jour;Appels;Visites;Visites éloignées;Refus;\
Promesses;Montant promis (GNF);Paiements;Encaissé net (GNF);Annulations;Points;\
Missions planifiées;Missions en cours;Missions réussies;Missions échouées;Missions annulées\r\n";

#[tokio::test]
async fn export_is_a_french_spreadsheet_csv_with_bom_and_semicolons() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let d1 = w.day - Days::new(1);
    let request = ExportDailyReportRequest {
        date: Some(date(w.day)),
        ..Default::default()
    };
    let messages = w.export("dir", request.clone()).await.expect("export");
    assert_eq!(messages[0].0, "text/csv; charset=utf-8");
    assert_eq!(
        messages[0].1,
        format!("rapport-journalier-{}.csv", w.day.format("%Y-%m-%d"))
    );
    assert!(messages.iter().all(|m| m.2.len() <= 64 * 1024));
    assert!(
        messages
            .iter()
            .skip(1)
            .all(|m| m.0.is_empty() && m.1.is_empty())
    );
    let bytes: Vec<u8> = messages.iter().flat_map(|m| m.2.clone()).collect();
    let (kal, mat, un, deux) = (
        w.kal.to_string(),
        w.mat.to_string(),
        w.un.to_string(),
        w.deux.to_string(),
    );
    let expected = [
        "\u{feff}".to_owned(),
        HEADER.to_owned(),
        csv_line("Total", "", "", w.day, &TOTAL_D, ";"),
        csv_line("Total", "", "", d1, &TOTAL_D1, ";"),
        csv_line("Site", &kal, "KAL", w.day, &UN_D, ";"),
        csv_line("Site", &kal, "KAL", d1, &UN_D1, ";"),
        csv_line("Site", &mat, "MAT", w.day, &DEUX_D, ";"),
        csv_line("Site", &mat, "MAT", d1, &DEUX_D1, ";"),
        csv_line("Agent", &un, "Test agent.un", w.day, &UN_D, ";"),
        csv_line("Agent", &un, "Test agent.un", d1, &UN_D1, ";"),
        csv_line("Agent", &deux, "Test agent.deux", w.day, &DEUX_D, ";"),
        csv_line("Agent", &deux, "Test agent.deux", d1, &DEUX_D1, ";"),
    ]
    .concat();
    assert_eq!(&bytes[..3], [0xEF, 0xBB, 0xBF]);
    assert_eq!(String::from_utf8(bytes).expect("utf-8"), expected);

    // Comma on request; the manager's file holds KAL only.
    let comma = w
        .export(
            "gest.kal",
            ExportDailyReportRequest {
                separator: CsvSeparator::Comma.into(),
                ..request
            },
        )
        .await
        .expect("export");
    let text = String::from_utf8(comma.iter().flat_map(|m| m.2.clone()).collect()).expect("utf-8");
    let expected = [
        "\u{feff}".to_owned(),
        HEADER.replace(';', ","),
        csv_line("Total", "", "", w.day, &UN_D, ","),
        csv_line("Total", "", "", d1, &UN_D1, ","),
        csv_line("Site", &kal, "KAL", w.day, &UN_D, ","),
        csv_line("Site", &kal, "KAL", d1, &UN_D1, ","),
        csv_line("Agent", &un, "Test agent.un", w.day, &UN_D, ","),
        csv_line("Agent", &un, "Test agent.un", d1, &UN_D1, ","),
    ]
    .concat();
    assert_eq!(text, expected);

    let status = w
        .export(
            "dir",
            ExportDailyReportRequest {
                date: Some(date(Utc::now().date_naive() + Days::new(2))),
                ..Default::default()
            },
        )
        .await
        .expect_err("future");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["date"]);
}
