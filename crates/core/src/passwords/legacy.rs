//! Password hashes of the products users are imported from, verified as those products
//! verify them, so an imported user signs in with their old password. A legacy hash is
//! only ever checked, never written: the first successful sign-in replaces it with
//! argon2id ([`super::needs_upgrade`]).
//!
//! Stored forms (what the importer writes into `users.password_hash`):
//! - `$sha512$<hex>`: ZStack's `AccountVO.password`, the SHA-512 hex of the password.
//! - `$aspnet-identity$<base64>`: ASP.NET Core Identity's `PasswordHash` as stored,
//!   format v2 (`0x00`, PBKDF2-HMAC-SHA1, 1000 iterations, 16-byte salt, 32-byte key)
//!   or v3 (`0x01`, PRF, iterations, salt length as big-endian u32, salt, key).
//! - `$ucloud-pbkdf2-sha512$<iterations>$<salt, base64>$<key, base64>`: UCloud's
//!   `auth.principals.hashed_password` and `salt` (PBKDF2-HMAC-SHA512 of the UTF-8
//!   password, 10000 iterations, 16-byte salt, 32-byte key, as its
//!   `PasswordHashingService` writes them).

use base64::Engine;
use hmac::Hmac;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::Password;

pub(crate) const SHA512: &str = "$sha512$";
pub(crate) const IDENTITY: &str = "$aspnet-identity$";
pub(crate) const UCLOUD: &str = "$ucloud-pbkdf2-sha512$";

/// The most PBKDF2 iterations a stored legacy hash may ask for: a forged import must not
/// turn every sign-in into minutes of hashing.
const MAX_ITERATIONS: u32 = 2_000_000;

/// The stored form of a UCloud principal's `hashed_password` and `salt`.
pub fn ucloud_hash(iterations: u32, salt: &[u8], key: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "{UCLOUD}{iterations}${}${}",
        b64.encode(salt),
        b64.encode(key)
    )
}

/// The stored form of an ASP.NET Core Identity `PasswordHash`.
pub fn identity_hash(password_hash: &str) -> String {
    format!("{IDENTITY}{}", password_hash.trim())
}

/// The stored form of a ZStack `AccountVO.password` (SHA-512 hex), or `None` when it
/// is not 128 hex digits.
pub fn zstack_hash(password: &str) -> Option<String> {
    let hex = password.trim();
    (hex.len() == 128 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("{SHA512}{}", hex.to_ascii_lowercase()))
}

/// Whether `password` matches a legacy `hash`; `None` when `hash` is not a legacy form.
pub(crate) fn verify(hash: &str, password: &Password) -> Option<bool> {
    if let Some(hex) = hash.strip_prefix(SHA512) {
        let given = password.prehashed();
        return Some(
            given
                .as_bytes()
                .ct_eq(hex.trim().to_ascii_lowercase().as_bytes())
                .into(),
        );
    }
    let (encoded, check): (_, fn(&str, &str) -> Option<bool>) =
        match (hash.strip_prefix(IDENTITY), hash.strip_prefix(UCLOUD)) {
            (Some(encoded), _) => (encoded, identity),
            (_, Some(encoded)) => (encoded, ucloud),
            (None, None) => return None,
        };
    // Both derive from the plaintext; a client that sends only a digest (ZStack's)
    // cannot match them.
    let Password::Plain(plain) = password else {
        return Some(false);
    };
    Some(check(encoded, plain).unwrap_or(false))
}

/// `None` when the stored value is malformed.
fn ucloud(encoded: &str, plain: &str) -> Option<bool> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut parts = encoded.trim().split('$');
    let iterations: u32 = parts.next()?.parse().ok()?;
    let salt = b64.decode(parts.next()?).ok()?;
    let expected = b64.decode(parts.next()?).ok()?;
    // UCloud writes 16-byte salts and 32-byte keys; refuse what would make the check
    // trivial or endless.
    if parts.next().is_some()
        || salt.len() < 8
        || expected.len() < 32
        || !(1..=MAX_ITERATIONS).contains(&iterations)
    {
        return None;
    }
    let mut derived = vec![0u8; expected.len()];
    pbkdf2::pbkdf2::<Hmac<Sha512>>(plain.as_bytes(), &salt, iterations, &mut derived).ok()?;
    Some(derived.ct_eq(&expected).into())
}

/// `None` when the stored value is malformed.
fn identity(encoded: &str, plain: &str) -> Option<bool> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (&version, rest) = bytes.split_first()?;
    let (prf, iterations, salt, expected) = match version {
        0x00 if rest.len() == 48 => (Prf::Sha1, 1000, &rest[..16], &rest[16..]),
        0x01 => {
            let word = |i: usize| -> Option<u32> {
                Some(u32::from_be_bytes(
                    rest.get(i * 4..i * 4 + 4)?.try_into().ok()?,
                ))
            };
            let prf = match word(0)? {
                0 => Prf::Sha1,
                1 => Prf::Sha256,
                2 => Prf::Sha512,
                _ => return None,
            };
            let (iterations, salt_len) = (word(1)?, word(2)? as usize);
            let salt = rest.get(12..12 + salt_len)?;
            let key = rest.get(12 + salt_len..)?;
            // Identity never writes fewer than 128-bit salts and keys; refuse what an
            // attacker-supplied import might carry to make the check trivial.
            if salt_len < 16 || key.len() < 16 || !(1..=MAX_ITERATIONS).contains(&iterations) {
                return None;
            }
            (prf, iterations, salt, key)
        }
        _ => return None,
    };
    let mut derived = vec![0u8; expected.len()];
    let password = plain.as_bytes();
    match prf {
        Prf::Sha1 => pbkdf2::pbkdf2::<Hmac<Sha1>>(password, salt, iterations, &mut derived),
        Prf::Sha256 => pbkdf2::pbkdf2::<Hmac<Sha256>>(password, salt, iterations, &mut derived),
        Prf::Sha512 => pbkdf2::pbkdf2::<Hmac<Sha512>>(password, salt, iterations, &mut derived),
    }
    .ok()?;
    Some(derived.ct_eq(expected).into())
}

enum Prf {
    Sha1,
    Sha256,
    Sha512,
}
