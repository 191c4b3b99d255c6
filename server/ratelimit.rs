//! Rate limits: per user and per client address on every call, backpressure on the messages of
//! inbound streams, and a brute-force guard for Login. Over a call limit the call is refused at
//! once with RESOURCE_EXHAUSTED and a RetryInfo saying when to retry.
//!
//! Call and stream limits are GCRA limiters from `governor`, one state per key, kept in memory:
//! each server process limits on its own.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderMap, Request, Response};
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;

use tower::{Layer, Service};
use uuid::Uuid;

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;
type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Counter of calls refused and stream messages delayed, labelled `limit` = user, ip or stream.
pub const RATE_LIMITED: &str = "akig_rate_limited_total";

/// How often idle keys are dropped from the limiters.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Load balancers probe health often, and tools list services: neither is limited.
const EXEMPT_PATH_PREFIXES: [&str; 2] = ["/grpc.health.v1.Health/", "/grpc.reflection."];

/// Longest account name kept as a LoginThrottle key (login names are at most 64 characters).
const MAX_ACCOUNT_KEY_CHARS: usize = 128;

/// A sustained rate and the burst allowed on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Limit {
    fn quota(self) -> Quota {
        Quota::per_second(self.per_second).allow_burst(self.burst)
    }
}

const fn limit(per_second: u32, burst: u32) -> Limit {
    match (NonZeroU32::new(per_second), NonZeroU32::new(burst)) {
        (Some(per_second), Some(burst)) => Limit { per_second, burst },
        _ => panic!("a limit must be at least 1"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Calls of one authenticated user, whatever their address.
    pub per_user: Limit,
    /// Calls from one client address (an IPv6 client is counted per /64).
    pub per_ip: Limit,
    /// Messages one user sends on inbound streams, all their streams together.
    pub stream_messages: Limit,
    /// Reverse proxies whose `x-forwarded-for` is believed. Empty: the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_user: limit(20, 40),
            // Higher than per user: agents on one mobile carrier share its NAT addresses.
            per_ip: limit(50, 100),
            // A phone flushing its offline buffer sends a burst, then is slowed to the rate.
            stream_messages: limit(10, 50),
            trusted_proxies: Vec::new(),
        }
    }
}

/// The client address of a call, as resolved by [`client_ip`]. The rate-limit layer puts it in
/// the request extensions so that later layers and handlers (audit log) use the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// Put in the request extensions by the authentication layer (which runs before this one)
/// once it has applied the per-user and per-address limits to an authenticated call: right
/// after the token's signature, before any database work, so that a client over its limit
/// costs no query. This layer then lets the call through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitChecked;

/// A call over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whose budget is spent: "this user" or "this address".
    pub whose: &'static str,
    /// How long until the next call is allowed (never zero: a client would retry at once).
    pub wait: Duration,
}

impl Limited {
    pub fn message(&self) -> String {
        format!(
            "too many calls from {}; retry in {} ms",
            self.whose,
            self.wait.as_millis()
        )
    }
}

/// The limiters of one server process. Cheap to clone: gives the layer, the stream limiter and
/// the purge task, which all share the same state.
#[derive(Clone)]
pub struct RateLimits {
    inner: Arc<Limiters>,
}

struct Limiters {
    per_user: Keyed<Uuid>,
    per_ip: Keyed<IpAddr>,
    stream_messages: Keyed<Uuid>,
    trusted_proxies: Vec<IpNet>,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            inner: Arc::new(Limiters {
                per_user: RateLimiter::keyed(config.per_user.quota()),
                per_ip: RateLimiter::keyed(config.per_ip.quota()),
                stream_messages: RateLimiter::keyed(config.stream_messages.quota()),
                trusted_proxies: config.trusted_proxies.clone(),
            }),
        }
    }

    pub fn layer(&self) -> RateLimitLayer {
        RateLimitLayer {
            limits: self.inner.clone(),
        }
    }

    /// For handlers that read inbound streams (see [`StreamLimiter::limit`]).
    pub fn stream_limiter(&self) -> StreamLimiter {
        StreamLimiter {
            limits: self.inner.clone(),
        }
    }

    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.inner.trusted_proxies
    }

    /// Spends one call of `user`'s budget (when known) and of `ip`'s, or says which is spent.
    pub fn check(&self, user: Option<Uuid>, ip: Option<IpAddr>) -> Result<(), Limited> {
        self.inner.check(user, ip)
    }

    /// Drops the keys whose state is back to fresh, so that memory follows the active clients.
    pub fn purge(&self) {
        purge_keyed(&self.inner.per_user);
        purge_keyed(&self.inner.per_ip);
        purge_keyed(&self.inner.stream_messages);
    }

    /// Purges every minute until `shutdown`.
    pub async fn run_purge(self, shutdown: CancellationToken) {
        every_purge_interval(shutdown, || self.purge()).await;
    }
}

fn purge_keyed<K: Hash + Eq + Clone>(limiter: &Keyed<K>) {
    limiter.retain_recent();
    limiter.shrink_to_fit();
}

async fn every_purge_interval(shutdown: CancellationToken, purge: impl Fn()) {
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => purge(),
        }
    }
}

/// The client address of a call: the TCP peer, or, when the peer is a trusted proxy, the
/// rightmost `x-forwarded-for` hop that is not itself a trusted proxy. Hops left of it were
/// written by the client and are never believed. `None` when the transport gives no peer.
pub fn client_ip<B>(request: &Request<B>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<TcpConnectInfo>()?
        .remote_addr()?
        .ip()
        .to_canonical();
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    Some(forwarded_client(request.headers(), trusted).unwrap_or(peer))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// Walks `x-forwarded-for` from the right (several headers are one list, in order). Each hop
/// was appended by the proxy on its right, so it is believed as long as that proxy is trusted.
/// A malformed hop stops the walk at the last good one: what lies left of it is unknown.
fn forwarded_client(headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let mut client = None;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return client;
        };
        for hop in value.rsplit(',') {
            let Some(ip) = parse_hop(hop.trim()) else {
                return client;
            };
            client = Some(ip);
            if !is_trusted(ip, trusted) {
                return client;
            }
        }
    }
    client
}

/// A hop is an address, or an address and port as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = match hop.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => hop.parse::<SocketAddr>().ok()?.ip(),
    };
    Some(ip.to_canonical())
}

/// The per-address limiter key: an IPv6 client usually holds a whole /64 and could rotate
/// through it.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
    }
}

fn is_exempt(path: &str) -> bool {
    EXEMPT_PATH_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

impl Limiters {
    /// Checks the user first: a user over their own limit then spends nothing of their
    /// address's budget, which other agents behind the same carrier NAT share.
    fn check(&self, user: Option<Uuid>, ip: Option<IpAddr>) -> Result<(), Limited> {
        if let Some(user) = user
            && let Err(not_until) = self.per_user.check_key(&user)
        {
            let wait = not_until.wait_time_from(self.per_user.clock().now());
            return Err(limited("user", "this user", wait));
        }
        // No address (no TCP peer, as in-process): nothing to key on.
        if let Some(ip) = ip
            && let Err(not_until) = self.per_ip.check_key(&address_key(ip))
        {
            let wait = not_until.wait_time_from(self.per_ip.clock().now());
            return Err(limited("ip", "this address", wait));
        }
        Ok(())
    }
}

fn limited(limit: &'static str, whose: &'static str, wait: Duration) -> Limited {
    metrics::counter!(RATE_LIMITED, "limit" => limit).increment(1);
    tracing::debug!(limit, ?wait, "rate limited");
    Limited {
        whose,
        wait: wait.max(Duration::from_millis(1)),
    }
}

fn refused(limited: Limited) -> Response<Body> {
    tonic::Status::from(crate::api::error::ApiError::from(limited)).into_http()
}

/// Resolves the client address (into [`ClientIp`]) and applies the per-address call limit to
/// calls the authentication layer has not limited already (public ones: Login, Refresh). A
/// stream counts as one call; its messages are limited by [`StreamLimiter`].
#[derive(Clone)]
pub struct RateLimitLayer {
    limits: Arc<Limiters>,
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limits: self.limits.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    limits: Arc<Limiters>,
}

impl<S, B> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The authentication layer in front has usually resolved it already.
        let ip = match request.extensions().get::<ClientIp>() {
            Some(resolved) => Some(resolved.0),
            None => {
                let ip = client_ip(&request, &self.limits.trusted_proxies);
                if let Some(ip) = ip {
                    request.extensions_mut().insert(ClientIp(ip));
                }
                ip
            }
        };
        let checked = request.extensions().get::<RateLimitChecked>().is_some();
        if !checked
            && !is_exempt(request.uri().path())
            && let Err(limited) = self.limits.check(None, ip)
        {
            return Box::pin(async move { Ok(refused(limited)) });
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(request).await })
    }
}

/// Slows the messages a user sends on inbound streams to `stream_messages`. Over the limit the
/// next message waits instead of failing the stream: the handler stops reading meanwhile, so
/// HTTP/2 flow control slows the phone (flushing its offline buffer, say) rather than cutting
/// it. Keyed by user, so that two streams of one user share the budget.
#[derive(Clone)]
pub struct StreamLimiter {
    limits: Arc<Limiters>,
}

impl StreamLimiter {
    /// Wraps an inbound stream (e.g. `tonic::Streaming<T>`) of `user`.
    pub fn limit<S>(&self, user: Uuid, stream: S) -> impl Stream<Item = S::Item> + Send + 'static
    where
        S: Stream + Send + 'static,
        S::Item: Send,
    {
        let limits = self.limits.clone();
        futures::stream::unfold(
            (Box::pin(stream), limits),
            move |(mut stream, limits)| async move {
                let item = stream.next().await?;
                let limiter = &limits.stream_messages;
                if limiter.check_key(&user).is_err() {
                    metrics::counter!(RATE_LIMITED, "limit" => "stream").increment(1);
                    limiter.until_key_ready(&user).await;
                }
                Some((item, (stream, limits)))
            },
        )
    }
}

/// At most `failures` failed logins at once, then one more every `period / failures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    pub failures: NonZeroU32,
    pub period: Duration,
}

/// Brute-force guard for Login: limits FAILED attempts per account and per client address.
///
/// Use: `check` before verifying the password (Err = refuse with RESOURCE_EXHAUSTED,
/// ERROR_REASON_ACCOUNT_LOCKED and the wait as RetryInfo); on a wrong password or an unknown
/// account, `record_failure` (both alike, so the answer does not tell whether the account
/// exists); on success, `record_success`.
///
/// Design: `check` must not consume, which governor's `check_key` does, so this keeps its own
/// GCRA state: per key, the theoretical arrival time (`tat`) of the next failure. A failure
/// moves it one interval (`period / failures`) ahead; a key is refused while its `tat` is more
/// than `failures - 1` intervals ahead of now. Peeking is then a plain read. `tat` is capped at
/// a full budget ahead, so failures recorded while refused cannot stretch the wait beyond one
/// interval: someone failing on purpose can hold an account at that rate, no longer. A key
/// whose `tat` has passed is no different from an absent one and is dropped by `purge`.
/// Failures are rare, so one mutex over two small maps is enough.
#[derive(Clone)]
pub struct LoginThrottle {
    inner: Arc<Throttle>,
}

struct Throttle {
    per_account: Gcra,
    per_ip: Gcra,
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    accounts: HashMap<String, Instant>,
    ips: HashMap<IpAddr, Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Gcra {
    interval: Duration,
    tolerance: Duration,
}

impl Gcra {
    fn new(limit: FailureLimit) -> Self {
        let interval = limit.period / limit.failures.get();
        Self {
            interval,
            tolerance: interval * (limit.failures.get() - 1),
        }
    }

    /// How long until one more failure would be allowed; zero when it is now.
    fn wait(&self, tat: Option<&Instant>, now: Instant) -> Duration {
        tat.map_or(Duration::ZERO, |tat| {
            tat.saturating_duration_since(now)
                .saturating_sub(self.tolerance)
        })
    }

    fn after_failure(&self, tat: Option<&Instant>, now: Instant) -> Instant {
        let from = tat.map_or(now, |tat| (*tat).max(now));
        (from + self.interval).min(now + self.tolerance + self.interval)
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        let quarter_hour = Duration::from_secs(15 * 60);
        Self::new(
            FailureLimit {
                failures: NonZeroU32::new(5).expect("non-zero"),
                period: quarter_hour,
            },
            // An address may be a carrier NAT shared by many agents.
            FailureLimit {
                failures: NonZeroU32::new(20).expect("non-zero"),
                period: quarter_hour,
            },
        )
    }
}

impl LoginThrottle {
    pub fn new(per_account: FailureLimit, per_ip: FailureLimit) -> Self {
        Self {
            inner: Arc::new(Throttle {
                per_account: Gcra::new(per_account),
                per_ip: Gcra::new(per_ip),
                failures: Mutex::new(Failures::default()),
            }),
        }
    }

    /// Whether a login may be tried now; Err holds how long to wait. Consumes nothing.
    pub fn check(&self, account: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(account, ip, Instant::now())
    }

    pub fn record_failure(&self, account: &str, ip: Option<IpAddr>) {
        self.record_failure_at(account, ip, Instant::now());
    }

    /// Forgets the account's failures (not the address's): a user who mistyped, then got in,
    /// starts afresh.
    pub fn record_success(&self, account: &str) {
        self.lock().accounts.remove(&account_key(account));
    }

    /// Drops the keys whose failures have all been paid back.
    pub fn purge(&self) {
        self.purge_at(Instant::now());
    }

    /// Purges every minute until `shutdown`.
    pub async fn run_purge(self, shutdown: CancellationToken) {
        every_purge_interval(shutdown, || self.purge()).await;
    }

    // The clock is a parameter so that tests run the real 15-minute windows without waiting.

    fn check_at(&self, account: &str, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let account = account_key(account);
        let failures = self.lock();
        let by_account = self
            .inner
            .per_account
            .wait(failures.accounts.get(&account), now);
        let by_ip = ip.map_or(Duration::ZERO, |ip| {
            self.inner
                .per_ip
                .wait(failures.ips.get(&address_key(ip)), now)
        });
        let wait = by_account.max(by_ip);
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    fn record_failure_at(&self, account: &str, ip: Option<IpAddr>, now: Instant) {
        let account = account_key(account);
        let mut failures = self.lock();
        let tat = self
            .inner
            .per_account
            .after_failure(failures.accounts.get(&account), now);
        failures.accounts.insert(account, tat);
        if let Some(ip) = ip {
            let ip = address_key(ip);
            let tat = self.inner.per_ip.after_failure(failures.ips.get(&ip), now);
            failures.ips.insert(ip, tat);
        }
    }

    fn purge_at(&self, now: Instant) {
        let mut failures = self.lock();
        failures.accounts.retain(|_, tat| *tat > now);
        failures.ips.retain(|_, tat| *tat > now);
        failures.accounts.shrink_to_fit();
        failures.ips.shrink_to_fit();
    }

    fn lock(&self) -> MutexGuard<'_, Failures> {
        // The maps are consistent after any panic (single inserts and removes).
        self.inner
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Login names are lower-case; a phone number has no case. Bounded so that a huge name sent
/// before validation cannot grow the map.
fn account_key(account: &str) -> String {
    account
        .trim()
        .chars()
        .take(MAX_ACCOUNT_KEY_CHARS)
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tonic::Code;
    use tonic_types::StatusExt;
    use tower::ServiceExt;

    const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
    const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    const WHO_AM_I: &str = "/akig.v1.AuthService/WhoAmI";

    fn config(per_user: Limit, per_ip: Limit) -> RateLimitConfig {
        RateLimitConfig {
            per_user,
            per_ip,
            stream_messages: limit(20, 2),
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        }
    }

    fn request(path: &str, peer: &str) -> Request<Body> {
        let mut request = Request::builder()
            .uri(format!("http://akig{path}"))
            .body(Body::empty())
            .unwrap();
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(SocketAddr::new(peer.parse().unwrap(), 40000)),
        });
        request
    }

    fn forwarded(mut request: Request<Body>, value: &'static str) -> Request<Body> {
        request
            .headers_mut()
            .append("x-forwarded-for", http::HeaderValue::from_static(value));
        request
    }

    /// Calls through the layer; the inner service answers OK with the ClientIp it saw.
    async fn call(limits: &RateLimits, request: Request<Body>) -> Response<Body> {
        let inner = tower::service_fn(|request: Request<Body>| async move {
            let mut response = Response::new(Body::empty());
            if let Some(ClientIp(ip)) = request.extensions().get::<ClientIp>() {
                response
                    .headers_mut()
                    .insert("x-client-ip", ip.to_string().parse().unwrap());
            }
            Ok::<_, Infallible>(response)
        });
        limits.layer().layer(inner).oneshot(request).await.unwrap()
    }

    fn code(response: &Response<Body>) -> Code {
        tonic::Status::from_header_map(response.headers()).map_or(Code::Ok, |s| s.code())
    }

    fn seen_ip(response: &Response<Body>) -> &str {
        response.headers()["x-client-ip"].to_str().unwrap()
    }

    #[tokio::test]
    async fn burst_then_resource_exhausted_with_retry_info_then_recovers() {
        // 4/s after a burst of 2: a cell comes back every 250 ms, so a slow machine does not
        // refill one between these calls.
        let limits = RateLimits::new(&config(limit(4, 2), limit(4, 2)));
        for _ in 0..2 {
            let response = call(&limits, request(WHO_AM_I, "198.51.100.1")).await;
            assert_eq!(code(&response), Code::Ok);
        }
        let response = call(&limits, request(WHO_AM_I, "198.51.100.1")).await;
        let status = tonic::Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("address"), "{}", status.message());
        let wait = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
            .expect("RetryInfo with a delay");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(250),
            "{wait:?}"
        );

        // A hair more: the limiter's clock and tokio's timer are different clocks.
        tokio::time::sleep(wait + Duration::from_millis(5)).await;
        let response = call(&limits, request(WHO_AM_I, "198.51.100.1")).await;
        assert_eq!(code(&response), Code::Ok);
    }

    #[tokio::test]
    async fn addresses_are_limited_independently() {
        let limits = RateLimits::new(&config(limit(1, 1), limit(1, 1)));
        let first = request(WHO_AM_I, "198.51.100.1");
        assert_eq!(code(&call(&limits, first).await), Code::Ok);
        let again = request(WHO_AM_I, "198.51.100.1");
        assert_eq!(code(&call(&limits, again).await), Code::ResourceExhausted);
        let other = request(WHO_AM_I, "198.51.100.2");
        assert_eq!(code(&call(&limits, other).await), Code::Ok);
        // One IPv6 client holds a /64: its addresses share one budget.
        let v6 = request(WHO_AM_I, "2001:db8:1:2::1");
        assert_eq!(code(&call(&limits, v6).await), Code::Ok);
        let same_64 = request(WHO_AM_I, "2001:db8:1:2::ffff");
        assert_eq!(code(&call(&limits, same_64).await), Code::ResourceExhausted);
    }

    #[tokio::test]
    async fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let limits = RateLimits::new(&config(limit(1, 1), limit(1, 1)));
        // From an untrusted peer the header is ignored.
        let spoofed = forwarded(request(WHO_AM_I, "203.0.113.5"), "192.0.2.1");
        let response = call(&limits, spoofed).await;
        assert_eq!(seen_ip(&response), "203.0.113.5");

        // Through trusted proxies: the rightmost hop that is not a proxy; left of it, the
        // client's own claims.
        let proxied = forwarded(
            request(WHO_AM_I, "10.0.0.1"),
            "192.0.2.1, 198.51.100.7, 10.0.0.2",
        );
        let response = call(&limits, proxied).await;
        assert_eq!(seen_ip(&response), "198.51.100.7");
        // ...and the limit applies to that client, not to the proxy.
        let same = forwarded(request(WHO_AM_I, "10.0.0.1"), "198.51.100.7");
        assert_eq!(code(&call(&limits, same).await), Code::ResourceExhausted);
        let other = forwarded(request(WHO_AM_I, "10.0.0.1"), "198.51.100.8");
        assert_eq!(code(&call(&limits, other).await), Code::Ok);
    }

    #[test]
    fn client_ip_edge_cases() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // An IPv4 peer seen on a dual-stack socket.
        let mapped = request(WHO_AM_I, "::ffff:198.51.100.3");
        assert_eq!(client_ip(&mapped, &trusted), ip("198.51.100.3"));
        // Several headers form one list; a port is allowed.
        let mut two = forwarded(request(WHO_AM_I, "10.0.0.1"), "192.0.2.9");
        two = forwarded(two, "198.51.100.4:5555, 10.0.0.3");
        assert_eq!(client_ip(&two, &trusted), ip("198.51.100.4"));
        // A malformed hop stops the walk at the last trusted hop.
        let garbled = forwarded(request(WHO_AM_I, "10.0.0.1"), "192.0.2.9, junk, 10.0.0.3");
        assert_eq!(client_ip(&garbled, &trusted), ip("10.0.0.3"));
        // Only proxies: the leftmost one, which a trusted proxy wrote.
        let internal = forwarded(request(WHO_AM_I, "10.0.0.1"), "10.0.0.7, 10.0.0.3");
        assert_eq!(client_ip(&internal, &trusted), ip("10.0.0.7"));
        // A proxy that sent no header, and a call without a TCP peer.
        let bare = request(WHO_AM_I, "10.0.0.1");
        assert_eq!(client_ip(&bare, &trusted), ip("10.0.0.1"));
        assert_eq!(client_ip(&Request::new(()), &trusted), None);
    }

    #[test]
    fn per_user_limit_applies_across_addresses_and_comes_first() {
        let limits = RateLimits::new(&config(limit(1, 2), limit(100, 100)));
        let user = Uuid::new_v4();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        for peer in ["198.51.100.1", "198.51.100.2"] {
            assert_eq!(limits.check(Some(user), ip(peer)), Ok(()));
        }
        let limited = limits
            .check(Some(user), ip("198.51.100.3"))
            .expect_err("over the user's limit");
        assert_eq!(limited.whose, "this user");
        assert!(limited.wait > Duration::ZERO, "{limited:?}");
        // Another user on the same address is not affected, nor is an anonymous call.
        assert_eq!(
            limits.check(Some(Uuid::new_v4()), ip("198.51.100.3")),
            Ok(())
        );
        assert_eq!(limits.check(None, ip("198.51.100.3")), Ok(()));

        // The user is checked first: refused calls spend nothing of the address's budget.
        let tight = RateLimits::new(&config(limit(1, 1), limit(1, 2)));
        let user = Uuid::new_v4();
        assert_eq!(tight.check(Some(user), ip("198.51.100.9")), Ok(()));
        for _ in 0..3 {
            assert!(tight.check(Some(user), ip("198.51.100.9")).is_err());
        }
        assert_eq!(
            tight.check(Some(Uuid::new_v4()), ip("198.51.100.9")),
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_call_the_authentication_layer_limited_passes_untouched() {
        let limits = RateLimits::new(&config(limit(1, 1), limit(1, 1)));
        for _ in 0..3 {
            let mut checked = request(WHO_AM_I, "198.51.100.1");
            checked.extensions_mut().insert(RateLimitChecked);
            let response = call(&limits, checked).await;
            assert_eq!(code(&response), Code::Ok);
            assert_eq!(seen_ip(&response), "198.51.100.1");
        }
        // Nothing of the address's budget was spent by them.
        let response = call(&limits, request(WHO_AM_I, "198.51.100.1")).await;
        assert_eq!(code(&response), Code::Ok);
    }

    #[tokio::test]
    async fn health_and_reflection_are_exempt() {
        let limits = RateLimits::new(&config(limit(1, 1), limit(1, 1)));
        for _ in 0..5 {
            let health = request(HEALTH_CHECK, "198.51.100.1");
            assert_eq!(code(&call(&limits, health).await), Code::Ok);
            let reflection = request(REFLECTION, "198.51.100.1");
            assert_eq!(code(&call(&limits, reflection).await), Code::Ok);
        }
        // They spent nothing of the address's budget, and still get the client address.
        let response = call(&limits, request(WHO_AM_I, "198.51.100.1")).await;
        assert_eq!(code(&response), Code::Ok);
        assert_eq!(seen_ip(&response), "198.51.100.1");
    }

    #[tokio::test]
    async fn stream_limiter_slows_a_fast_stream() {
        // 20 messages/s after a burst of 2: 6 messages take at least 4 × 50 ms.
        let limits = RateLimits::new(&config(limit(1, 1), limit(1, 1)));
        let limiter = limits.stream_limiter();
        let user = Uuid::new_v4();
        let started = Instant::now();
        let items: Vec<u32> = limiter
            .limit(user, futures::stream::iter(0..6))
            .collect()
            .await;
        assert_eq!(items, (0..6).collect::<Vec<_>>());
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );

        // Two streams of one user share the budget: 6 messages again take at least 4 × 50 ms.
        let user = Uuid::new_v4();
        let started = Instant::now();
        let (a, b) = tokio::join!(
            limiter.limit(user, futures::stream::iter(0..3)).count(),
            limiter.limit(user, futures::stream::iter(0..3)).count(),
        );
        assert_eq!(a + b, 6);
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );

        // Another user has a budget of their own.
        assert!(
            limits
                .inner
                .stream_messages
                .check_key(&Uuid::new_v4())
                .is_ok()
        );
    }

    #[test]
    fn login_throttle_blocks_after_failures_and_recovers() {
        // The defaults: 5 failures per 15 min per account, 20 per address.
        let throttle = LoginThrottle::default();
        let ip = Some("198.51.100.1".parse().unwrap());
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        for _ in 0..5 {
            assert_eq!(throttle.check_at("alice", ip, t0), Ok(()));
            throttle.record_failure_at("alice", ip, t0);
        }
        // Names are compared trimmed and lower-case.
        let wait = throttle.check_at(" Alice ", ip, t0).expect_err("locked");
        assert_eq!(wait, Duration::from_secs(180));
        // Checking consumes nothing; failures while locked do not stretch the wait.
        for _ in 0..10 {
            assert!(throttle.check_at("alice", ip, at(60)).is_err());
            throttle.record_failure_at("alice", None, at(60));
        }
        assert_eq!(
            throttle.check_at("alice", None, at(60)),
            Err(Duration::from_secs(180))
        );
        // One attempt back every 3 minutes.
        assert_eq!(throttle.check_at("alice", ip, at(240)), Ok(()));
        throttle.record_failure_at("alice", ip, at(240));
        assert!(throttle.check_at("alice", ip, at(240)).is_err());

        // An address: 20 failures whatever the accounts, then everyone behind it waits.
        let nat = Some("198.51.100.9".parse().unwrap());
        for n in 0..20 {
            let account = format!("user{n}");
            assert_eq!(throttle.check_at(&account, nat, t0), Ok(()), "{n}");
            throttle.record_failure_at(&account, nat, t0);
        }
        let wait = throttle
            .check_at("bob", nat, t0)
            .expect_err("address locked");
        assert_eq!(wait, Duration::from_secs(45));
        assert_eq!(throttle.check_at("bob", None, t0), Ok(()));
        assert_eq!(throttle.check_at("bob", nat, at(45)), Ok(()));

        // A success forgets the account's failures, not the address's.
        throttle.record_success("ALICE");
        assert_eq!(throttle.check_at("alice", None, at(240)), Ok(()));
        assert!(throttle.check_at("alice", nat, t0).is_err());

        // The public methods run on the real clock.
        let throttle = LoginThrottle::default();
        throttle.record_failure("carol", ip);
        assert_eq!(throttle.check("carol", ip), Ok(()));
    }

    #[tokio::test]
    async fn purge_drops_idle_keys() {
        // 5/s, burst 1: a key is back to fresh 2 × 200 ms after its call.
        let limits = RateLimits::new(&config(limit(5, 1), limit(5, 1)));
        for peer in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
            let ip = Some(peer.parse().unwrap());
            assert_eq!(limits.check(Some(Uuid::new_v4()), ip), Ok(()));
        }
        assert_eq!(limits.inner.per_ip.len(), 3);
        assert_eq!(limits.inner.per_user.len(), 3);
        limits.purge();
        assert_eq!(limits.inner.per_ip.len(), 3, "recent keys stay");
        tokio::time::sleep(Duration::from_millis(450)).await;
        limits.purge();
        assert_eq!(limits.inner.per_ip.len(), 0);
        assert_eq!(limits.inner.per_user.len(), 0);

        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        throttle.record_failure_at("alice", Some("198.51.100.1".parse().unwrap()), t0);
        throttle.purge_at(t0 + Duration::from_secs(179));
        assert_eq!(throttle.lock().accounts.len(), 1, "recent keys stay");
        // One failure is paid back after 3 min (account) and 45 s (address).
        throttle.purge_at(t0 + Duration::from_secs(181));
        assert_eq!(throttle.lock().accounts.len(), 0);
        assert_eq!(throttle.lock().ips.len(), 0);
    }

    #[tokio::test]
    async fn purge_task_stops_on_shutdown() {
        let shutdown = CancellationToken::new();
        let limits = RateLimits::new(&RateLimitConfig::default());
        let task = tokio::spawn(limits.run_purge(shutdown.clone()));
        let throttle = tokio::spawn(LoginThrottle::default().run_purge(shutdown.clone()));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), async {
            task.await.unwrap();
            throttle.await.unwrap();
        })
        .await
        .expect("purge tasks stop");
    }
}
