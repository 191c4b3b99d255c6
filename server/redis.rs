//! The Redis link of one server process, shared by the read cache (`crate::cache`), the
//! user-standing cache (`crate::auth::standing`) and, later, the pub/sub bridge of live
//! positions (which opens its own connections from [`Redis::client`]).
//!
//! Decisions:
//! - Redis is optional and may be down: no RPC fails because of it. Callers ask
//!   [`Redis::connection`], which answers `None` while the link is down, so they fall back at
//!   once instead of waiting on a timeout per call; a failed call marks the link down.
//! - One multiplexed `ConnectionManager` per process. A background task ([`Redis::run_link`])
//!   connects, probes every 2 s and reconnects; while Redis is down the probes back off
//!   ([`ProbeDelay`]: doubling from 2 s to at most 8 s, each drawn between 80 % and 100 % of
//!   that, so that the replicas of a fleet do not all knock at once on a Redis coming back). Before the link is marked up again, each
//!   consumer's catch-up runs ([`Redis::on_reconnect`]): the cache replays the deletions it
//!   missed, the standing cache moves every user's epoch.
//! - Every call is bounded by [`REDIS_TIMEOUT`] ([`timed`]): a Redis slower than that counts as
//!   down.
//! - Every key starts with the configured prefix (`AKIG_REDIS_PREFIX`), so that several
//!   deployments can share one Redis.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

use crate::metrics::REDIS_UP;

/// Where Redis is and the prefix of every key (`REDIS_URL`, `AKIG_REDIS_PREFIX`; read by
/// `crate::config`).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    pub key_prefix: String,
}

/// How often the link is probed while up (and the first retry after it went down).
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// The longest wait between two reconnection attempts while Redis is down.
const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(8);

/// The wait before the next probe: [`PROBE_INTERVAL`] while the link is up; while it is down,
/// doubling after each failed attempt up to [`PROBE_BACKOFF_MAX`], with jitter (the wait is
/// drawn between 80 % and 100 % of the step). Exponential backoff with jitter as described in
/// "Exponential Backoff And Jitter" (AWS Architecture Blog, 2015).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeDelay {
    step: Duration,
}

impl Default for ProbeDelay {
    fn default() -> Self {
        Self {
            step: PROBE_INTERVAL,
        }
    }
}

impl ProbeDelay {
    /// The wait before the next probe after one that found the link `up`; `jitter` in 0..=1
    /// (0: the whole step, 1: 80 % of it).
    pub fn next(&mut self, up: bool, jitter: f64) -> Duration {
        let wait = self.step.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0));
        self.step = if up {
            PROBE_INTERVAL
        } else {
            (self.step * 2).min(PROBE_BACKOFF_MAX)
        };
        wait
    }
}
/// A Redis call slower than this counts as a failure: the caller falls back.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// What a consumer does on the connection before the link is marked up again after an outage
/// (or at first connection); answers false when Redis failed meanwhile, and the link stays
/// down until the next probe.
pub type CatchUp =
    Box<dyn Fn(ConnectionManager) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// The shared Redis link. Cheap to clone: the clones share one connection and one state.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Link>,
}

struct Link {
    client: redis::Client,
    /// The URL without its password, for the logs.
    shown_url: String,
    prefix: String,
    manager: Mutex<Option<ConnectionManager>>,
    up: AtomicBool,
    catch_ups: Mutex<Vec<CatchUp>>,
}

impl Redis {
    /// Checks the URL; connects later, in [`Redis::run_link`].
    pub fn open(config: &RedisConfig) -> Result<Self, redis::RedisError> {
        Ok(Self {
            inner: Arc::new(Link {
                client: redis::Client::open(config.url.as_str())?,
                shown_url: without_password(&config.url),
                prefix: config.key_prefix.clone(),
                manager: Mutex::new(None),
                up: AtomicBool::new(false),
                catch_ups: Mutex::new(Vec::new()),
            }),
        })
    }

    /// `key` under this deployment's prefix: `<prefix>:<key>`.
    pub fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.inner.prefix)
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// The shared connection while the link is up; `None` while it is down.
    pub fn connection(&self) -> Option<ConnectionManager> {
        if !self.is_up() {
            return None;
        }
        lock(&self.inner.manager).clone()
    }

    /// Marks the link down after a failed call; the probe brings it back.
    pub fn failed(&self, error: &redis::RedisError) {
        if self.inner.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %error, "redis call failed; falling back until it is back");
        }
    }

    /// Registers a catch-up, run on every (re)connection before the link is marked up.
    pub fn on_reconnect(&self, catch_up: CatchUp) {
        lock(&self.inner.catch_ups).push(catch_up);
    }

    /// Keeps the link alive until `shutdown`: connects, probes, reconnects, runs the
    /// catch-ups.
    pub async fn run_link(self, shutdown: CancellationToken) {
        let mut delay = ProbeDelay::default();
        let mut wait = Duration::ZERO;
        // Why Redis cannot be used is said once per outage, the first at start included.
        let mut told = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let was_up = self.is_up();
            let up = match self.probe().await {
                Ok(conn) => was_up || self.catch_up(conn).await,
                Err(error) => {
                    if !told {
                        told = true;
                        tracing::warn!(
                            url = %self.inner.shown_url,
                            error = %error,
                            "redis unreachable: using the in-process cache until it is back"
                        );
                    }
                    false
                }
            };
            if up != was_up {
                self.inner.up.store(up, Ordering::Relaxed);
                if up {
                    told = false;
                    tracing::info!(url = %self.inner.shown_url, "redis connected");
                } else if !told {
                    told = true;
                    tracing::warn!(
                        url = %self.inner.shown_url,
                        "redis unreachable: using the in-process cache until it is back"
                    );
                }
            }
            metrics::gauge!(REDIS_UP).set(if self.is_up() { 1.0 } else { 0.0 });
            wait = delay.next(self.is_up(), rand::random::<f64>());
        }
    }

    /// Pings Redis, connecting first when there is no connection yet; the connection when
    /// Redis answered, or why not.
    async fn probe(&self) -> Result<ConnectionManager, String> {
        let existing = lock(&self.inner.manager).clone();
        let mut conn = match existing {
            Some(conn) => conn,
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT * 4))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1);
                match self
                    .inner
                    .client
                    .get_connection_manager_with_config(config)
                    .await
                {
                    Ok(conn) => {
                        *lock(&self.inner.manager) = Some(conn.clone());
                        conn
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        timed(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(|_| conn)
            .map_err(|e| e.to_string())
    }

    async fn catch_up(&self, conn: ConnectionManager) -> bool {
        let pending: Vec<_> = lock(&self.inner.catch_ups)
            .iter()
            .map(|catch_up| catch_up(conn.clone()))
            .collect();
        let mut all = true;
        for done in pending {
            all &= done.await;
        }
        all
    }
}

/// Runs a Redis call within [`REDIS_TIMEOUT`]; a timeout is an error like any other.
pub async fn timed<T>(call: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "redis call timed out",
        ))),
    }
}

// The guarded values are consistent after any panic (single assignments and pushes).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `url` with the password of its user part replaced by `***`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = rest[..at]
        .split_once(':')
        .map_or(&rest[..at], |(user, _)| user);
    let password = if rest[..at].contains(':') { ":***" } else { "" };
    format!("{scheme}://{user}{password}@{}", &rest[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::{PROBE_BACKOFF_MAX, PROBE_INTERVAL, ProbeDelay, without_password};
    use std::time::Duration;

    #[test]
    fn probes_back_off_while_down_and_return_to_the_interval_once_up() {
        let mut delay = ProbeDelay::default();
        let down: Vec<Duration> = (0..5).map(|_| delay.next(false, 0.0)).collect();
        let secs = |s: u64| Duration::from_secs(s);
        assert_eq!(down, [secs(2), secs(4), secs(8), secs(8), secs(8)]);
        assert_eq!(delay.next(true, 0.0), PROBE_BACKOFF_MAX);
        assert_eq!(delay.next(true, 0.0), PROBE_INTERVAL);
        // Jitter takes at most a fifth off, never adds.
        let mut delay = ProbeDelay::default();
        assert_eq!(delay.next(false, 1.0), Duration::from_millis(1_600));
        assert_eq!(delay.next(false, 0.5), Duration::from_millis(3_600));
        assert_eq!(delay.next(false, 7.0), Duration::from_millis(6_400));
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            without_password("redis://:s3cret@cache:6380/2"),
            "redis://:***@cache:6380/2"
        );
        assert_eq!(
            without_password("rediss://akig:p@ss@cache:6380"),
            "rediss://akig:***@cache:6380"
        );
        assert_eq!(
            without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            without_password("redis://akig@cache/0"),
            "redis://akig@cache/0"
        );
    }
}
