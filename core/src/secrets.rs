//! Encryption of secrets at rest (SIP passwords, later plugin secrets) and token hashing.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Stored ciphertexts start with this so the format can evolve.
const FORMAT_V1: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key must be {KEY_LEN} bytes of base64")]
    BadKey,
    #[error("stored secret is malformed")]
    Malformed,
    #[error("stored secret cannot be decrypted with this key (was secret_key changed?)")]
    Decrypt,
    #[error("cannot read or create the secret key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
}

/// Authenticated encryption with a key held only by the server.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox([key redacted])")
    }
}

impl SecretBox {
    pub fn from_base64(key: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD.decode(key.trim()).map_err(|_| SecretError::BadKey)?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if bytes.len() != KEY_LEN {
            return Err(SecretError::BadKey);
        }
        Ok(Self {
            cipher: XChaCha20Poly1305::new_from_slice(bytes).map_err(|_| SecretError::BadKey)?,
        })
    }

    /// A fresh random key, and its base64 form (what `secret.key` and `secret_key` hold).
    pub fn generate() -> (Self, String) {
        let mut key = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut key);
        let encoded = STANDARD.encode(key);
        let made = Self::from_bytes(&key).expect("a key of the right length");
        (made, encoded)
    }

    /// Reads `<dir>/secret.key`, creating it with a fresh random key (mode 0600) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, SecretError> {
        let path = dir.join("secret.key");
        let io_err = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_LEN];
                rand::rng().fill_bytes(&mut key);
                write_private(&path, STANDARD.encode(key).as_bytes()).map_err(io_err)?;
                Self::from_bytes(&key)
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. tenant and row id) so that a
    /// ciphertext copied to another row does not decrypt.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        format!(
            "{FORMAT_V1}:{}:{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ciphertext)
        )
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SecretError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(FORMAT_V1), Some(nonce), Some(ciphertext)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SecretError::Malformed);
        };
        let nonce = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| SecretError::Malformed)?;
        let ciphertext = URL_SAFE_NO_PAD.decode(ciphertext).map_err(|_| SecretError::Malformed)?;
        if nonce.len() != NONCE_LEN {
            return Err(SecretError::Malformed);
        }
        let plaintext = self
            .cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plaintext).map_err(|_| SecretError::Malformed)
    }
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// A new high-entropy API token: `monti_` + 43 characters of base64url (256 bits).
pub fn new_api_token() -> String {
    format!("monti_{}", random_secret())
}

/// 256 random bits as 43 characters of base64url: session cookies, CSRF tokens, one-time links.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Tokens carry 256 bits of entropy, so a fast hash is enough: nothing can be brute-forced, and
/// lookup by hash stays a single indexed query.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_box() -> SecretBox {
        SecretBox::from_bytes(&[7u8; KEY_LEN]).unwrap()
    }

    #[test]
    fn seal_and_open_round_trip() {
        let b = test_box();
        let sealed = b.seal("s3cret!", "tenant-a/ep-1");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(b.open(&sealed, "tenant-a/ep-1").unwrap(), "s3cret!");
    }

    #[test]
    fn ciphertext_is_bound_to_its_context() {
        let b = test_box();
        let sealed = b.seal("s3cret!", "tenant-a/ep-1");
        assert!(matches!(b.open(&sealed, "tenant-b/ep-1"), Err(SecretError::Decrypt)));
    }

    #[test]
    fn malformed_ciphertexts_are_errors_not_panics() {
        let b = test_box();
        for bad in ["", "v1", "v1:abc", "v2:a:b", "v1:!!:??", "v1:AAAA:AAAA"] {
            assert!(b.open(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!(SecretBox::from_base64("short").is_err());
        assert!(SecretBox::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert!(SecretBox::from_base64(&STANDARD.encode([1u8; 32])).is_ok());
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load_or_create(dir.path()).unwrap();
        let sealed = a.seal("x", "c");
        let b = SecretBox::load_or_create(dir.path()).unwrap();
        assert_eq!(b.open(&sealed, "c").unwrap(), "x");
    }

    #[test]
    fn tokens_are_unique_and_hashes_stable() {
        let t1 = new_api_token();
        let t2 = new_api_token();
        assert_ne!(t1, t2);
        assert!(t1.starts_with("monti_") && t1.len() == 6 + 43);
        assert_eq!(hash_token(&t1), hash_token(&t1));
        assert_eq!(hash_token(&t1).len(), 64);
    }
}
