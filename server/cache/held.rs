//! Versions held in process: the read cache's versions kept between reads for at most
//! [`HELD_FOR`], dropped as soon as a write's announcement arrives, so that a steady hit costs
//! no Redis round trip.
//!
//! Decisions (ADR 0017):
//! - Every write that moves versions in Redis also announces their names on one pub/sub
//!   channel (`<prefix>:cv`, payload: the names separated by spaces), in the same pipeline as
//!   its `INCR`s. Each replica listens ([`Cache::run_announcements`]) and drops the names it
//!   hears; the writer's own replica drops them when its pipeline returns, so a write is seen
//!   by the writer's next read at once, and by the other replicas' as soon as the announcement
//!   arrives (Redis delivers it in well under a millisecond on a healthy link).
//! - Held versions are used only while this replica listens; losing the subscription drops
//!   them all, and so does every (re)subscription.
//! - Generations: every announcement heard, every local drop and every change of listening
//!   moves the generation. A read keeps the versions it read from Redis only under the
//!   generation taken before it read them; a read that raced an announcement keeps nothing.
//! - The subscription is pinged every [`PING_EVERY`]; one that does not answer within
//!   [`crate::redis::REDIS_TIMEOUT`] (a half-open connection) is taken as lost.
//! - An announcement heard also moves this process's own versions (those it reads by while its
//!   main link to Redis is down), so answers it kept meanwhile go too.
//! - Whatever goes wrong unseen (an announcement lost with its writer's connection after the
//!   `INCR`, or refused by an ACL without the channel), a held version is used for
//!   [`HELD_FOR`] at most after it was read: that bounds how long a replica whose link to Redis
//!   works can serve an answer older than a write.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::read::EPOCH;
use super::{Cache, Inner};
use crate::metrics::CACHE_ANNOUNCEMENTS_UP;

/// How long a version read from Redis is used without reading it again (the bound on a
/// replica's staleness when an announcement is lost).
pub const HELD_FOR: Duration = Duration::from_secs(1);
/// The wait before subscribing again after the subscription was lost or refused.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);
/// How often the subscription is pinged: one that does not answer in time is taken as lost.
const PING_EVERY: Duration = Duration::from_millis(500);
/// Version names held at most (sites of the company, `all`, `epoch`); past it, nothing more is
/// kept until an announcement or a subscription change clears room.
const HELD_NAMES_MAX: usize = 10_000;

/// The announcements' channel, under the deployment's prefix.
pub(super) const CHANNEL: &str = "cv";

/// The versions this process holds, by name, and the generation they are kept under.
#[derive(Debug, Default)]
pub(super) struct HeldVersions {
    /// Read by every cached read, written by announcements and by reads from Redis.
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    listening: bool,
    generation: u64,
    /// Value and when it was read (before the read was sent).
    values: HashMap<String, (u64, Instant)>,
}

impl HeldVersions {
    fn state(&self) -> RwLockReadGuard<'_, State> {
        // Every change is a whole assignment or a map operation: consistent after any panic.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The generation to read under: pass it to [`HeldVersions::keep`].
    pub(super) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// The held values of `names`, in order, when every one is held, read less than
    /// [`HELD_FOR`] before `now`, and this process listens.
    pub(super) fn get(&self, names: &[String], now: Instant) -> Option<Vec<u64>> {
        let state = self.state();
        if !state.listening {
            return None;
        }
        names
            .iter()
            .map(|name| {
                let (value, read_at) = state.values.get(name)?;
                (now.saturating_duration_since(*read_at) < HELD_FOR).then_some(*value)
            })
            .collect()
    }

    /// Keeps `values` of `names`, read from Redis at `read_at` under `generation`; nothing when
    /// the generation has moved since (an announcement or a local write came meanwhile) or
    /// when this process does not listen.
    pub(super) fn keep(&self, generation: u64, read_at: Instant, names: &[String], values: &[u64]) {
        let mut state = self.state_mut();
        if !state.listening || state.generation != generation || names.len() != values.len() {
            return;
        }
        for (name, value) in names.iter().zip(values) {
            if state.values.len() >= HELD_NAMES_MAX && !state.values.contains_key(name) {
                return;
            }
            state.values.insert(name.clone(), (*value, read_at));
        }
    }

    /// Drops the held values of `names` (every value when the epoch is among them) and moves
    /// the generation.
    pub(super) fn forget<S: AsRef<str>>(&self, names: &[S]) {
        let mut state = self.state_mut();
        state.generation += 1;
        if names.iter().any(|name| name.as_ref() == EPOCH) {
            state.values.clear();
            return;
        }
        for name in names {
            state.values.remove(name.as_ref());
        }
    }

    /// Starts or stops holding versions: drops every held value and moves the generation.
    pub(super) fn listening(&self, on: bool) {
        let mut state = self.state_mut();
        state.generation += 1;
        state.listening = on;
        state.values.clear();
    }

    pub(super) fn is_listening(&self) -> bool {
        self.state().listening
    }
}

/// The announcement's payload for `names`.
pub(super) fn announcement<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Cache {
    /// Listens to the writes' announcements until `shutdown` (a background task of the
    /// server; nothing to do without Redis): while subscribed, versions are held; every
    /// announcement drops the names it carries.
    pub async fn run_announcements(self, shutdown: CancellationToken) {
        let Some(redis) = self.inner.redis.clone() else {
            return;
        };
        let channel = redis.key(CHANNEL);
        // Said once until a subscription succeeds.
        let mut refused = false;
        loop {
            let subscribed = async {
                let mut pubsub = redis.client().get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let subscribed = tokio::select! {
                () = shutdown.cancelled() => return,
                result = crate::redis::timed(subscribed) => result,
            };
            match subscribed {
                Ok(pubsub) => {
                    refused = false;
                    self.listen(pubsub, &shutdown).await;
                    self.inner.held.listening(false);
                    metrics::gauge!(CACHE_ANNOUNCEMENTS_UP).set(0.0);
                    if shutdown.is_cancelled() {
                        return;
                    }
                    tracing::warn!("read cache: announcements lost; subscribing again");
                }
                // Refused by Redis itself (an ACL without the channel, say), not by the
                // network: versions are then read at every read, as without announcements.
                Err(error) if !refused && error.kind() != redis::ErrorKind::Io => {
                    refused = true;
                    tracing::warn!(
                        %error,
                        "read cache: cannot subscribe to the writes' announcements; versions \
                         are read from Redis at every read"
                    );
                }
                Err(error) => tracing::debug!(%error, "read cache: cannot subscribe"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            }
        }
    }

    /// Holds versions while `pubsub` delivers announcements; returns at `shutdown`, when the
    /// subscription ends, or when it does not answer a ping within
    /// [`crate::redis::REDIS_TIMEOUT`] (a half-open connection, which nothing else would
    /// notice). While a ping waits, announcements wait behind it: for that timeout at most.
    async fn listen(&self, pubsub: redis::aio::PubSub, shutdown: &CancellationToken) {
        // Reads sent from now on see every version moved after them announced.
        self.inner.held.listening(true);
        metrics::gauge!(CACHE_ANNOUNCEMENTS_UP).set(1.0);
        let (mut sink, mut messages) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ping.tick() => {
                    let answered: redis::RedisResult<redis::Value> =
                        crate::redis::timed(sink.ping()).await;
                    if answered.is_err() {
                        return;
                    }
                }
                message = messages.next() => {
                    let Some(message) = message else { return };
                    match message.get_payload::<String>() {
                        Ok(payload) => {
                            let names: Vec<&str> = payload.split(' ').collect();
                            self.inner.heard(&names);
                        }
                        // Unreadable: drop everything rather than guess.
                        Err(_) => self.inner.heard(&[EPOCH]),
                    }
                }
            }
        }
    }

    /// Whether this process holds versions (it listens to the announcements).
    pub fn holds_versions(&self) -> bool {
        self.inner.held.is_listening()
    }
}

impl Inner {
    /// An announcement of `names` heard: their held values go, and their versions in this
    /// process move too, so that answers kept in the process while its own link to Redis is
    /// down are not served after a write the other replicas made.
    pub(super) fn heard<S: AsRef<str>>(&self, names: &[S]) {
        self.held.forget(names);
        let mut local = self.local_versions();
        for name in names {
            *local.entry(name.as_ref().to_owned()).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn nothing_is_held_unless_listening() {
        let held = HeldVersions::default();
        let now = Instant::now();
        let generation = held.generation();
        held.keep(generation, now, &names(&["epoch", "all"]), &[1, 2]);
        assert_eq!(held.get(&names(&["epoch", "all"]), now), None);
        held.listening(true);
        let generation = held.generation();
        held.keep(generation, now, &names(&["epoch", "all"]), &[1, 2]);
        assert_eq!(held.get(&names(&["epoch", "all"]), now), Some(vec![1, 2]));
        held.listening(false);
        assert_eq!(held.get(&names(&["epoch", "all"]), now), None);
        held.listening(true);
        assert_eq!(
            held.get(&names(&["epoch"]), now),
            None,
            "dropped on resubscribing"
        );
    }

    #[test]
    fn a_read_that_raced_an_announcement_keeps_nothing() {
        let held = HeldVersions::default();
        held.listening(true);
        let now = Instant::now();
        let before = held.generation();
        held.forget(&["site:a"]);
        held.keep(before, now, &names(&["epoch", "site:a"]), &[1, 7]);
        assert_eq!(held.get(&names(&["epoch"]), now), None);
        let after = held.generation();
        held.keep(after, now, &names(&["epoch", "site:a"]), &[1, 8]);
        assert_eq!(held.get(&names(&["site:a"]), now), Some(vec![8]));
    }

    #[test]
    fn announcements_drop_their_names_and_the_epoch_drops_all() {
        let held = HeldVersions::default();
        held.listening(true);
        let now = Instant::now();
        let all = names(&["epoch", "all", "site:a", "site:b"]);
        held.keep(held.generation(), now, &all, &[1, 2, 3, 4]);
        held.forget(&["site:a", "all"]);
        assert_eq!(held.get(&all, now), None);
        assert_eq!(
            held.get(&names(&["epoch", "site:b"]), now),
            Some(vec![1, 4])
        );
        held.forget(&[EPOCH]);
        assert_eq!(held.get(&names(&["site:b"]), now), None);
    }

    #[test]
    fn a_held_version_is_used_for_a_second_at_most() {
        let held = HeldVersions::default();
        held.listening(true);
        let read_at = Instant::now();
        held.keep(held.generation(), read_at, &names(&["all"]), &[5]);
        let just_before = read_at + HELD_FOR - Duration::from_millis(1);
        assert_eq!(held.get(&names(&["all"]), just_before), Some(vec![5]));
        assert_eq!(held.get(&names(&["all"]), read_at + HELD_FOR), None);
    }

    #[test]
    fn announcements_name_versions_separated_by_spaces() {
        let payload = announcement(&["all", "site:x"]);
        assert_eq!(payload, "all site:x");
        let heard: Vec<&str> = payload.split(' ').collect();
        assert_eq!(heard, ["all", "site:x"]);
    }
}
