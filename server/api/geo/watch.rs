//! WatchAgents: a snapshot of the last known positions in scope, then the changes.
//!
//! Decisions:
//! - Each watcher is a task reading the hub's broadcast channel (`crate::live`) and writing
//!   to a small response channel. When the client reads slowly the task waits on that channel
//!   while the broadcast keeps moving; past `watch_buffer` updates behind, the next read
//!   answers `Lagged(n)`: the watcher gets a resync with n, then a fresh snapshot. Ingest and
//!   the other watchers never wait for it.
//! - The bounding box: an agent leaving the box gets one last update outside it, then none
//!   until it comes back (the task remembers which agents it last showed inside).
//! - A keepalive goes out after `keepalive` (20 s) without any other message.
//! - Server shutdown ends the stream (status OK after the drain of `layers::observe`).

use std::collections::HashSet;

use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use uuid::Uuid;

use super::GeoApi;
use super::positions::{agent_location, watch_filter};
use crate::api::convert::timestamp;
use crate::auth::caller::Caller;
use crate::live::{AgentState, LiveEvent, WatchFilter};
use crate::metrics::{LIVE_STREAMS_OPEN, WATCH_LAG_SECONDS, WATCH_RESYNCS};
use crate::proto::v1 as pb;
use crate::proto::v1::watch_agents_response::Event;

type Outbound = mpsc::Sender<Result<pb::WatchAgentsResponse, Status>>;

pub(super) async fn watch_agents(
    api: &GeoApi,
    request: Request<pb::WatchAgentsRequest>,
) -> Result<Response<BoxStream<pb::WatchAgentsResponse>>, Status> {
    let caller = Caller::of(&request)?;
    let message = request.get_ref();
    let filter = watch_filter(
        caller,
        &message.site_ids,
        &message.agent_ids,
        message.bounds.as_ref(),
        message.online_only,
    )?;
    let (out, responses) = mpsc::channel(8);
    let watcher = Watcher {
        api: api.clone(),
        filter,
        out,
        inside: HashSet::new(),
    };
    tokio::spawn(watcher.run().instrument(tracing::Span::current()));
    Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
}

struct Watcher {
    api: GeoApi,
    filter: WatchFilter,
    out: Outbound,
    /// Agents whose last update sent was inside the box.
    inside: HashSet<Uuid>,
}

impl Watcher {
    async fn send(&self, event: Event) -> bool {
        self.out
            .send(Ok(pb::WatchAgentsResponse { event: Some(event) }))
            .await
            .is_ok()
    }

    async fn snapshot(&mut self, agents: Vec<AgentState>) -> bool {
        self.inside = agents.iter().map(|a| a.info.id).collect();
        let snapshot = pb::AgentSnapshot {
            agents: agents.iter().map(agent_location).collect(),
            snapshot_time: Some(timestamp(Utc::now())),
        };
        self.send(Event::Snapshot(snapshot)).await
    }

    async fn run(mut self) {
        metrics::gauge!(LIVE_STREAMS_OPEN, "kind" => "watch_agents").increment(1.0);
        let hub = self.api.state.live.clone();
        let keepalive = hub.config().keepalive;
        let shutdown = self.api.state.shutdown.clone();
        let (agents, mut events) = hub.subscribe(&self.filter);
        let mut open = self.snapshot(agents).await;
        let mut quiet_until = Instant::now() + keepalive;
        while open {
            let sent = tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.out.closed() => break,
                () = tokio::time::sleep_until(quiet_until) => {
                    let keepalive = pb::WatchKeepalive { server_time: Some(timestamp(Utc::now())) };
                    open = self.send(Event::Keepalive(keepalive)).await;
                    true
                }
                event = events.recv() => match event {
                    Ok(event) => match self.update(event) {
                        Some(update) => {
                            open = self.send(update).await;
                            true
                        }
                        None => false,
                    },
                    Err(RecvError::Lagged(dropped)) => {
                        metrics::counter!(WATCH_RESYNCS).increment(1);
                        let resync = pb::WatchResync {
                            dropped_update_count: i64::try_from(dropped).unwrap_or(i64::MAX),
                        };
                        open = self.send(Event::Resync(resync)).await
                            && self.snapshot(hub.snapshot(&self.filter)).await;
                        true
                    }
                    Err(RecvError::Closed) => break,
                },
            };
            if sent {
                quiet_until = Instant::now() + keepalive;
            }
        }
        metrics::gauge!(LIVE_STREAMS_OPEN, "kind" => "watch_agents").decrement(1.0);
    }

    /// The message `event` makes for this watcher, if any.
    fn update(&mut self, event: LiveEvent) -> Option<Event> {
        if !self.filter.admits(event.agent()) {
            return None;
        }
        match event {
            LiveEvent::Position(state) => {
                let id = state.info.id;
                if self.filter.in_bounds(&state) {
                    self.inside.insert(id);
                } else if !self.inside.remove(&id) {
                    return None;
                }
                if self.filter.online_only && !state.online {
                    return None;
                }
                let lag = (Utc::now() - state.last.received_at)
                    .to_std()
                    .unwrap_or_default();
                metrics::histogram!(WATCH_LAG_SECONDS).record(lag.as_secs_f64());
                Some(Event::PositionUpdate(agent_location(&state)))
            }
            LiveEvent::Presence { info, online, at } => {
                Some(Event::PresenceChange(pb::AgentPresenceChange {
                    agent: Some(crate::api::parse::user_ref(info.id, &info.full_name)),
                    presence: if online {
                        pb::AgentPresence::Online
                    } else {
                        pb::AgentPresence::Offline
                    }
                    .into(),
                    change_time: Some(timestamp(at)),
                }))
            }
        }
    }
}
