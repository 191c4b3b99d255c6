//! The replay of a tenant's ledger, run by every write that changes it (a payment, a late
//! offline payment, a reversal) under the tenant lock, in the write's transaction
//! (`domain::ledger`, ADR 0010).
//!
//! Decisions:
//! - The replay reads the tenant's charges, payments and the rows of its valid payments (one
//!   statement), derives the allocation from scratch (or, for a payment that sorts after every
//!   other, appends it: `domain::ledger::append`, given the open charges as the stored
//!   ledger) and writes only the difference (rows
//!   added, changed or removed; charges whose paid figures change; the credit when it
//!   changes), in one statement that holds only the parts with something to write.
//! - Audit: when the replay changes the rows of a payment other than the one being recorded
//!   (a re-allocation: a back-dated payment, a reversal), it appends
//!   `collections.allocation.replayed` (target: the tenant) with the entry that caused it, the
//!   rows inserted, updated and deleted, the charges changed and the credit before and after.

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Act, AppError};
use crate::domain::ledger::{self, Line, Replayed};
use crate::store::audit;
use crate::store::payments::{self as store, ReplayWrite, RowWrite, StoredLedger};
use crate::store::tenants::LockedTenant;

const REPLAY_ACTION: &str = "collections.allocation.replayed";

/// An instant as the database stores it (microseconds), so the replay orders what it will
/// read back.
pub(super) fn stored_instant(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// What caused a replay, and which of its rows are new history rather than a re-allocation.
pub(super) struct Cause {
    /// The entry written (a payment or a reversal entry).
    pub entry_id: Uuid,
    /// Rows written as they are (a reversal entry's rows).
    pub history: Vec<RowWrite>,
}

/// Writes the difference between `stored` (the rows of the payments still valid) and
/// `replayed`, and audits a re-allocation (see the module's decisions).
pub(super) async fn write(
    conn: &mut PgConnection,
    act: &Act<'_>,
    tenant: &LockedTenant,
    ledger: &StoredLedger,
    stored: &[Line],
    replayed: &Replayed,
    cause: Cause,
) -> Result<(), AppError> {
    let changes = ledger::line_changes(stored, &replayed.lines);
    let charges = replayed.changed_charges(&ledger.charge_figures);
    let reallocated = changes.update.len()
        + changes.delete.len()
        + changes
            .insert
            .iter()
            .filter(|l| l.payment_id != cause.entry_id)
            .count();
    let write = ReplayWrite {
        insert: cause
            .history
            .into_iter()
            .chain(changes.insert.iter().map(RowWrite::from))
            .collect(),
        update: changes.update.iter().map(RowWrite::from).collect(),
        delete: changes.delete.clone(),
        charges,
        credit_gnf: (replayed.credit.francs() != tenant.credit_gnf)
            .then_some(replayed.credit.francs()),
    };
    store::write_replay(conn, tenant.id, &write).await?;
    if reallocated > 0 {
        let event = act
            .audit(REPLAY_ACTION)
            .target("tenant", tenant.id)
            .detail("entry_id", cause.entry_id.to_string())
            .detail("rows_inserted", changes.insert.len())
            .detail("rows_updated", changes.update.len())
            .detail("rows_deleted", changes.delete.len())
            .detail("charges_changed", write.charges.len())
            .detail("credit_before_gnf", tenant.credit_gnf)
            .detail("credit_after_gnf", replayed.credit.francs());
        audit::append(&mut *conn, &event)
            .await
            .map_err(crate::store::StoreError::from)?;
    }
    Ok(())
}
