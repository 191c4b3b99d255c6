//! The per-call read of a standing: one Redis round trip ([`StandingCache::peek`]), which may
//! carry other keys and a script of the caller's, then PostgreSQL on a miss
//! ([`StandingCache::resolve`]).

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, ScriptInvocation};
use uuid::Uuid;

use super::entry::{Entry, Epochs};
use super::{ENTRY_TTL, StandingCache, count, entry_key, fleet_key, random_epoch, user_key};
use crate::limits::shared_calls::is_no_script;
use crate::redis::{Redis, timed};
use crate::store::sessions::{self, Standing};

/// What [`StandingCache::peek`] read in its round trip.
pub struct Peeked {
    /// The standing, to be completed by [`StandingCache::resolve`].
    pub pending: Pending,
    /// The values of the keys `extra`, in order; empty when Redis was not read.
    pub values: Vec<Option<u64>>,
    /// The reply of the script `ride`; `None` when it did not run (no Redis, Redis down, or
    /// the cache not in use).
    pub ride: Option<redis::Value>,
}

/// A standing looked up in Redis, cached or still to read from PostgreSQL.
pub struct Pending {
    user_id: Uuid,
    session_id: Uuid,
    /// The in-process generation taken before anything was read, while the lease held: what
    /// is read is kept in process under it.
    generation: Option<u64>,
    found: Found,
}

enum Found {
    /// Held in process.
    Local(Standing),
    Hit(Standing),
    /// Not cached: read PostgreSQL and cache the answer under these epochs.
    Miss {
        fleet: i64,
        user: i64,
        conn: ConnectionManager,
    },
    /// Redis not in use: read PostgreSQL only.
    Uncached,
}

enum Lookup {
    Hit(Standing),
    /// Not cached (or cached under older epochs): the current epochs, to tag a fresh read.
    Miss {
        fleet: i64,
        user: i64,
    },
}

impl StandingCache {
    /// The standing of `user_id` in session `session_id`; `None` when there is no such user.
    /// Errors are PostgreSQL's: Redis failing only sends the read to PostgreSQL.
    pub async fn get(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<Option<Standing>, sqlx::Error> {
        Ok(self.get_with(user_id, session_id, &[]).await?.0)
    }

    /// [`StandingCache::get`], reading the Redis keys `extra` (integers) in the same round
    /// trip: their values in order, or an empty list when Redis was not read.
    pub async fn get_with(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        extra: &[String],
    ) -> Result<(Option<Standing>, Vec<Option<u64>>), sqlx::Error> {
        let peeked = self.peek(user_id, session_id, extra, None).await;
        Ok((self.resolve(peeked.pending).await?, peeked.values))
    }

    /// The Redis half of [`StandingCache::get_with`]: one round trip that reads the cached
    /// standing, the keys `extra` and runs the script `ride` (when given), and no PostgreSQL.
    /// [`StandingCache::resolve`] gives the standing. Never fails: Redis failing leaves the
    /// standing to PostgreSQL, and `values` empty and `ride` unanswered.
    pub async fn peek(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        extra: &[String],
        ride: Option<&ScriptInvocation<'_>>,
    ) -> Peeked {
        // Held in process only while the shared tier is in use: without Redis, every call
        // reads PostgreSQL (ADR 0009).
        let shared = self.usable().await;
        let generation = shared.as_ref().and(self.inner.local.usable());
        let held = generation.and_then(|g| self.inner.local.get(user_id, session_id, g));
        let uncached = |values, ride| Peeked {
            pending: Pending {
                user_id,
                session_id,
                generation,
                found: Found::Uncached,
            },
            values,
            ride,
        };
        if let Some(standing) = held {
            let (values, ride) = self.extra_and_ride(extra, ride).await;
            return Peeked {
                pending: Pending {
                    user_id,
                    session_id,
                    generation,
                    found: Found::Local(standing),
                },
                values,
                ride,
            };
        }
        let Some((redis, conn)) = shared else {
            return uncached(Vec::new(), None);
        };
        match self
            .lookup(redis, conn.clone(), user_id, session_id, extra, ride)
            .await
        {
            Ok((lookup, values, ride)) => Peeked {
                pending: Pending {
                    user_id,
                    session_id,
                    generation,
                    found: match lookup {
                        Lookup::Hit(standing) => Found::Hit(standing),
                        Lookup::Miss { fleet, user } => Found::Miss { fleet, user, conn },
                    },
                },
                values,
                ride,
            },
            Err(error) => {
                redis.failed(&error);
                uncached(Vec::new(), None)
            }
        }
    }

    /// The standing [`StandingCache::peek`] left `pending`: the cached one, else read from
    /// PostgreSQL (and cached when Redis was read); `None` when there is no such user. Errors
    /// are PostgreSQL's.
    pub async fn resolve(&self, pending: Pending) -> Result<Option<Standing>, sqlx::Error> {
        let Pending {
            user_id,
            session_id,
            generation,
            found,
        } = pending;
        let keep = |standing: &Standing| {
            if let Some(generation) = generation {
                let local = &self.inner.local;
                local.put(user_id, session_id, generation, standing.clone());
            }
        };
        match found {
            Found::Local(standing) => {
                count("hit");
                return Ok(Some(standing));
            }
            Found::Hit(standing) => {
                count("hit");
                keep(&standing);
                return Ok(Some(standing));
            }
            Found::Miss { .. } | Found::Uncached => {}
        }
        count("miss");
        let standing = sessions::standing(&self.inner.pool, user_id, session_id).await?;
        if let Some(standing) = &standing {
            keep(standing);
        }
        if let (Found::Miss { fleet, user, conn }, Some(standing), Some(redis)) =
            (found, &standing, &self.inner.redis)
        {
            self.store(redis, conn, user_id, session_id, fleet, user, standing)
                .await;
        }
        Ok(standing)
    }

    async fn lookup(
        &self,
        redis: &Redis,
        mut conn: ConnectionManager,
        user_id: Uuid,
        session_id: Uuid,
        extra: &[String],
        ride: Option<&ScriptInvocation<'_>>,
    ) -> redis::RedisResult<(Lookup, Vec<Option<u64>>, Option<redis::Value>)> {
        let fleet_key = fleet_key(redis);
        let user_key = user_key(redis, user_id);
        let entry_key = entry_key(redis, user_id, session_id);
        let keys = [&fleet_key, &user_key, &entry_key];
        let ((fleet, user, entry), values, ride): (Epochs, Vec<Option<u64>>, _) =
            if extra.is_empty() && ride.is_none() {
                (timed(conn.mget(&keys)).await?, Vec::new(), None)
            } else {
                // One pipeline: one round trip.
                let mut pipe = redis::pipe();
                pipe.mget(&keys);
                add_extra_and_ride(&mut pipe, extra, ride);
                let mut replies = query_loading(&mut conn, &pipe, ride).await?;
                let epochs = redis::from_redis_value(replies.next().unwrap_or(redis::Value::Nil))?;
                let (values, ride) = take_extra_and_ride(&mut replies, extra, ride)?;
                (epochs, values, ride)
            };
        if let (Some(fleet), Some(user), Some(entry)) = (fleet, user, entry)
            && let Ok(entry) = serde_json::from_slice::<Entry>(&entry)
            && entry.fleet == fleet
            && entry.user == user
            && let Some(standing) = entry.standing(user_id)
        {
            return Ok((Lookup::Hit(standing), values, ride));
        }
        if let (Some(fleet), Some(user)) = (fleet, user) {
            return Ok((Lookup::Miss { fleet, user }, values, ride));
        }
        // A fresh (or evicted) epoch starts at a random value, never at a reused one.
        let (fleet, user): (i64, i64) = timed(
            redis::pipe()
                .atomic()
                .set_nx(&fleet_key, random_epoch())
                .ignore()
                .set_nx(&user_key, random_epoch())
                .ignore()
                .mget(&[&fleet_key, &user_key])
                .query_async::<((i64, i64),)>(&mut conn),
        )
        .await?
        .0;
        Ok((Lookup::Miss { fleet, user }, values, ride))
    }

    #[allow(clippy::too_many_arguments)]
    async fn store(
        &self,
        redis: &Redis,
        mut conn: ConnectionManager,
        user_id: Uuid,
        session_id: Uuid,
        fleet: i64,
        user: i64,
        standing: &Standing,
    ) {
        let Ok(bytes) = serde_json::to_vec(&Entry::of(fleet, user, standing)) else {
            return;
        };
        let key = entry_key(redis, user_id, session_id);
        let millis = u64::try_from(ENTRY_TTL.as_millis()).unwrap_or(u64::MAX);
        let result: redis::RedisResult<()> = timed(conn.pset_ex(key, bytes, millis)).await;
        if let Err(error) = result {
            redis.failed(&error);
        }
    }
}

impl StandingCache {
    /// The keys `extra` and the script `ride` alone, for a standing held in process: one round
    /// trip when there is anything to read, none otherwise. Redis failing leaves `values`
    /// empty and `ride` unanswered.
    async fn extra_and_ride(
        &self,
        extra: &[String],
        ride: Option<&ScriptInvocation<'_>>,
    ) -> (Vec<Option<u64>>, Option<redis::Value>) {
        if extra.is_empty() && ride.is_none() {
            return (Vec::new(), None);
        }
        let Some((redis, mut conn)) = self
            .inner
            .redis
            .as_ref()
            .and_then(|redis| Some((redis, redis.connection()?)))
        else {
            return (Vec::new(), None);
        };
        let mut pipe = redis::pipe();
        add_extra_and_ride(&mut pipe, extra, ride);
        let read = async {
            let mut replies = query_loading(&mut conn, &pipe, ride).await?;
            take_extra_and_ride(&mut replies, extra, ride)
        };
        match read.await {
            Ok(read) => read,
            Err(error) => {
                redis.failed(&error);
                (Vec::new(), None)
            }
        }
    }
}

/// Adds the keys `extra` (one `MGET`, when any) and the script `ride` (when given) to `pipe`.
fn add_extra_and_ride(
    pipe: &mut redis::Pipeline,
    extra: &[String],
    ride: Option<&ScriptInvocation<'_>>,
) {
    if !extra.is_empty() {
        pipe.mget(extra);
    }
    if let Some(ride) = ride {
        pipe.invoke_script(ride);
    }
}

/// Runs `pipe`; when Redis does not know the script `ride` (restarted, flushed), loads it and
/// runs again, once.
async fn query_loading(
    conn: &mut ConnectionManager,
    pipe: &redis::Pipeline,
    ride: Option<&ScriptInvocation<'_>>,
) -> redis::RedisResult<std::vec::IntoIter<redis::Value>> {
    let replies = match timed(pipe.query_async::<Vec<redis::Value>>(conn)).await {
        Err(error) if ride.is_some() && is_no_script(&error) => {
            if let Some(ride) = ride {
                timed(ride.load_async(conn)).await?;
            }
            timed(pipe.query_async::<Vec<redis::Value>>(conn)).await?
        }
        replies => replies?,
    };
    Ok(replies.into_iter())
}

/// The values of `extra` and the reply of `ride`, next in `replies` as
/// [`add_extra_and_ride`] queued them.
fn take_extra_and_ride(
    replies: &mut std::vec::IntoIter<redis::Value>,
    extra: &[String],
    ride: Option<&ScriptInvocation<'_>>,
) -> redis::RedisResult<(Vec<Option<u64>>, Option<redis::Value>)> {
    let values = if extra.is_empty() {
        Vec::new()
    } else {
        redis::from_redis_value(replies.next().unwrap_or(redis::Value::Nil))?
    };
    Ok((
        values,
        ride.map(|_| replies.next().unwrap_or(redis::Value::Nil)),
    ))
}
