//! WatchAgents and ListAgentPositions through a real gRPC client: snapshot then live updates,
//! scope and filters, a slow watcher resynced while a fast one keeps up, open streams ended
//! when their caller's access is revoked or their scope moves.

use std::time::Duration;

use akig::proto::v1::{
    AgentPresence, BoundingBox, LatLng, ListAgentPositionsRequest, LogoutRequest,
    WatchAgentsRequest, WatchAgentsResponse, watch_agents_response::Event,
};
use chrono::Utc;
use tonic::{Code, Streaming};
use uuid::Uuid;

use crate::positions::{HOME, Phone, batch, fix};
use crate::support::{
    RedisMode, TestApp, TestDb, authed, create_site, create_user, error_reason, spawn_app_with,
    test_config,
};

struct World {
    app: TestApp,
    _db: TestDb,
    kal_agent: Uuid,
    mat_agent: Uuid,
    kal_token: String,
    mat_token: String,
    director: String,
    kal_manager: String,
    supervisor: String,
}

impl World {
    async fn with(adjust: impl FnOnce(&mut akig::config::ServeConfig)) -> Self {
        let db = TestDb::new().await;
        let pool = &db.pool;
        let kal = create_site(pool, "KAL").await;
        let mat = create_site(pool, "MAT").await;
        let supervisor_id = create_user(pool, "sup.mat", "supervisor", &[mat], None).await;
        let kal_agent = create_user(pool, "agent.kal", "agent", &[kal], None).await;
        let mat_agent = create_user(pool, "agent.mat", "agent", &[mat], Some(supervisor_id)).await;
        create_user(pool, "manager.kal", "site_manager", &[kal], None).await;
        create_user(pool, "director", "director", &[], None).await;
        let mut config = test_config(db.connect_options(), RedisMode::Real);
        adjust(&mut config);
        let app = spawn_app_with(config, db.pool.clone()).await;
        Self {
            kal_token: app.token("agent.kal").await,
            mat_token: app.token("agent.mat").await,
            director: app.token("director").await,
            kal_manager: app.token("manager.kal").await,
            supervisor: app.token("sup.mat").await,
            app,
            _db: db,
            kal_agent,
            mat_agent,
        }
    }

    async fn watch(
        &self,
        token: &str,
        request: WatchAgentsRequest,
    ) -> Streaming<WatchAgentsResponse> {
        self.app
            .geo_client()
            .await
            .watch_agents(authed(request, token))
            .await
            .expect("watch")
            .into_inner()
    }
}

async fn next_event(stream: &mut Streaming<WatchAgentsResponse>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("no error")
        .expect("open")
        .event
        .expect("event")
}

/// The next position update, skipping presence changes and keepalives.
async fn next_position(stream: &mut Streaming<WatchAgentsResponse>) -> (String, u64) {
    loop {
        if let Event::PositionUpdate(location) = next_event(stream).await {
            return (
                location.agent.expect("agent").user_id,
                location.position.expect("position").sequence,
            );
        }
    }
}

#[tokio::test]
async fn watchers_get_a_snapshot_then_updates_in_their_scope() {
    let world = World::with(|_| {}).await;
    let now = Utc::now();
    // Both agents have a position before anyone watches.
    let mut kal = Phone::open(&world.app, &world.kal_token)
        .await
        .expect("kal");
    kal.ack().await;
    kal.send(batch(vec![fix(1, HOME.0, HOME.1, now)])).await;
    kal.ack().await;
    let mut mat = Phone::open(&world.app, &world.mat_token)
        .await
        .expect("mat");
    mat.ack().await;
    mat.send(batch(vec![fix(1, 9.60, -13.60, now)])).await;
    mat.ack().await;

    let mut everyone = world
        .watch(&world.director, WatchAgentsRequest::default())
        .await;
    let Event::Snapshot(snapshot) = next_event(&mut everyone).await else {
        panic!("a snapshot first");
    };
    assert_eq!(snapshot.agents.len(), 2);
    assert!(
        snapshot
            .agents
            .iter()
            .all(|a| a.presence() == AgentPresence::Online)
    );

    // The Kaloum manager sees the Kaloum agent only; the supervisor their own agent only.
    let mut kaloum = world
        .watch(&world.kal_manager, WatchAgentsRequest::default())
        .await;
    let Event::Snapshot(snapshot) = next_event(&mut kaloum).await else {
        panic!("a snapshot first");
    };
    let ids: Vec<_> = snapshot
        .agents
        .iter()
        .map(|a| a.agent.clone().expect("agent").user_id)
        .collect();
    assert_eq!(ids, vec![world.kal_agent.to_string()]);
    let mut team = world
        .watch(&world.supervisor, WatchAgentsRequest::default())
        .await;
    let Event::Snapshot(snapshot) = next_event(&mut team).await else {
        panic!("a snapshot first");
    };
    assert_eq!(snapshot.agents.len(), 1);
    assert_eq!(
        snapshot.agents[0].agent.clone().expect("agent").user_id,
        world.mat_agent.to_string()
    );

    // A box around Matoto: the director's filtered watch.
    let mut boxed = world
        .watch(
            &world.director,
            WatchAgentsRequest {
                bounds: Some(BoundingBox {
                    south_west: Some(LatLng {
                        latitude: 9.55,
                        longitude: -13.65,
                    }),
                    north_east: Some(LatLng {
                        latitude: 9.65,
                        longitude: -13.55,
                    }),
                }),
                ..Default::default()
            },
        )
        .await;
    let Event::Snapshot(snapshot) = next_event(&mut boxed).await else {
        panic!("a snapshot first");
    };
    assert_eq!(snapshot.agents.len(), 1);

    // Live: the Kaloum agent moves; the Matoto agent moves out of the box.
    kal.send(batch(vec![fix(2, HOME.0 + 0.001, HOME.1, Utc::now())]))
        .await;
    kal.ack().await;
    assert_eq!(
        next_position(&mut everyone).await,
        (world.kal_agent.to_string(), 2)
    );
    assert_eq!(
        next_position(&mut kaloum).await,
        (world.kal_agent.to_string(), 2)
    );
    mat.send(batch(vec![fix(2, 9.70, -13.60, Utc::now())]))
        .await;
    mat.ack().await;
    mat.send(batch(vec![fix(3, 9.71, -13.60, Utc::now())]))
        .await;
    mat.ack().await;
    mat.send(batch(vec![fix(4, 9.60, -13.60, Utc::now())]))
        .await;
    mat.ack().await;
    assert_eq!(
        next_position(&mut team).await,
        (world.mat_agent.to_string(), 2)
    );
    // The box watcher: the update leaving the box, none while outside, then the return.
    assert_eq!(
        next_position(&mut boxed).await,
        (world.mat_agent.to_string(), 2)
    );
    assert_eq!(
        next_position(&mut boxed).await,
        (world.mat_agent.to_string(), 4)
    );
    // The Kaloum manager never saw the Matoto agent.
    kal.send(batch(vec![fix(3, HOME.0, HOME.1, Utc::now())]))
        .await;
    kal.ack().await;
    assert_eq!(
        next_position(&mut kaloum).await,
        (world.kal_agent.to_string(), 3)
    );

    // ListAgentPositions: the same state, paged.
    let page = world
        .app
        .geo_client()
        .await
        .list_agent_positions(authed(
            ListAgentPositionsRequest {
                page_size: 1,
                ..Default::default()
            },
            &world.director,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.agents.len(), 1);
    assert!(!page.next_page_token.is_empty());
    let rest = world
        .app
        .geo_client()
        .await
        .list_agent_positions(authed(
            ListAgentPositionsRequest {
                page_size: 1,
                page_token: page.next_page_token,
                ..Default::default()
            },
            &world.director,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(rest.agents.len(), 1);
    assert!(rest.next_page_token.is_empty());
    assert_ne!(page.agents[0].agent, rest.agents[0].agent);
}

#[tokio::test]
async fn a_slow_watcher_gets_a_resync_while_a_fast_one_keeps_up() {
    let world = World::with(|config| config.live.watch_buffer = 8).await;
    // 1,000 sites on the agent make each update ≈ 40 kB, so that the slow watcher's HTTP/2
    // window (2 MB) and the server's send buffer fill within a few dozen updates.
    sqlx::query(
        "WITH s AS (
             INSERT INTO sites (code, name, commune, address, latitude, longitude, kind)
             SELECT chr(65 + g / 676) || chr(65 + g / 26 % 26) || chr(65 + g % 26) || 'Z', 'S' || g, 'Kaloum', '', 9.51, -13.71, 'residential'
             FROM generate_series(1, 1000) g RETURNING id)
         INSERT INTO user_sites (user_id, site_id) SELECT $1, id FROM s",
    )
    .bind(world.kal_agent)
    .execute(&world._db.pool)
    .await
    .expect("sites");
    let mut phone = Phone::open(&world.app, &world.kal_token)
        .await
        .expect("open");
    phone.ack().await;
    let mut fast = world
        .watch(&world.director, WatchAgentsRequest::default())
        .await;
    let mut slow = world
        .watch(&world.director, WatchAgentsRequest::default())
        .await;
    assert!(matches!(next_event(&mut fast).await, Event::Snapshot(_)));
    assert!(matches!(next_event(&mut slow).await, Event::Snapshot(_)));

    // 300 updates, one per batch; the fast watcher reads along, the slow one not at all.
    let reader = tokio::spawn(async move {
        let mut last = 0;
        while last < 300 {
            if let Event::PositionUpdate(location) = next_event(&mut fast).await {
                let sequence = location.position.expect("position").sequence;
                assert!(sequence > last, "in order");
                last = sequence;
            }
        }
        last
    });
    let start = Utc::now() - chrono::Duration::minutes(10);
    for s in 1..=300u64 {
        let at = start + chrono::Duration::seconds(s as i64);
        phone
            .send(batch(vec![fix(s, HOME.0 + 0.00001 * s as f64, HOME.1, at)]))
            .await;
        phone.ack().await;
    }
    assert_eq!(reader.await.expect("fast watcher"), 300);

    // The slow watcher now reads: a resync, then a snapshot with the latest position.
    let mut resynced = None;
    loop {
        match next_event(&mut slow).await {
            Event::Resync(resync) => resynced = Some(resync.dropped_update_count),
            Event::Snapshot(snapshot) if resynced.is_some() => {
                let sequence = snapshot.agents[0].position.expect("position").sequence;
                assert_eq!(sequence, 300);
                break;
            }
            _ => {}
        }
    }
    assert!(resynced.expect("a resync") > 0);
}

#[tokio::test]
async fn watch_agents_works_over_grpc_web() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use prost::Message;

    let world = World::with(|_| {}).await;
    let mut phone = Phone::open(&world.app, &world.kal_token)
        .await
        .expect("open");
    phone.ack().await;
    phone
        .send(batch(vec![fix(1, HOME.0, HOME.1, Utc::now())]))
        .await;
    phone.ack().await;

    // WatchAgentsRequest {} encodes to zero bytes: one uncompressed empty frame.
    let request = http::Request::post(format!(
        "http://{}/akig.v1.GeoService/WatchAgents",
        world.app.addr
    ))
    .version(http::Version::HTTP_11)
    .header("content-type", "application/grpc-web+proto")
    .header("x-grpc-web", "1")
    .header("authorization", format!("Bearer {}", world.director))
    .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
    .expect("request");
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.expect("answers");
    assert_eq!(response.status(), http::StatusCode::OK);
    // The stream stays open: read frames until the first message is whole.
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    let message = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if buffer.len() >= 5 {
                let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
                if buffer.len() >= 5 + len {
                    return WatchAgentsResponse::decode(&buffer[5..5 + len]).expect("message");
                }
            }
            let frame = body.frame().await.expect("more").expect("frame");
            if let Ok(data) = frame.into_data() {
                buffer.extend_from_slice(&data);
            }
        }
    })
    .await
    .expect("the snapshot within 10 s");
    let Some(Event::Snapshot(snapshot)) = message.event else {
        panic!("a snapshot first");
    };
    assert_eq!(snapshot.agents.len(), 1);
    assert_eq!(
        snapshot.agents[0].agent.clone().expect("agent").user_id,
        world.kal_agent.to_string()
    );
}

/// The status an open stream ends with, within `within`.
async fn ended<T>(stream: &mut Streaming<T>, within: Duration) -> tonic::Status {
    tokio::time::timeout(within, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream closed without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends in time")
}

#[tokio::test]
async fn open_streams_end_when_their_callers_access_is_revoked_or_their_scope_moves() {
    let world = World::with(|_| {}).await;
    let mut phone = Phone::open(&world.app, &world.kal_token)
        .await
        .expect("kal");
    phone.ack().await;
    let mut director = world
        .watch(&world.director, WatchAgentsRequest::default())
        .await;
    let mut kaloum = world
        .watch(&world.kal_manager, WatchAgentsRequest::default())
        .await;
    let mut team = world
        .watch(&world.supervisor, WatchAgentsRequest::default())
        .await;
    for stream in [&mut director, &mut kaloum, &mut team] {
        assert!(matches!(next_event(stream).await, Event::Snapshot(_)));
    }

    // The director logs out: their watch ends within moments, well before the periodic
    // check of every open stream (5 s).
    world
        .app
        .auth_as(&world.director)
        .await
        .logout(LogoutRequest {
            request_id: Uuid::new_v4().to_string(),
            refresh_token: String::new(),
            all_sessions: false,
        })
        .await
        .expect("logout");
    let status = ended(&mut director, Duration::from_secs(3)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_reason(&status), "ERROR_REASON_TOKEN_INVALID");

    // The Kaloum agent is disabled in plain SQL: their phone's session ends.
    sqlx::query("UPDATE users SET disabled = true WHERE id = $1")
        .bind(world.kal_agent)
        .execute(&world._db.pool)
        .await
        .expect("disable");
    let status = ended(&mut phone.inbound, Duration::from_secs(3)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_reason(&status), "ERROR_REASON_TOKEN_INVALID");

    // The Kaloum manager is given Matoto too: the watch opened for Kaloum alone ends, and
    // opens again with the same token.
    sqlx::query(
        "INSERT INTO user_sites (user_id, site_id)
         SELECT u.id, s.id FROM users u, sites s
         WHERE u.username = 'manager.kal' AND s.code = 'MAT'",
    )
    .execute(&world._db.pool)
    .await
    .expect("site");
    let status = ended(&mut kaloum, Duration::from_secs(3)).await;
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(error_reason(&status), "ERROR_REASON_SCOPE_CHANGED");
    let mut reopened = world
        .watch(&world.kal_manager, WatchAgentsRequest::default())
        .await;
    assert!(matches!(
        next_event(&mut reopened).await,
        Event::Snapshot(_)
    ));

    // The supervisor's watch was not touched: it still gets their agent's positions.
    let mut mat = Phone::open(&world.app, &world.mat_token)
        .await
        .expect("mat");
    mat.ack().await;
    mat.send(batch(vec![fix(1, 9.60, -13.60, Utc::now())]))
        .await;
    mat.ack().await;
    assert_eq!(
        next_position(&mut team).await,
        (world.mat_agent.to_string(), 1)
    );
}
