//! The ZStack dialect driven over HTTP as ZStack's clients (the web UI, the Java, Go and
//! Python SDKs) drive it: SHA-512 passwords, `OAuth` sessions, `twofatoken::` system
//! tags, the `schema` map of query replies, and 202 + polling for async APIs.

use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use crate::harness::{code, json, unix_time, Server, ADMIN_PASSWORD};

const V1: &str = "/zstack/v1";

pub(crate) fn sha512(password: &str) -> String {
    Sha512::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Status and body text (REST-layer errors are plain text).
fn text(r: reqwest::blocking::Response) -> (u16, String) {
    let status = r.status().as_u16();
    (status, r.text().unwrap())
}

fn login_body(s: &Server, body: Value) -> (u16, Value) {
    json(
        s.http
            .put(s.url(&format!("{V1}/accounts/login")))
            .json(&body)
            .send()
            .unwrap(),
    )
}

/// `LogInByAccount` with the tags at the top level, as the web UI sends them.
pub(crate) fn login(s: &Server, name: &str, password: &str, tags: &[&str]) -> (u16, Value) {
    login_body(
        s,
        json!({"logInByAccount": {"accountName": name, "password": sha512(password)}, "systemTags": tags}),
    )
}

fn login_with_code(s: &Server, name: &str, password: &str, code: &str) -> (u16, Value) {
    login(s, name, password, &[&format!("twofatoken::{code}")])
}

pub(crate) fn session(s: &Server, name: &str, password: &str, tags: &[&str]) -> String {
    let (status, body) = login(s, name, password, tags);
    assert_eq!(status, 200, "{body}");
    body["inventory"]["uuid"].as_str().unwrap().to_string()
}

fn admin(s: &Server) -> String {
    session(s, "admin", ADMIN_PASSWORD, &[])
}

fn get(s: &Server, path: &str, session: Option<&str>) -> reqwest::blocking::Response {
    let mut r = s.http.get(s.url(&format!("{V1}{path}")));
    if let Some(session) = session {
        r = r.header("Authorization", format!("OAuth {session}"));
    }
    r.send().unwrap()
}

fn put(s: &Server, path: &str, session: &str, body: Value) -> reqwest::blocking::Response {
    s.http
        .put(s.url(&format!("{V1}{path}")))
        .header("Authorization", format!("OAuth {session}"))
        .json(&body)
        .send()
        .unwrap()
}

/// An async API as the SDKs call it: 202 with `location`, then poll it.
fn async_call(s: &Server, path: &str, session: &str, body: Value) -> (u16, Value) {
    let (status, accepted) = json(put(s, path, session, body));
    assert_eq!(status, 202, "{accepted}");
    assert!(accepted["apiTimeout"].is_i64());
    let location = accepted["location"].as_str().unwrap();
    let prefix = s.url(&format!("{V1}/api-jobs/"));
    let job = location
        .strip_prefix(&prefix)
        .expect("location under api-jobs");
    assert!(is_uuid(job), "{job}");
    json(s.http.get(location).send().unwrap())
}

fn set_enabled(s: &Server, admin: &str, on: bool) {
    let (status, body) = async_call(
        s,
        "/global-configurations/twofa/twofa.enable/actions",
        admin,
        json!({"updateGlobalConfig": {"value": on.to_string()}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["inventory"]["value"], on.to_string());
}

fn get_secret(s: &Server, name: &str, password: &str) -> (u16, Value) {
    let path = format!(
        "/twofactorauthentication/secret?name={name}&password={}&type=account",
        sha512(password)
    );
    json(get(s, &path, None))
}

fn secret_of(s: &Server, name: &str, password: &str) -> String {
    let (status, body) = get_secret(s, name, password);
    assert_eq!(status, 200, "{body}");
    body["inventory"]["secret"].as_str().unwrap().to_string()
}

/// Gets the secret and binds it with a first login; returns the secret.
fn bind(s: &Server, name: &str, password: &str) -> String {
    let secret = secret_of(s, name, password);
    let (status, body) = login_with_code(s, name, password, &code(&secret, 0));
    assert_eq!(status, 200, "{body}");
    secret
}

fn query(s: &Server, session: &str, params: &str) -> (u16, Value) {
    json(get(
        s,
        &format!("/twofactorauthentication/secrets{params}"),
        Some(session),
    ))
}

fn error(code: &str, description: &str, details: &str) -> Value {
    json!({"error": {"code": code, "description": description, "details": details}})
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn is_uuid(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Gson's US default date format, e.g. `Jan 6, 2017 3:51:16 AM`.
fn is_zstack_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split(' ').collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    parts.len() == 5
        && months.contains(&parts[0])
        && parts[1].ends_with(',')
        && !parts[1].starts_with('0')
        && parts[2].len() == 4
        && parts[3].split(':').count() == 3
        && !parts[3].starts_with('0')
        && (parts[4] == "AM" || parts[4] == "PM")
}

const NEED_TOKEN: &str = "The user has to login by addition authentication";
const ADDITION_FAILED: &str = "Fail to authenticate a user due to addition authentication";

fn need_token(name: &str) -> Value {
    error(
        "ID.2001",
        NEED_TOKEN,
        &json!({"authentications": ["googleAuth"], "credentials": name}).to_string(),
    )
}

/// The reference's binding flow end to end, then replay, logout and expiry.
pub fn zstack_binding_flow(s: Server) {
    assert_eq!(
        json(get(&s, "/twofactorauthentication/state", None)),
        (200, json!({"state": "Disable"}))
    );
    s.add_user("alice", "alice-pw");
    assert_eq!(
        get_secret(&s, "alice", "alice-pw"),
        (
            503,
            error(
                "SYS.1006",
                "An operation failed",
                "two factor authenticator is not enabled"
            )
        )
    );
    assert_eq!(
        json(get(&s, "/login/procedures?username=alice", None)),
        (200, json!({"procedures": []}))
    );

    let admin = admin(&s);
    assert!(is_uuid(&admin));
    set_enabled(&s, &admin, true);
    assert_eq!(
        json(get(&s, "/twofactorauthentication/state", None)),
        (200, json!({"state": "Enable"}))
    );
    assert_eq!(
        json(get(&s, "/login/procedures?username=alice", None)).1,
        json!({"procedures": [{"order": 1, "name": "twoFactorAuthentication",
                                "properties": {"authenticationSource": "GoogleAuthenticator"}}]})
    );

    // Without a token: ID.2001 whatever the password, as in ZStack.
    assert_eq!(
        login(&s, "alice", "alice-pw", &[]),
        (503, need_token("alice"))
    );
    assert_eq!(login(&s, "alice", "wrong", &[]), (503, need_token("alice")));
    assert_eq!(login(&s, "nobody", "x", &[]), (503, need_token("nobody")));

    assert_eq!(
        get_secret(&s, "alice", "wrong"),
        (
            503,
            error(
                "ID.1000",
                "Unable to authenticate a user",
                "wrong account name or password"
            )
        )
    );
    let (status, first) = get_secret(&s, "alice", "alice-pw");
    assert_eq!(status, 200, "{first}");
    let inv = &first["inventory"];
    let secret = inv["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 32, "160-bit base32 secret");
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    assert!(is_uuid(inv["uuid"].as_str().unwrap()));
    assert!(is_uuid(inv["userUuid"].as_str().unwrap()));
    assert_eq!(inv["userType"], "AccountVO");
    assert_eq!(inv["status"], "NewCreated");
    assert!(is_zstack_date(inv["createDate"].as_str().unwrap()), "{inv}");
    assert!(is_zstack_date(inv["lastOpDate"].as_str().unwrap()), "{inv}");
    assert_eq!(inv.as_object().unwrap().len(), 7);
    // The same pending secret on later calls.
    assert_eq!(get_secret(&s, "alice", "alice-pw").1, first);

    // Wrong password with a token: the password is checked first.
    assert_eq!(
        login_with_code(&s, "alice", "wrong", &code(&secret, 0)).1["error"]["code"],
        "ID.1000"
    );
    // A wrong code: ID.2002.
    let wrong = if code(&secret, 0) == "123456" {
        "654321"
    } else {
        "123456"
    };
    assert_eq!(
        login_with_code(&s, "alice", "alice-pw", wrong),
        (
            503,
            error(
                "ID.2002",
                ADDITION_FAILED,
                "additional authentication failed"
            )
        )
    );
    // Not a number: Integer.valueOf's error, as an internal error.
    assert_eq!(
        login_with_code(&s, "alice", "alice-pw", "abc"),
        (
            503,
            error(
                "SYS.1000",
                "An internal error happened in system",
                "For input string: \"abc\""
            )
        )
    );

    // The first login with a code binds the secret.
    let first_code = code(&secret, 0);
    let (status, logged) = login_with_code(&s, "alice", "alice-pw", &first_code);
    assert_eq!(status, 200, "{logged}");
    let inv = &logged["inventory"];
    let alice = inv["uuid"].as_str().unwrap().to_string();
    assert!(is_uuid(&alice));
    assert_eq!(inv["accountUuid"], first["inventory"]["userUuid"]);
    assert_eq!(inv["userUuid"], first["inventory"]["userUuid"]);
    assert_eq!(inv["userType"], "AccountVO");
    assert_eq!(inv["noSessionEvaluation"], false);
    assert!(is_zstack_date(inv["createDate"].as_str().unwrap()));
    assert!(is_zstack_date(inv["expiredDate"].as_str().unwrap()));
    assert_ne!(inv["createDate"], inv["expiredDate"], "7200 s later");

    // The same code again is a replay.
    assert_eq!(
        login_with_code(&s, "alice", "alice-pw", &first_code).1["error"]["code"],
        "ID.2002"
    );

    // Bound: the secret is never disclosed again.
    let (_, bound) = get_secret(&s, "alice", "alice-pw");
    assert_eq!(bound["inventory"]["secret"], "");
    assert_eq!(bound["inventory"]["status"], "Logined");
    assert_eq!(bound["inventory"]["uuid"], first["inventory"]["uuid"]);

    let (status, mine) = query(&s, &alice, "");
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["inventories"].as_array().unwrap().len(), 1);
    assert_eq!(mine["inventories"][0]["status"], "Logined");
    assert_eq!(mine["inventories"][0]["secret"], "");
    assert_eq!(
        mine["schema"],
        json!({
            "inventories[0].status": "org.zstack.twoFactorAuthentication.TwoFactorAuthenticationSecretStatus",
            "inventories[0]": "org.zstack.twoFactorAuthentication.TwoFactorAuthenticationInventory",
        })
    );
    assert!(mine.get("total").is_none());

    // A user with no secret who sends a token: ID.2000.
    s.add_user("bob", "bob-pw");
    assert_eq!(
        login_with_code(&s, "bob", "bob-pw", "123456"),
        (
            503,
            error(
                "ID.2000",
                "Addition authentication error",
                "additional authentication failed"
            )
        )
    );

    // System tags inside the action object work too (the Java SDK sends them there).
    let (status, body) = login_body(
        &s,
        json!({"logInByAccount": {"accountName": "alice", "password": sha512("alice-pw"),
                                  "systemTags": [format!("twofatoken::{}", code(&secret, 30))]}}),
    );
    assert_eq!(status, 200, "{body}");

    // Logout ends the session; a second logout is harmless.
    let delete = |uuid: &str| {
        json(
            s.http
                .delete(s.url(&format!("{V1}/accounts/sessions/{uuid}")))
                .send()
                .unwrap(),
        )
    };
    assert_eq!(delete(&alice), (200, json!({})));
    assert_eq!(delete(&alice), (200, json!({})));
    let expired = error(
        "ID.1001",
        "The session is invalid, either wrong session id or the session has been expired",
        "Session expired",
    );
    assert_eq!(query(&s, &alice, ""), (503, expired.clone()));

    // An expired session is refused the same way.
    assert_eq!(query(&s, &admin, "").0, 200);
    s.sql("UPDATE sessions SET expires_at = 0");
    assert_eq!(query(&s, &admin, ""), (503, expired));
    // With twofa.enable on, the admin needs a code too.
    assert_eq!(
        login(&s, "admin", ADMIN_PASSWORD, &[]),
        (503, need_token("admin"))
    );
}

/// Wrong codes lock the account's codes out (answered as a ZStack error), and a
/// locked-out correct code is refused too.
pub fn zstack_code_lockout(s: Server) {
    let admin = admin(&s);
    set_enabled(&s, &admin, true);
    s.add_user("carol", "carol-pw");
    let secret = bind(&s, "carol", "carol-pw");
    let right = code(&secret, 30);
    let wrong = if right == "111111" {
        "222222"
    } else {
        "111111"
    };
    for _ in 0..5 {
        assert_eq!(
            login_with_code(&s, "carol", "carol-pw", wrong).1["error"]["code"],
            "ID.2002"
        );
    }
    let (status, body) = login_with_code(&s, "carol", "carol-pw", &right);
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "ID.1000");
    assert!(
        body["error"]["details"]
            .as_str()
            .unwrap()
            .starts_with("too many failed attempts"),
        "{body}"
    );

    // Passwords are limited per account name as well.
    s.add_user("dave", "dave-pw");
    for _ in 0..5 {
        assert_eq!(
            login(&s, "dave", "nope", &["twofatoken::123456"]).1["error"]["details"],
            "wrong account name or password"
        );
    }
    let (_, body) = login(&s, "dave", "dave-pw", &["twofatoken::123456"]);
    assert!(body["error"]["details"]
        .as_str()
        .unwrap()
        .starts_with("too many failed attempts"));
}

/// One factor per user, whatever the dialect: enrolled through UCloud means `Logined`
/// here and a code is needed even with `twofa.enable` off; bound here means UCloud
/// asks for a code.
pub fn zstack_cross_dialect(s: Server) {
    s.add_user("erin", "erin-pw");
    let secret = crate::ucloud::enroll(&s, "erin", "erin-pw");
    // twofa.enable is off, but erin has an active factor: no bypass.
    assert_eq!(login(&s, "erin", "erin-pw", &[]), (503, need_token("erin")));
    // The UCloud enrollment used step 0; the next step is fresh.
    let (status, body) = login_with_code(&s, "erin", "erin-pw", &code(&secret, 30));
    assert_eq!(status, 200, "{body}");
    let admin = admin(&s);
    let (_, all) = query(&s, &admin, "?q=status=Logined");
    assert_eq!(all["inventories"].as_array().unwrap().len(), 1);
    assert_eq!(all["inventories"][0]["secret"], "");

    // A user without a factor logs in with the password alone while the switch is off.
    s.add_user("frank", "frank-pw");
    assert_eq!(login(&s, "frank", "frank-pw", &[]).0, 200);

    // Bound through ZStack: UCloud now asks for the second factor.
    set_enabled(&s, &admin, true);
    let frank = bind(&s, "frank", "frank-pw");
    let (status, body) = crate::ucloud::login_form(&s, "frank", "frank-pw");
    assert_eq!(status, 200);
    assert!(body["2fa"].is_string(), "{body}");
    // A ZStack session is valid only through ZStack.
    let zs = session(
        &s,
        "frank",
        "frank-pw",
        &[&format!("twofatoken::{}", code(&frank, 30))],
    );
    let status = s
        .http
        .get(s.url("/auth/2fa/status"))
        .bearer_auth(&zs)
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 401);
}

/// The uuids of a query reply's inventories, in order.
fn uuids(body: &Value) -> Vec<String> {
    body["inventories"]
        .as_array()
        .unwrap_or_else(|| panic!("no inventories: {body}"))
        .iter()
        .map(|i| i["uuid"].as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Every operator and option of the query API against several users, and every bad
/// input of the reference's table.
pub fn zstack_query_engine(s: Server) {
    let admin = admin(&s);
    set_enabled(&s, &admin, true);
    let mut factors = Vec::new();
    for name in ["u1", "u2", "u3"] {
        s.add_user(name, "pw");
        let (_, body) = get_secret(&s, name, "pw");
        factors.push(body["inventory"].clone());
    }
    // u1 binds its secret; u1's row gets a later lastOpDate than createDate.
    s.sql(&format!(
        "UPDATE totp_factors SET created_at = created_at - 100 WHERE id = '{}'",
        factors[0]["uuid"].as_str().unwrap()
    ));
    bind(&s, "u1", "pw");
    let id = |i: usize| factors[i]["uuid"].as_str().unwrap().to_string();
    let user = |i: usize| factors[i]["userUuid"].as_str().unwrap().to_string();
    let all = sorted(vec![id(0), id(1), id(2)]);

    let q = |params: &str| {
        let (status, body) = query(&s, &admin, params);
        assert_eq!(status, 200, "{params}: {body}");
        body
    };
    let ids = |params: &str| sorted(uuids(&q(params)));

    assert_eq!(ids(""), all);
    assert_eq!(ids("?q=status=Logined"), vec![id(0)]);
    assert_eq!(ids("?q=status!=Logined"), sorted(vec![id(1), id(2)]));
    assert_eq!(
        ids(&format!("?q=uuid?={},{}", id(1), id(2))),
        sorted(vec![id(1), id(2)])
    );
    assert_eq!(ids(&format!("?q=uuid!?={},{}", id(1), id(2))), vec![id(0)]);
    assert_eq!(ids(&format!("?q=uuid={}", id(2))), vec![id(2)]);
    assert_eq!(ids(&format!("?q=userUuid={}", user(1))), vec![id(1)]);
    // `~=` is SQL LIKE (the `%` URL-encoded).
    let prefix = &id(0)[..8];
    assert_eq!(ids(&format!("?q=uuid~={prefix}%25")), vec![id(0)]);
    assert_eq!(
        ids(&format!("?q=uuid!~={prefix}%25")),
        sorted(vec![id(1), id(2)])
    );
    // Dates are unix seconds in conditions; u1 was created 100 s earlier and bound now.
    let now = unix_time().as_secs() as i64;
    let cut = now - 50;
    assert_eq!(ids(&format!("?q=createDate<{cut}")), vec![id(0)]);
    assert_eq!(ids(&format!("?q=createDate<={cut}")), vec![id(0)]);
    assert_eq!(
        ids(&format!("?q=createDate>{cut}")),
        sorted(vec![id(1), id(2)])
    );
    assert_eq!(
        ids(&format!("?q=createDate>={cut}")),
        sorted(vec![id(1), id(2)])
    );
    assert_eq!(ids(&format!("?q=lastOpDate>={cut}")), all, "bound now");
    assert_eq!(ids("?q=lastOpDate is null"), Vec::<String>::new());
    assert_eq!(ids("?q=lastOpDate not null"), all);
    assert_eq!(ids("?q=userType=AccountVO"), all);
    assert_eq!(ids("?q=userType!=AccountVO"), Vec::<String>::new());
    // Conditions are ANDed.
    assert_eq!(
        ids(&format!("?q=status=NewCreated&q=uuid!={}", id(1))),
        vec![id(2)]
    );

    // Sorting: -f, %2B f (as the Java SDK encodes it), bare f, and a literal `+`
    // (a space once decoded) all work.
    let mut asc = all.clone();
    assert_eq!(uuids(&q("?sort=uuid")), asc);
    assert_eq!(uuids(&q("?sort=%2Buuid")), asc);
    assert_eq!(uuids(&q("?sort=+uuid")), asc);
    asc.reverse();
    assert_eq!(uuids(&q("?sort=-uuid")), asc);
    assert_eq!(uuids(&q("?sort=createDate"))[0], id(0));
    // u1's last change is its binding (now): later than u2's and u3's creation.
    s.sql(&format!(
        "UPDATE totp_factors SET created_at = created_at - 200 WHERE id <> '{}'",
        id(0)
    ));
    assert_eq!(uuids(&q("?sort=-lastOpDate"))[0], id(0));
    assert_eq!(uuids(&q("?sort=lastOpDate"))[2], id(0));

    // Paging, counting, projection.
    let sorted_all = all.clone();
    assert_eq!(uuids(&q("?sort=uuid&limit=1")), vec![sorted_all[0].clone()]);
    assert_eq!(
        uuids(&q("?sort=uuid&limit=2&start=1")),
        sorted_all[1..].to_vec()
    );
    assert_eq!(q("?count=true"), json!({"total": 3, "schema": {}}));
    assert_eq!(
        q("?count=TRUE&q=status=Logined"),
        json!({"total": 1, "schema": {}})
    );
    let with_count = q("?replyWithCount=true&limit=1");
    assert_eq!(with_count["total"], 3);
    assert_eq!(with_count["inventories"].as_array().unwrap().len(), 1);
    let projected = q(&format!("?fields=uuid,%20status&q=uuid={}", id(1)));
    assert_eq!(
        projected,
        json!({"inventories": [{"uuid": id(1), "status": "NewCreated"}],
               "schema": {
                   "inventories[0].status": "org.zstack.twoFactorAuthentication.TwoFactorAuthenticationSecretStatus",
                   "inventories[0]": "org.zstack.twoFactorAuthentication.TwoFactorAuthenticationInventory"}})
    );
    let projected = q("?fields=uuid&limit=1");
    assert_eq!(
        projected["schema"],
        json!({"inventories[0]": "org.zstack.twoFactorAuthentication.TwoFactorAuthenticationInventory"})
    );
    // Unknown parameters (and `condition=`) are ignored.
    assert_eq!(ids("?foo=bar&condition=uuid%3Dx"), all);
    // The default limit is 1000, not "everything": checked by its presence in the doc
    // and by a limit that cuts.
    assert_eq!(q("?limit=0")["inventories"], json!([]));

    // One by uuid; a missing one is an empty list.
    assert_eq!(
        uuids(
            &json(get(
                &s,
                &format!("/twofactorauthentication/secrets/{}", id(2)),
                Some(&admin)
            ))
            .1
        ),
        vec![id(2)]
    );
    assert_eq!(
        json(get(
            &s,
            "/twofactorauthentication/secrets/00000000000000000000000000000000?q=bad",
            Some(&admin)
        )),
        (200, json!({"inventories": [], "schema": {}}))
    );

    // Non-admins see only their own rows, whatever they ask.
    let u2 = session(
        &s,
        "u2",
        "pw",
        &[&format!(
            "twofatoken::{}",
            code(factors[1]["secret"].as_str().unwrap(), 0)
        )],
    );
    assert_eq!(uuids(&query(&s, &u2, "").1), vec![id(1)]);
    assert_eq!(
        uuids(&query(&s, &u2, &format!("?q=uuid={}", id(2))).1),
        Vec::<String>::new()
    );
    assert_eq!(query(&s, &u2, "?count=true").1["total"], 1);
    // A bound factor's secret is not disclosed by the query either.
    assert_eq!(query(&s, &u2, "").1["inventories"][0]["secret"], "");
    // Nor is another user's pending secret, not even to an admin.
    let pending = q(&format!("?q=uuid={}", id(2)));
    assert_eq!(pending["inventories"][0]["status"], "NewCreated");
    assert_eq!(pending["inventories"][0]["secret"], "");
    assert!(q("")
        .to_string()
        .find(factors[2]["secret"].as_str().unwrap())
        .is_none());

    // Bad syntax: 400 plain text.
    let bad = |params: &str| {
        text(get(
            &s,
            &format!("/twofactorauthentication/secrets{params}"),
            Some(&admin),
        ))
    };
    assert_eq!(
        bad("?q=uuid"),
        (400, "Invalid query parameter. The 'uuid' in the parameter[q] doesn't contain any query operator. Valid query operators are [[!=, >=, <=, !?=, !~=, ~=, ?=, =, >, <, is null, not null]]".into())
    );
    assert_eq!(
        bad("?q=uuid="),
        (400, "Invalid query parameter. The 'uuid=' in the parameter[q] is not a key-value pair split by =".into())
    );
    assert_eq!(
        bad("?limit=x"),
        (
            400,
            "Invalid query parameter. 'limit' must be an integer".into()
        )
    );
    assert_eq!(
        bad("?start=1.5"),
        (
            400,
            "Invalid query parameter. 'start' must be an integer".into()
        )
    );
    // Unknown fields: 503 SYS.1000.
    for params in [
        "?q=foo=1",
        "?sort=foo",
        "?fields=uuid,foo",
        "?q=secret=x",
        "?q=createDate>yesterday",
        "?q=status=Bogus",
    ] {
        let (status, body) = query(&s, &admin, params);
        assert_eq!(
            (status, error_code(&body)),
            (503, "SYS.1000"),
            "{params}: {body}"
        );
        assert_eq!(
            body["error"]["description"],
            "An internal error happened in system"
        );
    }
    assert_eq!(
        query(&s, &admin, "?fields=foo").1["error"]["details"],
        "inventory[${selfInventoryClass}] has no field[foo]"
    );

    // Authorization header problems are 400 plain text; a bad session 503 ID.1001.
    assert_eq!(
        text(get(&s, "/twofactorauthentication/secrets", None)),
        (400, "missing header 'Authorization'".into())
    );
    let bearer = s
        .http
        .get(s.url(&format!("{V1}/twofactorauthentication/secrets")))
        .header("Authorization", format!("Bearer {admin}"))
        .send()
        .unwrap();
    assert_eq!(
        text(bearer),
        (400, "Authorization type must be 'OAuth'".into())
    );
    assert_eq!(
        error_code(&query(&s, "0123456789abcdef0123456789abcdef", "").1),
        "ID.1001"
    );

    // The owner of a pending factor sees its secret (2FA off, so u3 signs in unbound).
    set_enabled(&s, &admin, false);
    let u3 = session(&s, "u3", "pw", &[]);
    let own = query(&s, &u3, "").1;
    assert_eq!(uuids(&own), vec![id(2)]);
    assert_eq!(own["inventories"][0]["secret"], factors[2]["secret"]);
}

/// Reset by an admin (202 + poll), refused to a non-admin, and the job API's errors.
pub fn zstack_admin_reset(s: Server) {
    let admin = admin(&s);
    set_enabled(&s, &admin, true);
    s.add_user("gina", "gina-pw");
    let old = bind(&s, "gina", "gina-pw");
    let (_, before) = get_secret(&s, "gina", "gina-pw");
    let reset = |session: &str, password: &str| {
        async_call(
            &s,
            "/twofactorauthentication/secrets",
            session,
            json!({"resetTwoFactorAuthenticationSecret": {"name": "gina", "password": sha512(password), "type": "account"},
                   "systemTags": [], "userTags": []}),
        )
    };

    // A non-admin is refused through the job.
    s.add_user("hank", "hank-pw");
    let hank_secret = bind(&s, "hank", "hank-pw");
    let hank = session(
        &s,
        "hank",
        "hank-pw",
        &[&format!("twofatoken::{}", code(&hank_secret, 30))],
    );
    let (status, body) = reset(&hank, "gina-pw");
    assert_eq!((status, error_code(&body)), (503, "ID.1002"), "{body}");
    assert_eq!(
        get_secret(&s, "gina", "gina-pw").1,
        before,
        "nothing changed"
    );

    // Wrong password of the account: ID.1000 through the job.
    let (status, body) = reset(&admin, "nope");
    assert_eq!((status, error_code(&body)), (503, "ID.1000"), "{body}");

    let (status, body) = reset(&admin, "gina-pw");
    assert_eq!(status, 200, "{body}");
    let inv = &body["inventory"];
    assert_eq!(inv["status"], "NewCreated");
    assert_ne!(inv["uuid"], before["inventory"]["uuid"]);
    let fresh = inv["secret"].as_str().unwrap().to_string();
    assert_eq!(fresh.len(), 32);
    assert_ne!(fresh, old);
    // The next Get discloses the new secret; the old one no longer logs in.
    assert_eq!(secret_of(&s, "gina", "gina-pw"), fresh);
    assert_eq!(
        error_code(&login_with_code(&s, "gina", "gina-pw", &code(&old, 30)).1),
        "ID.2002"
    );
    assert_eq!(
        login_with_code(&s, "gina", "gina-pw", &code(&fresh, 30)).0,
        200
    );

    // Job API errors: unknown job 404, non-GET 405, plain text.
    let job = s.url(&format!("{V1}/api-jobs/0123456789abcdef0123456789abcdef"));
    assert_eq!(
        text(s.http.get(&job).send().unwrap()),
        (404, "the job has been expired".into())
    );
    assert_eq!(text(s.http.post(&job).send().unwrap()).0, 405);

    // A PUT without the action key is a 400; a bad session 503 (both before any job).
    let (status, body) = text(put(
        &s,
        "/twofactorauthentication/secrets",
        &admin,
        json!({"other": {}}),
    ));
    assert_eq!(
        (status, body.as_str()),
        (400, "the body doesn't contain action mapping to the URL[/v1/twofactorauthentication/secrets]")
    );
    let (status, body) = json(put(
        &s,
        "/twofactorauthentication/secrets",
        "0123456789abcdef0123456789abcdef",
        json!({"resetTwoFactorAuthenticationSecret": {"name": "gina", "password": "x", "type": "account"}}),
    ));
    assert_eq!((status, error_code(&body)), (503, "ID.1001"));

    // Only admins switch twofa.enable.
    let (status, body) = async_call(
        &s,
        "/global-configurations/twofa/twofa.enable/actions",
        &hank,
        json!({"updateGlobalConfig": {"value": "false"}}),
    );
    assert_eq!((status, error_code(&body)), (503, "ID.1002"));
    let (status, body) = async_call(
        &s,
        "/global-configurations/twofa/twofa.enable/actions",
        &admin,
        json!({"updateGlobalConfig": {"value": "maybe"}}),
    );
    assert_eq!((status, error_code(&body)), (503, "SYS.1007"));
    assert_eq!(
        json(get(&s, "/twofactorauthentication/state", None)).1["state"],
        "Enable"
    );
    set_enabled(&s, &admin, false);
    assert_eq!(
        json(get(&s, "/twofactorauthentication/state", None)).1["state"],
        "Disable"
    );
}

/// Bad input of every other kind gets ZStack's own shapes, never a 500.
pub fn zstack_bad_input(s: Server) {
    s.add_user("ivan", "ivan-pw");
    let put_raw = |body: &str| {
        text(
            s.http
                .put(s.url(&format!("{V1}/accounts/login")))
                .body(body.to_string())
                .send()
                .unwrap(),
        )
    };
    assert_eq!(put_raw("not json").0, 400);
    assert_eq!(
        put_raw("{\"logIn\": {}}"),
        (
            400,
            "the body doesn't contain action mapping to the URL[/v1/accounts/login]".into()
        )
    );
    assert_eq!(
        put_raw("{\"logInByAccount\": {\"accountName\": [1]}}").0,
        400
    );
    assert_eq!(
        login_body(&s, json!({"logInByAccount": {"accountName": "ivan"}})),
        (
            503,
            error(
                "SYS.1007",
                "One or more API argument is invalid",
                "field[password] of message[org.zstack.header.message.ApiMessageParamValidator] is mandatory, can not be null"
            )
        )
    );
    assert_eq!(error_code(&login(&s, "ivan", "wrong", &[]).1), "ID.1000");
    // With the switch off, a user without a factor ignores a stray token.
    assert_eq!(login(&s, "ivan", "ivan-pw", &["twofatoken::123456"]).0, 200);

    let admin = admin(&s);
    set_enabled(&s, &admin, true);
    let secret = |params: &str| {
        json(get(
            &s,
            &format!("/twofactorauthentication/secret{params}"),
            None,
        ))
    };
    let pw = sha512("ivan-pw");
    assert_eq!(
        error_code(&secret(&format!("?password={pw}&type=account")).1),
        "SYS.1007"
    );
    assert_eq!(
        secret(&format!("?name=ivan&password={pw}&type=foo")),
        (
            503,
            error(
                "SYS.1007",
                "One or more API argument is invalid",
                "valid value for field[type] of message[org.zstack.header.message.ApiMessageParamValidator] are [account, iam2], but foo found"
            )
        )
    );
    assert_eq!(
        secret(&format!("?name=ivan&password={pw}&type=iam2")),
        (
            503,
            error(
                "ID.1000",
                "Unable to authenticate a user",
                "two-factor authentication failed"
            )
        )
    );
    // Unknown extra parameters are ignored; systemTags as query parameters too.
    assert_eq!(
        secret(&format!(
            "?name=ivan&password={pw}&type=account&systemTags=a&captchaUuid=x"
        ))
        .0,
        200
    );
    // Unknown account: the same answer as a wrong password.
    assert_eq!(
        secret(&format!("?name=nobody&password={pw}&type=account")).1,
        error(
            "ID.1000",
            "Unable to authenticate a user",
            "wrong account name or password"
        )
    );
    // Methods the shared `/secrets` path has no API for: ZStack's plain-text 500.
    let post = s
        .http
        .post(s.url(&format!("{V1}/twofactorauthentication/secrets")))
        .send()
        .unwrap();
    assert_eq!(
        text(post),
        (
            500,
            "No creational API found for the path[/v1/twofactorauthentication/secrets]".into()
        )
    );
    // Unmapped paths: 404 plain text.
    assert_eq!(
        text(get(&s, "/nothing/here", None)),
        (404, "no api mapping to /zstack/v1/nothing/here".into())
    );
    // The OpenAPI document is served and listed.
    let (status, doc) = json(s.http.get(s.url("/openapi/zstack.json")).send().unwrap());
    assert_eq!(status, 200);
    assert!(doc["paths"]["/twofactorauthentication/secrets"]["put"].is_object());
    let swagger = s.swagger_initializer();
    assert!(swagger.contains("/openapi/zstack.json"), "{swagger}");
}

/// The dialect's settings: `twofa.enable`'s configured default (until an admin sets it
/// through the API, whose value then holds) and the session lifetime.
pub fn zstack_settings(mut s: Server) {
    s.restart_with(&[
        ("TWOFA_ZSTACK_TWOFA_ENABLE", "true"),
        ("TWOFA_ZSTACK_SESSION_TIMEOUT", "86400"),
    ]);
    assert_eq!(
        json(get(&s, "/twofactorauthentication/state", None)).1["state"],
        "Enable"
    );
    s.add_user("walt", "walt-pw");
    let secret = bind(&s, "walt", "walt-pw");
    let (status, body) = login_with_code(&s, "walt", "walt-pw", &code(&secret, 30));
    assert_eq!(status, 200, "{body}");
    // A day later, to the second: the time of day is the same, the date is not.
    let time = |d: &Value| {
        let d = d.as_str().unwrap().to_string();
        d.split(' ').skip(3).collect::<Vec<_>>().join(" ")
    };
    let inv = &body["inventory"];
    assert_ne!(inv["createDate"], inv["expiredDate"]);
    assert_eq!(time(&inv["createDate"]), time(&inv["expiredDate"]));

    // The admin (bound too, since 2FA is on) turns it off; the stored value wins over
    // the configured default, also after a restart.
    let admin_secret = bind(&s, "admin", ADMIN_PASSWORD);
    let admin = session(
        &s,
        "admin",
        ADMIN_PASSWORD,
        &[&format!("twofatoken::{}", code(&admin_secret, 30))],
    );
    set_enabled(&s, &admin, false);
    s.restart_with(&[("TWOFA_ZSTACK_TWOFA_ENABLE", "true")]);
    assert_eq!(
        json(get(&s, "/twofactorauthentication/state", None)).1["state"],
        "Disable"
    );
    // Sessions live in the database: still valid after the restart.
    assert_eq!(query(&s, &admin, "").0, 200);
}
