//! Token and session settings (`AKIG_JWT_*`, `AKIG_*_TTL_SECS`; read by `crate::config`).

use std::time::Duration;

use crate::auth::tokens::TokenKeys;

/// The keys that sign and verify tokens, and the lifetimes of tokens and sessions.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub keys: TokenKeys,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_max_ttl: Duration,
    pub refresh_grace: Duration,
}
