//! Secrets at rest (AES-256-GCM), the keys behind them, and hashed tokens (SHA-256).
//!
//! A sealed value names the master key that sealed it: `0x01 ‖ key id (4 bytes) ‖
//! nonce (12) ‖ ciphertext and tag`, the first five bytes bound in as associated data.
//! Values sealed before key ids existed (`nonce ‖ ciphertext`) still open, with any of
//! the configured keys. So during a rotation the new key seals, the previous keys still
//! open, and [`SecretBox::reseal`] tells which values are not yet under the new key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

use crate::error::CoreError;
use crate::random::{hex, random_bytes, RandomSource};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The first byte of a sealed value that carries its key id.
const VERSION: u8 = 1;
const KID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KID_LEN;

/// The id of a key (master or JWT): the first bytes of a domain-separated SHA-256 of
/// it, which tell keys apart without saying anything useful about them.
fn key_id_bytes(key: &[u8]) -> [u8; KID_LEN] {
    let digest = Sha256::new()
        .chain_update(b"twofa key id\0")
        .chain_update(key)
        .finalize();
    digest[..KID_LEN].try_into().expect("digest is longer")
}

/// A key's id as 8 hex digits (in sealed values, JWT `kid` headers, `twofa keys`).
pub fn key_id(key: &[u8]) -> String {
    hex(&key_id_bytes(key))
}

#[derive(Clone)]
struct MasterKey {
    id: [u8; KID_LEN],
    cipher: Aes256Gcm,
}

/// A value opened by [`SecretBox::open_detailed`].
pub struct Opened {
    pub plaintext: Vec<u8>,
    /// Sealed under the current key, with its key id: nothing for a rotation to do.
    pub current: bool,
}

/// Seals secrets with the current master key and opens them with it or with a previous
/// one. The row id is bound in as associated data, so a sealed secret copied into
/// another row does not open.
#[derive(Clone)]
pub struct SecretBox {
    /// The current key first, then the previous ones.
    keys: Vec<MasterKey>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> Self {
        SecretBox::with_previous(key, &[])
    }

    /// `current` seals; it and every one of `previous` open.
    pub fn with_previous(current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        let keys = std::iter::once(current)
            .chain(previous)
            .map(|key| MasterKey {
                id: key_id_bytes(key),
                cipher: Aes256Gcm::new(key.into()),
            })
            .collect();
        SecretBox { keys }
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> String {
        hex(&self.keys[0].id)
    }

    pub fn seal(&self, rng: &dyn RandomSource, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        let key = &self.keys[0];
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        let nonce = random_bytes(rng, NONCE_LEN);
        out.extend_from_slice(&nonce);
        let ct = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &[&out[..HEADER_LEN], aad.as_bytes()].concat(),
                },
            )
            .expect("AES-GCM encryption of a short buffer cannot fail");
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, CoreError> {
        self.open_detailed(aad, sealed).map(|o| o.plaintext)
    }

    /// Opens `sealed` and tells whether it is under the current key.
    pub fn open_detailed(&self, aad: &str, sealed: &[u8]) -> Result<Opened, CoreError> {
        let decrypt = |key: &MasterKey, nonce: &[u8], msg: &[u8], aad: &[u8]| {
            key.cipher
                .decrypt(Nonce::from_slice(nonce), Payload { msg, aad })
                .ok()
        };
        // With a key id. A value sealed before key ids starts with a random nonce, so
        // one in 256 of those looks like this too: it fails here and opens below.
        if sealed.len() >= HEADER_LEN + NONCE_LEN + TAG_LEN && sealed[0] == VERSION {
            let (header, rest) = sealed.split_at(HEADER_LEN);
            let (nonce, ct) = rest.split_at(NONCE_LEN);
            let header_aad = [header, aad.as_bytes()].concat();
            for (i, key) in self.keys.iter().enumerate() {
                if key.id[..] == header[1..] {
                    if let Some(plaintext) = decrypt(key, nonce, ct, &header_aad) {
                        return Ok(Opened {
                            plaintext,
                            current: i == 0,
                        });
                    }
                }
            }
        }
        // Sealed before key ids: any configured key may be the one.
        if sealed.len() >= NONCE_LEN + TAG_LEN {
            let (nonce, ct) = sealed.split_at(NONCE_LEN);
            for key in &self.keys {
                if let Some(plaintext) = decrypt(key, nonce, ct, aad.as_bytes()) {
                    return Ok(Opened {
                        plaintext,
                        current: false,
                    });
                }
            }
        }
        Err(CoreError::Internal(
            "cannot decrypt secret: sealed under a master key that is not configured".into(),
        ))
    }

    /// Whether `sealed` names the current key (by its header alone, without opening it).
    pub fn names_current_key(&self, sealed: &[u8]) -> bool {
        sealed.len() >= HEADER_LEN + NONCE_LEN + TAG_LEN
            && sealed[0] == VERSION
            && sealed[1..HEADER_LEN] == self.keys[0].id
    }

    /// `sealed` sealed anew under the current key, or `None` when it is already.
    pub fn reseal(
        &self,
        rng: &dyn RandomSource,
        aad: &str,
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, CoreError> {
        let opened = self.open_detailed(aad, sealed)?;
        Ok((!opened.current).then(|| self.seal(rng, aad, &opened.plaintext)))
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

/// Parses a comma-separated list of keys (each as [`parse_key`] takes it); blanks are
/// skipped.
pub fn parse_keys(text: &str) -> Result<Vec<[u8; 32]>, CoreError> {
    text.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(parse_key)
        .collect()
}

/// A new random key as 64 hex digits (what [`parse_key`] and key files take).
pub fn generate_key(rng: &dyn RandomSource) -> String {
    hex(&random_bytes(rng, 32))
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

    /// A value as sealed before key ids: `nonce ‖ ciphertext`, the row id as AAD.
    fn legacy_seal(key: &[u8; 32], first: u8, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [5u8; NONCE_LEN];
        nonce[0] = first;
        let ct = Aes256Gcm::new(key.into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap();
        [&nonce[..], &ct].concat()
    }

    #[test]
    fn sealed_values_name_their_key() {
        let rng = SeededRandom::new(3);
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let sealed = SecretBox::new(&old).seal(&rng, "row", b"secret");
        assert_eq!(sealed[0], VERSION);
        assert_eq!(hex(&sealed[1..HEADER_LEN]), key_id(&old));
        assert_eq!(SecretBox::new(&old).current_key_id(), key_id(&old));
        assert_ne!(key_id(&old), key_id(&new));

        // The new key seals, the previous one still opens.
        let rotating = SecretBox::with_previous(&new, &[old]);
        let opened = rotating.open_detailed("row", &sealed).unwrap();
        assert_eq!(
            (opened.plaintext.as_slice(), opened.current),
            (&b"secret"[..], false)
        );
        let resealed = rotating.reseal(&rng, "row", &sealed).unwrap().unwrap();
        assert_eq!(hex(&resealed[1..HEADER_LEN]), key_id(&new));
        assert!(
            rotating.reseal(&rng, "row", &resealed).unwrap().is_none(),
            "idempotent"
        );
        // Once the old key is dropped only resealed values open.
        assert_eq!(
            SecretBox::new(&new).open("row", &resealed).unwrap(),
            b"secret"
        );
        assert!(SecretBox::new(&new).open("row", &sealed).is_err());
        assert!(
            rotating.open("other-row", &resealed).is_err(),
            "bound to its row"
        );
        // The header is authenticated: another key id on the same bytes does not open.
        let mut forged = resealed.clone();
        forged[1] ^= 1;
        assert!(rotating.open("row", &forged).is_err());
    }

    #[test]
    fn values_sealed_before_key_ids_still_open() {
        let rng = SeededRandom::new(4);
        let (old, new) = ([1u8; 32], [2u8; 32]);
        // Whatever the nonce's first byte, including the version byte.
        for first in [0u8, VERSION, 0xff] {
            let legacy = legacy_seal(&old, first, "row", b"secret");
            assert_eq!(
                SecretBox::new(&old).open("row", &legacy).unwrap(),
                b"secret"
            );
            let rotating = SecretBox::with_previous(&new, &[old]);
            let opened = rotating.open_detailed("row", &legacy).unwrap();
            assert!(!opened.current, "a value without key id is always resealed");
            let resealed = rotating.reseal(&rng, "row", &legacy).unwrap().unwrap();
            assert_eq!(
                SecretBox::new(&new).open("row", &resealed).unwrap(),
                b"secret"
            );
            assert!(SecretBox::new(&new).open("row", &legacy).is_err());
        }
        assert!(SecretBox::new(&old).open("row", &[VERSION; 20]).is_err());
        assert!(SecretBox::new(&old).open("row", &[]).is_err());
    }

    #[test]
    fn key_parsing() {
        assert_eq!(parse_keys("").unwrap(), Vec::<[u8; 32]>::new());
        assert_eq!(
            parse_keys(&format!(" {} , {},", "ab".repeat(32), "cd".repeat(32))).unwrap(),
            vec![[0xab; 32], [0xcd; 32]]
        );
        assert!(parse_keys("short").is_err());
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
