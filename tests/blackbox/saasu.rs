//! The Saasu dialect driven as Saasu's clients drive it: the OAuth password grant,
//! token-2fa with texted codes (captured by a real HTTP SMS gateway on loopback),
//! FileId scoping, legacy WsAccessKey, JSON and XML.

use reqwest::blocking::RequestBuilder;
use serde_json::{json, Value};

use crate::harness::{code, unix_time, Backend, Server};
use crate::sms::SmsGateway;

const NS: &str = r#"xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#;
const DENIED: &str = "Authorization has been denied for this request.";

pub fn start_with_sms(backend: Backend, test: &str) -> Option<(Server, SmsGateway)> {
    let gateway = SmsGateway::start();
    let server = Server::start_with(
        backend,
        test,
        &[
            ("TWOFA_SMS_WEBHOOK_URL", &gateway.url),
            ("TWOFA_SMS_WEBHOOK_TOKEN", "gw-secret"),
            ("TWOFA_SMS_TIMEOUT", "2"),
        ],
    )?;
    Some((server, gateway))
}

fn add_user(s: &Server, user: &str, password: &str, files: &[i64]) {
    let mut args = vec!["user", "add", "--username", user, "--password-stdin"];
    let files: Vec<String> = files.iter().map(i64::to_string).collect();
    for f in &files {
        args.extend(["--file-id", f]);
    }
    s.cli(&args, Some(&format!("{password}\n")));
}

/// Status and body text.
fn send(r: RequestBuilder) -> (u16, String) {
    let r = r.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn with_bearer(r: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    }
}

/// A JSON POST; the answer as JSON (Null when empty).
fn post(s: &Server, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let r = s
        .http
        .post(s.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    let (status, text) = send(with_bearer(r, token));
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, value)
}

/// An XML POST with `Accept: application/xml`; the answer's text.
fn post_xml(s: &Server, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let r = s
        .http
        .post(s.url(path))
        .header("Content-Type", "application/xml")
        .header("Accept", "application/xml")
        .body(body.to_string());
    send(with_bearer(r, token))
}

/// The text of the first `<tag>` in an XML document.
fn xml_text(doc: &str, tag: &str) -> Option<String> {
    let start = doc.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = doc[start..].find(&format!("</{tag}>"))? + start;
    Some(doc[start..end].to_string())
}

fn ping(s: &Server, path: &str, token: &str) -> u16 {
    send(s.http.get(s.url(path)).bearer_auth(token)).0
}

fn password_grant(user: &str, password: &str, code: &str) -> Value {
    json!({"grant_type": "password", "username": user, "password": password,
           "scope": "full", "verification_code": code})
}

pub(crate) fn token(s: &Server, user: &str, password: &str) -> Value {
    let (status, grant) = post(
        s,
        "/authorisation/token",
        None,
        password_grant(user, password, ""),
    );
    assert_eq!(status, 200, "{grant}");
    grant
}

fn access(grant: &Value) -> String {
    grant["access_token"].as_str().unwrap().to_string()
}

/// Opts `user` in with `mobile` and verifies it with the texted code.
fn opt_in(s: &Server, sms: &SmsGateway, access: &str, file: i64, mobile: &str) {
    opt_in_with(s, sms, access, file, json!({ "MobileNumber": mobile }));
}

/// The same with any opt-in body (e.g. with an authenticator code as `Otp`).
fn opt_in_with(s: &Server, sms: &SmsGateway, access: &str, file: i64, request: Value) {
    let before = sms.count();
    let (status, body) = post(
        s,
        &format!("/User/opt-in-to-2fa?FileId={file}"),
        Some(access),
        request,
    );
    assert_eq!(status, 200, "{body}");
    let otp = sms.nth(before).code(7);
    let (status, body) = post(
        s,
        &format!("/User/verify-2fa-opt-in?FileId={file}"),
        Some(access),
        json!({"ProviderUserId": body["ProviderUserId"], "Otp": otp}),
    );
    assert_eq!(status, 200, "{body}");
}

/// token-2fa with an empty code: 401 2fa_code_required and a text; returns its code.
fn texted_login_code(s: &Server, sms: &SmsGateway, user: &str, password: &str) -> String {
    let before = sms.count();
    let (status, body) = post(
        s,
        "/authorisation/token-2fa",
        None,
        password_grant(user, password, ""),
    );
    assert_eq!((status, &body["error"]), (401, &json!("2fa_code_required")));
    assert_eq!(sms.count(), before + 1);
    sms.last().code(7)
}

pub fn saasu_sms_flow(s: Server, sms: SmsGateway) {
    add_user(&s, "kim", "kim-pw", &[12, 40]);
    let grant = token(&s, "kim", "kim-pw");
    assert_eq!(grant["token_type"], "Bearer");
    assert_eq!(grant["expires_in"], 10800);
    assert_eq!(grant["scope"], "full fileid:12 fileid:40");
    let first = access(&grant);
    let refresh_token = grant["refresh_token"].as_str().unwrap().to_string();
    // The .NET SDK asks for `authorisation/Ping`; a trailing slash is fine too.
    for path in [
        "/authorisation/ping",
        "/authorisation/Ping",
        "/AUTHORISATION/ping/",
    ] {
        assert_eq!(ping(&s, path, &first), 200, "{path}");
    }
    assert_eq!(ping(&s, "/authorisation/ping", "bogus"), 401);

    // Opt in: a 7-digit code texted to the normalised number through the gateway.
    let (status, body) = post(
        &s,
        "/User/opt-in-to-2fa?FileId=12",
        Some(&first),
        json!({"mobileNUMBER": "0499 999 999"}),
    );
    assert_eq!(status, 200, "{body}");
    let provider = body["ProviderUserId"].as_i64().unwrap();
    assert!(provider > 0 && provider <= i64::from(i32::MAX));
    assert_eq!(body.as_object().unwrap().len(), 1);
    let text = sms.nth(0);
    assert_eq!(text.to, "+61499999999");
    assert_eq!(text.authorization.as_deref(), Some("Bearer gw-secret"));
    assert_eq!(text.path, "/sms/send");
    let otp = text.code(7);
    // Until verified, nothing changes for logins.
    token(&s, "kim", "kim-pw");
    // Another ProviderUserId is refused like a wrong code.
    let (status, body) = post(
        &s,
        "/User/verify-2fa-opt-in?FileId=12",
        Some(&first),
        json!({"ProviderUserId": provider + 1, "Otp": otp}),
    );
    assert_eq!((status, body), (400, json!("Invalid one-time password.")));
    let (status, body) = post(
        &s,
        "/User/verify-2fa-opt-in?fileid=12",
        Some(&first),
        json!({"provideruserid": provider.to_string(), "otp": otp}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["StatusMessage"],
        "Two-factor authentication has been enabled."
    );
    let link = &body["_links"][0];
    assert_eq!(link["rel"], "self");
    assert_eq!(link["href"], s.url("/User?FileId=12"));
    assert_eq!(link["method"], "GET");
    assert_eq!(link["title"], Value::Null);
    // The same code again is refused (single use).
    let (status, body) = post(
        &s,
        "/User/verify-2fa-opt-in?FileId=12",
        Some(&first),
        json!({"ProviderUserId": provider, "Otp": otp}),
    );
    assert_eq!(
        (status, body),
        (400, json!("Two-factor authentication is already enabled."))
    );

    // Now a plain token request needs 2FA and sends nothing.
    let texts = sms.count();
    let (status, body) = post(
        &s,
        "/authorisation/token",
        None,
        password_grant("kim", "kim-pw", ""),
    );
    assert_eq!((status, &body["error"]), (401, &json!("2fa_code_required")));
    assert_eq!(sms.count(), texts);
    // token-2fa: the empty code texts one; a wrong one is refused; the right one grants.
    let login_code = texted_login_code(&s, &sms, "kim", "kim-pw");
    assert_eq!(sms.last().to, "+61499999999");
    let wrong = if login_code == "0000000" {
        "1111111"
    } else {
        "0000000"
    };
    let (status, body) = post(
        &s,
        "/authorisation/token-2fa",
        None,
        password_grant("kim", "kim-pw", wrong),
    );
    assert_eq!((status, &body["error"]), (401, &json!("invalid_grant")));
    let (status, grant) = post(
        &s,
        "/authorisation/token-2fa",
        None,
        password_grant("kim", "kim-pw", &login_code),
    );
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["scope"], "full fileid:12 fileid:40");
    // Reused code: refused.
    let (status, body) = post(
        &s,
        "/authorisation/token-2fa",
        None,
        password_grant("kim", "kim-pw", &login_code),
    );
    assert_eq!((status, &body["error"]), (401, &json!("invalid_grant")));

    // Refresh: new access token, same refresh token, the previous access token is dead.
    let second = access(&grant);
    let refresh2 = grant["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh2, refresh_token);
    let (status, refreshed) = post(
        &s,
        "/authorisation/refresh",
        None,
        json!({"grant_type": "refresh_token", "refresh_token": refresh2, "scope": "full"}),
    );
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["refresh_token"], refresh2.as_str());
    let third = access(&refreshed);
    assert_ne!(third, second);
    assert_eq!(ping(&s, "/authorisation/ping", &second), 401);
    assert_eq!(ping(&s, "/authorisation/ping", &third), 200);
    assert_eq!(ping(&s, "/authorisation/ping", &refresh2), 401);
    let (status, _) = post(
        &s,
        "/User/opt-out-from-2fa?FileId=40",
        Some(&second),
        json!({}),
    );
    assert_eq!(status, 401);
    let (status, body) = post(
        &s,
        "/authorisation/refresh",
        None,
        json!({"grant_type": "refresh_token", "refresh_token": "nope"}),
    );
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")));

    // No other dialect lets kim in on the password alone.
    let (status, body) = crate::ucloud::login_form(&s, "kim", "kim-pw");
    assert!(
        status >= 400 && body.get("accessToken").is_none(),
        "{status} {body}"
    );

    // Opting out takes a fresh texted code: a token alone is not enough.
    let texts = sms.count();
    let (status, body) = post(
        &s,
        "/User/opt-out-from-2fa?FileId=40",
        Some(&third),
        json!({}),
    );
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("Send it as Otp"), "{body}");
    assert_eq!(sms.count(), texts + 1);
    let opt_out_code = sms.last().code(7);
    let (status, body) = post(
        &s,
        "/User/opt-out-from-2fa?FileId=40",
        Some(&third),
        json!({"Otp": wrong}),
    );
    assert_eq!((status, body), (400, json!("Invalid one-time password.")));
    // A login code is not an opt-out code (purpose-bound).
    let login_code = texted_login_code(&s, &sms, "kim", "kim-pw");
    let (status, _) = post(
        &s,
        "/User/opt-out-from-2fa?FileId=40",
        Some(&third),
        json!({"Otp": login_code}),
    );
    assert_eq!(status, 400);
    let (status, body) = post(
        &s,
        "/User/opt-out-from-2fa?FileId=40",
        Some(&third),
        json!({"Otp": opt_out_code}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["StatusMessage"],
        "Two-factor authentication has been disabled."
    );
    assert_eq!(body["_links"][0]["href"], s.url("/User?FileId=40"));
    token(&s, "kim", "kim-pw");
    let (status, body) = post(
        &s,
        "/User/opt-out-from-2fa?FileId=40",
        Some(&third),
        json!({}),
    );
    assert_eq!(
        (status, body),
        (400, json!("Two-factor authentication is not enabled."))
    );
}

pub fn saasu_xml_flow(s: Server, sms: SmsGateway) {
    add_user(&s, "lee", "lee-pw", &[7]);
    // Form-encoded token request, XML answer by Accept.
    let (status, doc) = send(
        s.http
            .post(s.url("/authorisation/token"))
            .header("Accept", "text/xml")
            .form(&[
                ("grant_type", "password"),
                ("username", "lee"),
                ("password", "lee-pw"),
                ("scope", "full"),
            ]),
    );
    assert_eq!(status, 200, "{doc}");
    assert!(
        doc.starts_with(&format!(
            r#"<?xml version="1.0" encoding="utf-8"?><OAuthAccessTokenGrant {NS}>"#
        )),
        "{doc}"
    );
    assert_eq!(xml_text(&doc, "scope").as_deref(), Some("full fileid:7"));
    let token = xml_text(&doc, "access_token").unwrap();

    let (status, doc) = post_xml(
        &s,
        "/User/opt-in-to-2fa?FileId=7",
        Some(&token),
        &format!("<OptInTo2FARequest {NS}>\n  <MobileNumber>+61 412 345 678</MobileNumber>\n</OptInTo2FARequest>"),
    );
    assert_eq!(status, 200, "{doc}");
    assert!(
        doc.contains(&format!("<OptInTo2FAResult {NS}><ProviderUserId>")),
        "{doc}"
    );
    let provider = xml_text(&doc, "ProviderUserId").unwrap();
    let text = sms.nth(0);
    assert_eq!(text.to, "+61412345678");
    let (status, doc) = post_xml(
        &s,
        "/user/VERIFY-2fa-opt-in?FileId=7",
        Some(&token),
        &format!(
            "<Verify2FAOptInRequest {NS}>\n  <ProviderUserId>{provider}</ProviderUserId>\n  <Otp>{}</Otp>\n</Verify2FAOptInRequest>",
            text.code(7)
        ),
    );
    assert_eq!(status, 200, "{doc}");
    assert!(doc.contains(&format!(
        r#"<BaseResponseModel {NS}><_links><Link><rel>self</rel><href>{}</href><method>GET</method><title xsi:nil="true" /></Link></_links><StatusMessage>Two-factor authentication has been enabled.</StatusMessage></BaseResponseModel>"#,
        s.url("/User?FileId=7")
    )), "{doc}");

    let grant_xml = |code: &str| {
        format!("<OAuthAuthorisationGrantRequest><grant_type>password</grant_type><username>lee</username><password>lee-pw</password><scope>full</scope><verification_code>{code}</verification_code></OAuthAuthorisationGrantRequest>")
    };
    let (status, doc) = post_xml(&s, "/authorisation/token-2fa", None, &grant_xml(""));
    assert_eq!(status, 401, "{doc}");
    assert!(
        doc.contains(&format!(
            "<OAuthGrantRequestError {NS}><error>2fa_code_required</error>"
        )),
        "{doc}"
    );
    let code = sms.nth(1).code(7);
    let (status, doc) = post_xml(&s, "/authorisation/token-2fa", None, &grant_xml(&code));
    assert_eq!(status, 200, "{doc}");
    let refresh_token = xml_text(&doc, "refresh_token").unwrap();
    let old = xml_text(&doc, "access_token").unwrap();
    let (status, doc) = post_xml(
        &s,
        "/authorisation/refresh",
        None,
        &format!("<R><grant_type>refresh_token</grant_type><refresh_token>{refresh_token}</refresh_token></R>"),
    );
    assert_eq!(status, 200, "{doc}");
    assert_eq!(xml_text(&doc, "refresh_token").unwrap(), refresh_token);
    let new = xml_text(&doc, "access_token").unwrap();
    assert_eq!(ping(&s, "/authorisation/ping", &old), 401);
    let (status, doc) = send(
        s.http
            .get(s.url("/authorisation/ping"))
            .header("Accept", "application/xml")
            .bearer_auth(&new),
    );
    assert_eq!(status, 200);
    // Saasu documents the ping's answer as a boolean (issue 11).
    assert!(doc.contains(">true</boolean>"), "{doc}");

    // Errors in XML: ModelState, business strings, 401.
    let (status, doc) = post_xml(
        &s,
        "/User/verify-2fa-opt-in?FileId=7",
        Some(&new),
        &format!("<Verify2FAOptInRequest {NS}><ProviderUserId>{provider}</ProviderUserId></Verify2FAOptInRequest>"),
    );
    assert_eq!(status, 400, "{doc}");
    assert!(doc.contains("<Message>The request is invalid.</Message><ModelState><request.Otp>The Otp field is required.</request.Otp></ModelState>"), "{doc}");
    let (status, doc) = post_xml(
        &s,
        "/User/opt-out-from-2fa?FileId=7",
        Some(&new),
        "<OptOutFrom2FARequest><Otp>123</Otp></OptOutFrom2FARequest>",
    );
    assert_eq!(status, 400, "{doc}");
    assert!(doc.contains("<string xmlns:xsd"), "{doc}");
    let (status, doc) = post_xml(&s, "/User/opt-out-from-2fa?FileId=8", Some(&new), "");
    assert_eq!(status, 401);
    assert!(
        doc.contains(&format!("<Message>{DENIED}</Message>")),
        "{doc}"
    );
}

pub fn saasu_file_scoping(s: Server, sms: SmsGateway) {
    add_user(&s, "ann", "ann-pw", &[12]);
    add_user(&s, "bob", "bob-pw", &[]);
    let bob = token(&s, "bob", "bob-pw");
    let bob_scope = bob["scope"].as_str().unwrap().to_string();
    let bob_file: i64 = bob_scope
        .strip_prefix("full fileid:")
        .unwrap_or_else(|| panic!("{bob_scope}"))
        .parse()
        .unwrap();
    assert_ne!(bob_file, 12);
    let ann = access(&token(&s, "ann", "ann-pw"));
    let opt_in_body = json!({"MobileNumber": "0412000111"});
    for path in [
        "/User/opt-in-to-2fa",
        "/User/opt-in-to-2fa?FileId=0",
        "/User/opt-in-to-2fa?FileId=abc",
        &format!("/User/opt-in-to-2fa?FileId={bob_file}"),
    ] {
        let (status, body) = post(&s, path, Some(&ann), opt_in_body.clone());
        assert_eq!(
            (status, body),
            (401, json!({ "Message": DENIED })),
            "{path}"
        );
    }
    let (status, _) = post(
        &s,
        "/User/opt-in-to-2fa?FileId=12",
        None,
        opt_in_body.clone(),
    );
    assert_eq!(status, 401);
    assert_eq!(sms.count(), 0);

    // Legacy WsAccessKey: printed once, acts as its user on its file only.
    let key = s
        .cli(
            &["user", "ws-key", "--username", "ann", "--file-id", "12"],
            None,
        )
        .trim()
        .to_string();
    assert!(key.len() >= 32, "{key}");
    let (status, body) = post(
        &s,
        &format!("/User/opt-in-to-2fa?wsaccesskey={key}&fileid=12"),
        None,
        opt_in_body.clone(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(sms.nth(0).to, "+61412000111");
    for path in [
        format!("/User/opt-in-to-2fa?WsAccessKey={key}&FileId={bob_file}"),
        format!("/User/opt-in-to-2fa?WsAccessKey={key}"),
        "/User/opt-in-to-2fa?WsAccessKey=0000&FileId=12".to_string(),
    ] {
        let (status, _) = post(&s, &path, None, opt_in_body.clone());
        assert_eq!(status, 401, "{path}");
    }
    // A key for a file the user does not have is not issued.
    let mut cmd = s.command();
    let out = cmd
        .args([
            "user",
            "ws-key",
            "--username",
            "ann",
            "--file-id",
            &bob_file.to_string(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Only the hash is stored.
    if let Some(path) = s.sqlite_file() {
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));
    }
    // One mobile number cannot serve two users: ann verifies it, bob cannot take it.
    let (_, pending) = post(
        &s,
        &format!("/User/opt-in-to-2fa?WsAccessKey={key}&FileId=12"),
        None,
        opt_in_body.clone(),
    );
    let otp2 = sms.nth(1).code(7);
    let (status, body) = post(
        &s,
        &format!("/User/verify-2fa-opt-in?WsAccessKey={key}&FileId=12"),
        None,
        json!({"ProviderUserId": pending["ProviderUserId"], "Otp": otp2}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &s,
        &format!("/User/opt-in-to-2fa?FileId={bob_file}"),
        Some(&access(&bob)),
        json!({"MobileNumber": "+61412000111"}),
    );
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("already used"), "{body}");
    assert_eq!(sms.count(), 2);
}

pub fn saasu_code_rules(s: Server, sms: SmsGateway) {
    add_user(&s, "cat", "cat-pw", &[5]);
    let t = access(&token(&s, "cat", "cat-pw"));
    opt_in(&s, &sms, &t, 5, "0499000111");
    // Expired: the code ages past its ten minutes.
    let expired = texted_login_code(&s, &sms, "cat", "cat-pw");
    s.sql("UPDATE one_time_codes SET expires_at = created_at - 1 WHERE purpose = 'sms-login'");
    let (status, body) = post(
        &s,
        "/authorisation/token-2fa",
        None,
        password_grant("cat", "cat-pw", &expired),
    );
    assert_eq!((status, &body["error"]), (401, &json!("invalid_grant")));
    // A newer code replaces the older one.
    let older = texted_login_code(&s, &sms, "cat", "cat-pw");
    let newer = texted_login_code(&s, &sms, "cat", "cat-pw");
    if older != newer {
        let (status, _) = post(
            &s,
            "/authorisation/token-2fa",
            None,
            password_grant("cat", "cat-pw", &older),
        );
        assert_eq!(status, 401);
    }
    // Send limit: five texts per ten minutes (opt-in + 3 logins so far, one more fits).
    texted_login_code(&s, &sms, "cat", "cat-pw");
    let texts = sms.count();
    let r = s
        .http
        .post(s.url("/authorisation/token-2fa"))
        .json(&password_grant("cat", "cat-pw", ""))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Nothing failed here: the answer does not say so.
    let body: Value = r.json().unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("Too many requests."),
        "{body}"
    );
    assert_eq!(sms.count(), texts);
    s.sql("UPDATE one_time_codes SET created_at = created_at - 601");
    s.sql("DELETE FROM throttles");
    // Brute force: five wrong codes lock the user's codes, even the right one.
    let right = texted_login_code(&s, &sms, "cat", "cat-pw");
    let wrong = if right == "1234567" {
        "7654321"
    } else {
        "1234567"
    };
    for _ in 0..5 {
        let (status, _) = post(
            &s,
            "/authorisation/token-2fa",
            None,
            password_grant("cat", "cat-pw", wrong),
        );
        assert_eq!(status, 401);
    }
    let (status, body) = post(
        &s,
        "/authorisation/token-2fa",
        None,
        password_grant("cat", "cat-pw", &right),
    );
    assert_eq!(status, 429, "{body}");
    // Codes are stored hashed.
    if let Some(path) = s.sqlite_file() {
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.windows(7).any(|w| w == right.as_bytes()));
    }
    // The SMS factor is a factor everywhere: ZStack (which cannot carry a texted code)
    // refuses the password alone, and the operator sees and resets it.
    s.sql("DELETE FROM throttles");
    let (status, body) = crate::zstack::login(&s, "cat", "cat-pw", &[]);
    assert!(
        status >= 400 && body.get("inventory").is_none(),
        "{status} {body}"
    );
    let list = s.cli(&["user", "list"], None);
    assert!(
        list.lines()
            .any(|l| l.starts_with("cat\t") && l.ends_with("2fa") && !l.contains("no-2fa")),
        "{list}"
    );
    s.cli(&["user", "reset-2fa", "cat"], None);
    token(&s, "cat", "cat-pw");
}

pub fn saasu_webhook_down(s: Server, sms: SmsGateway) {
    add_user(&s, "dan", "dan-pw", &[9]);
    let t = access(&token(&s, "dan", "dan-pw"));
    sms.answer(500);
    let (status, body) = post(
        &s,
        "/User/opt-in-to-2fa?FileId=9",
        Some(&t),
        json!({"MobileNumber": "0499111222"}),
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body.as_str().unwrap().contains("could not be sent"),
        "{body}"
    );
    // A gateway that does not answer in time fails the same way.
    sms.answer(200);
    sms.delay(std::time::Duration::from_secs(4));
    let (status, _) = post(
        &s,
        "/User/opt-in-to-2fa?FileId=9",
        Some(&t),
        json!({"MobileNumber": "0499111222"}),
    );
    assert_eq!(status, 503);
    sms.delay(std::time::Duration::ZERO);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let late = sms.all();
    // No half-done opt-in: no pending number, no usable code, logins unchanged.
    for text in &late {
        let (status, body) = post(
            &s,
            "/User/verify-2fa-opt-in?FileId=9",
            Some(&t),
            json!({"ProviderUserId": 1, "Otp": text.code(7)}),
        );
        assert_eq!((status, body), (400, json!("Invalid one-time password.")));
    }
    token(&s, "dan", "dan-pw");
    let (status, body) = post(&s, "/User/opt-out-from-2fa?FileId=9", Some(&t), json!({}));
    assert_eq!(
        (status, body),
        (400, json!("Two-factor authentication is not enabled."))
    );
    // With the gateway back, the opt-in works.
    opt_in(&s, &sms, &t, 9, "0499111222");
}

pub fn saasu_totp_from_ucloud(s: Server, sms: SmsGateway) {
    add_user(&s, "eve", "eve-pw", &[3]);
    let secret = crate::ucloud::enroll(&s, "eve", "eve-pw");
    let (status, body) = post(
        &s,
        "/authorisation/token",
        None,
        password_grant("eve", "eve-pw", ""),
    );
    assert_eq!((status, &body["error"]), (401, &json!("2fa_code_required")));
    let (status, body) = post(
        &s,
        "/authorisation/token-2fa",
        None,
        password_grant("eve", "eve-pw", ""),
    );
    assert_eq!((status, &body["error"]), (401, &json!("2fa_code_required")));
    assert_eq!(sms.count(), 0, "no SMS for an authenticator user");
    // The enrollment used the current step; the next one is fresh.
    let (status, grant) = post(
        &s,
        "/authorisation/token-2fa",
        None,
        password_grant("eve", "eve-pw", &code(&secret, 30)),
    );
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["scope"], "full fileid:3");
    let (status, body) = post(
        &s,
        "/authorisation/token-2fa",
        None,
        password_grant("eve", "eve-pw", &code(&secret, 30)),
    );
    assert_eq!((status, &body["error"]), (401, &json!("invalid_grant")));
    // Adding a phone takes the authenticator too: a stolen token alone adds no way
    // around it, and nothing is texted.
    let t = access(&grant);
    let (status, body) = post(
        &s,
        "/User/opt-in-to-2fa?FileId=3",
        Some(&t),
        json!({"MobileNumber": "0499222333"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.as_str().unwrap().contains("authenticator"), "{body}");
    assert_eq!(sms.count(), 0);
    // The proof is a code of a later time step than the login's: wait for the next.
    let now = unix_time().as_secs();
    std::thread::sleep(std::time::Duration::from_secs(30 - now % 30 + 1));
    opt_in_with(
        &s,
        &sms,
        &t,
        3,
        json!({"MobileNumber": "0499222333", "Otp": code(&secret, 30)}),
    );
    // With SMS too, opting out of SMS can be proven with a texted code.
    let (status, _) = post(&s, "/User/opt-out-from-2fa?FileId=3", Some(&t), json!({}));
    assert_eq!(status, 400);
    let (status, body) = post(
        &s,
        "/User/opt-out-from-2fa?FileId=3",
        Some(&t),
        json!({"Otp": sms.last().code(7)}),
    );
    assert_eq!(status, 200, "{body}");
}

pub fn saasu_bad_input(s: Server, _sms: SmsGateway) {
    add_user(&s, "fay", "fay-pw", &[4]);
    let t = access(&token(&s, "fay", "fay-pw"));
    let raw = |path: &str, content_type: &str, body: &str| {
        let r = s
            .http
            .post(s.url(path))
            .bearer_auth(&t)
            .header("Content-Type", content_type)
            .body(body.to_string());
        let (status, text) = send(r);
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
        )
    };
    let (status, body) = raw(
        "/User/verify-2fa-opt-in?FileId=4",
        "application/json",
        "{nope",
    );
    assert_eq!(status, 400);
    assert_eq!(body["Message"], "The request is invalid.");
    let (status, body) = raw("/User/verify-2fa-opt-in?FileId=4", "application/json", "");
    assert_eq!(status, 400);
    assert_eq!(
        body["ModelState"]["request.Otp"][0],
        "The Otp field is required."
    );
    assert_eq!(
        body["ModelState"]["request.ProviderUserId"][0],
        "The ProviderUserId field is required."
    );
    let (status, body) = raw(
        "/User/verify-2fa-opt-in?FileId=4",
        "text/json",
        r#"{"ProviderUserId":"x","Otp":[1]}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["ModelState"]["request.ProviderUserId"].is_array(),
        "{body}"
    );
    for mobile in ["", "12", "abc", "0499"] {
        let (status, body) = raw(
            "/User/opt-in-to-2fa?FileId=4",
            "application/json",
            &json!({ "MobileNumber": mobile }).to_string(),
        );
        assert_eq!(status, 400, "{mobile}");
        assert_eq!(body["Message"], "The request is invalid.", "{mobile}");
    }
    let (status, _) = raw("/User/opt-in-to-2fa?FileId=4", "application/xml", "<a><b>");
    assert_eq!(status, 400);
    let (status, _) = raw("/User/opt-in-to-2fa?FileId=4", "text/plain", "hi");
    assert_eq!(status, 415);
    let (status, _) = raw(
        "/User/opt-in-to-2fa?FileId=4",
        "application/json",
        &"x".repeat(100_000),
    );
    assert_eq!(status, 413);
    let (status, body) = send(
        s.http
            .get(s.url("/User/opt-in-to-2fa?FileId=4"))
            .bearer_auth(&t),
    );
    assert_eq!(status, 405, "{body}");
    // OAuth errors.
    let (status, body) = post(
        &s,
        "/authorisation/token",
        None,
        password_grant("fay", "wrong", ""),
    );
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")));
    let (status, body) = post(
        &s,
        "/authorisation/token",
        None,
        password_grant("nobody", "x", ""),
    );
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")));
    let (status, body) = post(
        &s,
        "/authorisation/token",
        None,
        json!({"grant_type": "client_credentials"}),
    );
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("unsupported_grant_type"))
    );
    let (status, body) = post(
        &s,
        "/authorisation/token",
        None,
        json!({"grant_type": "password"}),
    );
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")));
    let (status, body) = post(&s, "/authorisation/token", None, json!([1, 2]));
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")));
    let (status, body) = post(&s, "/authorisation/refresh", None, json!({}));
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")));
    // JSON keys case-insensitive on input.
    let (status, _) = post(
        &s,
        "/authorisation/token",
        None,
        json!({"Grant_Type": "password", "UserName": "fay", "PASSWORD": "fay-pw"}),
    );
    assert_eq!(status, 200);
    // Of keys that differ only in case the last one wins, as Json.NET binds them.
    let (status, body) = send(
        s.http
            .post(s.url("/authorisation/token"))
            .header("Content-Type", "application/json")
            .body(r#"{"grant_type":"password","username":"fay","password":"wrong","Password":"fay-pw"}"#),
    );
    assert_eq!(status, 200, "{body}");
    // A value that does not convert is reported once, not as missing too.
    let (status, body) = raw(
        "/User/opt-in-to-2fa?FileId=4",
        "application/json",
        r#"{"MobileNumber":{"a":1}}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["ModelState"]["request.MobileNumber"],
        json!(["The value of MobileNumber could not be converted to System.String."])
    );
    // A number that is not a valid mobile fails validation of that field.
    let (status, body) = raw(
        "/User/opt-in-to-2fa?FileId=4",
        "application/json",
        r#"{"MobileNumber":"12"}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["ModelState"]["request.MobileNumber"],
        json!(["The MobileNumber field is not a valid mobile number."])
    );
    // Other dialects' paths are untouched; the document is served and listed.
    let (status, _) = send(s.http.get(s.url("/users/me")));
    assert_eq!(status, 401);
    let served: Value = s
        .http
        .get(s.url("/openapi/saasu.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(served["paths"]["/User/opt-out-from-2fa"]["post"].is_object());
    assert!(s.swagger_initializer().contains("/openapi/saasu.json"));
}

/// Without a webhook, texts go to <data dir>/outbox/sms.jsonl.
pub fn saasu_outbox(s: Server) {
    saasu_outbox_on(&s)
}

/// Texts without a gateway land in the outbox (`saasu_outbox`, on a server the caller keeps).
pub fn saasu_outbox_on(s: &Server) {
    add_user(s, "gus", "gus-pw", &[2]);
    let t = access(&token(s, "gus", "gus-pw"));
    let (status, body) = post(
        s,
        "/User/opt-in-to-2fa?FileId=2",
        Some(&t),
        json!({"MobileNumber": "0499333444"}),
    );
    assert_eq!(status, 200, "{body}");
    let outbox = s.data_dir.path().join("outbox").join("sms.jsonl");
    let text = std::fs::read_to_string(&outbox).unwrap();
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["to"], "+61499333444");
    let sms = crate::sms::Sms {
        to: String::new(),
        message: line["message"].as_str().unwrap().to_string(),
        authorization: None,
        path: String::new(),
    };
    let (status, body) = post(
        s,
        "/User/verify-2fa-opt-in?FileId=2",
        Some(&t),
        json!({"ProviderUserId": body["ProviderUserId"], "Otp": sms.code(7)}),
    );
    assert_eq!(status, 200, "{body}");
}
