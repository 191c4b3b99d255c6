//! What the read cache holds, by kind, and how long each kind lives.
//!
//! Decisions:
//! - The kinds and their lifetimes are the seed's palette: permissions 5 min, arrears 10 min,
//!   missions 5 min, performance 1 h, tenants 30 min, sites 1 h, good payers 1 h, rankings
//!   1 h, statistics 1 h. Each is configurable (`AKIG_CACHE_TTL_<KIND>_SECS`, seconds; 0
//!   turns the kind's caching off).
//! - The lifetime bounds staleness only for changes the server does not announce (a job's
//!   work, plain SQL); the writes of the API move site versions after their commit
//!   (`crate::cache::Cache::written`), so their effect is visible at the next read.

use std::time::Duration;

/// A kind of cached read. Its name is the first segment of its keys and the `kind` label of
/// the cache metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheKind {
    Permissions,
    Arrears,
    Missions,
    Performance,
    Tenants,
    Sites,
    GoodPayers,
    Rankings,
    Statistics,
}

impl CacheKind {
    pub const ALL: [CacheKind; 9] = [
        CacheKind::Permissions,
        CacheKind::Arrears,
        CacheKind::Missions,
        CacheKind::Performance,
        CacheKind::Tenants,
        CacheKind::Sites,
        CacheKind::GoodPayers,
        CacheKind::Rankings,
        CacheKind::Statistics,
    ];

    /// The key segment and metric label, e.g. `good_payers`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Permissions => "permissions",
            CacheKind::Arrears => "arrears",
            CacheKind::Missions => "missions",
            CacheKind::Performance => "performance",
            CacheKind::Tenants => "tenants",
            CacheKind::Sites => "sites",
            CacheKind::GoodPayers => "good_payers",
            CacheKind::Rankings => "rankings",
            CacheKind::Statistics => "statistics",
        }
    }

    /// The seed's lifetime of the kind.
    pub fn default_ttl(self) -> Duration {
        let minutes = match self {
            CacheKind::Permissions | CacheKind::Missions => 5,
            CacheKind::Arrears => 10,
            CacheKind::Tenants => 30,
            CacheKind::Performance
            | CacheKind::Sites
            | CacheKind::GoodPayers
            | CacheKind::Rankings
            | CacheKind::Statistics => 60,
        };
        Duration::from_secs(minutes * 60)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The lifetime of each kind of cached read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    ttls: [Duration; 9],
}

impl Default for CacheConfig {
    /// The seed's palette ([`CacheKind::default_ttl`]).
    fn default() -> Self {
        Self {
            ttls: CacheKind::ALL.map(CacheKind::default_ttl),
        }
    }
}

impl CacheConfig {
    /// How long an entry of `kind` lives; zero: the kind is not cached.
    pub fn ttl(&self, kind: CacheKind) -> Duration {
        self.ttls[kind.index()]
    }

    /// Sets the lifetime of `kind` (zero turns its caching off).
    pub fn set_ttl(&mut self, kind: CacheKind, ttl: Duration) {
        self.ttls[kind.index()] = ttl;
    }

    /// The palette with the overrides found by `var` (`AKIG_CACHE_TTL_<KIND>_SECS`, whole
    /// seconds). Errors name the variable whose value is not a number of seconds.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, (&'static str, String)> {
        let mut config = Self::default();
        for kind in CacheKind::ALL {
            let name = Self::var_name(kind);
            if let Some(value) = var(name) {
                let secs: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| (name, format!("not a number of seconds: {value:?}")))?;
                config.set_ttl(kind, Duration::from_secs(secs));
            }
        }
        Ok(config)
    }

    /// `AKIG_CACHE_TTL_GOOD_PAYERS_SECS` for [`CacheKind::GoodPayers`].
    pub fn var_name(kind: CacheKind) -> &'static str {
        match kind {
            CacheKind::Permissions => "AKIG_CACHE_TTL_PERMISSIONS_SECS",
            CacheKind::Arrears => "AKIG_CACHE_TTL_ARREARS_SECS",
            CacheKind::Missions => "AKIG_CACHE_TTL_MISSIONS_SECS",
            CacheKind::Performance => "AKIG_CACHE_TTL_PERFORMANCE_SECS",
            CacheKind::Tenants => "AKIG_CACHE_TTL_TENANTS_SECS",
            CacheKind::Sites => "AKIG_CACHE_TTL_SITES_SECS",
            CacheKind::GoodPayers => "AKIG_CACHE_TTL_GOOD_PAYERS_SECS",
            CacheKind::Rankings => "AKIG_CACHE_TTL_RANKINGS_SECS",
            CacheKind::Statistics => "AKIG_CACHE_TTL_STATISTICS_SECS",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_is_the_seeds() {
        let config = CacheConfig::default();
        assert_eq!(config.ttl(CacheKind::Permissions), Duration::from_secs(300));
        assert_eq!(config.ttl(CacheKind::Arrears), Duration::from_secs(600));
        assert_eq!(config.ttl(CacheKind::Missions), Duration::from_secs(300));
        assert_eq!(config.ttl(CacheKind::Tenants), Duration::from_secs(1800));
        for kind in [
            CacheKind::Performance,
            CacheKind::Sites,
            CacheKind::GoodPayers,
            CacheKind::Rankings,
            CacheKind::Statistics,
        ] {
            assert_eq!(config.ttl(kind), Duration::from_secs(3600), "{kind:?}");
        }
    }

    #[test]
    fn variables_override_and_bad_values_name_the_variable() {
        let config = CacheConfig::from_vars(|name| {
            (name == "AKIG_CACHE_TTL_GOOD_PAYERS_SECS").then(|| "42".to_owned())
        })
        .expect("valid");
        assert_eq!(config.ttl(CacheKind::GoodPayers), Duration::from_secs(42));
        assert_eq!(config.ttl(CacheKind::Rankings), Duration::from_secs(3600));
        for kind in CacheKind::ALL {
            let name = CacheConfig::var_name(kind);
            assert_eq!(
                name,
                format!("AKIG_CACHE_TTL_{}_SECS", kind.as_str().to_ascii_uppercase())
            );
        }
        let (name, _) = CacheConfig::from_vars(|name| {
            (name == "AKIG_CACHE_TTL_RANKINGS_SECS").then(|| "1h".to_owned())
        })
        .unwrap_err();
        assert_eq!(name, "AKIG_CACHE_TTL_RANKINGS_SECS");
    }
}
