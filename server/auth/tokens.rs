//! Access tokens (JWT, HS256 pinned, `kid` for key rotation) and opaque refresh tokens.
//!
//! Refresh tokens are random, stored only as SHA-256 hashes. A rotated token's successor is
//! derived from it with HMAC (keyed by the signing key), so a retry of a refresh whose response
//! was lost can be answered with the very same new pair without ever storing a token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The only algorithm accepted: never read from the token itself.
const ALGORITHM: Algorithm = Algorithm::HS256;
const ACCESS_TYPE: &str = "access";
/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 4096;
const MAX_KID_BYTES: usize = 64;
/// Clock skew tolerated on exp/nbf between servers.
const LEEWAY_SECS: u64 = 30;
const REFRESH_PREFIX: &str = "rt1.";

/// Verification keys by `kid`, and which one signs.
#[derive(Clone)]
pub struct TokenKeys {
    signing_kid: String,
    secrets: HashMap<String, Vec<u8>>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("TokenKeys")
            .field("signing_kid", &self.signing_kid)
            .field("kids", &self.secrets.keys().collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyConfigError {
    #[error("expected kid=base64secret pairs separated by commas")]
    Malformed,
    #[error("key {0:?}: secret is not base64")]
    NotBase64(String),
    #[error("key {0:?}: secret must be at least 32 bytes")]
    TooShort(String),
    #[error("signing key {0:?} is not among the configured keys")]
    UnknownSigningKid(String),
}

impl TokenKeys {
    /// Parses `kid=base64secret,kid2=base64secret`.
    pub fn parse(
        keys: &str,
        signing_kid: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, KeyConfigError> {
        let mut secrets = HashMap::new();
        for pair in keys.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, secret) = pair.split_once('=').ok_or(KeyConfigError::Malformed)?;
            let kid = kid.trim();
            if kid.is_empty() || kid.len() > MAX_KID_BYTES {
                return Err(KeyConfigError::Malformed);
            }
            let secret = base64::engine::general_purpose::STANDARD
                .decode(secret.trim())
                .or_else(|_| URL_SAFE_NO_PAD.decode(secret.trim()))
                .map_err(|_| KeyConfigError::NotBase64(kid.to_owned()))?;
            if secret.len() < 32 {
                return Err(KeyConfigError::TooShort(kid.to_owned()));
            }
            secrets.insert(kid.to_owned(), secret);
        }
        if secrets.is_empty() {
            return Err(KeyConfigError::Malformed);
        }
        if !secrets.contains_key(signing_kid) {
            return Err(KeyConfigError::UnknownSigningKid(signing_kid.to_owned()));
        }
        Ok(Self {
            signing_kid: signing_kid.to_owned(),
            secrets,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// A random key for development when none is configured: tokens die with the process.
    pub fn ephemeral(issuer: &str, audience: &str) -> Self {
        let secret: [u8; 32] = rand::random();
        Self {
            signing_kid: "ephemeral".to_owned(),
            secrets: HashMap::from([("ephemeral".to_owned(), secret.to_vec())]),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    fn signing_secret(&self) -> &[u8] {
        &self.secrets[&self.signing_kid]
    }
}

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Token id: the id of the refresh token issued with it.
    pub jti: Uuid,
    /// Session id: the refresh-token family.
    pub sid: Uuid,
    /// Always "access"; refresh tokens are not JWTs at all, this guards against mix-ups.
    pub typ: String,
    /// The user's token version when issued; a bump (password change, role change, disable)
    /// invalidates every token issued before.
    pub ver: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token too long")]
    TooLong,
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("key location headers are not accepted")]
    KeyLocationHeader,
    #[error("unknown key id")]
    UnknownKid,
    /// Genuine (signature checked) but past its `exp`, leeway included: the client should
    /// refresh it.
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("not an access token")]
    WrongType,
}

/// What is needed to sign an access token.
#[derive(Debug, Clone, Copy)]
pub struct AccessGrant {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub token_id: Uuid,
    pub token_version: i32,
    pub issued_at: DateTime<Utc>,
}

impl TokenKeys {
    /// Signs an access token. Deterministic: the same grant gives the same token (used to answer
    /// a refresh retry with the same pair).
    pub fn issue_access(&self, grant: AccessGrant, ttl: Duration) -> (String, DateTime<Utc>) {
        let issued = grant.issued_at.timestamp();
        let expires = issued + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: grant.user_id,
            iat: issued,
            nbf: issued,
            exp: expires,
            jti: grant.token_id,
            sid: grant.session_id,
            typ: ACCESS_TYPE.to_owned(),
            ver: grant.token_version,
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.signing_kid.clone());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(self.signing_secret()),
        )
        .expect("HMAC signing of serialisable claims cannot fail");
        let expires_at = DateTime::from_timestamp(expires, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
        (token, expires_at)
    }

    /// Verifies an access token: algorithm pinned, no key-location headers, known `kid`,
    /// signature, iss, aud, exp, nbf, and the token type.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != ALGORITHM {
            return Err(TokenError::Algorithm);
        }
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
        {
            return Err(TokenError::KeyLocationHeader);
        }
        let secret = header
            .kid
            .as_deref()
            .filter(|kid| kid.len() <= MAX_KID_BYTES)
            .and_then(|kid| self.secrets.get(kid))
            .ok_or(TokenError::UnknownKid)?;
        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<AccessClaims>(
            token,
            &DecodingKey::from_secret(secret),
            &validation,
        )
        .map_err(|e| match e.kind() {
            // Reported only once the signature verified: jsonwebtoken checks it first.
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            kind => TokenError::Invalid(format!("{kind:?}")),
        })?;
        if data.claims.typ != ACCESS_TYPE {
            return Err(TokenError::WrongType);
        }
        Ok(data.claims)
    }

    /// The successor of a refresh token, derived so a retried rotation finds the same one.
    pub fn successor_refresh_token(&self, token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.signing_secret())
            .expect("HMAC accepts any key length");
        mac.update(b"akig refresh rotation\0");
        mac.update(token.as_bytes());
        format!(
            "{REFRESH_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }
}

/// A fresh random refresh token.
pub fn new_refresh_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Most access tokens remembered as verified by [`VerifiedTokens`].
const VERIFIED_CAPACITY: u64 = 20_000;

/// Access tokens already verified by this process, by their text: a call whose token was
/// verified before costs a hash look-up instead of a base64 decode, a JSON parse and an HMAC
/// (a tenth of a WhoAmI call, perf).
///
/// Decisions:
/// - Only what [`TokenKeys::verify_access`] accepted is kept, and its verdict depends on the
///   token's text and this process's keys alone, except for the clock: `exp` is checked again
///   on every use ([`LEEWAY_SECS`] included, as the first check did). `nbf` needs no second
///   check: it had passed, and time only moves forward.
/// - A refused token is not kept: a client cannot fill the map without tokens this server
///   signed. Entries go after an hour at most, the least used first past
///   [`VERIFIED_CAPACITY`].
/// - Whether the token's user and session are still good is not this map's business: the
///   standing is checked on every call (`crate::auth::standing`).
#[derive(Clone)]
pub struct VerifiedTokens {
    keys: TokenKeys,
    verified: moka::sync::Cache<String, Arc<AccessClaims>>,
}

impl VerifiedTokens {
    pub fn new(keys: TokenKeys) -> Self {
        Self {
            keys,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    /// [`TokenKeys::verify_access`], remembered: the same answer for the same token at the
    /// same time.
    pub fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, TokenError> {
        self.verify_at(token, Utc::now().timestamp())
    }

    /// [`VerifiedTokens::verify`] at `now` (seconds since the epoch) for a token verified
    /// before; a token seen for the first time is verified against the system clock.
    fn verify_at(&self, token: &str, now: i64) -> Result<Arc<AccessClaims>, TokenError> {
        if let Some(claims) = self.verified.get(token) {
            let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
            if now > claims.exp.saturating_add(leeway) {
                self.verified.invalidate(token);
                return Err(TokenError::Expired);
            }
            return Ok(claims);
        }
        let claims = Arc::new(self.keys.verify_access(token)?);
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }
}

/// What the database stores of a refresh token.
pub fn refresh_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A refresh token is never accepted where an access token is expected, and the reverse: they
/// do not even share a format.
pub fn looks_like_refresh_token(token: &str) -> bool {
    token.starts_with(REFRESH_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        let secret = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let old = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        TokenKeys::parse(&format!("k2={secret},k1={old}"), "k2", "akig", "akig-api").unwrap()
    }

    fn grant() -> AccessGrant {
        AccessGrant {
            user_id: Uuid::from_u128(1),
            session_id: Uuid::from_u128(2),
            token_id: Uuid::from_u128(3),
            token_version: 4,
            issued_at: Utc::now(),
        }
    }

    fn encode_raw(header: &Header, claims: &serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn a_verified_token_is_remembered_until_it_expires() {
        let keys = keys();
        let verified = VerifiedTokens::new(keys.clone());
        let (token, expires_at) = keys.issue_access(grant(), Duration::from_secs(60));
        let claims = verified.verify(&token).expect("fresh token");
        assert_eq!(claims.sub, grant().user_id);
        assert_eq!(
            verified.verified.get(&token).map(|c| c.jti),
            Some(grant().token_id)
        );
        // Remembered, the expiry still counts, with the same leeway.
        let exp = expires_at.timestamp();
        let leeway = i64::try_from(LEEWAY_SECS).unwrap();
        assert!(verified.verify_at(&token, exp + leeway).is_ok());
        assert_eq!(
            verified.verify_at(&token, exp + leeway + 1).err(),
            Some(TokenError::Expired)
        );
        // A refused token is not remembered; a forged one stays refused.
        let forged = format!("{token}x");
        assert!(verified.verify(&forged).is_err());
        assert!(verified.verified.get(&forged).is_none());
        assert!(verified.verify(&forged).is_err());
    }

    fn claims_json(keys: &TokenKeys) -> serde_json::Value {
        let now = Utc::now().timestamp();
        serde_json::json!({
            "iss": keys.issuer, "aud": keys.audience, "sub": Uuid::from_u128(1),
            "iat": now, "nbf": now, "exp": now + 600, "jti": Uuid::from_u128(3),
            "sid": Uuid::from_u128(2), "typ": "access", "ver": 0
        })
    }

    #[test]
    fn only_a_genuine_expired_token_is_expired() {
        let keys = keys();
        let mut claims = claims_json(&keys);
        claims["exp"] = (Utc::now().timestamp() - 3600).into();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k2".into());
        assert_eq!(
            keys.verify_access(&encode_raw(&header, &claims, &[7u8; 32])),
            Err(TokenError::Expired)
        );
        let forged = encode_raw(&header, &claims, &[8u8; 32]);
        assert_eq!(
            keys.verify_access(&forged),
            Err(TokenError::Invalid("InvalidSignature".into()))
        );
    }

    #[test]
    fn issued_tokens_verify_and_are_deterministic() {
        let keys = keys();
        let grant = grant();
        let (token, _) = keys.issue_access(grant, Duration::from_secs(600));
        let (again, _) = keys.issue_access(grant, Duration::from_secs(600));
        assert_eq!(token, again);
        let claims = keys.verify_access(&token).unwrap();
        assert_eq!(claims.sub, grant.user_id);
        assert_eq!(claims.ver, 4);
    }

    #[test]
    fn tokens_signed_with_a_rotated_out_but_configured_key_verify() {
        let keys = keys();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let token = encode_raw(&header, &claims_json(&keys), &[9u8; 32]);
        assert!(keys.verify_access(&token).is_ok());
    }

    #[test]
    fn hostile_tokens_are_refused() {
        let keys = keys();
        let claims = claims_json(&keys);
        let with_kid = |kid: &str| {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(kid.into());
            header
        };
        // alg none: header {"alg":"none"} with an empty signature.
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k2"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert!(
            keys.verify_access(&format!("{none_header}.{payload}."))
                .is_err()
        );
        // Wrong secret, unknown kid, hostile kid, no kid.
        assert_eq!(
            keys.verify_access(&encode_raw(&with_kid("k2"), &claims, &[1u8; 32])),
            Err(TokenError::Invalid("InvalidSignature".into()))
        );
        let unknown = encode_raw(&with_kid("k9"), &claims, &[7u8; 32]);
        assert_eq!(keys.verify_access(&unknown), Err(TokenError::UnknownKid));
        let hostile = encode_raw(&with_kid("../../etc/passwd"), &claims, &[7u8; 32]);
        assert_eq!(keys.verify_access(&hostile), Err(TokenError::UnknownKid));
        let no_kid = encode_raw(&Header::new(Algorithm::HS256), &claims, &[7u8; 32]);
        assert_eq!(keys.verify_access(&no_kid), Err(TokenError::UnknownKid));
        // jku header.
        let mut jku = with_kid("k2");
        jku.jku = Some("https://attacker.example/jwks.json".into());
        assert_eq!(
            keys.verify_access(&encode_raw(&jku, &claims, &[7u8; 32])),
            Err(TokenError::KeyLocationHeader)
        );
        // Another algorithm.
        let hs512 = Header {
            kid: Some("k2".into()),
            ..Header::new(Algorithm::HS512)
        };
        assert_eq!(
            keys.verify_access(&encode_raw(&hs512, &claims, &[7u8; 32])),
            Err(TokenError::Algorithm)
        );
        // Tampered payload keeps the old signature.
        let token = encode_raw(&with_kid("k2"), &claims, &[7u8; 32]);
        let parts: Vec<&str> = token.split('.').collect();
        let mut tampered = claims.clone();
        tampered["sub"] = serde_json::json!(Uuid::from_u128(99));
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(tampered.to_string()),
            parts[2]
        );
        assert!(keys.verify_access(&forged).is_err());
        // Garbage.
        assert_eq!(keys.verify_access("not.a.jwt"), Err(TokenError::Malformed));
        assert_eq!(
            keys.verify_access(&"a".repeat(5000)),
            Err(TokenError::TooLong)
        );
    }

    #[test]
    fn claims_are_checked() {
        let keys = keys();
        let with = |field: &str, value: serde_json::Value| {
            let mut claims = claims_json(&keys);
            claims[field] = value;
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("k2".into());
            encode_raw(&header, &claims, &[7u8; 32])
        };
        let now = Utc::now().timestamp();
        assert!(
            keys.verify_access(&with("exp", (now - 3600).into()))
                .is_err()
        );
        assert!(
            keys.verify_access(&with("nbf", (now + 3600).into()))
                .is_err()
        );
        assert!(keys.verify_access(&with("aud", "other".into())).is_err());
        assert!(keys.verify_access(&with("iss", "other".into())).is_err());
        assert_eq!(
            keys.verify_access(&with("typ", "refresh".into())),
            Err(TokenError::WrongType)
        );
        let mut missing_aud = claims_json(&keys);
        missing_aud.as_object_mut().unwrap().remove("aud");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k2".into());
        assert!(
            keys.verify_access(&encode_raw(&header, &missing_aud, &[7u8; 32]))
                .is_err()
        );
    }

    #[test]
    fn refresh_tokens_are_opaque_and_successors_deterministic() {
        let keys = keys();
        let token = new_refresh_token();
        assert!(looks_like_refresh_token(&token));
        assert_ne!(token, new_refresh_token());
        assert_eq!(
            keys.successor_refresh_token(&token),
            keys.successor_refresh_token(&token)
        );
        assert_ne!(keys.successor_refresh_token(&token), token);
        assert_eq!(refresh_token_hash(&token).len(), 32);
        assert!(
            keys.verify_access(&token).is_err(),
            "a refresh token is not an access token"
        );
    }

    #[test]
    fn key_configuration_is_validated() {
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 8]);
        assert_eq!(
            TokenKeys::parse(&format!("a={short}"), "a", "i", "a").unwrap_err(),
            KeyConfigError::TooShort("a".into())
        );
        let ok = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert_eq!(
            TokenKeys::parse(&format!("a={ok}"), "b", "i", "a").unwrap_err(),
            KeyConfigError::UnknownSigningKid("b".into())
        );
        assert!(TokenKeys::parse("garbage", "a", "i", "a").is_err());
        let debug = format!(
            "{:?}",
            TokenKeys::parse(&format!("a={ok}"), "a", "i", "a").unwrap()
        );
        assert!(!debug.contains(&ok));
    }
}
