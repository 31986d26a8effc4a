//! Sessions and the tokens that stand for them: refresh tokens, CSRF tokens, opaque
//! session ids (stored hashed), and JWT access tokens (one JWT API for every dialect).

pub mod jwt;
pub mod sessions;
