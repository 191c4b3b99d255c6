//! ListPromises, UpdatePromise and the settlement job: statuses derived from the ledger,
//! filters, paging, scope, reschedules and cancellations.

use std::collections::HashMap;

use akig::domain::{Gnf, PromiseProgress, conakry_day};
use akig::jobs::promises::{SETTLE_LOCK_ID, settle_due_promises};
use akig::proto::v1::{
    CallDetails, DateRange, InteractionOutcome, ListPromisesRequest, ListPromisesResponse,
    NewPromise, PaymentMethod, PaymentPromise, PromiseStatus, RecordCallRequest,
    RecordPaymentRequest, ReversePaymentRequest, UpdatePromiseRequest, UpdatePromiseResponse,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use prost_types::FieldMask;
use sqlx::PgPool;
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    KALOUM, TestApp, TestDb, bad_fields, count, create_site, create_tenant, create_user, date,
    error_reason, insert_cash_payment, insert_reversal, message, spawn_app, today, ts,
};

const RENT: i64 = 1_000_000;

/// A promise event as stored: kind, previous promised date, actor, reason.
type EventRow = (String, Option<NaiveDate>, Option<Uuid>, Option<String>);

/// KAL with its agent, site manager and tenants; MAT with its agent, site manager and a
/// tenant; a director and an accountant.
struct World {
    app: TestApp,
    pool: PgPool,
    kal: Uuid,
    mat: Uuid,
    agent: Uuid,
    agent_token: String,
    mat_agent: Uuid,
    mat_token: String,
    /// Dropped last: the database outlives the server.
    _db: TestDb,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let pool = &db.pool;
        let kal = create_site(pool, "KAL").await;
        let mat = create_site(pool, "MAT").await;
        let agent = create_user(pool, "agent.kal", "agent", &[kal], None).await;
        let mat_agent = create_user(pool, "agent.mat", "agent", &[mat], None).await;
        create_user(pool, "gestion.kal", "site_manager", &[kal], None).await;
        create_user(pool, "gestion.mat", "site_manager", &[mat], None).await;
        create_user(pool, "directeur", "director", &[], None).await;
        create_user(pool, "compta", "accountant", &[], None).await;
        let app = spawn_app(&db).await;
        let agent_token = app.token("agent.kal").await;
        let mat_token = app.token("agent.mat").await;
        Self {
            app,
            pool: db.pool.clone(),
            kal,
            mat,
            agent,
            agent_token,
            mat_agent,
            mat_token,
            _db: db,
        }
    }

    async fn tenant(&self, site: Uuid, name: &str) -> Uuid {
        create_tenant(&self.pool, site, name, RENT, Some(KALOUM)).await
    }

    /// A promise obtained by a call `made_days_ago` days ago, for `promised`.
    async fn promise(
        &self,
        token: &str,
        tenant: Uuid,
        amount: i64,
        made_days_ago: i64,
        promised: NaiveDate,
    ) -> PaymentPromise {
        let request = RecordCallRequest {
            request_id: Uuid::new_v4().to_string(),
            tenant_id: tenant.to_string(),
            occurred_at: Some(ts(made_at(made_days_ago))),
            outcome: InteractionOutcome::PromiseMade as i32,
            call: Some(CallDetails::default()),
            promise: Some(NewPromise {
                amount_gnf: amount,
                promised_date: Some(date(promised)),
            }),
            ..Default::default()
        };
        message(self.app.collections(token).await.record_call(request))
            .await
            .expect("promise recorded")
            .promise
            .expect("promise")
    }

    async fn list(
        &self,
        token: &str,
        request: ListPromisesRequest,
    ) -> Result<ListPromisesResponse, tonic::Status> {
        message(self.app.collections(token).await.list_promises(request)).await
    }

    async fn update(
        &self,
        token: &str,
        request: UpdatePromiseRequest,
    ) -> Result<UpdatePromiseResponse, tonic::Status> {
        message(self.app.collections(token).await.update_promise(request)).await
    }

    async fn stored_status(&self, promise_id: &str) -> String {
        sqlx::query_scalar("SELECT status FROM promises WHERE id = $1::uuid")
            .bind(promise_id)
            .fetch_one(&self.pool)
            .await
            .expect("status")
    }

    async fn count(&self, sql: &str) -> i64 {
        count(&self.pool, sql).await
    }
}

/// Noon (UTC = Conakry), `days` days ago: safely inside that day whatever the test's hour.
fn made_at(days: i64) -> DateTime<Utc> {
    let day = today() - Duration::days(days);
    let noon = day.and_hms_opt(12, 0, 0).expect("noon").and_utc();
    noon.min(Utc::now() - Duration::minutes(1))
}

fn names(response: &ListPromisesResponse) -> Vec<String> {
    response
        .promises
        .iter()
        .map(|p| p.tenant.as_ref().expect("tenant").full_name.clone())
        .collect()
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn update(promise: &PaymentPromise, paths: &[&str], reason: &str) -> UpdatePromiseRequest {
    UpdatePromiseRequest {
        request_id: Uuid::new_v4().to_string(),
        promise: Some(promise.clone()),
        update_mask: mask(paths),
        reason: reason.to_owned(),
        occurred_at: Some(ts(Utc::now() - Duration::minutes(1))),
    }
}

// ---------------------------------------------------------------------------------------------
// ListPromises

#[tokio::test]
async fn list_promises_filters_and_pages() {
    let w = World::new().await;
    let aminata = w.tenant(w.kal, "Aminata Bah").await;
    let binta = w.tenant(w.kal, "Binta Camara").await;
    let camara = w.tenant(w.kal, "Camara Sékou").await;
    let diallo = w.tenant(w.mat, "Diallo Alpha").await;
    let doumbouya = w.tenant(w.kal, "Doumbouya Awa").await;
    let in3 = today() + Duration::days(3);
    let in5 = today() + Duration::days(5);
    let in10 = today() + Duration::days(10);
    w.promise(&w.agent_token, binta, 200_000, 0, in3).await;
    w.promise(&w.agent_token, aminata, 100_000, 0, in3).await;
    w.promise(&w.agent_token, camara, 300_000, 0, in10).await;
    w.promise(&w.mat_token, diallo, 400_000, 0, in5).await;
    // Due five days ago with nothing paid: broken, before any job has run.
    let broken = w
        .promise(
            &w.agent_token,
            doumbouya,
            50_000,
            10,
            today() - Duration::days(5),
        )
        .await;
    assert_eq!(broken.status, PromiseStatus::Broken as i32);
    assert_eq!(w.stored_status(&broken.promise_id).await, "pending");

    let director = w.app.token("directeur").await;
    let all = w
        .list(&director, ListPromisesRequest::default())
        .await
        .expect("list");
    assert_eq!(
        names(&all),
        [
            "Doumbouya Awa",
            "Aminata Bah",
            "Binta Camara",
            "Diallo Alpha",
            "Camara Sékou"
        ]
    );
    assert_eq!(all.total_size, 5);
    assert_eq!(all.total_amount_gnf, 1_050_000);
    assert!(all.next_page_token.is_empty());

    // Pages of two give the same list.
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = w
            .list(
                &director,
                ListPromisesRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            )
            .await
            .expect("page");
        assert!(page.promises.len() <= 2);
        assert_eq!(page.total_size, 5);
        paged.extend(page.promises);
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, all.promises);

    // Filters.
    let broken_only = w
        .list(
            &director,
            ListPromisesRequest {
                statuses: vec![PromiseStatus::Broken as i32],
                ..Default::default()
            },
        )
        .await
        .expect("broken");
    assert_eq!(names(&broken_only), ["Doumbouya Awa"]);
    assert_eq!(broken_only.total_amount_gnf, 50_000);
    let open = w
        .list(
            &director,
            ListPromisesRequest {
                statuses: vec![PromiseStatus::Pending as i32, PromiseStatus::Kept as i32],
                ..Default::default()
            },
        )
        .await
        .expect("pending");
    assert_eq!(open.total_size, 4);
    let mat = w
        .list(
            &director,
            ListPromisesRequest {
                site_id: w.mat.to_string(),
                ..Default::default()
            },
        )
        .await
        .expect("site");
    assert_eq!(names(&mat), ["Diallo Alpha"]);
    let by_agent = w
        .list(
            &director,
            ListPromisesRequest {
                agent_id: w.mat_agent.to_string(),
                ..Default::default()
            },
        )
        .await
        .expect("agent");
    assert_eq!(names(&by_agent), ["Diallo Alpha"]);
    let by_tenant = w
        .list(
            &director,
            ListPromisesRequest {
                tenant_id: camara.to_string(),
                ..Default::default()
            },
        )
        .await
        .expect("tenant");
    assert_eq!(names(&by_tenant), ["Camara Sékou"]);
    let ranged = w
        .list(
            &director,
            ListPromisesRequest {
                promised_date_range: Some(DateRange {
                    start_date: Some(date(in3)),
                    end_date: Some(date(in5)),
                }),
                ..Default::default()
            },
        )
        .await
        .expect("range");
    assert_eq!(
        names(&ranged),
        ["Aminata Bah", "Binta Camara", "Diallo Alpha"]
    );
    assert_eq!(ranged.total_amount_gnf, 700_000);

    // A token is tied to its filters; bad filters name their field.
    let first = w
        .list(
            &director,
            ListPromisesRequest {
                page_size: 1,
                ..Default::default()
            },
        )
        .await
        .expect("first page");
    let status = w
        .list(
            &director,
            ListPromisesRequest {
                page_size: 1,
                page_token: first.next_page_token,
                site_id: w.kal.to_string(),
                ..Default::default()
            },
        )
        .await
        .expect_err("token for other filters");
    assert_eq!(bad_fields(&status), ["page_token"]);
    let status = w
        .list(
            &director,
            ListPromisesRequest {
                page_size: -1,
                statuses: vec![42],
                promised_date_range: Some(DateRange {
                    start_date: Some(date(in5)),
                    end_date: Some(date(in3)),
                }),
                ..Default::default()
            },
        )
        .await
        .expect_err("bad filters");
    assert_eq!(
        bad_fields(&status),
        ["page_size", "statuses[0]", "promised_date_range.end_date"]
    );
}

#[tokio::test]
async fn promise_lists_follow_the_callers_scope() {
    let w = World::new().await;
    let kal_tenant = w.tenant(w.kal, "Aminata Bah").await;
    let mat_tenant = w.tenant(w.mat, "Diallo Alpha").await;
    let in3 = today() + Duration::days(3);
    w.promise(&w.agent_token, kal_tenant, 100_000, 0, in3).await;
    w.promise(&w.mat_token, mat_tenant, 200_000, 0, in3).await;

    let own = w
        .list(&w.agent_token, ListPromisesRequest::default())
        .await
        .expect("agent list");
    assert_eq!(names(&own), ["Aminata Bah"]);
    assert_eq!(own.total_size, 1);
    // Asking for the other site gives nothing rather than its promises.
    let other = w
        .list(
            &w.agent_token,
            ListPromisesRequest {
                site_id: w.mat.to_string(),
                ..Default::default()
            },
        )
        .await
        .expect("agent list of another site");
    assert!(other.promises.is_empty());
    assert_eq!(other.total_size, 0);

    let manager = w.app.token("gestion.mat").await;
    let managed = w
        .list(&manager, ListPromisesRequest::default())
        .await
        .expect("manager list");
    assert_eq!(names(&managed), ["Diallo Alpha"]);

    let accountant = w.app.token("compta").await;
    let status = w
        .list(&accountant, ListPromisesRequest::default())
        .await
        .expect_err("accountants do not read promises");
    assert_eq!(status.code(), Code::PermissionDenied);
}

// ---------------------------------------------------------------------------------------------
// UpdatePromise

#[tokio::test]
async fn reschedule_keeps_the_original_date_and_counts() {
    let w = World::new().await;
    let tenant = w.tenant(w.kal, "Aminata Bah").await;
    let in3 = today() + Duration::days(3);
    let promise = w.promise(&w.agent_token, tenant, 100_000, 0, in3).await;

    let in10 = today() + Duration::days(10);
    let mut wanted = promise.clone();
    wanted.promised_date = Some(date(in10));
    let request = update(&wanted, &["promised_date"], "Salaire versé en retard");
    let moved = w
        .update(&w.agent_token, request.clone())
        .await
        .expect("reschedule")
        .promise
        .expect("promise");
    assert_eq!(moved.promised_date, Some(date(in10)));
    assert_eq!(moved.original_promised_date, Some(date(in3)));
    assert_eq!(moved.reschedule_count, 1);
    assert_eq!(moved.last_change_reason, "Salaire versé en retard");
    assert_eq!(moved.status, PromiseStatus::Pending as i32);
    assert_eq!(moved.amount_gnf, 100_000);

    // A replay answers the same and writes nothing more.
    let again = w
        .update(&w.agent_token, request)
        .await
        .expect("replay")
        .promise
        .expect("promise");
    assert_eq!(again, moved);
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT kind, previous_promised_date, actor_id, reason FROM promise_events ORDER BY id",
    )
    .fetch_all(&w.pool)
    .await
    .expect("events");
    assert_eq!(
        events,
        [(
            "rescheduled".to_owned(),
            Some(in3),
            Some(w.agent),
            Some("Salaire versé en retard".to_owned())
        )]
    );
    assert_eq!(
        w.count(
            "SELECT count(*) FROM audit_log WHERE action = 'collections.promises.update' AND outcome = 'ok'"
        )
        .await,
        1
    );

    // A second reschedule, with the amount: the first date stays the original.
    let in20 = today() + Duration::days(20);
    let mut wanted = moved.clone();
    wanted.promised_date = Some(date(in20));
    wanted.amount_gnf = 80_000;
    let manager = w.app.token("gestion.kal").await;
    let moved = w
        .update(
            &manager,
            update(
                &wanted,
                &["promised_date", "amount_gnf"],
                "Accord du gestionnaire",
            ),
        )
        .await
        .expect("second reschedule")
        .promise
        .expect("promise");
    assert_eq!(moved.promised_date, Some(date(in20)));
    assert_eq!(moved.original_promised_date, Some(date(in3)));
    assert_eq!(moved.reschedule_count, 2);
    assert_eq!(moved.amount_gnf, 80_000);

    // The amount alone is not a reschedule of the date.
    let mut wanted = moved.clone();
    wanted.amount_gnf = 60_000;
    let changed = w
        .update(
            &w.agent_token,
            update(&wanted, &["amount_gnf"], "Montant revu"),
        )
        .await
        .expect("amount")
        .promise
        .expect("promise");
    assert_eq!(changed.amount_gnf, 60_000);
    assert_eq!(changed.reschedule_count, 2);
    assert_eq!(changed.promised_date, Some(date(in20)));
    assert_eq!(
        w.count("SELECT count(*) FROM promise_events WHERE kind = 'rescheduled'")
            .await,
        3
    );
}

#[tokio::test]
async fn cancel_needs_a_reason_and_a_final_promise_refuses_changes() {
    let w = World::new().await;
    let tenant = w.tenant(w.kal, "Aminata Bah").await;
    let promise = w
        .promise(
            &w.agent_token,
            tenant,
            100_000,
            0,
            today() + Duration::days(3),
        )
        .await;
    let mut cancelled = promise.clone();
    cancelled.status = PromiseStatus::Cancelled as i32;

    let status = w
        .update(&w.agent_token, update(&cancelled, &["status"], "  "))
        .await
        .expect_err("no reason");
    assert_eq!(bad_fields(&status), ["reason"]);
    assert_eq!(w.stored_status(&promise.promise_id).await, "pending");

    let done = w
        .update(
            &w.agent_token,
            update(&cancelled, &["status"], "Le locataire conteste le montant"),
        )
        .await
        .expect("cancel")
        .promise
        .expect("promise");
    assert_eq!(done.status, PromiseStatus::Cancelled as i32);
    assert_eq!(done.last_change_reason, "Le locataire conteste le montant");
    assert!(done.resolve_time.is_some());
    let event: (String, Option<Uuid>, Option<String>) =
        sqlx::query_as("SELECT kind, actor_id, reason FROM promise_events")
            .fetch_one(&w.pool)
            .await
            .expect("event");
    assert_eq!(
        event,
        (
            "cancelled".to_owned(),
            Some(w.agent),
            Some("Le locataire conteste le montant".to_owned())
        )
    );

    // Final: no reschedule, no second cancellation.
    let mut moved = done.clone();
    moved.promised_date = Some(date(today() + Duration::days(9)));
    for request in [
        update(&moved, &["promised_date"], "Nouvelle date"),
        update(&cancelled, &["status"], "Encore une fois"),
    ] {
        let status = w
            .update(&w.agent_token, request)
            .await
            .expect_err("final promise");
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(error_reason(&status), "ERROR_REASON_PROMISE_NOT_PENDING");
    }
    assert_eq!(w.count("SELECT count(*) FROM promise_events").await, 1);
}

#[tokio::test]
async fn a_due_promise_is_final_before_the_job_stores_it() {
    let w = World::new().await;
    let tenant = w.tenant(w.kal, "Aminata Bah").await;
    let promise = w
        .promise(
            &w.agent_token,
            tenant,
            100_000,
            10,
            today() - Duration::days(2),
        )
        .await;
    assert_eq!(promise.status, PromiseStatus::Broken as i32);
    assert!(promise.resolve_time.is_some());
    let mut moved = promise.clone();
    moved.promised_date = Some(date(today() + Duration::days(5)));
    let status = w
        .update(
            &w.agent_token,
            update(&moved, &["promised_date"], "Nouvelle date"),
        )
        .await
        .expect_err("broken by the payments");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "ERROR_REASON_PROMISE_NOT_PENDING");
    assert_eq!(w.stored_status(&promise.promise_id).await, "pending");
}

#[tokio::test]
async fn bad_updates_name_their_field_and_write_nothing() {
    let w = World::new().await;
    let tenant = w.tenant(w.kal, "Aminata Bah").await;
    let promise = w
        .promise(
            &w.agent_token,
            tenant,
            100_000,
            0,
            today() + Duration::days(3),
        )
        .await;
    let mut past = promise.clone();
    past.promised_date = Some(date(today() - Duration::days(1)));
    let mut far = promise.clone();
    far.promised_date = Some(date(today() + Duration::days(120)));
    let mut kept = promise.clone();
    kept.status = PromiseStatus::Kept as i32;
    let mut zero = promise.clone();
    zero.amount_gnf = 0;
    let cases = [
        (
            update(&past, &["promised_date"], "Raison"),
            "promise.promised_date",
        ),
        (
            update(&far, &["promised_date"], "Raison"),
            "promise.promised_date",
        ),
        (update(&promise, &[], "Raison"), "update_mask"),
        (update(&promise, &["*"], "Raison"), "update_mask"),
        (update(&promise, &["notes"], "Raison"), "update_mask"),
        (update(&kept, &["status"], "Raison"), "promise.status"),
        (
            update(&zero, &["amount_gnf"], "Raison"),
            "promise.amount_gnf",
        ),
        (update(&promise, &["amount_gnf"], "no"), "reason"),
    ];
    for (request, field) in cases {
        let status = w
            .update(&w.agent_token, request)
            .await
            .expect_err("invalid update");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(bad_fields(&status), [field]);
    }
    let mut cancelled = promise.clone();
    cancelled.status = PromiseStatus::Cancelled as i32;
    let status = w
        .update(
            &w.agent_token,
            update(&cancelled, &["status", "promised_date"], "Raison"),
        )
        .await
        .expect_err("status with another path");
    assert_eq!(bad_fields(&status), ["update_mask"]);
    let mut stale = update(&promise, &["amount_gnf"], "Raison");
    stale.occurred_at = Some(ts(Utc::now() - Duration::days(31)));
    let status = w.update(&w.agent_token, stale).await.expect_err("too old");
    assert_eq!(bad_fields(&status), ["occurred_at"]);

    assert_eq!(w.count("SELECT count(*) FROM promise_events").await, 0);
    assert_eq!(w.stored_status(&promise.promise_id).await, "pending");
}

#[tokio::test]
async fn update_promise_scope_and_permissions() {
    let w = World::new().await;
    let tenant = w.tenant(w.kal, "Aminata Bah").await;
    let promise = w
        .promise(
            &w.agent_token,
            tenant,
            100_000,
            0,
            today() + Duration::days(3),
        )
        .await;
    let mut cancelled = promise.clone();
    cancelled.status = PromiseStatus::Cancelled as i32;
    let request = update(&cancelled, &["status"], "Erreur de saisie");

    let status = w
        .update(&w.mat_token, request.clone())
        .await
        .expect_err("agent of another site");
    assert_eq!(status.code(), Code::PermissionDenied);
    let accountant = w.app.token("compta").await;
    let status = w
        .update(&accountant, request.clone())
        .await
        .expect_err("no permission");
    assert_eq!(status.code(), Code::PermissionDenied);
    let mut unknown = cancelled.clone();
    unknown.promise_id = Uuid::new_v4().to_string();
    let status = w
        .update(&w.agent_token, update(&unknown, &["status"], "Erreur"))
        .await
        .expect_err("unknown promise");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(w.stored_status(&promise.promise_id).await, "pending");

    w.update(&w.agent_token, request)
        .await
        .expect("agent of the site");
    assert_eq!(w.stored_status(&promise.promise_id).await, "cancelled");
}

// ---------------------------------------------------------------------------------------------
// Settlement job

#[tokio::test]
async fn the_job_settles_due_promises_from_the_ledger_once() {
    let w = World::new().await;
    let due = today() - Duration::days(5);
    let days_ago = |n: i64| Utc::now() - Duration::days(n);
    let mut promises = HashMap::new();
    for name in ["broken", "partial", "kept", "late", "reversed", "future"] {
        let tenant = w.tenant(w.kal, name).await;
        let promised = if name == "future" {
            today() + Duration::days(5)
        } else {
            due
        };
        let promise = w
            .promise(&w.agent_token, tenant, 300_000, 10, promised)
            .await;
        promises.insert(name, (tenant, promise));
    }
    let tenant = |name: &str| promises[name].0;
    // Partial: 100,000 by the date; 500,000 paid before the promise does not count.
    insert_cash_payment(&w.pool, tenant("partial"), w.agent, 500_000, days_ago(12)).await;
    insert_cash_payment(&w.pool, tenant("partial"), w.agent, 100_000, days_ago(8)).await;
    // Kept: two payments by the date.
    insert_cash_payment(&w.pool, tenant("kept"), w.agent, 200_000, days_ago(9)).await;
    insert_cash_payment(&w.pool, tenant("kept"), w.agent, 100_000, days_ago(7)).await;
    // Late: paid in full after the date: broken, but shown as paid.
    insert_cash_payment(&w.pool, tenant("late"), w.agent, 300_000, days_ago(2)).await;
    // Reversed: the only payment was cancelled.
    let payment =
        insert_cash_payment(&w.pool, tenant("reversed"), w.agent, 300_000, days_ago(8)).await;
    insert_reversal(&w.pool, payment, w.agent).await;

    let expected = [
        ("broken", PromiseStatus::Broken, "broken", 0, 0),
        (
            "partial",
            PromiseStatus::PartiallyKept,
            "partially_kept",
            100_000,
            100_000,
        ),
        ("kept", PromiseStatus::Kept, "kept", 300_000, 300_000),
        ("late", PromiseStatus::Broken, "broken", 0, 300_000),
        ("reversed", PromiseStatus::Broken, "broken", 0, 0),
        ("future", PromiseStatus::Pending, "pending", 0, 0),
    ];
    // Read time: the derived statuses, before the job.
    let director = w.app.token("directeur").await;
    let listed = w
        .list(&director, ListPromisesRequest::default())
        .await
        .expect("list");
    let shown: HashMap<String, (i32, i64)> = listed
        .promises
        .iter()
        .map(|p| {
            (
                p.tenant.as_ref().expect("tenant").full_name.clone(),
                (p.status, p.paid_gnf),
            )
        })
        .collect();
    for (name, status, _, _, paid) in expected {
        assert_eq!(shown[name], (status as i32, paid), "{name} at read time");
    }
    assert_eq!(w.count("SELECT count(*) FROM promise_events").await, 0);

    let settled = settle_due_promises(&w.pool, today()).await.expect("job");
    assert_eq!(settled, 5);
    for (name, _, stored, covered, _) in expected {
        let (status, covered_gnf, changed): (String, i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT status, covered_gnf, status_changed_at FROM promises WHERE id = $1::uuid",
        )
        .bind(&promises[name].1.promise_id)
        .fetch_one(&w.pool)
        .await
        .expect("promise");
        assert_eq!((status.as_str(), covered_gnf), (stored, covered), "{name}");
        assert_eq!(changed.is_some(), stored != "pending", "{name}");
    }
    let events: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, count(*) FROM promise_events GROUP BY kind ORDER BY kind")
            .fetch_all(&w.pool)
            .await
            .expect("events");
    assert_eq!(
        events,
        [
            ("broken".to_owned(), 3),
            ("kept".to_owned(), 1),
            ("partially_kept".to_owned(), 1)
        ]
    );
    // Read after the job: the same statuses.
    let after = w
        .list(&director, ListPromisesRequest::default())
        .await
        .expect("list");
    assert_eq!(after.promises.len(), listed.promises.len());
    for (before, after) in listed.promises.iter().zip(&after.promises) {
        assert_eq!(before.status, after.status);
        assert_eq!(before.paid_gnf, after.paid_gnf);
    }

    // A second run changes nothing.
    assert_eq!(settle_due_promises(&w.pool, today()).await.expect("job"), 0);
    assert_eq!(w.count("SELECT count(*) FROM promise_events").await, 5);
}

#[tokio::test]
async fn a_covered_promise_is_kept_before_its_date() {
    let w = World::new().await;
    let tenant = w.tenant(w.kal, "Aminata Bah").await;
    let promise = w
        .promise(
            &w.agent_token,
            tenant,
            300_000,
            1,
            today() + Duration::days(5),
        )
        .await;
    insert_cash_payment(
        &w.pool,
        tenant,
        w.agent,
        300_000,
        Utc::now() - Duration::hours(1),
    )
    .await;
    let listed = w
        .list(&w.agent_token, ListPromisesRequest::default())
        .await
        .expect("list");
    assert_eq!(listed.promises[0].status, PromiseStatus::Kept as i32);
    assert_eq!(settle_due_promises(&w.pool, today()).await.expect("job"), 1);
    assert_eq!(w.stored_status(&promise.promise_id).await, "kept");
}

#[tokio::test]
async fn a_new_promise_settles_a_due_one_instead_of_cancelling_it() {
    let w = World::new().await;
    let tenant = w.tenant(w.kal, "Aminata Bah").await;
    let old = w
        .promise(
            &w.agent_token,
            tenant,
            300_000,
            10,
            today() - Duration::days(3),
        )
        .await;
    insert_cash_payment(
        &w.pool,
        tenant,
        w.agent,
        50_000,
        Utc::now() - Duration::days(5),
    )
    .await;
    w.promise(
        &w.agent_token,
        tenant,
        300_000,
        0,
        today() + Duration::days(3),
    )
    .await;
    assert_eq!(w.stored_status(&old.promise_id).await, "partially_kept");
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM promise_events")
        .fetch_all(&w.pool)
        .await
        .expect("events");
    assert_eq!(kinds, ["partially_kept"]);
}

async fn due_promises(w: &World, count: usize) {
    for i in 0..count {
        let tenant = w.tenant(w.kal, &format!("Locataire {i}")).await;
        w.promise(
            &w.agent_token,
            tenant,
            100_000,
            10,
            today() - Duration::days(1),
        )
        .await;
    }
}

#[tokio::test]
async fn concurrent_job_runs_do_the_work_once() {
    let w = World::new().await;
    due_promises(&w, 4).await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let pool = w.pool.clone();
            tokio::spawn(async move { settle_due_promises(&pool, today()).await })
        })
        .collect();
    let mut total = 0;
    for run in runs {
        total += run.await.expect("task").expect("job");
    }
    assert_eq!(total, 4);
    assert_eq!(w.count("SELECT count(*) FROM promise_events").await, 4);
    assert_eq!(
        w.count("SELECT count(*) FROM promises WHERE status = 'broken'")
            .await,
        4
    );
}

#[tokio::test]
async fn the_job_yields_to_a_replica_holding_its_lock() {
    let w = World::new().await;
    due_promises(&w, 2).await;
    // Another replica is settling: it holds the lock.
    let mut other = w.pool.acquire().await.expect("connection");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(SETTLE_LOCK_ID)
        .execute(&mut *other)
        .await
        .expect("lock");
    assert_eq!(settle_due_promises(&w.pool, today()).await.expect("job"), 0);
    assert_eq!(w.count("SELECT count(*) FROM promise_events").await, 0);
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(SETTLE_LOCK_ID)
        .execute(&mut *other)
        .await
        .expect("unlock");
    drop(other);
    assert_eq!(settle_due_promises(&w.pool, today()).await.expect("job"), 2);
}

/// Records `amount` in cash for `tenant` through the server, made at `occurred_at`; answers the
/// payment's id.
async fn pay(w: &World, tenant: Uuid, amount: i64, occurred_at: DateTime<Utc>) -> String {
    let request = RecordPaymentRequest {
        request_id: Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        amount_gnf: amount,
        method: PaymentMethod::Cash as i32,
        occurred_at: Some(ts(occurred_at)),
        ..Default::default()
    };
    message(
        w.app
            .collections(&w.agent_token)
            .await
            .record_payment(request),
    )
    .await
    .expect("payment recorded")
    .payment
    .expect("payment")
    .payment_id
}

/// The status and coverage of `promise_id` recomputed from the raw rows on `today`: the
/// promise's amount, date and when it was made; the tenant's payments and reversals. A payment
/// counts when it is not reversed and names the promise or was made since it, towards the
/// status only when made by the promised date (Africa/Conakry days): the rule of
/// `domain::promise`, applied here without the store's functions.
async fn recomputed(pool: &PgPool, promise_id: &str, today: NaiveDate) -> (String, i64) {
    let (id, tenant, amount, promised, made_at, cancelled): (
        Uuid,
        Uuid,
        i64,
        NaiveDate,
        DateTime<Utc>,
        bool,
    ) = sqlx::query_as(
        "SELECT p.id, p.tenant_id, p.amount_gnf, p.promised_date,
                coalesce(i.occurred_at, p.created_at), p.status = 'cancelled'
         FROM promises p LEFT JOIN interactions i ON i.id = p.interaction_id
         WHERE p.id = $1::uuid",
    )
    .bind(promise_id)
    .fetch_one(pool)
    .await
    .expect("promise");
    let payments: Vec<(i64, DateTime<Utc>, Option<Uuid>, bool)> = sqlx::query_as(
        "SELECT p.amount_gnf, p.occurred_at, p.promise_id,
                EXISTS (SELECT 1 FROM payments r WHERE r.reverses_payment_id = p.id)
         FROM payments p WHERE p.tenant_id = $1 AND p.kind = 'payment'",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .expect("payments");
    let paid_by_date: i64 = payments
        .iter()
        .filter(|(_, at, named, reversed)| {
            !reversed && (*named == Some(id) || *at >= made_at) && conakry_day(*at) <= promised
        })
        .map(|(amount, ..)| amount)
        .sum();
    let progress = PromiseProgress {
        amount: Gnf::new(amount),
        promised_date: promised,
        paid_by_promised_date: Gnf::new(paid_by_date),
        cancelled,
    };
    (progress.status_on(today).as_str().to_owned(), paid_by_date)
}

#[tokio::test]
async fn a_reversed_payment_no_longer_keeps_its_promise() {
    let w = World::new().await;
    let accountant = w.app.token("compta").await;
    // One promise still ahead of its date, one whose date has passed.
    let ahead = w.tenant(w.kal, "Aminata Bah").await;
    let passed = w.tenant(w.kal, "Ibrahima Sow").await;
    let promise_ahead = w
        .promise(
            &w.agent_token,
            ahead,
            300_000,
            1,
            today() + Duration::days(5),
        )
        .await;
    let promise_passed = w
        .promise(
            &w.agent_token,
            passed,
            450_000,
            6,
            today() - Duration::days(2),
        )
        .await;
    let paid_ahead = pay(&w, ahead, 300_000, Utc::now() - Duration::hours(1)).await;
    // Collected four days ago, before the promised date, on a phone that was offline.
    let paid_passed = pay(&w, passed, 450_000, made_at(4)).await;
    for promise in [&promise_ahead, &promise_passed] {
        assert_eq!(w.stored_status(&promise.promise_id).await, "kept");
    }

    for payment_id in [paid_ahead, paid_passed] {
        let request = ReversePaymentRequest {
            request_id: Uuid::new_v4().to_string(),
            payment_id,
            reason: "Chèque sans provision".to_owned(),
            occurred_at: Some(ts(Utc::now() - Duration::minutes(1))),
        };
        message(
            w.app
                .collections(&accountant)
                .await
                .reverse_payment(request),
        )
        .await
        .expect("reversed");
    }

    // Ahead of its date the promise is pending again; past it, with nothing left paid by the
    // date, broken (the as-of rule of `domain::promise`).
    assert_eq!(w.stored_status(&promise_ahead.promise_id).await, "pending");
    assert_eq!(w.stored_status(&promise_passed.promise_id).await, "broken");
    let listed = w
        .list(&w.agent_token, ListPromisesRequest::default())
        .await
        .expect("list");
    let shown: HashMap<String, i32> = listed
        .promises
        .iter()
        .map(|p| (p.promise_id.clone(), p.status))
        .collect();
    assert_eq!(
        shown[&promise_ahead.promise_id],
        PromiseStatus::Pending as i32
    );
    assert_eq!(
        shown[&promise_passed.promise_id],
        PromiseStatus::Broken as i32
    );
    // The settlement job, run now, agrees and changes nothing.
    assert_eq!(settle_due_promises(&w.pool, today()).await.expect("job"), 0);
    for promise in [&promise_ahead, &promise_passed] {
        let stored: (String, i64) =
            sqlx::query_as("SELECT status, covered_gnf FROM promises WHERE id = $1::uuid")
                .bind(&promise.promise_id)
                .fetch_one(&w.pool)
                .await
                .expect("stored");
        assert_eq!(
            stored,
            recomputed(&w.pool, &promise.promise_id, today()).await
        );
        assert_eq!(stored.1, 0, "nothing paid once the payment is reversed");
    }
}
