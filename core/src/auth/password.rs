//! Local passwords: argon2id hashes in PHC format, and the rules a new password must meet.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::LazyLock;

/// Shortest password accepted. Length beats composition rules (NIST SP 800-63B).
pub const MIN_LENGTH: usize = 12;
/// Longest accepted: hashing cost grows with input, so cap it.
pub const MAX_LENGTH: usize = 256;

/// OWASP's recommended argon2id settings: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Verified against when an account does not exist, so a failed sign-in takes as long for an
/// unknown email as for a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash("not a real password, only for timing").expect("hashing a constant works"));

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("must be at least {MIN_LENGTH} characters long")]
    TooShort,
    #[error("must be at most {MAX_LENGTH} characters long")]
    TooLong,
    #[error("must not be the same as the email address")]
    SameAsEmail,
    #[error("is too common; choose a passphrase of several words")]
    TooCommon,
    #[error("could not hash the password")]
    Hashing,
}

/// The few passwords people pick first; a full breach list is a job for the IdP.
const COMMON: &[&str] = &[
    "password1234",
    "123456789012",
    "qwertyuiopas",
    "administrator",
    "letmein12345",
    "changeme1234",
    "welcome12345",
    "passwordpassword",
];

/// Checks a new password against the policy.
pub fn check_policy(password: &str, email: &str) -> Result<(), PasswordError> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PasswordError::TooLong);
    }
    if password.eq_ignore_ascii_case(email) {
        return Err(PasswordError::SameAsEmail);
    }
    let lower = password.to_lowercase();
    let first = lower.chars().next();
    if COMMON.contains(&lower.as_str()) || lower.chars().all(|c| Some(c) == first) {
        return Err(PasswordError::TooCommon);
    }
    Ok(())
}

/// Hashes a password with a fresh salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|_| PasswordError::Hashing)?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hashing)
}

/// Checks a password against a stored hash; with no hash, spends the same time and fails.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    if password.len() > MAX_LENGTH * 4 {
        return false;
    }
    let Some(stored) = stored else {
        let _ = verify_against(password, &DUMMY_HASH);
        return false;
    };
    verify_against(password, stored)
}

fn verify_against(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => {
            tracing::error!("a stored password hash is malformed");
            false
        }
    }
}

/// [`hash`] on a blocking thread: hashing takes tens of milliseconds of CPU on purpose.
pub async fn hash_off_thread(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .unwrap_or(Err(PasswordError::Hashing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", Some(&a)));
        assert!(!verify("correct horse batterY", Some(&a)));
        assert!(!verify("anything", None));
        assert!(!verify("anything", Some("not a phc string")));
    }

    #[test]
    fn policy() {
        assert_eq!(check_policy("short", "a@b.c"), Err(PasswordError::TooShort));
        assert_eq!(check_policy(&"x".repeat(300), "a@b.c"), Err(PasswordError::TooLong));
        assert_eq!(check_policy("Password1234", "a@b.c"), Err(PasswordError::TooCommon));
        assert_eq!(check_policy("aaaaaaaaaaaaaa", "a@b.c"), Err(PasswordError::TooCommon));
        assert_eq!(
            check_policy("alice@example.com", "Alice@Example.com"),
            Err(PasswordError::SameAsEmail)
        );
        assert_eq!(check_policy("purple monkey dishwasher", "a@b.c"), Ok(()));
    }
}
