use std::time::Duration;

use akig::proto::v1::WhoAmIRequest;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{RedisMode, TestDb, authed, create_user, limit, spawn_app_with, test_config};

#[tokio::test]
async fn per_user_limit_is_reached_then_recovers() {
    let db = TestDb::new().await;
    create_user(&db.pool, "agent.rapide", "agent", &[], None).await;
    let mut config = test_config(db.connect_options(), RedisMode::Real);
    config.rate_limits.per_user = limit(2, 3);
    let app = spawn_app_with(config, db.pool.clone()).await;
    let token = app.token("agent.rapide").await;
    let mut client = app.auth_client().await;

    let mut refused = None;
    for _ in 0..10 {
        match client.who_am_i(authed(WhoAmIRequest {}, &token)).await {
            Ok(_) => continue,
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("limit reached within 10 calls");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let delay = refused
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("retry delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );

    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    client
        .who_am_i(authed(WhoAmIRequest {}, &token))
        .await
        .expect("recovered after the delay");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

#[tokio::test]
async fn the_user_limit_is_checked_before_the_database() {
    let db = TestDb::new().await;
    let user = create_user(&db.pool, "agent.presse", "agent", &[], None).await;
    let mut config = test_config(db.connect_options(), RedisMode::Real);
    config.rate_limits.per_user = limit(1, 1);
    let app = spawn_app_with(config, db.pool.clone()).await;
    let token = app.token("agent.presse").await;
    let mut client = app.auth_client().await;
    client
        .who_am_i(authed(WhoAmIRequest {}, &token))
        .await
        .expect("first call");

    // Disabled now: the database would say UNAUTHENTICATED, but a call over the limit is
    // refused before the user's standing is read.
    sqlx::query("UPDATE users SET disabled = true WHERE id = $1")
        .bind(user)
        .execute(&db.pool)
        .await
        .expect("disable");
    let refused = client
        .who_am_i(authed(WhoAmIRequest {}, &token))
        .await
        .expect_err("over the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let delay = refused
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("retry delay");

    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    let status = client
        .who_am_i(authed(WhoAmIRequest {}, &token))
        .await
        .expect_err("disabled");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    app.stop(Duration::from_secs(10)).await.expect("stop");
}

/// Replicas of one deployment: servers on one database and one Redis under one key prefix.
mod shared {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use akig::config::ServeConfig;
    use akig::limits::shared_calls::Verdict;
    use akig::proto::v1::WhoAmIRequest;
    use akig::state::AppState;
    use tonic::Code;
    use tonic_types::StatusExt;
    use uuid::Uuid;

    use crate::support::{
        RedisMode, Relay, TestApp, TestDb, authed, create_user, limit, redis_connection, redis_url,
        spawn_app_and_state, test_config,
    };

    /// Until every replica serves standings from the shared cache, so that the limits ride in
    /// its round trip.
    async fn until_shared(states: &[&AppState]) {
        for _ in 0..100 {
            let mut shared = true;
            for state in states {
                shared &= state.standing.is_shared().await;
            }
            if shared {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the standing cache was not shared within 5 s");
    }

    /// `count` calls of WhoAmI, spread over `apps` in turn: the number answered, and the
    /// refusals (each checked to be RESOURCE_EXHAUSTED with a delay to retry after).
    async fn who_am_i_calls(apps: &[&TestApp], token: &str, count: usize) -> (usize, usize) {
        let mut clients = Vec::new();
        for app in apps {
            clients.push(app.auth_client().await);
        }
        let (mut answered, mut refused) = (0, 0);
        for n in 0..count {
            let turn = n % clients.len();
            match clients[turn]
                .who_am_i(authed(WhoAmIRequest {}, token))
                .await
            {
                Ok(_) => answered += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    let delay = status.get_details_retry_info().and_then(|r| r.retry_delay);
                    assert!(delay.is_some_and(|d| d > Duration::ZERO), "{status:?}");
                    refused += 1;
                }
            }
        }
        (answered, refused)
    }

    fn config(db: &TestDb) -> ServeConfig {
        let mut config = test_config(db.connect_options(), RedisMode::Real);
        // 1 call/s after a burst of 4.
        config.rate_limits.per_user = limit(1, 4);
        config
    }

    #[tokio::test]
    async fn a_users_calls_over_two_replicas_are_limited_at_the_shared_rate() {
        let db = TestDb::new().await;
        create_user(&db.pool, "agent.double", "agent", &[], None).await;
        let config = config(&db);
        let (a, state_a) = spawn_app_and_state(config.clone(), db.pool.clone()).await;
        let (b, state_b) = spawn_app_and_state(config, db.pool.clone()).await;
        until_shared(&[&state_a, &state_b]).await;
        let token = a.token("agent.double").await;

        let started = Instant::now();
        let (answered, refused) = who_am_i_calls(&[&a, &b], &token, 12).await;
        let elapsed = started.elapsed();
        // One budget: the burst, and one call per second since. Each replica on its own
        // would have answered 4 + 4.
        let seconds = usize::try_from(elapsed.as_secs()).expect("small");
        assert!(
            answered >= 4 && answered <= 4 + seconds + 1,
            "{answered} answered in {elapsed:?}"
        );
        assert!(answered < 8, "{answered} answered: not shared");
        assert_eq!(answered + refused, 12);
        a.stop(Duration::from_secs(10)).await.expect("stop a");
        b.stop(Duration::from_secs(10)).await.expect("stop b");
    }

    #[tokio::test]
    async fn the_limit_rides_in_the_standings_round_trip_even_after_redis_forgot_the_script() {
        let db = TestDb::new().await;
        let user = create_user(&db.pool, "agent.pipe", "agent", &[], None).await;
        let (app, state) = spawn_app_and_state(config(&db), db.pool.clone()).await;
        until_shared(&[&state]).await;
        let mut conn = redis_connection().await;
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .expect("flush scripts");

        let spend = state
            .rate_limits
            .shared_spend(Some(user), None)
            .expect("shared through Redis");
        for expected in [true, true, true, true, false] {
            let peeked = state
                .standing
                .peek(user, Uuid::new_v4(), &[], Some(spend.invocation()))
                .await;
            let reply = peeked
                .ride
                .expect("the script ran in the standing's pipeline");
            let verdict = spend.verdict(reply).expect("the script's reply");
            assert_eq!(verdict == Verdict::Allowed, expected, "{verdict:?}");
        }
        app.stop(Duration::from_secs(10)).await.expect("stop");
    }

    #[tokio::test]
    async fn with_redis_gone_each_replica_limits_on_its_own_and_calls_still_succeed() {
        let db = TestDb::new().await;
        create_user(&db.pool, "agent.seul", "agent", &[], None).await;
        let upstream: SocketAddr = redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .parse()
            .expect("redis address");
        let relay = Relay::start("127.0.0.1:0".parse().expect("literal"), upstream).await;
        let mut config = config(&db);
        if let Some(redis) = config.redis.as_mut() {
            redis.url = format!("redis://{}", relay.addr);
        }
        let (a, state_a) = spawn_app_and_state(config.clone(), db.pool.clone()).await;
        let (b, state_b) = spawn_app_and_state(config, db.pool.clone()).await;
        until_shared(&[&state_a, &state_b]).await;
        let token = a.token("agent.seul").await;
        // Shared while Redis answers: the burst spent on a is spent on b too.
        assert_eq!(who_am_i_calls(&[&a], &token, 4).await, (4, 0));
        assert_eq!(who_am_i_calls(&[&b], &token, 1).await, (0, 1));

        let _addr = relay.cut().await;
        // Redis gone: every call is answered or limited by its own replica; the first ones
        // find Redis gone and still succeed.
        for app in [&a, &b] {
            let mut client = app.auth_client().await;
            client
                .who_am_i(authed(WhoAmIRequest {}, &token))
                .await
                .expect("answered without Redis");
            let (answered, refused) = who_am_i_calls(&[app], &token, 6).await;
            assert!((3..=4).contains(&answered), "{answered} more answered");
            assert_eq!(answered + refused, 6);
        }
        assert!(!state_a.standing.is_shared().await);
        a.stop(Duration::from_secs(10)).await.expect("stop a");
        b.stop(Duration::from_secs(10)).await.expect("stop b");
    }
}

#[tokio::test]
async fn failed_logins_over_two_replicas_are_counted_together() {
    use crate::support::{PASSWORD, error_reason};

    let db = TestDb::new().await;
    create_user(&db.pool, "agent.oubli", "agent", &[], None).await;
    let config = test_config(db.connect_options(), RedisMode::Real);
    let a = spawn_app_with(config.clone(), db.pool.clone()).await;
    let b = spawn_app_with(config, db.pool.clone()).await;
    // 5 failures per account in 15 minutes: spread over two replicas, each of which alone
    // would still let the account try.
    for n in 0..5 {
        let app = if n % 2 == 0 { &a } else { &b };
        let status = app
            .try_login("agent.oubli", "wrong password")
            .await
            .expect_err("wrong password");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    for app in [&a, &b] {
        let status = app
            .try_login("agent.oubli", PASSWORD)
            .await
            .expect_err("locked on every replica");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(error_reason(&status), "ERROR_REASON_ACCOUNT_LOCKED");
        assert!(status.get_details_retry_info().is_some(), "{status:?}");
    }
    a.stop(Duration::from_secs(10)).await.expect("stop a");
    b.stop(Duration::from_secs(10)).await.expect("stop b");
}
