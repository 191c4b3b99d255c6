//! A tenant's timeline: one page of keys, its rows loaded by source, each entry shown as it
//! happened.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{PromiseAt, promise_now, tenant_of};
use crate::app::AppError;
use crate::app::payments::Entry;
use crate::auth::caller::Caller;
use crate::domain::{
    AgingBuckets, ChargeStanding, InteractionKind, PaymentKind, PromiseChange, PromiseSnapshot,
    conakry_day,
};
use crate::store::charges::{self, ChargeRow};
use crate::store::interactions::{self, InteractionRow};
use crate::store::payments;
use crate::store::promises::{self, PromiseEventRow, PromiseRow};
use crate::store::tenants::{self as store, HistoryKey, HistoryKind, TenantRefRow};
use crate::store::{begin_read, one_page};

// ---------------------------------------------------------------------------------------------
// History

/// A page of a tenant's timeline, asked for.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub tenant_id: Uuid,
    /// Sources to include (all of them when the request names none).
    pub kinds: Vec<HistoryKind>,
    /// occurred_at in [start, end).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub oldest_first: bool,
    pub page_size: i64,
}

/// What happened, as the timeline shows it.
#[derive(Debug, Clone)]
pub enum Happened {
    /// A monthly charge, with today's figures.
    Charge {
        row: ChargeRow,
        standing: ChargeStanding,
        /// The day it became fully paid.
        paid_on: Option<NaiveDate>,
    },
    Payment(Entry),
    Reversal(Entry),
    Call(InteractionRow),
    Visit(InteractionRow),
    PromiseMade(PromiseAt),
    PromiseEvent {
        event: PromiseEventRow,
        promise: PromiseAt,
    },
}

/// One timeline entry: its position, who did it, and what happened.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub key: HistoryKey,
    /// (id, name) of the user who did it, when one did.
    pub actor: Option<(Uuid, String)>,
    pub happened: Happened,
}

/// One page of a tenant's timeline.
#[derive(Debug, Clone)]
pub struct History {
    pub tenant: TenantRefRow,
    pub entries: Vec<HistoryEntry>,
    /// More entries follow the last one.
    pub more: bool,
}

/// The timeline of a tenant the caller may see, after `after` in the requested order.
pub async fn history(
    pool: &PgPool,
    caller: &Caller,
    query: &HistoryQuery,
    after: Option<&HistoryKey>,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<History, AppError> {
    let mut tx = begin_read(pool).await?;
    let tenant = tenant_of(&mut tx, caller, query.tenant_id).await?;
    let mut keys = store::history_keys(
        &mut tx,
        &store::HistoryQuery {
            tenant_id: query.tenant_id,
            kinds: &query.kinds,
            start: query.start,
            end: query.end,
            after,
            oldest_first: query.oldest_first,
            limit: query.page_size + 1,
        },
    )
    .await?;
    let more = one_page(&mut keys, query.page_size);
    let entries = entries(&mut tx, keys, today, aging).await?;
    Ok(History {
        tenant,
        entries,
        more,
    })
}

/// The ids of one page's entries, by source.
#[derive(Default)]
struct PageIds {
    charges: Vec<i64>,
    ledger: Vec<Uuid>,
    interactions: Vec<Uuid>,
    promises: Vec<Uuid>,
    events: Vec<i64>,
}

impl PageIds {
    fn of(keys: &[HistoryKey]) -> Result<Self, AppError> {
        let bad = |key: &HistoryKey| AppError::internal(anyhow::anyhow!("bad history id {key:?}"));
        let uuid = |key: &HistoryKey| Uuid::parse_str(&key.id).map_err(|_| bad(key));
        let number = |key: &HistoryKey| key.id.parse::<i64>().map_err(|_| bad(key));
        let mut ids = Self::default();
        for key in keys {
            match key.kind {
                HistoryKind::Charge => ids.charges.push(number(key)?),
                HistoryKind::Payment | HistoryKind::Reversal => ids.ledger.push(uuid(key)?),
                HistoryKind::Call | HistoryKind::Visit => ids.interactions.push(uuid(key)?),
                HistoryKind::PromiseMade => ids.promises.push(uuid(key)?),
                HistoryKind::PromiseEvent => ids.events.push(number(key)?),
            }
        }
        Ok(ids)
    }
}

/// The rows of one page, loaded by source: a few queries per page, whatever its size.
struct PageRows {
    charges: HashMap<i64, ChargeRow>,
    ledger: HashMap<Uuid, Entry>,
    interactions: HashMap<Uuid, InteractionRow>,
    promises: HashMap<Uuid, PromiseRow>,
    /// Every event of the page's promises, per promise in the order they were written.
    events_of: HashMap<Uuid, Vec<PromiseEventRow>>,
}

impl PageRows {
    async fn load(
        conn: &mut PgConnection,
        ids: PageIds,
        today: NaiveDate,
    ) -> Result<Self, AppError> {
        let mut rows = Self {
            charges: HashMap::new(),
            ledger: HashMap::new(),
            interactions: HashMap::new(),
            promises: HashMap::new(),
            events_of: HashMap::new(),
        };
        if !ids.charges.is_empty() {
            for row in charges::by_ids(conn, &ids.charges).await? {
                rows.charges.insert(row.id, row);
            }
        }
        if !ids.ledger.is_empty() {
            let mut allocations: HashMap<Uuid, Vec<payments::AllocationRow>> = HashMap::new();
            for row in payments::allocations(&mut *conn, &ids.ledger).await? {
                allocations.entry(row.payment_id).or_default().push(row);
            }
            for row in payments::entries_by_ids(&mut *conn, &ids.ledger).await? {
                let own = allocations.remove(&row.id).unwrap_or_default();
                rows.ledger.insert(
                    row.id,
                    Entry {
                        row,
                        allocations: own,
                    },
                );
            }
        }
        if !ids.interactions.is_empty() {
            for row in interactions::by_ids(&mut *conn, &ids.interactions).await? {
                rows.interactions.insert(row.id, row);
            }
        }
        let mut promise_ids = ids.promises;
        if !ids.events.is_empty() {
            promise_ids.extend(promises::of_events(conn, &ids.events).await?);
        }
        promise_ids.sort();
        promise_ids.dedup();
        if !promise_ids.is_empty() {
            for row in promises::by_ids(conn, &promise_ids, today).await? {
                rows.promises.insert(row.id, row);
            }
            for event in promises::events_of(conn, &promise_ids).await? {
                rows.events_of
                    .entry(event.promise_id)
                    .or_default()
                    .push(event);
            }
        }
        Ok(rows)
    }

    /// The promise right after `upto` (`None`: right after it was made).
    fn promise_at(&self, promise_id: Uuid, upto: Option<i64>) -> Option<PromiseAt> {
        let row = self.promises.get(&promise_id)?;
        let changes: Vec<PromiseChange> = self
            .events_of
            .get(&promise_id)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|e| PromiseChange {
                id: e.id,
                kind: e.kind,
                occurred_at: e.occurred_at,
                previous_promised_date: e.previous_promised_date,
                reason: e.reason.clone(),
            })
            .collect();
        Some(PromiseAt {
            snapshot: PromiseSnapshot::after(&promise_now(row), &changes, upto),
            row: row.clone(),
        })
    }

    fn event(&self, event_id: i64) -> Option<&PromiseEventRow> {
        self.events_of
            .values()
            .flatten()
            .find(|event| event.id == event_id)
    }
}

/// The entries of `keys`, in their order (a row gone meanwhile is left out).
async fn entries(
    conn: &mut PgConnection,
    keys: Vec<HistoryKey>,
    today: NaiveDate,
    aging: &AgingBuckets,
) -> Result<Vec<HistoryEntry>, AppError> {
    let mut rows = PageRows::load(conn, PageIds::of(&keys)?, today).await?;
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        let uuid = Uuid::parse_str(&key.id).ok();
        let number = key.id.parse::<i64>().ok();
        let found = match key.kind {
            HistoryKind::Charge => number
                .and_then(|id| rows.charges.remove(&id))
                .map(|row| (None, charge_entry(row, today, aging))),
            HistoryKind::Payment | HistoryKind::Reversal => {
                uuid.and_then(|id| rows.ledger.remove(&id)).map(|entry| {
                    let actor = Some((entry.row.agent_id, entry.row.agent_name.clone()));
                    match entry.row.kind {
                        PaymentKind::Reversal => (actor, Happened::Reversal(entry)),
                        PaymentKind::Payment => (actor, Happened::Payment(entry)),
                    }
                })
            }
            HistoryKind::Call | HistoryKind::Visit => uuid
                .and_then(|id| rows.interactions.remove(&id))
                .map(|row| {
                    let actor = Some((row.agent_id, row.agent_name.clone()));
                    match row.kind {
                        InteractionKind::Visit => (actor, Happened::Visit(row)),
                        InteractionKind::Call => (actor, Happened::Call(row)),
                    }
                }),
            HistoryKind::PromiseMade => {
                uuid.and_then(|id| rows.promise_at(id, None))
                    .map(|promise| {
                        let actor = Some((promise.row.agent_id, promise.row.agent_name.clone()));
                        (actor, Happened::PromiseMade(promise))
                    })
            }
            HistoryKind::PromiseEvent => {
                number
                    .and_then(|id| rows.event(id).cloned())
                    .and_then(|event| {
                        let promise = rows.promise_at(event.promise_id, Some(event.id))?;
                        let actor = event
                            .actor_id
                            .map(|id| (id, event.actor_name.clone().unwrap_or_default()));
                        Some((actor, Happened::PromiseEvent { event, promise }))
                    })
            }
        };
        if let Some((actor, happened)) = found {
            entries.push(HistoryEntry {
                key,
                actor,
                happened,
            });
        }
    }
    Ok(entries)
}

/// A charge in the timeline, with today's figures; a fully paid one shows the day it became
/// so.
fn charge_entry(row: ChargeRow, today: NaiveDate, aging: &AgingBuckets) -> Happened {
    let standing = ChargeStanding::on(row.due_gnf, row.paid_gnf, row.due_date, today, aging);
    let paid_on = if standing.outstanding == 0 {
        row.paid_in_full_at.map(conakry_day)
    } else {
        None
    };
    Happened::Charge {
        row,
        standing,
        paid_on,
    }
}
