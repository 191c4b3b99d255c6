//! Position ingest: checked positions go through a bounded buffer to database writers that
//! store them in batches; each sender gets its outcome after the commit, the live hub gets the
//! new last positions, and arrivals are recorded on the day's missions.
//!
//! Decisions:
//! - Group commit: a writer takes every submission waiting (up to `ingest_max_rows`
//!   positions) and stores them in one transaction (`store::positions::write_batch`). Under
//!   load batches grow by themselves; at rest a lone position is written at once.
//! - The buffer is bounded (`ingest_buffer` submissions): when the database is slower than the
//!   phones, senders wait to enqueue (AgentSession stops reading, so HTTP/2 flow control slows
//!   the phone) instead of the server's memory growing.
//! - Nothing is acknowledged before the commit: a sender's reply is sent after it. A failed
//!   transaction fails every submission in it (UNAVAILABLE); the phone resends after its last
//!   ack, and the (agent, sequence) dedup keeps the resend from storing anything twice.
//! - Arrivals are looked for in the stored, non-mock fixes of the batch, against the open
//!   visits of the fix's day (`domain::arrival`), after the commit; a failure there is logged
//!   and does not fail the positions (they are stored).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::arrival::{ArrivalRule, OpenVisit, arrivals};
use crate::domain::conakry_day;
use crate::domain::position::{Position, PositionRules, RawPosition, RejectReason, validate};
use crate::domain::presence::LatLng;
use crate::live::LiveHub;
use crate::metrics::{
    POSITIONS_INGEST_BATCH_SIZE, POSITIONS_INGEST_SECONDS, POSITIONS_PERSISTED, POSITIONS_RECEIVED,
    POSITIONS_REJECTED,
};
use crate::store::StoreError;
use crate::store::arrivals as arrival_store;
use crate::store::positions::{self as store, NewPosition, Written};

/// Most positions in one batch (AgentSession and ReportPositions).
pub const MAX_BATCH: usize = 1_000;

/// The answer to a batch of one agent's positions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchAck {
    /// Highest persisted sequence of the agent after the batch (0: none).
    pub highest_persisted_sequence: u64,
    /// Refused positions: sequence and reason, in the order received.
    pub rejected: Vec<(u64, RejectReason)>,
    /// Positions stored now or already stored before.
    pub accepted_count: i64,
}

struct Submission {
    rows: Vec<NewPosition>,
    reply: oneshot::Sender<Result<SubmissionResult, Arc<StoreError>>>,
}

struct SubmissionResult {
    outcomes: Vec<Written>,
    max_sequence: i64,
}

/// Why a batch could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database failed (or the server is stopping); retry later.
    #[error("positions could not be stored: {0}")]
    Store(Arc<StoreError>),
    #[error("the server is shutting down")]
    Stopped,
}

/// The ingest entry point. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    sender: mpsc::Sender<Submission>,
    rules: PositionRules,
    pool: PgPool,
}

impl Ingest {
    /// The ingest with its buffer, and the writers to run ([`Writers::run`]).
    pub fn new(
        pool: PgPool,
        hub: LiveHub,
        rules: PositionRules,
        arrival: ArrivalRule,
        buffer: usize,
        max_rows: usize,
        writers: usize,
    ) -> (Self, Writers) {
        let (sender, receiver) = mpsc::channel(buffer.max(1));
        (
            Self {
                sender,
                rules,
                pool: pool.clone(),
            },
            Writers {
                pool,
                hub,
                arrival,
                receiver: Arc::new(Mutex::new(receiver)),
                max_rows: max_rows.max(MAX_BATCH),
                count: writers.max(1),
            },
        )
    }

    /// Checks `raw` positions of `agent_id` received at `now`, stores the valid ones and
    /// answers after the commit. `raw.len()` must be at most [`MAX_BATCH`] (the caller's
    /// check).
    pub async fn submit(
        &self,
        agent_id: Uuid,
        raw: &[RawPosition],
        now: DateTime<Utc>,
    ) -> Result<BatchAck, IngestError> {
        metrics::counter!(POSITIONS_RECEIVED).increment(raw.len() as u64);
        let mut rejected = Vec::new();
        let mut rows = Vec::with_capacity(raw.len());
        let mut row_sequences = Vec::with_capacity(raw.len());
        for position in raw {
            match validate(position, now, &self.rules) {
                Ok(position) => {
                    rows.push(NewPosition {
                        agent_id,
                        position,
                        received_at: now,
                    });
                    row_sequences.push(position.sequence);
                }
                Err(reason) => rejected.push((position.sequence, reason)),
            }
        }
        let (outcomes, max_sequence) = if rows.is_empty() {
            (Vec::new(), None)
        } else {
            let (reply, answer) = oneshot::channel();
            self.sender
                .send(Submission { rows, reply })
                .await
                .map_err(|_| IngestError::Stopped)?;
            let result = answer
                .await
                .map_err(|_| IngestError::Stopped)?
                .map_err(IngestError::Store)?;
            (result.outcomes, Some(result.max_sequence))
        };
        let mut accepted_count = 0;
        for (sequence, outcome) in row_sequences.iter().zip(&outcomes) {
            match outcome {
                Written::Stored | Written::AlreadyStored => accepted_count += 1,
                Written::Conflict => {
                    rejected.push((
                        u64::try_from(*sequence).unwrap_or(0),
                        RejectReason::SequenceConflict,
                    ));
                }
            }
        }
        for (_, reason) in &rejected {
            metrics::counter!(POSITIONS_REJECTED, "reason" => reason.label()).increment(1);
        }
        let highest = match max_sequence {
            Some(max) => max,
            None => store::max_sequence(&self.pool, agent_id)
                .await
                .map_err(|e| IngestError::Store(Arc::new(e)))?,
        };
        Ok(BatchAck {
            highest_persisted_sequence: u64::try_from(highest).unwrap_or(0),
            rejected,
            accepted_count,
        })
    }
}

/// The database writers of an [`Ingest`].
pub struct Writers {
    pool: PgPool,
    hub: LiveHub,
    arrival: ArrivalRule,
    receiver: Arc<Mutex<mpsc::Receiver<Submission>>>,
    max_rows: usize,
    count: usize,
}

impl Writers {
    /// Runs the writers until `shutdown`, then until the buffer is empty.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..this.count {
            let writer = this.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { writer.run_one(shutdown).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn run_one(&self, shutdown: CancellationToken) {
        loop {
            let batch = {
                let mut receiver = self.receiver.lock().await;
                let first = tokio::select! {
                    () = shutdown.cancelled() => match receiver.try_recv() {
                        Ok(first) => first,
                        Err(_) => return,
                    },
                    first = receiver.recv() => match first {
                        Some(first) => first,
                        None => return,
                    },
                };
                let mut rows = first.rows.len();
                let mut batch = vec![first];
                while rows < self.max_rows {
                    match receiver.try_recv() {
                        Ok(next) => {
                            rows += next.rows.len();
                            batch.push(next);
                        }
                        Err(_) => break,
                    }
                }
                batch
            };
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: Vec<Submission>) {
        let rows: Vec<NewPosition> = batch.iter().flat_map(|s| s.rows.iter().copied()).collect();
        metrics::histogram!(POSITIONS_INGEST_BATCH_SIZE).record(rows.len() as f64);
        let started = Instant::now();
        let result = store::write_batch(&self.pool, &rows).await;
        metrics::histogram!(POSITIONS_INGEST_SECONDS).record(started.elapsed().as_secs_f64());
        let written = match result {
            Ok(written) => written,
            Err(error) => {
                tracing::warn!(%error, rows = rows.len(), "positions batch failed");
                let error = Arc::new(error);
                for submission in batch {
                    let _ = submission.reply.send(Err(error.clone()));
                }
                return;
            }
        };
        let stored = written
            .outcomes
            .iter()
            .filter(|o| **o == Written::Stored)
            .count();
        metrics::counter!(POSITIONS_PERSISTED).increment(stored as u64);
        let mut offset = 0;
        for submission in batch {
            let n = submission.rows.len();
            let agent_id = submission.rows[0].agent_id;
            let result = SubmissionResult {
                outcomes: written.outcomes[offset..offset + n].to_vec(),
                max_sequence: written.max_sequence.get(&agent_id).copied().unwrap_or(0),
            };
            offset += n;
            let _ = submission.reply.send(Ok(result));
        }
        if let Err(error) = self.hub.apply(written.changed, false).await {
            tracing::warn!(%error, "live hub: cannot load agents of a batch");
        }
        let fresh: Vec<NewPosition> = rows
            .iter()
            .zip(&written.outcomes)
            .filter(|(row, outcome)| **outcome == Written::Stored && !row.position.is_mock_location)
            .map(|(row, _)| *row)
            .collect();
        if let Err(error) = record_arrivals(&self.pool, &self.arrival, &fresh).await {
            tracing::warn!(%error, "arrival detection failed");
        }
    }
}

/// Marks the missions the `fixes` arrive at (see the module header); answers how many.
pub async fn record_arrivals(
    pool: &PgPool,
    rule: &ArrivalRule,
    fixes: &[NewPosition],
) -> Result<u64, StoreError> {
    let mut by_agent_day: HashMap<(Uuid, chrono::NaiveDate), Vec<Position>> = HashMap::new();
    for fix in fixes {
        by_agent_day
            .entry((fix.agent_id, conakry_day(fix.position.fix_time)))
            .or_default()
            .push(fix.position);
    }
    let keys: Vec<(Uuid, chrono::NaiveDate)> = by_agent_day.keys().copied().collect();
    let mut visits: HashMap<(Uuid, chrono::NaiveDate), Vec<OpenVisit<Uuid>>> = HashMap::new();
    for row in arrival_store::open_visits(pool, &keys).await? {
        if let Ok(home) = LatLng::parse(row.latitude, row.longitude) {
            visits
                .entry((row.agent_id, row.mission_date))
                .or_default()
                .push(OpenVisit {
                    mission_id: row.mission_id,
                    home,
                });
        }
    }
    let mut found = Vec::new();
    for (key, open) in &visits {
        if let Some(positions) = by_agent_day.get(key) {
            found.extend(arrivals(rule, open, positions));
        }
    }
    if found.is_empty() {
        return Ok(0);
    }
    arrival_store::record(pool, &found).await
}
