//! PostgreSQL over TLS (issue 12): a throwaway PostgreSQL cluster the test owns, with
//! `ssl = on`, a server certificate signed by a CA the test makes, and only `hostssl`
//! connections allowed; the real binary connects with `sslmode=verify-full` and serves
//! a login, and a wrong CA is refused with a clear error.
//!
//! Needs PostgreSQL's server binaries (Debian: /usr/lib/postgresql/*/bin) and the
//! `openssl` command. Without them the test is skipped locally and fails under CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, Server};
use crate::ucloud::login_form;

/// The newest PostgreSQL server binaries installed, if any.
fn postgres_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

/// A self-signed CA: `<name>.pem` and `<name>.key` in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN=twofa test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(pem)
}

/// PostgreSQL's user, when the test runs as root (initdb and postgres refuse root).
fn as_postgres(program: &Path, root: bool) -> Command {
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// A PostgreSQL cluster in a temporary directory, stopped when dropped.
struct TlsPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    root: bool,
    port: u16,
}

impl TlsPostgres {
    fn start(bin: PathBuf) -> TlsPostgres {
        let id = run(Command::new("id").arg("-u"));
        let root = String::from_utf8_lossy(&id.stdout).trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // PostgreSQL's user must reach its files inside the test's directory.
        run(Command::new("chmod").arg("755").arg(d));

        make_ca(d, "ca");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
             keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        // The server refuses a key others can read.
        run(Command::new("chmod").arg("600").arg(d.join("server.key")));
        if root {
            run(Command::new("chown")
                .arg("postgres")
                .arg(d.join("server.key"))
                .arg(d.join("server.crt")));
        }

        let data = d.join("data");
        std::fs::create_dir(&data).unwrap();
        run(Command::new("chmod").arg("700").arg(&data));
        if root {
            run(Command::new("chown").arg("postgres").arg(&data));
        }
        run(as_postgres(&bin.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]));
        let port = free_port();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        use std::io::Write;
        write!(
            conf,
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}/data'\n\
             ssl = on\nssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\n\
             fsync = off\n",
            d = d.display()
        )
        .unwrap();
        // TLS or nothing over TCP.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let started = as_postgres(&bin.join("pg_ctl"), root)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(data.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .status()
            .unwrap();
        assert!(
            started.success(),
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(data.join("server.log")).unwrap_or_default()
        );
        TlsPostgres {
            dir,
            bin,
            root,
            port,
        }
    }

    fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"), self.root)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `twofa <args>` on `database_url` with the server's other settings.
fn twofa_on(s: &Server, database_url: &str, args: &[&str]) -> Output {
    let mut cmd = s.command();
    cmd.env("TWOFA_DATABASE_URL", database_url).args(args);
    cmd.output().unwrap()
}

#[test]
fn postgres_tls() {
    let Some(bin) = postgres_bin() else {
        assert!(
            std::env::var("CI").is_err(),
            "PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are needed under CI"
        );
        eprintln!("skipping postgres_tls: no /usr/lib/postgresql/*/bin/initdb");
        return;
    };
    let pg = TlsPostgres::start(bin);
    let verify_full = pg.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        pg.path("ca.pem")
    ));

    // The real binary on verify-full serves a login.
    let s = Server::start_on(verify_full, &[]);
    s.add_user("tls-user", "tls-pw");
    let (status, body) = login_form(&s, "tls-user", "tls-pw");
    assert_eq!(status, 200, "{body}");
    assert!(body["accessToken"].is_string());

    // `require` encrypts without checking the certificate.
    let out = twofa_on(&s, &pg.url("sslmode=require"), &["user", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tls-user"));

    // The server takes nothing but TLS, so the connections above were encrypted.
    let out = twofa_on(&s, &pg.url("sslmode=disable"), &["user", "list"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no encryption"), "{stderr}");

    // A CA that did not sign the server's certificate: refused at once, clearly.
    make_ca(pg.dir.path(), "wrong-ca");
    let wrong = pg.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        pg.path("wrong-ca.pem")
    ));
    let started = Instant::now();
    let mut serve = s.command();
    serve
        .env("TWOFA_DATABASE_URL", &wrong)
        .env("TWOFA_BIND", format!("127.0.0.1:{}", free_port()))
        .arg("serve");
    let out = serve.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("twofa: storage error: cannot connect to PostgreSQL")
            && stderr.contains("certificate verify failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused at once, not after the pool's timeout"
    );
}
