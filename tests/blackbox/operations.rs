//! What an operator watches: `/metrics` counts exactly what a scripted flow did, can be
//! moved to a listener of its own, and a debug-level JSON log of a full flow carries a
//! line per request and none of the flow's passwords, codes, secrets, tokens or cookies.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

use crate::authendpoints::{tokens, OPEN_REGISTRATION};
use crate::harness::{code, free_port, json as status_json, Backend, Server, ADMIN_PASSWORD};
use crate::mail::{code_in, link_in, MailSink};
use crate::ucloud::login_form;

/// One series: its name and its labels, sorted.
type Series = (String, BTreeMap<String, String>);

/// Parses the Prometheus text format (enough of it for these tests: no escapes in
/// label values) into series and values.
fn parse(text: &str) -> HashMap<Series, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = value.parse().unwrap_or(f64::NAN);
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (key, after) = rest.split_once("=\"").expect("key=\"value\"");
                    let end = after.find('"').expect("a closing quote");
                    labels.insert(key.to_string(), after[..end].to_string());
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name.to_string(), labels)
            }
        };
        out.insert((name, labels), value);
    }
    out
}

fn scrape_at(s: &Server, base: &str) -> (u16, String) {
    let r = s.http.get(format!("{base}/metrics")).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn scrape(s: &Server) -> HashMap<Series, f64> {
    let (status, text) = scrape_at(s, &s.base);
    assert_eq!(status, 200, "{text}");
    parse(&text)
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (name.to_string(), labels)
}

/// How much every series named `name` moved from `before` to `after` (those that
/// did not move left out).
fn moved(
    before: &HashMap<Series, f64>,
    after: &HashMap<Series, f64>,
    name: &str,
) -> BTreeMap<BTreeMap<String, String>, f64> {
    after
        .iter()
        .filter(|((n, _), _)| n == name)
        .map(|((_, labels), v)| {
            let was = before
                .get(&(name.to_string(), labels.clone()))
                .copied()
                .unwrap_or(0.0);
            (labels.clone(), v - was)
        })
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    series("", pairs).1
}

/// The labels of a TOTP verification outcome through UCloud.
fn totp(outcome: &str) -> BTreeMap<String, String> {
    labels(&[
        ("dialect", "ucloud"),
        ("factor", "totp"),
        ("outcome", outcome),
    ])
}

fn answer(s: &Server, challenge: &Value, code: &str) -> (u16, Value) {
    crate::ucloud::answer(
        s,
        json!({"challengeId": challenge, "verificationCode": code}),
    )
}

/// Enrolls `user` (UCloud's seed flow); returns the secret and what it used.
fn enroll(s: &Server, user: &str, password: &str) -> (String, Vec<String>) {
    let (status, tokens) = login_form(s, user, password);
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["accessToken"].as_str().unwrap().to_string();
    let (_, created) = status_json(
        s.http
            .post(s.url("/auth/2fa"))
            .bearer_auth(&access)
            .send()
            .unwrap(),
    );
    let secret = created["secret"].as_str().unwrap().to_string();
    let first = code(&secret, 0);
    assert_eq!(answer(s, &created["challengeId"], &first).0, 204);
    let mut used = vec![secret.clone(), first, access];
    for key in ["refreshToken", "csrfToken"] {
        used.extend(tokens[key].as_str().map(str::to_string));
    }
    used.extend(created["challengeId"].as_str().map(str::to_string));
    (secret, used)
}

/// A wrong code for `secret`: none of the steps around now.
fn wrong_code(secret: &str) -> String {
    let near: Vec<String> = [-60, -30, 0, 30, 60]
        .iter()
        .map(|o| code(secret, *o))
        .collect();
    (0..)
        .map(|i| {
            format!(
                "{:06}",
                (near[2].parse::<u32>().unwrap() + 7 + i) % 1_000_000
            )
        })
        .find(|c| !near.contains(c))
        .unwrap()
}

/// A login, one wrong code, one right code, one replay and an email sent move the
/// counters by exactly that, and nothing else moves.
pub fn metrics_count_a_flow(s: Server) {
    s.cli(
        &[
            "user",
            "add",
            "--username",
            "mia",
            "--email",
            "mia@example.com",
            "--password-stdin",
        ],
        Some("Mia-pw-1\n"),
    );
    let (secret, _) = enroll(&s, "mia", "Mia-pw-1");
    s.cli(
        &[
            "user",
            "add",
            "--username",
            "max",
            "--email",
            "max@example.com",
            "--password-stdin",
        ],
        Some("Max-pw-1\n"),
    );
    let before = scrape(&s);

    let (status, body) = login_form(&s, "mia", "Mia-pw-1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&s, &body["2fa"], &wrong_code(&secret)).0, 401);
    let right = code(&secret, 30);
    assert_eq!(answer(&s, &body["2fa"], &right).0, 200);
    let (_, again) = login_form(&s, "mia", "Mia-pw-1");
    assert_eq!(answer(&s, &again["2fa"], &right).0, 401, "a replay");
    let (access, _) = tokens(&s, "max", "Max-pw-1");
    let r = s
        .http
        .get(s.url("/users/verify_email"))
        .bearer_auth(&access)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);

    let after = scrape(&s);
    assert_eq!(
        moved(&before, &after, "twofa_verifications_total"),
        BTreeMap::from([
            (totp("accepted"), 1.0),
            (totp("wrong"), 1.0),
            (totp("replayed"), 1.0)
        ])
    );
    assert_eq!(
        moved(&before, &after, "twofa_codes_sent_total"),
        BTreeMap::from([(labels(&[("channel", "email")]), 1.0)])
    );
    assert!(moved(&before, &after, "twofa_code_delivery_failures_total").is_empty());
    assert!(moved(&before, &after, "twofa_lockouts_started_total").is_empty());
    let request = |dialect, route, status| {
        labels(&[("dialect", dialect), ("route", route), ("status", status)])
    };
    let requests = BTreeMap::from([
        (request("ucloud", "/auth/login", "200"), 2.0),
        (request("ucloud", "/auth/2fa/challenge", "401"), 2.0),
        (request("ucloud", "/auth/2fa/challenge", "200"), 1.0),
        (request("authendpoints", "/jwt/create", "200"), 1.0),
        (request("authendpoints", "/users/verify_email", "204"), 1.0),
        // The first scrape.
        (request("server", "/metrics", "200"), 1.0),
    ]);
    assert_eq!(
        moved(&before, &after, "twofa_http_requests_total"),
        requests
    );
    assert_eq!(
        moved(&before, &after, "twofa_http_request_duration_seconds_count"),
        requests,
        "the latency histogram counts the same requests"
    );
    let le = |route: &str, le: &str| {
        let mut l = request("ucloud", "/auth/login", "200");
        l.insert("route".into(), route.into());
        l.insert("le".into(), le.into());
        after[&("twofa_http_request_duration_seconds_bucket".to_string(), l)]
    };
    assert!(le("/auth/login", "+Inf") >= 2.0);

    // Process and build.
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            after.get(&series(name, &[])).is_some_and(|v| *v > 0.0),
            "{name} missing"
        );
    }
    // Whole seconds: 0 this early.
    assert!(after.contains_key(&series("process_cpu_seconds_total", &[])));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        after[&series("twofa_build_info", &[("version", version)])],
        1.0
    );
    // Database work.
    let count = |name: &str| after.get(&series(name, &[])).copied().unwrap_or(0.0);
    match s.backend {
        Backend::Sqlite => {
            assert!(count("twofa_db_batch_size_count") > 0.0);
            assert!(count("twofa_db_commit_seconds_count") > 0.0);
            assert!(count("twofa_db_batch_size_sum") >= count("twofa_db_batch_size_count"));
        }
        Backend::Postgres => assert!(count("twofa_db_pool_wait_seconds_count") > 0.0),
    }
}

/// Five wrong codes start a lockout; the next code is counted as locked out.
pub fn metrics_count_lockouts(s: Server) {
    s.add_user("lea", "Lea-pw-1");
    let (secret, _) = enroll(&s, "lea", "Lea-pw-1");
    let before = scrape(&s);
    let (_, body) = login_form(&s, "lea", "Lea-pw-1");
    let wrong = wrong_code(&secret);
    for _ in 0..5 {
        assert_eq!(answer(&s, &body["2fa"], &wrong).0, 401);
    }
    assert_eq!(answer(&s, &body["2fa"], &code(&secret, 30)).0, 429);
    let after = scrape(&s);
    assert_eq!(
        moved(&before, &after, "twofa_verifications_total"),
        BTreeMap::from([(totp("wrong"), 5.0), (totp("locked_out"), 1.0)])
    );
    assert_eq!(
        moved(&before, &after, "twofa_lockouts_started_total"),
        BTreeMap::from([(labels(&[("policy", "codes")]), 1.0)])
    );
}

/// With `metrics.bind`, `/metrics` is served there only, and nothing else is.
pub fn metrics_on_their_own_address(backend: Backend) {
    let addr = format!("127.0.0.1:{}", free_port());
    let Some(s) = Server::start_with(backend, "metrics_bind", &[("TWOFA_METRICS_BIND", &addr)])
    else {
        return;
    };
    let (status, _) = scrape_at(&s, &s.base);
    assert_eq!(status, 404, "the main address does not serve /metrics");
    let metrics_base = format!("http://{addr}");
    let (status, text) = scrape_at(&s, &metrics_base);
    assert_eq!(status, 200);
    assert!(text.contains("twofa_build_info{"), "{text}");
    assert!(text.contains("process_resident_memory_bytes"));
    let r = s
        .http
        .get(format!("{metrics_base}/healthz"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404, "the metrics address serves only /metrics");
    // The main address's requests are counted there.
    let (status, text) = scrape_at(&s, &metrics_base);
    assert_eq!(status, 200);
    assert!(
        text.contains(
            "twofa_http_requests_total{dialect=\"none\",route=\"unmatched\",status=\"404\"}"
        ),
        "{text}"
    );
}

/// `needle` appears in `log` as itself, not as part of a longer run of digits or
/// letters, nor as a timestamp's fraction.
fn appears(log: &str, needle: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    log.match_indices(needle).any(|(i, _)| {
        let before = log[..i].chars().next_back();
        let after = log[i + needle.len()..].chars().next();
        !(alnum(before) || alnum(after) || (needle.len() <= 8 && before == Some('.')))
    })
}

/// A full flow with the log at debug level in JSON: a line per request, with its id,
/// dialect, route, status and latency, and not one password, code, secret, token or
/// cookie of the flow in the whole log.
pub fn logs_keep_secrets(backend: Backend) {
    let sink = MailSink::start();
    let url = sink.url();
    let env = [
        OPEN_REGISTRATION,
        ("TWOFA_SMTP_URL", &url),
        ("TWOFA_LOG", "debug"),
        ("TWOFA_LOG_FORMAT", "json"),
    ];
    let Some((s, log_path)) = Server::start_logging(backend, "logs_keep_secrets", &env) else {
        return;
    };
    let mut secrets: Vec<String> = vec![ADMIN_PASSWORD.into()];
    for key in ["master.key", "jwt.key"] {
        let key = std::fs::read_to_string(s.data_dir.path().join(key)).unwrap();
        secrets.push(key.trim().to_string());
    }

    // UCloud: enrol an authenticator, log in with password and code, refresh.
    let (user, password) = ("lou", "Lou-secret-pw-1");
    secrets.push(password.into());
    s.add_user(user, password);
    let (secret, used) = enroll(&s, user, password);
    secrets.extend(used);
    let (_, step) = login_form(&s, user, password);
    secrets.extend(step["2fa"].as_str().map(str::to_string));
    let right = code(&secret, 30);
    secrets.push(right.clone());
    let r = s
        .http
        .post(s.url("/auth/2fa/challenge"))
        .header("Accept", "application/json")
        .json(&json!({"challengeId": step["2fa"], "verificationCode": right}))
        .send()
        .unwrap();
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let (status, tokens_body) = status_json(r);
    assert_eq!(status, 200, "{tokens_body}");
    let refresh = tokens_body["refreshToken"].as_str().unwrap().to_string();
    let csrf = tokens_body["csrfToken"].as_str().unwrap().to_string();
    secrets.extend([
        tokens_body["accessToken"].as_str().unwrap().into(),
        refresh.clone(),
        csrf.clone(),
    ]);
    let (status, refreshed) = status_json(
        s.http
            .post(s.url("/auth/refresh"))
            .bearer_auth(&refresh)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    secrets.push(refreshed["accessToken"].as_str().unwrap().into());
    let r = s
        .http
        .post(s.url("/auth/refresh/web"))
        .header("Cookie", format!("refreshToken={refresh}"))
        .header("X-CSRFToken", &csrf)
        .send()
        .unwrap();
    for cookie in r.headers().get_all("set-cookie") {
        let cookie = cookie.to_str().unwrap();
        let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
        if !value.is_empty() {
            secrets.push(value.into());
        }
    }
    let (status, web) = status_json(r);
    assert_eq!(status, 200, "{web}");
    secrets.push(web["csrfToken"].as_str().unwrap().into());

    // AuthEndpoints: confirm the email by its link, email 2FA on by a code, a two-step
    // login by an emailed code, a refresh.
    let (name, email, pw) = ("eve", "eve@example.com", "Eve-secret-pw-2");
    secrets.push(pw.into());
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut r = s.http.post(s.url(path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    };
    let body = json!({"email": email, "username": name, "password": pw, "confirmPassword": pw});
    assert_eq!(post("/users", None, body).0, 200);
    let (access, refresh) = tokens(&s, name, pw);
    secrets.extend([access.clone(), refresh]);
    let get = |path: &str, token: &str| {
        let r = s.http.get(s.url(path)).bearer_auth(token).send().unwrap();
        r.status().as_u16()
    };
    assert_eq!(get("/users/verify_email", &access), 204);
    let (uid, token) = link_in(&sink.nth(email, 1));
    secrets.push(token.clone());
    let body = json!({"identity": uid, "token": token});
    assert_eq!(post("/users/verify_email_confirm", None, body).0, 204);
    assert_eq!(get("/users/enable_2fa", &access), 200);
    let enable = code_in(&sink.nth(email, 2));
    secrets.push(enable.clone());
    let body = json!({"email": email, "provider": "Email", "token": enable});
    assert_eq!(
        post("/users/enable_2fa_confirm", Some(&access), body).0,
        200
    );
    let body = json!({"username": name, "password": pw, "provider": "Email"});
    assert_eq!(
        post("/users/two_step_verification_login", None, body).0,
        200
    );
    let login = code_in(&sink.nth(email, 3));
    secrets.push(login.clone());
    let body = json!({"email": email, "provider": "Email", "token": login});
    let (status, pair) = post("/users/two_step_verification_confirm", None, body);
    assert_eq!(status, 200, "{pair}");
    let pair: Value = serde_json::from_str(&pair).unwrap();
    let refresh2 = pair["refreshToken"].as_str().unwrap().to_string();
    secrets.extend([
        pair["accessToken"].as_str().unwrap().into(),
        refresh2.clone(),
    ]);
    let (status, fresh) = post("/jwt/refresh", None, json!({"refreshToken": refresh2}));
    assert_eq!(status, 200, "{fresh}");
    let fresh: Value = serde_json::from_str(&fresh).unwrap();
    secrets.extend(
        ["accessToken", "refreshToken"]
            .iter()
            .filter_map(|k| fresh[k].as_str().map(str::to_string)),
    );
    // Each line is written as its event happens; the request lines follow the answers.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "the log is at debug level"
    );
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "twofa::request")
        .collect();
    assert!(requests.len() >= 15, "{} request lines", requests.len());
    for r in &requests {
        assert!(
            r["request_id"].as_str().is_some_and(|id| id.len() == 16),
            "{r}"
        );
        assert!(r["dialect"].is_string() && r["route"].is_string(), "{r}");
        assert!(r["status"].is_u64() && r["latency_ms"].is_f64(), "{r}");
    }
    let answered = requests
        .iter()
        .find(|r| r["request_id"] == request_id.as_str())
        .expect("the X-Request-Id of an answer is its log line's");
    assert_eq!(answered["dialect"], "ucloud");
    assert_eq!(answered["route"], "/auth/2fa/challenge");
    assert_eq!(answered["status"], 200);
    assert!(requests
        .iter()
        .any(|r| r["dialect"] == "authendpoints"
            && r["route"] == "/users/two_step_verification_confirm"));

    secrets.sort();
    secrets.dedup();
    assert!(secrets.len() >= 20, "{secrets:?}");
    for secret in &secrets {
        assert!(secret.len() >= 6, "{secret:?}");
        assert!(
            !appears(&log, secret),
            "{secret:?} is in the log:\n{}",
            log.lines()
                .filter(|l| l.contains(secret.as_str()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
