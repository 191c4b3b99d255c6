//! `--rpc reads`: the read benchmark's requests for h2load, and each read's single-caller
//! latency.

use std::time::{Duration, Instant};

use akig::proto::v1 as pb;
use akig::proto::v1::auth_service_client::AuthServiceClient;
use akig::proto::v1::collections_service_client::CollectionsServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

use super::{Args, authed, percentile_ms};

/// A message in the gRPC wire framing: no compression, length (big-endian u32), message.
fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}

/// `--rpc reads`: writes the h2load requests and prints each read's single-caller latency.
pub(super) async fn reads(args: &Args) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(&args.database_url).await?;
    // A tenant with the median number of charges, the commonest surname.
    let tenant: Uuid = sqlx::query_scalar(
        "SELECT tenant_id FROM (
           SELECT tenant_id, count(*) AS n, row_number() OVER (ORDER BY count(*), tenant_id) AS r,
                  count(*) OVER () AS total
           FROM charges GROUP BY tenant_id) c
         WHERE r = (total + 1) / 2",
    )
    .fetch_one(&pool)
    .await?;
    let surname: String = sqlx::query_scalar(
        "SELECT split_part(full_name, ' ', -1) FROM tenants
         GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;

    let channel = Channel::from_shared(args.target.clone())?.connect().await?;
    let login = AuthServiceClient::new(channel.clone())
        .login(pb::LoginRequest {
            identifier: Some(pb::login_request::Identifier::Username(
                "directeur".to_owned(),
            )),
            password: args.password.clone(),
            device: None,
        })
        .await
        .map_err(|s| anyhow::anyhow!("login of directeur: {s}"))?
        .into_inner();
    let token = login.tokens.map(|t| t.access_token).unwrap_or_default();
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("token"), &token)?;

    let tenant_id = tenant.to_string();
    let get_tenant = pb::GetTenantRequest {
        tenant_id: tenant_id.clone(),
    };
    let arrears = pb::GetTenantArrearsRequest {
        tenant_id: tenant_id.clone(),
        ..Default::default()
    };
    let history = pb::GetTenantHistoryRequest {
        tenant_id: tenant_id.clone(),
        page_size: 50,
        ..Default::default()
    };
    let search = pb::SearchTenantsRequest {
        query: surname.clone(),
        ..Default::default()
    };
    let daily = pb::GetDailyStatsRequest::default();
    let who = pb::WhoAmIRequest {};
    let health = tonic_health::pb::HealthCheckRequest::default();
    let requests: [(&str, &str, Vec<u8>); 7] = [
        (
            "get-tenant",
            "/akig.v1.CollectionsService/GetTenant",
            grpc_frame(&get_tenant),
        ),
        (
            "arrears",
            "/akig.v1.CollectionsService/GetTenantArrears",
            grpc_frame(&arrears),
        ),
        (
            "timeline",
            "/akig.v1.CollectionsService/GetTenantHistory",
            grpc_frame(&history),
        ),
        (
            "search",
            "/akig.v1.CollectionsService/SearchTenants",
            grpc_frame(&search),
        ),
        (
            "daily-stats",
            "/akig.v1.CollectionsService/GetDailyStats",
            grpc_frame(&daily),
        ),
        ("who-am-i", "/akig.v1.AuthService/WhoAmI", grpc_frame(&who)),
        (
            "health",
            "/grpc.health.v1.Health/Check",
            grpc_frame(&health),
        ),
    ];
    for (name, path, body) in &requests {
        std::fs::write(args.out.join(format!("{name}.bin")), body)?;
        std::fs::write(args.out.join(format!("{name}.path")), path)?;
    }
    println!("tenant={tenant} search={surname:?}");

    let mut collections = CollectionsServiceClient::new(channel.clone());
    let mut auth = AuthServiceClient::new(channel.clone());
    let mut health_client = tonic_health::pb::health_client::HealthClient::new(channel);
    for (name, _, _) in &requests {
        let mut latencies = Vec::new();
        let mut errors = 0_u64;
        let end = Instant::now() + Duration::from_secs(args.seconds);
        let mut n = 0_u64;
        while Instant::now() < end {
            let sent = Instant::now();
            let outcome = match *name {
                "get-tenant" => collections
                    .get_tenant(authed(get_tenant.clone(), &token))
                    .await
                    .map(drop),
                "arrears" => collections
                    .get_tenant_arrears(authed(arrears.clone(), &token))
                    .await
                    .map(drop),
                "timeline" => collections
                    .get_tenant_history(authed(history.clone(), &token))
                    .await
                    .map(drop),
                "search" => collections
                    .search_tenants(authed(search.clone(), &token))
                    .await
                    .map(drop),
                "daily-stats" => collections
                    .get_daily_stats(authed(daily.clone(), &token))
                    .await
                    .map(drop),
                "who-am-i" => auth.who_am_i(authed(who, &token)).await.map(drop),
                _ => health_client.check(health.clone()).await.map(drop),
            };
            n += 1;
            // The first calls warm the connection and the statement cache.
            if n <= 20 {
                continue;
            }
            match outcome {
                Ok(()) => latencies.push(sent.elapsed()),
                Err(_) => errors += 1,
            }
        }
        latencies.sort();
        println!(
            "single-caller read={name} ok={} p50_ms={:.2} p99_ms={:.2} errors={errors}",
            latencies.len(),
            percentile_ms(&latencies, 0.50),
            percentile_ms(&latencies, 0.99),
        );
    }
    Ok(())
}
