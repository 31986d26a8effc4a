//! Request handling with ASP.NET Web API's leniencies: content negotiation between
//! JSON and XML (Accept, then Content-Type), bodies in JSON (keys case-insensitive, as
//! Json.NET binds them), XML (root = class name) or form fields, query parameter names
//! matched case-insensitively, and the two ways to authenticate a `/User/...` call
//! (OAuth bearer token or legacy `WsAccessKey`, both with a `FileId`).

use actix_web::error::PayloadError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use quick_xml::events::Event;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use twofa_core::{Core, Origin};
use twofa_web::WebError;

use crate::error::ApiError;
use crate::wire::{xml_document, XmlBody};
use crate::{tokens, SaasuSettings, DIALECT};

/// The negotiated response format and its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json(&'static str),
    Xml(&'static str),
}

fn media_format(mime: &str) -> Option<Format> {
    match mime {
        "application/json" => Some(Format::Json("application/json")),
        "text/json" => Some(Format::Json("text/json")),
        "application/xml" => Some(Format::Xml("application/xml")),
        "text/xml" => Some(Format::Xml("text/xml")),
        _ => None,
    }
}

fn mime_of(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl Format {
    /// Accept first (by quality, then order), then the request's Content-Type, then JSON.
    pub fn negotiate(req: &HttpRequest) -> Format {
        let header_str = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let mut accepted: Vec<(f32, usize, Format)> = header_str(header::ACCEPT)
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let q = part
                    .split(';')
                    .skip(1)
                    .find_map(|p| p.trim().strip_prefix("q=")?.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                let format = media_format(&mime_of(part))?;
                (q > 0.0).then_some((q, i, format))
            })
            .collect();
        accepted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some((_, _, format)) = accepted.first() {
            return *format;
        }
        match media_format(&mime_of(header_str(header::CONTENT_TYPE))) {
            Some(Format::Xml(mime)) => Format::Xml(mime),
            _ => Format::Json("application/json"),
        }
    }

    /// A response with `body` in this format.
    pub fn reply<T: Serialize + XmlBody>(self, status: StatusCode, body: &T) -> HttpResponse {
        let (mime, text) = match self {
            Format::Json(mime) => (mime, serde_json::to_string(body).unwrap_or_default()),
            Format::Xml(mime) => (mime, xml_document(body)),
        };
        HttpResponse::build(status)
            .content_type(format!("{mime}; charset=utf-8"))
            .body(text)
    }
}

/// Everything a handler needs about its request.
pub struct Ctx {
    pub req: HttpRequest,
    pub core: Core,
    pub settings: SaasuSettings,
    pub format: Format,
    query: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Ctx {
    pub(crate) async fn new(req: HttpRequest, payload: web::Payload) -> Result<Ctx, ApiError> {
        let core = twofa_web::core::<ApiError>(&req)?;
        let settings: SaasuSettings = twofa_web::settings(&req);
        let format = Format::negotiate(&req);
        let query = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let body = twofa_web::read_body::<ApiError, _>(payload, settings.max_body_bytes).await?;
        Ok(Ctx {
            req,
            core,
            settings,
            format,
            query,
            body,
        })
    }

    /// The audit origin: this dialect and the peer address.
    pub fn origin(&self) -> Origin {
        twofa_web::origin(&self.req, DIALECT)
    }

    /// The token of `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> Option<String> {
        twofa_web::bearer(&self.req)
    }

    /// A query parameter, its name matched case-insensitively (first one wins).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body's fields: a JSON object, the children of an XML root element, or form
    /// fields, chosen by Content-Type (JSON when there is none). An empty body has no
    /// fields.
    pub fn fields(&self) -> Result<Fields, ApiError> {
        let content_type = self
            .req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(mime_of)
            .unwrap_or_default();
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::default());
        }
        match content_type.as_str() {
            "" | "application/json" | "text/json" => json_fields(&self.body),
            "application/xml" | "text/xml" => xml_fields(&self.body),
            "application/x-www-form-urlencoded" => {
                let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&self.body)
                    .map_err(|_| ApiError::invalid("request", "The form body is malformed."))?;
                Ok(Fields(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                ))
            }
            other => Err(ApiError::Message(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "The request entity's media type '{other}' is not supported for this resource."
                ),
            )),
        }
    }

    /// The absolute URL of `path` (under the dialect's prefix) with `FileId`.
    pub fn link(&self, path: &str, file_id: i64) -> String {
        let base = match &self.settings.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let info = self.req.connection_info();
                format!("{}://{}", info.scheme(), info.host())
            }
        };
        format!(
            "{base}{}{path}?FileId={file_id}",
            self.settings.prefix.trim_end_matches('/')
        )
    }
}

/// A JSON object's members in document order. serde_json's `Map` sorts its keys, which
/// would let key order, not position, decide between duplicates that differ in case.
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visitor)
    }
}

fn json_fields(body: &[u8]) -> Result<Fields, ApiError> {
    // .NET writers may start UTF-8 with a byte-order mark; Web API reads past it.
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    match serde_json::from_slice::<Members>(body) {
        Ok(Members(members)) => Ok(Fields(members)),
        Err(e) if e.is_data() => Err(ApiError::invalid(
            "request",
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::invalid(
            "request",
            format!(
                "The request body is not valid JSON (line {}, column {}).",
                e.line(),
                e.column()
            ),
        )),
    }
}

/// The text of each child element of the root (nested elements are ignored);
/// `xsi:nil="true"` children are null.
fn xml_fields(body: &[u8]) -> Result<Fields, ApiError> {
    let malformed = || ApiError::invalid("request", "The request body is not valid XML.");
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut fields = Vec::new();
    let mut depth = 0usize;
    let mut current: Option<(String, String, bool)> = None;
    let mut buf = Vec::new();
    let name_of = |e: &quick_xml::events::BytesStart| {
        String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
    };
    let is_nil = |e: &quick_xml::events::BytesStart| {
        e.attributes()
            .flatten()
            .any(|a| a.key.local_name().as_ref() == b"nil" && a.value.as_ref() == b"true")
    };
    let mut saw_root = false;
    loop {
        match reader.read_event_into(&mut buf).map_err(|_| malformed())? {
            Event::Start(e) => {
                depth += 1;
                if depth == 1 {
                    saw_root = true;
                } else if depth == 2 {
                    current = Some((name_of(&e), String::new(), is_nil(&e)));
                }
            }
            Event::Empty(e) => {
                if depth == 0 {
                    saw_root = true;
                } else if depth == 1 {
                    let value = if is_nil(&e) {
                        Value::Null
                    } else {
                        Value::String(String::new())
                    };
                    fields.push((name_of(&e), value));
                }
            }
            Event::Text(t) if depth == 2 => {
                let text = t.decode().map_err(|_| malformed())?;
                let text = quick_xml::escape::unescape(&text).map_err(|_| malformed())?;
                if let Some((_, value, _)) = current.as_mut() {
                    value.push_str(&text);
                }
            }
            Event::CData(t) if depth == 2 => {
                if let Some((_, value, _)) = current.as_mut() {
                    value.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) if depth == 2 => {
                let name = r.decode().map_err(|_| malformed())?;
                let resolved = match name.as_ref() {
                    "amp" => "&".to_string(),
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "quot" => "\"".to_string(),
                    "apos" => "'".to_string(),
                    other => r
                        .resolve_char_ref()
                        .ok()
                        .flatten()
                        .map(String::from)
                        .ok_or_else(|| {
                            tracing::debug!(entity = other, "unknown XML entity");
                            malformed()
                        })?,
                };
                if let Some((_, value, _)) = current.as_mut() {
                    value.push_str(&resolved);
                }
            }
            Event::End(_) => {
                if depth == 2 {
                    if let Some((name, value, nil)) = current.take() {
                        let value = if nil {
                            Value::Null
                        } else {
                            Value::String(value)
                        };
                        fields.push((name, value));
                    }
                }
                depth = depth.checked_sub(1).ok_or_else(malformed)?;
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_root || depth != 0 {
        return Err(malformed());
    }
    Ok(Fields(fields))
}

/// The fields of a request body, looked up by name case-insensitively.
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, Value)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&Value> {
        // The last duplicate wins, as with Json.NET.
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// A string property (numbers and booleans convert, as Json.NET does).
    pub fn string(&self, name: &str, errors: &mut Errors) -> Option<String> {
        match self.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                errors.add(
                    name,
                    format!("The value of {name} could not be converted to System.String."),
                );
                None
            }
        }
    }

    /// An integer property (a JSON number or a string of digits).
    pub fn integer(&self, name: &str, errors: &mut Errors) -> Option<i64> {
        let value = self.get(name)?;
        let parsed = match value {
            Value::Null => return None,
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            errors.add(
                name,
                format!("The value of {name} could not be converted to an integer."),
            );
        }
        parsed
    }
}

/// Model-state errors collected while binding; keys `request.<Property>`.
#[derive(Debug, Default)]
pub struct Errors(BTreeMap<String, Vec<String>>);

impl Errors {
    pub fn add(&mut self, property: &str, message: impl Into<String>) {
        self.0
            .entry(format!("request.{property}"))
            .or_default()
            .push(message.into());
    }

    /// `[Required]`: present and not blank. A value that did not convert already has
    /// its error; like Web API, it is not reported missing too.
    pub fn required<T>(&mut self, property: &str, value: Option<T>) -> Option<T>
    where
        T: AsRef<str>,
    {
        match value {
            Some(v) if !v.as_ref().trim().is_empty() => Some(v),
            _ if self.has(property) => None,
            _ => {
                self.add(property, format!("The {property} field is required."));
                None
            }
        }
    }

    pub fn has(&self, property: &str) -> bool {
        self.0.contains_key(&format!("request.{property}"))
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(self.0))
        }
    }
}

impl WebError for ApiError {
    fn no_core() -> Self {
        ApiError::Internal
    }
    fn unreadable_body(_: PayloadError) -> Self {
        ApiError::invalid("request", "The request body could not be read.")
    }
    fn body_too_large() -> Self {
        ApiError::Message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large.".into(),
        )
    }
}

/// The caller of a `/User/...` endpoint: a user acting on one of their files.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub file_id: i64,
}

/// `Authorization: Bearer <access token>` whose scope holds `FileId`, or a legacy
/// `WsAccessKey` valid for `FileId`. Anything else (no FileId, FileId 0, a file outside
/// the scope, a stale or refresh token) is 401.
pub async fn caller(ctx: &Ctx) -> Result<Caller, ApiError> {
    let file_id = ctx
        .query("FileId")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|&id| id > 0)
        .ok_or(ApiError::Unauthorized)?;
    if let Some(token) = ctx.bearer() {
        let access = tokens::verify(ctx, &token).await?;
        if !access.files.contains(&file_id) {
            return Err(ApiError::Unauthorized);
        }
        return Ok(Caller {
            user_id: access.user_id,
            file_id,
        });
    }
    let key = ctx
        .query("WsAccessKey")
        .filter(|k| !k.trim().is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let user = ctx
        .core
        .ws_key_user(key.to_string(), file_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(Caller {
        user_id: user.id,
        file_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_and_json_fields() {
        let xml = br#"<Verify2FAOptInRequest xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <ProviderUserId>1</ProviderUserId>
  <Otp>08&amp;28775</Otp><Nothing xsi:nil="true"/><_links><Link><rel>x</rel></Link></_links>
</Verify2FAOptInRequest>"#;
        let f = xml_fields(xml).unwrap();
        let mut e = Errors::default();
        assert_eq!(f.integer("provideruserid", &mut e), Some(1));
        assert_eq!(f.string("OTP", &mut e).as_deref(), Some("08&28775"));
        assert_eq!(f.string("Nothing", &mut e), None);
        assert!(e.finish().is_ok());
        assert!(xml_fields(b"<a><b>1</b>").is_err());
        assert!(xml_fields(b"not xml").is_err());
        let f = json_fields(br#"{"otp":"1","ProviderUserId":"x"}"#).unwrap();
        let mut e = Errors::default();
        assert_eq!(f.integer("ProviderUserId", &mut e), None);
        assert_eq!(f.string("Otp", &mut e).as_deref(), Some("1"));
        assert!(e.finish().is_err());
        assert!(json_fields(b"[1]").is_err());
    }

    #[test]
    fn the_last_duplicate_wins_whatever_its_case() {
        let mut e = Errors::default();
        for (body, otp) in [
            (&br#"{"otp":"1","Otp":"2"}"#[..], "2"),
            (br#"{"Otp":"1","otp":"2"}"#, "2"),
            (br#"{"OTP":"1","otp":"2","Otp":"3"}"#, "3"),
        ] {
            let f = json_fields(body).unwrap();
            assert_eq!(f.string("Otp", &mut e).as_deref(), Some(otp));
        }
        assert!(e.finish().is_ok());
    }

    #[test]
    fn json_after_a_byte_order_mark() {
        let f = json_fields(b"\xef\xbb\xbf{\"Otp\":\"1\"}").unwrap();
        let mut e = Errors::default();
        assert_eq!(f.string("Otp", &mut e).as_deref(), Some("1"));
    }

    #[test]
    fn a_value_that_does_not_convert_is_not_also_missing() {
        let f = json_fields(br#"{"MobileNumber":[1]}"#).unwrap();
        let mut e = Errors::default();
        let mobile = f.string("MobileNumber", &mut e);
        assert_eq!(e.required("MobileNumber", mobile), None);
        let Err(ApiError::Invalid(state)) = e.finish() else {
            panic!("valid")
        };
        assert_eq!(
            state["request.MobileNumber"],
            ["The value of MobileNumber could not be converted to System.String."]
        );
    }
}
