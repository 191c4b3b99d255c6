//! The AuthService wrapped so that a call which may change a standing answers only once the
//! change reached every replica's cache ([`StandingCache::sync`]).

use std::convert::Infallible;
use std::future::Future;

use http::{Request, Response};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::LayerExt;
use tower::{Service, ServiceExt};

use super::StandingCache;

/// Whether an AuthService method may change a standing: every one but the reads.
fn may_change_standing(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or_default();
    !(method == "WhoAmI" || method.starts_with("Get") || method.starts_with("List"))
}

/// The AuthService, wrapped so that a call which may change a standing answers only after
/// [`StandingCache::sync`], whatever its outcome (a refused refresh may have revoked a
/// session).
pub fn sync_after_writes<S>(
    standing: StandingCache,
    service: S,
) -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
> + NamedService
+ Clone
+ Send
+ Sync
+ 'static
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let layer = tower::layer::layer_fn(move |inner: S| {
        let standing = standing.clone();
        tower::service_fn(move |request: Request<Body>| {
            let inner = inner.clone();
            let standing = standing.clone();
            async move {
                let writes = may_change_standing(request.uri().path());
                let response = inner.oneshot(request).await?;
                if writes {
                    standing.sync().await;
                }
                Ok(response)
            }
        })
    });
    layer.named_layer(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_the_auth_service_change_no_standing() {
        for read in [
            "WhoAmI",
            "GetUser",
            "ListUsers",
            "ListRoles",
            "ListAuditEntries",
        ] {
            assert!(!may_change_standing(&format!(
                "/akig.v1.AuthService/{read}"
            )));
        }
        for write in [
            "Login",
            "Refresh",
            "Logout",
            "ChangePassword",
            "CreateUser",
            "UpdateUser",
            "ResetPassword",
            "UpdateRolePermissions",
        ] {
            assert!(may_change_standing(&format!(
                "/akig.v1.AuthService/{write}"
            )));
        }
    }
}
