//! RouteSession: a live route that follows the agent.
//!
//! Decisions
//! - The handler reads the first message (it must be the problem), checks it, takes a search
//!   slot and places the stops before it answers, so a bad problem or a full server is the stream's status
//!   (INVALID_ARGUMENT, RESOURCE_EXHAUSTED) and not a message. A spawned task then runs the
//!   session and feeds the response stream through a channel (tonic's streaming examples);
//!   when a send fails the client is gone and the task ends.
//! - One search at a time per session. An accepted update cancels the running search and
//!   starts a new one with the same slot, after its thread has stopped. When no search is
//!   running the next one needs a free slot; without one the stream ends with
//!   RESOURCE_EXHAUSTED and a retry delay.
//! - Solutions leave at most every [`SOLUTION_INTERVAL`]: a better one that comes sooner waits
//!   and replaces the one waiting (the last of a search, `search_finished`, included).
//!   Rejections leave at once.
//! - Inbound messages go through the per-user stream rate limit. After `session_idle` without
//!   a client message the session ends (status OK); when the client closes its side or goes
//!   away, the running search is cancelled at once.

use std::pin::Pin;
use std::slice;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::GeoApi;
use super::convert;
use super::routes::place;
use crate::api::error::ApiError;
use crate::auth::caller::Caller;
use crate::domain::route::session::{NewStop, Opening, RouteSessionState, UpdateError};
use crate::domain::route::trip::{Plan, Trip};
use crate::geo::search::{Event, Running, SearchPermit, SearchRequest};
use crate::proto::v1 as pb;
use crate::proto::v1::route_session_request::Payload;

const RPC: &str = "route_session";

/// Shortest time between two solutions sent to the client.
pub const SOLUTION_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

type Inbound = Pin<Box<dyn Stream<Item = Result<pb::RouteSessionRequest, Status>> + Send>>;
type Outbound = mpsc::Sender<Result<pb::RouteSessionResponse, Status>>;

pub(super) async fn route_session(
    api: &GeoApi,
    request: Request<Streaming<pb::RouteSessionRequest>>,
) -> Result<Response<BoxStream<pb::RouteSessionResponse>>, Status> {
    let caller = Caller::of(&request)?.clone();
    let mut inbound: Inbound = Box::pin(
        api.state
            .rate_limits
            .stream_limiter()
            .limit(caller.user_id, request.into_inner()),
    );
    let first_is_problem =
        || ApiError::invalid("problem", "the first message must carry the problem");
    let first = match inbound.next().await {
        Some(message) => message?,
        None => return Err(first_is_problem().into()),
    };
    let Some(Payload::Problem(problem)) = &first.payload else {
        return Err(first_is_problem().into());
    };
    let config = &api.state.route;
    let problem = convert::problem(
        "problem",
        Some(problem),
        config.session_budget,
        config.default_travel_mode,
    )?;
    // The slot first: a refusal then costs no query.
    let permit = api.searches.try_acquire(RPC).map_err(ApiError::from)?;
    let (located, unrouted) = place(&api.state, &caller, &problem.stops).await?;
    let state = RouteSessionState::open(Opening {
        start: problem.start,
        located,
        unrouted,
        return_to_start: problem.return_to_start,
        travel_mode: problem.travel_mode,
        time_budget: problem.time_budget,
        seed: problem.seed,
        update_id: first.update_id,
    });
    let (out, responses) = mpsc::channel(8);
    let session = Session {
        api: api.clone(),
        caller,
        state,
        out,
    };
    tokio::spawn(
        session
            .run(inbound, permit)
            .instrument(tracing::Span::current()),
    );
    Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
}

struct Session {
    api: GeoApi,
    caller: Caller,
    state: RouteSessionState,
    out: Outbound,
}

/// The running search and what its results are about.
struct Current {
    running: Running,
    trip: Trip,
    applied_update_id: u64,
}

/// What became of a client update.
enum Applied {
    /// The problem changed: re-plan.
    Changed,
    Rejected(pb::RouteUpdateRejected),
    /// The session cannot go on (the database failed).
    Failed(Status),
}

/// Why the session ended, for the log.
#[derive(Debug, Clone, Copy)]
enum End {
    ClientClosed,
    ClientGone,
    Idle,
    Busy,
    Failed,
}

impl Session {
    async fn run(mut self, mut inbound: Inbound, permit: SearchPermit) {
        let idle = self.api.state.route.session_idle;
        let mut idle_at = Instant::now() + idle;
        let mut current = Some(self.start(permit));
        let mut waiting: Option<pb::RouteSessionSolution> = None;
        let mut last_sent: Option<Instant> = None;
        let end = loop {
            let send_at = last_sent.map_or_else(Instant::now, |at| at + SOLUTION_INTERVAL);
            tokio::select! {
                () = self.out.closed() => break End::ClientGone,
                message = inbound.next() => {
                    let message = match message {
                        None => break End::ClientClosed,
                        Some(Err(status)) => {
                            tracing::debug!(%status, "route session: client stream failed");
                            break End::ClientGone;
                        }
                        Some(Ok(message)) => message,
                    };
                    idle_at = Instant::now() + idle;
                    match self.apply(message).await {
                        Applied::Changed => {
                            waiting = None;
                            let permit = match current.take() {
                                Some(old) => old.running.stop().await,
                                None => None,
                            };
                            let permit = match permit {
                                Some(permit) => permit,
                                None => match self.api.searches.try_acquire(RPC) {
                                    Ok(permit) => permit,
                                    Err(busy) => {
                                        let status = Status::from(ApiError::from(busy));
                                        let _ = self.out.send(Err(status)).await;
                                        break End::Busy;
                                    }
                                },
                            };
                            current = Some(self.start(permit));
                        }
                        Applied::Rejected(rejected) => {
                            let message = pb::RouteSessionResponse {
                                payload: Some(pb::route_session_response::Payload::Rejected(
                                    rejected,
                                )),
                            };
                            if self.out.send(Ok(message)).await.is_err() {
                                break End::ClientGone;
                            }
                        }
                        Applied::Failed(status) => {
                            let _ = self.out.send(Err(status)).await;
                            break End::Failed;
                        }
                    }
                }
                event = next_event(&mut current) => match event {
                    Some(Event::Improved(improved)) => {
                        if let Some(current) = &current {
                            waiting = Some(self.solution(
                                current,
                                &improved.plan,
                                improved.iterations,
                                false,
                            ));
                        }
                    }
                    Some(Event::Finished(Ok(found))) => {
                        if let Some(done) = current.take() {
                            waiting = Some(self.solution(&done, &found.plan, found.iterations, true));
                            // Give the slot back before the client hears the search is over.
                            drop(done.running.stop().await);
                        }
                    }
                    Some(Event::Finished(Err(error))) => {
                        let status = Status::from(ApiError::internal(error));
                        let _ = self.out.send(Err(status)).await;
                        break End::Failed;
                    }
                    None => {
                        // The search's thread panicked (logged by the runtime).
                        current = None;
                        let status = Status::from(ApiError::internal(anyhow::anyhow!(
                            "route search ended without a result"
                        )));
                        let _ = self.out.send(Err(status)).await;
                        break End::Failed;
                    }
                },
                () = sleep_until(send_at), if waiting.is_some() => {
                    let Some(solution) = waiting.take() else { continue };
                    let message = pb::RouteSessionResponse {
                        payload: Some(pb::route_session_response::Payload::Solution(solution)),
                    };
                    if self.out.send(Ok(message)).await.is_err() {
                        break End::ClientGone;
                    }
                    last_sent = Some(Instant::now());
                }
                () = sleep_until(idle_at) => break End::Idle,
            }
        };
        // Dropping the running search raises its cancellation flag.
        drop(current);
        tracing::info!(?end, user_id = %self.caller.user_id, "route session ended");
    }

    /// Starts a search over the current state with `permit`.
    fn start(&self, permit: SearchPermit) -> Current {
        let trip = self.state.trip(&self.api.state.route.speeds);
        let running = self.api.searches.start(
            permit,
            SearchRequest {
                trip: trip.clone(),
                budget: self.state.time_budget(),
                seed: self.state.seed(),
                rpc: RPC,
            },
            SOLUTION_INTERVAL,
        );
        Current {
            running,
            trip,
            applied_update_id: self.state.applied_update_id(),
        }
    }

    fn solution(
        &self,
        current: &Current,
        plan: &Plan,
        iterations: u64,
        search_finished: bool,
    ) -> pb::RouteSessionSolution {
        pb::RouteSessionSolution {
            applied_update_id: current.applied_update_id,
            iteration: i64::try_from(iterations).unwrap_or(i64::MAX),
            search_finished,
            solution: Some(convert::solution(
                &current.trip,
                plan,
                self.state.unrouted(),
            )),
        }
    }

    /// Checks and applies one client update.
    async fn apply(&mut self, message: pb::RouteSessionRequest) -> Applied {
        let id = message.update_id;
        if let Err(error) = self.state.check_update_id(id) {
            return Applied::Rejected(convert::update_rejection(id, &error));
        }
        let invalid = |error: ApiError| Applied::Rejected(convert::rejection(id, &error));
        let applied = match message.payload {
            None => {
                return invalid(ApiError::invalid(
                    "payload",
                    "one of position, stop_visited, stop_added or stop_removed is required",
                ));
            }
            Some(Payload::Problem(_)) => {
                return invalid(ApiError::invalid(
                    "problem",
                    "only the first message carries the problem",
                ));
            }
            Some(Payload::Position(position)) => {
                match convert::location("position.location", position.location.as_ref()) {
                    Ok(at) => {
                        self.state.move_to(id, at);
                        Ok(())
                    }
                    Err(error) => return invalid(error),
                }
            }
            Some(Payload::StopVisited(visited)) => {
                match convert::stop_id("stop_visited.stop_id", &visited.stop_id) {
                    Ok(stop) => self.state.visit(id, &stop),
                    Err(error) => return invalid(error),
                }
            }
            Some(Payload::StopRemoved(removed)) => {
                match convert::stop_id("stop_removed.stop_id", &removed.stop_id) {
                    Ok(stop) => self.state.remove(id, &stop),
                    Err(error) => return invalid(error),
                }
            }
            Some(Payload::StopAdded(added)) => {
                let stop = match convert::stop("stop_added", &added) {
                    Ok(stop) => stop,
                    Err(error) => return invalid(error),
                };
                if self.state.has(&stop.id) {
                    // Refused before the database is asked.
                    Err(UpdateError::DuplicateStop(stop.id))
                } else {
                    let (mut located, mut unrouted) =
                        match place(&self.api.state, &self.caller, slice::from_ref(&stop)).await {
                            Ok(placed) => placed,
                            Err(error) => return Applied::Failed(error.into()),
                        };
                    let new = match (located.pop(), unrouted.pop()) {
                        (Some(located), _) => NewStop::Located(located),
                        (None, Some((stop, reason))) => NewStop::Unrouted(stop, reason),
                        (None, None) => {
                            return Applied::Failed(
                                ApiError::internal(anyhow::anyhow!("a stop was not placed")).into(),
                            );
                        }
                    };
                    self.state.add(id, new)
                }
            }
        };
        match applied {
            Ok(()) => Applied::Changed,
            Err(error) => Applied::Rejected(convert::update_rejection(id, &error)),
        }
    }
}

/// The next event of the running search; never, when none runs.
async fn next_event(current: &mut Option<Current>) -> Option<Event> {
    match current {
        Some(current) => current.running.next().await,
        None => std::future::pending().await,
    }
}
