//! Two servers on one PostgreSQL and one Redis: a watcher on one sees an agent streaming to
//! the other, a session opened on one replaces the session on the other, and a server cut
//! from Redis keeps serving its own watchers, then catches up when Redis is back.

use std::net::SocketAddr;
use std::time::Duration;

use akig::config::ServeConfig;
use akig::proto::v1::{
    ServerNoticeKind, WatchAgentsRequest, WatchAgentsResponse, agent_session_response,
    watch_agents_response::Event,
};
use akig::redis::RedisConfig;
use chrono::Utc;
use tonic::Streaming;

use crate::positions::{HOME, Phone, batch, fix};
use crate::support::{
    RedisMode, Relay, TestApp, TestDb, authed, create_site, create_user, redis_url, spawn_app_with,
    test_config,
};

async fn world(db: &TestDb) {
    let site = create_site(&db.pool, "KAL").await;
    create_user(&db.pool, "agent.kal", "agent", &[site], None).await;
    create_user(&db.pool, "director", "director", &[], None).await;
}

/// The configuration both servers share: same database, same Redis and key prefix.
fn shared_config(db: &TestDb) -> ServeConfig {
    test_config(db.connect_options(), RedisMode::Real)
}

async fn watch(app: &TestApp, token: &str) -> Streaming<WatchAgentsResponse> {
    app.geo_client()
        .await
        .watch_agents(authed(WatchAgentsRequest::default(), token))
        .await
        .expect("watch")
        .into_inner()
}

/// The next position update's sequence within `bound`, skipping other events; `None` if
/// none came.
async fn next_position(
    stream: &mut Streaming<WatchAgentsResponse>,
    bound: Duration,
) -> Option<u64> {
    tokio::time::timeout(bound, async {
        loop {
            let event = stream
                .message()
                .await
                .expect("no error")
                .expect("open")
                .event
                .expect("event");
            match event {
                Event::PositionUpdate(location) => {
                    return location.position.expect("position").sequence;
                }
                Event::Snapshot(snapshot) => {
                    if let Some(agent) = snapshot.agents.first() {
                        return agent.position.expect("position").sequence;
                    }
                }
                _ => {}
            }
        }
    })
    .await
    .ok()
}

/// Waits until the server's relay subscription is up: the watcher on `b` sees a position
/// sent to `a` (retrying with new sequences).
async fn until_relayed(
    phone: &mut Phone,
    watcher: &mut Streaming<WatchAgentsResponse>,
    mut sequence: u64,
) -> u64 {
    for _ in 0..50 {
        sequence += 1;
        phone
            .send(batch(vec![fix(sequence, HOME.0, HOME.1, Utc::now())]))
            .await;
        phone.ack().await;
        while let Some(seen) = next_position(watcher, Duration::from_millis(300)).await {
            if seen == sequence {
                return sequence;
            }
        }
    }
    panic!("positions never crossed servers");
}

#[tokio::test]
async fn a_watcher_on_one_server_sees_an_agent_on_the_other_and_sessions_are_unique() {
    let db = TestDb::new().await;
    world(&db).await;
    let config = shared_config(&db);
    let a = spawn_app_with(config.clone(), db.pool.clone()).await;
    let b = spawn_app_with(config, db.pool.clone()).await;
    let director = b.token("director").await;
    let agent_token = a.token("agent.kal").await;

    let mut watcher = watch(&b, &director).await;
    let mut phone = Phone::open(&a, &agent_token).await.expect("open on a");
    phone.ack().await;
    let sequence = until_relayed(&mut phone, &mut watcher, 0).await;
    assert!(sequence >= 1);

    // A session opened on b replaces the one on a.
    let mut on_b = Phone::open(&b, &agent_token).await.expect("open on b");
    on_b.ack().await;
    let replaced = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = phone.next().await {
            if let Some(agent_session_response::Payload::Notice(notice)) =
                message.expect("no error").payload
                && notice.kind() == ServerNoticeKind::SessionReplaced
            {
                return true;
            }
        }
        false
    })
    .await
    .expect("the session on a ends");
    assert!(replaced);
}

/// A Redis URL through `relay`.
fn through(relay: &Relay, prefix: &str) -> Option<RedisConfig> {
    let url = redis_url().replace("127.0.0.1:6379", &relay.addr.to_string());
    Some(RedisConfig {
        url,
        key_prefix: prefix.to_owned(),
    })
}

#[tokio::test]
async fn a_server_cut_from_redis_serves_its_own_watchers_and_catches_up() {
    let db = TestDb::new().await;
    world(&db).await;
    let redis: SocketAddr = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .expect("redis address");
    let mut config = shared_config(&db);
    let prefix = config.redis.as_ref().expect("redis").key_prefix.clone();
    let a = spawn_app_with(config.clone(), db.pool.clone()).await;
    let relay = Relay::start("127.0.0.1:0".parse().expect("literal"), redis).await;
    config.redis = through(&relay, &prefix);
    let b = spawn_app_with(config, db.pool.clone()).await;
    let director = b.token("director").await;
    let agent_token = a.token("agent.kal").await;

    let mut on_b = watch(&b, &director).await;
    let mut phone = Phone::open(&a, &agent_token).await.expect("open on a");
    phone.ack().await;
    let mut sequence = until_relayed(&mut phone, &mut on_b, 0).await;

    // Redis goes away for b: positions sent to a no longer reach b's watcher...
    let relay_addr = relay.cut().await;
    sequence += 1;
    phone
        .send(batch(vec![fix(
            sequence,
            HOME.0 + 0.001,
            HOME.1,
            Utc::now(),
        )]))
        .await;
    phone.ack().await;
    let missed = sequence;
    assert_eq!(next_position(&mut on_b, Duration::from_secs(2)).await, None);

    // ...while b keeps serving its own: a second agent session on b (the same agent moving
    // to b) is seen by b's watcher at once.
    drop(phone);
    let mut phone_b = Phone::open(&b, &agent_token).await.expect("open on b");
    let resume = phone_b.ack().await.highest_persisted_sequence;
    assert_eq!(resume, missed, "the ack reads PostgreSQL, not Redis");
    sequence += 1;
    phone_b
        .send(batch(vec![fix(
            sequence,
            HOME.0 + 0.002,
            HOME.1,
            Utc::now(),
        )]))
        .await;
    phone_b.ack().await;
    assert_eq!(
        next_position(&mut on_b, Duration::from_secs(5)).await,
        Some(sequence)
    );
    drop(phone_b);

    // Redis is back: b subscribes again and catches up from PostgreSQL; new positions sent
    // to a reach b's watcher again.
    let _relay = Relay::start(relay_addr, redis).await;
    let mut phone = Phone::open(&a, &agent_token)
        .await
        .expect("open on a again");
    phone.ack().await;
    let crossed = until_relayed(&mut phone, &mut on_b, sequence).await;
    assert!(crossed > sequence);
}
