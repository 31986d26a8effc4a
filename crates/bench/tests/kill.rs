//! Issue 13: a `kill -9` during the benchmark loses no acknowledged answer. The bench
//! serves its seeded challenges (`--serve`), threads answer them as `bench/wrk/answer.lua`
//! does, the process is killed with SIGKILL while answers are in flight, and then the
//! core, opened afresh on the same database, must know the session of every answer that
//! was acknowledged (its refresh token works) and refuse that challenge a second time.

#[path = "../../../tests/support/ports.rs"]
mod ports;
#[path = "../../../tests/support/postgres.rs"]
mod postgres;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use twofa_core::{otp, Clock, Core, CoreConfig, Origin, OsRandom, SystemClock};

const USERS: usize = 600;
const CONNECTIONS: usize = 16;
/// Killed once this many answers are acknowledged: mid-run, with answers in flight.
const KILL_AFTER: usize = 150;

/// One line of the request file: the challenge and its code for each step from `first`.
struct Request {
    challenge: String,
    first: i64,
    codes: Vec<String>,
}

impl Request {
    fn parse(line: &str) -> Request {
        let mut fields = line.split(' ');
        let challenge = fields.next().unwrap().to_string();
        let first = fields.next().unwrap().parse().unwrap();
        Request {
            challenge,
            first,
            codes: fields.map(str::to_string).collect(),
        }
    }

    fn code_now(&self) -> &str {
        let step = otp::step_of(SystemClock.now());
        &self.codes[usize::try_from(step - self.first).unwrap()]
    }
}

/// What the answering threads saw: each acknowledged answer with its refresh token, and
/// how many requests got no answer (the process died under them).
#[derive(Default)]
struct Seen {
    acknowledged: Mutex<Vec<(usize, String)>>,
    unanswered: AtomicUsize,
}

fn refresh_token(response: &reqwest::blocking::Response) -> String {
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let value = cookie.strip_prefix("refreshToken=").unwrap();
    value.split(';').next().unwrap().to_string()
}

fn answer_until_killed(url: String, requests: Arc<Vec<Request>>, next: &AtomicUsize, seen: &Seen) {
    let client = reqwest::blocking::Client::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(request) = requests.get(i) else {
            return;
        };
        let body = serde_json::json!({"challengeId": request.challenge, "verificationCode": request.code_now()});
        match client
            .post(&url)
            .header("Accept", "application/json")
            .json(&body)
            .send()
        {
            Ok(r) if r.status() == 200 => {
                let token = refresh_token(&r);
                seen.acknowledged.lock().unwrap().push((i, token));
            }
            Ok(r) => panic!("answer {i}: status {}", r.status()),
            Err(_) => {
                seen.unanswered.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

fn kill_during_answers(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let requests_file = dir.path().join("requests.txt");
    let mut bench = Command::new(env!("CARGO_BIN_EXE_twofa-bench"))
        .args(["--serve", "--users", &USERS.to_string()])
        .arg("--requests-file")
        .arg(&requests_file)
        .args(["--bind", &format!("127.0.0.1:{}", ports::free_port())])
        .args(["--database-url", database_url])
        // Its own temporary directory, which SIGKILL leaves behind, inside ours.
        .env("TMPDIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let url = BufReader::new(bench.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .find_map(|line| line.strip_prefix("serving ").map(str::to_string))
        .expect("the bench serves");

    let requests: Arc<Vec<Request>> = Arc::new(
        std::fs::read_to_string(&requests_file)
            .unwrap()
            .lines()
            .map(Request::parse)
            .collect(),
    );
    assert_eq!(requests.len(), USERS);
    let next = AtomicUsize::new(0);
    let seen = Seen::default();
    std::thread::scope(|scope| {
        for _ in 0..CONNECTIONS {
            scope.spawn(|| answer_until_killed(url.clone(), requests.clone(), &next, &seen));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.acknowledged.lock().unwrap().len() < KILL_AFTER {
            assert!(Instant::now() < deadline, "answers too slow");
            std::thread::sleep(Duration::from_micros(200));
        }
        bench.kill().unwrap(); // SIGKILL
        bench.wait().unwrap();
    });
    let acknowledged = seen.acknowledged.into_inner().unwrap();
    let unanswered = seen.unanswered.into_inner();
    assert!(
        acknowledged.len() < USERS && unanswered > 0,
        "the kill came mid-run: {} acknowledged, {unanswered} in flight",
        acknowledged.len()
    );

    // The bench's fixed keys, on the database it left behind.
    let core = Core::open(
        CoreConfig::new(database_url, [1; 32], vec![2; 32]),
        Arc::new(SystemClock),
        Arc::new(OsRandom),
    )
    .unwrap();
    let origin = Origin::new("ucloud", None);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        for (i, token) in &acknowledged {
            let request = &requests[*i];
            let session = core
                .refresh_session(origin.clone(), token.clone(), None)
                .await;
            assert!(session.is_ok(), "acknowledged answer {i} lost: {session:?}");
            let again = core
                .answer_challenge(
                    origin.clone(),
                    request.challenge.clone(),
                    request.code_now().to_string(),
                )
                .await;
            assert!(again.is_err(), "answer {i} accepted twice: {again:?}");
        }
    });
    eprintln!(
        "{} answers acknowledged before SIGKILL, {unanswered} in flight; none lost",
        acknowledged.len()
    );
}

#[test]
fn sqlite_kill_during_answers_loses_no_acknowledged_answer() {
    let dir = tempfile::tempdir().unwrap();
    kill_during_answers(dir.path().join("bench.sqlite3").to_str().unwrap());
}

#[test]
fn postgres_kill_during_answers_loses_no_acknowledged_answer() {
    if let Some(url) = postgres::fresh_database("postgres_kill_during_answers") {
        kill_during_answers(&url);
    }
}
