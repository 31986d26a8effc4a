//! Key rotation without downtime (issue 12): enrolled users keep logging in, with their
//! TOTP codes and their tokens, while the master key and the JWT key are replaced and
//! `twofa keys rotate` re-seals every secret under the new master key.

use serde_json::{json, Value};

use crate::harness::{code, Server};
use crate::ucloud::{answer, enroll, get, login_form, post};

/// Password and TOTP code through UCloud's application login; returns the access and
/// refresh tokens.
fn login(s: &Server, user: &str, secret: &str) -> (String, String) {
    let (status, body) = login_form(s, user, "pw");
    assert_eq!(status, 200, "{body}");
    let challenge = body["2fa"].as_str().expect("a login challenge");
    // The enrolment used the current step; the next one is within the window.
    let (status, tokens) = answer(
        s,
        json!({"challengeId": challenge, "verificationCode": code(secret, 30)}),
    );
    assert_eq!(status, 200, "{user}: {tokens}");
    let token = |name: &str| tokens[name].as_str().unwrap().to_string();
    (token("accessToken"), token("refreshToken"))
}

fn status_with(s: &Server, access: &str) -> u16 {
    get(s, "/auth/2fa/status", access).0
}

fn refreshed(s: &Server, refresh: &str) -> Value {
    let (status, body) = post(s, "/auth/refresh", refresh);
    assert_eq!(status, 200, "{body}");
    body
}

fn key_file(s: &Server, name: &str) -> String {
    std::fs::read_to_string(s.data_dir.path().join(name))
        .unwrap()
        .trim()
        .to_string()
}

fn generated_key(s: &Server) -> String {
    let key = s.cli(&["keys", "generate"], None).trim().to_string();
    assert_eq!(key.len(), 64, "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    key
}

/// The operator's flow of the README, on one instance: new keys current with the old
/// ones previous, `keys rotate` while serving, then the old keys dropped.
pub fn keys_rotation(mut s: Server) {
    // Ten users enrolled under the first master key; each logs in with a code once,
    // at one point of the rotation (a code is single use within its 30 s step).
    let users: Vec<(String, String)> = (0..10)
        .map(|i| {
            let user = format!("user{i}");
            s.add_user(&user, "pw");
            let secret = enroll(&s, &user, "pw");
            (user, secret)
        })
        .collect();
    let (old_access, old_refresh) = login(&s, &users[0].0, &users[0].1);
    let (old_master, old_jwt) = (key_file(&s, "master.key"), key_file(&s, "jwt.key"));
    let (new_master, new_jwt) = (generated_key(&s), generated_key(&s));
    assert_ne!(new_master, old_master);

    // New keys current, old keys previous.
    s.restart_with(&[
        ("TWOFA_MASTER_KEY", &new_master),
        ("TWOFA_PREVIOUS_MASTER_KEYS", &old_master),
        ("TWOFA_JWT_KEY", &new_jwt),
        ("TWOFA_PREVIOUS_JWT_KEYS", &old_jwt),
    ]);
    assert_eq!(status_with(&s, &old_access), 200, "old access token valid");
    let new_access = refreshed(&s, &old_refresh)["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(status_with(&s, &new_access), 200);
    assert_ne!(
        header_kid(&new_access),
        header_kid(&old_access),
        "new tokens name the new key"
    );
    login(&s, &users[1].0, &users[1].1);

    // `keys rotate` while users log in.
    let rotated = std::thread::scope(|scope| {
        let logins = scope.spawn(|| {
            for (user, secret) in &users[2..6] {
                login(&s, user, secret);
            }
        });
        let out = s.cli(&["keys", "rotate"], None);
        logins.join().unwrap();
        out
    });
    assert!(
        rotated.contains("10 of 10 TOTP secrets re-sealed, 0 already under it"),
        "{rotated}"
    );
    let rerun = s.cli(&["keys", "rotate"], None);
    assert!(
        rerun.contains("0 of 10 TOTP secrets re-sealed, 10 already under it"),
        "a rerun changes nothing: {rerun}"
    );
    login(&s, &users[6].0, &users[6].1);

    // The old master key dropped: every secret opens with the new one. The old JWT key
    // is kept until tokens it signed expire.
    s.restart_with(&[
        ("TWOFA_MASTER_KEY", &new_master),
        ("TWOFA_JWT_KEY", &new_jwt),
        ("TWOFA_PREVIOUS_JWT_KEYS", &old_jwt),
    ]);
    login(&s, &users[7].0, &users[7].1);
    assert_eq!(status_with(&s, &old_access), 200);
    assert_eq!(status_with(&s, &new_access), 200);
    refreshed(&s, &old_refresh);

    // The old JWT key dropped too: its tokens are refused, the new ones still pass.
    s.restart_with(&[
        ("TWOFA_MASTER_KEY", &new_master),
        ("TWOFA_JWT_KEY", &new_jwt),
    ]);
    assert_eq!(
        status_with(&s, &old_access),
        401,
        "signed with a dropped key"
    );
    assert_eq!(status_with(&s, &new_access), 200);
    login(&s, &users[8].0, &users[8].1);

    // Without the rotation the new key alone would not have opened the old secrets:
    // back on the old key alone, the re-sealed secrets do not open.
    s.restart_with(&[
        ("TWOFA_MASTER_KEY", &old_master),
        ("TWOFA_JWT_KEY", &new_jwt),
    ]);
    let (_, body) = login_form(&s, &users[9].0, "pw");
    let challenge = body["2fa"].as_str().unwrap();
    let (status, _) = answer(
        &s,
        json!({"challengeId": challenge, "verificationCode": code(&users[9].1, 30)}),
    );
    assert_ne!(status, 200, "re-sealed under the new key only");
}

fn header_kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().expect("a kid header").to_string()
}
