//! Starts the real `twofa` binary on a free port, on SQLite or PostgreSQL, and talks
//! to it over HTTP as a client would.

use base64::Engine;
use reqwest::blocking::{Client, Response};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::ports::free_port;
use crate::postgres;

pub const ADMIN_PASSWORD: &str = "admin-secret-pw";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    pub backend: Backend,
    pub http: Client,
    /// Extra `TWOFA_*` settings for the server and its CLI runs (`start_with`, `restart_with`).
    env: Vec<(String, String)>,
    /// The umask `twofa serve` starts under (`start_with_umask`); else the test's.
    umask: Option<&'static str>,
    /// Where `twofa serve` writes its log (standard error) (`start_logging`); else the test's.
    log_file: Option<PathBuf>,
}

fn owned(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Server {
    /// `None` when the PostgreSQL variant is skipped (see tests/support/postgres.rs).
    pub fn start(backend: Backend, test: &str) -> Option<Server> {
        Server::start_with(backend, test, &[])
    }

    /// Like `start`, with more settings in the environment.
    pub fn start_with(backend: Backend, test: &str, env: &[(&str, &str)]) -> Option<Server> {
        Server::start_with_umask(backend, test, env, None)
    }

    /// Like `start_with`, the server started under `umask` (e.g. "022").
    pub fn start_with_umask(
        backend: Backend,
        test: &str,
        env: &[(&str, &str)],
        umask: Option<&'static str>,
    ) -> Option<Server> {
        let data_dir = tempfile::tempdir().unwrap();
        let database_url = Server::database_for(backend, test, &data_dir)?;
        Some(Server::launch(
            data_dir,
            database_url,
            backend,
            env,
            umask,
            None,
        ))
    }

    /// A server on the PostgreSQL database at `database_url` (one the test made).
    pub fn start_on(database_url: String, env: &[(&str, &str)]) -> Server {
        let data_dir = tempfile::tempdir().unwrap();
        Server::launch(data_dir, database_url, Backend::Postgres, env, None, None)
    }

    /// Like `start_with`, the server's log (its standard error) kept in a file of the
    /// data dir, whose path is returned.
    pub fn start_logging(
        backend: Backend,
        test: &str,
        env: &[(&str, &str)],
    ) -> Option<(Server, PathBuf)> {
        let data_dir = tempfile::tempdir().unwrap();
        let log = data_dir.path().join("twofa.log");
        let database_url = Server::database_for(backend, test, &data_dir)?;
        let s = Server::launch(
            data_dir,
            database_url,
            backend,
            env,
            None,
            Some(log.clone()),
        );
        Some((s, log))
    }

    /// A SQLite file in `data_dir`, or a fresh PostgreSQL database (`None`: skipped).
    fn database_for(backend: Backend, test: &str, data_dir: &tempfile::TempDir) -> Option<String> {
        match backend {
            Backend::Sqlite => Some(
                data_dir
                    .path()
                    .join("twofa.sqlite3")
                    .to_string_lossy()
                    .into_owned(),
            ),
            Backend::Postgres => postgres::fresh_database(test),
        }
    }

    fn launch(
        data_dir: tempfile::TempDir,
        database_url: String,
        backend: Backend,
        env: &[(&str, &str)],
        umask: Option<&'static str>,
        log_file: Option<PathBuf>,
    ) -> Server {
        let mut server = Server {
            child: None,
            base: String::new(),
            data_dir,
            database_url,
            backend,
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            env: owned(env),
            umask,
            log_file,
        };
        server.serve();
        server
    }

    /// Starts `twofa serve` on a free port.
    fn serve(&mut self) {
        // A port taken between probing and binding is retried.
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = match self.umask {
                // The shell sets the umask, then becomes the binary.
                Some(umask) => {
                    let mut cmd = self.command_of("sh");
                    cmd.arg("-c")
                        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
                        .arg(env!("CARGO_BIN_EXE_twofa"));
                    cmd
                }
                None => self.command(),
            };
            if let Some(path) = &self.log_file {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap();
                cmd.stderr(file);
            }
            let child = cmd
                .arg("serve")
                .env("TWOFA_BIND", format!("127.0.0.1:{port}"))
                .spawn()
                .unwrap();
            self.child = Some(child);
            self.base = format!("http://127.0.0.1:{port}");
            if self.wait_ready() {
                return;
            }
            self.kill();
        }
        panic!("twofa did not start");
    }

    /// A second `twofa` instance on the same database with the same keys, as an operator
    /// runs several behind a load balancer.
    pub fn another_instance(&self) -> Server {
        let key = |name: &str| {
            std::fs::read_to_string(self.data_dir.path().join(name))
                .unwrap()
                .trim()
                .to_string()
        };
        let mut env = self.env.clone();
        env.push(("TWOFA_MASTER_KEY".into(), key("master.key")));
        env.push(("TWOFA_JWT_KEY".into(), key("jwt.key")));
        let mut other = Server {
            child: None,
            base: String::new(),
            data_dir: tempfile::tempdir().unwrap(),
            database_url: self.database_url.clone(),
            backend: self.backend,
            http: self.http.clone(),
            env,
            umask: self.umask,
            log_file: None,
        };
        other.serve();
        other
    }

    /// Restarts the server on the same database with extra environment variables.
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.kill();
        self.env = owned(env);
        self.serve();
    }

    /// The binary with this server's configuration.
    pub fn command(&self) -> Command {
        self.command_of(env!("CARGO_BIN_EXE_twofa"))
    }

    /// `program` with this server's configuration in its environment.
    fn command_of(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TWOFA_DATA_DIR", self.data_dir.path())
            .env("TWOFA_DATABASE_URL", &self.database_url)
            .env("TWOFA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("TWOFA_WORKERS", "2")
            .env("TWOFA_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                eprintln!("twofa exited early: {status}");
                return false;
            }
            if self
                .http
                .get(self.url("/healthz"))
                .send()
                .is_ok_and(|r| r.status() == 200)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Swagger UI's initializer script, which lists the served OpenAPI documents.
    pub fn swagger_initializer(&self) -> String {
        self.http
            .get(self.url("/swagger-ui/swagger-initializer.js"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the server process to exit and returns whether it exited cleanly.
    pub fn wait_exit(&mut self) -> bool {
        self.child.take().unwrap().wait().unwrap().success()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `twofa <args>` against this server's database; returns stdout.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let mut cmd = self.command();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "twofa {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn add_user(&self, username: &str, password: &str) {
        self.cli(
            &["user", "add", "--username", username, "--password-stdin"],
            Some(&format!("{password}\n")),
        );
    }

    /// Runs SQL on the server's database (to age a challenge, say) through the core's
    /// own connection type.
    pub fn sql(&self, statement: &str) {
        use diesel::connection::SimpleConnection;
        let pool = twofa_core::db::connect(&self.database_url, 1).unwrap();
        pool.get().unwrap().batch_execute(statement).unwrap();
    }

    pub fn sqlite_file(&self) -> Option<PathBuf> {
        (self.backend == Backend::Sqlite).then(|| PathBuf::from(&self.database_url))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status and JSON body (Null when empty) of a response.
pub fn json(r: Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, body)
}

/// A UCloud error body.
pub fn why(text: &str) -> serde_json::Value {
    serde_json::json!({"why": text, "errorCode": null})
}

/// The time since the Unix epoch, by the machine's clock (the server's too).
pub fn unix_time() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

/// The TOTP code for a base32 secret at `now + offset` seconds, computed independently
/// of the server, as an authenticator app would.
pub fn code(secret_b32: &str, offset: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).unwrap();
    let totp = totp_rs::Builder::new()
        .with_secret(secret.as_bytes().to_vec())
        .build()
        .unwrap();
    let now = unix_time().as_secs() as i64;
    totp.generate((now + offset) as u64).to_string()
}

/// Waits, if need be, until the current 30 s step has at least 12 s left, so that the
/// codes of a sequence (some at the edge of the ±1-step window, some expected to be
/// refused as replays of the same step) are all checked within one step.
pub fn with_room_in_step() {
    let left = 30.0 - unix_time().as_secs_f64() % 30.0;
    if left < 12.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(left + 0.5));
    }
}

/// Decodes a `data:image/png;base64,` QR code to its text.
pub fn decode_qr(data_uri: &str) -> String {
    let b64 = data_uri
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URI");
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}
