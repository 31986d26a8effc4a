//! Request plumbing with ZStack's REST-layer behaviour: the `OAuth` header, action
//! bodies (`{"<action>": {...}, "systemTags": [...]}`) and query-string parameters.

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;
use twofa_core::{Core, Origin, Session};
use twofa_web::{read_body, WebError};

use crate::error::{ApiError, Code};
use crate::{ZstackSettings, DIALECT};

pub(crate) fn core(req: &HttpRequest) -> Result<Core, ApiError> {
    twofa_web::core(req)
}

pub(crate) fn settings(req: &HttpRequest) -> ZstackSettings {
    twofa_web::settings(req)
}

pub(crate) fn origin(req: &HttpRequest) -> Origin {
    twofa_web::origin(req, DIALECT)
}

impl WebError for ApiError {
    fn no_core() -> Self {
        ApiError::api(Code::Sys1000, "core not configured")
    }
    fn unreadable_body(error: PayloadError) -> Self {
        ApiError::bad_request(error.to_string())
    }
    fn body_too_large() -> Self {
        ApiError::bad_request("request body too large")
    }
}

/// The session uuid from `Authorization: OAuth <uuid>`; its validity is checked later
/// (ZStack rejects the header at the REST layer, the session in the API).
pub struct OAuth(pub String);

impl FromRequest for OAuth {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(oauth(req).map(OAuth))
    }
}

fn oauth(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::bad_request("missing header 'Authorization'"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Authorization type must be 'OAuth'"))?;
    match value.trim().split_once(' ') {
        Some(("OAuth", token)) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        _ => Err(ApiError::bad_request("Authorization type must be 'OAuth'")),
    }
}

impl OAuth {
    /// The live ZStack session behind the uuid, else `ID.1001`.
    pub async fn session(&self, req: &HttpRequest) -> Result<Session, ApiError> {
        core(req)?
            .refresh_session(origin(req), self.0.clone(), None)
            .await
            .map_err(ApiError::session)
    }
}

/// The JSON body of a PUT action, any Content-Type; not JSON → 400 plain text.
pub struct ActionBody(pub Map<String, Value>);

impl FromRequest for ActionBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = settings(req).max_body_bytes;
        let payload = payload.take();
        Box::pin(async move {
            let body: Vec<u8> = read_body::<ApiError, _>(payload, limit).await?;
            match serde_json::from_slice(&body) {
                Ok(Value::Object(map)) => Ok(ActionBody(map)),
                _ => Err(ApiError::bad_request(format!(
                    "the body is not a JSON object: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ))),
            }
        })
    }
}

impl ActionBody {
    /// The action object under `name`, with `systemTags` merged in: tags given at the
    /// top level override those inside the action, as ZStack's REST server does.
    pub fn action(&self, name: &str, path: &str) -> Result<Action, ApiError> {
        let Some(Value::Object(fields)) = self.0.get(name) else {
            return Err(ApiError::bad_request(format!(
                "the body doesn't contain action mapping to the URL[{path}]"
            )));
        };
        let tags = self
            .0
            .get("systemTags")
            .filter(|v| !v.is_null())
            .or_else(|| fields.get("systemTags").filter(|v| !v.is_null()));
        let system_tags = match tags {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|t| t.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| ApiError::bad_request("[systemTags] must be a list of strings"))?,
            Some(_) => return Err(ApiError::bad_request("[systemTags] must be a list")),
        };
        Ok(Action {
            fields: fields.clone(),
            system_tags,
        })
    }
}

pub struct Action {
    fields: Map<String, Value>,
    pub system_tags: Vec<String>,
}

/// `field[x] of message[...] is mandatory, can not be null` (the message name really is
/// the validator's, a ZStack quirk kept for compatibility).
pub(crate) fn mandatory(field: &str) -> ApiError {
    ApiError::api(
        Code::Sys1007,
        format!("field[{field}] of message[org.zstack.header.message.ApiMessageParamValidator] is mandatory, can not be null"),
    )
}

impl Action {
    /// An optional string field; another JSON type is a 400, as ZStack's type check.
    pub fn string(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ApiError::bad_request(format!(
                "[{field}] field is excepted a String"
            ))),
        }
    }

    /// A field as it was sent.
    pub fn object_value(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// An object field (e.g. a message's `session`).
    pub fn object(&self, field: &str) -> Option<&Map<String, Value>> {
        self.fields.get(field)?.as_object()
    }

    /// A list field; absent or null is empty, another type an error.
    pub fn list(&self, field: &str) -> Result<&[Value], ()> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(()),
        }
    }

    pub fn required(&self, field: &str) -> Result<String, ApiError> {
        self.string(field)?.ok_or_else(|| mandatory(field))
    }

    /// The value of the first `<name>::<value>` system tag.
    pub fn tag(&self, name: &str) -> Option<String> {
        find_tag(&self.system_tags, name)
    }
}

pub(crate) fn find_tag(tags: &[String], name: &str) -> Option<String> {
    let prefix = format!("{name}::");
    tags.iter()
        .find_map(|t| t.strip_prefix(&prefix).map(str::to_string))
}

/// Query-string parameters in order, repeated keys kept.
pub(crate) fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("Invalid query string: {e}")))
}

/// The first value of `name`, trimmed (ZStack uses only the first).
pub(crate) fn first(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// The URL polled for an async job's result.
pub(crate) fn job_location(req: &HttpRequest, job: &str) -> String {
    let info = req.connection_info();
    format!(
        "{}://{}/zstack/v1/api-jobs/{job}",
        info.scheme(),
        info.host()
    )
}
