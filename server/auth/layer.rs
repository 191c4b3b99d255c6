//! Authentication and authorisation of every call, as a tower layer: the method's permission
//! from the one table in `rbac` (deny by default), the bearer token verified, the user's and
//! the address's call limits spent and the user's standing checked in one Redis round trip
//! (through the shared cache, `crate::auth::standing`, which a revocation reaches before the
//! next call; the limits through `crate::limits::shared_calls`), the role's
//! permissions from the cache (`crate::auth::roles`). On success the [`Caller`] goes into the
//! request extensions for the handlers, with the [`CallerProfile`] read beside the standing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::Request;
use sqlx::PgPool;
use tonic::Status;
use tower::BoxError;
use tower::filter::{AsyncFilterLayer, AsyncPredicate};
use uuid::Uuid;

use crate::api::error::ApiError;
use crate::auth::caller::Caller;
use crate::auth::rbac::{self, Access, Permission};
use crate::auth::roles::RolePermissions;
use crate::auth::standing::StandingCache;
use crate::auth::tokens::{TokenKeys, VerifiedTokens};
use crate::cache::{Cache, CallPath, VersionsAhead};
use crate::client_ip::ClientIp;
use crate::layers::MethodCatalog;
use crate::limits::shared_calls::CallSpend;
use crate::limits::{RateLimitChecked, RateLimits};
use crate::proto::v1 as pb;
use crate::store::audit::{self, AuditEvent, Outcome};
use crate::store::users::UserRow;

/// The caller's user row (profile, role, own sites), read with the standing the call was
/// checked against (ADR 0009: from the shared cache, revoked and refreshed with it): what
/// WhoAmI answers without reading PostgreSQL. In the request extensions beside the [`Caller`].
#[derive(Debug, Clone)]
pub struct CallerProfile(pub Arc<UserRow>);

/// The authentication layer: `tower::filter::AsyncFilter` with this predicate. A refused call
/// ends here with its status (`Err(Status)`, answered by the server's recovery layer); an
/// admitted one goes on with its [`Caller`] in the extensions.
#[derive(Clone)]
pub struct Authenticate {
    shared: Arc<Shared>,
}

struct Shared {
    keys: VerifiedTokens,
    pool: PgPool,
    standing: StandingCache,
    roles: RolePermissions,
    catalog: MethodCatalog,
    limits: RateLimits,
    cache: Cache,
}

impl Authenticate {
    pub fn new(
        keys: TokenKeys,
        pool: PgPool,
        standing: StandingCache,
        roles: RolePermissions,
        catalog: MethodCatalog,
        limits: RateLimits,
        cache: Cache,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                keys: VerifiedTokens::new(keys),
                pool,
                standing,
                roles,
                catalog,
                limits,
                cache,
            }),
        }
    }

    pub fn layer(self) -> AsyncFilterLayer<Self> {
        AsyncFilterLayer::new(self)
    }
}

impl<B: Send + 'static> AsyncPredicate<Request<B>> for Authenticate {
    type Future = Pin<Box<dyn Future<Output = Result<Request<B>, BoxError>> + Send>>;
    type Request = Request<B>;

    fn check(&mut self, request: Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            shared
                .admit(request)
                .await
                .map_err(|error| Box::new(Status::from(error)) as BoxError)
        })
    }
}

impl Shared {
    /// The request, with its caller when the method needs one, or why it is refused.
    async fn admit<B>(&self, mut request: Request<B>) -> Result<Request<B>, ApiError> {
        let client_ip = request.extensions().get::<ClientIp>().map(|ip| ip.0);
        let path = request.uri().path();
        // Paths that name no RPC are left to the router, which answers UNIMPLEMENTED.
        if self.catalog.get(path).is_none() {
            return Ok(request);
        }
        let permission = match rbac::permission_for(path) {
            Access::Public => return Ok(request),
            Access::Authenticated(permission) => permission,
            Access::Unmapped => {
                tracing::error!(path, "method has no permission mapping: refused");
                return Err(ApiError::PermissionDenied {
                    reason: Some(pb::ErrorReason::PermissionMissing),
                    message: "no permission opens this method".to_owned(),
                });
            }
        };
        let (caller, profile, ahead) = self
            .authenticate(bearer_token(&request), path, permission, client_ip)
            .await?;
        request.extensions_mut().insert(RateLimitChecked);
        let call_path = CallPath(Arc::from(request.uri().path()));
        request.extensions_mut().insert(call_path);
        if let Some(ahead) = ahead {
            request.extensions_mut().insert(ahead);
        }
        request.extensions_mut().insert(caller);
        request.extensions_mut().insert(profile);
        Ok(request)
    }

    async fn authenticate(
        &self,
        token: Option<&str>,
        path: &str,
        permission: Permission,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<(Caller, CallerProfile, Option<VersionsAhead>), ApiError> {
        let token = token.ok_or(ApiError::unauthenticated(pb::ErrorReason::TokenMissing))?;
        let claims = self.keys.verify(token).map_err(|reason| {
            // The reason is logged; the token never is. The client learns only whether to
            // refresh (TOKEN_EXPIRED) or to log in again (TOKEN_INVALID).
            tracing::info!(%reason, "access token refused");
            ApiError::from(reason)
        })?;
        let invalid = || ApiError::unauthenticated(pb::ErrorReason::TokenInvalid);
        // The call's spend of the shared limits and the read cache's versions ride with the
        // standing: one Redis round trip.
        let spend = self.limits.shared_spend(Some(claims.sub), client_ip);
        let ahead_keys = self.cache.ahead_keys(claims.sub, path);
        let peeked = self
            .standing
            .peek(
                claims.sub,
                claims.sid,
                &ahead_keys.keys,
                spend
                    .as_ref()
                    .filter(|spend| spend.is_remote())
                    .map(CallSpend::invocation),
            )
            .await;
        // Before any database work: a client over its limit costs no query.
        self.limits
            .conclude(Some(claims.sub), client_ip, spend, peeked.ride)
            .await?;
        let ahead_values = peeked.values;
        let standing = self.standing.resolve(peeked.pending).await?;
        let Some(standing) = standing else {
            tracing::info!(user_id = %claims.sub, "access token of an unknown user");
            return Err(invalid());
        };
        if !standing.admits(claims.ver) {
            tracing::info!(
                user_id = %claims.sub,
                disabled = standing.user.disabled,
                session_active = standing.session_active,
                "access token no longer valid"
            );
            return Err(invalid());
        }
        let role = standing.user.role;
        let permissions = self.roles.get(role).await?;
        if !permissions.contains(&permission) {
            let mut event =
                AuditEvent::new(permission.as_str(), Outcome::Denied).detail("method", path);
            event.actor_id = Some(claims.sub);
            event.actor_role = Some(role.as_str().to_owned());
            event.client_ip = client_ip;
            if let Err(e) = audit::append(&self.pool, &event).await {
                tracing::warn!(error = %e, "audit of a denied call failed");
            }
            return Err(ApiError::permission_missing(permission));
        }
        let caller = Caller {
            user_id: claims.sub,
            role,
            session_id: claims.sid,
            permissions,
            site_ids: standing.site_ids.into(),
            client_ip,
            token_expires_at: claims.exp,
            token_version: claims.ver,
        };
        let ahead = ahead_keys.read(&ahead_values);
        Ok((caller, CallerProfile(Arc::new(standing.user)), ahead))
    }
}

/// The token of an `authorization: Bearer <token>` header.
fn bearer_token<B>(request: &Request<B>) -> Option<&str> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A user id that is not a UUID cannot be ours.
pub fn parse_user_id(field: &str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value).map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_is_extracted_strictly() {
        let with = |value: &str| {
            Request::builder()
                .header("authorization", value)
                .body(())
                .unwrap()
        };
        assert_eq!(bearer_token(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&with("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&with("Basic abc")), None);
        assert_eq!(bearer_token(&with("Bearer ")), None);
        assert_eq!(bearer_token(&with("Bearerabc")), None);
        assert_eq!(bearer_token(&Request::new(())), None);
    }
}
