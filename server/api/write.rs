//! The preamble of every mutating RPC, written once: who calls, the client's `request_id`, when
//! the call started, and the idempotency key (caller, method, request_id) under which
//! `idempotency::Idempotency::run_audited` runs the work once, with the audit event it answers.
//!
//! ```ignore
//! let write = Write::begin(&request, rpc::REVERSE_PAYMENT, &message.request_id)?;
//! let input = parse(message, write.act().now)?;
//! let response = state
//!     .idempotency
//!     .run_audited(write.key(), message, async |conn| {
//!         let done = use_case(conn, write.act(), &input).await?;
//!         Ok::<_, ApiError>((to_proto(&done), done.audit))
//!     })
//!     .await?;
//! ```
//!
//! Decisions:
//! - The method of the key is the RPC's full path (`/akig.v1.CollectionsService/RecordCall`),
//!   one constant per mutating RPC next to its service (`api::collections::rpc`), checked by a
//!   test against the generated service name and the descriptor set.
//! - "Now" is read once, when the call starts: the use case dates what it writes with it.

use chrono::Utc;
use tonic::Request;
use uuid::Uuid;

use crate::api::convert;
use crate::api::error::ApiError;
use crate::app::Act;
use crate::auth::caller::Caller;
use crate::idempotency::IdempotencyKey;

/// A mutating call, up to its idempotency key.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    act: Act<'a>,
    key: IdempotencyKey,
}

impl<'a> Write<'a> {
    /// The caller of `request` and its `request_id` field (INVALID_ARGUMENT on `request_id`),
    /// for the RPC `method` (its full path).
    pub fn begin<T>(
        request: &'a Request<T>,
        method: &'static str,
        request_id: &str,
    ) -> Result<Self, ApiError> {
        let caller = Caller::of(request)?;
        Ok(Self::new(caller, method, convert::request_id(request_id)?))
    }

    /// As [`Write::begin`], for a request_id parsed with the other fields.
    pub fn new(caller: &'a Caller, method: &'static str, request_id: Uuid) -> Self {
        Self {
            act: Act {
                caller,
                request_id,
                now: Utc::now(),
            },
            key: IdempotencyKey::new(caller.user_id, method, request_id),
        }
    }

    /// Who acts, with which request_id, and when.
    pub fn act(&self) -> &Act<'a> {
        &self.act
    }

    /// The idempotency key: `state.idempotency.run_audited(write.key(), message, work)` runs
    /// `work` once for it (a replay answers the stored response, the same request_id with
    /// another request FAILED_PRECONDITION, a replay while the first call runs ABORTED).
    pub fn key(&self) -> IdempotencyKey {
        self.key
    }
}
