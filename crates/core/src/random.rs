//! Randomness is passed in: the OS generator in production, a seeded one in tests.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::sync::Mutex;

pub trait RandomSource: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]);
}

#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(buf);
    }
}

/// Deterministic randomness for tests.
#[derive(Debug)]
pub struct SeededRandom(Mutex<StdRng>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl RandomSource for SeededRandom {
    fn fill(&self, buf: &mut [u8]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill_bytes(buf);
    }
}

/// Helpers over any source (usable through `dyn RandomSource`).
pub fn random_bytes(rng: &dyn RandomSource, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rng.fill(&mut b);
    b
}

/// `n` random bytes, hex-encoded.
pub fn random_hex(rng: &dyn RandomSource, n: usize) -> String {
    hex(&random_bytes(rng, n))
}

/// A random UUID v4 in its usual hyphenated form.
pub fn random_uuid(rng: &dyn RandomSource) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
