//! What every dialect needs from a request, written once and generic over the
//! dialect's own error type: the shared [`Core`] and the dialect's settings from the
//! app, the audit origin, the bearer token, and a body read with a size limit. No
//! wire text lives here; each dialect says how these failures look on its wire
//! through [`WebError`].

pub mod openapi;

use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{Bytes, Data};
use actix_web::HttpRequest;
use futures_util::{Stream, StreamExt};
use twofa_core::{Core, Origin};

/// How a dialect answers the failures of request plumbing.
pub trait WebError: Sized {
    /// The app was built without a [`Core`] (a wiring mistake, not the client's).
    fn no_core() -> Self;
    /// The body stopped or broke while being read.
    fn unreadable_body(error: PayloadError) -> Self;
    /// The body is larger than the dialect accepts.
    fn body_too_large() -> Self;
}

/// The shared core the server registered as app data.
pub fn core<E: WebError>(req: &HttpRequest) -> Result<Core, E> {
    req.app_data::<Data<Core>>()
        .map(|c| c.get_ref().clone())
        .ok_or_else(E::no_core)
}

/// The dialect's settings as registered by the server; their defaults when absent
/// (a dialect mounted on its own in a test).
pub fn settings<S: Clone + Default + 'static>(req: &HttpRequest) -> S {
    req.app_data::<Data<S>>()
        .map(|s| s.get_ref().clone())
        .unwrap_or_default()
}

/// The audit origin: the dialect and the peer address (never a forwarded header,
/// which any client can forge).
pub fn origin(req: &HttpRequest, dialect: &'static str) -> Origin {
    Origin::new(dialect, req.peer_addr().map(|a| a.ip().to_string()))
}

/// The route a request took, for the server's metrics and request log, where the
/// matched resource pattern does not tell it (one resource serving several endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteName {
    pub dialect: &'static str,
    pub route: &'static str,
}

/// Names the route `req` took (see [`RouteName`]): a route pattern, never a raw path.
pub fn name_route(req: &HttpRequest, dialect: &'static str, route: &'static str) {
    use actix_web::HttpMessage;
    req.extensions_mut().insert(RouteName { dialect, route });
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// A clap value parser for settings such as URLs: a value given blank is refused
/// rather than taken as one (leave the setting out to mean "not set").
pub fn non_blank(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("must not be blank".into())
    } else {
        Ok(value.to_string())
    }
}

/// The whole body, refusing more than `limit` bytes as soon as they arrive.
pub async fn read_body<E, S>(mut payload: S, limit: usize) -> Result<Vec<u8>, E>
where
    E: WebError,
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(E::unreadable_body)?;
        if body.len() + chunk.len() > limit {
            return Err(E::body_too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
