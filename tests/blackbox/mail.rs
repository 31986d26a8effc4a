//! A real SMTP server on loopback (mailin-embedded) that keeps every message it
//! receives, so tests read codes and links from delivered mail as a user would.

use base64::Engine;
use mailin_embedded::{response, Handler, Response, Server};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received message, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub raw: String,
}

#[derive(Clone)]
struct Collector {
    mails: Arc<Mutex<Vec<Mail>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collector {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let raw = String::from_utf8_lossy(&self.data).into_owned();
        let mail = parse(self.to.clone(), raw);
        self.mails.lock().unwrap().push(mail);
        response::OK
    }
}

/// Headers (unfolded) and the decoded text body of a single-part message.
fn parse(to: Vec<String>, raw: String) -> Mail {
    let normalized = raw.replace("\r\n", "\n");
    let (head, body) = normalized.split_once("\n\n").unwrap_or((&normalized, ""));
    let head = head.replace("\n ", " ").replace("\n\t", " ");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let body = match header("Content-Transfer-Encoding")
        .to_ascii_lowercase()
        .as_str()
    {
        "base64" => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .unwrap(),
        )
        .unwrap(),
        "quoted-printable" => quoted_printable(body),
        _ => body.to_string(),
    };
    Mail {
        to,
        subject: header("Subject"),
        body: body.replace("\r\n", "\n"),
        raw,
    }
}

fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() + 1 {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..(i + 3).min(joined.len())], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

pub struct MailSink {
    mails: Arc<Mutex<Vec<Mail>>>,
    port: u16,
}

impl MailSink {
    /// Starts the server on a free loopback port (it lives as long as the test process).
    pub fn start() -> MailSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let mut server = Server::new(Collector {
            mails: mails.clone(),
            to: Vec::new(),
            data: Vec::new(),
        });
        server
            .with_name("sink.test")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        MailSink { mails, port }
    }

    /// `TWOFA_SMTP_URL` for this server: plain SMTP, as for a local relay.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn count(&self, to: &str) -> usize {
        self.for_address(to).len()
    }

    fn for_address(&self, to: &str) -> Vec<Mail> {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to.iter().any(|t| t.contains(to)))
            .cloned()
            .collect()
    }

    /// Waits for the `n`-th message (1-based) to `to` and returns it.
    pub fn nth(&self, to: &str, n: usize) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mails = self.for_address(to);
            if mails.len() >= n {
                return mails[n - 1].clone();
            }
            assert!(Instant::now() < deadline, "no mail #{n} to {to}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The code on a line of its own in a two-step mail.
pub fn code_in(mail: &Mail) -> String {
    mail.body
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {}", mail.body))
        .to_string()
}

/// The user id and token of the link in a confirmation or reset mail
/// (`.../{uid}/{token}`).
pub fn link_in(mail: &Mail) -> (String, String) {
    let link = mail
        .body
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http"))
        .unwrap_or_else(|| panic!("no link in {}", mail.body));
    let mut parts = link.rsplit('/');
    let token = parts.next().unwrap().to_string();
    let uid = parts.next().unwrap().to_string();
    (uid, token)
}
