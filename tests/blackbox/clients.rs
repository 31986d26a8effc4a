//! What the products' own client code sends and reads (issue 11). Each test names the
//! client source it follows; the requests are the ones that code builds, and the
//! checks are what it reads from the answers.

use reqwest::blocking::multipart;
use serde_json::{json, Value};

use crate::harness::{code, json, Server, ADMIN_PASSWORD};
use crate::ucloud::{enroll, jwt_claims, login_multipart};
use crate::zstack::sha512;

/// UCloud web client, `frontend-web/webclient/app/Authentication/lib.ts` `parseJWT`:
/// a token without any of these claims is thrown away (tokens cleared, back to login).
fn parse_jwt_accepts(token: &str) -> Value {
    let claims = jwt_claims(token);
    for claim in [
        "sub",
        "uid",
        "aud",
        "role",
        "iss",
        "exp",
        "extendedByChain",
        "iat",
        "principalType",
    ] {
        assert!(
            claims.get(claim).is_some(),
            "parseJWT needs {claim}: {claims}"
        );
    }
    claims
}

/// UCloud's web client: login (multipart, `service=web`), the 2FA challenge, and the
/// cookie refresh (`/auth/refresh/web` with `X-CSRFToken`, as `HttpClientInstance.ts`
/// sends it). Every access token passes `parseJWT` and carries what UCloud's own
/// `JWTFactory` writes and the client reads.
pub fn clients_ucloud_web_client(s: Server) {
    s.add_user("ulla", "ulla-pw");
    let (status, body) = login_multipart(&s, "ulla", "ulla-pw");
    assert_eq!(status, 200, "{body}");
    let claims = parse_jwt_accepts(body["accessToken"].as_str().unwrap());
    assert_eq!(claims["sub"], "ulla");
    assert_eq!(claims["aud"], json!(["all:write"]));
    assert_eq!(claims["extendedByChain"], json!([]));
    assert_eq!(claims["principalType"], "password");
    assert_eq!(claims["role"], "USER");
    assert_eq!(claims["twoFactorAuthentication"], false);
    assert_eq!(claims["serviceLicenseAgreement"], true);
    assert!(claims["firstNames"].is_string() && claims["lastName"].is_string());
    assert!(claims["publicSessionReference"].is_string());
    assert!(claims["iat"].as_i64().unwrap() < claims["exp"].as_i64().unwrap());

    // The web client's refresh: cookie plus X-CSRFToken.
    let csrf = body["csrfToken"].as_str().unwrap().to_string();
    let form = multipart::Form::new()
        .text("username", "ulla")
        .text("password", "ulla-pw");
    let login = s
        .http
        .post(s.url("/auth/login?service=web"))
        .header("Accept", "application/json")
        .multipart(form)
        .send()
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    let refresh_cookie = cookie.split(';').next().unwrap().to_string();
    let tokens: Value = login.json().unwrap();
    let csrf2 = tokens["csrfToken"].as_str().unwrap();
    assert_ne!(csrf, csrf2);
    let (status, refreshed) = json(
        s.http
            .post(s.url("/auth/refresh/web"))
            .header("Cookie", refresh_cookie)
            .header("X-CSRFToken", csrf2)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{refreshed}");
    parse_jwt_accepts(refreshed["accessToken"].as_str().unwrap());

    // 2FA login: the token after the challenge passes too, with the 2FA claim set.
    let secret = enroll(&s, "ulla", "ulla-pw");
    let (_, body) = login_multipart(&s, "ulla", "ulla-pw");
    let challenge = body["2fa"].as_str().expect("a challenge").to_string();
    let (status, tokens) = json(
        s.http
            .post(s.url("/auth/2fa/challenge"))
            .header("Accept", "application/json")
            .json(&json!({"challengeId": challenge, "verificationCode": code(&secret, 30)}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{tokens}");
    let claims = parse_jwt_accepts(tokens["accessToken"].as_str().unwrap());
    assert_eq!(claims["twoFactorAuthentication"], true);
}

const LOGIN_MSG: &str = "org.zstack.header.identity.APILogInByAccountMsg";
const LOGIN_REPLY: &str = "org.zstack.header.identity.APILogInReply";

/// zstack-utility `apibinding/apibinding/api.py` `sync_call`: posts
/// `{FULL_NAME: msg}` to `/zstack/api`, requires `state == "Done"` (else polls
/// `/zstack/api/result/<uuid>`), parses `result` as JSON and takes its one
/// `(reply name, reply)` pair, reading `reply.success`, `reply.error.code` and the
/// reply's fields. Returns (reply name, reply).
fn message(s: &Server, class: &str, msg: Value) -> (String, Value) {
    let (status, rsp) = json(
        s.http
            .post(s.url("/zstack/api"))
            .json(&json!({ class: msg }))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{rsp}");
    assert_eq!(rsp["state"], "Done", "{rsp}");
    let uuid = rsp["uuid"].as_str().expect("a uuid to poll");
    // Polling the result gives the same answer.
    let (status, again) = json(
        s.http
            .get(s.url(&format!("/zstack/api/result/{uuid}")))
            .send()
            .unwrap(),
    );
    assert_eq!((status, &again["result"]), (200, &rsp["result"]));
    let result: Value = serde_json::from_str(rsp["result"].as_str().unwrap()).unwrap();
    let map = result.as_object().unwrap();
    assert_eq!(map.len(), 1, "{result}");
    let (name, reply) = map.iter().next().unwrap();
    (name.clone(), reply.clone())
}

/// `inventory.APILogInByAccountMsg` as `api.py` `login_as_admin` fills it.
fn login_msg(name: &str, password: &str, tags: &[String]) -> Value {
    json!({"accountName": name, "password": sha512(password), "timeout": 15000,
           "systemTags": tags, "userTags": []})
}

fn with_session(mut msg: Value, session: &str) -> Value {
    msg["session"] = json!({ "uuid": session });
    msg
}

fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["success"], false, "{reply}");
    reply["error"]["code"].as_str().unwrap()
}

/// ZStack's Python tooling over the message API: every message the REST dialect
/// serves, with ZStack's reply classes and error codes.
pub fn clients_zstack_message_api(s: Server) {
    const TWOFA: &str = "org.zstack.twoFactorAuthentication";
    s.add_user("zed", "zed-pw");

    // login_as_admin
    let (name, reply) = message(&s, LOGIN_MSG, login_msg("admin", ADMIN_PASSWORD, &[]));
    assert_eq!(name, LOGIN_REPLY);
    assert_eq!(reply["success"], true, "{reply}");
    let admin = reply["inventory"]["uuid"].as_str().unwrap().to_string();

    let (name, reply) = message(
        &s,
        &format!("{TWOFA}.APIGetTwoFactorAuthenticationStateMsg"),
        json!({}),
    );
    assert_eq!(
        name,
        format!("{TWOFA}.APIGetTwoFactorAuthenticationStateReply")
    );
    assert_eq!(
        (&reply["state"], &reply["success"]),
        (&json!("Disable"), &json!(true))
    );

    // A non-admin cannot switch it; the admin can.
    let (_, zed) = message(&s, LOGIN_MSG, login_msg("zed", "zed-pw", &[]));
    let zed_session = zed["inventory"]["uuid"].as_str().unwrap().to_string();
    let update = json!({"category": "twofa", "name": "twofa.enable", "value": "true"});
    let update_class = "org.zstack.core.config.APIUpdateGlobalConfigMsg";
    let (name, reply) = message(&s, update_class, with_session(update.clone(), &zed_session));
    assert_eq!(name, "org.zstack.core.config.APIUpdateGlobalConfigEvent");
    assert_eq!(error_code(&reply), "ID.1002");
    let (_, reply) = message(&s, update_class, with_session(update, &admin));
    assert_eq!(reply["inventory"]["value"], "true", "{reply}");
    let (_, reply) = message(
        &s,
        update_class,
        with_session(json!({"category": "vm", "name": "x", "value": "1"}), &admin),
    );
    assert_eq!(error_code(&reply), "SYS.1007");

    let (name, reply) = message(
        &s,
        "org.zstack.header.identity.login.APIGetLoginProceduresMsg",
        json!({"username": "zed", "loginType": "account"}),
    );
    assert_eq!(
        name,
        "org.zstack.header.identity.login.APIGetLoginProceduresReply"
    );
    assert_eq!(reply["procedures"][0]["name"], "twoFactorAuthentication");

    // Enabled: a login without twofatoken is ID.2001.
    let (_, reply) = message(&s, LOGIN_MSG, login_msg("zed", "zed-pw", &[]));
    assert_eq!(error_code(&reply), "ID.2001");

    let get_secret = |password: &str| {
        message(
            &s,
            &format!("{TWOFA}.APIGetTwoFactorAuthenticationSecretMsg"),
            json!({"name": "zed", "password": sha512(password), "type": "account"}),
        )
    };
    let (name, reply) = get_secret("wrong");
    assert_eq!(
        name,
        format!("{TWOFA}.APIGetTwoFactorAuthenticationSecretReply")
    );
    assert_eq!(error_code(&reply), "ID.1000");
    let (_, reply) = get_secret("zed-pw");
    assert_eq!(reply["inventory"]["status"], "NewCreated", "{reply}");
    let secret = reply["inventory"]["secret"].as_str().unwrap().to_string();

    let tag = |offset| vec![format!("twofatoken::{}", code(&secret, offset))];
    let (_, reply) = message(&s, LOGIN_MSG, login_msg("zed", "zed-pw", &tag(0)));
    assert_eq!(reply["success"], true, "{reply}");
    let zed_session = reply["inventory"]["uuid"].as_str().unwrap().to_string();
    // Single use: the same code again is ID.2002.
    let (_, reply) = message(&s, LOGIN_MSG, login_msg("zed", "zed-pw", &tag(0)));
    assert_eq!(error_code(&reply), "ID.2002");

    // APIQueryMessage: conditions, count, replyWithCount, limit/start, sort.
    let query_class = format!("{TWOFA}.APIQueryTwoFactorAuthenticationMsg");
    let query = |msg: Value, session: &str| {
        let (name, reply) = message(&s, &query_class, with_session(msg, session));
        assert_eq!(
            name,
            format!("{TWOFA}.APIQueryTwoFactorAuthenticationReply")
        );
        reply
    };
    let logined = json!([{"name": "status", "op": "=", "value": "Logined"}]);
    let reply = query(
        json!({"conditions": logined, "replyWithCount": true}),
        &admin,
    );
    assert_eq!(reply["success"], true, "{reply}");
    assert_eq!(reply["total"], 1);
    assert_eq!(reply["inventories"][0]["status"], "Logined");
    assert_eq!(
        reply["inventories"][0]["secret"], "",
        "never disclosed again"
    );
    assert!(reply.get("schema").is_none());
    let reply = query(json!({"conditions": logined, "count": true}), &admin);
    assert_eq!(
        (&reply["total"], reply.get("inventories")),
        (&json!(1), None)
    );
    let reply = query(
        json!({"conditions": [{"name": "status", "op": "in", "value": "NewCreated,Logined"}],
               "limit": 1, "start": 1, "sortBy": "createDate", "sortDirection": "desc"}),
        &admin,
    );
    assert_eq!(reply["inventories"].as_array().unwrap().len(), 0, "{reply}");
    let reply = query(
        json!({"conditions": [{"name": "nope", "op": "=", "value": "1"}]}),
        &admin,
    );
    assert_eq!(error_code(&reply), "SYS.1000");
    let reply = query(json!({"conditions": []}), "not-a-session");
    assert_eq!(error_code(&reply), "ID.1001");
    // The owner sees their own.
    let reply = query(json!({"conditions": []}), &zed_session);
    assert_eq!(reply["inventories"].as_array().unwrap().len(), 1, "{reply}");

    // Reset (admin): a new NewCreated secret.
    let reset_class = format!("{TWOFA}.APIResetTwoFactorAuthenticationSecretMsg");
    let reset = json!({"name": "zed", "password": sha512("zed-pw"), "type": "account"});
    let (name, reply) = message(&s, &reset_class, with_session(reset.clone(), &zed_session));
    assert_eq!(
        name,
        format!("{TWOFA}.APIResetTwoFactorAuthenticationSecretEvent")
    );
    assert_eq!(error_code(&reply), "ID.1002");
    let (_, reply) = message(&s, &reset_class, with_session(reset, &admin));
    assert_eq!(reply["inventory"]["status"], "NewCreated", "{reply}");
    assert_ne!(reply["inventory"]["secret"], secret);

    // api.py log_out: APILogOutMsg with sessionUuid ends the session.
    let (name, reply) = message(
        &s,
        "org.zstack.header.identity.APILogOutMsg",
        json!({"sessionUuid": zed_session, "timeout": 15000}),
    );
    assert_eq!(
        (name.as_str(), &reply),
        (
            "org.zstack.header.identity.APILogOutReply",
            &json!({"success": true})
        )
    );
    let reply = query(json!({"conditions": []}), &zed_session);
    assert_eq!(error_code(&reply), "ID.1001");
    // The same session on the REST API is gone too.
    let (status, _) = json(
        s.http
            .get(s.url("/zstack/v1/twofactorauthentication/secrets"))
            .header("Authorization", format!("OAuth {zed_session}"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 503);

    // A missing field is the API's argument error; an unknown message or a body that
    // is not JSON is a plain-text 400; PUT is accepted like POST.
    let (_, reply) = message(&s, LOGIN_MSG, json!({"accountName": "zed"}));
    assert_eq!(error_code(&reply), "SYS.1007");
    let r = s
        .http
        .post(s.url("/zstack/api"))
        .json(&json!({"org.zstack.header.vm.APICreateVmInstanceMsg": {}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = s
        .http
        .post(s.url("/zstack/api"))
        .body("nope")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (status, rsp) = json(
        s.http
            .put(s.url("/zstack/api"))
            .json(&json!({ LOGIN_MSG: login_msg("admin", ADMIN_PASSWORD, &[]) }))
            .send()
            .unwrap(),
    );
    assert_eq!((status, &rsp["state"]), (200, &json!("Done")));
    let r = s
        .http
        .get(s.url("/zstack/api/result/0123456789abcdef0123456789abcdef"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

/// The Saasu Ruby gem's `lib/saasu/auth.rb` `get_access_token` body (JSON password
/// grant, `scope: full`), with `Saasu::Config.username` being the email address as
/// Saasu's docs and SDKs use it.
fn saasu_grant(s: &Server, path: &str, username: &str, password: &str) -> (u16, Value) {
    let mut body = json!({"grant_type": "password", "scope": "full",
                          "username": username, "password": password});
    if path.ends_with("token-2fa") {
        body["verification_code"] = json!("");
    }
    json(
        s.http
            .post(s.url(path))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap(),
    )
}

/// Saasu: `GET authorisation/Ping` (the .NET SDK's casing, read as a boolean) answers
/// `true` in JSON and `<boolean>true</boolean>` in XML; the password grant takes the
/// user's email (any case) as `username`, and an unknown email gets exactly the
/// answer of a wrong password.
pub fn clients_saasu_sdk(s: Server) {
    s.cli(
        &[
            "user",
            "add",
            "--username",
            "sam",
            "--email",
            "Sam.Saasu@Example.com",
            "--password-stdin",
        ],
        Some("sam-pw\n"),
    );
    for name in ["sam", "sam.saasu@example.com", "SAM.SAASU@EXAMPLE.COM"] {
        let (status, grant) = saasu_grant(&s, "/authorisation/token", name, "sam-pw");
        assert_eq!(status, 200, "{name}: {grant}");
        let (status, grant) = saasu_grant(&s, "/authorisation/token-2fa", name, "sam-pw");
        assert_eq!(status, 200, "{name}: {grant}");
    }
    let wrong = saasu_grant(&s, "/authorisation/token", "sam.saasu@example.com", "nope");
    let unknown = saasu_grant(&s, "/authorisation/token", "nobody@example.com", "nope");
    assert_eq!(wrong.0, 400, "{}", wrong.1);
    assert_eq!(wrong, unknown, "no enumeration through the email");
    let unknown_2fa = saasu_grant(&s, "/authorisation/token-2fa", "nobody@example.com", "x");
    let wrong_2fa = saasu_grant(&s, "/authorisation/token-2fa", "sam.saasu@example.com", "x");
    assert_eq!(wrong_2fa, unknown_2fa);

    let (_, grant) = saasu_grant(
        &s,
        "/authorisation/token",
        "Sam.Saasu@Example.com",
        "sam-pw",
    );
    let access = grant["access_token"].as_str().unwrap();
    // .NET SDK: `GetResponse<string>` on `authorisation/Ping`; the help page: a boolean.
    let r = s
        .http
        .get(s.url("/authorisation/Ping"))
        .bearer_auth(access)
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.text().unwrap(), "true");
    let r = s
        .http
        .get(s.url("/authorisation/Ping"))
        .bearer_auth(access)
        .header("Accept", "application/xml")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let xml = r.text().unwrap();
    assert!(
        xml.ends_with(r#"<boolean xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">true</boolean>"#),
        "{xml}"
    );
    // A bad token is still 401.
    let r = s
        .http
        .get(s.url("/authorisation/Ping"))
        .bearer_auth("bogus")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
