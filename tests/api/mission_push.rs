//! Mission changes reach the agents' phones and the live map: UpdateMission and
//! GenerateMissions push a `MissionPush` on the agent's open AgentSession, with the plan
//! version ListTodayMissions answers; the map shows each agent's mission in progress.

use std::time::Duration;

use akig::proto::v1::agent_session_response::Payload;
use akig::proto::v1::{
    GenerateMissionsRequest, ListAgentPositionsRequest, ListTodayMissionsRequest, Mission,
    MissionFailureReason, MissionPush, MissionPushKind, MissionStatus, UpdateMissionRequest,
    UpdateMissionResponse,
};
use chrono::{Months, Utc};
use uuid::Uuid;

use crate::positions::{HOME, Phone, fix};
use crate::support::{
    TestApp, TestDb, authed, create_charges, create_site, create_tenant, create_user, date,
    insert_mission, message, spawn_app, today, ts,
};

/// Site KAL with agents a1 and a2, their supervisor and a tenant owing three months.
struct World {
    app: TestApp,
    db: TestDb,
    site: Uuid,
    a1: Uuid,
    a2: Uuid,
    tenant: Uuid,
    a1_token: String,
    a2_token: String,
    supervisor: String,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let pool = &db.pool;
        let site = create_site(pool, "KAL").await;
        let sup = create_user(pool, "sup.kal", "supervisor", &[site], None).await;
        let a1 = create_user(pool, "a1.kal", "agent", &[site], Some(sup)).await;
        let a2 = create_user(pool, "a2.kal", "agent", &[site], Some(sup)).await;
        let tenant = create_tenant(pool, site, "Mariama Bah", 300_000, Some(HOME)).await;
        let first = today()
            .checked_sub_months(Months::new(3))
            .expect("three months ago");
        create_charges(pool, tenant, first, 3, 300_000).await;
        let app = spawn_app(&db).await;
        let a1_token = app.token("a1.kal").await;
        let a2_token = app.token("a2.kal").await;
        let supervisor = app.token("sup.kal").await;
        Self {
            app,
            db,
            site,
            a1,
            a2,
            tenant,
            a1_token,
            a2_token,
            supervisor,
        }
    }

    async fn set_status(&self, token: &str, mission: Uuid, status: MissionStatus) {
        let change = Mission {
            mission_id: mission.to_string(),
            status: status as i32,
            ..Default::default()
        };
        self.update(token, Uuid::new_v4(), change, &["status"])
            .await;
    }

    async fn update(
        &self,
        token: &str,
        request_id: Uuid,
        mission: Mission,
        paths: &[&str],
    ) -> UpdateMissionResponse {
        self.send(token, update_request(request_id, mission, paths))
            .await
    }

    async fn send(&self, token: &str, request: UpdateMissionRequest) -> UpdateMissionResponse {
        let mut missions = self.app.missions_client().await;
        message(missions.update_mission(authed(request, token)))
            .await
            .expect("update")
    }

    async fn plan_version(&self, token: &str) -> String {
        message(
            self.app
                .missions_client()
                .await
                .list_today_missions(authed(ListTodayMissionsRequest::default(), token)),
        )
        .await
        .expect("today")
        .plan_version
    }

    /// An open session whose hello was answered (the hub knows it).
    async fn phone(&self, token: &str) -> Phone {
        let mut phone = Phone::open(&self.app, token).await.expect("session");
        phone.ack().await;
        phone
    }

    /// The mission in progress ListAgentPositions shows for `agent`, once it equals
    /// `expected` (the hub re-reads it every 5 s); panics after 15 s.
    async fn wait_current_mission(&self, agent: Uuid, expected: &str) {
        let mut seen = String::from("(agent not listed)");
        for _ in 0..75 {
            let page = self
                .app
                .geo_client()
                .await
                .list_agent_positions(authed(
                    ListAgentPositionsRequest::default(),
                    &self.supervisor,
                ))
                .await
                .expect("positions")
                .into_inner();
            if let Some(location) = page.agents.iter().find(|l| {
                l.agent
                    .as_ref()
                    .is_some_and(|a| a.user_id == agent.to_string())
            }) {
                seen = location.current_mission_id.clone();
                if seen == expected {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("current mission of {agent}: {seen:?}, expected {expected:?}");
    }
}

fn update_request(request_id: Uuid, mission: Mission, paths: &[&str]) -> UpdateMissionRequest {
    UpdateMissionRequest {
        request_id: request_id.to_string(),
        mission: Some(mission),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
        occurred_at: Some(ts(Utc::now())),
    }
}

/// The next mission push on `phone`, skipping acks, hints and notices.
async fn next_push(phone: &mut Phone) -> MissionPush {
    loop {
        let message = phone.next().await.expect("stream open").expect("no error");
        if let Some(Payload::MissionPush(push)) = message.payload {
            return push;
        }
    }
}

/// No push arrives on `phone` within a second.
async fn no_push(phone: &mut Phone) {
    let waited = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match phone.inbound.message().await {
                Ok(Some(message)) => {
                    if let Some(Payload::MissionPush(push)) = message.payload {
                        return push;
                    }
                }
                other => panic!("stream ended: {other:?}"),
            }
        }
    })
    .await;
    assert!(waited.is_err(), "unexpected push: {waited:?}");
}

fn kind(push: &MissionPush) -> MissionPushKind {
    MissionPushKind::try_from(push.kind).expect("known kind")
}

#[tokio::test]
async fn updates_are_pushed_to_the_agents_concerned_with_their_plan_version() {
    let w = World::new().await;
    let mission = insert_mission(&w.db.pool, w.a1, w.tenant, w.site).await;
    let mut phone1 = w.phone(&w.a1_token).await;
    let mut phone2 = w.phone(&w.a2_token).await;

    // Reassigned by the supervisor: a1 drops it, a2 gets it.
    let reassign = update_request(
        Uuid::new_v4(),
        Mission {
            mission_id: mission.to_string(),
            agent_id: w.a2.to_string(),
            ..Default::default()
        },
        &["agent_id"],
    );
    w.send(&w.supervisor, reassign.clone()).await;
    let removed = next_push(&mut phone1).await;
    assert_eq!(kind(&removed), MissionPushKind::Removed);
    let removed_mission = removed.mission.expect("the mission");
    assert_eq!(removed_mission.mission_id, mission.to_string());
    assert_eq!(removed_mission.agent_id, w.a2.to_string());
    assert_eq!(removed.plan_version, w.plan_version(&w.a1_token).await);
    let created = next_push(&mut phone2).await;
    assert_eq!(kind(&created), MissionPushKind::Created);
    assert_eq!(
        created.mission.expect("the mission").mission_id,
        mission.to_string()
    );
    assert_eq!(created.plan_version, w.plan_version(&w.a2_token).await);

    // The same request again is answered from its stored response: nothing is pushed twice.
    w.send(&w.supervisor, reassign).await;
    no_push(&mut phone2).await;

    // The agent starts it: an update to the agent's own phone.
    w.set_status(&w.a2_token, mission, MissionStatus::InProgress)
        .await;
    let started = next_push(&mut phone2).await;
    assert_eq!(kind(&started), MissionPushKind::Updated);
    assert_eq!(
        started.mission.expect("the mission").status,
        MissionStatus::InProgress as i32
    );

    // Cancelled by the supervisor.
    w.set_status(&w.supervisor, mission, MissionStatus::Cancelled)
        .await;
    let cancelled = next_push(&mut phone2).await;
    assert_eq!(kind(&cancelled), MissionPushKind::Cancelled);
    assert_eq!(cancelled.plan_version, w.plan_version(&w.a2_token).await);
    // a1 heard of none of it after the reassignment.
    no_push(&mut phone1).await;
}

#[tokio::test]
async fn a_generation_for_today_tells_each_planned_agent_to_reload() {
    let w = World::new().await;
    let mut phone1 = w.phone(&w.a1_token).await;
    let mut phone2 = w.phone(&w.a2_token).await;
    let generated = message(w.app.missions_client().await.generate_missions(authed(
        GenerateMissionsRequest {
            request_id: Uuid::new_v4().to_string(),
            mission_date: Some(date(today())),
            ..Default::default()
        },
        &w.supervisor,
    )))
    .await
    .expect("generate");
    assert_eq!(generated.missions.len(), 1, "the one tenant in arrears");
    // The agent who got the mission is told to reload; the other one's day did not change.
    let (planned, idle) = if generated.missions[0].agent_id == w.a1.to_string() {
        ((&mut phone1, &w.a1_token), &mut phone2)
    } else {
        ((&mut phone2, &w.a2_token), &mut phone1)
    };
    let push = next_push(planned.0).await;
    assert_eq!(kind(&push), MissionPushKind::PlanChanged);
    assert_eq!(push.mission, None);
    assert_eq!(push.plan_version, w.plan_version(planned.1).await);
    no_push(idle).await;
    // A dry run stores nothing, and a run finding the same plan writes nothing: neither
    // pushes.
    for dry_run in [true, false] {
        message(w.app.missions_client().await.generate_missions(authed(
            GenerateMissionsRequest {
                request_id: Uuid::new_v4().to_string(),
                mission_date: Some(date(today())),
                dry_run,
                ..Default::default()
            },
            &w.supervisor,
        )))
        .await
        .expect("generate again");
        no_push(&mut phone1).await;
    }
}

#[tokio::test]
async fn the_map_shows_each_agents_mission_in_progress() {
    let w = World::new().await;
    let mission = insert_mission(&w.db.pool, w.a1, w.tenant, w.site).await;
    // The agent is on the map once a position is known.
    let mut phone = w.phone(&w.a1_token).await;
    phone
        .send(crate::positions::batch(vec![fix(
            1,
            HOME.0,
            HOME.1,
            Utc::now(),
        )]))
        .await;
    assert_eq!(phone.ack().await.highest_persisted_sequence, 1);
    w.wait_current_mission(w.a1, "").await;

    w.set_status(&w.a1_token, mission, MissionStatus::InProgress)
        .await;
    w.wait_current_mission(w.a1, &mission.to_string()).await;

    w.update(
        &w.a1_token,
        Uuid::new_v4(),
        Mission {
            mission_id: mission.to_string(),
            status: MissionStatus::Failed as i32,
            failure_reason: MissionFailureReason::TenantAbsent as i32,
            ..Default::default()
        },
        &["status", "failure_reason"],
    )
    .await;
    w.wait_current_mission(w.a1, "").await;
}

#[tokio::test]
async fn a_visit_closing_a_mission_is_pushed_to_its_agent() {
    use akig::proto::v1::{InteractionOutcome, LatLng, RecordVisitRequest, VisitDetails};
    let w = World::new().await;
    let mission = insert_mission(&w.db.pool, w.a1, w.tenant, w.site).await;
    let mut phone = w.phone(&w.a1_token).await;
    message(
        w.app
            .collections(&w.a1_token)
            .await
            .record_visit(RecordVisitRequest {
                request_id: Uuid::new_v4().to_string(),
                tenant_id: w.tenant.to_string(),
                occurred_at: Some(ts(Utc::now() - chrono::Duration::minutes(1))),
                outcome: InteractionOutcome::Absent as i32,
                mission_id: mission.to_string(),
                visit: Some(VisitDetails {
                    location: Some(LatLng {
                        latitude: HOME.0,
                        longitude: HOME.1,
                    }),
                    accuracy_m: 10.0,
                    fix_time: Some(ts(Utc::now() - chrono::Duration::minutes(1))),
                    ..Default::default()
                }),
                ..Default::default()
            }),
    )
    .await
    .expect("visit");
    let push = next_push(&mut phone).await;
    assert_eq!(kind(&push), MissionPushKind::Updated);
    let pushed = push.mission.expect("the mission");
    assert_eq!(pushed.mission_id, mission.to_string());
    assert_eq!(pushed.status, MissionStatus::Done as i32);
    assert_eq!(push.plan_version, w.plan_version(&w.a1_token).await);
}
