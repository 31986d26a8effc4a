//! Request extractors with ASP.NET Core MVC's behaviour: JSON bodies bound
//! case-insensitively and validated like `[ApiController]` + `[Required]`, and the
//! JwtBearer scheme in front of protected actions.

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::{header, StatusCode};
use actix_web::{FromRequest, HttpRequest};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use twofa_core::{CodeFormat, CodePurpose, Core, Origin, Template};
use twofa_web::{read_body, WebError};

use crate::error::ApiError;
use crate::{tokens, AuthEndpointsSettings, DIALECT};

pub(crate) fn core(req: &HttpRequest) -> Result<Core, ApiError> {
    twofa_web::core(req)
}

pub(crate) fn settings(req: &HttpRequest) -> AuthEndpointsSettings {
    twofa_web::settings(req)
}

pub(crate) fn origin(req: &HttpRequest) -> Origin {
    twofa_web::origin(req, DIALECT)
}

impl WebError for ApiError {
    fn no_core() -> Self {
        ApiError::Internal
    }
    fn unreadable_body(_: PayloadError) -> Self {
        ApiError::validation("", "The request body could not be read.")
    }
    fn body_too_large() -> Self {
        ApiError::Problem(StatusCode::PAYLOAD_TOO_LARGE)
    }
}

/// Emails the user a fresh code of `purpose` rendered into `template`.
pub(crate) async fn email_code(
    req: &HttpRequest,
    core: &Core,
    user_id: String,
    purpose: CodePurpose,
    format: CodeFormat,
    template: Template,
) -> Result<(), ApiError> {
    core.email_code(origin(req), user_id, purpose, format, template)
        .await?;
    Ok(())
}

/// One string property of a request DTO.
pub struct Field {
    /// The C# property name, used in validation messages (`Token`).
    pub name: &'static str,
    pub required: bool,
    /// `[EmailAddress]`.
    pub email: bool,
}

/// A request DTO whose properties are all `string?`, as in the reference.
pub trait Dto: Sized {
    const FIELDS: &'static [Field];
    /// Values in the order of `FIELDS`; required ones are present and non-blank.
    fn from_values(values: Vec<Option<String>>) -> Self;
}

/// `camelCase` of a C# property name, the JSON name in paths like `$.token`.
fn json_name(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// What `[EmailAddress]` accepts: exactly one `@`, not first or last.
fn looks_like_email(s: &str) -> bool {
    let at = s.matches('@').count();
    at == 1 && !s.starts_with('@') && !s.ends_with('@')
}

fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json"
        || mime == "text/json"
        || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Binds the JSON body to `T` as System.Text.Json with web defaults would, then
/// validates it: 415 for a non-JSON content type, kind D for everything else.
pub(crate) fn bind<T: Dto>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(
            "",
            "A non-empty request body is required.",
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(
            "$",
            format!(
                "The JSON value could not be parsed. Path: $ | LineNumber: {} | BytePositionInLine: {}.",
                e.line().saturating_sub(1),
                e.column().saturating_sub(1)
            ),
        )
    })?;
    let Value::Object(object) = value else {
        return Err(ApiError::validation(
            "$",
            "The JSON value could not be converted to the request type. Path: $ | LineNumber: 0 | BytePositionInLine: 1.",
        ));
    };
    // Property names match case-insensitively; the last duplicate wins.
    let lookup = |name: &str| {
        object
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let mut values = Vec::with_capacity(T::FIELDS.len());
    let mut type_errors = BTreeMap::new();
    for field in T::FIELDS {
        match lookup(field.name) {
            None | Some(Value::Null) => values.push(None),
            Some(Value::String(s)) => values.push(Some(s.clone())),
            Some(_) => {
                let path = format!("$.{}", json_name(field.name));
                type_errors.insert(
                    path.clone(),
                    vec![format!(
                        "The JSON value could not be converted to System.String. Path: {path} | LineNumber: 0 | BytePositionInLine: 0."
                    )],
                );
                values.push(None);
            }
        }
    }
    // A deserialization error stops binding: only the JSON errors are reported.
    if !type_errors.is_empty() {
        return Err(ApiError::Validation(type_errors));
    }
    let mut errors = BTreeMap::new();
    for (field, value) in T::FIELDS.iter().zip(&values) {
        let blank = value.as_deref().is_none_or(|s| s.trim().is_empty());
        let mut messages = Vec::new();
        if field.required && blank {
            messages.push(format!("The {} field is required.", field.name));
        } else if field.email && !blank && !value.as_deref().is_some_and(looks_like_email) {
            messages.push(format!(
                "The {} field is not a valid e-mail address.",
                field.name
            ));
        }
        if !messages.is_empty() {
            errors.insert(field.name.to_string(), messages);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(T::from_values(values))
}

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// A JSON request body bound and validated as `[ApiController]` does.
pub struct Json<T>(pub T);

impl<T: Dto + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = settings(req).max_body_bytes;
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        let payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(ApiError::Problem(StatusCode::UNSUPPORTED_MEDIA_TYPE));
            }
            let body = read_body::<ApiError, _>(payload, limit).await?;
            bind::<T>(&body).map(Json)
        })
    }
}

/// A caller with a valid access token: the user id from its `id` claim.
pub struct Authenticated {
    pub user_id: String,
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = twofa_web::bearer(req);
        let core = core(req);
        let settings = settings(req);
        Box::pin(async move {
            let rejected = ApiError::Challenge {
                token_presented: true,
            };
            let token = token.ok_or(ApiError::Challenge {
                token_presented: false,
            })?;
            let core = core?;
            let (user_id, session_id) =
                tokens::verify_access(&core, &settings, &token).ok_or(rejected)?;
            if core.session_ended(session_id).await? {
                return Err(ApiError::Challenge {
                    token_presented: true,
                });
            }
            Ok(Authenticated { user_id })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req {
        token: Option<String>,
        email: Option<String>,
    }
    impl Dto for Req {
        const FIELDS: &'static [Field] = &[
            Field {
                name: "Token",
                required: true,
                email: false,
            },
            Field {
                name: "Email",
                required: false,
                email: true,
            },
        ];
        fn from_values(mut v: Vec<Option<String>>) -> Self {
            let email = v.pop().flatten();
            Req {
                token: v.pop().flatten(),
                email,
            }
        }
    }

    fn errors(r: Result<Req, ApiError>) -> BTreeMap<String, Vec<String>> {
        match r {
            Err(ApiError::Validation(e)) => e,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn binding_is_case_insensitive_and_validates() {
        let r = bind::<Req>(br#"{"TOKEN":"1","eMail":"a@b"}"#).unwrap();
        assert_eq!(r.token.as_deref(), Some("1"));
        assert_eq!(r.email.as_deref(), Some("a@b"));
        assert_eq!(
            errors(bind::<Req>(br#"{"token":"  "}"#))["Token"],
            vec!["The Token field is required."]
        );
        assert!(errors(bind::<Req>(br#"{"token":123}"#)).contains_key("$.token"));
        assert!(errors(bind::<Req>(b"")).contains_key(""));
        assert!(errors(bind::<Req>(b"{nope")).contains_key("$"));
        assert!(errors(bind::<Req>(br#"{"token":"1","email":"x"}"#)).contains_key("Email"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/plain"));
    }
}
