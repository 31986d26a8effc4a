//! Passwords: argon2id over the SHA-512 hex of the plaintext, so a client that sends
//! only that digest (ZStack) is checked against the same hash, and nothing weaker than
//! argon2id is written. Hashes imported from other products verify through
//! [`legacy`] until their first successful use replaces them.

mod legacy;

pub use legacy::{identity_hash, ucloud_hash, zstack_hash};

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

/// Constant-time (argon2 compares digests in constant time, the legacy forms with
/// `subtle`).
pub fn verify_password(hash: &str, password: &Password) -> bool {
    if let Some(matched) = legacy::verify(hash, password) {
        return matched;
    }
    let prehashed = password.prehashed();
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(prehashed.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Whether `hash` is a form this server does not write, to be replaced by argon2id on
/// the next successful sign-in.
pub fn needs_upgrade(hash: &str) -> bool {
    !hash.starts_with("$argon2id$")
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

    /// Vectors from Python's hashlib (`pbkdf2_hmac`, `sha512`), not from our code:
    /// the Identity v2/v3 layouts as ASP.NET Core Identity stores them.
    #[test]
    fn legacy_hashes_from_an_independent_implementation() {
        let right = Password::Plain("Correct-horse-9".into());
        let wrong = Password::Plain("Correct-horse-8".into());
        for hash in [
            "$aspnet-identity$AAABAgMEBQYHCAkKCwwNDg/oaAECE1zMikaM2WIrM2CWOm93gqKUZNGxfwHJd/tpIQ==",
            "$aspnet-identity$AQAAAAIAAYagAAAAEGRlZmdoaWprbG1ub3BxcnO9Raaen+Q0R2m94mLLOkeTl7OokohV7x3k739xZfEtQA==",
            "$aspnet-identity$AQAAAAEAACcQAAAAEGRlZmdoaWprbG1ub3BxcnP/786haMqeEnWjBV36NIF/dOZjhgy26u8c7rNVesnqzg==",
            "$sha512$7d0cf9119d31d0afb1f1c78620677aa613b269784f504a6df7cf3239e1a3477466f536baf7d25596325f87d6f9435b20ae6244b943255b1260e8b0038cccf280",
            // UCloud: hashlib.pbkdf2_hmac('sha512', pw, bytes(range(16, 32)), 10000, 32).
            "$ucloud-pbkdf2-sha512$10000$EBESExQVFhcYGRobHB0eHw==$9fbAXT2YI0qI8lTGuUoVdbdpGBkTZD4VJ7RMAKSzd+c=",
        ] {
            assert!(verify_password(hash, &right), "{hash}");
            assert!(!verify_password(hash, &wrong), "{hash}");
            assert!(needs_upgrade(hash));
        }
        // ZStack's clients send the digest itself.
        let digest = Password::Sha512Hex("7D0CF9119D31D0AFB1F1C78620677AA613B269784F504A6DF7CF3239E1A3477466F536BAF7D25596325F87D6F9435B20AE6244B943255B1260E8B0038CCCF280".into());
        assert!(verify_password("$sha512$7d0cf9119d31d0afb1f1c78620677aa613b269784f504a6df7cf3239e1a3477466f536baf7d25596325f87d6f9435b20ae6244b943255b1260e8b0038cccf280", &digest));
        assert!(!verify_password(
            "$aspnet-identity$AAABAgMEBQYHCAkKCwwNDg/oaAECE1zMikaM2WIrM2CWOm93gqKUZNGxfwHJd/tpIQ==",
            &digest
        ));
        // UCloud hashes the UTF-8 of the password (Java's PBEKeySpec, Go's []byte).
        let umlaut = "$ucloud-pbkdf2-sha512$10000$EBESExQVFhcYGRobHB0eHw==$Tvv3UfCYUS0NMJ69D6QE5HEtm3HGGUwMKVyXW46NPms=";
        assert!(verify_password(umlaut, &Password::Plain("Grüße-9".into())));
        assert!(!verify_password(
            umlaut,
            &Password::Plain("Grusse-9".into())
        ));
        assert!(!verify_password(
            umlaut,
            &Password::Sha512Hex(hex(&Sha512::digest("Grüße-9".as_bytes())))
        ));
        assert_eq!(
            ucloud_hash(
                10000,
                &(16u8..32).collect::<Vec<_>>(),
                &base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    "Tvv3UfCYUS0NMJ69D6QE5HEtm3HGGUwMKVyXW46NPms="
                )
                .unwrap()
            ),
            umlaut
        );
        assert_eq!(zstack_hash("7D0CF9119D31D0AFB1F1C78620677AA613B269784F504A6DF7CF3239E1A3477466F536BAF7D25596325F87D6F9435B20AE6244B943255B1260E8B0038CCCF280").as_deref(), Some("$sha512$7d0cf9119d31d0afb1f1c78620677aa613b269784f504a6df7cf3239e1a3477466f536baf7d25596325f87d6f9435b20ae6244b943255b1260e8b0038cccf280"));
        assert_eq!(zstack_hash("password"), None);
        // Malformed or weakened stored values never match.
        for hash in [
            "$ucloud-pbkdf2-sha512$",
            "$ucloud-pbkdf2-sha512$0$EBESExQVFhcYGRobHB0eHw==$9fbAXT2YI0qI8lTGuUoVdbdpGBkTZD4VJ7RMAKSzd+c=",
            "$ucloud-pbkdf2-sha512$10000$EBESExQVFhcYGRobHB0eHw==$9fbAXT2YI0qI8lTGuUoVdQ==",
            "$ucloud-pbkdf2-sha512$99999999$EBESExQVFhcYGRobHB0eHw==$9fbAXT2YI0qI8lTGuUoVdbdpGBkTZD4VJ7RMAKSzd+c=",
            "$aspnet-identity$",
            "$aspnet-identity$AA==",
            "$aspnet-identity$AQAAAAIAAAAAAAAAEA==",
            "$sha512$",
        ] {
            assert!(!verify_password(hash, &right), "{hash}");
        }
        let ours = hash_password(&SeededRandom::new(1), &right).unwrap();
        assert!(!needs_upgrade(&ours));
    }
}
