//! DashboardService through a real gRPC client, on a small ledger with figures computed by
//! hand: the good-payer ranking (ties, reversals, partial payments, the minimum number of
//! charges, paging) and its scope (a site manager never sees another site's tenants).

use akig::proto::v1::{DateRange, ListGoodPayersRequest, ListGoodPayersResponse};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    LedgerEntry, TestApp, TestDb, authed, bad_fields, create_charge, create_site, create_tenant,
    create_user, date, error_reason, insert_ledger_entry, spawn_app,
};

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, m, d).expect("valid date")
}

fn noon(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(12, 0, 0).expect("valid time").and_utc()
}

/// The year 2025, the period every request of these tests names.
fn year_2025() -> Option<DateRange> {
    Some(DateRange {
        start_date: Some(date(day(1, 1))),
        end_date: Some(date(day(12, 31))),
    })
}

/// (rank, name, charges, on time, paid, days early) of every line.
type Line = (i32, String, i64, i64, i64, f64);

fn lines(response: &ListGoodPayersResponse) -> Vec<Line> {
    response
        .good_payers
        .iter()
        .map(|g| {
            (
                g.rank,
                g.tenant.as_ref().expect("tenant").full_name.clone(),
                g.charges_count,
                g.on_time_count,
                g.paid_gnf,
                g.average_days_early,
            )
        })
        .collect()
}

fn line(rank: i32, name: &str, charges: i64, on_time: i64, paid: i64, early: f64) -> Line {
    (rank, name.to_owned(), charges, on_time, paid, early)
}

async fn good_payers(
    app: &TestApp,
    username: &str,
    request: ListGoodPayersRequest,
) -> Result<ListGoodPayersResponse, tonic::Status> {
    let token = app.token(username).await;
    let mut client = app.dashboard_client().await;
    client
        .list_good_payers(authed(request, &token))
        .await
        .map(tonic::Response::into_inner)
}

/// Sites KAL and MAT; "dir" (director), "gest.kal" (manager of KAL), "agent.un" collects.
///
/// KAL, charges due on the 5th of January, February and March 2025:
/// - Aminata Bah: 1,000 each, paid on the 3rd: 3/3 on time, 3,000 paid, 2 days early; a charge
///   due in January 2026 (outside the period) stays unpaid;
/// - Binta Camara: 1,000 each; January paid on the 5th (on time, 0); February paid on the 4th,
///   that payment reversed on the 10th, paid again on the 20th (late, −15); March paid on the
///   1st (+4): 2/3, 3,000 paid, −11/3 days;
/// - Chérif Diallo: 2,000 each; January paid on the 1st (+4); February 1,000 paid on the 5th
///   (not in full: late); March unpaid: 1/3, 3,000 paid, 4 days;
/// - Djenab Sow: January and February only, 1,000 paid on the 5th: 2/2, 2,000, 0 days.
///
/// MAT: Fodé Touré, 1,500 each, paid on the 1st: 3/3, 4,500, 4 days.
async fn world(db: &TestDb) -> TestApp {
    let pool = &db.pool;
    let kal = create_site(pool, "KAL").await;
    let mat = create_site(pool, "MAT").await;
    let agent = create_user(pool, "agent.un", "agent", &[kal, mat], None).await;
    create_user(pool, "gest.kal", "site_manager", &[kal], None).await;
    create_user(pool, "dir", "director", &[], None).await;

    let pay = |tenant: Uuid, charge: i64, amount: i64, on: NaiveDate, reverses: Option<Uuid>| {
        let pool = pool.clone();
        async move {
            let signed = if reverses.is_some() { -amount } else { amount };
            insert_ledger_entry(
                &pool,
                &LedgerEntry {
                    tenant_id: tenant,
                    agent_id: agent,
                    amount,
                    occurred_at: noon(on),
                    reverses,
                    allocations: &[(charge, signed)],
                },
            )
            .await
        }
    };
    let charges = |tenant: Uuid, months: &'static [u32], amount| {
        let pool = pool.clone();
        async move {
            let mut ids = Vec::new();
            for &m in months {
                ids.push(create_charge(&pool, tenant, day(m, 1), day(m, 5), amount).await);
            }
            ids
        }
    };

    let aminata = create_tenant(pool, kal, "Aminata Bah", 1_000, None).await;
    let c = charges(aminata, &[1, 2, 3], 1_000).await;
    for (i, m) in [1, 2, 3].into_iter().enumerate() {
        pay(aminata, c[i], 1_000, day(m, 3), None).await;
    }
    let next_year = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    create_charge(
        pool,
        aminata,
        next_year,
        next_year.with_day0(4).expect("5th"),
        1_000,
    )
    .await;

    let binta = create_tenant(pool, kal, "Binta Camara", 1_000, None).await;
    let c = charges(binta, &[1, 2, 3], 1_000).await;
    pay(binta, c[0], 1_000, day(1, 5), None).await;
    let early = pay(binta, c[1], 1_000, day(2, 4), None).await;
    pay(binta, c[1], 1_000, day(2, 10), Some(early)).await;
    pay(binta, c[1], 1_000, day(2, 20), None).await;
    pay(binta, c[2], 1_000, day(3, 1), None).await;

    let cherif = create_tenant(pool, kal, "Chérif Diallo", 2_000, None).await;
    let c = charges(cherif, &[1, 2, 3], 2_000).await;
    pay(cherif, c[0], 2_000, day(1, 1), None).await;
    pay(cherif, c[1], 1_000, day(2, 5), None).await;

    let djenab = create_tenant(pool, kal, "Djenab Sow", 1_000, None).await;
    let c = charges(djenab, &[1, 2], 1_000).await;
    pay(djenab, c[0], 1_000, day(1, 5), None).await;
    pay(djenab, c[1], 1_000, day(2, 5), None).await;

    let fode = create_tenant(pool, mat, "Fodé Touré", 1_500, None).await;
    let c = charges(fode, &[1, 2, 3], 1_500).await;
    for (i, m) in [1, 2, 3].into_iter().enumerate() {
        pay(fode, c[i], 1_500, day(m, 1), None).await;
    }
    spawn_app(db).await
}

#[tokio::test]
async fn good_payers_are_ranked_with_exact_figures_and_scoped() {
    let db = TestDb::new().await;
    let app = world(&db).await;
    let request = |min: i32| ListGoodPayersRequest {
        period: year_2025(),
        min_charges_count: min,
        ..Default::default()
    };

    let all = good_payers(&app, "dir", request(0))
        .await
        .expect("director");
    assert_eq!(
        lines(&all),
        [
            line(1, "Fodé Touré", 3, 3, 4_500, 4.0),
            line(1, "Aminata Bah", 3, 3, 3_000, 2.0),
            line(3, "Binta Camara", 3, 2, 3_000, -11.0 / 3.0),
            line(4, "Chérif Diallo", 3, 1, 3_000, 4.0),
        ]
    );
    let rates: Vec<f64> = all.good_payers.iter().map(|g| g.punctuality_rate).collect();
    assert_eq!(rates, [1.0, 1.0, 2.0 / 3.0, 1.0 / 3.0]);
    let fode = all.good_payers[0].tenant.as_ref().expect("tenant");
    assert_eq!(fode.site_name, "MAT");
    assert!(all.next_page_token.is_empty());
    let period = all.period.expect("period");
    assert_eq!(period.start_date, Some(date(day(1, 1))));
    assert_eq!(period.end_date, Some(date(day(12, 31))));

    // The manager of KAL never sees MAT's tenant, not even by naming MAT.
    let kal = good_payers(&app, "gest.kal", request(2))
        .await
        .expect("manager");
    assert_eq!(
        lines(&kal),
        [
            line(1, "Aminata Bah", 3, 3, 3_000, 2.0),
            line(1, "Djenab Sow", 2, 2, 2_000, 0.0),
            line(3, "Binta Camara", 3, 2, 3_000, -11.0 / 3.0),
            line(4, "Chérif Diallo", 3, 1, 3_000, 4.0),
        ]
    );
    let mat_id = fode.site_id.clone();
    let other_site = good_payers(
        &app,
        "gest.kal",
        ListGoodPayersRequest {
            site_ids: vec![mat_id.clone()],
            ..request(0)
        },
    )
    .await
    .expect("manager naming another site");
    assert!(other_site.good_payers.is_empty());
    let only_mat = good_payers(
        &app,
        "dir",
        ListGoodPayersRequest {
            site_ids: vec![mat_id],
            ..request(0)
        },
    )
    .await
    .expect("director on MAT");
    assert_eq!(lines(&only_mat), [line(1, "Fodé Touré", 3, 3, 4_500, 4.0)]);

    // A period of February only: Binta's February charge is the late one.
    let february = good_payers(
        &app,
        "gest.kal",
        ListGoodPayersRequest {
            period: Some(DateRange {
                start_date: Some(date(day(2, 1))),
                end_date: Some(date(day(2, 28))),
            }),
            min_charges_count: 1,
            ..Default::default()
        },
    )
    .await
    .expect("february");
    assert_eq!(
        lines(&february),
        [
            line(1, "Aminata Bah", 1, 1, 1_000, 2.0),
            line(1, "Djenab Sow", 1, 1, 1_000, 0.0),
            line(3, "Binta Camara", 1, 0, 1_000, -15.0),
            line(3, "Chérif Diallo", 1, 0, 1_000, 0.0),
        ]
    );
}

#[tokio::test]
async fn good_payers_pages_and_refuses_bad_requests() {
    let db = TestDb::new().await;
    let app = world(&db).await;
    let mut names = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let page = good_payers(
            &app,
            "dir",
            ListGoodPayersRequest {
                period: year_2025(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("page");
        names.extend(lines(&page).into_iter().map(|l| (l.0, l.1)));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let want: Vec<(i32, String)> = [
        (1, "Fodé Touré"),
        (1, "Aminata Bah"),
        (3, "Binta Camara"),
        (4, "Chérif Diallo"),
    ]
    .into_iter()
    .map(|(r, n)| (r, n.to_owned()))
    .collect();
    assert_eq!(names, want);

    let first = good_payers(
        &app,
        "dir",
        ListGoodPayersRequest {
            period: year_2025(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .expect("first page");
    let status = good_payers(
        &app,
        "dir",
        ListGoodPayersRequest {
            page_size: 1,
            page_token: first.next_page_token,
            min_charges_count: 2,
            period: year_2025(),
            ..Default::default()
        },
    )
    .await
    .expect_err("token of other filters");
    assert_eq!(error_reason(&status), "ERROR_REASON_PAGE_TOKEN_INVALID");

    for (request, field) in [
        (
            ListGoodPayersRequest {
                period: Some(DateRange {
                    start_date: Some(date(day(1, 1))),
                    end_date: Some(date(NaiveDate::from_ymd_opt(2026, 1, 2).expect("d"))),
                }),
                ..Default::default()
            },
            "period",
        ),
        (
            ListGoodPayersRequest {
                min_charges_count: -1,
                ..Default::default()
            },
            "min_charges_count",
        ),
        (
            ListGoodPayersRequest {
                site_ids: vec!["not-a-uuid".into()],
                ..Default::default()
            },
            "site_ids[0]",
        ),
        (
            ListGoodPayersRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
    ] {
        let status = good_payers(&app, "dir", request)
            .await
            .expect_err("bad request");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(bad_fields(&status), [field]);
    }
}
