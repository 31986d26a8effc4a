//! Secrets at rest (AES-256-GCM), the keys behind them, and hashed tokens (SHA-256).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use sha2::{Digest, Sha256};
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
            .map_err(|e| CoreError::InvalidConfig(e.to_string()))?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| {
                CoreError::InvalidConfig("key is neither 64 hex digits nor base64".into())
            })?
    };
    bytes
        .try_into()
        .map_err(|_| CoreError::InvalidConfig("key must be 32 bytes".into()))
}

/// Reads a key file, or creates it (mode 0600) with a fresh random key.
pub fn load_or_create_key_file(path: &Path, rng: &dyn RandomSource) -> Result<[u8; 32], CoreError> {
    let io = |e: std::io::Error| CoreError::Internal(format!("key file {}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                crate::files::private_dir(dir).map_err(io)?;
            }
            let key: [u8; 32] = random_bytes(rng, 32).try_into().expect("32 bytes");
            let mut file = crate::files::private_options()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(io)?;
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
}
