//! Password hashing with argon2id, off the async runtime and bounded in parallelism (each hash
//! takes ~19 MiB and tens of milliseconds: a login flood must not exhaust memory or threads).

use std::sync::{Arc, LazyLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

/// Shortest and longest accepted passwords (in characters). The upper bound caps hashing cost.
pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 128;

static HASHING: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(Semaphore::new(parallelism * 2))
});

/// A hash compared when the account does not exist, so that "no such user" and "wrong
/// password" take the same time.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_blocking("not-a-real-password"));

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordPolicyError {
    #[error("must be at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("must be at most {MAX_LENGTH} characters")]
    TooLong,
}

/// Checks a new password against the policy (length only: long passphrases beat rules).
pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        Err(PasswordPolicyError::TooShort)
    } else if length > MAX_LENGTH {
        Err(PasswordPolicyError::TooLong)
    } else {
        Ok(())
    }
}

fn hash_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail on a bounded input")
        .to_string()
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

pub async fn hash(password: String) -> anyhow::Result<String> {
    let _permit = HASHING.clone().acquire_owned().await?;
    Ok(tokio::task::spawn_blocking(move || hash_blocking(&password)).await?)
}

/// Verifies `password` against `hash`; with no hash (unknown account or no password set) it
/// still spends the time of a verification and answers false.
pub async fn verify(password: String, hash: Option<String>) -> anyhow::Result<bool> {
    let _permit = HASHING.clone().acquire_owned().await?;
    Ok(tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_blocking(&password, &hash),
        None => {
            verify_blocking(&password, &DUMMY_HASH);
            false
        }
    })
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let first = hash("correct horse battery".into()).await.unwrap();
        let second = hash("correct horse battery".into()).await.unwrap();
        assert_ne!(first, second, "salted");
        assert!(first.starts_with("$argon2id$"));
        assert!(
            verify("correct horse battery".into(), Some(first.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify("wrong horse battery".into(), Some(first))
                .await
                .unwrap()
        );
        assert!(!verify("anything".into(), None).await.unwrap());
        assert!(!verify("x".into(), Some("not a hash".into())).await.unwrap());
    }

    #[test]
    fn policy_bounds_length() {
        assert_eq!(check_policy("short"), Err(PasswordPolicyError::TooShort));
        assert_eq!(
            check_policy(&"x".repeat(129)),
            Err(PasswordPolicyError::TooLong)
        );
        assert_eq!(check_policy("assez-long-mot"), Ok(()));
    }
}
