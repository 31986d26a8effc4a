//! Secrets at rest (AES-256-GCM), hashed tokens (SHA-256) and passwords (argon2id).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};
use std::io::Write;
use std::path::Path;

use crate::error::CoreError;
use crate::random::{hex, random_bytes, RandomSource};

const NONCE_LEN: usize = 12;

/// Seals and opens secrets with the master key. The row id is bound in as associated
/// data, so a sealed secret copied into another row does not open.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> Self {
        SecretBox {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    pub fn seal(&self, rng: &dyn RandomSource, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = random_bytes(rng, NONCE_LEN);
        let mut out = nonce.clone();
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short buffer cannot fail");
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, CoreError> {
        if sealed.len() < NONCE_LEN {
            return Err(CoreError::Internal("sealed secret too short".into()));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CoreError::Internal("cannot decrypt secret: wrong master key?".into()))
    }
}

/// Parses a 32-byte key given as 64 hex digits or as base64.
pub fn parse_key(text: &str) -> Result<[u8; 32], CoreError> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| CoreError::InvalidInput(e.to_string()))?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| {
                CoreError::InvalidInput("key is neither 64 hex digits nor base64".into())
            })?
    };
    bytes
        .try_into()
        .map_err(|_| CoreError::InvalidInput("key must be 32 bytes".into()))
}

/// Reads a key file, or creates it (mode 0600) with a fresh random key.
pub fn load_or_create_key_file(path: &Path, rng: &dyn RandomSource) -> Result<[u8; 32], CoreError> {
    let io = |e: std::io::Error| CoreError::Internal(format!("key file {}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let key: [u8; 32] = random_bytes(rng, 32).try_into().expect("32 bytes");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            file.write_all(hex(&key).as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// Hash of a high-entropy token (challenge id, refresh token, session id) for storage.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A password as a client sends it. Stored hashes are argon2id over the SHA-512 hex of
/// the plaintext, so a client that sends only that digest (ZStack) is checked against
/// the same hash, and nothing weaker than argon2id is kept.
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
    fn seal_roundtrip_and_binding() {
        let rng = SeededRandom::new(1);
        let sb = SecretBox::new(&[7u8; 32]);
        let sealed = sb.seal(&rng, "row-1", b"secret");
        assert_eq!(sb.open("row-1", &sealed).unwrap(), b"secret");
        assert!(sb.open("row-2", &sealed).is_err(), "bound to its row");
        assert!(
            SecretBox::new(&[8u8; 32]).open("row-1", &sealed).is_err(),
            "wrong key"
        );
        assert!(
            !sealed.windows(6).any(|w| w == b"secret"),
            "ciphertext hides plaintext"
        );
    }

    #[test]
    fn key_parsing() {
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        let b64 = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        assert_eq!(parse_key(&b64).unwrap(), [3; 32]);
        assert!(parse_key("short").is_err());
    }

    #[test]
    fn key_file_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let rng = SeededRandom::new(2);
        let k1 = load_or_create_key_file(&path, &rng).unwrap();
        let k2 = load_or_create_key_file(&path, &rng).unwrap();
        assert_eq!(k1, k2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

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
