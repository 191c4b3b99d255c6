//! Long-lived streams stay authorised only while their caller's standing does: the
//! authentication layer checks a call once, when it opens; [`guarded`] checks a stream's
//! caller again for as long as it is open.
//!
//! Decisions:
//! - The caller is checked again whenever this replica learns of a standing change
//!   (`StandingCache::changes`: the listener, after the change can be read) and every
//!   [`RECHECK`] in any case (no Redis, listener reconnecting): a logout, a password change or a
//!   disabled account ends the replica's open streams of that session within moments, and
//!   within [`RECHECK`] at worst.
//! - A revoked token ends the stream with UNAUTHENTICATED (`TOKEN_INVALID`, log in again), an
//!   expired one with UNAUTHENTICATED (`TOKEN_EXPIRED`, refresh and reopen) at its expiry
//!   (without the 30 s leeway the layer grants a call for clock skew: a stream opened within
//!   it ends at once, after its first answer); a role or sites that changed with ABORTED
//!   (`SCOPE_CHANGED`): the stream was opened for what the caller could see then, and is
//!   opened again for what they see now. A role change through the API also moves the user's
//!   token version, which ends the stream as revoked.
//! - A database out of reach while checking does not end a stream: the next check decides.
//! - The check reads the standing as a call does (held in process, then Redis, then
//!   PostgreSQL), so a check costs nothing on the database while standings are cached.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tonic::Status;
use tonic::codegen::BoxStream;

use crate::api::error::ApiError;
use crate::auth::caller::Caller;
use crate::auth::standing::StandingCache;
use crate::proto::v1 as pb;
use crate::store::sessions::Standing;

/// Longest time between two checks of an open stream's caller.
pub const RECHECK: Duration = Duration::from_secs(5);

/// `inner`, ended with an error status as soon as `caller` no longer holds what the stream
/// was opened with (see the module's decisions); `inner` is dropped then, which ends the
/// tasks that feed it.
pub fn guarded<T: Send + 'static>(
    standing: &StandingCache,
    caller: &Caller,
    inner: BoxStream<T>,
) -> BoxStream<T> {
    let lapse: futures::future::BoxFuture<'static, Status> =
        Box::pin(until_lapsed(standing.clone(), caller.clone()));
    Box::pin(futures::stream::unfold(
        Some((inner, lapse)),
        |open| async move {
            let (mut inner, mut lapse) = open?;
            tokio::select! {
                biased;
                status = &mut lapse => Some((Err(status), None)),
                item = inner.next() => item.map(|item| (item, Some((inner, lapse)))),
            }
        },
    ))
}

/// Why a stream's caller no longer holds what the stream was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lapse {
    /// Logged out, disabled, password changed, or the user is gone.
    Revoked,
    /// Role or sites changed.
    ScopeChanged,
}

fn lapse(caller: &Caller, standing: Option<&Standing>) -> Option<Lapse> {
    let Some(standing) = standing else {
        return Some(Lapse::Revoked);
    };
    if !standing.admits(caller.token_version) {
        Some(Lapse::Revoked)
    } else if standing.user.role != caller.role || standing.site_ids[..] != caller.site_ids[..] {
        Some(Lapse::ScopeChanged)
    } else {
        None
    }
}

async fn until_lapsed(standing: StandingCache, caller: Caller) -> Status {
    let mut changes = standing.changes();
    let expires_at =
        DateTime::<Utc>::from_timestamp(caller.token_expires_at, 0).unwrap_or_else(Utc::now);
    let expiry =
        tokio::time::Instant::now() + (expires_at - Utc::now()).to_std().unwrap_or_default();
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(expiry) => {
                return ApiError::unauthenticated(pb::ErrorReason::TokenExpired).into();
            }
            Ok(()) = changes.changed() => {}
            _ = recheck.tick() => {}
        }
        match standing.get(caller.user_id, caller.session_id).await {
            Ok(now) => match lapse(&caller, now.as_ref()) {
                None => {}
                Some(Lapse::Revoked) => {
                    tracing::info!(user_id = %caller.user_id, "stream ended: access token no longer valid");
                    return ApiError::unauthenticated(pb::ErrorReason::TokenInvalid).into();
                }
                Some(Lapse::ScopeChanged) => {
                    tracing::info!(user_id = %caller.user_id, "stream ended: role or sites changed");
                    return ApiError::aborted(
                        pb::ErrorReason::ScopeChanged,
                        "your role or sites changed: open the stream again",
                    )
                    .into();
                }
            },
            Err(error) => {
                tracing::debug!(error = %error, "stream's caller not checked; checked again later");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use uuid::Uuid;

    use super::*;
    use crate::auth::rbac::Role;
    use crate::store::users::UserRow;

    fn caller() -> Caller {
        Caller {
            user_id: Uuid::from_u128(1),
            role: Role::SiteManager,
            session_id: Uuid::from_u128(2),
            permissions: Arc::new(HashSet::new()),
            site_ids: vec![Uuid::from_u128(10)].into(),
            client_ip: None,
            token_expires_at: 0,
            token_version: 3,
        }
    }

    fn standing() -> Standing {
        Standing {
            token_version: 3,
            user: UserRow {
                id: Uuid::from_u128(1),
                username: "manager".into(),
                full_name: "Manager".into(),
                phone: None,
                role: Role::SiteManager,
                supervisor_id: None,
                disabled: false,
                last_login_at: None,
                created_at: Utc::now(),
                must_change_password: false,
                site_ids: vec![Uuid::from_u128(10)],
            },
            site_ids: vec![Uuid::from_u128(10)],
            session_active: true,
        }
    }

    #[test]
    fn a_stream_lapses_when_its_token_would_be_refused_or_its_scope_moved() {
        let caller = caller();
        assert_eq!(lapse(&caller, Some(&standing())), None);
        assert_eq!(lapse(&caller, None), Some(Lapse::Revoked));
        let mut s = standing();
        s.user.disabled = true;
        assert_eq!(lapse(&caller, Some(&s)), Some(Lapse::Revoked));
        let mut s = standing();
        s.session_active = false;
        assert_eq!(lapse(&caller, Some(&s)), Some(Lapse::Revoked));
        let mut s = standing();
        s.token_version = 4;
        assert_eq!(lapse(&caller, Some(&s)), Some(Lapse::Revoked));
        let mut s = standing();
        s.user.role = Role::Director;
        assert_eq!(lapse(&caller, Some(&s)), Some(Lapse::ScopeChanged));
        let mut s = standing();
        s.site_ids.push(Uuid::from_u128(11));
        assert_eq!(lapse(&caller, Some(&s)), Some(Lapse::ScopeChanged));
    }
}
