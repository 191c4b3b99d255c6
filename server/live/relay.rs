//! The hub's link with the other replicas: Redis pub/sub on one channel (ADR 0013).
//!
//! Decisions:
//! - Pub/sub, not Streams: what travels is the newest state (last positions after their
//!   commit, session open/close, mission pushes), which PostgreSQL keeps anyway. A message
//!   lost while Redis is down is not replayed; instead, when the subscription comes back the
//!   hub reloads every last position from PostgreSQL (the catch-up), which is the same state.
//! - One JSON envelope per message, tagged with the sending replica's id so that a replica
//!   ignores its own messages. One message per committed batch, not per position.
//! - Publishing never waits for Redis: it is spawned, bounded by `crate::redis::timed`, and
//!   skipped while the shared link is down (the local watchers are served all the same).

use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::LiveHub;
use crate::proto::v1 as pb;
use crate::redis::{Redis, timed};
use crate::store::positions::LastPosition;

/// The channel's name after the key prefix.
const CHANNEL: &str = "live:events";
/// Wait before subscribing again after a failure.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: Uuid,
    #[serde(flatten)]
    message: Relayed,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Relayed {
    Positions {
        positions: Vec<LastPosition>,
    },
    SessionOpened {
        agent_id: Uuid,
        session_id: Uuid,
    },
    SessionClosed {
        agent_id: Uuid,
        session_id: Uuid,
    },
    /// A `MissionPush`, protobuf-encoded.
    MissionPush {
        agent_id: Uuid,
        push: Vec<u8>,
    },
}

/// The publishing side, owned by the hub.
pub struct Relay {
    redis: Option<Redis>,
    origin: Uuid,
}

impl Relay {
    pub fn new(redis: Option<Redis>) -> Self {
        Self {
            redis,
            origin: Uuid::new_v4(),
        }
    }

    pub fn positions(&self, positions: &[LastPosition]) {
        self.publish(Relayed::Positions {
            positions: positions.to_vec(),
        });
    }

    pub fn session_opened(&self, agent_id: Uuid, session_id: Uuid) {
        self.publish(Relayed::SessionOpened {
            agent_id,
            session_id,
        });
    }

    pub fn session_closed(&self, agent_id: Uuid, session_id: Uuid) {
        self.publish(Relayed::SessionClosed {
            agent_id,
            session_id,
        });
    }

    pub fn mission_push(&self, agent_id: Uuid, push: &pb::MissionPush) {
        self.publish(Relayed::MissionPush {
            agent_id,
            push: push.encode_to_vec(),
        });
    }

    fn publish(&self, message: Relayed) {
        let Some(redis) = &self.redis else { return };
        let Some(mut conn) = redis.connection() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let envelope = Envelope {
            origin: self.origin,
            message,
        };
        let Ok(payload) = serde_json::to_vec(&envelope) else {
            return;
        };
        let channel = redis.key(CHANNEL);
        let redis = redis.clone();
        handle.spawn(async move {
            let sent: redis::RedisResult<i64> = timed(conn.publish(channel, payload)).await;
            if let Err(error) = sent {
                redis.failed(&error);
            }
        });
    }
}

/// Receives the other replicas' messages until `shutdown`; after each (re)subscription the hub
/// reloads the last positions from PostgreSQL, to catch up with what it missed.
pub async fn run(hub: LiveHub, shutdown: CancellationToken) {
    let Some(redis) = hub.inner.relay.redis.clone() else {
        return;
    };
    let origin = hub.inner.relay.origin;
    let channel = redis.key(CHANNEL);
    let mut first = true;
    loop {
        let subscribed = async {
            let mut pubsub = redis.client().get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            () = shutdown.cancelled() => return,
            result = subscribed => result,
        };
        match pubsub {
            Ok(mut pubsub) => {
                if !first && let Err(error) = hub.load().await {
                    tracing::warn!(%error, "live relay: catch-up from the database failed");
                }
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        () = shutdown.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let payload: Vec<u8> = message.get_payload().unwrap_or_default();
                    match serde_json::from_slice::<Envelope>(&payload) {
                        Ok(envelope) if envelope.origin != origin => {
                            receive(&hub, envelope.message).await;
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "live relay: unreadable message"),
                    }
                }
                tracing::warn!("live relay: subscription lost; resubscribing");
            }
            Err(error) => tracing::debug!(%error, "live relay: cannot subscribe"),
        }
        first = false;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
        }
    }
}

async fn receive(hub: &LiveHub, message: Relayed) {
    match message {
        Relayed::Positions { positions } => {
            if let Err(error) = hub.apply(positions, true).await {
                tracing::warn!(%error, "live relay: cannot apply relayed positions");
            }
        }
        Relayed::SessionOpened {
            agent_id,
            session_id,
        } => hub.remote_session(agent_id, session_id, true),
        Relayed::SessionClosed {
            agent_id,
            session_id,
        } => hub.remote_session(agent_id, session_id, false),
        Relayed::MissionPush { agent_id, push } => {
            if let Ok(push) = pb::MissionPush::decode(push.as_slice()) {
                hub.push_local(agent_id, push);
            }
        }
    }
}
