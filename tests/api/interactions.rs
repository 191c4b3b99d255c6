//! RecordCall and RecordVisit through a real gRPC client: proof of presence, validation, scope,
//! promises, scoring and retries.

use akig::proto::v1::{
    CallDetails, InteractionOutcome, LatLng, LocationCheck, NewPromise, PromiseStatus,
    RecordCallRequest, RecordCallResponse, RecordVisitRequest, RecordVisitResponse, VisitDetails,
    interaction,
};
use chrono::{Duration, NaiveDate, Utc};
use sqlx::PgPool;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::support::{
    KALOUM, TestApp, TestDb, bad_fields, count, create_site, create_tenant, create_user, date,
    error_reason, insert_mission, message, spawn_app, today, today_minutes_ago, ts,
};

const RENT: i64 = 1_000_000;

/// One site (KAL) with an agent and a tenant living in Kaloum; another site (MAT) with its own
/// agent and tenant; an admin.
struct World {
    app: TestApp,
    pool: PgPool,
    site: Uuid,
    agent: Uuid,
    token: String,
    tenant: Uuid,
    other_agent: Uuid,
    other_tenant: Uuid,
    /// Dropped last: the database outlives the server.
    _db: TestDb,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let pool = &db.pool;
        let site = create_site(pool, "KAL").await;
        let other_site = create_site(pool, "MAT").await;
        let agent = create_user(pool, "agent.kal", "agent", &[site], None).await;
        let other_agent = create_user(pool, "agent.mat", "agent", &[other_site], None).await;
        create_user(pool, "admin", "admin", &[], None).await;
        create_user(pool, "superviseur", "supervisor", &[site], None).await;
        let tenant = create_tenant(pool, site, "Fatoumata Camara", RENT, Some(KALOUM)).await;
        let other_tenant =
            create_tenant(pool, other_site, "Mamadou Diallo", RENT, Some(KALOUM)).await;
        let app = spawn_app(&db).await;
        let token = app.token("agent.kal").await;
        Self {
            app,
            pool: db.pool.clone(),
            site,
            agent,
            token,
            tenant,
            other_agent,
            other_tenant,
            _db: db,
        }
    }

    async fn visit(
        &self,
        request: RecordVisitRequest,
    ) -> Result<RecordVisitResponse, tonic::Status> {
        self.visit_as(&self.token, request).await
    }

    async fn visit_as(
        &self,
        token: &str,
        request: RecordVisitRequest,
    ) -> Result<RecordVisitResponse, tonic::Status> {
        message(self.app.collections(token).await.record_visit(request)).await
    }

    async fn call(&self, request: RecordCallRequest) -> Result<RecordCallResponse, tonic::Status> {
        self.call_as(&self.token, request).await
    }

    async fn call_as(
        &self,
        token: &str,
        request: RecordCallRequest,
    ) -> Result<RecordCallResponse, tonic::Status> {
        message(self.app.collections(token).await.record_call(request)).await
    }

    async fn count(&self, sql: &str) -> i64 {
        count(&self.pool, sql).await
    }
}

/// A visit to `tenant` ten minutes ago (still today), from (lat, lng) with a 10 m fix taken half a minute
/// before.
fn visit_at(tenant: Uuid, lat: f64, lng: f64) -> RecordVisitRequest {
    let occurred_at = today_minutes_ago(10);
    RecordVisitRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        occurred_at: Some(ts(occurred_at)),
        outcome: InteractionOutcome::Absent as i32,
        notes: "Porte fermée".into(),
        visit: Some(VisitDetails {
            location: Some(LatLng {
                latitude: lat,
                longitude: lng,
            }),
            accuracy_m: 10.0,
            fix_time: Some(ts(occurred_at - Duration::seconds(30))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A call to `tenant` five minutes ago (still today) with `outcome`.
fn call_to(tenant: Uuid, outcome: InteractionOutcome) -> RecordCallRequest {
    RecordCallRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        occurred_at: Some(ts(today_minutes_ago(5))),
        outcome: outcome as i32,
        call: Some(CallDetails {
            phone: "+224 621 23 45 67".into(),
            duration: Some(prost_types::Duration {
                seconds: 95,
                nanos: 0,
            }),
        }),
        ..Default::default()
    }
}

/// A call that obtained a promise of `amount` for `promised`.
fn promise_call(tenant: Uuid, amount: i64, promised: NaiveDate) -> RecordCallRequest {
    RecordCallRequest {
        promise: Some(NewPromise {
            amount_gnf: amount,
            promised_date: Some(date(promised)),
        }),
        ..call_to(tenant, InteractionOutcome::PromiseMade)
    }
}

fn visit_details(response: &RecordVisitResponse) -> VisitDetails {
    match response
        .visit
        .as_ref()
        .and_then(|v| v.details.clone())
        .expect("details")
    {
        interaction::Details::Visit(details) => details,
        interaction::Details::Call(_) => panic!("a visit answered call details"),
    }
}

const KALOUM_LAT: f64 = KALOUM.0;
const KALOUM_LNG: f64 = KALOUM.1;
/// About 500 m of longitude at Kaloum's latitude.
const EAST_500M: f64 = 0.004559;
/// About 150 m of latitude.
const NORTH_150M: f64 = 0.001349;

#[tokio::test]
async fn a_visit_500_m_from_home_is_far_away_with_its_distance() {
    let w = World::new().await;
    let response = w
        .visit(visit_at(w.tenant, KALOUM_LAT, KALOUM_LNG + EAST_500M))
        .await
        .expect("visit recorded");
    let details = visit_details(&response);
    let distance = details.distance_to_home_m.expect("a distance");
    assert!((490.0..510.0).contains(&distance), "{distance}");
    assert!(details.far_away);
    assert_eq!(details.location_check, LocationCheck::FarAway as i32);
    assert_eq!(response.score_points, 1);
    let (far, stored): (bool, f64) = sqlx::query_as(
        "SELECT is_far_from_tenant, distance_to_tenant_m FROM interactions WHERE tenant_id = $1",
    )
    .bind(w.tenant)
    .fetch_one(&w.pool)
    .await
    .expect("row");
    assert!(far);
    assert!((stored - distance).abs() < 1e-6);
}

#[tokio::test]
async fn a_mock_location_visit_is_far_away_even_at_the_door() {
    let w = World::new().await;
    let mut request = visit_at(w.tenant, KALOUM_LAT, KALOUM_LNG);
    if let Some(visit) = request.visit.as_mut() {
        visit.is_mock_location = true;
    }
    let response = w.visit(request).await.expect("visit recorded");
    let details = visit_details(&response);
    assert!(details.far_away);
    assert_eq!(details.location_check, LocationCheck::MockLocation as i32);
    assert!(details.distance_to_home_m.expect("distance") < 1.0);
    assert!(details.is_mock_location);
}

#[tokio::test]
async fn a_visit_within_150_m_is_near() {
    let w = World::new().await;
    let response = w
        .visit(visit_at(w.tenant, KALOUM_LAT + NORTH_150M, KALOUM_LNG))
        .await
        .expect("visit recorded");
    let details = visit_details(&response);
    let distance = details.distance_to_home_m.expect("a distance");
    assert!((140.0..160.0).contains(&distance), "{distance}");
    assert!(!details.far_away);
    assert_eq!(details.location_check, LocationCheck::Near as i32);
    assert_eq!(details.accuracy_m, 10.0);
}

#[tokio::test]
async fn a_visit_without_a_fix_or_home_is_flagged_not_refused() {
    let w = World::new().await;
    let mut no_fix = visit_at(w.tenant, 0.0, 0.0);
    no_fix.visit = None;
    let response = w.visit(no_fix).await.expect("visit without fix");
    let details = visit_details(&response);
    assert_eq!(details.location_check, LocationCheck::NoFix as i32);
    assert_eq!(details.distance_to_home_m, None);
    assert!(!details.far_away);

    let homeless = create_tenant(&w.pool, w.site, "Aïssatou Bah", RENT, None).await;
    let response = w
        .visit(visit_at(homeless, KALOUM_LAT, KALOUM_LNG))
        .await
        .expect("visit of a tenant without home location");
    let details = visit_details(&response);
    assert_eq!(details.location_check, LocationCheck::NoHomeLocation as i32);
    assert_eq!(details.distance_to_home_m, None);
}

/// The visit's location check as GetTenantHistory shows it.
async fn history_check(w: &World, tenant: Uuid) -> Vec<(i32, bool)> {
    let history = message(w.app.collections(&w.token).await.get_tenant_history(
        akig::proto::v1::GetTenantHistoryRequest {
            tenant_id: tenant.to_string(),
            ..Default::default()
        },
    ))
    .await
    .expect("history");
    history
        .entries
        .iter()
        .filter_map(|entry| match &entry.entry {
            Some(akig::proto::v1::history_entry::Entry::Visit(visit)) => match &visit.details {
                Some(interaction::Details::Visit(d)) => Some((d.location_check, d.far_away)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_stale_or_placeholder_fix_is_no_proof_either_way() {
    let w = World::new().await;
    let occurred_at = Utc::now() - Duration::minutes(30);
    let with = |lat: f64, lng: f64, accuracy_m: f64, fix_time: Option<chrono::DateTime<Utc>>| {
        let mut request = visit_at(w.tenant, lat, lng);
        request.occurred_at = Some(ts(occurred_at));
        if let Some(visit) = request.visit.as_mut() {
            visit.accuracy_m = accuracy_m;
            visit.fix_time = fix_time.map(ts);
        }
        request
    };
    let far_lng = KALOUM_LNG + 0.01;
    let epoch_1999 = chrono::DateTime::from_timestamp(915_148_800, 0).expect("1999-01-01");
    // At the door, or a kilometre away: a fix taken hours before, after the visit, in 1999,
    // or at a time the device does not give proves nothing.
    let stale = [
        (KALOUM_LNG, Some(occurred_at - Duration::hours(3))),
        (far_lng, Some(occurred_at - Duration::hours(3))),
        (far_lng, Some(occurred_at + Duration::minutes(20))),
        (KALOUM_LNG, Some(epoch_1999)),
        (KALOUM_LNG, None),
        (far_lng, None),
    ]
    .map(|(lng, fix_time)| {
        (
            with(KALOUM_LAT, lng, 10.0, fix_time),
            LocationCheck::StaleFix,
        )
    });
    let cases = [
        // Positions of devices without a fix.
        (with(0.0, 0.0, 10.0, None), LocationCheck::UnreliableFix),
        (
            with(37.4220, -122.0840, 5.0, None),
            LocationCheck::UnreliableFix,
        ),
        (
            with(KALOUM_LAT, far_lng, 0.0, None),
            LocationCheck::UnreliableFix,
        ),
        (
            with(KALOUM_LAT, far_lng, -1.0, None),
            LocationCheck::UnreliableFix,
        ),
        (
            with(KALOUM_LAT, far_lng, 25_000.0, None),
            LocationCheck::UnreliableFix,
        ),
    ];
    let mut expected = Vec::new();
    for (request, check) in stale.into_iter().chain(cases) {
        let response = w.visit(request).await.expect("recorded, not refused");
        let details = visit_details(&response);
        assert_eq!(details.location_check, check as i32, "{details:?}");
        assert!(!details.far_away, "{details:?}");
        expected.push((check as i32, false));
    }
    // A fresh, sharp fix still decides.
    let fresh = w
        .visit(with(
            KALOUM_LAT,
            far_lng,
            10.0,
            Some(occurred_at - Duration::minutes(1)),
        ))
        .await
        .expect("recorded");
    assert_eq!(
        visit_details(&fresh).location_check,
        LocationCheck::FarAway as i32
    );
    expected.push((LocationCheck::FarAway as i32, true));
    // Reads show what the answers showed.
    let mut shown = history_check(&w, w.tenant).await;
    shown.sort();
    expected.sort();
    assert_eq!(shown, expected);
    assert_eq!(
        w.count("SELECT count(*) FROM interactions WHERE is_far_from_tenant")
            .await,
        1
    );
}

#[tokio::test]
async fn bad_coordinates_are_refused_naming_the_field_and_write_nothing() {
    let w = World::new().await;
    for (lat, lng, field) in [
        (f64::NAN, KALOUM_LNG, "visit.location.latitude"),
        (91.0, KALOUM_LNG, "visit.location.latitude"),
        (f64::INFINITY, KALOUM_LNG, "visit.location.latitude"),
        (KALOUM_LAT, -181.0, "visit.location.longitude"),
        (KALOUM_LAT, f64::NAN, "visit.location.longitude"),
    ] {
        let status = w
            .visit(visit_at(w.tenant, lat, lng))
            .await
            .expect_err("bad coordinates");
        assert_eq!(status.code(), Code::InvalidArgument, "{lat},{lng}");
        assert_eq!(bad_fields(&status), [field], "{lat},{lng}");
    }
    let mut bad_accuracy = visit_at(w.tenant, KALOUM_LAT, KALOUM_LNG);
    if let Some(visit) = bad_accuracy.visit.as_mut() {
        visit.accuracy_m = f64::NAN;
    }
    let status = w.visit(bad_accuracy).await.expect_err("not a number");
    assert_eq!(bad_fields(&status), ["visit.accuracy_m"]);

    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 0);
    assert_eq!(w.count("SELECT count(*) FROM score_events").await, 0);
    assert_eq!(w.count("SELECT count(*) FROM idempotency_keys").await, 0);
}

#[tokio::test]
async fn other_bad_fields_are_each_named() {
    let w = World::new().await;
    let mut request = call_to(w.tenant, InteractionOutcome::Unspecified);
    request.notes = "x".repeat(2001);
    request.call = Some(CallDetails {
        phone: "0621234567".into(),
        duration: Some(prost_types::Duration {
            seconds: -5,
            nanos: 0,
        }),
    });
    request.mission_id = "not-a-uuid".into();
    let status = w.call(request).await.expect_err("bad call");
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = bad_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "call.duration",
            "call.phone",
            "mission_id",
            "notes",
            "outcome"
        ]
    );

    let mut future = call_to(w.tenant, InteractionOutcome::NoAnswer);
    future.occurred_at = Some(ts(Utc::now() + Duration::hours(1)));
    let status = w.call(future).await.expect_err("in the future");
    assert_eq!(bad_fields(&status), ["occurred_at"]);
    assert_eq!(error_reason(&status), "ERROR_REASON_OCCURRED_AT_IN_FUTURE");
    let mut old = call_to(w.tenant, InteractionOutcome::NoAnswer);
    old.occurred_at = Some(ts(Utc::now() - Duration::days(40)));
    let status = w.call(old).await.expect_err("too old");
    assert_eq!(bad_fields(&status), ["occurred_at"]);
    assert_eq!(error_reason(&status), "ERROR_REASON_OCCURRED_AT_TOO_OLD");
    // Visits alike, alone or with another bad field.
    for (hours, reason) in [
        (1, "ERROR_REASON_OCCURRED_AT_IN_FUTURE"),
        (-24 * 40, "ERROR_REASON_OCCURRED_AT_TOO_OLD"),
    ] {
        let mut visit = visit_at(w.tenant, KALOUM_LAT, KALOUM_LNG);
        visit.occurred_at = Some(ts(Utc::now() + Duration::hours(hours)));
        let status = w.visit(visit.clone()).await.expect_err("out of bounds");
        assert_eq!(bad_fields(&status), ["occurred_at"]);
        assert_eq!(error_reason(&status), reason);
        visit.notes = "\u{0}".into();
        let status = w.visit(visit).await.expect_err("two faults");
        assert_eq!(bad_fields(&status), ["notes", "occurred_at"]);
        assert_eq!(error_reason(&status), reason);
    }
    let mut missing = call_to(w.tenant, InteractionOutcome::NoAnswer);
    missing.request_id = String::new();
    let status = w.call(missing).await.expect_err("no request id");
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 0);
}

#[tokio::test]
async fn unknown_tenant_is_not_found() {
    let w = World::new().await;
    let status = w
        .visit(visit_at(Uuid::new_v4(), KALOUM_LAT, KALOUM_LNG))
        .await
        .expect_err("unknown tenant");
    assert_eq!(status.code(), Code::NotFound);
    let status = w
        .call(call_to(Uuid::new_v4(), InteractionOutcome::NoAnswer))
        .await
        .expect_err("unknown tenant");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 0);
}

#[tokio::test]
async fn a_tenant_of_another_site_is_permission_denied() {
    let w = World::new().await;
    let status = w
        .visit(visit_at(w.other_tenant, KALOUM_LAT, KALOUM_LNG))
        .await
        .expect_err("other site");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&status), "ERROR_REASON_OUT_OF_SCOPE");
    let status = w
        .call(call_to(w.other_tenant, InteractionOutcome::NoAnswer))
        .await
        .expect_err("other site");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&status), "ERROR_REASON_OUT_OF_SCOPE");
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 0);
}

#[tokio::test]
async fn a_role_without_the_permission_is_refused() {
    let w = World::new().await;
    let supervisor = w.app.token("superviseur").await;
    let status = w
        .call_as(&supervisor, call_to(w.tenant, InteractionOutcome::NoAnswer))
        .await
        .expect_err("supervisors do not record calls");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&status), "ERROR_REASON_PERMISSION_MISSING");
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 0);
}

#[tokio::test]
async fn an_inactive_tenant_is_a_failed_precondition() {
    let w = World::new().await;
    sqlx::query("UPDATE tenants SET active = false WHERE id = $1")
        .bind(w.tenant)
        .execute(&w.pool)
        .await
        .expect("move out");
    let status = w
        .call(call_to(w.tenant, InteractionOutcome::TenantMoved))
        .await
        .expect_err("inactive");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.get_details_error_info().expect("info").reason,
        "ERROR_REASON_TENANT_INACTIVE"
    );
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 0);
}

#[tokio::test]
async fn a_promise_in_the_past_is_refused_and_nothing_is_written() {
    let w = World::new().await;
    let yesterday = today() - Duration::days(1);
    let status = w
        .call(promise_call(w.tenant, 500_000, yesterday))
        .await
        .expect_err("past promise");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["promise.promised_date"]);
    assert_eq!(
        status.get_details_error_info().map(|i| i.reason),
        Some("ERROR_REASON_PROMISE_DATE_IN_PAST".to_owned())
    );

    // Too far ahead, zero and absurd amounts.
    let status = w
        .call(promise_call(
            w.tenant,
            500_000,
            today() + Duration::days(91),
        ))
        .await
        .expect_err("beyond the horizon");
    assert_eq!(bad_fields(&status), ["promise.promised_date"]);
    for amount in [0, -5, 1_000_000_001] {
        let status = w
            .call(promise_call(w.tenant, amount, today()))
            .await
            .expect_err("bad amount");
        assert_eq!(bad_fields(&status), ["promise.amount_gnf"], "{amount}");
    }
    for table in [
        "interactions",
        "promises",
        "score_events",
        "agent_daily_scores",
    ] {
        assert_eq!(
            w.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

#[tokio::test]
async fn outcome_and_promise_must_match() {
    let w = World::new().await;
    let status = w
        .call(call_to(w.tenant, InteractionOutcome::PromiseMade))
        .await
        .expect_err("promise missing");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["promise"]);

    let mut refused_with_promise = promise_call(w.tenant, 500_000, today());
    refused_with_promise.outcome = InteractionOutcome::Refused as i32;
    let status = w
        .call(refused_with_promise)
        .await
        .expect_err("promise without PROMISE_MADE");
    assert_eq!(bad_fields(&status), ["promise"]);
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 0);
    assert_eq!(w.count("SELECT count(*) FROM promises").await, 0);
}

#[tokio::test]
async fn a_replay_returns_the_same_interaction_and_writes_once() {
    let w = World::new().await;
    let request = RecordVisitRequest {
        outcome: InteractionOutcome::PromiseMade as i32,
        promise: Some(NewPromise {
            amount_gnf: 400_000,
            promised_date: Some(date(today() + Duration::days(3))),
        }),
        ..visit_at(w.tenant, KALOUM_LAT, KALOUM_LNG)
    };
    let first = w.visit(request.clone()).await.expect("first");
    let second = w.visit(request.clone()).await.expect("replay");
    assert_eq!(first, second);
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM promises").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM score_events").await, 2);
    assert_eq!(
        w.count("SELECT count(*) FROM audit_log WHERE action = 'collections.visits.record'")
            .await,
        1
    );

    // The same request_id with another body is refused.
    let mut other = request.clone();
    other.notes = "autre chose".into();
    let status = w.visit(other).await.expect_err("reused request id");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.get_details_error_info().expect("info").reason,
        "ERROR_REASON_REQUEST_ID_REUSED"
    );

    // Long after the idempotency key expired (purged here), the stored interaction answers.
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(&w.pool)
        .await
        .expect("purge keys");
    let late = w.visit(request).await.expect("late retry");
    assert_eq!(
        late.visit.as_ref().map(|v| &v.interaction_id),
        first.visit.as_ref().map(|v| &v.interaction_id)
    );
    assert_eq!(late.promise, first.promise);
    assert_eq!(late.score_points, 3);
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM promises").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM score_events").await, 2);
    let daily: i32 = sqlx::query_scalar("SELECT visits FROM agent_daily_scores")
        .fetch_one(&w.pool)
        .await
        .expect("daily");
    assert_eq!(daily, 1);
}

#[tokio::test]
async fn a_retry_older_than_the_offline_window_finds_its_stored_call() {
    let w = World::new().await;
    let request_id = Uuid::new_v4();
    let long_ago = Utc::now() - Duration::days(45);
    // Stored 45 days ago (its idempotency key is long gone).
    let stored: Uuid = sqlx::query_scalar(
        "INSERT INTO interactions (kind, tenant_id, agent_id, outcome, occurred_at, received_at,
                                   request_id)
         VALUES ('call', $1, $2, 'no_answer', $3, $3, $4) RETURNING id",
    )
    .bind(w.tenant)
    .bind(w.agent)
    .bind(long_ago)
    .bind(request_id)
    .fetch_one(&w.pool)
    .await
    .expect("old call");
    let request = RecordCallRequest {
        request_id: request_id.to_string(),
        occurred_at: Some(ts(long_ago)),
        ..call_to(w.tenant, InteractionOutcome::NoAnswer)
    };
    let response = w.call(request.clone()).await.expect("late retry");
    assert_eq!(
        response.call.expect("call").interaction_id,
        stored.to_string()
    );
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 1);

    // A new call that old is still refused.
    let fresh = RecordCallRequest {
        request_id: Uuid::new_v4().to_string(),
        ..request
    };
    let status = w.call(fresh).await.expect_err("too old");
    assert_eq!(bad_fields(&status), ["occurred_at"]);
    assert_eq!(error_reason(&status), "ERROR_REASON_OCCURRED_AT_TOO_OLD");
}

#[tokio::test]
async fn score_events_add_up_to_the_daily_scores() {
    let w = World::new().await;
    // A visit that obtained a promise: +1 +2.
    let promised = w
        .visit(RecordVisitRequest {
            outcome: InteractionOutcome::PromiseMade as i32,
            promise: Some(NewPromise {
                amount_gnf: 500_000,
                promised_date: Some(date(today() + Duration::days(5))),
            }),
            ..visit_at(w.tenant, KALOUM_LAT, KALOUM_LNG)
        })
        .await
        .expect("visit with promise");
    assert_eq!(promised.score_points, 3);
    assert_eq!(promised.visit.as_ref().expect("visit").score_points, 3);
    // A refused visit: +1 -1.
    let refused = w
        .visit(RecordVisitRequest {
            outcome: InteractionOutcome::Refused as i32,
            ..visit_at(w.tenant, KALOUM_LAT, KALOUM_LNG)
        })
        .await
        .expect("refused visit");
    assert_eq!(refused.score_points, 0);
    // A refused call: -1; a call without answer: 0.
    let refused_call = w
        .call(call_to(w.tenant, InteractionOutcome::Refused))
        .await
        .expect("refused call");
    assert_eq!(refused_call.score_points, -1);
    let silent = w
        .call(call_to(w.tenant, InteractionOutcome::NoAnswer))
        .await
        .expect("no answer");
    assert_eq!(silent.score_points, 0);

    let events: Vec<(String, i32)> =
        sqlx::query_as("SELECT kind, points FROM score_events ORDER BY kind, points")
            .fetch_all(&w.pool)
            .await
            .expect("events");
    let expected: Vec<(String, i32)> = [
        ("promise", 2),
        ("refusal", -1),
        ("refusal", -1),
        ("visit", 1),
        ("visit", 1),
    ]
    .into_iter()
    .map(|(k, p)| (k.to_owned(), p))
    .collect();
    assert_eq!(events, expected);

    let (score, calls, visits, promises, refusals): (i32, i32, i32, i32, i32) = sqlx::query_as(
        "SELECT score, calls, visits, promises, refusals FROM agent_daily_scores
         WHERE agent_id = $1 AND day = $2",
    )
    .bind(w.agent)
    .bind(today())
    .fetch_one(&w.pool)
    .await
    .expect("daily row");
    assert_eq!((score, calls, visits, promises, refusals), (2, 2, 2, 1, 2));
    let recomputed: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(points), 0)::bigint FROM score_events WHERE agent_id = $1 AND day = $2",
    )
    .bind(w.agent)
    .bind(today())
    .fetch_one(&w.pool)
    .await
    .expect("sum");
    assert_eq!(i64::from(score), recomputed);
}

#[tokio::test]
async fn an_offline_action_scores_on_the_day_it_happened() {
    let w = World::new().await;
    let three_days_ago = Utc::now() - Duration::days(3);
    let request = RecordVisitRequest {
        occurred_at: Some(ts(three_days_ago)),
        ..visit_at(w.tenant, KALOUM_LAT, KALOUM_LNG)
    };
    w.visit(request).await.expect("offline visit");
    let day: NaiveDate = sqlx::query_scalar("SELECT day FROM score_events")
        .fetch_one(&w.pool)
        .await
        .expect("event");
    assert_eq!(day, three_days_ago.date_naive());
    let daily_day: NaiveDate = sqlx::query_scalar("SELECT day FROM agent_daily_scores")
        .fetch_one(&w.pool)
        .await
        .expect("daily");
    assert_eq!(daily_day, day);
}

#[tokio::test]
async fn a_second_promise_supersedes_the_first() {
    let w = World::new().await;
    let first = w
        .call(promise_call(w.tenant, 300_000, today() + Duration::days(2)))
        .await
        .expect("first promise")
        .promise
        .expect("promise");
    assert_eq!(first.status, PromiseStatus::Pending as i32);
    let second = w
        .call(promise_call(w.tenant, 600_000, today() + Duration::days(7)))
        .await
        .expect("second promise")
        .promise
        .expect("promise");
    assert_eq!(second.status, PromiseStatus::Pending as i32);

    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT id::text, status, cancel_reason FROM promises ORDER BY created_at, id",
    )
    .fetch_all(&w.pool)
    .await
    .expect("promises");
    assert_eq!(
        rows,
        [
            (
                first.promise_id.clone(),
                "cancelled".to_owned(),
                Some("superseded".to_owned())
            ),
            (second.promise_id.clone(), "pending".to_owned(), None),
        ]
    );
    let events: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT promise_id::text, kind, reason FROM promise_events ORDER BY id")
            .fetch_all(&w.pool)
            .await
            .expect("events");
    assert_eq!(
        events,
        [(
            first.promise_id.clone(),
            "cancelled".to_owned(),
            Some("superseded".to_owned())
        )]
    );

    // A promise made before the latest one (a phone that synced late) arrives superseded.
    let late = RecordCallRequest {
        occurred_at: Some(ts(Utc::now() - Duration::hours(2))),
        ..promise_call(w.tenant, 100_000, today() + Duration::days(1))
    };
    let late = w
        .call(late)
        .await
        .expect("late promise")
        .promise
        .expect("promise");
    assert_eq!(late.status, PromiseStatus::Cancelled as i32);
    assert_eq!(late.last_change_reason, "superseded");
    let pending: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM promises WHERE status = 'pending'")
            .fetch_all(&w.pool)
            .await
            .expect("pending");
    assert_eq!(pending, [second.promise_id]);
}

#[tokio::test]
async fn only_an_admin_records_for_another_agent() {
    let w = World::new().await;
    let for_other = RecordCallRequest {
        agent_id: w.other_agent.to_string(),
        ..call_to(w.tenant, InteractionOutcome::NoAnswer)
    };
    let status = w
        .call(for_other.clone())
        .await
        .expect_err("agents record only for themselves");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&status), "ERROR_REASON_PERMISSION_MISSING");
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 0);

    // Naming oneself is the same as leaving it empty.
    let own = RecordCallRequest {
        agent_id: w.agent.to_string(),
        ..call_to(w.tenant, InteractionOutcome::NoAnswer)
    };
    w.call(own).await.expect("own id");

    let admin = w.app.token("admin").await;
    let response = w
        .call_as(&admin, for_other)
        .await
        .expect("admin back-office entry");
    let call = response.call.expect("call");
    assert_eq!(
        call.agent.expect("agent").user_id,
        w.other_agent.to_string()
    );
    let recorder: Uuid = sqlx::query_scalar(
        "SELECT actor_id FROM audit_log WHERE action = 'collections.calls.record'
         AND target_id = $1",
    )
    .bind(&call.interaction_id)
    .fetch_one(&w.pool)
    .await
    .expect("audit");
    assert_ne!(recorder, w.other_agent);

    let not_an_agent = RecordCallRequest {
        agent_id: Uuid::new_v4().to_string(),
        ..call_to(w.tenant, InteractionOutcome::NoAnswer)
    };
    let status = w
        .call_as(&admin, not_an_agent)
        .await
        .expect_err("unknown agent");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn the_mission_must_be_the_agents_for_this_tenant() {
    let w = World::new().await;
    let mission = |agent, tenant, site| insert_mission(&w.pool, agent, tenant, site);
    let own = mission(w.agent, w.tenant, w.site).await;
    let other_tenant = create_tenant(&w.pool, w.site, "Kadiatou Sow", RENT, Some(KALOUM)).await;
    let of_other_agent = mission(w.other_agent, other_tenant, w.site).await;

    let linked = w
        .visit(RecordVisitRequest {
            mission_id: own.to_string(),
            ..visit_at(w.tenant, KALOUM_LAT, KALOUM_LNG)
        })
        .await
        .expect("visit for the mission");
    assert_eq!(linked.visit.expect("visit").mission_id, own.to_string());

    let status = w
        .visit(RecordVisitRequest {
            mission_id: of_other_agent.to_string(),
            ..visit_at(other_tenant, KALOUM_LAT, KALOUM_LNG)
        })
        .await
        .expect_err("another agent's mission");
    assert_mission_mismatch(&status);
    let status = w
        .visit(RecordVisitRequest {
            mission_id: own.to_string(),
            ..visit_at(other_tenant, KALOUM_LAT, KALOUM_LNG)
        })
        .await
        .expect_err("the mission of another tenant");
    assert_mission_mismatch(&status);
    let status = w
        .visit(RecordVisitRequest {
            mission_id: Uuid::new_v4().to_string(),
            ..visit_at(w.tenant, KALOUM_LAT, KALOUM_LNG)
        })
        .await
        .expect_err("unknown mission");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(w.count("SELECT count(*) FROM interactions").await, 1);
}

#[tokio::test]
async fn a_call_answers_its_details_and_audits() {
    let w = World::new().await;
    let response = w
        .call(promise_call(w.tenant, 750_000, today() + Duration::days(4)))
        .await
        .expect("call");
    let call = response.call.expect("call");
    assert_eq!(call.outcome, InteractionOutcome::PromiseMade as i32);
    assert_eq!(
        call.tenant.as_ref().expect("tenant").full_name,
        "Fatoumata Camara"
    );
    assert_eq!(
        call.agent.as_ref().expect("agent").user_id,
        w.agent.to_string()
    );
    match call.details.expect("details") {
        interaction::Details::Call(details) => {
            assert_eq!(details.phone, "+224621234567");
            assert_eq!(details.duration.expect("duration").seconds, 95);
        }
        interaction::Details::Visit(_) => panic!("a call answered visit details"),
    }
    let promise = response.promise.expect("promise");
    assert_eq!(promise.amount_gnf, 750_000);
    assert_eq!(promise.interaction_id, call.interaction_id);
    assert_eq!(call.promise_id, promise.promise_id);
    assert_eq!(promise.paid_gnf, 0);
    assert_eq!(promise.reschedule_count, 0);
    assert_eq!(
        promise.original_promised_date,
        Some(date(today() + Duration::days(4)))
    );
    assert_eq!(response.score_points, 2);
    let audited = w
        .count("SELECT count(*) FROM audit_log WHERE action = 'collections.calls.record' AND outcome = 'ok'")
        .await;
    assert_eq!(audited, 1);
}

fn assert_mission_mismatch(status: &tonic::Status) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_fields(status), ["mission_id"]);
    assert_eq!(
        status.get_details_error_info().expect("info").reason,
        "ERROR_REASON_MISSION_MISMATCH"
    );
}
