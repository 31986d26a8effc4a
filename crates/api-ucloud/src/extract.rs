//! Request extractors with UCloud's leniencies and error shapes.

use actix_multipart::Multipart;
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use futures_util::TryStreamExt;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use twofa_core::{AccessClaims, Core, Origin};
use twofa_web::{read_body, WebError};

use crate::error::ApiError;
use crate::{UcloudSettings, DIALECT};

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

pub(crate) fn core(req: &HttpRequest) -> Result<Core, ApiError> {
    twofa_web::core(req)
}

pub(crate) fn settings(req: &HttpRequest) -> UcloudSettings {
    twofa_web::settings(req)
}

pub(crate) fn origin(req: &HttpRequest) -> Origin {
    twofa_web::origin(req, DIALECT)
}

pub(crate) use twofa_web::bearer;

impl WebError for ApiError {
    fn no_core() -> Self {
        ApiError::Internal
    }
    fn unreadable_body(_: PayloadError) -> Self {
        ApiError::BadRequest
    }
    fn body_too_large() -> Self {
        ApiError::TooLarge
    }
}

/// A JSON body, parsed whatever the Content-Type says (the published curl example
/// sends a malformed one), with Kotlin's error messages.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = settings(req).max_body_bytes;
        let payload = payload.take();
        Box::pin(async move {
            let body = read_body::<ApiError, _>(payload, limit).await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::NoBody);
            }
            serde_json::from_slice(&body)
                .map(JsonBody)
                .map_err(|_| ApiError::WrongType)
        })
    }
}

/// A form body, URL-encoded or multipart, as the web client posts it.
pub struct FormBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for FormBody<T> {
    type Error = ApiError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = settings(req).max_body_bytes;
        let is_multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        let headers = req.headers().clone();
        let query = req.query_string().to_string();
        let payload = payload.take();
        Box::pin(async move {
            // Query parameters first; body fields of the same name win.
            let mut fields: Vec<(String, String)> =
                serde_urlencoded::from_str(&query).unwrap_or_default();
            if is_multipart {
                fields.extend(multipart_fields(Multipart::new(&headers, payload), limit).await?);
            } else {
                let body = read_body::<ApiError, _>(payload, limit).await?;
                let parsed: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(&body).map_err(|_| ApiError::BadRequest)?;
                fields.extend(parsed);
            }
            let mut map = serde_json::Map::new();
            for (k, v) in fields {
                map.insert(k, serde_json::Value::String(v));
            }
            serde_json::from_value(serde_json::Value::Object(map))
                .map(FormBody)
                .map_err(|_| ApiError::BadRequest)
        })
    }
}

/// The text fields of a multipart body, at most `limit` bytes in all.
async fn multipart_fields(
    mut multipart: Multipart,
    limit: usize,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut fields = Vec::new();
    let mut total = 0usize;
    while let Some(mut field) = multipart
        .try_next()
        .await
        .map_err(|_| ApiError::BadRequest)?
    {
        let name = field
            .content_disposition()
            .and_then(|cd| cd.get_name())
            .map(str::to_string);
        let mut value = Vec::new();
        while let Some(chunk) = field.try_next().await.map_err(|_| ApiError::BadRequest)? {
            total += chunk.len();
            if total > limit {
                return Err(ApiError::TooLarge);
            }
            value.extend_from_slice(&chunk);
        }
        if let Some(name) = name {
            fields.push((
                name,
                String::from_utf8(value).map_err(|_| ApiError::BadRequest)?,
            ));
        }
    }
    Ok(fields)
}

/// A caller with a valid UCloud access token whose session is still live: a logout or
/// a password change (through any dialect) ends it at once, not when the token expires.
pub struct Authenticated(pub AccessClaims);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let core = core(req);
        Box::pin(async move {
            let token = token.ok_or(ApiError::Unauthorized)?;
            let core = core?;
            let claims = core
                .verify_access_token(&token, DIALECT)
                .map_err(|_| ApiError::Unauthorized)?;
            if core.session_ended(claims.sid.clone()).await? {
                return Err(ApiError::Unauthorized);
            }
            Ok(Authenticated(claims))
        })
    }
}
