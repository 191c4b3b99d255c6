//! ListAlerts and AcknowledgeAlert through a real gRPC client, on alerts raised by the
//! evaluation the scheduled job runs (`app::alerts::evaluate`), called here at a chosen instant
//! with known data: the critical-arrears rule on 51 and 50 charges over 60 days overdue, its
//! resolution after a payment and its return as a new alert; acknowledgement, its idempotency
//! and its audit row; scope; bad input; the facts of the agent rules.
//!
//! The working days of the test rules are empty unless a test says otherwise: the agent
//! inactivity and score rules depend on the time of day, and are checked by the domain's unit
//! tests; here their SQL facts are checked against the rows written.

use std::collections::HashMap;

use akig::app::alerts::{self as alerts_app, Evaluation};
use akig::domain::alerts::{AlertRules, WorkingHours};
use akig::proto::v1::{
    AcknowledgeAlertRequest, AcknowledgeAlertResponse, Alert, AlertKind, AlertSeverity, AlertState,
    AlertTarget, ListAlertsRequest, ListAlertsResponse, UserRef, alert_target,
};
use akig::state::AppState;
use chrono::{DateTime, Datelike, Days, NaiveDate, TimeDelta, Timelike, Utc};
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    LedgerEntry, RedisMode, TestApp, TestDb, authed, bad_fields, create_charge, create_site,
    create_tenant, create_user, error_reason, insert_interaction, insert_ledger_entry,
    insert_promise, spawn_app_and_state, test_config, ts,
};

/// Now, to the second (what PostgreSQL stores comes back equal).
fn now() -> DateTime<Utc> {
    Utc::now().with_nanosecond(0).expect("valid")
}

/// Rules with the default thresholds and no working day.
fn rules() -> AlertRules {
    AlertRules {
        working_hours: WorkingHours {
            days: Vec::new(),
            ..WorkingHours::default()
        },
        ..AlertRules::default()
    }
}

/// `n` monthly charges of 100,000 GNF for a tenant, each due on the 5th of a month ending with
/// the month of `today - 70 days`, so every one is more than 60 days overdue. Oldest first.
async fn old_charges(pool: &sqlx::PgPool, tenant: Uuid, n: u32, today: NaiveDate) -> Vec<i64> {
    let last = (today - Days::new(70)).with_day(1).expect("first");
    let mut ids = Vec::new();
    for back in (0..n).rev() {
        let period = last - chrono::Months::new(back);
        let due = period.with_day(5).expect("5th");
        ids.push(create_charge(pool, tenant, period, due, 100_000).await);
    }
    ids
}

struct World {
    app: TestApp,
    state: AppState,
    kal: Uuid,
    mat: Uuid,
    director: Uuid,
    agent: Uuid,
    /// KAL's tenants and their charges, oldest first.
    kal_charges: Vec<(Uuid, Vec<i64>)>,
}

/// KAL: 3 tenants with 17 charges over 60 days overdue each (51); MAT: 2 tenants with 25
/// each (50). Users: "dir" (director), "gest.kal", "gest.mat" (site managers), "sup.kal"
/// (supervisor of KAL), "agent.kal" (agent of KAL), "compta" (accountant).
async fn world(db: &TestDb) -> World {
    let pool = &db.pool;
    let today = Utc::now().date_naive();
    let kal = create_site(pool, "KAL").await;
    let mat = create_site(pool, "MAT").await;
    let director = create_user(pool, "dir", "director", &[], None).await;
    create_user(pool, "gest.kal", "site_manager", &[kal], None).await;
    create_user(pool, "gest.mat", "site_manager", &[mat], None).await;
    create_user(pool, "sup.kal", "supervisor", &[kal], None).await;
    create_user(pool, "compta", "accountant", &[], None).await;
    let agent = create_user(pool, "agent.kal", "agent", &[kal], None).await;
    let mut kal_charges = Vec::new();
    for name in ["Aminata Diallo", "Binta Bah", "Chérif Camara"] {
        let tenant = create_tenant(pool, kal, name, 100_000, None).await;
        kal_charges.push((tenant, old_charges(pool, tenant, 17, today).await));
    }
    for name in ["Fodé Sylla", "Kadiatou Barry"] {
        let tenant = create_tenant(pool, mat, name, 100_000, None).await;
        old_charges(pool, tenant, 25, today).await;
    }
    let config = test_config(db.connect_options(), RedisMode::Real);
    let (app, state) = spawn_app_and_state(config, db.pool.clone()).await;
    World {
        app,
        state,
        kal,
        mat,
        director,
        agent,
        kal_charges,
    }
}

impl World {
    async fn evaluate(&self, rules: &AlertRules, at: DateTime<Utc>) -> Evaluation {
        alerts_app::evaluate(&self.state.pool, &self.state.cache, rules, at)
            .await
            .expect("evaluation")
    }

    async fn list(
        &self,
        username: &str,
        request: ListAlertsRequest,
    ) -> Result<ListAlertsResponse, tonic::Status> {
        let token = self.app.token(username).await;
        self.app
            .dashboard_client()
            .await
            .list_alerts(authed(request, &token))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn acknowledge(
        &self,
        username: &str,
        request: AcknowledgeAlertRequest,
    ) -> Result<AcknowledgeAlertResponse, tonic::Status> {
        let token = self.app.token(username).await;
        self.app
            .dashboard_client()
            .await
            .acknowledge_alert(authed(request, &token))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Pays KAL's first tenant's oldest charge in full.
    async fn pay_one_kal_charge(&self) {
        let (tenant, charges) = &self.kal_charges[0];
        insert_ledger_entry(
            &self.state.pool,
            &LedgerEntry {
                tenant_id: *tenant,
                agent_id: self.agent,
                amount: 100_000,
                occurred_at: Utc::now() - TimeDelta::minutes(1),
                reverses: None,
                allocations: &[(charges[0], 100_000)],
            },
        )
        .await;
    }

    /// The alert KAL's 51 charges raise, opened at `at`.
    fn kal_critical(&self, id: &str, at: DateTime<Utc>) -> Alert {
        Alert {
            alert_id: id.to_owned(),
            kind: AlertKind::CriticalArrears.into(),
            severity: AlertSeverity::Critical.into(),
            state: AlertState::Open.into(),
            target: Some(AlertTarget {
                target: Some(alert_target::Target::SiteId(self.kal.to_string())),
                display_name: "KAL".to_owned(),
            }),
            site_id: self.kal.to_string(),
            start_time: Some(ts(at)),
            update_time: Some(ts(at)),
            resolve_time: None,
            message: "51 impayés de plus de 60 jours".to_owned(),
            details: HashMap::from([
                ("charges_over_60_days".to_owned(), "51".to_owned()),
                (
                    "outstanding_over_60_days_gnf".to_owned(),
                    "5100000".to_owned(),
                ),
                ("threshold".to_owned(), "50".to_owned()),
            ]),
            acknowledged_by: None,
            acknowledge_time: None,
            acknowledge_note: String::new(),
        }
    }
}

fn states(states: &[AlertState]) -> ListAlertsRequest {
    ListAlertsRequest {
        states: states.iter().map(|s| *s as i32).collect(),
        ..ListAlertsRequest::default()
    }
}

fn ack(alert_id: &str, request_id: Uuid, note: &str) -> AcknowledgeAlertRequest {
    AcknowledgeAlertRequest {
        request_id: request_id.to_string(),
        alert_id: alert_id.to_owned(),
        note: note.to_owned(),
    }
}

#[tokio::test]
async fn critical_arrears_open_resolve_and_come_back_as_a_new_alert() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let t1 = now() - TimeDelta::minutes(10);

    let first = w.evaluate(&rules(), t1).await;
    assert_eq!(
        (first.ran, first.opened, first.updated, first.resolved),
        (true, 1, 0, 0)
    );
    assert_eq!(first.sites_changed, vec![w.kal]);
    let listed = w
        .list("dir", ListAlertsRequest::default())
        .await
        .expect("list");
    assert_eq!(listed.total_size, 1);
    assert_eq!(listed.next_page_token, "");
    let id = listed.alerts[0].alert_id.clone();
    assert_eq!(listed.alerts, vec![w.kal_critical(&id, t1)]);

    // Still 51: the same alert, evaluated again; nothing changes for the cache.
    let t2 = t1 + TimeDelta::minutes(5);
    let again = w.evaluate(&rules(), t2).await;
    assert_eq!((again.opened, again.updated, again.resolved), (0, 1, 0));
    assert!(again.sites_changed.is_empty());
    let listed = w
        .list("dir", ListAlertsRequest::default())
        .await
        .expect("list");
    let mut expected = w.kal_critical(&id, t1);
    expected.update_time = Some(ts(t2));
    assert_eq!(listed.alerts, vec![expected.clone()]);

    // One charge paid: 50, not more than 50. Resolved at the next evaluation.
    w.pay_one_kal_charge().await;
    let t3 = t2 + TimeDelta::minutes(4);
    let cleared = w.evaluate(&rules(), t3).await;
    assert_eq!(
        (cleared.opened, cleared.updated, cleared.resolved),
        (0, 0, 1)
    );
    assert_eq!(cleared.sites_changed, vec![w.kal]);
    let open = w
        .list("dir", ListAlertsRequest::default())
        .await
        .expect("list");
    assert_eq!((open.alerts.len(), open.total_size), (0, 0));
    let resolved = w
        .list("dir", states(&[AlertState::Resolved]))
        .await
        .expect("list");
    expected.state = AlertState::Resolved.into();
    expected.update_time = Some(ts(t3));
    expected.resolve_time = Some(ts(t3));
    assert_eq!(resolved.alerts, vec![expected.clone()]);

    // A new charge over 60 days overdue on KAL: 51 again, a new alert.
    let today = Utc::now().date_naive();
    let tenant = create_tenant(&db.pool, w.kal, "Djénabou Touré", 100_000, None).await;
    old_charges(&db.pool, tenant, 1, today).await;
    let t4 = t3 + TimeDelta::minutes(1);
    let back = w.evaluate(&rules(), t4).await;
    assert_eq!((back.opened, back.updated, back.resolved), (1, 0, 0));
    let both = w
        .list("dir", states(&[AlertState::Open, AlertState::Resolved]))
        .await
        .expect("list");
    assert_eq!(both.total_size, 2);
    // ALERT_STATE_UNSPECIFIED as a filter: any state, the same two.
    let any = w
        .list("dir", states(&[AlertState::Unspecified]))
        .await
        .expect("list");
    assert_eq!(any.total_size, 2);
    assert_ne!(both.alerts[0].alert_id, id);
    assert_eq!(
        both.alerts,
        vec![w.kal_critical(&both.alerts[0].alert_id, t4), expected]
    );

    // Pages of one, newest start first, the same total on each page.
    let mut request = states(&[AlertState::Open, AlertState::Resolved]);
    request.page_size = 1;
    let page1 = w.list("dir", request.clone()).await.expect("page 1");
    assert_eq!(page1.alerts, both.alerts[..1]);
    assert_eq!(page1.total_size, 2);
    request.page_token = page1.next_page_token;
    let page2 = w.list("dir", request.clone()).await.expect("page 2");
    assert_eq!(page2.alerts, both.alerts[1..]);
    assert_eq!((page2.total_size, page2.next_page_token.as_str()), (2, ""));
    // A token of other filters is refused.
    let mut other = states(&[AlertState::Open]);
    other.page_token = request.page_token;
    let refused = w.list("dir", other).await.expect_err("other filters");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(error_reason(&refused), "ERROR_REASON_PAGE_TOKEN_INVALID");

    // Filters: kind and severity.
    let mut by_kind = states(&[AlertState::Open, AlertState::Resolved]);
    by_kind.kinds = vec![AlertKind::FarVisit as i32];
    assert_eq!(w.list("dir", by_kind).await.expect("list").total_size, 0);
    let mut by_severity = states(&[AlertState::Open, AlertState::Resolved]);
    by_severity.severities = vec![AlertSeverity::Critical as i32, AlertSeverity::Info as i32];
    assert_eq!(
        w.list("dir", by_severity).await.expect("list").total_size,
        2
    );

    // MAT's 50 never raised anything.
    let mut mat_only = states(&[AlertState::Open, AlertState::Resolved]);
    mat_only.site_ids = vec![w.mat.to_string()];
    assert_eq!(w.list("dir", mat_only).await.expect("list").total_size, 0);
    w.app
        .stop(std::time::Duration::from_secs(10))
        .await
        .expect("stop");
}

#[tokio::test]
async fn acknowledge_is_idempotent_audited_and_kept_until_resolution() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let t1 = now() - TimeDelta::minutes(10);
    w.evaluate(&rules(), t1).await;
    let id = w
        .list("dir", ListAlertsRequest::default())
        .await
        .expect("list")
        .alerts[0]
        .alert_id
        .clone();

    let request_id = Uuid::new_v4();
    let note = "Missions planifiées chez les trois locataires.\nRappel vendredi.";
    let done = w
        .acknowledge("dir", ack(&id, request_id, note))
        .await
        .expect("acknowledged")
        .alert
        .expect("alert");
    let acknowledged_at = done.acknowledge_time.expect("time");
    let mut expected = w.kal_critical(&id, t1);
    expected.state = AlertState::Acknowledged.into();
    expected.acknowledged_by = Some(UserRef {
        user_id: w.director.to_string(),
        full_name: "Test dir".to_owned(),
    });
    expected.acknowledge_time = Some(acknowledged_at);
    expected.acknowledge_note = note.to_owned();
    assert_eq!(done, expected);
    let age = Utc::now().timestamp() - acknowledged_at.seconds;
    assert!((0..60).contains(&age), "acknowledged {age} s ago");

    // The same request again: the same answer; another request: not open.
    let replay = w
        .acknowledge("dir", ack(&id, request_id, note))
        .await
        .expect("replay")
        .alert
        .expect("alert");
    assert_eq!(replay, expected);
    let reused = w
        .acknowledge("dir", ack(&id, request_id, "autre note"))
        .await
        .expect_err("reused id");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&reused), "ERROR_REASON_REQUEST_ID_REUSED");
    let twice = w
        .acknowledge("gest.kal", ack(&id, Uuid::new_v4(), ""))
        .await
        .expect_err("already acknowledged");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&twice), "ERROR_REASON_ALERT_NOT_OPEN");
    let audited = crate::support::count(
        &db.pool,
        &format!(
            "SELECT count(*) FROM audit_log WHERE action = 'dashboard.alerts.acknowledge'
               AND target_type = 'alert' AND target_id = '{id}' AND outcome = 'ok'
               AND actor_id = '{}'",
            w.director
        ),
    )
    .await;
    assert_eq!(audited, 1);

    // Still holding: acknowledged, same start, later update.
    let t2 = t1 + TimeDelta::minutes(5);
    w.evaluate(&rules(), t2).await;
    let listed = w
        .list("sup.kal", ListAlertsRequest::default())
        .await
        .expect("list");
    expected.update_time = Some(ts(t2));
    assert_eq!(listed.alerts, vec![expected.clone()]);

    // Resolved: acknowledging it is refused; the acknowledgement stays on the record.
    w.pay_one_kal_charge().await;
    let t3 = t2 + TimeDelta::minutes(5);
    w.evaluate(&rules(), t3).await;
    let refused = w
        .acknowledge("dir", ack(&id, Uuid::new_v4(), "trop tard"))
        .await
        .expect_err("resolved");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&refused), "ERROR_REASON_ALERT_NOT_OPEN");
    let resolved = w
        .list("dir", states(&[AlertState::Resolved]))
        .await
        .expect("list");
    expected.state = AlertState::Resolved.into();
    expected.update_time = Some(ts(t3));
    expected.resolve_time = Some(ts(t3));
    assert_eq!(resolved.alerts, vec![expected]);
    w.app
        .stop(std::time::Duration::from_secs(10))
        .await
        .expect("stop");
}

#[tokio::test]
async fn scope_and_bad_input() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    w.evaluate(&rules(), now()).await;
    let id = w
        .list("dir", ListAlertsRequest::default())
        .await
        .expect("list")
        .alerts[0]
        .alert_id
        .clone();

    // KAL's people see it; MAT's manager sees nothing, even asking for KAL.
    for user in ["gest.kal", "sup.kal", "dir"] {
        let listed = w
            .list(user, ListAlertsRequest::default())
            .await
            .expect(user);
        assert_eq!(listed.total_size, 1, "{user}");
    }
    let asking = ListAlertsRequest {
        site_ids: vec![w.kal.to_string()],
        ..ListAlertsRequest::default()
    };
    for request in [ListAlertsRequest::default(), asking] {
        let listed = w.list("gest.mat", request).await.expect("list");
        assert_eq!((listed.alerts.len(), listed.total_size), (0, 0));
    }
    let hidden = w
        .acknowledge("gest.mat", ack(&id, Uuid::new_v4(), "pas mon site"))
        .await
        .expect_err("out of scope");
    assert_eq!(hidden.code(), Code::NotFound);

    // Agents and accountants have no alert permission.
    for user in ["agent.kal", "compta"] {
        let denied = w
            .list(user, ListAlertsRequest::default())
            .await
            .expect_err(user);
        assert_eq!(denied.code(), Code::PermissionDenied, "{user}");
        assert_eq!(error_reason(&denied), "ERROR_REASON_PERMISSION_MISSING");
        let denied = w
            .acknowledge(user, ack(&id, Uuid::new_v4(), ""))
            .await
            .expect_err(user);
        assert_eq!(denied.code(), Code::PermissionDenied, "{user}");
    }

    // Bad input names its field.
    let negative = ListAlertsRequest {
        page_size: -1,
        states: vec![AlertState::Open as i32, 99],
        site_ids: vec!["KAL".to_owned()],
        ..ListAlertsRequest::default()
    };
    let bad = w.list("dir", negative).await.expect_err("bad list");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&bad),
        vec!["page_size", "states[1]", "site_ids[0]"]
    );
    let garbage = ListAlertsRequest {
        page_token: "pas-un-jeton".to_owned(),
        ..ListAlertsRequest::default()
    };
    let bad = w.list("dir", garbage).await.expect_err("bad token");
    assert_eq!(bad_fields(&bad), vec!["page_token"]);

    let too_long = "é".repeat(1_001);
    let bad = w
        .acknowledge("dir", ack(&id, Uuid::new_v4(), &too_long))
        .await
        .expect_err("note too long");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&bad), vec!["note"]);
    let bad = w
        .acknowledge("dir", ack("alerte-42", Uuid::new_v4(), ""))
        .await
        .expect_err("bad id");
    assert_eq!(bad_fields(&bad), vec!["alert_id"]);
    let mut no_request_id = ack(&id, Uuid::new_v4(), "");
    no_request_id.request_id = String::new();
    let bad = w
        .acknowledge("dir", no_request_id)
        .await
        .expect_err("no id");
    assert_eq!(bad_fields(&bad), vec!["request_id"]);
    let unknown = w
        .acknowledge("dir", ack(&Uuid::new_v4().to_string(), Uuid::new_v4(), ""))
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);

    // A note of exactly 1,000 characters is accepted.
    let longest = "é".repeat(1_000);
    let done = w
        .acknowledge("gest.kal", ack(&id, Uuid::new_v4(), &longest))
        .await
        .expect("1,000 characters")
        .alert
        .expect("alert");
    assert_eq!(done.acknowledge_note, longest);
    w.app
        .stop(std::time::Duration::from_secs(10))
        .await
        .expect("stop");
}

/// (kind, message, target name, details sorted, site) of an alert.
type Shown = (i32, String, String, Vec<(String, String)>, String);

/// Midway between the start of today and now: today, and in the past.
fn earlier_today(now: DateTime<Utc>) -> DateTime<Utc> {
    let start = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    start + (now - start) / 2
}

#[tokio::test]
async fn far_visits_and_broken_promises_raise_their_alerts() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let at = now();
    let today = at.date_naive();
    let (tenant, _) = w.kal_charges[1];
    // Three far visits today on KAL (one more than the threshold 2), one near, one far
    // yesterday.
    let visit_time = earlier_today(at);
    for far in [true, true, false, true] {
        insert_interaction(
            &db.pool, "visit", tenant, w.agent, "absent", visit_time, far,
        )
        .await;
    }
    insert_interaction(
        &db.pool,
        "visit",
        tenant,
        w.agent,
        "absent",
        at - TimeDelta::days(1) - TimeDelta::hours(1),
        true,
    )
    .await;
    // Six promises of KAL's tenants were due yesterday and nothing was paid: broken today.
    // Two broke three days ago.
    let made = at - TimeDelta::days(5);
    for i in 0..6 {
        let (tenant, _) = w.kal_charges[i % 3];
        insert_promise(
            &db.pool,
            tenant,
            w.agent,
            None,
            50_000,
            today - Days::new(1),
            made,
        )
        .await;
    }
    for i in 0..2 {
        let (tenant, _) = w.kal_charges[i];
        insert_promise(
            &db.pool,
            tenant,
            w.agent,
            None,
            50_000,
            today - Days::new(4),
            made,
        )
        .await;
    }

    let rules = AlertRules {
        critical_overdue_charges: 1_000,
        ..rules()
    };
    let done = w.evaluate(&rules, at).await;
    assert_eq!(done.opened, 2);
    let listed = w
        .list("gest.kal", ListAlertsRequest::default())
        .await
        .expect("list");
    let mut alerts: Vec<Shown> = listed
        .alerts
        .iter()
        .map(|a| {
            let mut details: Vec<_> = a.details.clone().into_iter().collect();
            details.sort();
            let target = a.target.clone().expect("target");
            (
                a.kind,
                a.message.clone(),
                target.display_name,
                details,
                a.site_id.clone(),
            )
        })
        .collect();
    alerts.sort();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(
        alerts,
        vec![
            (
                AlertKind::BrokenPromiseSpike as i32,
                "6 promesses rompues aujourd'hui (moyenne 0,29 par jour sur 7 jours)".to_owned(),
                "KAL".to_owned(),
                pairs(&[
                    ("broken_today", "6"),
                    ("daily_mean", "0.29"),
                    ("days", "7"),
                    ("factor", "2"),
                    ("threshold", "5"),
                ]),
                w.kal.to_string(),
            ),
            (
                AlertKind::FarVisit as i32,
                "3 visites loin du locataire aujourd'hui".to_owned(),
                "Test agent.kal".to_owned(),
                pairs(&[("far_visits_today", "3"), ("threshold", "2")]),
                w.kal.to_string(),
            ),
        ]
    );
    let far = listed
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::FarVisit as i32)
        .expect("far visit alert");
    assert_eq!(
        far.target.as_ref().and_then(|t| t.target.clone()),
        Some(alert_target::Target::AgentId(w.agent.to_string()))
    );
    assert_eq!(far.severity, AlertSeverity::Warning as i32);
    w.app
        .stop(std::time::Duration::from_secs(10))
        .await
        .expect("stop");
}

#[tokio::test]
async fn agent_facts_are_read_from_the_rows() {
    let db = TestDb::new().await;
    let w = world(&db).await;
    let pool = &db.pool;
    let at = now();
    let today = at.date_naive();
    let (tenant, _) = w.kal_charges[2];
    let visit = earlier_today(at);
    insert_interaction(pool, "call", tenant, w.agent, "no_answer", visit, false).await;
    let paid_at = visit + TimeDelta::seconds(40);
    crate::support::insert_cash_payment(pool, tenant, w.agent, 10_000, paid_at).await;
    let fix = visit + TimeDelta::seconds(20);
    sqlx::query(
        "INSERT INTO agent_last_positions (agent_id, max_sequence, sequence, latitude, longitude,
                                           fix_time)
         VALUES ($1, 1, 1, 9.51, -13.71, $2)",
    )
    .bind(w.agent)
    .bind(fix)
    .execute(pool)
    .await
    .expect("position");
    for (day, score) in [(0, 4), (1, 2), (7, 5), (8, 100)] {
        sqlx::query("INSERT INTO agent_daily_scores (agent_id, day, score) VALUES ($1, $2, $3)")
            .bind(w.agent)
            .bind(today - Days::new(day))
            .bind(score)
            .execute(pool)
            .await
            .expect("score");
    }
    // An agent on no site, silent, disabled agents left out.
    let lone = create_user(pool, "agent.seul", "agent", &[], None).await;
    let gone = create_user(pool, "agent.parti", "agent", &[w.mat], None).await;
    sqlx::query("UPDATE users SET disabled = true WHERE id = $1")
        .bind(gone)
        .execute(pool)
        .await
        .expect("disable");

    let mut conn = pool.acquire().await.expect("conn");
    let facts = alerts_app::facts(&mut conn, &rules(), at)
        .await
        .expect("facts");
    let mut agents = facts.agents.clone();
    agents.sort_by_key(|a| a.agent_id != w.agent);
    assert_eq!(agents.len(), 2);
    let mine = &agents[0];
    assert_eq!(
        (
            mine.site_id,
            mine.last_activity,
            mine.score_today,
            mine.score_week
        ),
        (Some(w.kal), Some(paid_at), 4, 7)
    );
    assert_eq!(mine.far_visits_today, Vec::new());
    assert_eq!(
        (
            agents[1].agent_id,
            agents[1].site_id,
            agents[1].last_activity
        ),
        (lone, None, None)
    );
    // Sites: KAL 51 over 60 days (5,100,000 GNF), 3 tenants in arrears; MAT 50, 2.
    let mut sites: Vec<_> = facts
        .sites
        .iter()
        .map(|s| {
            (
                s.site_id,
                s.charges_over_60_days,
                s.outstanding_over_60_days_gnf,
                s.tenants_in_arrears,
            )
        })
        .collect();
    sites.sort_by_key(|s| s.0 != w.kal);
    assert_eq!(
        sites,
        vec![(w.kal, 51, 5_100_000, 3), (w.mat, 50, 5_000_000, 2)]
    );
    drop(conn);

    // With working hours around the clock, the rules see the agent inactive since the payment
    // once 90 minutes have passed, and their week score (7) below 15.
    let always = AlertRules {
        working_hours: WorkingHours {
            start: chrono::NaiveTime::MIN,
            end: chrono::NaiveTime::from_hms_opt(23, 59, 59).expect("valid"),
            days: WorkingHours::default()
                .days
                .into_iter()
                .chain([chrono::Weekday::Sun])
                .collect(),
        },
        low_score_today: 0,
        ..AlertRules::default()
    };
    let later = paid_at + TimeDelta::minutes(95);
    let on_same_day = later.date_naive() == today && later.time() < always.working_hours.end;
    if on_same_day {
        let conditions = akig::domain::alerts::conditions(&facts, &always, later);
        let keys: Vec<&str> = conditions.iter().map(|c| c.key.as_str()).collect();
        assert!(keys.contains(&format!("agent_inactive:agent:{}", w.agent).as_str()));
        assert!(keys.contains(&format!("low_agent_score:week:agent:{}", w.agent).as_str()));
        assert!(!keys.iter().any(|k| k.contains(&lone.to_string())));
    }
    w.app
        .stop(std::time::Duration::from_secs(10))
        .await
        .expect("stop");
}

#[tokio::test]
async fn summary_and_sites_count_the_unresolved_alerts_afresh() {
    use akig::proto::v1::{GetSummaryRequest, ListSitesRequest};
    let db = TestDb::new().await;
    let w = world(&db).await;
    let summary = |user: &'static str| {
        let w = &w;
        async move {
            let token = w.app.token(user).await;
            let response = w
                .app
                .dashboard_client()
                .await
                .get_summary(authed(GetSummaryRequest::default(), &token))
                .await
                .expect("summary");
            let cache = crate::support::x_cache(&response);
            (response.into_inner().critical_alerts_count, cache)
        }
    };
    assert_eq!(summary("dir").await, (0, "MISS".to_owned()));
    assert_eq!(summary("dir").await, (0, "HIT".to_owned()));

    w.evaluate(&rules(), now()).await;
    // The evaluation moved KAL's cache version: computed afresh.
    assert_eq!(summary("dir").await, (1, "MISS".to_owned()));
    assert_eq!(summary("gest.mat").await.0, 0);
    let token = w.app.token("dir").await;
    let sites = w
        .app
        .dashboard_client()
        .await
        .list_sites(authed(
            ListSitesRequest {
                order_by: "name".to_owned(),
                ..ListSitesRequest::default()
            },
            &token,
        ))
        .await
        .expect("sites")
        .into_inner();
    let counts: Vec<(String, i64, i64)> = sites
        .sites
        .iter()
        .map(|s| {
            (
                s.site.as_ref().expect("site").code.clone(),
                s.charges_over_60_days_count,
                s.open_alerts_count,
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![("KAL".to_owned(), 51, 1), ("MAT".to_owned(), 50, 0)]
    );

    // Acknowledged, it still counts (unresolved); resolved, it does not.
    let id = w
        .list("dir", ListAlertsRequest::default())
        .await
        .expect("list")
        .alerts[0]
        .alert_id
        .clone();
    w.acknowledge("dir", ack(&id, Uuid::new_v4(), "vu"))
        .await
        .expect("acknowledged");
    assert_eq!(summary("gest.kal").await.0, 1);
    w.pay_one_kal_charge().await;
    w.evaluate(&rules(), now()).await;
    assert_eq!(summary("gest.kal").await, (0, "MISS".to_owned()));
    w.app
        .stop(std::time::Duration::from_secs(10))
        .await
        .expect("stop");
}
