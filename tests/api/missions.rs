//! MissionsService through a real gRPC client: a day generated (balance, capacity, one mission
//! per candidate, dry run, regeneration, concurrent runs), the lifecycle legal and illegal, a
//! visit with mission_id closing its mission, and scope.

use akig::proto::v1::{
    GenerateMissionsRequest, GenerateMissionsResponse, InteractionOutcome, LatLng,
    ListAgentMissionsRequest, ListTodayMissionsRequest, Mission, MissionFailureReason,
    MissionStatus, RecordVisitRequest, UpdateMissionRequest, UpdateMissionResponse, VisitDetails,
};
use chrono::{Duration, Utc};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    RedisMode, TestApp, TestDb, authed, bad_fields, count, create_charges, create_site,
    create_tenant, create_user, error_reason, message, spawn_app_and_state, test_config, today, ts,
};

const RENT: i64 = 300_000;
const MAX: i32 = 4;

/// Site KAL: agents a1 and a2 of supervisor sup, 20 tenants owing three months spread over
/// two neighbourhoods, and 2 owing less than the threshold. Site MAT: agent a3 of supervisor
/// sup2 and 3 tenants in arrears.
struct World {
    app: TestApp,
    state: akig::state::AppState,
    pool: PgPool,
    kal: Uuid,
    a1: Uuid,
    a2: Uuid,
    candidates: HashSet<Uuid>,
    _db: TestDb,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let pool = db.pool.clone();
        let kal = create_site(&pool, "KAL").await;
        let mat = create_site(&pool, "MAT").await;
        let sup = create_user(&pool, "sup", "supervisor", &[kal], None).await;
        let sup2 = create_user(&pool, "sup2", "supervisor", &[mat], None).await;
        let a1 = create_user(&pool, "a1", "agent", &[kal], Some(sup)).await;
        let a2 = create_user(&pool, "a2", "agent", &[kal], Some(sup)).await;
        create_user(&pool, "a3", "agent", &[mat], Some(sup2)).await;
        let first = today() - Duration::days(100);
        let mut candidates = HashSet::new();
        for i in 0..20 {
            // Two clusters 3 km apart, points spread over a few hundred metres.
            let (lat, lon) = if i % 2 == 0 {
                (9.51, -13.71)
            } else {
                (9.53, -13.69)
            };
            let d = f64::from(i) * 0.0004;
            let tenant = create_tenant(
                &pool,
                kal,
                &format!("T{i:02}"),
                RENT,
                Some((lat + d, lon - d)),
            )
            .await;
            create_charges(&pool, tenant, first, 3, RENT).await;
            candidates.insert(tenant);
        }
        for i in 0..2 {
            let tenant =
                create_tenant(&pool, kal, &format!("S{i}"), 10_000, Some((9.52, -13.70))).await;
            create_charges(&pool, tenant, first, 1, 10_000).await;
        }
        for i in 0..3 {
            let tenant =
                create_tenant(&pool, mat, &format!("M{i}"), RENT, Some((9.6, -13.6))).await;
            create_charges(&pool, tenant, first, 2, RENT).await;
        }
        let config = test_config(db.connect_options(), RedisMode::Real);
        let (app, state) = spawn_app_and_state(config, db.pool.clone()).await;
        Self {
            app,
            state,
            pool,
            kal,
            a1,
            a2,
            candidates,
            _db: db,
        }
    }

    async fn generate(
        &self,
        token: &str,
        request: GenerateMissionsRequest,
    ) -> Result<GenerateMissionsResponse, tonic::Status> {
        let mut missions = self.app.missions_client().await;
        message(missions.generate_missions(authed(request, token))).await
    }

    async fn update(
        &self,
        token: &str,
        mission: Mission,
        paths: &[&str],
    ) -> Result<UpdateMissionResponse, tonic::Status> {
        let request = UpdateMissionRequest {
            request_id: Uuid::new_v4().to_string(),
            mission: Some(mission),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
            occurred_at: Some(ts(Utc::now())),
        };
        let mut missions = self.app.missions_client().await;
        message(missions.update_mission(authed(request, token))).await
    }

    async fn count(&self, sql: &str) -> i64 {
        count(&self.pool, sql).await
    }
}

fn generate_request(dry_run: bool) -> GenerateMissionsRequest {
    GenerateMissionsRequest {
        request_id: Uuid::new_v4().to_string(),
        max_visits_per_agent: MAX,
        dry_run,
        ..Default::default()
    }
}

fn status_of(id: &str, status: MissionStatus) -> Mission {
    Mission {
        mission_id: id.to_owned(),
        status: status as i32,
        ..Default::default()
    }
}

/// Per agent: number of live (not cancelled) missions.
fn loads(missions: &[Mission]) -> HashMap<String, usize> {
    let mut loads = HashMap::new();
    for m in missions
        .iter()
        .filter(|m| m.status != MissionStatus::Cancelled as i32)
    {
        *loads.entry(m.agent_id.clone()).or_default() += 1;
    }
    loads
}

#[tokio::test]
async fn a_day_is_planned_balanced_within_capacity_and_regenerated_without_touching_started_work() {
    let w = World::new().await;
    let sup = w.app.token("sup").await;

    // Dry run: the plan, nothing written.
    let preview = w
        .generate(&sup, generate_request(true))
        .await
        .expect("dry run");
    assert!(preview.dry_run);
    assert_eq!(w.count("SELECT count(*) FROM missions").await, 0);
    assert_eq!(
        preview.candidate_count, 20,
        "the two small debts are not candidates"
    );
    assert_eq!(preview.missions.len(), 8);
    assert!(preview.missions.iter().all(|m| m.mission_id.is_empty()));
    assert_eq!(preview.unassigned_count, 12);

    let plan = w
        .generate(&sup, generate_request(false))
        .await
        .expect("generate");
    assert_eq!(plan.created_count, 8);
    assert_eq!(plan.kept_count, 0);
    assert_eq!(plan.unassigned_count, 12);
    assert_eq!(w.count("SELECT count(*) FROM missions").await, 8);
    // The same plan as the preview (deterministic), now with ids.
    let key = |m: &Mission| {
        (
            m.agent_id.clone(),
            m.route_order,
            m.tenant.as_ref().map(|t| t.tenant_id.clone()),
        )
    };
    assert_eq!(
        plan.missions.iter().map(key).collect::<Vec<_>>(),
        preview.missions.iter().map(key).collect::<Vec<_>>()
    );
    // Each candidate at most once, only candidates, each agent at most MAX, balanced.
    let tenants: Vec<String> = plan
        .missions
        .iter()
        .map(|m| m.tenant.as_ref().expect("tenant").tenant_id.clone())
        .collect();
    assert_eq!(tenants.iter().collect::<HashSet<_>>().len(), tenants.len());
    assert!(
        tenants
            .iter()
            .all(|t| w.candidates.contains(&t.parse().unwrap()))
    );
    let per_agent = loads(&plan.missions);
    assert_eq!(per_agent.len(), 2);
    assert!(
        per_agent.values().all(|&n| n == MAX as usize),
        "{per_agent:?}"
    );
    // Route orders 1..=n per agent; legs and summaries add up.
    for summary in &plan.agents {
        let agent = summary.agent.as_ref().unwrap().user_id.clone();
        let mine: Vec<&Mission> = plan
            .missions
            .iter()
            .filter(|m| m.agent_id == agent)
            .collect();
        assert_eq!(
            mine.iter().map(|m| m.route_order).collect::<Vec<_>>(),
            (1..=MAX).collect::<Vec<_>>()
        );
        let legs: f64 = mine.iter().map(|m| m.distance_from_previous_m).sum();
        assert!((legs - summary.total_distance_m).abs() < 1e-6);
        assert_eq!(summary.outstanding_gnf, 4 * 3 * RENT);
        assert!(
            mine.iter()
                .all(|m| m.priority > 0.0 && !m.reasons.is_empty())
        );
    }
    // Geographic: with room for every candidate, each agent takes one neighbourhood (the two
    // are 3 km apart; both agents start at the site).
    let roomy = w
        .generate(
            &sup,
            GenerateMissionsRequest {
                max_visits_per_agent: 10,
                ..generate_request(true)
            },
        )
        .await
        .expect("roomy preview");
    assert_eq!(roomy.missions.len(), 20);
    for agent in per_agent.keys() {
        let lats: Vec<f64> = roomy
            .missions
            .iter()
            .filter(|m| &m.agent_id == agent)
            .map(|m| m.tenant.as_ref().unwrap().home_location.unwrap().latitude)
            .collect();
        assert_eq!(lats.len(), 10);
        let spread = lats.iter().cloned().fold(f64::MIN, f64::max)
            - lats.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread < 0.01, "agent {agent} spans {spread} degrees");
    }

    // Again with nothing changed: a no-op.
    let stamp = "SELECT (extract(epoch FROM max(updated_at)) * 1e6)::bigint FROM missions";
    let before = w.count(stamp).await;
    let again = w
        .generate(&sup, generate_request(false))
        .await
        .expect("again");
    assert_eq!((again.created_count, again.replaced_count), (0, 0));
    assert_eq!(w.count(stamp).await, before, "nothing rewritten");
    assert_eq!(again.missions.len(), 8);

    // a1 starts a mission; one of a1's tenants pays everything (no longer a candidate).
    let a1 = w.app.token("a1").await;
    let mine: Vec<&Mission> = plan
        .missions
        .iter()
        .filter(|m| m.agent_id == w.a1.to_string())
        .collect();
    // The last of a1's route: a kept mission that is not first in the day.
    let started = mine[mine.len() - 1].mission_id.clone();
    w.update(
        &a1,
        status_of(&started, MissionStatus::InProgress),
        &["status"],
    )
    .await
    .expect("start");
    let paid_tenant: Uuid = mine[1].tenant.as_ref().unwrap().tenant_id.parse().unwrap();
    sqlx::query("UPDATE charges SET amount_paid_gnf = amount_due_gnf, paid_in_full_at = now() WHERE tenant_id = $1")
        .bind(paid_tenant)
        .execute(&w.pool)
        .await
        .unwrap();
    let third = w
        .generate(&sup, generate_request(false))
        .await
        .expect("third");
    assert_eq!(third.kept_count, 1);
    assert_eq!(
        third.replaced_count, 1,
        "the paid tenant's mission is cancelled"
    );
    assert_eq!(third.created_count, 1, "another candidate takes the place");
    let kept = third
        .missions
        .iter()
        .find(|m| m.mission_id == started)
        .expect("kept");
    assert_eq!(kept.status, MissionStatus::InProgress as i32);
    assert_eq!(kept.agent_id, w.a1.to_string());
    let per_agent = loads(&third.missions);
    assert!(
        per_agent.values().all(|&n| n == MAX as usize),
        "{per_agent:?}"
    );
    // The kept mission keeps its place; the new route comes after it: no shared route order.
    for agent in per_agent.keys() {
        let mut orders: Vec<i32> = third
            .missions
            .iter()
            .filter(|m| &m.agent_id == agent && m.status != MissionStatus::Cancelled as i32)
            .map(|m| m.route_order)
            .collect();
        let count = orders.len();
        orders.sort_unstable();
        orders.dedup();
        assert_eq!(orders.len(), count, "agent {agent}: {orders:?}");
    }
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM missions WHERE tenant_id = '{paid_tenant}'
             AND status = 'cancelled' AND cancelled_by_generation"
        ))
        .await,
        1
    );
}

/// A supervisor's reassignment is a deliberate choice: planning the day again keeps it, as it
/// keeps a mission a person cancelled, and counts it against the new agent's cap.
#[tokio::test]
async fn a_mission_a_person_reassigned_stays_with_its_agent_when_the_day_is_planned_again() {
    let w = World::new().await;
    let sup = w.app.token("sup").await;
    let plan = w
        .generate(&sup, generate_request(false))
        .await
        .expect("generated");
    let moved = plan
        .missions
        .iter()
        .find(|m| m.agent_id == w.a1.to_string())
        .expect("a mission of a1")
        .clone();
    w.update(
        &sup,
        Mission {
            mission_id: moved.mission_id.clone(),
            agent_id: w.a2.to_string(),
            ..Default::default()
        },
        &["agent_id"],
    )
    .await
    .expect("reassigned");

    let again = w
        .generate(&sup, generate_request(false))
        .await
        .expect("planned again");
    assert_eq!(again.kept_count, 1, "the reassigned mission is kept");
    let kept = again
        .missions
        .iter()
        .find(|m| m.mission_id == moved.mission_id)
        .expect("still in the day");
    assert_eq!(kept.agent_id, w.a2.to_string());
    assert_eq!(kept.status, MissionStatus::Planned as i32);
    // Within the cap: a2's kept mission counts; a1 gets another candidate instead.
    let per_agent = loads(&again.missions);
    assert!(
        per_agent.values().all(|&n| n == MAX as usize),
        "{per_agent:?}"
    );
    let tenant = moved.tenant.as_ref().expect("tenant").tenant_id.clone();
    let live_on_tenant = again
        .missions
        .iter()
        .filter(|m| {
            m.status != MissionStatus::Cancelled as i32
                && m.tenant.as_ref().is_some_and(|t| t.tenant_id == tenant)
        })
        .count();
    assert_eq!(live_on_tenant, 1, "the tenant is not planned twice");
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM missions WHERE id = '{}' AND reassigned_at IS NOT NULL",
            moved.mission_id
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn generation_refuses_bad_input_and_a_concurrent_run() {
    let w = World::new().await;
    let sup = w.app.token("sup").await;
    let status = w
        .generate(
            &sup,
            GenerateMissionsRequest {
                mission_date: Some(crate::support::date(today() - Duration::days(1))),
                max_visits_per_agent: 51,
                ..generate_request(false)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&status),
        ["mission_date", "max_visits_per_agent"]
    );
    let status = w
        .generate(
            &sup,
            GenerateMissionsRequest {
                site_ids: vec![Uuid::new_v4().to_string()],
                ..generate_request(false)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // An agent may not generate.
    let a1 = w.app.token("a1").await;
    let status = w.generate(&a1, generate_request(false)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Another run of the day holds the lock: ABORTED, nothing written.
    let mut tx = w.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(akig::store::missions::PLAN_LOCK_CLASS)
        .bind(akig::store::missions::day_key(today()))
        .execute(&mut *tx)
        .await
        .unwrap();
    let status = w.generate(&sup, generate_request(false)).await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(
        error_reason(&status),
        "ERROR_REASON_MISSION_GENERATION_RUNNING"
    );
    // A dry run needs no lock.
    w.generate(&sup, generate_request(true))
        .await
        .expect("dry run");
    tx.rollback().await.unwrap();
    assert_eq!(w.count("SELECT count(*) FROM missions").await, 0);
    w.generate(&sup, generate_request(false))
        .await
        .expect("after the other run");
    assert_eq!(w.count("SELECT count(*) FROM missions").await, 8);
}

#[tokio::test]
async fn the_lifecycle_legal_and_illegal_and_a_visit_closing_its_mission() {
    let w = World::new().await;
    let sup = w.app.token("sup").await;
    let a1 = w.app.token("a1").await;
    let a2 = w.app.token("a2").await;
    let plan = w
        .generate(&sup, generate_request(false))
        .await
        .expect("generate");
    let mine: Vec<Mission> = plan
        .missions
        .iter()
        .filter(|m| m.agent_id == w.a1.to_string())
        .cloned()
        .collect();
    let (m1, m2, m3, m4) = (
        mine[0].mission_id.clone(),
        mine[1].mission_id.clone(),
        mine[2].mission_id.clone(),
        mine[3].mission_id.clone(),
    );

    // A declared arrival is a device time: not in the future.
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let status = w
        .update(
            &a1,
            Mission {
                arrival_time: Some(prost_types::Timestamp {
                    seconds: tomorrow.timestamp(),
                    nanos: 0,
                }),
                ..status_of(&m1, MissionStatus::Planned)
            },
            &["arrival_time"],
        )
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["mission.arrival_time"]);
    assert_eq!(error_reason(&status), "ERROR_REASON_OCCURRED_AT_IN_FUTURE");

    // DONE needs a link.
    let status = w
        .update(&a1, status_of(&m1, MissionStatus::Done), &["status"])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // Agents may not cancel.
    let status = w
        .update(&a1, status_of(&m1, MissionStatus::Cancelled), &["status"])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        error_reason(&status),
        "ERROR_REASON_MISSION_TRANSITION_INVALID"
    );
    // FAILED needs a reason.
    let status = w
        .update(&a1, status_of(&m1, MissionStatus::Failed), &["status"])
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["mission.failure_reason"]);
    let failed = w
        .update(
            &a1,
            Mission {
                failure_reason: MissionFailureReason::TenantAbsent as i32,
                status_note: "Porte fermée".into(),
                ..status_of(&m1, MissionStatus::Failed)
            },
            &["status", "failure_reason", "status_note"],
        )
        .await
        .expect("failed")
        .mission
        .unwrap();
    assert_eq!(failed.status, MissionStatus::Failed as i32);
    assert!(failed.end_time.is_some());
    // Final: no way back.
    let status = w
        .update(&a1, status_of(&m1, MissionStatus::InProgress), &["status"])
        .await
        .unwrap_err();
    assert_eq!(
        error_reason(&status),
        "ERROR_REASON_MISSION_TRANSITION_INVALID"
    );
    // Same status again: a no-op.
    w.update(&a1, status_of(&m1, MissionStatus::Failed), &["status"])
        .await
        .expect("same status");
    // Unknown path.
    let status = w
        .update(&a1, status_of(&m2, MissionStatus::Done), &["tenant"])
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&status), ["update_mask.paths[0]"]);
    // Another agent's mission.
    let status = w
        .update(&a2, status_of(&m2, MissionStatus::InProgress), &["status"])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // Agents may not reassign; supervisors may, while planned.
    let reassign = Mission {
        mission_id: m2.clone(),
        agent_id: w.a2.to_string(),
        ..Default::default()
    };
    let status = w
        .update(&a1, reassign.clone(), &["agent_id"])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let moved = w
        .update(&sup, reassign, &["agent_id"])
        .await
        .expect("reassign");
    assert_eq!(moved.mission.unwrap().agent_id, w.a2.to_string());
    let status = w
        .update(
            &sup,
            Mission {
                mission_id: m1.clone(),
                agent_id: w.a2.to_string(),
                ..Default::default()
            },
            &["agent_id"],
        )
        .await
        .unwrap_err();
    assert_eq!(
        error_reason(&status),
        "ERROR_REASON_MISSION_ALREADY_STARTED"
    );
    // Supervisors may cancel.
    w.update(&sup, status_of(&m4, MissionStatus::Cancelled), &["status"])
        .await
        .expect("cancel");

    // A visit recorded with mission_id closes the mission, linked.
    let m3_tenant = mine[2].tenant.as_ref().unwrap().clone();
    let home = m3_tenant.home_location.unwrap();
    let visit = message(
        w.app
            .collections(&a1)
            .await
            .record_visit(RecordVisitRequest {
                request_id: Uuid::new_v4().to_string(),
                tenant_id: m3_tenant.tenant_id.clone(),
                occurred_at: Some(ts(Utc::now() - Duration::minutes(1))),
                outcome: InteractionOutcome::Absent as i32,
                notes: "Personne".into(),
                mission_id: m3.clone(),
                visit: Some(VisitDetails {
                    location: Some(LatLng {
                        latitude: home.latitude,
                        longitude: home.longitude,
                    }),
                    accuracy_m: 10.0,
                    ..Default::default()
                }),
                ..Default::default()
            }),
    )
    .await
    .expect("visit");
    let visit_id = visit.visit.unwrap().interaction_id;
    let today_list = message(
        w.app
            .missions_client()
            .await
            .list_today_missions(authed(ListTodayMissionsRequest::default(), &a1)),
    )
    .await
    .expect("today");
    let closed = today_list
        .missions
        .iter()
        .find(|m| m.mission_id == m3)
        .expect("m3");
    assert_eq!(closed.status, MissionStatus::Done as i32);
    assert_eq!(closed.visit_id, visit_id);
    // DONE by hand with a visit of another tenant is refused.
    let status = w
        .update(
            &a1,
            Mission {
                visit_id: visit_id.clone(),
                ..status_of(&mine[0].mission_id, MissionStatus::Done)
            },
            &["status", "visit_id"],
        )
        .await
        .unwrap_err();
    assert!(matches!(
        status.code(),
        Code::InvalidArgument | Code::FailedPrecondition
    ));
}

#[tokio::test]
async fn agents_see_their_own_missions_and_supervisors_their_team() {
    let w = World::new().await;
    let sup = w.app.token("sup").await;
    let sup2 = w.app.token("sup2").await;
    let a1 = w.app.token("a1").await;
    w.generate(&sup, generate_request(false))
        .await
        .expect("generate");

    let today_list = |token: String, agent: Option<Uuid>, known: String| {
        let w = &w;
        async move {
            message(w.app.missions_client().await.list_today_missions(authed(
                ListTodayMissionsRequest {
                    agent_id: agent.map(|a| a.to_string()).unwrap_or_default(),
                    known_plan_version: known,
                    ..Default::default()
                },
                &token,
            )))
            .await
        }
    };
    let own = today_list(a1.clone(), None, String::new())
        .await
        .expect("own day");
    assert_eq!(own.missions.len(), MAX as usize);
    assert!(own.missions.iter().all(|m| m.agent_id == w.a1.to_string()));
    assert!(own.start_location.is_some());
    assert!(own.missions.iter().all(|m| m.tenant.is_some()));
    let same = today_list(a1.clone(), None, own.plan_version.clone())
        .await
        .expect("unchanged");
    assert!(same.unchanged && same.missions.is_empty());
    // A supervisor names the agent whose day it wants.
    let unnamed = today_list(sup.clone(), None, String::new())
        .await
        .unwrap_err();
    assert_eq!(unnamed.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&unnamed), ["agent_id"]);

    let status = today_list(a1.clone(), Some(w.a2), String::new())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    today_list(sup.clone(), Some(w.a2), String::new())
        .await
        .expect("supervisor sees the team");
    let status = today_list(sup2.clone(), Some(w.a1), String::new())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let list = |token: String, request: ListAgentMissionsRequest| {
        let w = &w;
        async move {
            message(
                w.app
                    .missions_client()
                    .await
                    .list_agent_missions(authed(request, &token)),
            )
            .await
        }
    };
    let mine = list(a1.clone(), ListAgentMissionsRequest::default())
        .await
        .expect("mine");
    assert_eq!(mine.total_size, i64::from(MAX));
    assert!(mine.missions.iter().all(|m| m.agent_id == w.a1.to_string()));
    let status = list(
        a1.clone(),
        ListAgentMissionsRequest {
            agent_id: w.a2.to_string(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // The supervisor pages through the team's 8.
    let first = list(
        sup.clone(),
        ListAgentMissionsRequest {
            page_size: 5,
            ..Default::default()
        },
    )
    .await
    .expect("page 1");
    assert_eq!((first.missions.len(), first.total_size), (5, 8));
    let second = list(
        sup.clone(),
        ListAgentMissionsRequest {
            page_size: 5,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("page 2");
    assert_eq!(second.missions.len(), 3);
    assert!(second.next_page_token.is_empty());
    let ids: HashSet<_> = first
        .missions
        .iter()
        .chain(&second.missions)
        .map(|m| m.mission_id.clone())
        .collect();
    assert_eq!(ids.len(), 8);
    // The other team's supervisor sees none of them.
    let other = list(sup2, ListAgentMissionsRequest::default())
        .await
        .expect("sup2");
    assert_eq!(other.total_size, 0);
    let status = list(
        sup,
        ListAgentMissionsRequest {
            date_range: Some(akig::proto::v1::DateRange {
                start_date: Some(crate::support::date(today() - Duration::days(100))),
                end_date: Some(crate::support::date(today())),
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(error_reason(&status), "ERROR_REASON_RANGE_TOO_LONG");
    let _ = w.kal;
}

#[tokio::test]
async fn the_scheduled_run_plans_tomorrow_for_the_company_once() {
    let w = World::new().await;
    let config = akig::app::config::MissionsConfig::default();
    let speed = akig::geo::RouteConfig::default()
        .speeds
        .of(akig::domain::route::problem::TravelMode::Walking);
    let tomorrow = today() + Duration::days(1);
    // Another replica is planning tomorrow: this one skips.
    let mut tx = w.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(akig::store::missions::PLAN_LOCK_CLASS)
        .bind(akig::store::missions::day_key(tomorrow))
        .execute(&mut *tx)
        .await
        .unwrap();
    let skipped =
        akig::jobs::missions::generate_tomorrow(&w.pool, Some(&w.state.cache), &config, speed)
            .await
            .expect("skipped run");
    assert_eq!(skipped, 0);
    tx.rollback().await.unwrap();
    assert_eq!(w.count("SELECT count(*) FROM missions").await, 0);

    // The supervisor's list of tomorrow, cached before the run.
    let sup = w.app.token("sup").await;
    let tomorrow_list = || {
        let w = &w;
        let sup = sup.clone();
        async move {
            let response = w
                .app
                .missions_client()
                .await
                .list_agent_missions(authed(
                    ListAgentMissionsRequest {
                        date_range: Some(akig::proto::v1::DateRange {
                            start_date: Some(crate::support::date(tomorrow)),
                            end_date: Some(crate::support::date(tomorrow)),
                        }),
                        ..Default::default()
                    },
                    &sup,
                ))
                .await
                .expect("list");
            let cache = crate::support::x_cache(&response);
            (response.into_inner().total_size, cache)
        }
    };
    assert_eq!(tomorrow_list().await, (0, "MISS".to_owned()));
    assert_eq!(tomorrow_list().await, (0, "HIT".to_owned()));
    let created =
        akig::jobs::missions::generate_tomorrow(&w.pool, Some(&w.state.cache), &config, speed)
            .await
            .expect("run");
    // Both sites: KAL's 20 candidates fit 2 agents × 12; MAT's 3 go to a3.
    assert_eq!(created, 23);
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM missions WHERE mission_date = '{tomorrow}'"
        ))
        .await,
        23
    );
    let again =
        akig::jobs::missions::generate_tomorrow(&w.pool, Some(&w.state.cache), &config, speed)
            .await
            .expect("second replica");
    assert_eq!(again, 0, "a later replica finds the same plan");
    // The run moved the planned sites' cache versions: the list is read afresh (KAL's 20).
    assert_eq!(tomorrow_list().await, (20, "MISS".to_owned()));
}
