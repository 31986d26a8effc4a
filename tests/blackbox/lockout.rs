//! The wrong-code lockout under real concurrency: a burst of wrong codes for one user
//! gets exactly five evaluated (the limit), whether it reaches one instance or two
//! sharing one PostgreSQL database; every other guess is refused unevaluated.

use serde_json::{json, Value};
use std::sync::{Arc, Barrier};

use crate::harness::{code, json, Backend, Server};
use crate::ucloud::{enroll, login_form};

const BURST: usize = 200;

/// Sends `BURST` wrong answers to one login challenge at once, spread over `servers`;
/// returns how many were evaluated (401) and how many refused as locked out (429).
fn burst(servers: &[&Server], user: &str) -> (usize, usize) {
    let s = servers[0];
    s.add_user(user, "b-pw");
    let secret = enroll(s, user, "b-pw");
    let (status, body) = login_form(s, user, "b-pw");
    assert_eq!(status, 200, "{body}");
    let challenge = body["2fa"].as_str().unwrap().to_string();
    let right = code(&secret, 30);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 7) % 1_000_000);
    let start = Arc::new(Barrier::new(BURST));
    let threads: Vec<_> = (0..BURST)
        .map(|i| {
            let (url, http) = (
                servers[i % servers.len()].url("/auth/2fa/challenge"),
                s.http.clone(),
            );
            let body = json!({"challengeId": challenge, "verificationCode": wrong});
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let r = http
                    .post(url)
                    .header("Accept", "application/json")
                    .json(&body)
                    .send();
                r.unwrap().status().as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let count = |code: u16| statuses.iter().filter(|&&s| s == code).count();
    assert_eq!(count(401) + count(429), BURST, "{statuses:?}");
    let audit = s.cli(&["audit", "--user", user, "--limit", "1000"], None);
    let rejected = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "code.rejected")
        .count();
    assert_eq!(
        rejected,
        count(401),
        "every evaluated guess is audited once"
    );
    (count(401), count(429))
}

pub fn burst_of_wrong_codes(s: Server) {
    assert_eq!(burst(&[&s], "bea"), (5, BURST - 5));
    // The right code is refused too while the lockout lasts.
    let (_, body) = login_form(&s, "bea", "b-pw");
    let (status, _) = json(
        s.http
            .post(s.url("/auth/2fa/challenge"))
            .json(&json!({"challengeId": body["2fa"], "verificationCode": "000000"}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 429);
}

/// Two instances on one PostgreSQL database hold the same limit.
pub fn burst_on_two_instances(s: Server) {
    assert_eq!(s.backend, Backend::Postgres);
    let other = s.another_instance();
    assert_eq!(burst(&[&s, &other], "bob"), (5, BURST - 5));
}
