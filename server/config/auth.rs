//! Token settings.

use std::time::Duration;

use clap::Args;

use crate::auth::config::AuthConfig;
use crate::auth::tokens::TokenKeys;
use crate::setting::{self as check, ConfigError};

/// Token settings.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Token keys as `kid=base64secret` pairs, comma separated (secrets of 32 bytes or more).
    /// Several keys let tokens signed with an older key verify during a rotation. Unset: a
    /// random key per process (development only: tokens die with the process).
    #[arg(long, env = "AKIG_JWT_KEYS", hide_env_values = true)]
    pub jwt_keys: Option<String>,

    /// The `kid` of the key that signs new tokens (default: the only key, when there is one).
    #[arg(long, env = "AKIG_JWT_SIGNING_KID")]
    pub jwt_signing_kid: Option<String>,

    #[arg(long, env = "AKIG_JWT_ISSUER", default_value = "akig")]
    pub jwt_issuer: String,

    #[arg(long, env = "AKIG_JWT_AUDIENCE", default_value = "akig-api")]
    pub jwt_audience: String,

    /// Lifetime of an access token, in seconds (24 h); at most the refresh token's.
    #[arg(long, env = "AKIG_ACCESS_TOKEN_TTL_SECS", default_value_t = 24 * 3600)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of a refresh token from its issue, in seconds (14 days).
    #[arg(long, env = "AKIG_REFRESH_TOKEN_TTL_SECS", default_value_t = 14 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    /// Absolute lifetime of a session (a refresh-token family) from login, in seconds (30 days).
    #[arg(long, env = "AKIG_SESSION_MAX_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub session_max_ttl_secs: u64,

    /// A refresh token reused within this many seconds of its rotation is taken as a retry
    /// after a lost response and gets the same new pair; later, as theft.
    #[arg(long, env = "AKIG_REFRESH_GRACE_SECS", default_value_t = 30)]
    pub refresh_grace_secs: u64,
}

impl AuthArgs {
    pub fn parse(&self) -> Result<AuthConfig, ConfigError> {
        let keys = match self.jwt_keys.as_deref().map(str::trim) {
            None | Some("") => {
                tracing::warn!(
                    "AKIG_JWT_KEYS unset: signing with a random key; tokens end with this process"
                );
                TokenKeys::ephemeral(&self.jwt_issuer, &self.jwt_audience)
            }
            Some(keys) => {
                let signing_kid = match &self.jwt_signing_kid {
                    Some(kid) => kid.clone(),
                    None => match keys.split(',').filter(|p| !p.trim().is_empty()).count() {
                        1 => keys.split('=').next().unwrap_or_default().trim().to_owned(),
                        _ => {
                            return Err(ConfigError::new(
                                "AKIG_JWT_SIGNING_KID",
                                "required when AKIG_JWT_KEYS holds several keys",
                            ));
                        }
                    },
                };
                TokenKeys::parse(keys, &signing_kid, &self.jwt_issuer, &self.jwt_audience)
                    .map_err(|e| ConfigError::new("AKIG_JWT_KEYS", e.to_string()))?
            }
        };
        let seconds = check::seconds;
        let config = AuthConfig {
            keys,
            access_token_ttl: seconds("AKIG_ACCESS_TOKEN_TTL_SECS", self.access_token_ttl_secs)?,
            refresh_token_ttl: seconds("AKIG_REFRESH_TOKEN_TTL_SECS", self.refresh_token_ttl_secs)?,
            session_max_ttl: seconds("AKIG_SESSION_MAX_TTL_SECS", self.session_max_ttl_secs)?,
            refresh_grace: Duration::from_secs(self.refresh_grace_secs),
        };
        // An access token outliving the refresh token, and so the session it came from,
        // would keep a logged-out or expired session calling.
        if config.access_token_ttl > config.refresh_token_ttl {
            return Err(ConfigError::new(
                "AKIG_ACCESS_TOKEN_TTL_SECS",
                "must be at most AKIG_REFRESH_TOKEN_TTL_SECS",
            ));
        }
        if config.session_max_ttl < config.refresh_token_ttl {
            return Err(ConfigError::new(
                "AKIG_SESSION_MAX_TTL_SECS",
                "must be at least AKIG_REFRESH_TOKEN_TTL_SECS",
            ));
        }
        Ok(config)
    }
}
