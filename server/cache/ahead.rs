//! Versions read ahead: the read cache's versions fetched in the same Redis round trip as the
//! caller's standing, so that a steady cache hit costs that one round trip.
//!
//! Decisions (ADR 0014):
//! - A hit needs the versions of the sites its answer covers, read from Redis at the call (that
//!   is what makes a write visible at the next read on every replica). The authentication
//!   layer reads the caller's standing from Redis on every call anyway; the versions ride in
//!   the same pipeline ([`crate::auth::standing::StandingCache::peek`]), with the call's spend
//!   of the rate limits.
//! - Which versions: those the user's cached reads covered lately in this process
//!   ([`Cache::learn`], at most [`NAMES_PER_USER`] names, kept [`REMEMBERED_FOR`]). A read whose
//!   coverage was not read ahead reads its versions itself, as before: a second round trip.
//! - Only for the methods that have read through the cache in this process ([`Cache::learn`]
//!   records the method): other calls, whose standing is often held in process (ADR 0015),
//!   then cost no Redis round trip at all.
//! - Only for names the process does not hold (`super::held`, ADR 0017); values read ahead
//!   are then held like any read's.
//! - The values read ahead are as fresh as a read's own: taken at the call, before the answer
//!   is computed. Any of them missing (Redis restarted, evicted) and the read does its own,
//!   which recreates them.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLockReadGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::Cache;
use super::read::{Coverage, EPOCH, version_key};

/// Version names remembered per user (the epoch aside).
pub const NAMES_PER_USER: usize = 8;
/// How long a user's names are remembered without a cached read.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(30 * 60);
/// Users remembered per process.
pub(super) const USERS: u64 = 100_000;

/// The versions read ahead for one call, by name (`epoch`, `all`, `site:<id>`); a request
/// extension put by the authentication layer.
#[derive(Debug, Clone)]
pub struct VersionsAhead {
    values: Vec<(String, u64)>,
    /// The held versions' generation before the values were read, and when.
    generation: u64,
    read_at: Instant,
}

/// The version names to read ahead for a user, and their Redis keys.
pub struct AheadKeys {
    names: Arc<[String]>,
    generation: u64,
    read_at: Instant,
    /// The Redis keys of `names`, in order; empty when nothing is to be read ahead.
    pub keys: Vec<String>,
}

impl AheadKeys {
    /// The values read for [`AheadKeys::keys`], in order; `None` unless every one is there.
    pub fn read(&self, values: &[Option<u64>]) -> Option<VersionsAhead> {
        if self.keys.is_empty() || values.len() != self.names.len() {
            return None;
        }
        let values = self
            .names
            .iter()
            .zip(values)
            .map(|(name, value)| Some((name.clone(), (*value)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(VersionsAhead {
            values,
            generation: self.generation,
            read_at: self.read_at,
        })
    }
}

impl VersionsAhead {
    /// The value of version `name`, when it was read ahead.
    pub(super) fn get(&self, name: &str) -> Option<u64> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| *value)
    }

    /// The held versions' generation the values were read under, and when they were read
    /// (`super::held`).
    pub(super) fn taken(&self) -> (u64, Instant) {
        (self.generation, self.read_at)
    }
}

impl Cache {
    /// The versions to read ahead for `user_id`'s call of the method at `path`: the epoch and
    /// the names of the coverages their cached reads used lately; no keys when none, when the
    /// method has not read through the cache, when every one is held in the process
    /// (`super::held`), or without Redis.
    pub fn ahead_keys(&self, user_id: Uuid, path: &str) -> AheadKeys {
        let generation = self.inner.held.generation();
        let read_at = Instant::now();
        let reads = self.reading_methods().contains(path);
        let names = match (&self.inner.redis, reads, self.inner.ahead.get(&user_id)) {
            (Some(_), true, Some(names)) if self.inner.held.get(&names, read_at).is_none() => names,
            _ => Arc::from(Vec::new()),
        };
        let keys = match &self.inner.redis {
            Some(redis) if !names.is_empty() => {
                names.iter().map(|name| version_key(redis, name)).collect()
            }
            _ => Vec::new(),
        };
        AheadKeys {
            names,
            generation,
            read_at,
            keys,
        }
    }

    /// Remembers that `user_id` read an answer covering `coverage`: its versions will be read
    /// ahead of the user's next calls. Cheap when they already are.
    /// `path`, when known, is the method's: its later calls read versions ahead.
    pub fn learn(&self, user_id: Uuid, coverage: &Coverage, path: Option<&str>) {
        if self.inner.redis.is_none() {
            return;
        }
        if let Some(path) = path
            && !self.reading_methods().contains(path)
        {
            self.inner
                .reading_methods
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(path.to_owned());
        }
        let known = self.inner.ahead.get(&user_id);
        if let Some(names) = merged(known.as_deref(), coverage.names()) {
            self.inner.ahead.insert(user_id, Arc::from(names));
        }
    }
}

/// The HTTP path of the call, put in the request's extensions by the authentication layer, so
/// that a cached read can record its method ([`Cache::learn`]).
#[derive(Debug, Clone)]
pub struct CallPath(pub Arc<str>);

impl Cache {
    /// The methods (HTTP paths) that have read through the cache in this process.
    fn reading_methods(&self) -> RwLockReadGuard<'_, HashSet<String>> {
        // A set of names is consistent after any panic.
        self.inner
            .reading_methods
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The names to remember after a read covering `wanted`, given those `known`: `None` when
/// nothing changes; else the epoch, `wanted`, then the known ones, at most
/// [`NAMES_PER_USER`] besides the epoch.
fn merged(known: Option<&[String]>, wanted: Vec<String>) -> Option<Vec<String>> {
    let known = known.unwrap_or_default();
    if !known.is_empty() && wanted.iter().all(|name| known.contains(name)) {
        return None;
    }
    let mut names = vec![EPOCH.to_owned()];
    for name in wanted.iter().chain(known) {
        if names.len() > NAMES_PER_USER {
            break;
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn values_count_only_when_every_one_was_read() {
        let keys = AheadKeys {
            names: Arc::from(vec!["epoch".to_owned(), "all".to_owned()]),
            generation: 0,
            read_at: Instant::now(),
            keys: vec!["p:cv:epoch".to_owned(), "p:cv:all".to_owned()],
        };
        let read = keys.read(&[Some(3), Some(7)]).expect("both read");
        assert_eq!((read.get("epoch"), read.get("all")), (Some(3), Some(7)));
        assert_eq!(read.get("site:x"), None);
        assert!(keys.read(&[Some(3), None]).is_none());
        assert!(keys.read(&[Some(3)]).is_none());
        assert!(keys.read(&[]).is_none());
    }

    #[test]
    fn nothing_is_learned_without_redis() {
        let cache = Cache::in_process();
        cache.learn(site(1), &Coverage::Everything, Some("/p/M"));
        assert!(cache.ahead_keys(site(1), "/p/M").keys.is_empty());
    }

    #[test]
    fn learned_names_keep_the_epoch_first_the_latest_next_and_stay_bounded() {
        let all = Coverage::Everything.names();
        let first = merged(None, all.clone()).expect("learned");
        assert_eq!(first, ["epoch", "all"]);
        assert_eq!(merged(Some(&first), all), None, "known: unchanged");
        let mut known = first;
        for n in 1..=20 {
            let next = merged(Some(&known), Coverage::sites(vec![site(n)]).names());
            known = next.expect("a new site is learned");
            assert_eq!(known[0], "epoch");
            assert_eq!(known[1], format!("site:{}", site(n)));
            assert!(known.len() <= NAMES_PER_USER + 1);
        }
        assert_eq!(known.len(), NAMES_PER_USER + 1);
        assert!(!known.contains(&"all".to_owned()), "the oldest name went");
        let pair = Coverage::sites(vec![site(19), site(20)]).names();
        assert_eq!(merged(Some(&known), pair), None);
    }
}
