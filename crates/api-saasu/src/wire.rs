//! Saasu's request and response shapes (reference §1–§3) and their XML form as .NET's
//! `XmlSerializer` writes it: root element = class name with the `xsd`/`xsi` namespace
//! declarations and no default namespace, children in declaration order (base-class
//! members first), `xsi:nil="true"` for nulls. JSON output keys are exactly as
//! documented; input keys are matched case-insensitively (extract.rs).

use quick_xml::escape::escape;
use serde::Serialize;
use utoipa::ToSchema;

const NAMESPACES: &str = r#"xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#;

/// A response body with its XML form.
pub trait XmlBody {
    /// The .NET class name, the XML root.
    const ROOT: &'static str;
    fn write_children(&self, out: &mut String);
}

/// One element with text, or `xsi:nil` for `None`.
pub(crate) fn element(out: &mut String, name: &str, value: Option<&str>) {
    match value {
        Some(v) => {
            out.push_str(&format!("<{name}>{}</{name}>", escape(v)));
        }
        None => out.push_str(&format!(r#"<{name} xsi:nil="true" />"#)),
    }
}

/// The whole XML document of `body`.
pub fn xml_document<T: XmlBody>(body: &T) -> String {
    let mut out = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><{} {NAMESPACES}>"#,
        T::ROOT
    );
    body.write_children(&mut out);
    out.push_str(&format!("</{}>", T::ROOT));
    out
}

/// The body of `POST /authorisation/token`, `/token-2fa` and `/refresh`, as JSON,
/// XML or form fields. Which fields matter depends on the endpoint.
#[derive(Debug, Clone, Default, ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    /// `password` (token, token-2fa) or `refresh_token` (refresh).
    pub grant_type: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Requested scope (`full`); the grant always lists the user's files.
    pub scope: Option<String>,
    /// token-2fa: empty to have a code texted, then the 7-digit code (or a 6-digit
    /// authenticator code for a user with an authenticator app).
    pub verification_code: Option<String>,
    /// refresh: the refresh token of the grant.
    pub refresh_token: Option<String>,
}

/// `OAuthAccessTokenGrant`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenGrant {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    pub refresh_token: String,
    /// `full` and one `fileid:<n>` per file of the user, space-separated.
    pub scope: String,
}

impl XmlBody for TokenGrant {
    const ROOT: &'static str = "OAuthAccessTokenGrant";
    fn write_children(&self, out: &mut String) {
        element(out, "access_token", Some(&self.access_token));
        element(out, "token_type", Some(self.token_type));
        element(out, "expires_in", Some(&self.expires_in.to_string()));
        element(out, "refresh_token", Some(&self.refresh_token));
        element(out, "scope", Some(&self.scope));
    }
}

/// `OAuthGrantRequestError` (RFC 6749 §5.2).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant`, `unsupported_grant_type`,
    /// `2fa_code_required`, `temporarily_unavailable`.
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl XmlBody for OAuthError {
    const ROOT: &'static str = "OAuthGrantRequestError";
    fn write_children(&self, out: &mut String) {
        element(out, "error", Some(&self.error));
        if let Some(d) = &self.error_description {
            element(out, "error_description", Some(d));
        }
    }
}

/// `OptInTo2FARequest`.
#[derive(Debug, Clone, ToSchema)]
#[schema(as = OptInTo2FARequest)]
#[allow(dead_code)]
pub struct OptInRequest {
    /// Australian local form (`0499999999`) or E.164 (`+61499999999`).
    #[serde(rename = "MobileNumber")]
    pub mobile_number: String,
    /// Not in Saasu's contract: a user who already has an authenticator app (enrolled
    /// through another dialect) sends one of its codes here, so that a stolen token
    /// cannot add a phone as a way around it.
    #[serde(rename = "Otp")]
    pub otp: Option<String>,
}

/// `OptInTo2FAResult`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = OptInTo2FAResult)]
pub struct OptInResult {
    /// Names this opt-in in `verify-2fa-opt-in`.
    #[serde(rename = "ProviderUserId")]
    pub provider_user_id: i64,
}

impl XmlBody for OptInResult {
    const ROOT: &'static str = "OptInTo2FAResult";
    fn write_children(&self, out: &mut String) {
        element(
            out,
            "ProviderUserId",
            Some(&self.provider_user_id.to_string()),
        );
    }
}

/// `Verify2FAOptInRequest`.
#[derive(Debug, Clone, ToSchema)]
#[schema(as = Verify2FAOptInRequest)]
#[allow(dead_code)]
pub struct VerifyRequest {
    #[serde(rename = "ProviderUserId")]
    pub provider_user_id: i64,
    /// The 7-digit code texted at opt-in.
    #[serde(rename = "Otp")]
    pub otp: String,
}

/// `OptOutFrom2FARequest` (this server's design; the reference documents no body):
/// without `Otp` a code is texted to the verified mobile and the call answers 400 with
/// a message saying so; repeat it with that code, or with a code of the user's
/// authenticator app, to turn 2FA off.
#[derive(Debug, Clone, ToSchema)]
#[schema(as = OptOutFrom2FARequest)]
#[allow(dead_code)]
pub struct OptOutRequest {
    #[serde(rename = "Otp")]
    pub otp: Option<String>,
}

/// `Link` (hypermedia).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Link {
    pub rel: String,
    /// Absolute, carrying `FileId`.
    pub href: String,
    pub method: String,
    pub title: Option<String>,
}

/// `BaseResponseModel`: JSON writes `StatusMessage` first, XML `_links` first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BaseResponseModel {
    #[serde(rename = "StatusMessage")]
    pub status_message: Option<String>,
    #[serde(rename = "_links")]
    pub links: Vec<Link>,
}

impl XmlBody for BaseResponseModel {
    const ROOT: &'static str = "BaseResponseModel";
    fn write_children(&self, out: &mut String) {
        out.push_str("<_links>");
        for link in &self.links {
            out.push_str("<Link>");
            element(out, "rel", Some(&link.rel));
            element(out, "href", Some(&link.href));
            element(out, "method", Some(&link.method));
            element(out, "title", link.title.as_deref());
            out.push_str("</Link>");
        }
        out.push_str("</_links>");
        element(out, "StatusMessage", self.status_message.as_deref());
    }
}

/// Web API's `HttpError`: `{"Message": "..."}`, with `ModelState` for invalid models.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HttpError {
    #[serde(rename = "Message")]
    pub message: String,
    /// `request.<Property>` to messages.
    #[serde(rename = "ModelState", skip_serializing_if = "Option::is_none")]
    pub model_state: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

impl XmlBody for HttpError {
    const ROOT: &'static str = "Error";
    fn write_children(&self, out: &mut String) {
        element(out, "Message", Some(&self.message));
        if let Some(state) = &self.model_state {
            out.push_str("<ModelState>");
            for (key, messages) in state {
                // Keys such as `request.Otp` are valid element names; anything else is
                // replaced so the document stays well-formed.
                let name: String = key
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let name = if name.is_empty() {
                    "request".to_string()
                } else {
                    name
                };
                for m in messages {
                    element(out, &name, Some(m));
                }
            }
            out.push_str("</ModelState>");
        }
    }
}

/// A bare string body (Saasu's business errors): JSON `"..."`, XML `<string>`.
pub struct Text(pub String);

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl XmlBody for Text {
    const ROOT: &'static str = "string";
    fn write_children(&self, out: &mut String) {
        out.push_str(&escape(&self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_shapes() {
        let body = BaseResponseModel {
            status_message: Some("ok & done".into()),
            links: vec![Link {
                rel: "self".into(),
                href: "https://x/User?FileId=1".into(),
                method: "GET".into(),
                title: None,
            }],
        };
        assert_eq!(
            xml_document(&body),
            r#"<?xml version="1.0" encoding="utf-8"?><BaseResponseModel xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><_links><Link><rel>self</rel><href>https://x/User?FileId=1</href><method>GET</method><title xsi:nil="true" /></Link></_links><StatusMessage>ok &amp; done</StatusMessage></BaseResponseModel>"#
        );
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"StatusMessage":"ok & done","_links":[{"rel":"self","href":"https://x/User?FileId=1","method":"GET","title":null}]}"#
        );
        assert!(xml_document(&OptInResult {
            provider_user_id: 7
        })
        .contains("<ProviderUserId>7</ProviderUserId></OptInTo2FAResult>"));
    }
}

/// The answer of `GET authorisation/ping` for a valid token: a bare boolean, as Saasu's
/// help page documents it (JSON `true`; XML `<boolean>true</boolean>` as `XmlSerializer`
/// writes a `bool`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(transparent)]
pub struct PingResult(pub bool);

impl XmlBody for PingResult {
    const ROOT: &'static str = "boolean";
    fn write_children(&self, out: &mut String) {
        out.push_str(if self.0 { "true" } else { "false" });
    }
}
