use std::time::Duration;

use akig::cache::Cache;
use akig::redis::Redis;
use akig::redis::RedisConfig;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::support::{Relay, redis_url};

/// The tests' Redis as a socket address, for relays in front of it.
fn redis_addr() -> std::net::SocketAddr {
    redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| "127.0.0.1:6379".parse().expect("literal"))
}

async fn linked_cache(url: String, prefix: &str, shutdown: &CancellationToken) -> Cache {
    let redis = Redis::open(&RedisConfig {
        url,
        key_prefix: prefix.to_owned(),
    })
    .expect("valid url");
    let cache = Cache::new(Some(redis.clone()));
    tokio::spawn(redis.run_link(shutdown.clone()));
    cache
}

/// Waits for `condition`, at most 30 s (a Redis link coming back is seen at the link's next
/// probe: up to 8 s apart while Redis is down, see `akig::redis::ProbeDelay`).
async fn wait_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..600 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 30 s");
}

#[tokio::test]
async fn redis_cache_is_shared_between_instances() {
    let shutdown = CancellationToken::new();
    let prefix = format!("akig-test-{}", uuid::Uuid::new_v4());
    let a = linked_cache(redis_url(), &prefix, &shutdown).await;
    let b = linked_cache(redis_url(), &prefix, &shutdown).await;
    wait_until(|| a.is_redis_up() && b.is_redis_up()).await;

    a.set(
        "site:1",
        Bytes::from_static(b"kaloum"),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(b.get("site:1").await, Some(Bytes::from_static(b"kaloum")));
    b.delete("site:1").await;
    assert_eq!(a.get("site:1").await, None);
    shutdown.cancel();
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_the_in_process_cache() {
    let shutdown = CancellationToken::new();
    let cache = linked_cache("redis://127.0.0.1:1".to_owned(), "akig-test", &shutdown).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!cache.is_redis_up());
    cache
        .set("k", Bytes::from_static(b"v"), Duration::from_secs(30))
        .await;
    assert_eq!(cache.get("k").await, Some(Bytes::from_static(b"v")));
    shutdown.cancel();
}

#[tokio::test]
async fn cache_reconnects_when_redis_comes_back() {
    let upstream = redis_addr();
    let relay = Relay::start("127.0.0.1:0".parse().expect("literal"), upstream).await;
    let shutdown = CancellationToken::new();
    let prefix = format!("akig-test-{}", uuid::Uuid::new_v4());
    let cache = listening_cache(format!("redis://{}", relay.addr), &prefix, &shutdown).await;
    let direct = linked_cache(redis_url(), &prefix, &shutdown).await;
    wait_until(|| cache.is_redis_up() && direct.is_redis_up() && cache.holds_versions()).await;

    let addr = relay.cut().await;
    // Announcements can no longer arrive: no version is held.
    wait_until(|| !cache.holds_versions()).await;
    // Calls fail over to the in-process cache at once; the probe notices the outage too.
    cache
        .set("k", Bytes::from_static(b"local"), Duration::from_secs(30))
        .await;
    assert!(!cache.is_redis_up());
    assert_eq!(cache.get("k").await, Some(Bytes::from_static(b"local")));
    assert_eq!(direct.get("k").await, None, "the outage write stayed local");
    // Written to Redis by another replica, then deleted here during the outage.
    direct
        .set(
            "shared",
            Bytes::from_static(b"stale"),
            Duration::from_secs(30),
        )
        .await;
    cache.delete("shared").await;

    let _relay = Relay::start(addr, upstream).await;
    wait_until(|| cache.is_redis_up() && cache.holds_versions()).await;
    // Back on the shared cache: the missed deletion was replayed, local entries dropped.
    assert_eq!(direct.get("shared").await, None);
    assert_eq!(cache.get("k").await, None);
    direct
        .set("k", Bytes::from_static(b"shared"), Duration::from_secs(30))
        .await;
    assert_eq!(cache.get("k").await, Some(Bytes::from_static(b"shared")));
    shutdown.cancel();
}

/// A replica's cache that listens to the writes' announcements (as the server's does).
async fn listening_cache(url: String, prefix: &str, shutdown: &CancellationToken) -> Cache {
    let cache = linked_cache(url, prefix, shutdown).await;
    tokio::spawn(cache.clone().run_announcements(shutdown.clone()));
    cache
}

/// A company-wide reader's read of `coverage` through `cache`: the number of computations so
/// far (the answer), and whether it was a hit.
async fn read_through(
    cache: &Cache,
    coverage: &akig::cache::Coverage,
    computed: &std::sync::atomic::AtomicU64,
) -> (u64, akig::cache::Outcome) {
    use akig::auth::caller::Caller;
    use akig::auth::rbac::Role;
    use akig::cache::{Audience, CacheKind};
    use std::sync::atomic::Ordering;
    let director = Caller {
        user_id: uuid::Uuid::from_u128(1),
        role: Role::Director,
        session_id: uuid::Uuid::from_u128(2),
        permissions: std::sync::Arc::new(std::collections::HashSet::new()),
        site_ids: std::sync::Arc::from(Vec::new()),
        client_ip: None,
        token_expires_at: 0,
        token_version: 0,
    };
    let (value, outcome) = cache
        .get_or_compute(
            CacheKind::Rankings,
            &Audience::of(&director),
            "held",
            coverage,
            async {
                let n = computed.fetch_add(1, Ordering::SeqCst) + 1;
                Ok::<_, std::convert::Infallible>(akig::proto::v1::Date {
                    year: i32::try_from(n).unwrap_or(0),
                    month: 1,
                    day: 1,
                })
            },
        )
        .await
        .unwrap_or_else(|e| match e {});
    (u64::try_from(value.year).unwrap_or(0), outcome)
}

#[tokio::test]
async fn versions_are_held_between_reads_until_a_write_is_announced() {
    use akig::cache::{Coverage, HELD_FOR, Outcome};
    use std::sync::atomic::AtomicU64;
    let shutdown = CancellationToken::new();
    let prefix = format!("akig-test-{}", uuid::Uuid::new_v4());
    let a = listening_cache(redis_url(), &prefix, &shutdown).await;
    let b = listening_cache(redis_url(), &prefix, &shutdown).await;
    wait_until(|| a.is_redis_up() && b.is_redis_up() && a.holds_versions() && b.holds_versions())
        .await;
    let kaloum = uuid::Uuid::from_u128(10);
    let coverage = Coverage::sites(vec![kaloum]);
    let computed = AtomicU64::new(0);

    // Read under versions taken from Redis, then held: the next hit reads no version.
    let read_at = std::time::Instant::now();
    assert_eq!(
        read_through(&a, &coverage, &computed).await,
        (1, Outcome::Miss)
    );
    let held_before = a.reads_held();
    assert_eq!(
        read_through(&a, &coverage, &computed).await,
        (1, Outcome::Hit)
    );
    assert_eq!(a.reads_held(), held_before + 1, "a hit on held versions");
    assert_eq!(
        read_through(&b, &coverage, &computed).await,
        (1, Outcome::Hit)
    );

    // A write on another site leaves the held versions of Kaloum's answers alone.
    b.written(&[uuid::Uuid::from_u128(11)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        read_through(&a, &coverage, &computed).await,
        (1, Outcome::Hit)
    );

    // A write on Kaloum through the other replica: its announcement drops A's held version
    // well before the version would have expired.
    b.written(&[kaloum]).await;
    let mut outcome = read_through(&a, &coverage, &computed).await;
    while outcome.1 == Outcome::Hit && read_at.elapsed() < HELD_FOR / 2 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        outcome = read_through(&a, &coverage, &computed).await;
    }
    assert_eq!(outcome, (2, Outcome::Miss), "the announcement reached A");
    assert!(
        read_at.elapsed() < HELD_FOR,
        "not the held version's expiry"
    );

    // The writer's own replica sees its write at its next read, without waiting.
    assert_eq!(
        read_through(&a, &coverage, &computed).await,
        (2, Outcome::Hit)
    );
    a.written(&[kaloum]).await;
    assert_eq!(
        read_through(&a, &coverage, &computed).await,
        (3, Outcome::Miss)
    );
    shutdown.cancel();
}

/// A direct connection to the tests' Redis, for what the tests do behind the caches' backs.
async fn redis_admin() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis reachable")
}

#[tokio::test]
async fn a_half_open_subscription_stops_holding_versions() {
    let upstream = redis_addr();
    let (relay, stalled) =
        Relay::stallable("127.0.0.1:0".parse().expect("literal"), upstream).await;
    let shutdown = CancellationToken::new();
    let prefix = format!("akig-test-{}", uuid::Uuid::new_v4());
    let cache = listening_cache(format!("redis://{}", relay.addr), &prefix, &shutdown).await;
    wait_until(|| cache.is_redis_up() && cache.holds_versions()).await;
    // Bytes stop flowing, the connections stay open: only the subscription's ping tells.
    stalled.store(true, std::sync::atomic::Ordering::SeqCst);
    let since = std::time::Instant::now();
    wait_until(|| !cache.holds_versions()).await;
    assert!(
        since.elapsed() < Duration::from_secs(2),
        "seen within a ping and its timeout"
    );
    stalled.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_until(|| cache.holds_versions()).await;
    shutdown.cancel();
    drop(relay);
}

#[tokio::test]
async fn a_lost_version_does_not_bring_back_the_answers_of_its_earlier_life() {
    use akig::cache::{Coverage, Outcome};
    use std::sync::atomic::AtomicU64;
    let shutdown = CancellationToken::new();
    let prefix = format!("akig-test-{}", uuid::Uuid::new_v4());
    let cache = listening_cache(redis_url(), &prefix, &shutdown).await;
    wait_until(|| cache.is_redis_up() && cache.holds_versions()).await;
    let kaloum = uuid::Uuid::from_u128(10);
    let coverage = Coverage::sites(vec![kaloum]);
    let computed = AtomicU64::new(0);
    let key = format!("{prefix}:cv:site:{kaloum}");
    let mut admin = redis_admin().await;

    // The version is lost (evicted, or deleted by hand), then a write moves it; then a
    // second write; then the same again. Restarting at the same value would find the first
    // answer again (in Redis and in this process's decoded copies).
    for (lost, expected) in [(true, 1), (false, 2), (true, 3)] {
        if lost {
            let _: () = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut admin)
                .await
                .expect("del");
        }
        cache.written(&[kaloum]).await;
        assert_eq!(
            read_through(&cache, &coverage, &computed).await,
            (expected, Outcome::Miss)
        );
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_refused_announcement_leaves_the_link_up_and_the_version_moved() {
    let shutdown = CancellationToken::new();
    let prefix = format!("akig-test-{}", uuid::Uuid::new_v4());
    // A user allowed the deployment's keys and no pub/sub channel (Redis 7's default for a
    // new user: `resetchannels`).
    let user = format!("akig-test-{}", uuid::Uuid::new_v4().simple());
    let mut admin = redis_admin().await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg("nopass")
        .arg(format!("~{prefix}:*"))
        .arg("+@all")
        .arg("resetchannels")
        .query_async(&mut admin)
        .await
        .expect("acl user");
    let url = redis_url().replacen("redis://", &format!("redis://{user}:any@"), 1);
    let cache = listening_cache(url, &prefix, &shutdown).await;
    wait_until(|| cache.is_redis_up()).await;
    assert!(!cache.holds_versions(), "no channel: no announcement heard");

    let site = uuid::Uuid::from_u128(10);
    let key = format!("{prefix}:cv:site:{site}");
    cache.written(&[site]).await;
    let first: Option<u64> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .expect("get");
    cache.written(&[site]).await;
    let second: Option<u64> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .expect("get");
    assert!(
        cache.is_redis_up(),
        "a refused PUBLISH is not a failure of the link"
    );
    assert_eq!(
        second,
        first.map(|v| v + 1),
        "the version moved at each write"
    );
    let _: () = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .expect("acl deluser");
    shutdown.cancel();
}

// ---------------------------------------------------------------------------------------------
// The user-standing cache: two replicas on one database and one Redis.

mod standing {
    use std::time::Duration;

    use akig::auth::standing::StandingCache;
    use akig::proto::v1::{LogoutRequest, UpdateUserRequest, User, WhoAmIRequest};
    use akig::startup::Application;
    use sqlx::PgPool;
    use sqlx::postgres::PgPoolOptions;
    use tonic::Code;

    use akig::redis::Redis;
    use akig::redis::RedisConfig;
    use tokio_util::sync::CancellationToken;

    use crate::support::{
        RedisMode, TestApp, TestDb, authed, create_user, redis_connection, redis_url, test_config,
    };

    struct Replica {
        app: TestApp,
        standing: StandingCache,
        /// The deployment's Redis key prefix.
        prefix: String,
    }

    /// `count` servers on the test's database, each with a pool of its own, sharing one Redis
    /// prefix: replicas of one deployment.
    async fn replicas(pool: &PgPool, count: usize, redis: RedisMode) -> Vec<Replica> {
        let prefix = format!("akig-test-{}", uuid::Uuid::new_v4());
        let mut replicas = Vec::new();
        for _ in 0..count {
            let options = (*pool.connect_options()).clone();
            let mut config = test_config(options.clone(), redis);
            if let Some(redis) = config.redis.as_mut() {
                redis.key_prefix = prefix.clone();
            }
            let own_pool = PgPoolOptions::new()
                .max_connections(5)
                .connect_lazy_with(options);
            let app = Application::build_with_pool(config, own_pool)
                .await
                .expect("application builds");
            let standing = app.state().standing.clone();
            let addr = app.local_addr();
            let metrics_addr = app.metrics_addr();
            let shutdown = app.shutdown_token();
            let server = tokio::spawn(app.run_until_stopped());
            replicas.push(Replica {
                app: TestApp {
                    addr,
                    metrics_addr,
                    shutdown,
                    server,
                },
                standing,
                prefix: prefix.clone(),
            });
        }
        replicas
    }

    /// Until every replica serves standings from the shared cache (Redis linked, listening).
    async fn until_shared(replicas: &[Replica]) {
        for _ in 0..100 {
            let mut shared = true;
            for replica in replicas {
                shared &= replica.standing.is_shared().await;
            }
            if shared {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the standing cache was not shared within 5 s");
    }

    /// Disables `user` behind the caches' backs: no announcement reaches the listeners.
    async fn disable_unannounced(pool: &PgPool, user: uuid::Uuid) {
        sqlx::query("ALTER TABLE users DISABLE TRIGGER users_notify_standing")
            .execute(pool)
            .await
            .expect("trigger off");
        sqlx::query("UPDATE users SET disabled = true WHERE id = $1")
            .bind(user)
            .execute(pool)
            .await
            .expect("disable");
    }

    async fn who_am_i(replica: &Replica, token: &str) -> Result<User, tonic::Status> {
        replica
            .app
            .auth_client()
            .await
            .who_am_i(authed(WhoAmIRequest {}, token))
            .await
            .map(|response| response.into_inner().user.expect("user"))
    }

    /// Returns once `replica` refuses `token`; fails after 2 s.
    async fn until_refused(replica: &Replica, token: &str) {
        for _ in 0..40 {
            if who_am_i(replica, token).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("still served after 2 s");
    }

    async fn stop(replicas: Vec<Replica>) {
        for replica in replicas {
            replica
                .app
                .stop(Duration::from_secs(10))
                .await
                .expect("clean stop");
        }
    }

    #[tokio::test]
    async fn standings_are_served_from_the_shared_cache_until_their_epoch_moves() {
        let db = TestDb::new().await;
        let user = create_user(&db.pool, "agent.cache", "agent", &[], None).await;
        let replicas = replicas(&db.pool, 2, RedisMode::Real).await;
        until_shared(&replicas).await;
        let [a, b] = &replicas[..] else {
            unreachable!()
        };
        let token = a.app.token("agent.cache").await;
        // Read on A, cached in Redis for both.
        who_am_i(a, &token).await.expect("first call");

        // Behind the cache's back (no announcement), the database now says disabled: B still
        // answers from the entry A cached, so the check is not reading PostgreSQL.
        disable_unannounced(&db.pool, user).await;
        who_am_i(b, &token).await.expect("served from the cache");

        // Moving the user's epoch on A drops the entry for B too.
        a.standing.invalidate_user(user).await;
        let status = who_am_i(b, &token).await.expect_err("read afresh");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        stop(replicas).await;
    }

    #[tokio::test]
    async fn a_standing_held_in_process_is_served_without_redis_until_a_change_is_announced() {
        let db = TestDb::new().await;
        let user = create_user(&db.pool, "agent.local", "agent", &[], None).await;
        let replicas = replicas(&db.pool, 2, RedisMode::Real).await;
        until_shared(&replicas).await;
        let [a, b] = &replicas[..] else {
            unreachable!()
        };
        let token = a.app.token("agent.local").await;
        who_am_i(b, &token).await.expect("read on B, held there");

        // Unannounced, the user is disabled and the shared entry is dropped (its epoch moved in
        // Redis behind the replicas' backs).
        disable_unannounced(&db.pool, user).await;
        let mut conn = redis_connection().await;
        let _: i64 = redis::cmd("INCR")
            .arg(format!("{}:standing:epoch:{user}", a.prefix))
            .query_async(&mut conn)
            .await
            .expect("move the epoch");
        // A, holding nothing, reads the database; B answers from its process.
        let status = who_am_i(a, &token).await.expect_err("read afresh on A");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        who_am_i(b, &token).await.expect("served in process on B");

        // Announced in plain SQL: once a sync returns on A, B has dropped what it held.
        sqlx::query("SELECT pg_notify('akig_standing', $1)")
            .bind(user.to_string())
            .execute(&db.pool)
            .await
            .expect("announce");
        a.standing.sync().await;
        let status = who_am_i(b, &token).await.expect_err("dropped on B");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        stop(replicas).await;
    }

    #[tokio::test]
    async fn after_a_sync_the_next_read_sees_every_committed_change() {
        let db = TestDb::new().await;
        let user = create_user(&db.pool, "agent.bascule", "agent", &[], None).await;
        let shutdown = CancellationToken::new();
        let redis = Redis::open(&RedisConfig {
            url: redis_url(),
            key_prefix: format!("akig-test-{}", uuid::Uuid::new_v4()),
        })
        .expect("valid url");
        tokio::spawn(redis.clone().run_link(shutdown.clone()));
        let standing = StandingCache::new(db.pool.clone(), Some(redis));
        tokio::spawn(standing.clone().run_listener(shutdown.clone()));
        for _ in 0..100 {
            if standing.is_shared().await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(standing.is_shared().await, "not shared within 5 s");
        let session = uuid::Uuid::new_v4();
        let disabled = |standing: Option<akig::store::sessions::Standing>| {
            standing.expect("the user exists").user.disabled
        };
        assert!(!disabled(standing.get(user, session).await.expect("read")));

        // Each round: a committed change, announced by its trigger; once `sync` returns, the
        // listener has moved the epoch, so the entry cached a moment ago is not served.
        for round in 1..=20 {
            sqlx::query("UPDATE users SET disabled = NOT disabled WHERE id = $1")
                .bind(user)
                .execute(&db.pool)
                .await
                .expect("toggle");
            standing.sync().await;
            let read = disabled(standing.get(user, session).await.expect("read"));
            assert_eq!(read, round % 2 == 1, "round {round}");
        }
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_logout_on_one_replica_is_refused_by_the_other_at_the_next_call() {
        let db = TestDb::new().await;
        create_user(&db.pool, "agent.depart", "agent", &[], None).await;
        let replicas = replicas(&db.pool, 2, RedisMode::Real).await;
        until_shared(&replicas).await;
        let [a, b] = &replicas[..] else {
            unreachable!()
        };
        for round in 0..5 {
            let token = a.app.token("agent.depart").await;
            who_am_i(b, &token).await.expect("cached on B");
            who_am_i(a, &token).await.expect("and read on A");
            a.app
                .auth_client()
                .await
                .logout(authed(
                    LogoutRequest {
                        request_id: uuid::Uuid::new_v4().to_string(),
                        refresh_token: String::new(),
                        all_sessions: false,
                    },
                    &token,
                ))
                .await
                .expect("logout on A");
            let status = who_am_i(b, &token).await.expect_err("logged out");
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "round {round}: {status:?}"
            );
        }
        stop(replicas).await;
    }

    #[tokio::test]
    async fn disabling_a_user_on_one_replica_is_refused_by_the_other_at_the_next_call() {
        let db = TestDb::new().await;
        create_user(&db.pool, "admin.cache", "admin", &[], None).await;
        let agent = create_user(&db.pool, "agent.suspendu", "agent", &[], None).await;
        let replicas = replicas(&db.pool, 2, RedisMode::Real).await;
        until_shared(&replicas).await;
        let [a, b] = &replicas[..] else {
            unreachable!()
        };
        let admin = a.app.token("admin.cache").await;
        let token = b.app.token("agent.suspendu").await;
        who_am_i(b, &token).await.expect("cached on B");
        let update = |disabled: bool| {
            authed(
                UpdateUserRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    user: Some(User {
                        user_id: agent.to_string(),
                        disabled,
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["disabled".to_owned()],
                    }),
                },
                &admin,
            )
        };
        a.app
            .auth_client()
            .await
            .update_user(update(true))
            .await
            .expect("disabled on A");
        let status = who_am_i(b, &token).await.expect_err("disabled");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

        // Enabled again: the token version moved with the disabling, so the token stays dead,
        // and a new login works on B at once.
        a.app
            .auth_client()
            .await
            .update_user(update(false))
            .await
            .expect("enabled on A");
        let token = b.app.token("agent.suspendu").await;
        who_am_i(b, &token).await.expect("back");
        stop(replicas).await;
    }

    #[tokio::test]
    async fn who_am_i_answers_from_the_cached_standing_and_a_profile_change_reaches_every_replica()
    {
        let db = TestDb::new().await;
        create_user(&db.pool, "admin.profil", "admin", &[], None).await;
        let agent = create_user(&db.pool, "agent.profil", "agent", &[], None).await;
        let replicas = replicas(&db.pool, 2, RedisMode::Real).await;
        until_shared(&replicas).await;
        let [a, b] = &replicas[..] else {
            unreachable!()
        };
        let admin = a.app.token("admin.profil").await;
        let token = b.app.token("agent.profil").await;
        let first = who_am_i(b, &token).await.expect("cached on B");

        // Unannounced, the name changes in the database: WhoAmI still answers the cached one,
        // so it does not read PostgreSQL.
        sqlx::query("ALTER TABLE users DISABLE TRIGGER users_notify_standing")
            .execute(&db.pool)
            .await
            .expect("trigger off");
        sqlx::query("UPDATE users SET full_name = 'Nom Caché' WHERE id = $1")
            .bind(agent)
            .execute(&db.pool)
            .await
            .expect("rename");
        let cached = who_am_i(a, &token).await.expect("served from the cache");
        assert_eq!(cached.full_name, first.full_name);
        sqlx::query("ALTER TABLE users ENABLE TRIGGER users_notify_standing")
            .execute(&db.pool)
            .await
            .expect("trigger on");

        // A rename through the API on A shows at B's next call.
        a.app
            .auth_client()
            .await
            .update_user(authed(
                UpdateUserRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    user: Some(User {
                        user_id: agent.to_string(),
                        full_name: "Mariama Camara".to_owned(),
                        phone: "+224622000111".to_owned(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["full_name".to_owned(), "phone".to_owned()],
                    }),
                },
                &admin,
            ))
            .await
            .expect("renamed on A");
        let renamed = who_am_i(b, &token).await.expect("renamed");
        assert_eq!(renamed.full_name, "Mariama Camara");
        assert_eq!(renamed.phone, "+224622000111");
        assert_eq!(renamed.username, "agent.profil");
        assert_eq!(renamed.user_id, agent.to_string());
        stop(replicas).await;
    }

    #[tokio::test]
    async fn a_change_made_in_plain_sql_reaches_every_replica() {
        let db = TestDb::new().await;
        let user = create_user(&db.pool, "agent.sql", "agent", &[], None).await;
        let replicas = replicas(&db.pool, 2, RedisMode::Real).await;
        until_shared(&replicas).await;
        let token = replicas[0].app.token("agent.sql").await;
        for replica in &replicas {
            who_am_i(replica, &token).await.expect("cached");
        }
        sqlx::query("UPDATE users SET disabled = true WHERE id = $1")
            .bind(user)
            .execute(&db.pool)
            .await
            .expect("disable");
        // The announcement travels through each replica's listener: milliseconds.
        for replica in &replicas {
            until_refused(replica, &token).await;
        }
        stop(replicas).await;
    }

    #[tokio::test]
    async fn a_session_deleted_in_plain_sql_ends_its_tokens_on_every_replica() {
        let db = TestDb::new().await;
        let user = create_user(&db.pool, "agent.purge", "agent", &[], None).await;
        let replicas = replicas(&db.pool, 2, RedisMode::Real).await;
        until_shared(&replicas).await;
        let token = replicas[0].app.token("agent.purge").await;
        let kept = replicas[0].app.token("agent.purge").await;
        for replica in &replicas {
            who_am_i(replica, &token).await.expect("cached");
            who_am_i(replica, &kept).await.expect("cached");
        }
        // The session of `token` only (the newest session is `kept`'s).
        sqlx::query(
            "DELETE FROM refresh_tokens WHERE family_id = (
                 SELECT family_id FROM refresh_tokens WHERE user_id = $1
                 ORDER BY issued_at LIMIT 1)",
        )
        .bind(user)
        .execute(&db.pool)
        .await
        .expect("delete the session");
        for replica in &replicas {
            until_refused(replica, &token).await;
            who_am_i(replica, &kept)
                .await
                .expect("the other session lives");
        }
        stop(replicas).await;
    }

    #[tokio::test]
    async fn without_redis_every_call_reads_the_database() {
        let db = TestDb::new().await;
        let user = create_user(&db.pool, "agent.seul", "agent", &[], None).await;
        let replicas = replicas(&db.pool, 1, RedisMode::Unreachable).await;
        let replica = &replicas[0];
        let token = replica.app.token("agent.seul").await;
        who_am_i(replica, &token).await.expect("first call");
        assert!(!replica.standing.is_shared().await);
        // Even unannounced, a change bites at the next call.
        disable_unannounced(&db.pool, user).await;
        let status = who_am_i(replica, &token).await.expect_err("disabled");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        stop(replicas).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The read cache through gRPC: `x-cache`, invalidation by writes, scope, Redis outages,
// single flight.

mod reads {
    use std::time::Duration;

    use super::redis_addr;

    use akig::auth::standing::StandingCache;
    use akig::cache::{Cache, CacheKind};
    use akig::proto::v1::{
        GetDailyRankingRequest, GetTenantArrearsRequest, GetTenantHistoryRequest, GetTenantRequest,
        ListGoodPayersRequest, PaymentMethod, RecordPaymentRequest,
    };
    use akig::startup::Application;
    use chrono::{Datelike, Utc};
    use uuid::Uuid;

    use crate::support::{
        RedisMode, Relay, TestApp, TestDb, authed, create_charge, create_site, create_tenant,
        create_user, test_config, ts, x_cache,
    };

    /// A server on `db` and Redis (at `redis` instead of the test Redis when given), with its
    /// read cache and standing cache.
    async fn server(db: &TestDb, redis: Option<String>) -> (TestApp, Cache, StandingCache) {
        let mut config = test_config(db.connect_options(), RedisMode::Real);
        if let (Some(url), Some(config)) = (redis, config.redis.as_mut()) {
            config.url = url;
        }
        let app = Application::build_with_pool(config, db.pool.clone())
            .await
            .expect("application builds");
        let (cache, standing) = (app.state().cache.clone(), app.state().standing.clone());
        let test_app = TestApp {
            addr: app.local_addr(),
            metrics_addr: app.metrics_addr(),
            shutdown: app.shutdown_token(),
            server: tokio::spawn(app.run_until_stopped()),
        };
        (test_app, cache, standing)
    }

    /// Waits for `condition`, at most 30 s: while Redis is down the link retries after 2, 4,
    /// then every 8 s (`akig::redis::ProbeDelay`), so it may take that long, and more on a
    /// busy host, to see Redis back.
    async fn until(what: &str, mut condition: impl FnMut() -> bool) {
        for _ in 0..600 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: not within 30 s");
    }

    /// Site KAL with one tenant, Aminata, owing one charge of 10,000 GNF due 20 days ago;
    /// site MAT with Fodé, owing 7,000 due 20 days ago. "dir" (director), "gest.kal" and
    /// "gest.kal2" (managers of KAL), "gest.mat" (manager of MAT), "agent.kal" collects on
    /// KAL. Returns (Aminata, Fodé).
    async fn world(db: &TestDb) -> (Uuid, Uuid) {
        let pool = &db.pool;
        let kal = create_site(pool, "KAL").await;
        let mat = create_site(pool, "MAT").await;
        create_user(pool, "dir", "director", &[], None).await;
        create_user(pool, "gest.kal", "site_manager", &[kal], None).await;
        create_user(pool, "gest.kal2", "site_manager", &[kal], None).await;
        create_user(pool, "gest.mat", "site_manager", &[mat], None).await;
        create_user(pool, "agent.kal", "agent", &[kal], None).await;
        let due = akig::domain::conakry_day(Utc::now()) - chrono::Days::new(20);
        let period = due.with_day(1).expect("first of the month");
        let aminata = create_tenant(pool, kal, "Aminata Bah", 10_000, None).await;
        create_charge(pool, aminata, period, due, 10_000).await;
        let fode = create_tenant(pool, mat, "Fodé Touré", 7_000, None).await;
        create_charge(pool, fode, period, due, 7_000).await;
        (aminata, fode)
    }

    /// Aminata's outstanding amount as `user` sees it, and `x-cache`.
    async fn outstanding(app: &TestApp, user: &str, tenant: Uuid) -> (i64, String) {
        let token = app.token(user).await;
        outstanding_as(app, &token, tenant).await
    }

    /// [`outstanding`] with a token already obtained: no login (whose password hashing, in a
    /// debug build on a busy host, can alone outlast `HELD_FOR`) between two reads.
    async fn outstanding_as(app: &TestApp, token: &str, tenant: Uuid) -> (i64, String) {
        let response = app
            .collections(token)
            .await
            .get_tenant_arrears(authed(
                GetTenantArrearsRequest {
                    tenant_id: tenant.to_string(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .expect("arrears");
        let cache = x_cache(&response);
        (response.into_inner().outstanding_gnf, cache)
    }

    /// Asserts the director reads `amount` outstanding with `x-cache: <x>`.
    async fn expect_outstanding(app: &TestApp, tenant: Uuid, amount: i64, x: &str) {
        assert_eq!(
            outstanding(app, "dir", tenant).await,
            (amount, x.to_owned())
        );
    }

    /// The good payers `user` sees (name, paid GNF) over the last 12 months, and `x-cache`.
    async fn good_payers(app: &TestApp, user: &str) -> (Vec<(String, i64)>, String) {
        let token = app.token(user).await;
        let response = app
            .dashboard_client()
            .await
            .list_good_payers(authed(
                ListGoodPayersRequest {
                    min_charges_count: 1,
                    ..Default::default()
                },
                &token,
            ))
            .await
            .expect("good payers");
        let cache = x_cache(&response);
        let lines = response
            .into_inner()
            .good_payers
            .into_iter()
            .map(|g| (g.tenant.expect("tenant").full_name, g.paid_gnf))
            .collect();
        (lines, cache)
    }

    async fn pay(app: &TestApp, tenant: Uuid, amount: i64) {
        let token = app.token("agent.kal").await;
        app.collections(&token)
            .await
            .record_payment(authed(
                RecordPaymentRequest {
                    request_id: Uuid::new_v4().to_string(),
                    tenant_id: tenant.to_string(),
                    amount_gnf: amount,
                    method: PaymentMethod::Cash as i32,
                    occurred_at: Some(ts(Utc::now() - chrono::Duration::minutes(5))),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .expect("payment recorded");
    }

    #[tokio::test]
    async fn a_read_hits_until_a_payment_changes_its_figure() {
        let db = TestDb::new().await;
        let (aminata, _) = world(&db).await;
        let (app, cache, standing) = server(&db, None).await;
        until("redis linked", || cache.is_redis_up()).await;
        for _ in 0..600 {
            if standing.is_shared().await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(standing.is_shared().await, "standings shared within 30 s");

        until("announcements heard", || cache.holds_versions()).await;
        let token = app.token("dir").await;
        assert_eq!(
            outstanding_as(&app, &token, aminata).await,
            (10_000, "MISS".to_owned())
        );
        let held = cache.reads_held();
        assert_eq!(
            outstanding_as(&app, &token, aminata).await,
            (10_000, "HIT".to_owned())
        );
        assert_eq!(
            cache.reads_held() - held,
            1,
            "the hit's versions were held in the process"
        );
        let kal = vec![("Aminata Bah".to_owned(), 0)];
        assert_eq!(
            good_payers(&app, "gest.kal").await,
            (kal.clone(), "MISS".into())
        );
        assert_eq!(good_payers(&app, "gest.kal").await, (kal, "HIT".into()));

        pay(&app, aminata, 4_000).await;
        // The payment dropped the held versions: they are read ahead with the caller's
        // standing, and the moved version drops the entry.
        let ahead = cache.reads_ahead();
        expect_outstanding(&app, aminata, 6_000, "MISS").await;
        assert_eq!(cache.reads_ahead() - ahead, 1);
        assert_eq!(
            good_payers(&app, "gest.kal").await,
            (vec![("Aminata Bah".to_owned(), 4_000)], "MISS".into())
        );
        expect_outstanding(&app, aminata, 6_000, "HIT").await;
        app.stop(Duration::from_secs(10)).await.expect("stops");
    }

    /// On a replica other than the writer's: the old answer at most until the write's
    /// announcement arrives (ADR 0017), then `amount` computed afresh (MISS), well before a
    /// held version would have expired (`HELD_FOR`).
    /// `token` is the director's, obtained before the write.
    async fn expect_announced(app: &TestApp, token: &str, tenant: Uuid, amount: i64) {
        let written_at = std::time::Instant::now();
        let mut seen = outstanding_as(app, token, tenant).await;
        while seen.0 != amount && written_at.elapsed() < akig::cache::HELD_FOR / 2 {
            seen = outstanding_as(app, token, tenant).await;
        }
        assert_eq!(seen, (amount, "MISS".to_owned()));
        assert!(
            written_at.elapsed() < akig::cache::HELD_FOR,
            "not by expiry"
        );
    }

    /// Two replicas on one database and one Redis (one key prefix), each keeping decoded
    /// copies of the answers it served and the versions they were read under: a payment
    /// through one is read on the other, which had the old answer in memory, as soon as the
    /// payment's announcement arrives.
    #[tokio::test]
    async fn a_write_on_one_replica_is_read_on_the_other_once_announced() {
        let db = TestDb::new().await;
        let (aminata, _) = world(&db).await;
        let first = test_config(db.connect_options(), RedisMode::Real);
        let mut second = test_config(db.connect_options(), RedisMode::Real);
        second.redis.clone_from(&first.redis);
        let mut replicas = Vec::new();
        for config in [first, second] {
            let app = Application::build_with_pool(config, db.pool.clone())
                .await
                .expect("application builds");
            let cache = app.state().cache.clone();
            replicas.push(TestApp {
                addr: app.local_addr(),
                metrics_addr: app.metrics_addr(),
                shutdown: app.shutdown_token(),
                server: tokio::spawn(app.run_until_stopped()),
            });
            until("redis linked", || cache.is_redis_up()).await;
        }
        let (a, b) = (&replicas[0], &replicas[1]);

        expect_outstanding(b, aminata, 10_000, "MISS").await;
        expect_outstanding(b, aminata, 10_000, "HIT").await;
        expect_outstanding(a, aminata, 10_000, "HIT").await;
        expect_outstanding(b, aminata, 10_000, "HIT").await;
        let (on_a, on_b) = (a.token("dir").await, b.token("dir").await);
        pay(a, aminata, 4_000).await;
        expect_announced(b, &on_b, aminata, 6_000).await;
        expect_outstanding(a, aminata, 6_000, "HIT").await;
        pay(b, aminata, 1_000).await;
        expect_announced(a, &on_a, aminata, 5_000).await;
        expect_outstanding(b, aminata, 5_000, "HIT").await;
        for app in replicas {
            app.stop(Duration::from_secs(10)).await.expect("stops");
        }
    }

    /// Aminata's card (outstanding) and timeline (entries) as the director sees them, each
    /// with `x-cache`.
    async fn card_and_timeline(app: &TestApp, tenant: Uuid) -> ((i64, String), (usize, String)) {
        let token = app.token("dir").await;
        let mut client = app.collections(&token).await;
        let card = client
            .get_tenant(authed(
                GetTenantRequest {
                    tenant_id: tenant.to_string(),
                },
                &token,
            ))
            .await
            .expect("card");
        let card_cache = x_cache(&card);
        let outstanding = card.into_inner().tenant.expect("tenant").outstanding_gnf;
        let timeline = client
            .get_tenant_history(authed(
                GetTenantHistoryRequest {
                    tenant_id: tenant.to_string(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .expect("timeline");
        let timeline_cache = x_cache(&timeline);
        let entries = timeline.into_inner().entries.len();
        ((outstanding, card_cache), (entries, timeline_cache))
    }

    #[tokio::test]
    async fn a_tenant_card_and_timeline_hit_until_a_payment_changes_them() {
        let db = TestDb::new().await;
        let (aminata, _) = world(&db).await;
        let (app, cache, _) = server(&db, None).await;
        until("redis linked", || cache.is_redis_up()).await;

        let before = card_and_timeline(&app, aminata).await;
        let (entries, _) = before.1;
        assert_eq!(before.0, (10_000, "MISS".to_owned()));
        assert_eq!(before.1.1, "MISS");
        assert_eq!(
            card_and_timeline(&app, aminata).await,
            ((10_000, "HIT".to_owned()), (entries, "HIT".to_owned()))
        );
        pay(&app, aminata, 4_000).await;
        assert_eq!(
            card_and_timeline(&app, aminata).await,
            ((6_000, "MISS".to_owned()), (entries + 1, "MISS".to_owned()))
        );
        app.stop(Duration::from_secs(10)).await.expect("stops");
    }

    #[tokio::test]
    async fn callers_with_different_scopes_never_share_an_entry() {
        let db = TestDb::new().await;
        world(&db).await;
        let (app, cache, _) = server(&db, None).await;
        until("redis linked", || cache.is_redis_up()).await;
        let kal = vec![("Aminata Bah".to_owned(), 0)];
        let mat = vec![("Fodé Touré".to_owned(), 0)];
        let both = vec![("Aminata Bah".to_owned(), 0), ("Fodé Touré".to_owned(), 0)];
        // The same request by three audiences: each computed for itself.
        assert_eq!(
            good_payers(&app, "gest.kal").await,
            (kal.clone(), "MISS".into())
        );
        assert_eq!(
            good_payers(&app, "gest.mat").await,
            (mat.clone(), "MISS".into())
        );
        let (lines, x) = good_payers(&app, "dir").await;
        let mut lines = lines;
        lines.sort();
        assert_eq!((lines, x), (both, "MISS".into()));
        // Another manager of the same site sees exactly what the first one does: shared.
        assert_eq!(good_payers(&app, "gest.kal2").await, (kal, "HIT".into()));
        assert_eq!(good_payers(&app, "gest.mat").await, (mat, "HIT".into()));
        app.stop(Duration::from_secs(10)).await.expect("stops");
    }

    #[tokio::test]
    async fn reads_survive_a_redis_outage_and_caching_resumes_when_it_is_back() {
        let db = TestDb::new().await;
        let (aminata, _) = world(&db).await;
        let upstream = redis_addr();
        let relay = Relay::start("127.0.0.1:0".parse().expect("literal"), upstream).await;
        let (app, cache, _) = server(&db, Some(format!("redis://{}", relay.addr))).await;
        until("redis linked", || cache.is_redis_up()).await;
        expect_outstanding(&app, aminata, 10_000, "MISS").await;
        expect_outstanding(&app, aminata, 10_000, "HIT").await;

        let addr = relay.cut().await;
        // Every read answers; the first ones find Redis gone and compute, then the
        // in-process cache serves.
        let mut outcomes = Vec::new();
        for _ in 0..4 {
            let (amount, x) = outstanding(&app, "dir", aminata).await;
            assert_eq!(amount, 10_000);
            outcomes.push(x);
        }
        assert!(!cache.is_redis_up());
        assert_eq!(
            outcomes.last().map(String::as_str),
            Some("HIT"),
            "{outcomes:?}"
        );
        // A write during the outage is seen at once by this server.
        pay(&app, aminata, 4_000).await;
        expect_outstanding(&app, aminata, 6_000, "MISS").await;
        expect_outstanding(&app, aminata, 6_000, "HIT").await;

        let _relay = Relay::start(addr, upstream).await;
        until("redis back", || cache.is_redis_up()).await;
        // Back on Redis: the entry cached there before the outage is not served (the epoch
        // moved for the write Redis missed); the fresh one is, from Redis.
        expect_outstanding(&app, aminata, 6_000, "MISS").await;
        expect_outstanding(&app, aminata, 6_000, "HIT").await;
        app.stop(Duration::from_secs(10)).await.expect("stops");
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let db = TestDb::new().await;
        world(&db).await;
        let (app, cache, _) = server(&db, None).await;
        until("redis linked", || cache.is_redis_up()).await;
        let token = app.token("dir").await;
        let before = cache.computations(CacheKind::Rankings);
        let calls = (0..12).map(|_| {
            let token = token.clone();
            let app = &app;
            async move {
                let response = app
                    .missions_client()
                    .await
                    .get_daily_ranking(authed(
                        GetDailyRankingRequest {
                            top_count: 5,
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await
                    .expect("ranking");
                let x = x_cache(&response);
                (response.into_inner(), x)
            }
        });
        let answers = futures::future::join_all(calls).await;
        assert_eq!(cache.computations(CacheKind::Rankings) - before, 1);
        let misses = answers.iter().filter(|(_, x)| x == "MISS").count();
        assert_eq!(misses, 1, "one computation, the others served its answer");
        let first = &answers[0].0;
        assert!(answers.iter().all(|(answer, _)| answer == first));
        app.stop(Duration::from_secs(10)).await.expect("stops");
    }
}
