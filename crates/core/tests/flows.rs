//! Core rules tested exactly with a settable clock, on SQLite and on PostgreSQL.

#[path = "../../../tests/support/postgres.rs"]
mod postgres;

use std::sync::Arc;
use twofa_core::query::{Condition, Op, Page, QuerySpec, Sort, TotpField};
use twofa_core::{
    otp, Actor, ChallengeOutcome, Clock, CodeFormat, CodeLogin, CodePurpose, Core, CoreConfig,
    CoreError, FactorState, LoginStep, ManualClock, NewUser, OptOut, Origin, Password,
    SeededRandom, Session, SignIn, SmsLogin, Template, TotpFactorInfo, User,
};

/// 2026-01-01T00:00:10Z: ten seconds into a TOTP step.
const T0: i64 = 1_767_225_610;

struct Env {
    core: Core,
    clock: Arc<ManualClock>,
    db_file: Option<std::path::PathBuf>,
    url: String,
    _dir: tempfile::TempDir,
}

fn origin() -> Origin {
    Origin::new("test", Some("192.0.2.1".into()))
}

fn env(url: Option<String>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db_file = url.is_none().then(|| dir.path().join("t.sqlite3"));
    let url = url.unwrap_or_else(|| db_file.as_ref().unwrap().to_string_lossy().into_owned());
    let clock = Arc::new(ManualClock::new(T0));
    let mut cfg = CoreConfig::new(url.clone(), [7; 32], vec![9; 32]);
    cfg.pool_size = 8;
    cfg.mail.outbox_dir = dir.path().join("outbox");
    cfg.sms.outbox_dir = dir.path().join("sms-outbox");
    let core = Core::open(cfg, clock.clone(), Arc::new(SeededRandom::new(42))).unwrap();
    Env {
        core,
        clock,
        db_file,
        url,
        _dir: dir,
    }
}

impl Env {
    async fn user(&self, name: &str, admin: bool) -> User {
        let new = NewUser {
            username: name.into(),
            password: Some(format!("{name}-pw")),
            is_admin: admin,
            ..Default::default()
        };
        self.core.create_user(origin(), new).await.unwrap()
    }

    /// Enrolls TOTP for `user` and returns the raw secret. Leaves the clock one step on,
    /// so the enrollment code's step is used up.
    async fn enroll(&self, user: &User) -> Vec<u8> {
        let setup = self
            .core
            .begin_totp_setup(origin(), user.id.clone(), "Test".into())
            .await
            .unwrap();
        let secret = otp::secret_from_base32(&setup.secret_base32).unwrap();
        let code = otp::code_at(&secret, self.clock.now()).unwrap();
        let outcome = self
            .core
            .answer_challenge(origin(), setup.challenge_id, code)
            .await
            .unwrap();
        assert!(matches!(outcome, ChallengeOutcome::SetupCompleted { .. }));
        self.clock.advance(30);
        secret
    }

    async fn user_with_email(&self, name: &str) -> User {
        let new = NewUser {
            username: name.into(),
            email: Some(format!("{name}@example.com")),
            password: Some(format!("{name}-pw")),
            ..Default::default()
        };
        self.core.create_user(origin(), new).await.unwrap()
    }

    async fn send(&self, user: &User, purpose: CodePurpose) -> Result<(), CoreError> {
        self.core
            .email_code(
                origin(),
                user.id.clone(),
                purpose,
                CodeFormat::Digits(6),
                Template::new("Your code", "code: {code}"),
            )
            .await
    }

    /// The code in the newest message of the outbox.
    fn last_code(&self) -> String {
        let mut files: Vec<_> = std::fs::read_dir(self._dir.path().join("outbox"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let text = std::fs::read_to_string(files.last().unwrap()).unwrap();
        let code = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("code: "))
            .unwrap()
            .to_string();
        assert_eq!(code.len(), 6);
        code
    }

    /// The 7-digit code in the newest text of the SMS outbox, and its number.
    fn last_sms(&self) -> (String, String) {
        let text =
            std::fs::read_to_string(self._dir.path().join("sms-outbox").join("sms.jsonl")).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let message = line["message"].as_str().unwrap();
        let code: String = message.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(code.len(), 7, "{message}");
        (line["to"].as_str().unwrap().to_string(), code)
    }

    fn sms_count(&self) -> usize {
        std::fs::read_to_string(self._dir.path().join("sms-outbox").join("sms.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    async fn login_challenge(&self, user: &User) -> String {
        match self
            .core
            .password_login(
                origin(),
                user.username.clone(),
                format!("{}-pw", user.username).into(),
                Some("web".into()),
            )
            .await
            .unwrap()
        {
            LoginStep::SecondFactor { challenge_id, .. } => challenge_id,
            LoginStep::Complete(_) => panic!("expected a second-factor challenge"),
        }
    }

    /// Logs `name` in with their password (`<name>-pw`), for a user without a second factor.
    async fn logged_in(&self, name: &str) -> Session {
        match self
            .core
            .password_login(origin(), name.into(), format!("{name}-pw").into(), None)
            .await
            .unwrap()
        {
            LoginStep::Complete(session) => session,
            LoginStep::SecondFactor { .. } => panic!("{name} has a second factor"),
        }
    }

    async fn answer(&self, challenge: &str, code: &str) -> Result<ChallengeOutcome, CoreError> {
        self.core
            .answer_challenge(origin(), challenge.into(), code.into())
            .await
    }

    fn code(&self, secret: &[u8], offset_secs: i64) -> String {
        otp::code_at(secret, self.clock.now() + offset_secs).unwrap()
    }
}

fn wrong(code: &str) -> String {
    let d = (code.as_bytes()[0] - b'0' + 1) % 10;
    format!("{d}{}", &code[1..])
}

async fn enrollment_then_login(e: Env) {
    let u = e.user("alice", false).await;
    assert_eq!(
        e.core.totp_state(u.id.clone()).await.unwrap(),
        FactorState::None
    );
    // Without a factor a password login completes.
    assert!(matches!(
        e.core
            .password_login(origin(), "alice".into(), "alice-pw".into(), None)
            .await
            .unwrap(),
        LoginStep::Complete(_)
    ));
    let secret = e.enroll(&u).await;
    assert_eq!(
        e.core.totp_state(u.id.clone()).await.unwrap(),
        FactorState::Active
    );
    assert!(matches!(
        e.core
            .begin_totp_setup(origin(), u.id.clone(), "Test".into())
            .await,
        Err(CoreError::AlreadyBound)
    ));
    let challenge = e.login_challenge(&u).await;
    match e.answer(&challenge, &e.code(&secret, 0)).await.unwrap() {
        ChallengeOutcome::LoggedIn { session, service } => {
            assert!(session.mfa);
            assert_eq!(service.as_deref(), Some("web"));
            let token = e
                .core
                .access_token(&session, "test", Default::default())
                .unwrap();
            assert_eq!(
                e.core.verify_access_token(&token, "test").unwrap().sub,
                "alice"
            );
            assert!(
                e.core.verify_access_token(&token, "other").is_err(),
                "tokens do not cross dialects"
            );
            e.clock.advance(600);
            assert!(
                e.core.verify_access_token(&token, "test").is_err(),
                "expired after 10 minutes"
            );
        }
        other => panic!("{other:?}"),
    }
    // The challenge is single use, even with the next valid code.
    e.clock.advance(30);
    assert!(matches!(
        e.answer(&challenge, &e.code(&secret, 0)).await,
        Err(CoreError::InvalidChallenge)
    ));
}

async fn window_is_one_step(e: Env) {
    let u = e.user("bob", false).await;
    let secret = e.enroll(&u).await;
    for (offset, ok) in [(-60, false), (60, false), (-30, true), (30, true)] {
        e.clock.advance(120); // fresh steps, never replays
        let c = e.login_challenge(&u).await;
        let result = e.answer(&c, &e.code(&secret, offset)).await;
        assert_eq!(result.is_ok(), ok, "offset {offset}: {result:?}");
    }
}

async fn codes_are_single_use(e: Env) {
    let u = e.user("carol", false).await;
    let secret = e.enroll(&u).await;
    let code = e.code(&secret, 0);
    let first = e.login_challenge(&u).await;
    let second = e.login_challenge(&u).await;
    assert!(e.answer(&first, &code).await.is_ok());
    assert!(
        matches!(
            e.answer(&second, &code).await,
            Err(CoreError::IncorrectCode)
        ),
        "replay refused"
    );
    // A code from an earlier step than the last accepted one is refused too.
    assert!(matches!(
        e.answer(&second, &e.code(&secret, -30)).await,
        Err(CoreError::IncorrectCode)
    ));
    e.clock.advance(30);
    assert!(
        e.answer(&second, &e.code(&secret, 0)).await.is_ok(),
        "the next step works"
    );
}

async fn concurrent_answers_with_one_code(e: Env) {
    let u = e.user("dave", false).await;
    let secret = e.enroll(&u).await;
    let code = e.code(&secret, 0);
    let mut challenges = Vec::new();
    for _ in 0..8 {
        challenges.push(e.login_challenge(&u).await);
    }
    // Also race two answers on one challenge.
    challenges.push(challenges[0].clone());
    let tasks: Vec<_> = challenges
        .into_iter()
        .map(|c| {
            let core = e.core.clone();
            let code = code.clone();
            tokio::spawn(async move { core.answer_challenge(origin(), c, code).await })
        })
        .collect();
    let mut successes = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            successes += 1;
        }
    }
    assert_eq!(
        successes, 1,
        "exactly one concurrent answer with the same code succeeds"
    );
}

/// Two right codes of different steps racing on one challenge: the step rule lets both
/// through (each takes its own step), so only the claim stops the second; one challenge
/// gives one login.
async fn one_challenge_one_login(e: Env) {
    let u = e.user("dora", false).await;
    let secret = e.enroll(&u).await;
    for _ in 0..10 {
        e.clock.advance(60);
        let challenge = e.login_challenge(&u).await;
        let tasks: Vec<_> = [e.code(&secret, -30), e.code(&secret, 0)]
            .into_iter()
            .map(|code| {
                let (core, c) = (e.core.clone(), challenge.clone());
                tokio::spawn(async move { core.answer_challenge(origin(), c, code).await })
            })
            .collect();
        let mut logins = 0;
        for t in tasks {
            logins += usize::from(t.await.unwrap().is_ok());
        }
        assert_eq!(logins, 1, "one challenge, one login");
    }
}

/// What an answered login challenge leaves: a session whose refresh and CSRF tokens
/// work, the service it was started for, and the audit trail of the code and the login,
/// in that order (on PostgreSQL one statement writes them all, see `one_statement.rs`).
async fn answered_challenge_leaves_session_and_audit(e: Env) {
    let u = e.user("lena", false).await;
    let secret = e.enroll(&u).await;
    let challenge = e.login_challenge(&u).await;
    let outcome = e.answer(&challenge, &e.code(&secret, 0)).await.unwrap();
    let ChallengeOutcome::LoggedIn { session, service } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(service.as_deref(), Some("web"));
    assert!(session.mfa);
    assert_eq!(
        session.expires_at,
        e.clock.now() + CoreConfig::new("", [0; 32], vec![]).refresh_token_ttl
    );
    let csrf = session.csrf_token.clone().unwrap();
    let refreshed = e
        .core
        .refresh_session(origin(), session.refresh_token.clone(), Some(csrf))
        .await
        .unwrap();
    assert_eq!(refreshed.id, session.id);
    assert_eq!(refreshed.user.id, u.id);
    let log = e.core.audit_events(Some("lena".into()), 3).await.unwrap();
    let newest: Vec<_> = log
        .iter()
        .map(|ev| (ev.event.as_str(), ev.detail.as_deref()))
        .collect();
    assert_eq!(
        newest[..2],
        [
            ("login", Some("two factors")),
            ("code.accepted", Some("login"))
        ]
    );
    for ev in &log[..2] {
        assert_eq!(ev.user_id.as_deref(), Some(u.id.as_str()));
        assert_eq!(
            (ev.dialect.as_str(), ev.ip.as_deref()),
            ("test", Some("192.0.2.1"))
        );
        assert_eq!(ev.at, e.clock.now());
    }
    // The challenge is used up, and so is the code's step.
    assert!(matches!(
        e.answer(&challenge, &e.code(&secret, 0)).await,
        Err(CoreError::InvalidChallenge)
    ));
}

async fn challenges_expire(e: Env) {
    let u = e.user("erin", false).await;
    let secret = e.enroll(&u).await;
    let c = e.login_challenge(&u).await;
    e.clock.advance(599);
    let c2 = e.login_challenge(&u).await;
    assert!(
        e.answer(&c, &e.code(&secret, 0)).await.is_ok(),
        "valid at 599 s"
    );
    e.clock.advance(600);
    assert!(
        matches!(
            e.answer(&c2, &e.code(&secret, 0)).await,
            Err(CoreError::InvalidChallenge)
        ),
        "expired at 600 s"
    );
    assert!(matches!(
        e.answer("no-such-challenge", "123456").await,
        Err(CoreError::InvalidChallenge)
    ));
}

async fn setup_is_replaced_and_expires(e: Env) {
    let u = e.user("frank", false).await;
    let first = e
        .core
        .begin_totp_setup(origin(), u.id.clone(), "T".into())
        .await
        .unwrap();
    let second = e
        .core
        .begin_totp_setup(origin(), u.id.clone(), "T".into())
        .await
        .unwrap();
    assert_ne!(first.secret_base32, second.secret_base32);
    let s1 = otp::secret_from_base32(&first.secret_base32).unwrap();
    assert!(
        matches!(
            e.answer(&first.challenge_id, &e.code(&s1, 0)).await,
            Err(CoreError::InvalidChallenge)
        ),
        "replaced"
    );
    assert_eq!(
        e.core.totp_state(u.id.clone()).await.unwrap(),
        FactorState::Pending
    );
    e.clock.advance(600);
    let s2 = otp::secret_from_base32(&second.secret_base32).unwrap();
    assert!(
        matches!(
            e.answer(&second.challenge_id, &e.code(&s2, 0)).await,
            Err(CoreError::InvalidChallenge)
        ),
        "expired"
    );
    assert_eq!(
        e.core.totp_state(u.id.clone()).await.unwrap(),
        FactorState::Pending
    );
}

async fn code_lockout_grows_and_resets(e: Env) {
    let u = e.user("grace", false).await;
    let secret = e.enroll(&u).await;
    let c = e.login_challenge(&u).await;
    let bad = wrong(&e.code(&secret, 0));
    for i in 0..5 {
        assert!(
            matches!(e.answer(&c, &bad).await, Err(CoreError::IncorrectCode)),
            "failure {i}"
        );
    }
    // Locked for 30 s, for every challenge, even with the right code.
    let other = e.login_challenge(&u).await;
    assert!(matches!(
        e.answer(&other, &e.code(&secret, 0)).await,
        Err(CoreError::Locked { retry_after: 30 })
    ));
    e.clock.advance(29);
    assert!(matches!(
        e.answer(&c, &e.code(&secret, 0)).await,
        Err(CoreError::Locked { retry_after: 1 })
    ));
    e.clock.advance(1);
    // One more failure after the lockout: 60 s.
    assert!(matches!(
        e.answer(&c, &wrong(&e.code(&secret, 0))).await,
        Err(CoreError::IncorrectCode)
    ));
    assert!(matches!(
        e.answer(&c, &e.code(&secret, 0)).await,
        Err(CoreError::Locked { retry_after: 60 })
    ));
    e.clock.advance(60);
    assert!(
        e.answer(&c, &e.code(&secret, 0)).await.is_ok(),
        "works after the delay"
    );
    // Success reset the count: four failures do not lock.
    e.clock.advance(30);
    let c = e.login_challenge(&u).await;
    for _ in 0..4 {
        assert!(matches!(
            e.answer(&c, &wrong(&e.code(&secret, 0))).await,
            Err(CoreError::IncorrectCode)
        ));
    }
    assert!(e.answer(&c, &e.code(&secret, 0)).await.is_ok());
    let log = e
        .core
        .audit_events(Some("grace".into()), 100)
        .await
        .unwrap();
    assert!(log.iter().any(|ev| ev.event == "code.locked"));
    assert!(log.iter().all(|ev| ev
        .detail
        .as_deref()
        .is_none_or(|d| !d.contains(&e.code(&secret, 0)))));
}

async fn password_lockout(e: Env) {
    e.user("heidi", false).await;
    let login = |pw: &str| {
        e.core
            .password_login(origin(), "heidi".into(), pw.into(), None)
    };
    for _ in 0..5 {
        assert!(matches!(
            login("nope").await,
            Err(CoreError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        login("heidi-pw").await,
        Err(CoreError::Locked { retry_after: 5 })
    ));
    e.clock.advance(5);
    assert!(login("heidi-pw").await.is_ok());
    // Unknown users are limited the same way, with the same error.
    for _ in 0..5 {
        assert!(matches!(
            e.core
                .password_login(origin(), "nobody".into(), "x".into(), None)
                .await,
            Err(CoreError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        e.core
            .password_login(origin(), "nobody".into(), "x".into(), None)
            .await,
        Err(CoreError::Locked { .. })
    ));
    // Failures spread over more than five minutes never lock.
    for _ in 0..8 {
        e.clock.advance(100);
        assert!(matches!(
            login("nope").await,
            Err(CoreError::InvalidCredentials)
        ));
    }
}

async fn sessions_refresh_and_revoke(e: Env) {
    e.user("ivan", false).await;
    let session = e.logged_in("ivan").await;
    let csrf = session.csrf_token.clone().unwrap();
    let r = e
        .core
        .refresh_session(origin(), session.refresh_token.clone(), None)
        .await
        .unwrap();
    assert_eq!(r.user.username, "ivan");
    assert!(matches!(
        e.core
            .refresh_session(origin(), session.refresh_token.clone(), Some("bad".into()))
            .await,
        Err(CoreError::InvalidToken)
    ));
    let rotated = e
        .core
        .refresh_session(origin(), session.refresh_token.clone(), Some(csrf.clone()))
        .await
        .unwrap();
    let new_csrf = rotated.csrf_token.unwrap();
    assert_ne!(new_csrf, csrf);
    assert!(
        e.core
            .refresh_session(origin(), session.refresh_token.clone(), Some(csrf))
            .await
            .is_err(),
        "old CSRF token is spent"
    );
    assert!(matches!(
        e.core
            .refresh_session(
                Origin::new("other", None),
                session.refresh_token.clone(),
                None
            )
            .await,
        Err(CoreError::InvalidToken)
    ));
    e.core
        .logout(origin(), session.refresh_token.clone())
        .await
        .unwrap();
    assert!(matches!(
        e.core
            .refresh_session(origin(), session.refresh_token, None)
            .await,
        Err(CoreError::InvalidToken)
    ));

    // Session ids (32 hex digits) begin with their creation time, so they sort by it.
    e.clock.advance(1);
    let later = e.logged_in("ivan").await;
    for id in [&session.id, &later.id] {
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }
    assert_eq!(&session.id[..10], &format!("{T0:010x}"));
    assert!(later.id > session.id);
}

async fn admin_reset(e: Env) {
    let admin = e.user("root", true).await;
    let plain = e.user("judy", false).await;
    let u = e.user("ken", false).await;
    e.enroll(&u).await;
    assert!(matches!(
        e.core
            .reset_second_factors(origin(), Actor::User(plain.id.clone()), "ken".into())
            .await,
        Err(CoreError::Forbidden)
    ));
    assert_eq!(
        e.core.totp_state(u.id.clone()).await.unwrap(),
        FactorState::Active
    );
    assert!(matches!(
        e.core
            .reset_second_factors(origin(), Actor::User(admin.id.clone()), "nobody".into())
            .await,
        Err(CoreError::UserNotFound)
    ));
    e.core
        .reset_second_factors(origin(), Actor::User(admin.id), "ken".into())
        .await
        .unwrap();
    assert_eq!(e.core.totp_state(u.id).await.unwrap(), FactorState::None);
    assert!(matches!(
        e.core
            .password_login(origin(), "ken".into(), "ken-pw".into(), None)
            .await
            .unwrap(),
        LoginStep::Complete(_)
    ));
}

/// Nothing secret in the SQLite file: TOTP secrets, challenge ids, refresh tokens.
async fn no_plaintext_secrets_on_disk(e: Env) {
    let Some(file) = e.db_file.clone() else {
        return;
    };
    let u = e.user("leo", false).await;
    let setup = e
        .core
        .begin_totp_setup(origin(), u.id.clone(), "T".into())
        .await
        .unwrap();
    let raw = otp::secret_from_base32(&setup.secret_base32).unwrap();
    let session = e.logged_in("leo").await;
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend(std::fs::read(file.with_extension("sqlite3-wal")).unwrap_or_default());
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"leo"), "the scan reads the data");
    for secret in [
        setup.secret_base32.as_bytes(),
        &raw,
        setup.challenge_id.as_bytes(),
        session.refresh_token.as_bytes(),
        b"leo-pw",
    ] {
        assert!(
            !contains(secret),
            "plaintext secret found in the database file"
        );
    }
}

async fn direct_code_checks(e: Env) {
    let u = e.user("mike", false).await;
    let verify = |code: String| e.core.verify_totp(origin(), u.id.clone(), code);
    assert!(matches!(
        verify("123456".into()).await,
        Err(CoreError::NoSecondFactor)
    ));
    let secret = e.enroll(&u).await;
    let code = e.code(&secret, 0);
    verify(code.clone()).await.unwrap();
    assert!(
        matches!(verify(code.clone()).await, Err(CoreError::IncorrectCode)),
        "replay"
    );
    // The same step is used up for challenges too.
    let c = e.login_challenge(&u).await;
    assert!(matches!(
        e.answer(&c, &code).await,
        Err(CoreError::IncorrectCode)
    ));
    // Direct checks and challenge answers share one failure count (two so far).
    for _ in 0..3 {
        assert!(matches!(
            verify(wrong(&code)).await,
            Err(CoreError::IncorrectCode)
        ));
    }
    assert!(matches!(
        e.answer(&c, &e.code(&secret, 30)).await,
        Err(CoreError::Locked { .. })
    ));
    assert!(matches!(
        verify(e.code(&secret, 30)).await,
        Err(CoreError::Locked { .. })
    ));
}

fn sha512_hex(p: &str) -> Password {
    use sha2::{Digest, Sha512};
    let digest = Sha512::digest(p.as_bytes());
    Password::Sha512Hex(digest.iter().map(|b| format!("{b:02x}")).collect())
}

impl Env {
    async fn code_login(
        &self,
        user: &User,
        code: Option<String>,
        required: bool,
    ) -> Result<CodeLogin, CoreError> {
        self.core
            .login_with_code(
                origin(),
                user.username.clone(),
                sha512_hex(&format!("{}-pw", user.username)),
                code,
                required,
                7200,
            )
            .await
    }

    async fn pending(&self, user: &User) -> TotpFactorInfo {
        self.core
            .pending_totp(
                origin(),
                user.username.clone(),
                sha512_hex(&format!("{}-pw", user.username)),
            )
            .await
            .unwrap()
    }
}

fn secret_of(info: &TotpFactorInfo) -> Vec<u8> {
    otp::secret_from_base32(info.secret_base32.as_deref().unwrap()).unwrap()
}

/// Codes sent with the login: binding a pending factor, no bypass once active, replay,
/// sessions with their own lifetime bound to the dialect.
async fn inline_codes_bind_and_log_in(e: Env) {
    let u = e.user("nora", false).await;
    assert!(matches!(
        e.code_login(&u, None, false).await,
        Ok(CodeLogin::Complete(_))
    ));
    assert!(matches!(
        e.code_login(&u, None, true).await,
        Ok(CodeLogin::CodeRequired { .. })
    ));
    assert!(matches!(
        e.code_login(&u, Some("123456".into()), true).await,
        Err(CoreError::NoSecondFactor)
    ));
    // The password comes first: a wrong one says nothing about codes.
    let wrong_pw = e
        .core
        .login_with_code(
            origin(),
            "nora".into(),
            sha512_hex("x"),
            Some("1".into()),
            true,
            60,
        )
        .await;
    assert!(matches!(wrong_pw, Err(CoreError::InvalidCredentials)));

    let pending = e.pending(&u).await;
    assert!(!pending.active);
    assert_eq!(
        e.pending(&u).await.id,
        pending.id,
        "the same pending factor"
    );
    assert_eq!(
        e.pending(&u).await.secret_base32,
        pending.secret_base32,
        "the same secret"
    );
    assert_eq!(
        e.core.totp_state(u.id.clone()).await.unwrap(),
        FactorState::Pending
    );
    // A pending factor is not required yet.
    assert!(matches!(
        e.code_login(&u, None, false).await,
        Ok(CodeLogin::Complete(_))
    ));
    let secret = secret_of(&pending);
    assert!(matches!(
        e.code_login(&u, Some(wrong(&e.code(&secret, 0))), false)
            .await,
        Err(CoreError::IncorrectCode)
    ));
    assert_eq!(
        e.core.totp_state(u.id.clone()).await.unwrap(),
        FactorState::Pending,
        "a wrong code does not bind"
    );
    let code = e.code(&secret, 0);
    let session = match e.code_login(&u, Some(code.clone()), false).await.unwrap() {
        CodeLogin::Complete(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(session.mfa);
    assert_eq!(session.refresh_token.len(), 32);
    if let Some(file) = &e.db_file {
        for path in [file.clone(), file.with_extension("sqlite3-wal")] {
            let bytes = std::fs::read(path).unwrap_or_default();
            let token = session.refresh_token.as_bytes();
            assert!(
                !bytes.windows(token.len()).any(|w| w == token),
                "session tokens are stored hashed"
            );
        }
    }
    assert_eq!(session.expires_at, T0 + 7200);
    assert_eq!(
        e.core.totp_state(u.id.clone()).await.unwrap(),
        FactorState::Active
    );
    let bound = e.pending(&u).await;
    assert!(
        bound.active && bound.secret_base32.is_none(),
        "never disclosed again"
    );
    assert_eq!(bound.id, pending.id);
    assert_eq!(bound.updated_at, T0);
    // Replay, then no bypass without a code, on this dialect or through challenges.
    assert!(matches!(
        e.code_login(&u, Some(code), false).await,
        Err(CoreError::IncorrectCode)
    ));
    assert!(matches!(
        e.code_login(&u, None, false).await,
        Ok(CodeLogin::CodeRequired { .. })
    ));
    let c = e.login_challenge(&u).await;
    assert!(!c.is_empty());

    // The opaque session works through its dialect only, until it expires.
    let lookup = |dialect: &str| {
        e.core.refresh_session(
            Origin::new(dialect, None),
            session.refresh_token.clone(),
            None,
        )
    };
    assert_eq!(lookup("test").await.unwrap().user.id, u.id);
    assert!(matches!(
        lookup("other").await,
        Err(CoreError::InvalidToken)
    ));
    e.clock.advance(7200);
    assert!(matches!(lookup("test").await, Err(CoreError::InvalidToken)));
}

/// Concurrent first calls for the pending secret agree on one factor.
async fn concurrent_first_secret(e: Env) {
    let u = e.user("vera", false).await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let core = e.core.clone();
            tokio::spawn(async move {
                core.pending_totp(origin(), "vera".into(), sha512_hex("vera-pw"))
                    .await
                    .unwrap()
                    .id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for call in calls {
        ids.push(call.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(e.pending(&u).await.id, ids[0]);
}

/// Wrong codes sent with logins lock the user's codes out like challenge answers.
async fn inline_codes_lock_out(e: Env) {
    let u = e.user("olga", false).await;
    let secret = e.enroll(&u).await;
    for _ in 0..5 {
        assert!(matches!(
            e.code_login(&u, Some(wrong(&e.code(&secret, 0))), false)
                .await,
            Err(CoreError::IncorrectCode)
        ));
    }
    assert!(matches!(
        e.code_login(&u, Some(e.code(&secret, 0)), false).await,
        Err(CoreError::Locked { retry_after: 30 })
    ));
    e.clock.advance(30);
    assert!(matches!(
        e.code_login(&u, Some(e.code(&secret, 0)), false).await,
        Ok(CodeLogin::Complete(_))
    ));
}

/// Re-issuing a factor: admins only, with the user's password; the old code is dead.
async fn reissue_is_admin_only(e: Env) {
    let admin = e.user("root", true).await;
    let u = e.user("pia", false).await;
    let other = e.user("quinn", false).await;
    let old = e.pending(&u).await;
    let reissue = |actor: &User, password: &str| {
        e.core.reissue_totp(
            origin(),
            Actor::User(actor.id.clone()),
            "pia".into(),
            sha512_hex(password),
        )
    };
    assert!(matches!(
        reissue(&other, "pia-pw").await,
        Err(CoreError::Forbidden)
    ));
    assert!(matches!(
        reissue(&admin, "nope").await,
        Err(CoreError::InvalidCredentials)
    ));
    assert_eq!(e.pending(&u).await.id, old.id, "unchanged");
    let fresh = reissue(&admin, "pia-pw").await.unwrap();
    assert_ne!(fresh.id, old.id);
    assert_ne!(fresh.secret_base32, old.secret_base32);
    assert!(!fresh.active);
    assert!(matches!(
        e.code_login(&u, Some(e.code(&secret_of(&old), 0)), true)
            .await,
        Err(CoreError::IncorrectCode)
    ));
    assert!(matches!(
        e.code_login(&u, Some(e.code(&secret_of(&fresh), 0)), true)
            .await,
        Ok(CodeLogin::Complete(_))
    ));
}

/// Settings are shared and admin-only; job results are sealed, per dialect, and expire.
async fn settings_and_job_results(e: Env) {
    let admin = e.user("root", true).await;
    let u = e.user("rita", false).await;
    let set = |actor: &User, value: &str| {
        e.core.set_setting(
            origin(),
            Actor::User(actor.id.clone()),
            "k".into(),
            value.into(),
        )
    };
    assert_eq!(e.core.setting("k".into()).await.unwrap(), None);
    assert!(matches!(set(&u, "1").await, Err(CoreError::Forbidden)));
    set(&admin, "1").await.unwrap();
    set(&admin, "2").await.unwrap();
    assert_eq!(
        e.core.setting("k".into()).await.unwrap().as_deref(),
        Some("2")
    );

    let job = e
        .core
        .store_job_result(origin(), "the result".into(), 60)
        .await
        .unwrap();
    assert_eq!(job.len(), 32);
    assert_eq!(
        e.core
            .job_result(origin(), job.clone())
            .await
            .unwrap()
            .as_deref(),
        Some("the result")
    );
    assert_eq!(
        e.core
            .job_result(Origin::new("other", None), job.clone())
            .await
            .unwrap(),
        None
    );
    if let Some(file) = &e.db_file {
        let bytes = std::fs::read(file).unwrap_or_default();
        let wal = std::fs::read(file.with_extension("sqlite3-wal")).unwrap_or_default();
        for b in [bytes, wal] {
            assert!(!b.windows(10).any(|w| w == b"the result"), "sealed at rest");
        }
    }
    e.clock.advance(60);
    assert_eq!(e.core.job_result(origin(), job).await.unwrap(), None);
}

/// The TOTP inventory query: every operator, sorting, paging, counting, visibility.
async fn totp_inventory_query(e: Env) {
    let admin = e.user("root", true).await;
    let mut users = Vec::new();
    for (i, name) in ["sam", "tia", "uma"].iter().enumerate() {
        let u = e.user(name, false).await;
        e.pending(&u).await;
        users.push(u);
        e.clock.advance(10 * (i as i64 + 1));
    }
    let secret = secret_of(&e.pending(&users[0]).await);
    e.code_login(&users[0], Some(e.code(&secret, 0)), false)
        .await
        .unwrap();
    let run = |caller: &User, conditions: Vec<Condition<TotpField>>| {
        e.core.query_totp_factors(
            caller.id.clone(),
            QuerySpec {
                conditions,
                sort: Some(Sort {
                    field: TotpField::Username,
                    ascending: true,
                }),
                limit: 1000,
                start: 0,
                rows: true,
                total: true,
            },
        )
    };
    let cond = |field, op, values: &[&str]| Condition {
        field,
        op,
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let names = |page: Page<TotpFactorInfo>| -> Vec<String> {
        page.rows.into_iter().map(|r| r.username).collect()
    };
    use Op::*;
    use TotpField::*;
    let t1 = (T0 + 10).to_string();
    let cases: Vec<(Condition<TotpField>, Vec<&str>)> = vec![
        (cond(Active, Eq, &["true"]), vec!["sam"]),
        (cond(Active, Ne, &["true"]), vec!["tia", "uma"]),
        (cond(Username, In, &["tia", "uma", "x"]), vec!["tia", "uma"]),
        (cond(Username, NotIn, &["tia"]), vec!["sam", "uma"]),
        (cond(Username, Like, &["t%"]), vec!["tia"]),
        (cond(Username, Like, &["T_A"]), vec!["tia"]),
        (cond(Username, NotLike, &["%a"]), vec!["sam"]),
        (cond(CreatedAt, Gt, &[&t1]), vec!["uma"]),
        (cond(CreatedAt, Ge, &[&t1]), vec!["tia", "uma"]),
        (cond(CreatedAt, Lt, &[&t1]), vec!["sam"]),
        (cond(CreatedAt, Le, &[&t1]), vec!["sam", "tia"]),
        (cond(UpdatedAt, Gt, &[&t1]), vec!["sam", "uma"]),
        (cond(UserId, Eq, &[&users[1].id]), vec!["tia"]),
        (cond(UserId, IsNull, &[]), vec![]),
        (cond(Id, NotNull, &[]), vec!["sam", "tia", "uma"]),
    ];
    for (c, expected) in cases {
        let what = format!("{c:?}");
        let page = run(&admin, vec![c]).await.unwrap();
        assert_eq!(page.total, Some(expected.len() as i64), "{what}");
        assert_eq!(names(page), expected, "{what}");
    }
    // Bound parameters: a quote is just a character.
    assert!(names(
        run(&admin, vec![cond(Username, Eq, &["x' OR '1'='1"])])
            .await
            .unwrap()
    )
    .is_empty());
    // Non-admins see their own row only.
    assert_eq!(names(run(&users[1], vec![]).await.unwrap()), vec!["tia"]);
    // Bad values and operators are input errors.
    for c in [
        cond(Active, Like, &["t%"]),
        cond(CreatedAt, Eq, &["yesterday"]),
        cond(Id, Eq, &["a", "b"]),
    ] {
        assert!(matches!(
            run(&admin, vec![c]).await,
            Err(CoreError::InvalidQuery(_))
        ));
    }
    // Sorting and paging.
    let page = e
        .core
        .query_totp_factors(
            admin.id.clone(),
            QuerySpec {
                conditions: vec![],
                sort: Some(Sort {
                    field: CreatedAt,
                    ascending: false,
                }),
                limit: 1,
                start: 1,
                rows: true,
                total: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, None);
    assert_eq!(names(page), vec!["tia"]);
}

/// Emailed one-time codes: purpose-bound, expiring, single use, limited per code, per
/// user and per send window.
async fn one_time_codes(e: Env) {
    let u = e.user_with_email("olga").await;
    e.send(&u, CodePurpose::EnableTwoFactor).await.unwrap();
    let enable = e.last_code();
    // A code of one purpose never serves another.
    assert!(matches!(
        e.core
            .redeem_code(origin(), u.id.clone(), CodePurpose::Login, enable.clone())
            .await,
        Err(CoreError::IncorrectCode)
    ));
    e.core
        .enable_email_two_factor(origin(), u.id.clone(), enable.clone())
        .await
        .unwrap();
    assert!(e.core.second_factors(u.id.clone()).await.unwrap().email);
    assert!(matches!(
        e.core
            .enable_email_two_factor(origin(), u.id.clone(), enable.clone())
            .await,
        Err(CoreError::AlreadyBound)
    ));
    // The password alone no longer signs in, on any dialect.
    assert!(matches!(
        e.core
            .sign_in(origin(), "olga", "olga-pw".into())
            .await
            .unwrap(),
        SignIn::SecondFactorRequired { .. }
    ));
    assert!(matches!(
        e.core
            .password_login(origin(), "olga".into(), "olga-pw".into(), None)
            .await,
        Err(CoreError::NoSecondFactor)
    ));

    // Valid for 10 minutes, not a second longer.
    e.send(&u, CodePurpose::Login).await.unwrap();
    let login = e.last_code();
    e.clock.advance(600);
    assert!(matches!(
        e.core
            .login_with_emailed_code(origin(), u.id.clone(), login)
            .await,
        Err(CoreError::IncorrectCode)
    ));
    e.send(&u, CodePurpose::Login).await.unwrap();
    let login = e.last_code();
    e.clock.advance(599);
    let session = e
        .core
        .login_with_emailed_code(origin(), u.id.clone(), login.clone())
        .await
        .unwrap();
    assert!(session.mfa);
    // Single use.
    assert!(matches!(
        e.core
            .login_with_emailed_code(origin(), u.id.clone(), login)
            .await,
        Err(CoreError::IncorrectCode)
    ));

    // Five wrong tries kill the code, and lock the user's codes out.
    e.clock.advance(600);
    e.send(&u, CodePurpose::Login).await.unwrap();
    let login = e.last_code();
    for _ in 0..4 {
        assert!(matches!(
            e.core
                .login_with_emailed_code(origin(), u.id.clone(), wrong(&login))
                .await,
            Err(CoreError::IncorrectCode)
        ));
    }
    assert!(matches!(
        e.core
            .login_with_emailed_code(origin(), u.id.clone(), login.clone())
            .await,
        Err(CoreError::Locked { .. })
    ));
    // After the 30 s lockout, a fifth wrong try uses up the code's attempts.
    e.clock.advance(31);
    assert!(matches!(
        e.core
            .login_with_emailed_code(origin(), u.id.clone(), wrong(&login))
            .await,
        Err(CoreError::IncorrectCode)
    ));
    e.clock.advance(3600);
    assert!(matches!(
        e.core
            .login_with_emailed_code(origin(), u.id.clone(), login)
            .await,
        Err(CoreError::IncorrectCode)
    ));

    // At most 5 sends per user in 10 minutes.
    e.clock.advance(600);
    for _ in 0..5 {
        e.send(&u, CodePurpose::Login).await.unwrap();
    }
    let Err(CoreError::Locked { retry_after }) = e.send(&u, CodePurpose::Login).await else {
        panic!("sixth send allowed")
    };
    assert_eq!(retry_after, 600);
    e.clock.advance(600);
    e.send(&u, CodePurpose::Login).await.unwrap();
}

/// Of concurrent logins with one emailed code exactly one succeeds.
async fn concurrent_email_codes(e: Env) {
    let u = e.user_with_email("rita").await;
    e.send(&u, CodePurpose::EnableTwoFactor).await.unwrap();
    e.core
        .enable_email_two_factor(origin(), u.id.clone(), e.last_code())
        .await
        .unwrap();
    e.send(&u, CodePurpose::Login).await.unwrap();
    let code = e.last_code();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let core = e.core.clone();
            let (id, code) = (u.id.clone(), code.clone());
            tokio::spawn(async move { core.login_with_emailed_code(origin(), id, code).await })
        })
        .collect();
    let mut successes = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            successes += 1;
        }
    }
    assert_eq!(successes, 1);
}

/// A send that fails leaves no usable code and does not count as a send.
async fn failed_delivery_leaves_nothing(e: Env) {
    let u = e.user_with_email("paul").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = CoreConfig::new(e.url.clone(), [7; 32], vec![9; 32]);
    cfg.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    let down = Core::open(cfg, e.clock.clone(), Arc::new(SeededRandom::new(1))).unwrap();
    for _ in 0..6 {
        let failed = down
            .email_code(
                origin(),
                u.id.clone(),
                CodePurpose::EnableTwoFactor,
                CodeFormat::Digits(6),
                Template::new("s", "code: {code}"),
            )
            .await;
        assert!(
            matches!(failed, Err(CoreError::DeliveryFailed(_))),
            "{failed:?}"
        );
    }
    // Every guess fails: no code was left behind.
    assert!(matches!(
        e.core
            .enable_email_two_factor(origin(), u.id.clone(), "123456".into())
            .await,
        Err(CoreError::IncorrectCode)
    ));
    assert!(!e.core.second_factors(u.id.clone()).await.unwrap().any());
    // And the failures used up none of the send allowance.
    e.send(&u, CodePurpose::EnableTwoFactor).await.unwrap();
    e.core
        .enable_email_two_factor(origin(), u.id.clone(), e.last_code())
        .await
        .unwrap();
}

fn text() -> Template {
    Template::new("", "Your code is {code}.")
}

/// The SMS factor: opt-in with an expiring, purpose-bound code, one number per user,
/// a second factor on every login path, login codes, refresh generations, opt-out
/// only with a fresh code.
async fn sms_factor_rules(e: Env) {
    let sam = e.user("sam", false).await;
    let pid = e
        .core
        .sms_opt_in(origin(), sam.id.clone(), "0499999999".into(), None, text())
        .await
        .unwrap();
    let (to, expired) = e.last_sms();
    assert_eq!(to, "+61499999999");
    e.clock.advance(601);
    assert!(matches!(
        e.core
            .sms_verify_opt_in(origin(), sam.id.clone(), pid, expired)
            .await,
        Err(CoreError::IncorrectCode)
    ));
    let pid2 = e
        .core
        .sms_opt_in(
            origin(),
            sam.id.clone(),
            "+61 499 999 999".into(),
            None,
            text(),
        )
        .await
        .unwrap();
    assert_ne!(pid, pid2);
    let (_, code) = e.last_sms();
    // The earlier opt-in's id no longer names anything.
    assert!(matches!(
        e.core
            .sms_verify_opt_in(origin(), sam.id.clone(), pid, code.clone())
            .await,
        Err(CoreError::IncorrectCode)
    ));
    assert!(!e.core.second_factors(sam.id.clone()).await.unwrap().any());
    e.core
        .sms_verify_opt_in(origin(), sam.id.clone(), pid2, code.clone())
        .await
        .unwrap();
    let factors = e.core.second_factors(sam.id.clone()).await.unwrap();
    assert!(factors.sms && factors.any());
    let sam_row = e.core.user_by_id(sam.id.clone()).await.unwrap().unwrap();
    assert_eq!(sam_row.phone.as_deref(), Some("+61499999999"));
    assert!(sam_row.phone_confirmed);

    // One number, one user.
    let tia = e.user("tia", false).await;
    assert!(matches!(
        e.core
            .sms_opt_in(origin(), tia.id.clone(), "0499999999".into(), None, text())
            .await,
        Err(CoreError::PhoneNumberTaken)
    ));

    // No login path lets sam in on the password alone.
    let pw = || Password::Plain("sam-pw".into());
    assert!(matches!(
        e.core
            .password_login(origin(), "sam".into(), pw(), None)
            .await,
        Err(CoreError::NoSecondFactor)
    ));
    assert!(matches!(
        e.core
            .login_with_code(origin(), "sam".into(), pw(), None, false, 600)
            .await,
        Err(CoreError::NoSecondFactor)
    ));
    assert!(matches!(
        e.core.sign_in(origin(), "sam", pw()).await.unwrap(),
        SignIn::SecondFactorRequired { .. }
    ));

    // Login codes: texted on request, expire, single use, purpose-bound.
    let sms_login = |code: Option<String>| e.core.sms_login(origin(), "sam", pw(), code, text());
    assert!(matches!(sms_login(None).await.unwrap(), SmsLogin::CodeSent));
    let (_, old) = e.last_sms();
    e.clock.advance(601);
    assert!(matches!(
        sms_login(Some(old)).await,
        Err(CoreError::IncorrectCode)
    ));
    // The enable code is not a login code.
    assert!(matches!(
        sms_login(Some(code)).await,
        Err(CoreError::IncorrectCode)
    ));
    sms_login(None).await.unwrap();
    let (_, login) = e.last_sms();
    let session = match sms_login(Some(login.clone())).await.unwrap() {
        SmsLogin::Complete(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        sms_login(Some(login)).await,
        Err(CoreError::IncorrectCode)
    ));

    // Refresh moves the session's generation on; the refresh token stays.
    let generation = |id: String| e.core.session_generation(id);
    assert_eq!(generation(session.id.clone()).await.unwrap(), Some(0));
    let (again, g) = e
        .core
        .refresh_generation(origin(), session.refresh_token.clone())
        .await
        .unwrap();
    assert_eq!(
        (g, again.refresh_token.as_str()),
        (1, session.refresh_token.as_str())
    );
    assert_eq!(generation(session.id.clone()).await.unwrap(), Some(1));
    assert!(e
        .core
        .refresh_generation(Origin::new("other", None), session.refresh_token.clone())
        .await
        .is_err());

    // Opting out takes a fresh opt-out code.
    let before = e.sms_count();
    assert_eq!(
        e.core
            .sms_opt_out(origin(), sam.id.clone(), None, text())
            .await
            .unwrap(),
        OptOut::CodeSent
    );
    assert_eq!(e.sms_count(), before + 1);
    let (_, off) = e.last_sms();
    sms_login(None).await.unwrap();
    let (_, login) = e.last_sms();
    assert!(matches!(
        e.core
            .sms_opt_out(origin(), sam.id.clone(), Some(login), text())
            .await,
        Err(CoreError::IncorrectCode)
    ));
    assert_eq!(
        e.core
            .sms_opt_out(origin(), sam.id.clone(), Some(off), text())
            .await
            .unwrap(),
        OptOut::Removed
    );
    assert!(!e.core.second_factors(sam.id.clone()).await.unwrap().any());
    assert!(matches!(
        e.core
            .password_login(origin(), "sam".into(), pw(), None)
            .await,
        Ok(LoginStep::Complete(_))
    ));
    // Now the number is free for tia.
    e.core
        .sms_opt_in(origin(), tia.id.clone(), "0499999999".into(), None, text())
        .await
        .unwrap();
}

/// Two users who opted in the same number and verify it at once: exactly one gets it,
/// the other is told the number is taken (never a storage error), and the number ends
/// up active for one user only.
async fn concurrent_opt_ins_of_one_number(e: Env) {
    let mut pending = Vec::new();
    for name in ["amy", "ben", "cal", "dee"] {
        let u = e.user(name, false).await;
        let pid = e
            .core
            .sms_opt_in(origin(), u.id.clone(), "0499555666".into(), None, text())
            .await
            .unwrap();
        pending.push((u, pid, e.last_sms().1));
    }
    let tasks: Vec<_> = pending
        .iter()
        .map(|(u, pid, code)| {
            let core = e.core.clone();
            let (id, pid, code) = (u.id.clone(), *pid, code.clone());
            tokio::spawn(async move { core.sms_verify_opt_in(origin(), id, pid, code).await })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => winners += 1,
            Err(CoreError::PhoneNumberTaken) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(winners, 1);
    let mut with_sms = 0;
    for (u, _, _) in &pending {
        if e.core.second_factors(u.id.clone()).await.unwrap().sms {
            with_sms += 1;
        }
    }
    assert_eq!(with_sms, 1);
}

/// One user's concurrent opt-ins (a double submit) each replace the pending number;
/// none fails as if another user held it, and the newest one verifies.
async fn concurrent_opt_ins_of_one_user(e: Env) {
    let u = e.user("eve", false).await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let core = e.core.clone();
            let id = u.id.clone();
            tokio::spawn(async move {
                core.sms_opt_in(origin(), id, "0499777888".into(), None, text())
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let pid = e
        .core
        .sms_opt_in(origin(), u.id.clone(), "0499777888".into(), None, text())
        .await
        .unwrap();
    e.core
        .sms_verify_opt_in(origin(), u.id.clone(), pid, e.last_sms().1)
        .await
        .unwrap();
}

/// Files and web-service keys.
async fn files_and_ws_keys(e: Env) {
    let ann = e.user("ann", false).await;
    let bob = e.user("bob", false).await;
    assert_eq!(
        e.core
            .add_user_files(origin(), ann.id.clone(), vec![12, 40])
            .await
            .unwrap(),
        vec![12, 40]
    );
    let fresh = e
        .core
        .add_user_files(origin(), bob.id.clone(), vec![])
        .await
        .unwrap();
    assert_eq!(fresh.len(), 1);
    assert!(![12, 40].contains(&fresh[0]));
    let key = e
        .core
        .issue_ws_key(origin(), "ann".into(), 12)
        .await
        .unwrap();
    let user = |k: String, f: i64| e.core.ws_key_user(k, f);
    assert_eq!(user(key.clone(), 12).await.unwrap().unwrap().id, ann.id);
    assert_eq!(
        user(key.to_lowercase(), 12).await.unwrap().map(|u| u.id),
        Some(ann.id.clone())
    );
    assert!(user(key.clone(), 40).await.unwrap().is_none());
    assert!(user("00".into(), 12).await.unwrap().is_none());
    assert!(e
        .core
        .issue_ws_key(origin(), "ann".into(), fresh[0])
        .await
        .is_err());
    e.core.delete_user(origin(), ann.id.clone()).await.unwrap();
    assert!(user(key, 12).await.unwrap().is_none());
}

/// Adding a mobile number is a new way past the second factor, so a user with an
/// authenticator proves it first: a stolen access token alone adds nothing.
async fn opt_in_proves_the_authenticator(e: Env) {
    let uma = e.user("uma", false).await;
    let secret = e.enroll(&uma).await;
    e.clock.advance(30);
    let opt_in = |proof: Option<String>| {
        e.core
            .sms_opt_in(origin(), uma.id.clone(), "0499000111".into(), proof, text())
    };
    assert!(matches!(opt_in(None).await, Err(CoreError::ProofRequired)));
    assert!(matches!(
        opt_in(Some(wrong(&e.code(&secret, 0)))).await,
        Err(CoreError::IncorrectCode)
    ));
    assert_eq!(e.sms_count(), 0, "nothing texted without the proof");
    let code = e.code(&secret, 0);
    opt_in(Some(code.clone())).await.unwrap();
    assert_eq!(e.sms_count(), 1);
    assert!(
        matches!(opt_in(Some(code)).await, Err(CoreError::IncorrectCode)),
        "the proof is single use"
    );
}

/// The code lockout is exact under concurrency: of 200 concurrent wrong codes exactly
/// five are evaluated, and after each lockout ends exactly one guess of a new burst is
/// (and starts the next, longer lockout).
async fn lockout_is_exact_under_concurrency(e: Env) {
    let u = e.user("lou", false).await;
    let secret = e.enroll(&u).await;
    let bad = wrong(&e.code(&secret, 0));
    let burst = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (core, id, code) = (e.core.clone(), u.id.clone(), bad.clone());
                tokio::spawn(async move { core.verify_totp(origin(), id, code).await })
            })
            .collect();
        async move {
            let (mut wrong, mut locked) = (0, 0);
            for t in tasks {
                match t.await.unwrap() {
                    Err(CoreError::IncorrectCode) => wrong += 1,
                    Err(CoreError::Locked { .. }) => locked += 1,
                    other => panic!("{other:?}"),
                }
            }
            (wrong, locked)
        }
    };
    assert_eq!(burst(200).await, (5, 195));
    e.clock.advance(31); // the first lockout is 30 s
    assert_eq!(burst(50).await, (1, 49));
    e.clock.advance(61); // the second, 60 s
    assert_eq!(burst(50).await, (1, 49));
}

/// Reset removes every kind of factor (TOTP, email, SMS), voids pending codes and ends
/// the user's sessions.
async fn reset_removes_every_factor(e: Env) {
    let session = |name: &'static str| {
        let core = e.core.clone();
        async move {
            match core
                .sign_in(origin(), name, format!("{name}-pw").into())
                .await
            {
                Ok(SignIn::Complete(s)) => s,
                other => panic!("{other:?}"),
            }
        }
    };
    let tom = e.user("tom", false).await;
    let tom_session = session("tom").await;
    e.enroll(&tom).await;
    let eve = e.user_with_email("eve").await;
    let eve_session = session("eve").await;
    e.send(&eve, CodePurpose::EnableTwoFactor).await.unwrap();
    let enable = e.last_code();
    e.core
        .enable_email_two_factor(origin(), eve.id.clone(), enable)
        .await
        .unwrap();
    e.send(&eve, CodePurpose::Login).await.unwrap();
    let pending_login = e.last_code();
    let sid = e.user("sid", false).await;
    let sid_session = session("sid").await;
    let pid = e
        .core
        .sms_opt_in(origin(), sid.id.clone(), "0499123456".into(), None, text())
        .await
        .unwrap();
    let (_, code) = e.last_sms();
    e.core
        .sms_verify_opt_in(origin(), sid.id.clone(), pid, code)
        .await
        .unwrap();
    for (user, old) in [
        (&tom, &tom_session),
        (&eve, &eve_session),
        (&sid, &sid_session),
    ] {
        assert!(e.core.second_factors(user.id.clone()).await.unwrap().any());
        e.core
            .reset_second_factors(origin(), Actor::Operator, user.username.clone())
            .await
            .unwrap();
        assert!(
            !e.core.second_factors(user.id.clone()).await.unwrap().any(),
            "{}",
            user.username
        );
        assert_eq!(
            e.core.totp_state(user.id.clone()).await.unwrap(),
            FactorState::None
        );
        assert!(
            matches!(
                e.core
                    .refresh_session(origin(), old.refresh_token.clone(), None)
                    .await,
                Err(CoreError::InvalidToken)
            ),
            "{}'s session ended",
            user.username
        );
        let name = user.username.clone();
        assert!(matches!(
            e.core
                .sign_in(origin(), name.clone(), format!("{name}-pw").into())
                .await,
            Ok(SignIn::Complete(_))
        ));
    }
    // The code emailed before the reset is void.
    assert!(matches!(
        e.core
            .redeem_code(origin(), eve.id.clone(), CodePurpose::Login, pending_login)
            .await,
        Err(CoreError::IncorrectCode)
    ));
}

/// Rewrites a user's TOTP secret as it was sealed before sealed values named their key
/// (`nonce ‖ ciphertext`, the factor id as associated data), as a database from before
/// key rotation holds it.
fn seal_legacy(e: &Env, user_id: &str, key: &[u8; 32], secret: &[u8]) {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use diesel::prelude::*;
    use diesel::sql_types::{Binary, Text};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        id: String,
    }
    macro_rules! on {
        ($conn:expr, $p1:literal, $p2:literal) => {{
            let conn = &mut $conn;
            let select = concat!("SELECT id FROM totp_factors WHERE user_id = ", $p1);
            let id = diesel::sql_query(select)
                .bind::<Text, _>(user_id)
                .get_result::<Row>(conn)
                .unwrap()
                .id;
            let nonce = [3u8; 12];
            let ct = aes_gcm::Aes256Gcm::new(key.into())
                .encrypt(
                    (&nonce).into(),
                    Payload {
                        msg: secret,
                        aad: id.as_bytes(),
                    },
                )
                .unwrap();
            let update = concat!(
                "UPDATE totp_factors SET secret_sealed = ",
                $p1,
                " WHERE id = ",
                $p2
            );
            diesel::sql_query(update)
                .bind::<Binary, _>([&nonce[..], &ct].concat())
                .bind::<Text, _>(&id)
                .execute(conn)
                .unwrap();
        }};
    }
    if e.db_file.is_some() {
        on!(
            diesel::SqliteConnection::establish(&e.url).unwrap(),
            "?",
            "?"
        )
    } else {
        on!(diesel::PgConnection::establish(&e.url).unwrap(), "$1", "$2")
    }
}

/// Key rotation: secrets sealed under the old master key (with and without a key id),
/// codes hashed and tokens signed under the old keys keep working once new keys are
/// current; `rotate_keys` re-seals every secret, once; then the old master key can go.
async fn key_rotation(e: Env) {
    let (old_master, old_jwt) = ([7u8; 32], vec![9u8; 32]);
    let (new_master, new_jwt) = ([8u8; 32], vec![10u8; 32]);
    let seed = std::sync::atomic::AtomicU64::new(100);
    let with_keys = |master: [u8; 32], previous: Vec<[u8; 32]>, jwt: Vec<u8>, previous_jwt| {
        // Each instance its own random sequence, or their ids would collide.
        let seed = seed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut cfg = CoreConfig::new(e.url.clone(), master, jwt);
        cfg.previous_master_keys = previous;
        cfg.previous_jwt_keys = previous_jwt;
        cfg.mail.outbox_dir = e._dir.path().join("outbox");
        Core::open(cfg, e.clock.clone(), Arc::new(SeededRandom::new(seed))).unwrap()
    };
    let (tina, tom) = (e.user("tina", false).await, e.user("tom", false).await);
    let (tina_secret, tom_secret) = (e.enroll(&tina).await, e.enroll(&tom).await);
    seal_legacy(&e, &tom.id, &old_master, &tom_secret);
    let olga = e.user_with_email("olga").await;
    e.send(&olga, CodePurpose::EnableTwoFactor).await.unwrap();
    let code_sent = e.last_code();
    let job = e
        .core
        .store_job_result(origin(), "the result".into(), 60)
        .await
        .unwrap();
    let session = e.logged_in("olga").await;
    let old_token = e
        .core
        .access_token(&session, "test", Default::default())
        .unwrap();

    let rotating = with_keys(
        new_master,
        vec![old_master],
        new_jwt.clone(),
        vec![old_jwt.clone()],
    );
    let login = |core: &Core, user: &User, secret: &[u8]| {
        let (core, user, code) = (core.clone(), user.clone(), e.code(secret, 0));
        async move {
            let LoginStep::SecondFactor { challenge_id, .. } = core
                .password_login(
                    origin(),
                    user.username.clone(),
                    format!("{}-pw", user.username).into(),
                    None,
                )
                .await?
            else {
                panic!("{} has a second factor", user.username)
            };
            core.answer_challenge(origin(), challenge_id, code).await
        }
    };
    // Everything made under the old keys works with the new keys current.
    assert!(login(&rotating, &tina, &tina_secret).await.is_ok());
    assert!(
        login(&rotating, &tom, &tom_secret).await.is_ok(),
        "sealed before key ids"
    );
    assert!(rotating.verify_access_token(&old_token, "test").is_ok());
    let new_token = rotating
        .access_token(&session, "test", Default::default())
        .unwrap();
    assert!(rotating.verify_access_token(&new_token, "test").is_ok());
    assert!(
        e.core.verify_access_token(&new_token, "test").is_err(),
        "signed with the new key"
    );
    rotating
        .enable_email_two_factor(origin(), olga.id.clone(), code_sent)
        .await
        .expect("a code sent under the old master key");
    assert_eq!(
        rotating
            .job_result(origin(), job.clone())
            .await
            .unwrap()
            .as_deref(),
        Some("the result")
    );

    let r = rotating.rotate_keys(origin()).await.unwrap();
    assert_eq!((r.secrets, r.resealed, r.unreadable), (2, 2, 0));
    assert_eq!(r.master_key_id, twofa_core::crypto::key_id(&new_master));
    assert_eq!(r.jwt_key_id, twofa_core::crypto::key_id(&new_jwt));
    assert_eq!(
        (r.old_job_results, r.old_job_results_expire),
        (1, Some(e.clock.now() + 60))
    );
    let again = rotating.rotate_keys(origin()).await.unwrap();
    assert_eq!(
        (again.secrets, again.resealed),
        (2, 0),
        "a rerun changes nothing"
    );

    // The old master key dropped: re-sealed secrets open with the new one alone, and
    // the old one no longer opens them.
    e.clock.advance(30);
    let rotated = with_keys(new_master, vec![], new_jwt.clone(), vec![]);
    let r = login(&rotated, &tina, &tina_secret).await;
    assert!(r.is_ok(), "{r:?}");
    assert!(login(&rotated, &tom, &tom_secret).await.is_ok());
    assert!(rotated.verify_access_token(&old_token, "test").is_err());
    assert!(rotated.verify_access_token(&new_token, "test").is_ok());
    e.clock.advance(30);
    assert!(login(&e.core, &tina, &tina_secret).await.is_err());

    // A secret sealed under a key no longer configured is reported, not skipped.
    let unknown = with_keys([11; 32], vec![], new_jwt, vec![]);
    let r = unknown.rotate_keys(origin()).await.unwrap();
    assert_eq!((r.secrets, r.resealed, r.unreadable), (2, 0, 2));
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::env(None)).await })*
        }
        mod postgres_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(url) = super::postgres::fresh_database(stringify!($name)) {
                    super::$name(super::env(Some(url))).await
                }
            })*
        }
    };
}

/// Reads or writes `users.password_hash` directly: an importer's write, a check that
/// nothing else is kept.
fn password_hash(e: &Env, username: &str, set: Option<&str>) -> String {
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        password_hash: String,
    }
    // The same statements on either backend, with its placeholders.
    macro_rules! on {
        ($conn:expr, $p1:literal, $p2:literal) => {{
            let conn = &mut $conn;
            if let Some(hash) = set {
                let update = concat!(
                    "UPDATE users SET password_hash = ",
                    $p1,
                    " WHERE username = ",
                    $p2
                );
                diesel::sql_query(update)
                    .bind::<Text, _>(hash)
                    .bind::<Text, _>(username)
                    .execute(conn)
                    .unwrap();
            }
            let select = concat!("SELECT password_hash FROM users WHERE username = ", $p1);
            diesel::sql_query(select)
                .bind::<Text, _>(username)
                .get_result::<Row>(conn)
                .unwrap()
                .password_hash
        }};
    }
    if e.db_file.is_some() {
        on!(
            diesel::SqliteConnection::establish(&e.url).unwrap(),
            "?",
            "?"
        )
    } else {
        on!(diesel::PgConnection::establish(&e.url).unwrap(), "$1", "$2")
    }
}

/// A user imported with another product's hash signs in with their old password; that
/// first success replaces the hash with argon2id, and the legacy hash is gone.
async fn legacy_hashes_upgrade_on_first_sign_in(e: Env) {
    // Identity v3 (PBKDF2-HMAC-SHA512, 100,000 iterations) and ZStack's SHA-512, both
    // computed with Python's hashlib.
    let identity = "$aspnet-identity$AQAAAAIAAYagAAAAEGRlZmdoaWprbG1ub3BxcnO9Raaen+Q0R2m94mLLOkeTl7OokohV7x3k739xZfEtQA==";
    let zstack = "$sha512$7d0cf9119d31d0afb1f1c78620677aa613b269784f504a6df7cf3239e1a3477466f536baf7d25596325f87d6f9435b20ae6244b943255b1260e8b0038cccf280";
    for (name, legacy, given) in [
        ("ida", identity, Password::Plain("Correct-horse-9".into())),
        ("zed", zstack, sha512_hex("Correct-horse-9")),
    ] {
        e.user(name, false).await;
        password_hash(&e, name, Some(legacy));
        let login = |p: Password| e.core.password_login(origin(), name.into(), p, None);
        let wrong = login(Password::Plain("Correct-horse-8".into())).await;
        assert!(matches!(wrong, Err(CoreError::InvalidCredentials)));
        assert_eq!(
            password_hash(&e, name, None),
            legacy,
            "a failure changes nothing"
        );
        let step = login(given.clone()).await.unwrap();
        assert!(matches!(step, LoginStep::Complete(_)));
        let upgraded = password_hash(&e, name, None);
        assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
        // The same password, plain or as ZStack's digest, still works against argon2id.
        for again in [
            given,
            Password::Plain("Correct-horse-9".into()),
            sha512_hex("Correct-horse-9"),
        ] {
            assert!(matches!(
                login(again).await.unwrap(),
                LoginStep::Complete(_)
            ));
        }
        assert_eq!(password_hash(&e, name, None), upgraded, "upgraded once");
    }
}

on_both_backends!(
    enrollment_then_login,
    window_is_one_step,
    codes_are_single_use,
    concurrent_answers_with_one_code,
    one_challenge_one_login,
    answered_challenge_leaves_session_and_audit,
    challenges_expire,
    setup_is_replaced_and_expires,
    code_lockout_grows_and_resets,
    password_lockout,
    sessions_refresh_and_revoke,
    admin_reset,
    no_plaintext_secrets_on_disk,
    direct_code_checks,
    one_time_codes,
    concurrent_email_codes,
    failed_delivery_leaves_nothing,
    inline_codes_bind_and_log_in,
    inline_codes_lock_out,
    concurrent_first_secret,
    reissue_is_admin_only,
    settings_and_job_results,
    totp_inventory_query,
    sms_factor_rules,
    concurrent_opt_ins_of_one_number,
    concurrent_opt_ins_of_one_user,
    files_and_ws_keys,
    opt_in_proves_the_authenticator,
    lockout_is_exact_under_concurrency,
    reset_removes_every_factor,
    legacy_hashes_upgrade_on_first_sign_in,
    key_rotation,
);

/// SQLite under sustained writes: the WAL stays near `wal_limit` instead of growing
/// without bound (background PASSIVE checkpoints alone never restart it while writes
/// keep coming: 20,000 users grew it to 180 MiB). Real time: the checkpoint
/// thread works on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_stays_bounded_under_sustained_writes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wal.sqlite3");
    let mut cfg = CoreConfig::new(file.to_string_lossy(), [7; 32], vec![9; 32]);
    cfg.wal_limit = 8 << 20;
    let core = Core::open(
        cfg,
        Arc::new(ManualClock::new(T0)),
        Arc::new(SeededRandom::new(42)),
    )
    .unwrap();
    let writers: Vec<_> = (0..32)
        .map(|w| {
            let core = core.clone();
            tokio::spawn(async move {
                for i in 0..625 {
                    let new = NewUser {
                        username: format!("w{w}-{i}"),
                        ..Default::default()
                    };
                    core.create_user(origin(), new).await.unwrap();
                }
            })
        })
        .collect();
    let wal = dir.path().join("wal.sqlite3-wal");
    let mut largest = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // A pass running when the limit is crossed finishes first.
    assert!(largest < 64 << 20, "WAL grew to {largest} bytes");
}
