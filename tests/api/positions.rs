//! Live positions through a real gRPC client: ReportPositions and AgentSession (dedup by
//! sequence, resume after a dropped connection, late and out-of-order fixes, invalid
//! positions, session replacement, expired token), arrival on the day's mission, tracks.

use std::time::Duration;

use akig::proto::v1::{
    AgentHeartbeat, AgentHello, AgentPosition, AgentSessionRequest, AgentSessionResponse,
    DeviceInfo, ErrorReason, GetAgentTrackRequest, LatLng, PositionAck, PositionBatch,
    PositionRejectReason, ReportPositionsRequest, ServerNoticeKind, TimeRange,
    agent_session_request::Payload, agent_session_response,
};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};
use uuid::Uuid;

use crate::support::{
    RedisMode, TestApp, TestDb, authed, bad_fields, count, create_site, create_tenant, create_user,
    error_reason, insert_mission, spawn_app_with, test_config, ts,
};

/// Kaloum.
pub const HOME: (f64, f64) = (9.5092, -13.7122);

pub fn fix(sequence: u64, latitude: f64, longitude: f64, at: DateTime<Utc>) -> AgentPosition {
    AgentPosition {
        sequence,
        location: Some(LatLng {
            latitude,
            longitude,
        }),
        accuracy_m: 10.0,
        speed_mps: Some(1.5),
        heading_deg: Some(45.0),
        altitude_m: None,
        battery_percent: Some(80),
        is_mock_location: false,
        fix_time: Some(ts(at)),
    }
}

pub fn hello(last_acked: u64) -> AgentSessionRequest {
    AgentSessionRequest {
        payload: Some(Payload::Hello(AgentHello {
            device: Some(DeviceInfo {
                device_id: "phone-1".into(),
                app_version: "2.3.1".into(),
                platform: "android 13".into(),
            }),
            last_acked_sequence: last_acked,
        })),
    }
}

pub fn batch(positions: Vec<AgentPosition>) -> AgentSessionRequest {
    AgentSessionRequest {
        payload: Some(Payload::Positions(PositionBatch { positions })),
    }
}

/// An open AgentSession: the sending side and the answers.
pub struct Phone {
    pub outbound: mpsc::Sender<AgentSessionRequest>,
    pub inbound: Streaming<AgentSessionResponse>,
}

impl Phone {
    pub async fn open(app: &TestApp, token: &str) -> Result<Phone, tonic::Status> {
        Self::open_with(app, token, hello(0)).await
    }

    pub async fn open_with(
        app: &TestApp,
        token: &str,
        first: AgentSessionRequest,
    ) -> Result<Phone, tonic::Status> {
        let (outbound, receiver) = mpsc::channel(16);
        outbound.send(first).await.expect("queue hello");
        let inbound = app
            .geo_client()
            .await
            .agent_session(authed(ReceiverStream::new(receiver), token))
            .await?
            .into_inner();
        Ok(Phone { outbound, inbound })
    }

    pub async fn next(&mut self) -> Option<Result<AgentSessionResponse, tonic::Status>> {
        tokio::time::timeout(Duration::from_secs(10), self.inbound.message())
            .await
            .expect("an answer within 10 s")
            .transpose()
    }

    /// The next ack, skipping hints and notices.
    pub async fn ack(&mut self) -> PositionAck {
        loop {
            let message = self.next().await.expect("stream open").expect("no error");
            if let Some(agent_session_response::Payload::Ack(ack)) = message.payload {
                return ack;
            }
        }
    }

    pub async fn send(&self, message: AgentSessionRequest) {
        self.outbound.send(message).await.expect("send");
    }
}

struct World {
    app: TestApp,
    db: TestDb,
    agent: Uuid,
    agent_token: String,
    manager_token: String,
    tenant: Uuid,
    site: Uuid,
}

impl World {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut akig::config::ServeConfig)) -> Self {
        let db = TestDb::new().await;
        let pool = &db.pool;
        let site = create_site(pool, "KAL").await;
        let agent = create_user(pool, "agent.kal", "agent", &[site], None).await;
        create_user(pool, "manager.kal", "site_manager", &[site], None).await;
        let tenant = create_tenant(pool, site, "Mariama Bah", 500_000, Some(HOME)).await;
        let mut config = test_config(db.connect_options(), RedisMode::Real);
        adjust(&mut config);
        let app = spawn_app_with(config, db.pool.clone()).await;
        let agent_token = app.token("agent.kal").await;
        let manager_token = app.token("manager.kal").await;
        Self {
            app,
            db,
            agent,
            agent_token,
            manager_token,
            tenant,
            site,
        }
    }

    async fn report(
        &self,
        token: &str,
        positions: Vec<AgentPosition>,
    ) -> Result<PositionAck, tonic::Status> {
        self.app
            .geo_client()
            .await
            .report_positions(authed(
                ReportPositionsRequest {
                    request_id: Uuid::new_v4().to_string(),
                    device: None,
                    positions,
                },
                token,
            ))
            .await
            .map(|r| r.into_inner().ack.expect("ack"))
    }

    async fn stored(&self) -> i64 {
        count(
            &self.db.pool,
            &format!(
                "SELECT count(*) FROM agent_positions WHERE agent_id = '{}'",
                self.agent
            ),
        )
        .await
    }
}

fn rejected(ack: &PositionAck) -> Vec<(u64, PositionRejectReason)> {
    ack.rejected
        .iter()
        .map(|r| (r.sequence, r.reason()))
        .collect()
}

#[tokio::test]
async fn report_positions_stores_each_sequence_once_and_lists_the_invalid_ones() {
    let world = World::new().await;
    let now = Utc::now();
    let mut bad_location = fix(3, 0.0, 0.0, now);
    bad_location.location = Some(LatLng {
        latitude: f64::NAN,
        longitude: 0.0,
    });
    let mut bad_accuracy = fix(4, HOME.0, HOME.1, now);
    bad_accuracy.accuracy_m = -3.0;
    let future = fix(5, HOME.0, HOME.1, now + chrono::Duration::minutes(10));
    let positions = vec![
        fix(1, HOME.0, HOME.1, now - chrono::Duration::seconds(20)),
        fix(2, HOME.0, HOME.1, now - chrono::Duration::seconds(10)),
        bad_location,
        bad_accuracy,
        future,
        fix(6, HOME.0, HOME.1, now),
    ];
    let ack = world
        .report(&world.agent_token, positions.clone())
        .await
        .expect("report");
    assert_eq!(ack.highest_persisted_sequence, 6);
    assert_eq!(ack.accepted_count, 3);
    assert_eq!(
        rejected(&ack),
        vec![
            (3, PositionRejectReason::InvalidLocation),
            (4, PositionRejectReason::InvalidAccuracy),
            (5, PositionRejectReason::FixTimeInFuture),
        ]
    );
    assert_eq!(world.stored().await, 3);

    // The same upload again (a retry under a new request_id): accepted, nothing stored twice.
    let again = world
        .report(&world.agent_token, positions[..2].to_vec())
        .await
        .expect("resend");
    assert_eq!(again.accepted_count, 2, "{again:?}");
    assert!(again.rejected.is_empty());
    assert_eq!(world.stored().await, 3);

    // Sequence 2 with another fix time: a conflict, not a second row.
    let other = fix(2, HOME.0, HOME.1, now - chrono::Duration::seconds(5));
    let conflict = world
        .report(&world.agent_token, vec![other])
        .await
        .expect("conflict answered");
    assert_eq!(
        rejected(&conflict),
        vec![(2, PositionRejectReason::SequenceConflict)]
    );
    assert_eq!(conflict.highest_persisted_sequence, 6);
    assert_eq!(world.stored().await, 3);

    // Over 1,000 positions: the call fails, naming the reason.
    let many: Vec<_> = (1..=1_001)
        .map(|s| fix(100 + s, HOME.0, HOME.1, now))
        .collect();
    let status = world.report(&world.agent_token, many).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(error_reason(&status), "ERROR_REASON_TOO_MANY_POSITIONS");
    // No position at all: refused, naming the field.
    let status = world
        .report(&world.agent_token, Vec::new())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["positions"]);

    // A site manager may not report positions (the layer or the handler refuses).
    let status = world
        .report(&world.manager_token, vec![fix(1, HOME.0, HOME.1, now)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_session_resumes_after_a_dropped_connection_without_loss_or_duplicates() {
    let world = World::new().await;
    let now = Utc::now();
    let fixes: Vec<_> = (1..=10)
        .map(|s| {
            fix(
                s,
                HOME.0 + 0.001 * s as f64,
                HOME.1,
                now - chrono::Duration::seconds(60 - s as i64),
            )
        })
        .collect();

    let mut phone = Phone::open(&world.app, &world.agent_token)
        .await
        .expect("open");
    assert_eq!(phone.ack().await.highest_persisted_sequence, 0);
    phone.send(batch(fixes[..4].to_vec())).await;
    assert_eq!(phone.ack().await.highest_persisted_sequence, 4);
    // The next batch goes out and the connection drops before its ack is read.
    phone.send(batch(fixes[4..7].to_vec())).await;
    drop(phone);

    // Reconnect: the server says where to resume; the phone resends everything after its
    // last ack (4), some of which the server may already have stored.
    let mut phone = Phone::open_with(&world.app, &world.agent_token, hello(4))
        .await
        .expect("reopen");
    let resume = phone.ack().await.highest_persisted_sequence;
    assert!(resume == 4 || resume == 7, "resume at {resume}");
    phone.send(batch(fixes[4..].to_vec())).await;
    let ack = phone.ack().await;
    assert_eq!(ack.highest_persisted_sequence, 10);
    assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);
    assert_eq!(ack.accepted_count, 6);
    assert_eq!(world.stored().await, 10);
    let distinct = count(
        &world.db.pool,
        &format!(
            "SELECT count(DISTINCT sequence) FROM agent_positions WHERE agent_id = '{}'",
            world.agent
        ),
    )
    .await;
    assert_eq!(distinct, 10);

    // Late, out-of-order positions (an offline upload of older fixes with higher sequences
    // arriving first): all kept, and the last known position stays the newest fix.
    let late = vec![
        fix(12, HOME.0, HOME.1, now - chrono::Duration::minutes(30)),
        fix(11, HOME.0, HOME.1, now - chrono::Duration::minutes(40)),
    ];
    phone.send(batch(late)).await;
    let ack = phone.ack().await;
    assert_eq!(ack.highest_persisted_sequence, 12);
    assert_eq!(world.stored().await, 12);
    let last_sequence = count(
        &world.db.pool,
        &format!(
            "SELECT sequence FROM agent_last_positions WHERE agent_id = '{}'",
            world.agent
        ),
    )
    .await;
    assert_eq!(
        last_sequence, 10,
        "the newest fix (by fix time) stays the last position"
    );
}

#[tokio::test]
async fn invalid_positions_in_a_stream_are_rejected_and_the_stream_stays_open() {
    let world = World::new().await;
    let now = Utc::now();
    let mut phone = Phone::open(&world.app, &world.agent_token)
        .await
        .expect("open");
    phone.ack().await;
    let mut nan = fix(2, HOME.0, HOME.1, now);
    nan.speed_mps = Some(f64::NAN);
    let mut missing_time = fix(3, HOME.0, HOME.1, now);
    missing_time.fix_time = None;
    phone
        .send(batch(vec![
            fix(1, HOME.0, HOME.1, now),
            nan,
            missing_time,
            fix(0, HOME.0, HOME.1, now),
        ]))
        .await;
    let ack = phone.ack().await;
    assert_eq!(ack.highest_persisted_sequence, 1);
    assert_eq!(
        rejected(&ack),
        vec![
            (2, PositionRejectReason::InvalidMotion),
            (3, PositionRejectReason::FixTimeMissing),
            (0, PositionRejectReason::SequenceInvalid),
        ]
    );
    // Still open: a heartbeat and another batch go through.
    phone
        .send(AgentSessionRequest {
            payload: Some(Payload::Heartbeat(AgentHeartbeat {
                device_time: Some(ts(Utc::now())),
                battery_percent: Some(70),
            })),
        })
        .await;
    phone.send(batch(vec![fix(4, HOME.0, HOME.1, now)])).await;
    assert_eq!(phone.ack().await.highest_persisted_sequence, 4);
}

#[tokio::test]
async fn a_new_session_replaces_the_old_one() {
    let world = World::new().await;
    let mut first = Phone::open(&world.app, &world.agent_token)
        .await
        .expect("first");
    first.ack().await;
    let mut second = Phone::open(&world.app, &world.agent_token)
        .await
        .expect("second");
    second.ack().await;
    let mut replaced = false;
    while let Some(message) = first.next().await {
        if let Some(agent_session_response::Payload::Notice(notice)) =
            message.expect("no error").payload
            && notice.kind() == ServerNoticeKind::SessionReplaced
        {
            replaced = true;
        }
    }
    assert!(replaced, "the old session was told, then closed");
    // The new one goes on.
    second
        .send(batch(vec![fix(1, HOME.0, HOME.1, Utc::now())]))
        .await;
    assert_eq!(second.ack().await.highest_persisted_sequence, 1);
}

#[tokio::test]
async fn the_session_starts_with_a_hello_from_a_supported_app() {
    let world = World::new().await;
    let status = Phone::open_with(&world.app, &world.agent_token, batch(vec![]))
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument);

    let mut old = hello(0);
    if let Some(Payload::Hello(h)) = &mut old.payload {
        h.device.as_mut().expect("device").app_version = "0.9.2".into();
    }
    let status = Phone::open_with(&world.app, &world.agent_token, old)
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        error_reason(&status),
        "ERROR_REASON_APP_VERSION_UNSUPPORTED"
    );

    let status = Phone::open(&world.app, &world.manager_token)
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn an_expired_token_ends_the_stream_with_unauthenticated() {
    let world = World::with(|config| config.auth.access_token_ttl = Duration::from_secs(3)).await;
    let mut phone = Phone::open(&world.app, &world.agent_token)
        .await
        .expect("open");
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match phone.inbound.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect("the stream ends");
    let status = ended.expect("ended with a status");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_reason(&status), "ERROR_REASON_TOKEN_EXPIRED");
}

#[tokio::test]
async fn arrival_is_recorded_on_the_days_mission() {
    let world = World::new().await;
    let mission = insert_mission(&world.db.pool, world.agent, world.tenant, world.site).await;
    let other_tenant = create_tenant(
        &world.db.pool,
        world.site,
        "Loin",
        500_000,
        Some((HOME.0 + 0.05, HOME.1)),
    )
    .await;
    let far_mission = insert_mission(&world.db.pool, world.agent, other_tenant, world.site).await;
    let now = Utc::now();
    // A mock fix at the door does not count; a real one 50 m away does.
    let mut mocked = fix(1, HOME.0, HOME.1, now - chrono::Duration::minutes(5));
    mocked.is_mock_location = true;
    let near = fix(
        2,
        HOME.0 + 0.00045,
        HOME.1,
        now - chrono::Duration::minutes(2),
    );
    world
        .report(&world.agent_token, vec![mocked, near])
        .await
        .expect("report");
    // Arrivals are looked for right after the commit of the positions: wait for it.
    let mut arrived: Option<DateTime<Utc>> = None;
    for _ in 0..50 {
        arrived = sqlx::query_scalar("SELECT arrived_at FROM missions WHERE id = $1")
            .bind(mission)
            .fetch_one(&world.db.pool)
            .await
            .expect("mission");
        if arrived.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected = now - chrono::Duration::minutes(2);
    let arrived = arrived.expect("arrival recorded");
    assert!(
        (arrived - expected).num_milliseconds().abs() < 1,
        "{arrived} vs {expected}"
    );
    let far: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT arrived_at FROM missions WHERE id = $1")
            .bind(far_mission)
            .fetch_one(&world.db.pool)
            .await
            .expect("mission");
    assert_eq!(far, None);
    let source: Option<String> =
        sqlx::query_scalar("SELECT arrival_source FROM missions WHERE id = $1")
            .bind(mission)
            .fetch_one(&world.db.pool)
            .await
            .expect("mission");
    assert_eq!(source.as_deref(), Some("geofence"));
}

#[tokio::test]
async fn a_track_is_simplified_with_its_distance() {
    let world = World::new().await;
    let start = Utc::now() - chrono::Duration::hours(1);
    // 20 fixes going north in a straight line, ≈ 111 m apart.
    let fixes: Vec<_> = (1..=20)
        .map(|s| {
            fix(
                s,
                HOME.0 + 0.001 * s as f64,
                HOME.1,
                start + chrono::Duration::minutes(s as i64),
            )
        })
        .collect();
    world
        .report(&world.agent_token, fixes)
        .await
        .expect("report");
    let range = TimeRange {
        start_time: Some(ts(start)),
        end_time: Some(ts(Utc::now())),
    };
    let track = |tolerance: f64| GetAgentTrackRequest {
        agent_id: world.agent.to_string(),
        time_range: Some(range),
        simplify_tolerance_m: tolerance,
        max_points: 0,
        include_mock_locations: false,
    };
    let raw = world
        .app
        .geo_client()
        .await
        .get_agent_track(authed(track(0.0), &world.manager_token))
        .await
        .expect("track")
        .into_inner();
    assert_eq!(raw.points.len(), 20);
    assert_eq!(raw.raw_point_count, 20);
    let simple = world
        .app
        .geo_client()
        .await
        .get_agent_track(authed(track(5.0), &world.manager_token))
        .await
        .expect("track")
        .into_inner();
    assert_eq!(simple.points.len(), 2);
    assert_eq!(simple.raw_point_count, 20);
    // 19 legs of ≈ 111.2 m, the same length either way.
    assert!(
        (raw.distance_m - 2_112.0).abs() < 10.0,
        "{}",
        raw.distance_m
    );
    assert!((simple.distance_m - raw.distance_m).abs() < 1.0);

    let mut too_long = track(0.0);
    too_long.time_range = Some(TimeRange {
        start_time: Some(ts(start - chrono::Duration::hours(49))),
        end_time: Some(ts(start)),
    });
    let status = world
        .app
        .geo_client()
        .await
        .get_agent_track(authed(too_long, &world.manager_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        error_reason(&status),
        ErrorReason::RangeTooLong.as_str_name()
    );
}
