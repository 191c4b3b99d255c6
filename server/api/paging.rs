//! Page tokens of list RPCs, one dialect for all: a token is base64url of
//! `check|part|part...`, where the parts are the position of the last row sent (a keyset cursor
//! or an offset) and the check a short digest of the request's filters and of those parts.
//!
//! Decisions:
//! - A token only works with the request it was issued for: same filters, same order. Any other
//!   token — garbage, another list's, another filter's — answers INVALID_ARGUMENT on
//!   `page_token` with ERROR_REASON_PAGE_TOKEN_INVALID, so apps know to start from page one.
//! - A token edited by hand (its position changed) is refused as well: the check covers the
//!   position. It is a digest, not a signature: it guards against edits and corruption, not
//!   against a client who reproduces the digest — who could then only move within the rows the
//!   same request may list anyway.
//! - The last part may contain `|` (a name): parts are read from the left, the rest whole.
//! - Instants travel as Unix microseconds, PostgreSQL's precision.

use std::fmt::{Debug, Display};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::api::convert;
use crate::api::error::ApiError;

/// The page tokens of one list request, tied to its filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pager {
    fingerprint: String,
}

impl Pager {
    /// `filters`: everything that decides which rows the list holds and in which order (the
    /// parsed request without its page size and token), e.g. `("payments", &filter)`.
    pub fn new(filters: &impl Debug) -> Self {
        let digest = Sha256::digest(format!("{filters:?}").as_bytes());
        Self {
            fingerprint: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The token of a page that ends at the position `parts`.
    pub fn token(&self, parts: &[&dyn Display]) -> String {
        let position = parts
            .iter()
            .map(|part| part.to_string())
            .collect::<Vec<_>>()
            .join("|");
        URL_SAFE_NO_PAD.encode(format!("{}|{position}", self.check(&position)))
    }

    /// The check of a token holding `position`: the filters' fingerprint and the position,
    /// digested.
    fn check(&self, position: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.fingerprint.as_bytes());
        hasher.update(b"|");
        hasher.update(position.as_bytes());
        hasher.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The position a token carries (`None` for an empty token: the first page), read by
    /// `read`, which answers `None` for a position it cannot read. Every fault answers
    /// [`invalid_token`].
    pub fn position<T>(
        &self,
        token: &str,
        read: impl FnOnce(&mut Parts<'_>) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        if token.is_empty() {
            return Ok(None);
        }
        let text = URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid_token)?;
        let (check, rest) = text.split_once('|').ok_or_else(invalid_token)?;
        if check != self.check(rest) {
            return Err(invalid_token());
        }
        let mut parts = Parts { rest: Some(rest) };
        let position = read(&mut parts).ok_or_else(invalid_token)?;
        if parts.rest.is_some() {
            return Err(invalid_token());
        }
        Ok(Some(position))
    }
}

/// The parts of a token's position, read from the left.
#[derive(Debug)]
pub struct Parts<'a> {
    rest: Option<&'a str>,
}

impl<'a> Parts<'a> {
    /// The next part.
    pub fn text(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.split_once('|') {
            Some((part, tail)) => {
                self.rest = Some(tail);
                Some(part)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }

    /// Everything left, `|` included: the last part.
    pub fn last(&mut self) -> Option<&'a str> {
        self.rest.take()
    }

    /// The next part, parsed.
    pub fn parse<T: FromStr>(&mut self) -> Option<T> {
        self.text()?.parse().ok()
    }

    /// The next part as an instant written by [`micros`].
    pub fn instant(&mut self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.parse()?)
    }
}

/// An instant as a token part (Unix microseconds).
pub fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// INVALID_ARGUMENT on `page_token`, ERROR_REASON_PAGE_TOKEN_INVALID.
pub fn invalid_token() -> ApiError {
    convert::invalid_page_token()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;
    use uuid::Uuid;

    fn reason(error: ApiError) -> String {
        tonic::Status::from(error)
            .get_details_error_info()
            .map(|info| info.reason)
            .unwrap_or_default()
    }

    /// `token` with `from` replaced by `to` in its text, re-encoded.
    fn edited(token: &str, from: &str, to: &str) -> String {
        let text =
            String::from_utf8(URL_SAFE_NO_PAD.decode(token).expect("base64")).expect("utf-8");
        assert!(text.contains(from));
        URL_SAFE_NO_PAD.encode(text.replace(from, to))
    }

    #[test]
    fn tokens_round_trip_and_are_tied_to_their_filters() {
        let pager = Pager::new(&("payments", Some("cash")));
        let at = DateTime::from_timestamp_micros(1_773_137_000_123_456).expect("valid");
        let id = Uuid::from_u128(7);
        let name = "Diallo | Bah";
        let token = pager.token(&[&micros(at), &id, &name]);
        let read = |parts: &mut Parts<'_>| {
            Some((
                parts.instant()?,
                parts.parse::<Uuid>()?,
                parts.last()?.to_owned(),
            ))
        };
        assert_eq!(
            pager.position(&token, read).expect("valid"),
            Some((at, id, name.to_owned()))
        );
        assert_eq!(pager.position("", read).expect("first page"), None);

        let other = Pager::new(&("payments", None::<&str>));
        for bad in [
            other.position(&token, read).expect_err("other filters"),
            pager.position("@@@", read).expect_err("not base64"),
            pager
                .position(&URL_SAFE_NO_PAD.encode("no separator"), read)
                .expect_err("no fingerprint"),
            pager
                .position(&pager.token(&[&"x", &id, &name]), read)
                .expect_err("bad instant"),
            pager
                .position(&pager.token(&[&1, &2]), |p| p.parse::<i64>())
                .expect_err("parts left over"),
            pager
                .position(&edited(&token, "Diallo | Bah", "Zzz"), read)
                .expect_err("position edited"),
        ] {
            assert_eq!(reason(bad), "ERROR_REASON_PAGE_TOKEN_INVALID");
        }
    }
}
