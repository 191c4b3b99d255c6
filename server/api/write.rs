//! The preamble of every mutating RPC, written once: who calls, the client's `request_id`, the
//! idempotency key (caller, method, request_id), and the run of the work exactly once with the
//! audit event it answers (`idempotency::Idempotency::run_audited`).
//!
//! ```ignore
//! let write = Write::begin(&request, rpc::REVERSE_PAYMENT, &message.request_id)?;
//! let input = parse(message, write.act().now)?;
//! let response = write
//!     .run(&state.idempotency, message, async |conn| {
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
use prost::Message;
use sqlx::PgConnection;
use tonic::Request;
use uuid::Uuid;

use crate::api::convert;
use crate::api::error::ApiError;
use crate::app::Act;
use crate::auth::caller::Caller;
use crate::idempotency::{Idempotency, IdempotencyError, IdempotencyKey};
use crate::store::audit::AuditEvent;

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

    /// Runs `work` once for this key in its transaction: a replay answers the stored response,
    /// the same request_id with another request FAILED_PRECONDITION, a replay while the first
    /// call runs ABORTED. `work` answers the response and the audit event to store with it.
    pub async fn run<Req, Resp, E, F>(
        &self,
        idempotency: &Idempotency,
        request: &Req,
        work: F,
    ) -> Result<Resp, E>
    where
        Req: Message,
        Resp: Message + Default,
        E: From<IdempotencyError>,
        F: AsyncFnOnce(&mut PgConnection) -> Result<(Resp, Option<AuditEvent>), E>,
    {
        idempotency.run_audited(self.key, request, work).await
    }
}
