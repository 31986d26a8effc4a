//! Passwords: argon2id over the SHA-512 hex of the plaintext, so a client that sends
//! only that digest (ZStack) is checked against the same hash, and nothing weaker than
//! argon2id is kept.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha512};

use crate::error::CoreError;
use crate::random::{hex, random_bytes, RandomSource};

/// A password as a client sends it.
#[derive(Clone)]
pub enum Password {
    Plain(String),
    /// Lower- or upper-case hex of SHA-512(plaintext).
    Sha512Hex(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Plaintext, the common case.
impl From<&str> for Password {
    fn from(p: &str) -> Self {
        Password::Plain(p.to_string())
    }
}

impl From<String> for Password {
    fn from(p: String) -> Self {
        Password::Plain(p)
    }
}

impl Password {
    fn prehashed(&self) -> String {
        match self {
            Password::Plain(p) => hex(&Sha512::digest(p.as_bytes())),
            Password::Sha512Hex(h) => h.trim().to_ascii_lowercase(),
        }
    }
}

pub fn hash_password(rng: &dyn RandomSource, password: &Password) -> Result<String, CoreError> {
    let salt_bytes = random_bytes(rng, 16);
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| CoreError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.prehashed().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Internal(e.to_string()))
}

/// Constant-time (argon2 compares digests in constant time).
pub fn verify_password(hash: &str, password: &Password) -> bool {
    let prehashed = password.prehashed();
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(prehashed.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// An argon2id hash of a random password: verifying against it costs as much as a real
/// check, so unknown usernames take as long as wrong passwords.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(
            &crate::random::OsRandom,
            &Password::Plain("no user has this password".into()),
        )
        .expect("argon2 hashing with default parameters")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn passwords() {
        let rng = SeededRandom::new(3);
        let plain = |p: &str| Password::Plain(p.into());
        let h = hash_password(&rng, &plain("hunter2")).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, &plain("hunter2")));
        assert!(!verify_password(&h, &plain("hunter3")));
        assert!(!verify_password("garbage", &plain("hunter2")));
        // What ZStack clients send: SHA-512 hex of the plaintext, in either case.
        let digest = hex(&Sha512::digest(b"hunter2"));
        assert!(verify_password(
            &h,
            &Password::Sha512Hex(digest.to_uppercase())
        ));
        assert!(!verify_password(&h, &Password::Sha512Hex("hunter2".into())));
    }
}
