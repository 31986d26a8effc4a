//! RFC 6238 TOTP as every authenticator app supports it: SHA1, 6 digits, 30 s steps,
//! one step of drift either way, 160-bit secrets shown as unpadded base32.

use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::error::CoreError;
use crate::random::{random_bytes, RandomSource};

pub const DIGITS: usize = 6;
pub const PERIOD: u64 = 30;
pub const SKEW: u16 = 1;
pub const SECRET_BYTES: usize = 20;

/// RFC 3986 unreserved characters stay as they are; everything else is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn generate_secret(rng: &dyn RandomSource) -> Vec<u8> {
    random_bytes(rng, SECRET_BYTES)
}

pub fn secret_to_base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// The shortest secret that verifies: 80 bits, what UCloud's and ZStack's own
/// enrolments generated (RFC 4226 asks for at least 128, and new enrolments here get
/// [`SECRET_BYTES`]), so their users' authenticators keep working after an import.
pub const MIN_SECRET_BYTES: usize = 10;

fn totp(secret: &[u8], digits: usize) -> Result<Totp, CoreError> {
    if secret.len() < MIN_SECRET_BYTES {
        let bits = secret.len() * 8;
        return Err(CoreError::Internal(format!("TOTP secret of {bits} bits")));
    }
    // totp-rs refuses secrets under 128 bits in `build`; the length is checked above
    // and the digits and period are the constants of this module.
    Ok(Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits as u8)
        .with_skew(SKEW)
        .with_step_duration(PERIOD)
        .with_secret(secret.to_vec())
        .build_noncompliant())
}

/// Decodes an unpadded (or padded) RFC 4648 base32 secret.
pub fn secret_from_base32(text: &str) -> Option<Vec<u8>> {
    Secret::try_from_base32(text.trim().trim_end_matches('=').to_uppercase())
        .ok()
        .map(|s| s.as_bytes().to_vec())
}

/// The code for `secret` at unix time `now`.
pub fn code_at(secret: &[u8], now: i64) -> Result<String, CoreError> {
    Ok(totp(secret, DIGITS)?
        .generate(now.max(0) as u64)
        .to_string())
}

/// Accepts a code of exactly six ASCII digits (surrounding white space ignored) and
/// returns the time step it matches within the window, or `None`. The comparison is
/// constant time (totp-rs compares tokens with `constant_time_eq`).
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Result<Option<i64>, CoreError> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(totp(secret, DIGITS)?
        .check(code, now.max(0) as u64)
        .map(|s| s as i64))
}

/// The step a time falls in.
pub fn step_of(now: i64) -> i64 {
    now.div_euclid(PERIOD as i64)
}

/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`
/// (Key Uri Format), with label and issuer percent-encoded.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer_enc = utf8_percent_encode(issuer, COMPONENT);
    format!(
        "otpauth://totp/{issuer_enc}:{account}?secret={secret}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
        account = utf8_percent_encode(account, COMPONENT),
        secret = secret_to_base32(secret),
    )
}

/// A PNG QR code of `text` as a `data:image/png;base64,` URI.
pub fn qr_png_data_uri(text: &str) -> Result<String, CoreError> {
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| CoreError::Internal(format!("QR encoding: {e}")))?;
    let image = code
        .render::<image::Luma<u8>>()
        .min_dimensions(200, 200)
        .build();
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| CoreError::Internal(format!("PNG encoding: {e}")))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 6238 Appendix B, SHA1 rows.
    #[test]
    fn rfc6238_appendix_b_sha1() {
        let vectors: [(u64, &str); 6] = [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ];
        let eight = totp(RFC_SECRET, 8).unwrap();
        for (time, expected) in vectors {
            assert_eq!(eight.generate(time).to_string(), expected, "t={time}");
            // Six digits are the same truncation modulo 10^6.
            assert_eq!(
                code_at(RFC_SECRET, time as i64).unwrap(),
                expected[2..],
                "t={time}"
            );
        }
    }

    #[test]
    fn window_is_one_step_each_way() {
        let now = 1_700_000_015; // middle of a step
        let step = step_of(now);
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = code_at(RFC_SECRET, now + offset * 30).unwrap();
            let got = matching_step(RFC_SECRET, &code, now).unwrap();
            if accepted {
                assert_eq!(got, Some(step + offset), "offset {offset}");
            } else {
                assert_eq!(got, None, "offset {offset}");
            }
        }
    }

    #[test]
    fn malformed_codes_never_match() {
        let now = 59;
        let good = code_at(RFC_SECRET, now).unwrap();
        assert_eq!(
            matching_step(RFC_SECRET, &format!(" {good}\n"), now).unwrap(),
            Some(1)
        );
        for bad in [
            "",
            "12345",
            "1234567",
            "abcdef",
            "28708 ",
            "+28708",
            "２８７０８２",
        ] {
            assert_eq!(
                matching_step(RFC_SECRET, bad, now).unwrap(),
                None,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn uri_and_secret_format() {
        let secret = [0u8; 20];
        let b32 = secret_to_base32(&secret);
        assert_eq!(b32, "A".repeat(32));
        assert_eq!(
            otpauth_uri("UCloud", "Jane Doe#1234", &secret),
            format!("otpauth://totp/UCloud:Jane%20Doe%231234?secret={b32}&issuer=UCloud&algorithm=SHA1&digits=6&period=30")
        );
    }

    #[test]
    fn qr_is_png_data_uri() {
        let uri = qr_png_data_uri("otpauth://totp/x").unwrap();
        let b64 = uri.strip_prefix("data:image/png;base64,").unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }

    /// An 80-bit secret as UCloud and ZStack generated them; codes from Python's
    /// `hmac`/`hashlib` (RFC 6238 by hand), not from totp-rs.
    #[test]
    fn eighty_bit_secrets_verify_and_shorter_ones_are_refused() {
        let secret = secret_from_base32("AERUKZ4JVPG66AJD").unwrap();
        assert_eq!(secret.len(), 10);
        for (now, code) in [
            (59, "159079"),
            (1_111_111_109, "134655"),
            (2_000_000_000, "429940"),
        ] {
            assert_eq!(code_at(&secret, now).unwrap(), code);
            assert_eq!(matching_step(&secret, code, now).unwrap(), Some(now / 30));
        }
        assert!(code_at(&secret[..9], 59).is_err());
        assert!(matching_step(&secret[..9], "159079", 59).is_err());
    }
}
