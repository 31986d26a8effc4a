//! The AuthEndpoints dialect driven over HTTP as its clients drive it, with mail
//! delivered over real SMTP to a server on loopback.

use base64::Engine;
use reqwest::blocking::RequestBuilder;
use serde_json::{json, Value};

use crate::harness::{code, json as status_json, Server};
use crate::mail::{code_in, link_in, MailSink};

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {self:?}"))
    }

    /// Kind B: a plain-text message.
    fn assert_text(&self, status: u16, text: &str) {
        assert_eq!(
            (self.status, self.text.as_str()),
            (status, text),
            "{self:?}"
        );
        assert_eq!(self.content_type, "text/plain; charset=utf-8");
    }

    /// Kind C: ProblemDetails with type, title, status and a W3C traceId.
    fn assert_problem(&self, status: u16, title: &str) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json; charset=utf-8");
        let body = self.json();
        assert_eq!(body["status"], status);
        assert_eq!(body["title"], title);
        assert!(body["type"]
            .as_str()
            .unwrap()
            .starts_with("https://tools.ietf.org/html/rfc"));
        let trace = body["traceId"].as_str().unwrap();
        let parts: Vec<&str> = trace.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![2, 32, 16, 2],
            "{trace}"
        );
        body
    }

    /// Kind D: ValidationProblemDetails; returns `errors`.
    fn assert_validation(&self) -> Value {
        let body = self.assert_problem(400, "One or more validation errors occurred.");
        body["errors"].clone()
    }

    /// Kind E (or any JSON answer).
    fn assert_json(&self, status: u16, body: Value) {
        assert_eq!((self.status, self.json()), (status, body), "{self:?}");
    }

    /// Kind A.
    fn assert_empty(&self, status: u16) {
        assert_eq!((self.status, self.text.as_str()), (status, ""), "{self:?}");
    }

    /// JwtBearer's challenge: 401, empty body, WWW-Authenticate.
    fn assert_challenge(&self) {
        self.assert_empty(401);
        assert!(self
            .www_authenticate
            .as_deref()
            .unwrap()
            .starts_with("Bearer"));
    }
}

fn send(r: RequestBuilder) -> Reply {
    let response = r.send().unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let content_type = header("content-type").unwrap_or_default();
    let www_authenticate = header("www-authenticate");
    let retry_after = header("retry-after");
    let status = response.status().as_u16();
    Reply {
        status,
        content_type,
        text: response.text().unwrap(),
        www_authenticate,
        retry_after,
    }
}

fn post(s: &Server, path: &str, token: Option<&str>, body: Value) -> Reply {
    let mut r = s.http.post(s.url(path)).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    send(r)
}

fn get(s: &Server, path: &str, token: &str) -> Reply {
    send(s.http.get(s.url(path)).bearer_auth(token))
}

fn two_step_login(s: &Server, username: &str, password: &str, provider: &str) -> Reply {
    let body = json!({"username": username, "password": password, "provider": provider});
    post(s, "/users/two_step_verification_login", None, body)
}

fn two_step_confirm(s: &Server, email: &str, provider: &str, token: &str) -> Reply {
    let body = json!({"email": email, "provider": provider, "token": token});
    post(s, "/users/two_step_verification_confirm", None, body)
}

fn enable_confirm(s: &Server, access: &str, email: &str, provider: &str, token: &str) -> Reply {
    let body = json!({"email": email, "provider": provider, "token": token});
    post(s, "/users/enable_2fa_confirm", Some(access), body)
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Registration, closed by default beside other dialects, open for these tests.
pub const OPEN_REGISTRATION: (&str, &str) = ("TWOFA_AUTHENDPOINTS_REGISTRATION", "open");

/// A server whose mail goes to `sink` over SMTP.
pub fn start_with_mail(backend: crate::harness::Backend, test: &str) -> Option<(Server, MailSink)> {
    let sink = MailSink::start();
    let url = sink.url();
    Server::start_with(
        backend,
        test,
        &[
            OPEN_REGISTRATION,
            ("TWOFA_SMTP_URL", &url),
            ("TWOFA_MAIL_FROM", "noreply@twofa.test"),
        ],
    )
    .map(|s| (s, sink))
}

fn register(s: &Server, user: &str, email: &str, password: &str) {
    post(
        s,
        "/users",
        None,
        json!({"email": email, "username": user, "password": password, "confirmPassword": password}),
    )
    .assert_empty(200);
}

pub(crate) fn tokens(s: &Server, user: &str, password: &str) -> (String, String) {
    let r = post(
        s,
        "/jwt/create",
        None,
        json!({"username": user, "password": password}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    (
        body["accessToken"].as_str().unwrap().to_string(),
        body["refreshToken"].as_str().unwrap().to_string(),
    )
}

/// Confirms the user's email through the mailed link; returns the number of mails
/// the user has received so far.
fn confirm_email(s: &Server, sink: &MailSink, email: &str, access: &str) -> usize {
    get(s, "/users/verify_email", access).assert_empty(204);
    let n = sink.count(email);
    let mail = sink.nth(email, n);
    assert_eq!(mail.subject, "Email Confirmation");
    let (uid, token) = link_in(&mail);
    post(
        s,
        "/users/verify_email_confirm",
        None,
        json!({"identity": uid, "token": token}),
    )
    .assert_empty(204);
    n
}

/// Registers, confirms the email and turns two-step verification on; returns the
/// number of mails the user has received.
fn with_email_2fa(s: &Server, sink: &MailSink, user: &str, email: &str, password: &str) -> usize {
    register(s, user, email, password);
    let (access, _) = tokens(s, user, password);
    let n = confirm_email(s, sink, email, &access) + 1;
    get(s, "/users/enable_2fa", &access).assert_empty(200);
    let code = code_in(&sink.nth(email, n));
    enable_confirm(s, &access, email, "Email", &code).assert_empty(200);
    n
}

/// The end-to-end flow, over real SMTP.
pub fn ae_email_two_step_flow(s: Server, sink: MailSink) {
    let (user, email, pw) = ("alice", "alice@example.com", "P@ssw0rd");
    register(&s, user, email, pw);
    let (access, refresh) = tokens(&s, user, pw);
    let c = claims(&access);
    assert_eq!(c["iss"], "webapi");
    assert_eq!(c["aud"], "webapi");
    assert_eq!(
        c["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"],
        user
    );
    assert!(c["id"].is_string() && c["nbf"].is_i64() && c["exp"].is_i64());
    assert_eq!(claims(&refresh)["id"], c["id"]);
    assert!(claims(&refresh)
        .get("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name")
        .is_none());

    // 2FA needs a confirmed email first.
    get(&s, "/users/enable_2fa", &access).assert_text(400, "Email is not verified.");
    enable_confirm(&s, &access, email, "Email", "123456")
        .assert_text(400, "Email is not confirmed");
    let sent = confirm_email(&s, &sink, email, &access);
    assert_eq!(sent, 1);
    get(&s, "/users/verify_email", &access).assert_problem(401, "Unauthorized");

    let me = get(&s, "/users/me", &access);
    assert_eq!(me.status, 200);
    let me = me.json();
    assert_eq!(me["userName"], user);
    assert_eq!(me["email"], email);
    assert_eq!(me["emailConfirmed"], true);
    assert_eq!(me["twoFactorEnabled"], false);
    for secret in ["passwordHash", "securityStamp", "concurrencyStamp"] {
        assert!(me.get(secret).is_none(), "{secret} leaked");
    }
    assert!(!me.to_string().contains("argon2"));

    // Enabling: the code arrives by mail with the reference's subject and wording.
    get(&s, "/users/enable_2fa", &access).assert_empty(200);
    let mail = sink.nth(email, 2);
    assert_eq!(
        mail.subject,
        "Enabling two-factor authentication (2FA) on your user account"
    );
    assert!(mail
        .body
        .contains("Please enter this code to finish enabling 2fa:"));
    assert!(mail.raw.contains("noreply@twofa.test"));
    let enable_code = code_in(&mail);
    let wrong = if enable_code == "000000" {
        "000001"
    } else {
        "000000"
    };
    enable_confirm(&s, &access, email, "Email", wrong).assert_text(400, "Invalid two factor token");
    // Provider names are case-sensitive; unknown ones are a 400, not a 500.
    enable_confirm(&s, &access, email, "email", &enable_code).assert_problem(400, "Bad Request");
    enable_confirm(&s, &access, email, "Phone", &enable_code)
        .assert_text(400, "Invalid two factor token");
    // Case-insensitive property names.
    post(
        &s,
        "/users/enable_2fa_confirm",
        Some(&access),
        json!({"EMAIL": email, "Provider": "Email", "tOkEn": enable_code}),
    )
    .assert_empty(200);
    assert_eq!(
        get(&s, "/users/me", &access).json()["twoFactorEnabled"],
        true
    );
    // Now on: a second enable (even with the same code) is a ProblemDetails 401.
    enable_confirm(&s, &access, email, "Email", &enable_code).assert_problem(401, "Unauthorized");
    get(&s, "/users/enable_2fa", &access).assert_problem(401, "Unauthorized");

    // jwt/create no longer hands out tokens.
    let r = post(
        &s,
        "/jwt/create",
        None,
        json!({"username": user, "password": pw}),
    );
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"authSuccess": false, "twoStepVerificationRequired": true})
        )
    );

    // The enable code never logs in, and nothing logs in before the login step.
    two_step_confirm(&s, email, "Email", &enable_code).assert_text(400, "Invalid token");

    two_step_login(&s, user, "nope", "Email").assert_text(401, "Invalid credentials");
    two_step_login(&s, user, pw, "Authenticator").assert_problem(400, "Bad Request");
    two_step_login(&s, user, pw, "Email").assert_empty(200);
    let mail = sink.nth(email, 3);
    assert_eq!(mail.subject, "Login verification code");
    assert!(mail
        .body
        .contains("We noticed you\u{2019}re trying to log in."));
    let login_code = code_in(&mail);

    two_step_confirm(&s, "nobody@example.com", "Email", &login_code)
        .assert_problem(400, "Bad Request");
    let wrong = if login_code == "000000" {
        "000001"
    } else {
        "000000"
    };
    two_step_confirm(&s, email, "Email", wrong).assert_text(400, "Invalid token");
    // Email lookup is case-insensitive.
    let r = two_step_confirm(&s, "ALICE@example.com", "Email", &login_code);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type, "application/json");
    let pair = r.json();
    let access2 = pair["accessToken"].as_str().unwrap();
    let refresh2 = pair["refreshToken"].as_str().unwrap();
    assert_eq!(get(&s, "/users/me", access2).json()["userName"], user);
    get(&s, "/jwt/verify", access2).assert_empty(200);

    // Single use.
    two_step_confirm(&s, email, "Email", &login_code).assert_text(400, "Invalid token");

    // Refresh gives a working pair; an access token is no refresh token.
    let r = post(&s, "/jwt/refresh", None, json!({"refreshToken": refresh2}));
    assert_eq!(r.status, 200, "{r:?}");
    let fresh = r.json()["accessToken"].as_str().unwrap().to_string();
    get(&s, "/jwt/verify", &fresh).assert_empty(200);
    let r = post(&s, "/jwt/refresh", None, json!({"refreshToken": access2}));
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"errors": ["Invalid refresh token. Token may be expired or invalid."]})
        )
    );
    // A refresh token is no access token.
    get(&s, "/jwt/verify", refresh2).assert_challenge();
}

/// Expired, cross-purpose and superseded codes; the send limit; the lockout.
pub fn ae_code_rules(s: Server, sink: MailSink) {
    let (user, email, pw) = ("bob", "bob@example.com", "B0b-secret");
    let mut n = with_email_2fa(&s, &sink, user, email, pw);
    let login = |s: &Server| two_step_login(s, user, pw, "Email");
    let confirm = |s: &Server, code: &str| two_step_confirm(s, email, "Email", code);

    // Expired after 10 minutes (aged in the database).
    login(&s).assert_empty(200);
    n += 1;
    let old = code_in(&sink.nth(email, n));
    s.sql("UPDATE one_time_codes SET expires_at = created_at - 1 WHERE purpose = 'login'");
    confirm(&s, &old).assert_text(400, "Invalid token");

    // A newer code replaces the older one.
    login(&s).assert_empty(200);
    n += 1;
    let first = code_in(&sink.nth(email, n));
    login(&s).assert_empty(200);
    n += 1;
    let second = code_in(&sink.nth(email, n));
    if first != second {
        confirm(&s, &first).assert_text(400, "Invalid token");
    }
    let r = confirm(&s, &second);
    assert_eq!(r.status, 200, "{r:?}");

    // At most 5 sends per 10 minutes (enable, confirm and login mails all count).
    s.sql("UPDATE one_time_codes SET created_at = created_at - 601");
    for _ in 0..5 {
        login(&s).assert_empty(200);
    }
    let before = sink.count(email);
    let r = login(&s);
    r.assert_problem(429, "Too Many Requests");
    assert!(r.retry_after.unwrap().parse::<i64>().unwrap() > 0);
    assert_eq!(sink.count(email), before, "nothing sent when limited");
    let latest = code_in(&sink.nth(email, before));

    // Five wrong codes lock the user's codes out: then even the right one is refused.
    for i in 0..5 {
        let wrong = format!(
            "{:06}",
            (latest.parse::<u32>().unwrap() + 1 + i) % 1_000_000
        );
        confirm(&s, &wrong).assert_text(400, "Invalid token");
    }
    confirm(&s, &latest).assert_problem(429, "Too Many Requests");
    // And the code itself is dead after 5 wrong tries, even once the lockout ends.
    s.sql("DELETE FROM throttles");
    confirm(&s, &latest).assert_text(400, "Invalid token");
}

/// Every error body kind for bad input, and the bearer challenge.
pub fn ae_bad_input(s: Server, _sink: MailSink) {
    // Kind D: missing, empty, whitespace, wrong type, empty body, malformed JSON.
    let errors = post(
        &s,
        "/users/two_step_verification_confirm",
        None,
        json!({"email": "a@b.c", "token": " "}),
    )
    .assert_validation();
    assert_eq!(
        errors,
        json!({"Provider": ["The Provider field is required."], "Token": ["The Token field is required."]})
    );
    let errors = post(
        &s,
        "/users/two_step_verification_confirm",
        None,
        json!({"email": "a@b.c", "provider": "Email", "token": 123456}),
    )
    .assert_validation();
    assert!(errors.get("$.token").is_some(), "{errors}");
    let r = send(
        s.http
            .post(s.url("/jwt/create"))
            .header("content-type", "application/json"),
    );
    assert_eq!(
        r.assert_validation(),
        json!({"": ["A non-empty request body is required."]})
    );
    let r = send(
        s.http
            .post(s.url("/jwt/create"))
            .header("content-type", "application/json")
            .body("{\"username\":"),
    );
    assert!(r.assert_validation().get("$").is_some());
    let errors = post(&s, "/users", None, json!({"email": "not-an-address", "username": "x", "password": "p", "confirmPassword": "p"})).assert_validation();
    assert_eq!(
        errors,
        json!({"Email": ["The Email field is not a valid e-mail address."]})
    );

    // 415 for anything but JSON.
    let r = send(
        s.http
            .post(s.url("/jwt/create"))
            .header("content-type", "text/plain")
            .body("{}"),
    );
    r.assert_problem(415, "Unsupported Media Type");
    let r = send(
        s.http
            .post(s.url("/jwt/create"))
            .form(&[("username", "a"), ("password", "b")]),
    );
    r.assert_problem(415, "Unsupported Media Type");

    // Kind E.
    let r = post(
        &s,
        "/users",
        None,
        json!({"email": "c@d.e", "username": "carol", "password": "Secret1!", "confirmPassword": "other"}),
    );
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"errors": ["Password not match confirm password."]})
        )
    );
    register(&s, "carol", "c@d.e", "Secret1!");
    let r = post(
        &s,
        "/users",
        None,
        json!({"email": "x@d.e", "username": "carol", "password": "Secret1!", "confirmPassword": "Secret1!"}),
    );
    r.assert_json(409, json!({"errors": ["Username already exists."]}));
    let r = post(
        &s,
        "/users",
        None,
        json!({"email": "C@D.E", "username": "carol2", "password": "Secret1!", "confirmPassword": "Secret1!"}),
    );
    r.assert_json(409, json!({"errors": ["Email already exists."]}));

    // Kind B.
    post(
        &s,
        "/jwt/create",
        None,
        json!({"username": "carol", "password": "wrong"}),
    )
    .assert_text(401, "Invalid credentials");
    // 2FA off: login step is a ProblemDetails 401.
    two_step_login(&s, "carol", "Secret1!", "Email").assert_problem(401, "Unauthorized");
    two_step_confirm(&s, "c@d.e", "Email", "123456").assert_problem(401, "Unauthorized");

    // The bearer challenge comes before model validation.
    let r = post(&s, "/users/enable_2fa_confirm", None, json!({}));
    r.assert_challenge();
    assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
    let r = get(&s, "/users/me", "not-a-jwt");
    r.assert_challenge();
    assert!(r.www_authenticate.unwrap().contains("invalid_token"));
    get(&s, "/jwt/verify", "a.b.c").assert_challenge();
    let (access, _) = tokens(&s, "carol", "Secret1!");
    post(
        &s,
        "/users/enable_2fa_confirm",
        Some(&access),
        json!({"email": "c@d.e"}),
    )
    .assert_validation();
    let (status, _) = status_json(
        s.http
            .get(s.url("/openapi/authendpoints.json"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
}

/// SMTP down: a clear 500 ProblemDetails, and no code or factor left behind.
pub fn ae_smtp_down(s: Server) {
    register(&s, "dave", "dave@example.com", "Dave-pw1");
    let (access, _) = tokens(&s, "dave", "Dave-pw1");
    let r = get(&s, "/users/verify_email", &access);
    let body = r.assert_problem(500, "An error occurred while processing your request.");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("could not be sent"));
    s.sql("UPDATE users SET email_confirmed = TRUE");
    let r = get(&s, "/users/enable_2fa", &access);
    r.assert_problem(500, "An error occurred while processing your request.");
    // Nothing half-done: no usable code (every guess fails), 2FA stays off.
    for guess in ["000000", "123456"] {
        enable_confirm(&s, &access, "dave@example.com", "Email", guess)
            .assert_text(400, "Invalid two factor token");
    }
    assert_eq!(
        get(&s, "/users/me", &access).json()["twoFactorEnabled"],
        false
    );
    let r = post(
        &s,
        "/jwt/create",
        None,
        json!({"username": "dave", "password": "Dave-pw1"}),
    );
    assert!(r.json()["accessToken"].is_string());
}

/// An smtp:// URL with credentials insists on STARTTLS: against a server without TLS
/// nothing is sent (no password in the clear) and the request fails cleanly.
pub fn ae_credentials_need_starttls(backend: crate::harness::Backend) {
    let sink = MailSink::start();
    let url = sink.url().replace("smtp://", "smtp://user:secret@");
    let Some(s) = Server::start_with(
        backend,
        "ae_credentials_need_starttls",
        &[OPEN_REGISTRATION, ("TWOFA_SMTP_URL", &url)],
    ) else {
        return;
    };
    register(&s, "hank", "hank@example.com", "Hank-pw1");
    let (access, _) = tokens(&s, "hank", "Hank-pw1");
    get(&s, "/users/verify_email", &access)
        .assert_problem(500, "An error occurred while processing your request.");
    assert_eq!(sink.count("hank@example.com"), 0);
}

/// Without SMTP, mail goes to <data dir>/outbox/mail as .eml files.
pub fn ae_outbox(s: Server) {
    ae_outbox_on(&s)
}

/// Mail without SMTP lands in the outbox (`ae_outbox`, on a server the caller keeps).
pub fn ae_outbox_on(s: &Server) {
    s.cli(
        &[
            "user",
            "add",
            "--username",
            "erin",
            "--email",
            "erin@example.com",
            "--password-stdin",
        ],
        Some("Erin-pw1\n"),
    );
    let (access, _) = tokens(s, "erin", "Erin-pw1");
    get(s, "/users/verify_email", &access).assert_empty(204);
    let dir = s.data_dir.path().join("outbox").join("mail");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].extension().unwrap() == "eml");
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(raw.contains("Subject: Email Confirmation"));
    assert!(raw.contains("erin@example.com"));
}

/// A user enrolled with TOTP through UCloud logs in here with "Authenticator".
pub fn ae_authenticator_from_ucloud(s: Server, sink: MailSink) {
    let (user, email, pw) = ("frank", "frank@example.com", "Frank-pw1");
    register(&s, user, email, pw);
    let (access, _) = tokens(&s, user, pw);
    confirm_email(&s, &sink, email, &access);

    // UCloud enrollment.
    let (status, login) = status_json(
        s.http
            .post(s.url("/auth/login"))
            .header("Accept", "application/json")
            .form(&[("username", user), ("password", pw), ("service", "cli")])
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{login}");
    let ucloud_token = login["accessToken"].as_str().unwrap();
    let (_, created) = status_json(
        s.http
            .post(s.url("/auth/2fa"))
            .bearer_auth(ucloud_token)
            .send()
            .unwrap(),
    );
    let secret = created["secret"].as_str().unwrap().to_string();
    let (status, _) = status_json(
        s.http
            .post(s.url("/auth/2fa/challenge"))
            .json(&json!({"challengeId": created["challengeId"], "verificationCode": code(&secret, 0)}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 204);

    let r = post(
        &s,
        "/jwt/create",
        None,
        json!({"username": user, "password": pw}),
    );
    assert_eq!(
        r.json(),
        json!({"authSuccess": false, "twoStepVerificationRequired": true})
    );
    assert_eq!(
        get(&s, "/users/me", &access).json()["twoFactorEnabled"],
        true
    );

    // An app code alone, without the password step, does not log in.
    let next = code(&secret, 30);
    two_step_confirm(&s, email, "Authenticator", &next).assert_text(400, "Invalid token");
    // Email is not a provider of this user: no downgrade to mailed codes.
    two_step_login(&s, user, pw, "Email").assert_problem(400, "Bad Request");
    let mails = sink.count(email);
    two_step_login(&s, user, pw, "Authenticator").assert_empty(200);
    assert_eq!(sink.count(email), mails, "no mail for Authenticator");
    let r = two_step_confirm(&s, email, "Authenticator", &next);
    assert_eq!(r.status, 200, "{r:?}");
    get(&s, "/users/me", r.json()["accessToken"].as_str().unwrap()).assert_empty_or_ok();
    // The code is used up, and so is the login step.
    two_step_login(&s, user, pw, "Authenticator").assert_empty(200);
    two_step_confirm(&s, email, "Authenticator", &next).assert_text(400, "Invalid token");
}

/// Issue 10 item 2: someone who knows only the victim's email sends authenticator
/// guesses while the victim's login is pending. The guesses count against that pending
/// login (dead after 5), never against the victim's code lockout, and every answer is
/// the one a caller gets with no login pending.
pub fn ae_pending_login_guesses(s: Server, sink: MailSink) {
    let (user, email, pw) = ("vera", "vera@example.com", "Vera-pw1");
    register(&s, user, email, pw);
    let (access, _) = tokens(&s, user, pw);
    confirm_email(&s, &sink, email, &access);
    let secret = crate::ucloud::enroll(&s, user, pw);
    let wrong = |offset: i64| {
        let right = code(&secret, offset);
        format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000)
    };

    // No login pending: the answer every guess below must get.
    two_step_confirm(&s, email, "Authenticator", &wrong(30)).assert_text(400, "Invalid token");
    two_step_login(&s, user, pw, "Authenticator").assert_empty(200);
    for _ in 0..10 {
        two_step_confirm(&s, email, "Authenticator", &wrong(30)).assert_text(400, "Invalid token");
    }
    // The pending login died after 5 wrong codes: even the right one fails now.
    two_step_confirm(&s, email, "Authenticator", &code(&secret, 30))
        .assert_text(400, "Invalid token");

    // The victim is not locked out, here or in another dialect.
    two_step_login(&s, user, pw, "Authenticator").assert_empty(200);
    let r = two_step_confirm(&s, email, "Authenticator", &code(&secret, 30));
    assert_eq!(r.status, 200, "{r:?}");
    let (status, login) = crate::ucloud::login_form(&s, user, pw);
    assert_eq!(status, 200, "{login}");
    // (The codes of this time window are used up; a wrong one shows the lockout state:
    // UCloud answers 401 for a wrong code, 429 when the user is locked.)
    let (status, _) = status_json(
        s.http
            .post(s.url("/auth/2fa/challenge"))
            .json(&json!({"challengeId": login["2fa"], "verificationCode": wrong(0)}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 401, "a wrong code, not a lockout");

    // Starting logins is limited too: 5 in 10 minutes (two so far).
    for _ in 0..3 {
        two_step_login(&s, user, pw, "Authenticator").assert_empty(200);
    }
    let r = two_step_login(&s, user, pw, "Authenticator");
    assert_eq!(r.status, 429, "{r:?}");
}

/// Issue 10 item 7: `POST /users/reset_password` tells unknown, unconfirmed and
/// confirmed addresses apart (AuthEndpoints' statuses, kept), so lookups are limited in
/// the database: 5 an hour per address asked about, 20 per client address.
pub fn ae_reset_lookups_limited(s: Server) {
    let ask = |email: &str| post(&s, "/users/reset_password", None, json!({"email": email}));
    for _ in 0..5 {
        ask("Someone@Example.com").assert_problem(404, "Not Found");
    }
    let r = ask("someone@example.com");
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.retry_after.is_some());
    // That refusal took nothing from the client's 20: 15 more addresses, then no more.
    for n in 0..15 {
        ask(&format!("other{n}@example.com")).assert_problem(404, "Not Found");
    }
    let r = ask("one-too-many@example.com");
    assert_eq!(r.status, 429, "{r:?}");
}

impl Reply {
    fn assert_empty_or_ok(&self) {
        assert_eq!(self.status, 200, "{self:?}");
    }
}

/// Password change and reset by mailed link, and deletion.
pub fn ae_passwords_and_delete(s: Server, sink: MailSink) {
    let (user, email, pw) = ("gina", "gina@example.com", "Gina-pw1");
    register(&s, user, email, pw);
    let (access, refresh) = tokens(&s, user, pw);
    let set = |s: &Server, current: &str, new: &str, confirm: &str| {
        post(
            s,
            "/users/set_password",
            Some(&access),
            json!({"currentPassword": current, "newPassword": new, "confirmNewPassword": confirm}),
        )
    };
    let r = set(&s, pw, "New-pw-1", "New-pw-2");
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"errors": ["New password not match confirm password"]})
        )
    );
    let r = set(&s, pw, pw, pw);
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"errors": ["New password cannot be the same as current password"]})
        )
    );
    let r = set(&s, "wrong-pw", "New-pw-1", "New-pw-1");
    r.assert_json(400, json!({"errors": ["Invalid current password"]}));
    set(&s, pw, "New-pw-1", "New-pw-1").assert_empty(204);
    // The password change ended the session behind the old access token.
    get(&s, "/jwt/verify", &access).assert_challenge();
    post(
        &s,
        "/jwt/create",
        None,
        json!({"username": user, "password": pw}),
    )
    .assert_text(401, "Invalid credentials");
    // The old session ended with the password.
    assert_eq!(
        post(&s, "/jwt/refresh", None, json!({"refreshToken": refresh})).status,
        400
    );
    let (access, _) = tokens(&s, user, "New-pw-1");

    // Reset needs a confirmed address.
    post(
        &s,
        "/users/reset_password",
        None,
        json!({"email": "nobody@example.com"}),
    )
    .assert_problem(404, "Not Found");
    post(&s, "/users/reset_password", None, json!({"email": email}))
        .assert_problem(401, "Unauthorized");
    let n = confirm_email(&s, &sink, email, &access);
    post(&s, "/users/reset_password", None, json!({"email": email})).assert_empty(204);
    let mail = sink.nth(email, n + 1);
    assert_eq!(mail.subject, "Password Reset");
    let (uid, token) = link_in(&mail);
    let reset = |token: &str| {
        post(
            &s,
            "/users/reset_password_confirm",
            None,
            json!({"identity": uid, "token": token, "newPassword": "Reset-pw-1", "confirmNewPassword": "x"}),
        )
    };
    let r = reset("0000");
    r.assert_json(409, json!(["Invalid token."]));
    reset(&token).assert_empty(204);
    let r = reset(&token);
    // Single use.
    r.assert_json(409, json!(["Invalid token."]));
    let (access, refresh) = tokens(&s, user, "Reset-pw-1");

    // Delete.
    send(s.http.delete(s.url("/users/delete")).bearer_auth(&access)).assert_empty(204);
    get(&s, "/users/me", &access).assert_empty(204);
    let r = post(&s, "/jwt/refresh", None, json!({"refreshToken": refresh}));
    r.assert_json(404, json!({"errors": ["User not found."]}));
    post(
        &s,
        "/jwt/create",
        None,
        json!({"username": user, "password": "Reset-pw-1"}),
    )
    .assert_text(401, "Invalid credentials");
}
