//! AgentSession: the phone's live channel.
//!
//! Decisions:
//! - The handler checks the caller (an agent), reads the hello, checks the app version and
//!   opens the session in the hub (replacing any other session of the agent, on any replica)
//!   before it answers; failures there are the stream's status. A spawned task then runs the
//!   session and feeds the response stream through a small channel (as RouteSession does).
//! - Batches are handled one at a time, in order: the next message is read only after the
//!   ack of the previous batch, which is sent after the commit. A phone flushing a long
//!   offline buffer is slowed by HTTP/2 flow control, and by the per-user stream rate limit
//!   (`limits::stream`) on every inbound message.
//! - An invalid position is a rejection in the ack; only a protocol error (a second hello, a
//!   batch over 1,000) ends the stream, with INVALID_ARGUMENT.
//! - The access token's expiry ends the stream with UNAUTHENTICATED (TOKEN_EXPIRED), after a
//!   TOKEN_EXPIRING notice a minute before; expiry and revocation are `crate::api::streams`'s.
//!   Replacement sends SESSION_REPLACED and closes; server shutdown sends SHUTDOWN with a retry
//!   delay and closes.
//! - The reporting hint is sent after the hello and again when the pace changes (battery,
//!   nearness to a tenant of the day, idleness; `domain::position::Pace`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::GeoApi;
use super::positions::{ack, check_batch_size, raw_position, require_agent};
use crate::api::error::ApiError;
use crate::auth::caller::Caller;
use crate::domain::position::{Pace, ReportingHint, is_idle};
use crate::domain::presence::LatLng;
use crate::live::SessionHandle;
use crate::live::config::{parse_version, version_below};
use crate::metrics::LIVE_STREAMS_OPEN;
use crate::proto::v1 as pb;
use crate::proto::v1::agent_session_request::Payload;
use crate::store::positions as position_store;

type Inbound = Pin<Box<dyn Stream<Item = Result<pb::AgentSessionRequest, Status>> + Send>>;
/// Boxed: a channel allocates room for 32 messages at once, and a response is over 1 kB
/// inline; an idle session's channel then costs 32 pointers.
type Outbound = mpsc::Sender<Box<Result<pb::AgentSessionResponse, Status>>>;

/// The TOKEN_EXPIRING notice comes this long before the token expires.
const TOKEN_WARNING: Duration = Duration::from_secs(60);
/// A phone told to reconnect after a shutdown waits at least this long.
const SHUTDOWN_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Recent fixes kept for the idleness check.
const RECENT_FIXES: usize = 64;

pub(super) async fn agent_session(
    api: &GeoApi,
    request: Request<Streaming<pb::AgentSessionRequest>>,
) -> Result<Response<BoxStream<pb::AgentSessionResponse>>, Status> {
    let caller = Caller::of(&request)?.clone();
    require_agent(&caller)?;
    let state = &api.state;
    let mut inbound: Inbound = Box::pin(
        state
            .rate_limits
            .stream_limiter()
            .limit(caller.user_id, request.into_inner()),
    );
    let first_is_hello = || ApiError::invalid("hello", "the first message must be the hello");
    let first = match inbound.next().await {
        Some(message) => message?,
        None => return Err(first_is_hello().into()),
    };
    let Some(Payload::Hello(hello)) = first.payload else {
        return Err(first_is_hello().into());
    };
    let config = state.live.config();
    let version = hello
        .device
        .as_ref()
        .and_then(|d| parse_version(&d.app_version));
    let Some(version) = version else {
        return Err(ApiError::invalid(
            "hello.device.app_version",
            "must be a dotted version, e.g. 2.3.1",
        )
        .into());
    };
    if version_below(&version, &config.min_app_version) {
        return Err(ApiError::failed_precondition(
            pb::ErrorReason::AppVersionUnsupported,
            "this app version is no longer supported: update the app",
        )
        .into());
    }
    let highest = position_store::max_sequence(&state.pool, caller.user_id)
        .await
        .map_err(ApiError::from)?;
    let handle = state
        .live
        .open_session(caller.user_id)
        .await
        .map_err(ApiError::from)?;
    let (out, responses) = mpsc::channel(16);
    let hint = Pace::Normal.hint();
    let mut opening = vec![
        pb::agent_session_response::Payload::Ack(pb::PositionAck {
            highest_persisted_sequence: u64::try_from(highest).unwrap_or(0),
            rejected: Vec::new(),
            accepted_count: 0,
        }),
        pb::agent_session_response::Payload::ReportingHint(hint_message(&hint)),
    ];
    if version_below(&version, &config.recommended_app_version) {
        opening.push(notice(
            pb::ServerNoticeKind::UpdateRecommended,
            "Une nouvelle version de l'application est disponible.",
        ));
    }
    for payload in opening {
        let _ = out.try_send(Box::new(Ok(pb::AgentSessionResponse {
            payload: Some(payload),
        })));
    }
    let session = Session {
        api: api.clone(),
        caller,
        out,
        pace: Pace::Normal,
        battery: None,
        recent: VecDeque::new(),
        skew_told: false,
    };
    tokio::spawn(
        session
            .run(inbound, handle)
            .instrument(tracing::Span::current()),
    );
    Ok(Response::new(Box::pin(
        ReceiverStream::new(responses).map(|reply| *reply),
    )))
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn hint_message(hint: &ReportingHint) -> pb::ReportingHint {
    pb::ReportingHint {
        interval: Some(duration(hint.interval)),
        min_distance_m: hint.min_distance_m,
        max_batch_size: hint.max_batch_size,
        max_batch_delay: Some(duration(hint.max_batch_delay)),
    }
}

fn notice(kind: pb::ServerNoticeKind, message: &str) -> pb::agent_session_response::Payload {
    pb::agent_session_response::Payload::Notice(pb::ServerNotice {
        kind: kind.into(),
        message: message.to_owned(),
        retry_after: None,
        clock_offset: None,
    })
}

struct Session {
    api: GeoApi,
    caller: Caller,
    out: Outbound,
    pace: Pace,
    battery: Option<i32>,
    /// Latest non-mock fixes, for the idleness check.
    recent: VecDeque<(LatLng, DateTime<Utc>)>,
    skew_told: bool,
}

/// Why the session ended, for the log.
#[derive(Debug, Clone, Copy)]
enum End {
    ClientClosed,
    ClientGone,
    Replaced,
    Shutdown,
    Failed,
}

struct OpenGauge;

impl OpenGauge {
    fn new() -> Self {
        metrics::gauge!(LIVE_STREAMS_OPEN, "kind" => "agent_session").increment(1.0);
        Self
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!(LIVE_STREAMS_OPEN, "kind" => "agent_session").decrement(1.0);
    }
}

impl Session {
    async fn send(&self, payload: pb::agent_session_response::Payload) -> bool {
        self.out
            .send(Box::new(Ok(pb::AgentSessionResponse {
                payload: Some(payload),
            })))
            .await
            .is_ok()
    }

    async fn run(mut self, mut inbound: Inbound, mut handle: SessionHandle) {
        let _gauge = OpenGauge::new();
        let expires_at = DateTime::<Utc>::from_timestamp(self.caller.token_expires_at, 0)
            .unwrap_or_else(Utc::now);
        let until = |at: DateTime<Utc>| {
            tokio::time::Instant::now() + (at - Utc::now()).to_std().unwrap_or_default()
        };
        let warning = until(expires_at - TOKEN_WARNING);
        let mut warned = false;
        let shutdown = self.api.state.shutdown.clone();
        let end = loop {
            tokio::select! {
                () = self.out.closed() => break End::ClientGone,
                () = handle.replaced.cancelled() => {
                    self.send(notice(
                        pb::ServerNoticeKind::SessionReplaced,
                        "Une autre session de votre compte a été ouverte : celle-ci est fermée.",
                    )).await;
                    break End::Replaced;
                }
                () = shutdown.cancelled() => {
                    let payload = pb::ServerNotice {
                        kind: pb::ServerNoticeKind::Shutdown.into(),
                        message: "Le serveur redémarre : reconnexion automatique.".into(),
                        retry_after: Some(duration(SHUTDOWN_RETRY_AFTER)),
                        clock_offset: None,
                    };
                    self.send(pb::agent_session_response::Payload::Notice(payload)).await;
                    break End::Shutdown;
                }
                () = tokio::time::sleep_until(warning), if !warned => {
                    warned = true;
                    self.send(notice(
                        pb::ServerNoticeKind::TokenExpiring,
                        "Votre session expire bientôt.",
                    )).await;
                }
                Some(push) = handle.pushes.recv() => {
                    if !self.send(pb::agent_session_response::Payload::MissionPush(*push)).await {
                        break End::ClientGone;
                    }
                }
                message = inbound.next() => {
                    let message = match message {
                        None => break End::ClientClosed,
                        Some(Err(_)) => break End::ClientGone,
                        Some(Ok(message)) => message,
                    };
                    // Boxed: the handling of a message is not part of an idle session's task.
                    if let Err(status) = Box::pin(self.handle(message)).await {
                        let _ = self.out.send(Box::new(Err(status))).await;
                        break End::Failed;
                    }
                }
            }
        };
        tracing::debug!(?end, agent_id = %self.caller.user_id, "agent session ended");
    }

    async fn handle(&mut self, message: pb::AgentSessionRequest) -> Result<(), Status> {
        let now = Utc::now();
        let state = &self.api.state;
        match message.payload {
            None => Ok(()),
            Some(Payload::Hello(_)) => {
                Err(ApiError::invalid("hello", "the hello comes once, first").into())
            }
            Some(Payload::Heartbeat(heartbeat)) => {
                state.live.seen(self.caller.user_id, now);
                if heartbeat.battery_percent.is_some() {
                    self.battery = heartbeat.battery_percent;
                }
                if let Some(device_time) = heartbeat.device_time
                    && let Some(device) = DateTime::<Utc>::from_timestamp(
                        device_time.seconds,
                        u32::try_from(device_time.nanos).unwrap_or(0),
                    )
                {
                    self.check_clock(device, now).await;
                }
                self.update_pace().await;
                Ok(())
            }
            Some(Payload::Positions(batch)) => {
                check_batch_size("positions.positions", batch.positions.len())?;
                let raw: Vec<_> = batch.positions.iter().map(raw_position).collect();
                let answer = state
                    .ingest
                    .submit(self.caller.user_id, &raw, now)
                    .await
                    .map_err(ApiError::from)?;
                state.live.seen(self.caller.user_id, now);
                for position in &raw {
                    if let (Some((lat, lng)), Some(at), false) = (
                        position.location,
                        position.fix_time,
                        position.is_mock_location,
                    ) && let Ok(at_location) = LatLng::parse(lat, lng)
                    {
                        self.recent.push_back((at_location, at));
                        if self.recent.len() > RECENT_FIXES {
                            self.recent.pop_front();
                        }
                    }
                    if position.battery_percent.is_some() {
                        self.battery = position.battery_percent;
                    }
                }
                self.send(pb::agent_session_response::Payload::Ack(ack(answer)))
                    .await;
                self.update_pace().await;
                Ok(())
            }
        }
    }

    async fn check_clock(&mut self, device: DateTime<Utc>, now: DateTime<Utc>) {
        let offset = device - now;
        let skew = self.api.state.collections.max_clock_skew;
        if !self.skew_told && offset.abs().to_std().unwrap_or_default() > skew {
            self.skew_told = true;
            let payload = pb::ServerNotice {
                kind: pb::ServerNoticeKind::ClockSkew.into(),
                message: "L'heure du téléphone est fausse : corrigez-la dans les réglages.".into(),
                retry_after: None,
                clock_offset: Some(prost_types::Duration {
                    seconds: offset.num_seconds(),
                    nanos: 0,
                }),
            };
            self.send(pb::agent_session_response::Payload::Notice(payload))
                .await;
        }
    }

    async fn update_pace(&mut self) {
        let recent: Vec<_> = self.recent.iter().copied().collect();
        let pace = Pace::choose(self.battery, false, is_idle(&recent));
        if pace != self.pace {
            self.pace = pace;
            self.send(pb::agent_session_response::Payload::ReportingHint(
                hint_message(&pace.hint()),
            ))
            .await;
        }
    }
}
