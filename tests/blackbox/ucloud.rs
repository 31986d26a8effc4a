//! The UCloud dialect driven over HTTP as UCloud's clients drive it.

use reqwest::blocking::multipart;
use serde_json::{json, Value};

use crate::harness::{code, decode_qr, json, why, Server, ADMIN_PASSWORD};

/// Password login as the web client does it (multipart, `?service=`, JSON accepted).
pub(crate) fn login_multipart(s: &Server, user: &str, password: &str) -> (u16, Value) {
    let form = multipart::Form::new()
        .text("username", user.to_string())
        .text("password", password.to_string());
    json(
        s.http
            .post(s.url("/auth/login?service=web"))
            .header("Accept", "application/json")
            .multipart(form)
            .send()
            .unwrap(),
    )
}

/// Password login form-encoded, for a non-web service (refresh token in the body).
pub(crate) fn login_form(s: &Server, user: &str, password: &str) -> (u16, Value) {
    let form = [
        ("username", user),
        ("password", password),
        ("service", "cli"),
    ];
    json(
        s.http
            .post(s.url("/auth/login"))
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .unwrap(),
    )
}

fn access_token(s: &Server, user: &str, password: &str) -> String {
    let (status, body) = login_form(s, user, password);
    assert_eq!(status, 200, "{body}");
    body["accessToken"].as_str().unwrap().to_string()
}

pub(crate) fn get(s: &Server, path: &str, token: &str) -> (u16, Value) {
    json(s.http.get(s.url(path)).bearer_auth(token).send().unwrap())
}

pub(crate) fn post(s: &Server, path: &str, token: &str) -> (u16, Value) {
    json(s.http.post(s.url(path)).bearer_auth(token).send().unwrap())
}

pub(crate) fn answer(s: &Server, body: Value) -> (u16, Value) {
    json(
        s.http
            .post(s.url("/auth/2fa/challenge"))
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .unwrap(),
    )
}

/// Enrolls `user` through the seed's flow; returns the base32 secret.
pub(crate) fn enroll(s: &Server, user: &str, password: &str) -> String {
    let token = access_token(s, user, password);
    let (_, created) = post(s, "/auth/2fa", &token);
    let secret = created["secret"].as_str().unwrap().to_string();
    let (status, _) = answer(
        s,
        json!({"challengeId": created["challengeId"], "verificationCode": code(&secret, 0)}),
    );
    assert_eq!(status, 204);
    secret
}

pub(crate) fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The seed's "creating 2FA credentials" example, step by step.
pub fn seed_creating_credentials(s: Server) {
    s.add_user("JaneDoe#1234", "jane-pw");
    let token = access_token(&s, "JaneDoe#1234", "jane-pw");
    assert_eq!(jwt_claims(&token)["twoFactorAuthentication"], false);

    assert_eq!(
        get(&s, "/auth/2fa/status", &token),
        (200, json!({"connected": false}))
    );

    let (status, created) = post(&s, "/auth/2fa", &token);
    assert_eq!(status, 200, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160-bit secret, unpadded base32");
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    let uri = created["otpAuthUri"].as_str().unwrap();
    assert_eq!(
        uri,
        format!("otpauth://totp/UCloud:JaneDoe%231234?secret={secret}&issuer=UCloud&algorithm=SHA1&digits=6&period=30")
    );
    assert_eq!(
        decode_qr(created["qrCodeB64Data"].as_str().unwrap()),
        uri,
        "the QR code carries exactly the URI"
    );
    let challenge_id = created["challengeId"].as_str().unwrap();
    assert_eq!(created.as_object().unwrap().len(), 4);

    // The documented request sends the code as a number.
    let number: u64 = code(secret, 0).parse().unwrap();
    let response = s
        .http
        .post(s.url("/auth/2fa/challenge"))
        .bearer_auth(&token)
        .json(&json!({"challengeId": challenge_id, "verificationCode": number}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.text().unwrap().is_empty(), "204 has no body");

    assert_eq!(
        get(&s, "/auth/2fa/status", &token),
        (200, json!({"connected": true}))
    );
    // Bound: a second create is refused, the factor is kept.
    assert_eq!(
        post(&s, "/auth/2fa", &token),
        (
            400,
            why("An authenticator has already been bound to your account.")
        )
    );

    // The secret is not stored in plaintext.
    if let Some(file) = s.sqlite_file() {
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend(std::fs::read(format!("{}-wal", file.display())).unwrap_or_default());
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        let raw = totp_rs::Secret::try_from_base32(secret).unwrap();
        assert!(!bytes.windows(20).any(|w| w == raw.as_bytes()));
    }
}

/// Login with 2FA: challenge, wrong code, right code, reuse, replay, expiry.
pub fn login_with_second_factor(s: Server) {
    s.add_user("mallory", "m-pw");
    let secret = enroll(&s, "mallory", "m-pw");

    let (status, body) = login_multipart(&s, "mallory", "m-pw");
    assert_eq!(status, 200);
    let challenge = body["2fa"].as_str().expect("a login challenge").to_string();
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "no tokens before the second factor"
    );

    let right = code(&secret, 30); // the next step: the enrollment used this one
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert_eq!(
        answer(
            &s,
            json!({"challengeId": challenge, "verificationCode": wrong})
        ),
        (401, why("Incorrect code"))
    );

    let response = s
        .http
        .post(s.url("/auth/2fa/challenge"))
        .header("Accept", "application/json")
        .json(&json!({"challengeId": challenge, "verificationCode": right}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("refreshToken=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
    );
    let tokens: Value = response.json().unwrap();
    assert_eq!(
        tokens["refreshToken"],
        Value::Null,
        "web service: the refresh token is only in the cookie"
    );
    let access = tokens["accessToken"].as_str().unwrap();
    assert_eq!(jwt_claims(access)["twoFactorAuthentication"], true);
    assert_eq!(jwt_claims(access)["sub"], "mallory");
    assert_eq!(
        get(&s, "/auth/2fa/status", access),
        (200, json!({"connected": true}))
    );

    // Reused challenge, even with a valid code.
    assert_eq!(
        answer(
            &s,
            json!({"challengeId": challenge, "verificationCode": right})
        ),
        (401, why("Incorrect code"))
    );
    // Replayed code on a fresh challenge.
    let (_, body) = login_multipart(&s, "mallory", "m-pw");
    let fresh = body["2fa"].as_str().unwrap().to_string();
    assert_eq!(
        answer(&s, json!({"challengeId": fresh, "verificationCode": right})),
        (401, why("Incorrect code"))
    );
    // Unknown challenge.
    assert_eq!(
        answer(
            &s,
            json!({"challengeId": "nope", "verificationCode": "123456"})
        ),
        (401, why("Incorrect code"))
    );
    // Expired challenge (aged in the database rather than waiting ten minutes).
    let (_, body) = login_multipart(&s, "mallory", "m-pw");
    let aged = body["2fa"].as_str().unwrap().to_string();
    s.sql("UPDATE challenges SET expires_at = 0 WHERE used = FALSE");
    assert_eq!(
        answer(
            &s,
            json!({"challengeId": aged, "verificationCode": code(&secret, 0)})
        ),
        (401, why("Incorrect code"))
    );
}

/// Five wrong codes lock the user's codes (429, with Retry-After), for every challenge.
pub fn code_lockout(s: Server) {
    s.add_user("trudy", "t-pw");
    let secret = enroll(&s, "trudy", "t-pw");
    let (_, body) = login_multipart(&s, "trudy", "t-pw");
    let challenge = body["2fa"].as_str().unwrap().to_string();
    let right = code(&secret, 30);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 7) % 1_000_000);
    for _ in 0..5 {
        assert_eq!(
            answer(
                &s,
                json!({"challengeId": challenge, "verificationCode": wrong})
            )
            .0,
            401
        );
    }
    let (_, body) = login_multipart(&s, "trudy", "t-pw");
    let other = body["2fa"].as_str().unwrap().to_string();
    let response = s
        .http
        .post(s.url("/auth/2fa/challenge"))
        .json(&json!({"challengeId": other, "verificationCode": right}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: i64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(
        response.json::<Value>().unwrap(),
        why("Too many requests. Please wait a few minutes and try again.")
    );
    let audit = s.cli(&["audit", "--user", "trudy"], None);
    assert!(audit.contains("\"code.locked\""), "{audit}");
}

/// Five wrong passwords in five minutes lock password logins (429).
pub fn password_lockout(s: Server) {
    s.add_user("victor", "v-pw");
    for _ in 0..5 {
        assert_eq!(
            login_form(&s, "victor", "wrong"),
            (401, why("Incorrect username or password"))
        );
    }
    assert_eq!(login_form(&s, "victor", "v-pw").0, 429);
    assert_eq!(
        login_form(&s, "nobody", "x"),
        (401, why("Incorrect username or password"))
    );
}

/// Malformed input gets 400 in UCloud's shape, and nothing stored is harmed.
pub fn bad_input(s: Server) {
    s.add_user("oscar", "o-pw");
    let secret = enroll(&s, "oscar", "o-pw");
    let raw = |body: &str, content_type: &str| {
        json(
            s.http
                .post(s.url("/auth/2fa/challenge"))
                .header("Content-Type", content_type)
                .body(body.to_string())
                .send()
                .unwrap(),
        )
    };
    let wrong_type = (400, why("Invalid request received (wrong type)"));
    assert_eq!(raw("{not json", "application/json"), wrong_type);
    assert_eq!(
        raw("", "application/json"),
        (400, why("Invalid request received (no body?)"))
    );
    assert_eq!(
        raw(r#"{"challengeId":"x"}"#, "application/json"),
        wrong_type
    );
    assert_eq!(
        raw(
            r#"{"challengeId":"x","verificationCode":true}"#,
            "application/json"
        ),
        wrong_type
    );
    assert_eq!(
        raw(
            r#"{"challengeId":"x","verificationCode":-5}"#,
            "application/json"
        ),
        wrong_type
    );
    assert_eq!(
        raw(
            r#"{"challengeId":7,"verificationCode":"1"}"#,
            "application/json"
        ),
        wrong_type
    );
    assert_eq!(raw(r#"[1,2]"#, "application/json"), wrong_type);
    let huge = format!(
        r#"{{"challengeId":"{}","verificationCode":"1"}}"#,
        "a".repeat(200_000)
    );
    assert_eq!(
        raw(&huge, "application/json"),
        (400, why("Request body too large"))
    );
    // The seed's curl example sends a mangled Content-Type; the body is still read.
    assert_eq!(
        raw(
            r#"{"challengeId":"x","verificationCode":999999}"#,
            "content-type: application/json; charset=utf-8"
        ),
        (401, why("Incorrect code"))
    );

    let login = |body: &str| {
        json(
            s.http
                .post(s.url("/auth/login"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body.to_string())
                .send()
                .unwrap(),
        )
    };
    assert_eq!(
        login("username=oscar&service=web"),
        (400, why("Bad Request"))
    );
    assert_eq!(
        login("password=o-pw&service=web"),
        (400, why("Bad Request"))
    );
    assert_eq!(
        login("username=oscar&password=o-pw"),
        (400, why("Bad Request")),
        "service is required"
    );
    assert_eq!(login("%%%"), (400, why("Bad Request")));

    assert_eq!(
        json(s.http.get(s.url("/auth/2fa/status")).send().unwrap()),
        (401, why("Unauthorized"))
    );
    assert_eq!(
        get(&s, "/auth/2fa/status", "not-a-jwt"),
        (401, why("Unauthorized"))
    );
    let reset = json(
        s.http
            .post(s.url("/api/supportAssistFnd/resetMfa"))
            .json(&json!({"username": "oscar"}))
            .send()
            .unwrap(),
    );
    assert_eq!(reset, (401, why("Unauthorized")));

    // Everything still works for oscar.
    let (_, body) = login_multipart(&s, "oscar", "o-pw");
    let challenge = body["2fa"].as_str().unwrap();
    assert_eq!(
        answer(
            &s,
            json!({"challengeId": challenge, "verificationCode": code(&secret, 30)})
        )
        .0,
        200
    );
}

/// Refresh (bearer and web), logout.
pub fn refresh_and_logout(s: Server) {
    s.add_user("peggy", "p-pw");
    let (_, tokens) = login_form(&s, "peggy", "p-pw");
    let refresh = tokens["refreshToken"]
        .as_str()
        .expect("application services get the refresh token")
        .to_string();
    let (status, body) = post(&s, "/auth/refresh", &refresh);
    assert_eq!(status, 200);
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["accessToken"]
    );
    assert_eq!(
        get(
            &s,
            "/auth/2fa/status",
            body["accessToken"].as_str().unwrap()
        )
        .0,
        200
    );

    let csrf = tokens["csrfToken"].as_str().unwrap();
    let web = |csrf: &str| {
        json(
            s.http
                .post(s.url("/auth/refresh/web"))
                .header("Cookie", format!("refreshToken={refresh}"))
                .header("X-CSRFToken", csrf)
                .send()
                .unwrap(),
        )
    };
    let (status, body) = web(csrf);
    assert_eq!(status, 200);
    let new_csrf = body["csrfToken"].as_str().unwrap().to_string();
    assert_eq!(
        web(csrf),
        (401, why("Invalid token")),
        "the CSRF token rotates"
    );
    assert_eq!(
        json(s.http.post(s.url("/auth/refresh/web")).send().unwrap()),
        (400, why("Bad Request"))
    );
    assert_eq!(web(&new_csrf).0, 200);

    assert_eq!(
        post(&s, "/auth/refresh", "bogus"),
        (401, why("Invalid token"))
    );
    let response = s
        .http
        .post(s.url("/auth/logout"))
        .bearer_auth(&refresh)
        .send()
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        post(&s, "/auth/refresh", &refresh),
        (401, why("Invalid token"))
    );
}

/// An access token dies with its session (issue 10 item 1): after the web client's
/// logout, and after the password changes through another dialect, UCloud refuses it at
/// once instead of until it expires.
pub fn access_tokens_die_with_their_session(s: Server) {
    s.add_user("rhea", "r-pw-1");
    let protected = |access: &str| {
        [
            get(&s, "/auth/2fa/status", access).0,
            post(&s, "/auth/2fa", access).0,
        ]
    };
    // The web client's logout: the refresh cookie and the CSRF header.
    let (_, tokens) = login_form(&s, "rhea", "r-pw-1");
    let access = tokens["accessToken"].as_str().unwrap();
    assert_eq!(get(&s, "/auth/2fa/status", access).0, 200);
    let response = s
        .http
        .post(s.url("/auth/logout/web"))
        .header(
            "Cookie",
            format!("refreshToken={}", tokens["refreshToken"].as_str().unwrap()),
        )
        .header("X-CSRFToken", tokens["csrfToken"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(protected(access), [401, 401]);

    // A password change through AuthEndpoints ends the UCloud session too.
    let access = access_token(&s, "rhea", "r-pw-1");
    assert_eq!(get(&s, "/auth/2fa/status", &access).0, 200);
    let ae = crate::authendpoints::tokens(&s, "rhea", "r-pw-1").0;
    let body = json!({"currentPassword": "r-pw-1", "newPassword": "R-pw-22", "confirmNewPassword": "R-pw-22"});
    let changed = s
        .http
        .post(s.url("/users/set_password"))
        .bearer_auth(&ae)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(changed.status(), 204);
    assert_eq!(protected(&access), [401, 401]);
    assert_eq!(
        get(&s, "/auth/2fa/status", &access_token(&s, "rhea", "R-pw-22")).0,
        200
    );
}

/// Admin reset of another user's authenticator.
pub fn admin_reset(s: Server) {
    s.add_user("quinn", "q-pw");
    s.add_user("rita", "r-pw");
    enroll(&s, "quinn", "q-pw");
    let admin = access_token(&s, "admin", ADMIN_PASSWORD);
    let rita = access_token(&s, "rita", "r-pw");
    let reset = |token: &str, username: &str| {
        json(
            s.http
                .post(s.url("/api/supportAssistFnd/resetMfa"))
                .bearer_auth(token)
                .json(&json!({"username": username}))
                .send()
                .unwrap(),
        )
    };
    assert_eq!(reset(&rita, "quinn"), (403, why("Forbidden")));
    assert_eq!(reset(&admin, "nobody"), (400, why("Username wrong")));
    assert_eq!(reset(&admin, "quinn"), (200, json!({})));
    let (status, body) = login_form(&s, "quinn", "q-pw");
    assert_eq!(status, 200);
    assert!(
        body["accessToken"].is_string(),
        "no second factor after the reset"
    );
    let audit = s.cli(&["audit", "--user", "quinn"], None);
    assert!(audit.contains("\"factors.reset\""), "{audit}");
}

/// The served and committed OpenAPI document, Swagger UI, health, and the CLI.
pub fn docs_and_cli(s: Server) {
    let committed: Value = serde_json::from_str(include_str!("../../openapi/ucloud.json")).unwrap();
    let served: Value = s
        .http
        .get(s.url("/openapi/ucloud.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(served, committed);
    assert!(served["paths"]["/auth/2fa/challenge"]["post"].is_object());
    assert_eq!(
        served["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let ui = s.http.get(s.url("/swagger-ui/")).send().unwrap();
    assert_eq!(ui.status(), 200);
    let config = s.swagger_initializer();
    assert!(config.contains("/openapi/ucloud.json"), "{config}");
    assert_eq!(
        json(s.http.get(s.url("/healthz")).send().unwrap()),
        (200, json!({"status": "ok"}))
    );

    s.add_user("sybil", "s-pw");
    enroll(&s, "sybil", "s-pw");
    let list = s.cli(&["user", "list"], None);
    assert!(
        list.lines()
            .any(|l| l.starts_with("sybil\t") && l.ends_with("2fa") && !l.contains("no-2fa")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("admin\t") && l.contains("admin ")),
        "{list}"
    );
    s.cli(&["user", "reset-2fa", "sybil"], None);
    assert!(s
        .cli(&["user", "list"], None)
        .lines()
        .any(|l| l.starts_with("sybil\t") && l.ends_with("no-2fa")));

    let out = tempfile::tempdir().unwrap();
    s.cli(&["openapi", "--out", out.path().to_str().unwrap()], None);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("ucloud.json")).unwrap())
            .unwrap();
    assert_eq!(written, committed);
}

/// SIGTERM lets in-flight requests finish, then the server exits cleanly. Each request
/// is made certainly in flight first: its connection has already been served once
/// (so the server accepted it), and half of its body is sent before the signal and
/// the rest after.
pub fn graceful_shutdown(mut s: Server) {
    use std::io::{Read, Write};
    s.add_user("walter", "w-pw");
    let addr = s.base.trim_start_matches("http://").to_string();
    let body = "username=walter&password=w-pw&service=cli";
    let (head, tail) = body.split_at(body.len() / 2);
    let mut connections: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: twofa\r\n\r\n")
                .unwrap();
            let mut first = [0u8; 512];
            let n = c.read(&mut first).unwrap();
            assert!(
                first[..n].starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&first[..n])
            );
            write!(
                c,
                "POST /auth/login HTTP/1.1\r\nHost: twofa\r\nAccept: application/json\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{head}",
                body.len()
            )
            .unwrap();
            c
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // New connections are refused once the server is stopping.
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "still accepting after SIGTERM"
    );
    for c in &mut connections {
        c.write_all(tail.as_bytes()).unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "in-flight request dropped: {answer:?}"
        );
        assert!(answer.contains("\"accessToken\""), "{answer}");
    }
    assert!(s.wait_exit(), "clean exit after SIGTERM");
}
