//! Clients that give up mid-call: no pooled connection is left inside a transaction, and the
//! calls that follow are answered as usual (no INTERNAL).
//!
//! The server reaches PostgreSQL through a relay that delays every packet, so that each
//! statement (BEGIN and COMMIT included) stays in flight long enough for clients giving up at
//! spread-out instants to drop calls at every point of their database work.

use std::net::SocketAddr;
use std::time::Duration;

use akig::proto::v1::collections_service_client::CollectionsServiceClient;
use akig::proto::v1::{
    GetTenantArrearsRequest, GetTenantRequest, PaymentMethod, RecordPaymentRequest,
    SearchTenantsRequest,
};
use chrono::Utc;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::support::{
    KALOUM, RedisMode, TestDb, authed, count, create_charges, create_site, create_tenant,
    create_user, spawn_app_with, test_config, today, ts,
};

const MONTH: i64 = 1_000_000;

/// How long the relay holds each chunk, each way.
const HOP_DELAY: Duration = Duration::from_millis(5);

/// A TCP relay to `upstream` that forwards each chunk `HOP_DELAY` late; answers its address.
async fn slow_relay(upstream: SocketAddr) -> SocketAddr {
    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
    ) {
        let mut buf = vec![0_u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tokio::time::sleep(HOP_DELAY).await;
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay binds");
    let addr = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pipe(client_read, server_write));
            tokio::spawn(pipe(server_read, client_write));
        }
    });
    addr
}

/// One call of a mix of reads (each in a snapshot transaction) and payments (a write
/// transaction under the tenant lock), chosen by `n`.
async fn call(channel: &Channel, token: &str, tenant: Uuid, n: usize) -> Result<(), tonic::Status> {
    let mut client = CollectionsServiceClient::new(channel.clone());
    let tenant_id = tenant.to_string();
    match n % 4 {
        0 => client
            .get_tenant_arrears(authed(
                GetTenantArrearsRequest {
                    tenant_id,
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        1 => client
            .search_tenants(authed(
                SearchTenantsRequest {
                    query: "Diallo".to_owned(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        2 => client
            .get_tenant(authed(GetTenantRequest { tenant_id }, token))
            .await
            .map(drop),
        _ => client
            .record_payment(authed(
                RecordPaymentRequest {
                    request_id: Uuid::new_v4().to_string(),
                    tenant_id,
                    amount_gnf: 1_000,
                    method: PaymentMethod::Cash as i32,
                    occurred_at: Some(ts(Utc::now() - chrono::Duration::minutes(5))),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
    }
}

/// Connections of the test database (other than the asking one) in `state`.
async fn backends(pool: &PgPool, state: &str) -> i64 {
    count(
        pool,
        &format!(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND state LIKE '{state}%'"
        ),
    )
    .await
}

#[tokio::test]
async fn clients_that_disconnect_mid_call_leave_no_connection_in_a_transaction() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let site = create_site(pool, "KAL").await;
    create_user(pool, "agent.kal", "agent", &[site], None).await;
    let mut tenants = Vec::new();
    for i in 0..8 {
        let tenant = create_tenant(pool, site, &format!("Diallo {i}"), MONTH, Some(KALOUM)).await;
        create_charges(pool, tenant, today() - chrono::Days::new(400), 12, MONTH).await;
        tenants.push(tenant);
    }
    let options = db.connect_options();
    let upstream: SocketAddr = format!("{}:{}", options.get_host(), options.get_port())
        .parse()
        .unwrap_or_else(|_| "127.0.0.1:5432".parse().expect("literal"));
    let relay = slow_relay(upstream).await;
    let config = test_config(
        options.host("127.0.0.1").port(relay.port()),
        RedisMode::Real,
    );
    let server_pool = akig::db::lazy_pool(&config.database);
    let app = spawn_app_with(config, server_pool).await;
    let token = app.token("agent.kal").await;
    let channel = app.channel().await;

    // 400 calls, 8 at a time, each dropped by its client after 0 to 60 ms: at every point of
    // the handlers' database work, BEGIN and COMMIT included.
    let mut calls = JoinSet::new();
    for n in 0..400 {
        if calls.len() >= 8 {
            calls.join_next().await;
        }
        let (channel, token, tenant) = (channel.clone(), token.clone(), tenants[n % tenants.len()]);
        calls.spawn(async move {
            let patience = Duration::from_micros((n as u64 * 7_919) % 60_000);
            let _ = tokio::time::timeout(patience, call(&channel, &token, tenant, n)).await;
        });
    }
    while calls.join_next().await.is_some() {}

    // Then every pooled connection at once (the storm opened them all) gets a read whose client
    // leaves while its BEGIN is on the wire: sent once the caller's standing is read (a round
    // trip, two relay hops: 10 ms), answered two hops later.
    let mut burst = JoinSet::new();
    for &tenant in tenants.iter().take(5) {
        let (channel, token) = (channel.clone(), token.clone());
        burst.spawn(async move {
            let patience = 3 * HOP_DELAY + Duration::from_millis(2);
            let _ = tokio::time::timeout(patience, call(&channel, &token, tenant, 0)).await;
        });
    }
    while burst.join_next().await.is_some() {}

    // The abandoned work ends on its own (each of its statements waits on the relay, its
    // connection "idle in transaction" meanwhile); then no connection is left in a transaction.
    let mut busy = i64::MAX;
    for _ in 0..100 {
        busy = backends(pool, "active").await + backends(pool, "idle in transaction").await;
        if busy == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        busy, 0,
        "connections still running or inside a transaction 5 s after the last call"
    );

    // Every kind of call is answered as usual on every pooled connection.
    for n in 0..40 {
        let tenant = tenants[n % tenants.len()];
        if let Err(status) = call(&channel, &token, tenant, n).await {
            panic!("call {n} after the disconnections: {status:?}");
        }
    }
    assert_eq!(backends(pool, "idle in transaction").await, 0);
}
