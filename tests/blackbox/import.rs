//! Issue 14: `twofa import ucloud|zstack|authendpoints --from <URL>`. Each test builds the
//! product's own tables (UCloud on the local PostgreSQL, ZStack on the local MariaDB,
//! Identity on SQLite and PostgreSQL), fills them with users whose password hashes and
//! TOTP secrets come from Python's standard library (`hashlib`, `hmac`, `os.urandom`),
//! never from this server's code, imports into the server under test, and signs in
//! through every dialect with codes Python computes as an authenticator app would.
//!
//! The DDL below recreates only the tables and columns the importer reads, following
//! the migrations each comment names.

use std::process::Stdio;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::{json, Value};

use crate::harness::{json, with_room_in_step, Backend, Server, ADMIN_PASSWORD};
use crate::postgres;

// ---------------------------------------------------------------------------------
// Python: the independent implementation.

fn python(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// UCloud's `PasswordHashingService`: PBKDF2-HMAC-SHA512, 10000 iterations, a random
/// 16-byte salt, a 32-byte key; (salt hex, key hex).
fn ucloud_hash(password: &str) -> (String, String) {
    let out = python(
        "import hashlib,os,sys; s=os.urandom(16); \
         print(s.hex(), hashlib.pbkdf2_hmac('sha512', sys.argv[1].encode(), s, 10000, 32).hex())",
        &[password],
    );
    let (salt, key) = out.split_once(' ').unwrap();
    (salt.into(), key.into())
}

/// ZStack's `AccountVO.password`: SHA-512 hex.
fn zstack_hash(password: &str) -> String {
    python(
        "import hashlib,sys; print(hashlib.sha512(sys.argv[1].encode()).hexdigest())",
        &[password],
    )
}

/// ASP.NET Core Identity's `PasswordHash`, as its `PasswordHasher` lays it out:
/// v2 `0x00 | salt(16) | PBKDF2-HMAC-SHA1(1000, 32)`, v3 `0x01 | prf | iterations |
/// salt length (big-endian u32 each) | salt | key(32)`.
fn identity_hash(password: &str, format: &str) -> String {
    python(
        "import hashlib,os,sys,struct,base64\n\
         pw=sys.argv[1].encode(); s=os.urandom(16); f=sys.argv[2]\n\
         if f=='v2': b=b'\\x00'+s+hashlib.pbkdf2_hmac('sha1',pw,s,1000,32)\n\
         else:\n\
         \x20 prf,alg,it={'v3-sha256':(1,'sha256',10000),'v3-sha512':(2,'sha512',100000)}[f]\n\
         \x20 b=b'\\x01'+struct.pack('>III',prf,it,16)+s+hashlib.pbkdf2_hmac(alg,pw,s,it,32)\n\
         print(base64.b64encode(b).decode())",
        &[password, format],
    )
}

/// A random secret of `bytes` bytes as unpadded base32.
fn secret(bytes: usize) -> String {
    python(
        "import base64,os,sys; print(base64.b32encode(os.urandom(int(sys.argv[1]))).decode().rstrip('='))",
        &[&bytes.to_string()],
    )
}

/// The RFC 6238 code (SHA1, 6 digits, 30 s) of `secret_b32` at now + `offset` seconds.
fn totp(secret_b32: &str, offset: i64) -> String {
    python(
        "import base64,hashlib,hmac,struct,sys,time\n\
         s=sys.argv[1]; k=base64.b32decode(s+'='*(-len(s)%8))\n\
         t=(int(time.time())+int(sys.argv[2]))//30\n\
         h=hmac.new(k,struct.pack('>Q',t),hashlib.sha1).digest(); o=h[-1]&15\n\
         print('%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000))",
        &[secret_b32, &offset.to_string()],
    )
}

// ---------------------------------------------------------------------------------
// Running the import.

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The counts of the `summary:` line.
    fn summary(&self) -> String {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .unwrap_or_else(|| panic!("no summary in {}", self.stdout))
            .to_string()
    }

    /// The outcome printed for `username`.
    fn outcome(&self, username: &str) -> String {
        self.stdout
            .lines()
            .find_map(|l| {
                let (outcome, rest) = l.split_once(' ')?;
                let name = rest.trim_start().split('\t').next()?;
                (name == username).then(|| outcome.to_string())
            })
            .unwrap_or_else(|| panic!("no line for {username} in {}", self.stdout))
    }
}

/// `twofa import <product> --from <url> <extra>`, logging at debug level so that
/// anything the import logs is seen.
fn import(s: &Server, product: &str, from: &str, extra: &[&str]) -> Run {
    let out = s
        .command()
        .env("TWOFA_LOG", "debug")
        .args(["import", product, "--from", from])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn ok_import(s: &Server, product: &str, from: &str, extra: &[&str]) -> Run {
    let run = import(s, product, from, extra);
    assert!(run.ok, "import failed: {}\n{}", run.stdout, run.stderr);
    run
}

/// Nothing the import printed or logged holds any of `secrets`.
fn assert_no_secret(run: &Run, secrets: &[&str]) {
    for secret in secrets {
        let lower = secret.to_ascii_lowercase();
        for text in [&run.stdout, &run.stderr] {
            assert!(
                !text.to_ascii_lowercase().contains(&lower),
                "the import output shows a secret or hash"
            );
        }
    }
}

fn usernames(s: &Server) -> Vec<String> {
    s.cli(&["user", "list"], None)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

fn audit_count(s: &Server, event: &str) -> usize {
    s.cli(&["audit", "--limit", "10000"], None)
        .lines()
        .filter(|l| l.contains(&format!("\"event\":\"{event}\"")))
        .count()
}

/// The sealed TOTP secrets on disk never hold the plaintext (SQLite: the file itself).
fn assert_sealed_at_rest(s: &Server, secrets_b32: &[&str]) {
    let Some(file) = s.sqlite_file() else { return };
    // Copy the committed state into the main file first.
    s.sql("PRAGMA wal_checkpoint(FULL)");
    let mut bytes = std::fs::read(&file).unwrap();
    if let Ok(wal) = std::fs::read(format!("{}-wal", file.display())) {
        bytes.extend(wal);
    }
    for b32 in secrets_b32 {
        let raw = totp_rs::Secret::try_from_base32(*b32)
            .unwrap()
            .as_bytes()
            .to_vec();
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw.as_slice()),
            "a plaintext TOTP secret in the database file"
        );
        assert!(!bytes.windows(b32.len()).any(|w| w == b32.as_bytes()));
    }
}

// ---------------------------------------------------------------------------------
// Signing in through each dialect.

/// UCloud: a password login; with `code`, the 2FA challenge answered. The status of
/// the completed login.
fn ucloud_login(s: &Server, user: &str, password: &str, code: Option<&str>) -> u16 {
    let (status, body) = crate::ucloud::login_form(s, user, password);
    match (code, body.get("2fa").and_then(Value::as_str)) {
        (None, None) => status,
        (Some(code), Some(challenge)) => {
            let body = json!({"challengeId": challenge, "verificationCode": code});
            crate::ucloud::answer(s, body).0
        }
        (None, Some(_)) => 1000, // a second factor asked for where none was expected
        (Some(_), None) => 2000 + status, // no second factor asked for
    }
}

fn zstack_login(s: &Server, user: &str, password: &str, code: Option<&str>) -> u16 {
    let tags: Vec<String> = code
        .map(|c| format!("twofatoken::{c}"))
        .into_iter()
        .collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    crate::zstack::login(s, user, password, &tags).0
}

/// AuthEndpoints: `/jwt/create`; `true` when it signed in, `false` when it asks for
/// the two-step verification.
fn ae_login(s: &Server, user: &str, password: &str) -> Result<bool, (u16, String)> {
    let r = s
        .http
        .post(s.url("/jwt/create"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    match status {
        200 => {
            let body: Value = serde_json::from_str(&text).unwrap();
            Ok(body.get("accessToken").is_some_and(Value::is_string))
        }
        _ => Err((status, text)),
    }
}

/// AuthEndpoints' two-step login with the authenticator app: the confirm's status.
fn ae_totp_login(s: &Server, user: &str, email: &str, password: &str, code: &str) -> u16 {
    let r = s
        .http
        .post(s.url("/users/two_step_verification_login"))
        .json(&json!({"username": user, "password": password, "provider": "Authenticator"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
    s.http
        .post(s.url("/users/two_step_verification_confirm"))
        .json(&json!({"email": email, "provider": "Authenticator", "token": code}))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Saasu: the password grant (with the authenticator code when given).
fn saasu_login(s: &Server, user: &str, password: &str, code: Option<&str>) -> (u16, Value) {
    let path = match code {
        Some(_) => "/authorisation/token-2fa",
        None => "/authorisation/token",
    };
    json(
        s.http
            .post(s.url(path))
            .json(
                &json!({"grant_type": "password", "username": user, "password": password,
                          "scope": "full", "verification_code": code.unwrap_or("")}),
            )
            .send()
            .unwrap(),
    )
}

// ---------------------------------------------------------------------------------
// UCloud.

/// `auth.principals` and `auth.two_factor_credentials` as UCloud's `core2` schema
/// (`core2/pkg/migrations/corev1.sql`) has them, which is where the auth-service
/// migrations `V1__Initial.sql`, `V4__2FA.sql`, `V14__Emails.sql` and
/// `V17__ASyncDBConvert.sql` end up.
const UCLOUD_DDL: &str = "
CREATE SCHEMA auth;
CREATE TABLE auth.principals (
    dtype varchar(31) NOT NULL,
    id text NOT NULL PRIMARY KEY,
    created_at timestamp DEFAULT now(),
    modified_at timestamp DEFAULT now(),
    role varchar(255),
    first_names varchar(255) DEFAULT NULL,
    last_name varchar(255) DEFAULT NULL,
    hashed_password bytea,
    salt bytea,
    org_id varchar(255) DEFAULT NULL,
    email varchar(1024) DEFAULT NULL,
    service_license_agreement integer DEFAULT 0,
    uid serial
);
CREATE TABLE auth.two_factor_credentials (
    id bigint NOT NULL PRIMARY KEY,
    enforced boolean NOT NULL,
    shared_secret varchar(255) NOT NULL,
    principal_id varchar(255) NOT NULL REFERENCES auth.principals
);
";

fn pg_exec(url: &str, sql: &str) {
    diesel::PgConnection::establish(url)
        .unwrap()
        .batch_execute(sql)
        .unwrap();
}

fn ucloud_principal(url: &str, id: &str, dtype: &str, role: &str, password: Option<&str>) {
    let (hash, salt) = match password {
        Some(pw) => {
            let (salt, key) = ucloud_hash(pw);
            (
                format!("decode('{key}', 'hex')"),
                format!("decode('{salt}', 'hex')"),
            )
        }
        None => ("NULL".into(), "NULL".into()),
    };
    pg_exec(
        url,
        &format!(
            "INSERT INTO auth.principals (dtype, id, role, first_names, last_name, hashed_password, salt, email) \
             VALUES ('{dtype}', '{id}', '{role}', 'First', 'Last', {hash}, {salt}, '{id}@example.com')"
        ),
    );
}

fn ucloud_credential(url: &str, id: i64, principal: &str, enforced: bool, secret: &str) {
    pg_exec(
        url,
        &format!(
            "INSERT INTO auth.two_factor_credentials VALUES ({id}, {enforced}, '{secret}', '{principal}')"
        ),
    );
}

pub fn import_ucloud(s: Server) {
    let Some(src) = postgres::fresh_database("import_ucloud_source") else {
        return;
    };
    pg_exec(&src, UCLOUD_DDL);
    let pw = |u: &str| format!("{u}-Pw-1");
    // Password-only people; each signs in first on another dialect.
    for u in ["ann", "ben", "cat"] {
        ucloud_principal(&src, u, "PASSWORD", "USER", Some(&pw(u)));
    }
    // An admin with an enforced 80-bit secret and, as the Kotlin service left it, an
    // unconfirmed row beside it with another secret.
    let dan = secret(10);
    assert_eq!(dan.len(), 16);
    ucloud_principal(&src, "dan", "PASSWORD", "ADMIN", Some(&pw("dan")));
    ucloud_credential(&src, 1, "dan", false, &secret(10));
    ucloud_credential(&src, 2, "dan", true, &dan);
    // Only an unconfirmed credential: not carried over.
    ucloud_principal(&src, "eve", "PASSWORD", "USER", Some(&pw("eve")));
    ucloud_credential(&src, 3, "eve", false, &secret(10));
    // Not people with passwords.
    ucloud_principal(&src, "wayf-person#1234", "WAYF", "USER", None);
    ucloud_principal(&src, "_ucloud", "SERVICE", "SERVICE", None);

    // Dry run: reported, nothing written.
    let dry = ok_import(&s, "ucloud", &src, &["--dry-run"]);
    assert!(dry.stdout.contains("dry run"), "{}", dry.stdout);
    let expected =
        "created 5, updated 0, unchanged 0, exists 0, builtin-admin 0, skipped 2, invalid 0";
    assert_eq!(dry.summary(), expected);
    assert_eq!(usernames(&s), ["admin"]);

    let run = ok_import(&s, "ucloud", &src, &[]);
    assert_eq!(run.summary(), expected);
    assert_eq!(run.outcome("dan"), "created");
    assert_eq!(run.outcome("wayf-person#1234"), "skipped");
    assert_no_secret(&run, &[&dan]);
    assert_eq!(audit_count(&s, "user.imported"), 5);
    assert_sealed_at_rest(&s, &[&dan]);

    // Safe to repeat: everything exists, nothing changes.
    let again = ok_import(&s, "ucloud", &src, &[]);
    assert_eq!(
        again.summary(),
        "created 0, updated 0, unchanged 0, exists 5, builtin-admin 0, skipped 2, invalid 0"
    );
    assert_eq!(audit_count(&s, "user.imported"), 5);

    // The legacy hash verifies on each dialect that sends the plaintext, and is
    // replaced by argon2id on that first success; ZStack's clients send only SHA-512,
    // which matches once the hash is argon2id.
    assert_eq!(ucloud_login(&s, "ann", &pw("ann"), None), 200);
    assert_eq!(ae_login(&s, "ben", &pw("ben")), Ok(true));
    assert_eq!(saasu_login(&s, "cat", &pw("cat"), None).0, 200);
    assert_ne!(ucloud_login(&s, "cat", "wrong-password", None), 200);
    for u in ["ann", "ben", "cat"] {
        assert_eq!(zstack_login(&s, u, &pw(u), None), 200, "{u}");
        assert_eq!(ucloud_login(&s, u, &pw(u), None), 200, "{u}");
    }
    // The legacy hash was replaced: a new import sees a different hash.
    let upgraded = ok_import(&s, "ucloud", &src, &["--update", "--dry-run"]);
    assert_eq!(upgraded.outcome("ann"), "updated");
    assert_eq!(upgraded.outcome("eve"), "unchanged");

    // dan's authenticator app keeps working, on every dialect, each code once.
    with_room_in_step();
    assert_eq!(
        ucloud_login(&s, "dan", &pw("dan"), Some(&totp(&dan, -30))),
        200
    );
    assert_eq!(
        zstack_login(&s, "dan", &pw("dan"), Some(&totp(&dan, -30))),
        503
    );
    assert_eq!(
        zstack_login(&s, "dan", &pw("dan"), Some(&totp(&dan, 0))),
        200
    );
    assert_eq!(zstack_login(&s, "dan", &pw("dan"), None), 503);
    // (UCloud's addresses come over unconfirmed, so AuthEndpoints' two-step login,
    // which goes by a confirmed address, is not open to dan; the password alone
    // is not enough there either.)
    assert_eq!(ae_login(&s, "dan", &pw("dan")), Ok(false));
    let (status, body) = saasu_login(&s, "dan", &pw("dan"), Some(&totp(&dan, 30)));
    assert_eq!(status, 200, "{body}");
    // eve's unconfirmed credential did not come over.
    assert_eq!(ucloud_login(&s, "eve", &pw("eve"), None), 200);

    // --update: the source's current password and factors win.
    let (salt, key) = ucloud_hash("dan-New-Pw-2");
    pg_exec(
        &src,
        &format!(
            "UPDATE auth.principals SET hashed_password = decode('{key}', 'hex'), salt = decode('{salt}', 'hex') WHERE id = 'dan'; \
             DELETE FROM auth.two_factor_credentials WHERE principal_id = 'dan'"
        ),
    );
    let kept = ok_import(&s, "ucloud", &src, &[]);
    assert_eq!(kept.outcome("dan"), "exists");
    assert_eq!(ucloud_login(&s, "dan", "dan-New-Pw-2", None), 401);
    let updated = ok_import(&s, "ucloud", &src, &["--update"]);
    assert_eq!(
        updated.summary(),
        "created 0, updated 5, unchanged 0, exists 0, builtin-admin 0, skipped 2, invalid 0"
    );
    let settled = ok_import(&s, "ucloud", &src, &["--update"]);
    assert_eq!(
        settled.summary(),
        "created 0, updated 0, unchanged 5, exists 0, builtin-admin 0, skipped 2, invalid 0"
    );
    assert_eq!(ucloud_login(&s, "dan", "dan-New-Pw-2", None), 200);
    assert_eq!(audit_count(&s, "user.import_updated"), 5);
    // Our own admin is not among the source's users and was never touched.
    assert_eq!(ucloud_login(&s, "admin", ADMIN_PASSWORD, None), 200);
}

// ---------------------------------------------------------------------------------
// ZStack.

/// `AccountVO` and `GlobalConfigVO` from ZStack's `conf/db/V0.6__schema.sql`,
/// `TwoFactorAuthenticationSecretVO` from `conf/db/upgrade/V2.6.0__schema.sql` as
/// `V3.4.0__schema.sql` changed it (`status`, `userUuid`, `userType`).
const ZSTACK_DDL: &[&str] = &[
    "CREATE TABLE AccountVO (
        uuid varchar(32) NOT NULL UNIQUE,
        name varchar(128) NOT NULL UNIQUE,
        password varchar(255) NOT NULL,
        type varchar(128) NOT NULL,
        lastOpDate timestamp NULL ON UPDATE CURRENT_TIMESTAMP,
        createDate timestamp NULL,
        PRIMARY KEY (uuid)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE GlobalConfigVO (
        id bigint unsigned NOT NULL UNIQUE AUTO_INCREMENT,
        name varchar(255) NOT NULL,
        description varchar(1024) DEFAULT NULL,
        category varchar(64) NOT NULL,
        defaultValue text DEFAULT NULL,
        value text DEFAULT NULL,
        PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE TwoFactorAuthenticationSecretVO (
        uuid VARCHAR(32) NOT NULL,
        secret VARCHAR(2048) NOT NULL,
        userUuid VARCHAR(32) NOT NULL,
        userType VARCHAR(256) NOT NULL,
        status varchar(255) NOT NULL DEFAULT 'NewCreated',
        lastOpDate timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
        createDate timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
        PRIMARY KEY (uuid)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
];

pub const MYSQL_ENV: &str = "TWOFA_TEST_MYSQL_URL";

/// A fresh MySQL/MariaDB database with `ddl`; its URL, or `None` when no server is
/// configured (then skipped locally, a failure under CI).
fn mysql_database(test: &str, ddl: &[&str]) -> Option<String> {
    use mysql::prelude::Queryable;
    let server = crate::postgres::configured_server(MYSQL_ENV, test)?;
    let name = crate::postgres::unique_database_name();
    let mut admin = mysql::Conn::new(mysql::Opts::from_url(&server).unwrap()).unwrap();
    admin.query_drop(format!("CREATE DATABASE {name}")).unwrap();
    let url = format!("{}/{name}", server.trim_end_matches('/'));
    let mut conn = mysql::Conn::new(mysql::Opts::from_url(&url).unwrap()).unwrap();
    for statement in ddl {
        conn.query_drop(statement).unwrap();
    }
    Some(url)
}

fn mysql_exec(url: &str, sql: &str) {
    use mysql::prelude::Queryable;
    mysql::Conn::new(mysql::Opts::from_url(url).unwrap())
        .unwrap()
        .query_drop(sql)
        .unwrap();
}

pub fn import_zstack(s: Server) {
    let Some(src) = mysql_database("import_zstack", ZSTACK_DDL) else {
        return;
    };
    let pw = |u: &str| format!("{u}-Pw-1");
    let account = |uuid: &str, name: &str, password_hex: &str, kind: &str| {
        mysql_exec(
            &src,
            &format!(
                "INSERT INTO AccountVO VALUES ('{uuid}', '{name}', '{password_hex}', '{kind}', NOW(), NOW())"
            ),
        )
    };
    // The built-in admin with ZStack's default password.
    account(
        "36c27e8ff05c4780bf6d2fa65700f22e",
        "admin",
        &zstack_hash("password"),
        "SystemAdmin",
    );
    account("a1", "fay", &zstack_hash(&pw("fay")), "Normal");
    account("a2", "gus", &zstack_hash(&pw("gus")), "Normal");
    account("a3", "hal", &zstack_hash(&pw("hal")), "Normal");
    account("a4", "bad", "not-a-digest", "Normal");
    let (gus, hal) = (secret(10), secret(10));
    let secret_row = |uuid: &str, user: &str, secret: &str, status: &str| {
        mysql_exec(
            &src,
            &format!(
                "INSERT INTO TwoFactorAuthenticationSecretVO (uuid, secret, userUuid, userType, status) \
                 VALUES ('{uuid}', '{secret}', '{user}', 'AccountVO', '{status}')"
            ),
        )
    };
    secret_row("s1", "a2", &gus, "Logined");
    secret_row("s2", "a3", &hal, "NewCreated");
    mysql_exec(
        &src,
        "INSERT INTO GlobalConfigVO (name, description, category, defaultValue, value) \
         VALUES ('twofa.enable', 'two-factor authentication', 'twofa', 'false', 'true')",
    );

    let expected =
        "created 3, updated 0, unchanged 0, exists 0, builtin-admin 1, skipped 0, invalid 1";
    let dry = ok_import(&s, "zstack", &src, &["--dry-run"]);
    assert_eq!(dry.summary(), expected);
    assert_eq!(usernames(&s), ["admin"]);
    let run = ok_import(&s, "zstack", &src, &[]);
    assert_eq!(run.summary(), expected);
    assert_eq!(run.outcome("admin"), "builtin-admin");
    assert_eq!(run.outcome("bad"), "invalid");
    assert!(
        run.stdout.contains("setting twofa.enable=true: set"),
        "{}",
        run.stdout
    );
    assert_no_secret(&run, &[&gus, &hal, &zstack_hash(&pw("fay"))]);
    assert_sealed_at_rest(&s, &[&gus, &hal]);
    let again = ok_import(&s, "zstack", &src, &[]);
    assert_eq!(
        again.summary(),
        "created 0, updated 0, unchanged 0, exists 3, builtin-admin 1, skipped 0, invalid 1"
    );
    assert!(again
        .stdout
        .contains("setting twofa.enable=true: unchanged"));

    // Our admin is untouched: its own password, not ZStack's.
    assert_eq!(ucloud_login(&s, "admin", "password", None), 401);
    assert_eq!(ucloud_login(&s, "admin", ADMIN_PASSWORD, None), 200);

    // fay: ZStack's digest verifies on every dialect, before and after the upgrade.
    assert_eq!(ucloud_login(&s, "fay", &pw("fay"), None), 200);
    assert_eq!(ae_login(&s, "fay", &pw("fay")), Ok(true));
    assert_eq!(saasu_login(&s, "fay", &pw("fay"), None).0, 200);
    // gus: the bound authenticator works on every dialect.
    with_room_in_step();
    assert_eq!(zstack_login(&s, "gus", &pw("gus"), None), 503);
    assert_eq!(
        zstack_login(&s, "gus", &pw("gus"), Some(&totp(&gus, -30))),
        200
    );
    assert_eq!(
        ucloud_login(&s, "gus", &pw("gus"), Some(&totp(&gus, 0))),
        200
    );
    let (status, body) = saasu_login(&s, "gus", &pw("gus"), Some(&totp(&gus, 30)));
    assert_eq!(status, 200, "{body}");
    // hal: the NewCreated secret is pending: ZStack shows the same secret, and the
    // code of the app hal already scanned binds it.
    let (status, body) = json(
        s.http
            .get(s.url(&format!(
                "/zstack/v1/twofactorauthentication/secret?name=hal&password={}&type=account",
                zstack_hash(&pw("hal"))
            )))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["inventory"]["status"], "NewCreated");
    assert_eq!(body["inventory"]["secret"], json!(hal));
    with_room_in_step();
    assert_eq!(
        zstack_login(&s, "hal", &pw("hal"), Some(&totp(&hal, 0))),
        200
    );
    assert_eq!(
        ucloud_login(&s, "hal", &pw("hal"), Some(&totp(&hal, 30))),
        200
    );
}

// ---------------------------------------------------------------------------------
// AuthEndpoints (ASP.NET Core Identity).

/// `AspNetUsers` and `AspNetUserTokens` as Entity Framework Core's Identity migration
/// (`CreateIdentitySchema`, the `IdentityUser`/`IdentityUserToken` columns of
/// dotnet/aspnetcore `src/Identity/Extensions.Stores`) creates them; `{bool}` is the
/// provider's boolean type, `{id}` its string key type.
const IDENTITY_DDL: &str = r#"
CREATE TABLE "AspNetUsers" (
    "Id" {id} NOT NULL PRIMARY KEY,
    "UserName" VARCHAR(256) NULL,
    "NormalizedUserName" VARCHAR(256) NULL,
    "Email" VARCHAR(256) NULL,
    "NormalizedEmail" VARCHAR(256) NULL,
    "EmailConfirmed" {bool} NOT NULL,
    "PasswordHash" TEXT NULL,
    "SecurityStamp" TEXT NULL,
    "ConcurrencyStamp" TEXT NULL,
    "PhoneNumber" TEXT NULL,
    "PhoneNumberConfirmed" {bool} NOT NULL,
    "TwoFactorEnabled" {bool} NOT NULL,
    "LockoutEnd" TEXT NULL,
    "LockoutEnabled" {bool} NOT NULL,
    "AccessFailedCount" INTEGER NOT NULL
);
CREATE TABLE "AspNetUserTokens" (
    "UserId" {id} NOT NULL REFERENCES "AspNetUsers" ("Id") ON DELETE CASCADE,
    "LoginProvider" VARCHAR(128) NOT NULL,
    "Name" VARCHAR(128) NOT NULL,
    "Value" TEXT NULL,
    PRIMARY KEY ("UserId", "LoginProvider", "Name")
);
"#;

enum IdentityDb {
    Sqlite(std::path::PathBuf),
    Postgres(String),
    /// Pomelo's MySQL provider (statements in ANSI quoting here).
    Mysql(String),
}

impl IdentityDb {
    fn url(&self) -> String {
        match self {
            IdentityDb::Sqlite(p) => p.to_string_lossy().into_owned(),
            IdentityDb::Postgres(u) | IdentityDb::Mysql(u) => u.clone(),
        }
    }

    fn exec(&self, sql: &str) {
        match self {
            IdentityDb::Sqlite(p) => diesel::SqliteConnection::establish(&p.to_string_lossy())
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
            IdentityDb::Postgres(u) => pg_exec(u, sql),
            IdentityDb::Mysql(u) => {
                for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                    mysql_exec(
                        u,
                        &format!("SET SESSION sql_mode = 'ANSI_QUOTES'; {statement}"),
                    );
                }
            }
        }
    }

    fn bool(&self, b: bool) -> &'static str {
        match (self, b) {
            (IdentityDb::Sqlite(_) | IdentityDb::Mysql(_), true) => "1",
            (IdentityDb::Sqlite(_) | IdentityDb::Mysql(_), false) => "0",
            (IdentityDb::Postgres(_), true) => "TRUE",
            (IdentityDb::Postgres(_), false) => "FALSE",
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn user(&self, id: &str, name: &str, hash: Option<&str>, confirmed: bool, two_factor: bool) {
        let hash = hash.map_or("NULL".to_string(), |h| format!("'{h}'"));
        self.exec(&format!(
            "INSERT INTO \"AspNetUsers\" VALUES ('{id}', '{name}', '{upper}', '{name}@example.com', \
             '{upper}@EXAMPLE.COM', {confirmed}, {hash}, 'STAMP', 'c', NULL, {f}, {two_factor}, NULL, {t}, 0)",
            upper = name.to_uppercase(),
            confirmed = self.bool(confirmed),
            two_factor = self.bool(two_factor),
            f = self.bool(false),
            t = self.bool(true),
        ));
    }

    fn authenticator_key(&self, id: &str, key: &str) {
        self.exec(&format!(
            "INSERT INTO \"AspNetUserTokens\" VALUES ('{id}', '[AspNetUserStore]', 'AuthenticatorKey', '{key}')"
        ));
    }
}

/// Fills an Identity database; returns ivy's authenticator key.
fn fill_identity(db: &IdentityDb, pw: impl Fn(&str) -> String) -> String {
    let (ddl_bool, ddl_id) = match db {
        IdentityDb::Sqlite(_) => ("INTEGER", "TEXT"),
        IdentityDb::Postgres(_) => ("boolean", "TEXT"),
        IdentityDb::Mysql(_) => ("tinyint(1)", "varchar(255)"),
    };
    db.exec(
        &IDENTITY_DDL
            .replace("{bool}", ddl_bool)
            .replace("{id}", ddl_id),
    );
    // .NET 7+ (v3, SHA512, 100000), .NET Core 1-6 (v3, SHA256, 10000), Identity v2.
    db.user(
        "1",
        "gil",
        Some(&identity_hash(&pw("gil"), "v3-sha512")),
        true,
        false,
    );
    db.user(
        "2",
        "hil",
        Some(&identity_hash(&pw("hil"), "v2")),
        false,
        false,
    );
    db.user(
        "3",
        "ivy",
        Some(&identity_hash(&pw("ivy"), "v3-sha256")),
        true,
        true,
    );
    let ivy = secret(20);
    db.authenticator_key("3", &ivy);
    // Email two-step verification on.
    db.user(
        "4",
        "jon",
        Some(&identity_hash(&pw("jon"), "v3-sha256")),
        true,
        true,
    );
    // External logins only.
    db.user("5", "kit", None, true, false);
    // A key generated but two-factor never turned on: not carried over.
    db.user(
        "6",
        "lou",
        Some(&identity_hash(&pw("lou"), "v3-sha256")),
        true,
        false,
    );
    db.authenticator_key("6", &secret(20));
    ivy
}

pub fn import_authendpoints(s: Server) {
    let pw = |u: &str| format!("{u}-Pw-1");
    let dir = tempfile::tempdir().unwrap();
    let mut sources = vec![IdentityDb::Sqlite(dir.path().join("identity.db"))];
    if let Some(url) = postgres::fresh_database("import_identity_source") {
        sources.push(IdentityDb::Postgres(url));
    }
    if let Some(url) = mysql_database("import_identity_mysql", &[]) {
        sources.push(IdentityDb::Mysql(url));
    }
    let expected =
        "created 5, updated 0, unchanged 0, exists 0, builtin-admin 0, skipped 1, invalid 0";
    for (n, db) in sources.iter().enumerate() {
        let ivy = fill_identity(db, pw);
        if n > 0 {
            // The same users from a second database: all exist already.
            let run = ok_import(&s, "authendpoints", &db.url(), &[]);
            assert_eq!(
                run.summary(),
                "created 0, updated 0, unchanged 0, exists 5, builtin-admin 0, skipped 1, invalid 0"
            );
            // With --update they take this database's hashes and key.
            let run = ok_import(&s, "authendpoints", &db.url(), &["--update"]);
            assert_eq!(run.outcome("ivy"), "updated");
            assert_eq!(ae_login(&s, "gil", &pw("gil")), Ok(true));
            with_room_in_step();
            let code = totp(&ivy, 30);
            assert_eq!(
                ae_totp_login(&s, "ivy", "ivy@example.com", &pw("ivy"), &code),
                200
            );
            continue;
        }
        // A failure part-way (the last user refused by the target) leaves nothing.
        let trigger = match s.backend {
            Backend::Sqlite => "CREATE TRIGGER import_fails BEFORE INSERT ON users WHEN NEW.username = 'lou' \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
                .to_string(),
            Backend::Postgres => "CREATE FUNCTION import_fails() RETURNS trigger AS $$ BEGIN \
                 IF NEW.username = 'lou' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER import_fails BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION import_fails();"
                .to_string(),
        };
        s.sql(&trigger);
        let failed = import(&s, "authendpoints", &db.url(), &[]);
        assert!(!failed.ok, "{}", failed.stdout);
        assert!(
            failed.stderr.contains("refused by the test"),
            "{}",
            failed.stderr
        );
        assert_eq!(usernames(&s), ["admin"]);
        assert_eq!(audit_count(&s, "user.imported"), 0);
        s.sql(match s.backend {
            Backend::Sqlite => "DROP TRIGGER import_fails",
            Backend::Postgres => "DROP TRIGGER import_fails ON users; DROP FUNCTION import_fails()",
        });

        let dry = ok_import(&s, "authendpoints", &db.url(), &["--dry-run"]);
        assert_eq!(dry.summary(), expected);
        let run = ok_import(&s, "authendpoints", &db.url(), &[]);
        assert_eq!(run.summary(), expected);
        assert_eq!(run.outcome("kit"), "skipped");
        assert_no_secret(&run, &[&ivy]);
        assert_sealed_at_rest(&s, &[&ivy]);
        let again = ok_import(&s, "authendpoints", &db.url(), &[]);
        assert_eq!(again.outcome("gil"), "exists");

        // Each Identity format verifies, first on a different dialect.
        assert_eq!(ae_login(&s, "gil", &pw("gil")), Ok(true));
        assert_eq!(ucloud_login(&s, "hil", &pw("hil"), None), 200);
        assert_eq!(saasu_login(&s, "lou", &pw("lou"), None).0, 200);
        assert_ne!(ae_login(&s, "lou", "wrong"), Ok(true));
        for u in ["gil", "hil", "lou"] {
            assert_eq!(zstack_login(&s, u, &pw(u), None), 200, "{u}");
        }
        // ivy's authenticator app.
        with_room_in_step();
        assert_eq!(ae_login(&s, "ivy", &pw("ivy")), Ok(false));
        let code = totp(&ivy, -30);
        assert_eq!(
            ae_totp_login(&s, "ivy", "ivy@example.com", &pw("ivy"), &code),
            200
        );
        assert_eq!(
            ucloud_login(&s, "ivy", &pw("ivy"), Some(&totp(&ivy, 0))),
            200
        );
        // jon: email two-step verification stays on.
        assert_eq!(ae_login(&s, "jon", &pw("jon")), Ok(false));
        assert_ne!(ucloud_login(&s, "jon", &pw("jon"), None), 200);
    }
}
