use std::time::Duration;

use akig::cache::Cache;
use akig::config::RedisConfig;
use akig::redis::Redis;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Relay, redis_url};

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

async fn wait_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..100 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 5 s");
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
    let upstream: std::net::SocketAddr = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| "127.0.0.1:6379".parse().expect("literal"));
    let relay = Relay::start("127.0.0.1:0".parse().expect("literal"), upstream).await;
    let shutdown = CancellationToken::new();
    let prefix = format!("akig-test-{}", uuid::Uuid::new_v4());
    let cache = linked_cache(format!("redis://{}", relay.addr), &prefix, &shutdown).await;
    let direct = linked_cache(redis_url(), &prefix, &shutdown).await;
    wait_until(|| cache.is_redis_up() && direct.is_redis_up()).await;

    let addr = relay.cut().await;
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
    wait_until(|| cache.is_redis_up()).await;
    // Back on the shared cache: the missed deletion was replayed, local entries dropped.
    assert_eq!(direct.get("shared").await, None);
    assert_eq!(cache.get("k").await, None);
    direct
        .set("k", Bytes::from_static(b"shared"), Duration::from_secs(30))
        .await;
    assert_eq!(cache.get("k").await, Some(Bytes::from_static(b"shared")));
    shutdown.cancel();
}
