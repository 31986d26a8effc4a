//! A real HTTP SMS gateway on loopback: it accepts the webhook's POSTs, keeps every
//! message, and answers with a chosen status (or not at all, to test timeouts), so
//! tests read codes from texts as a user would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received text.
#[derive(Debug, Clone)]
pub struct Sms {
    pub to: String,
    pub message: String,
    pub authorization: Option<String>,
    pub path: String,
}

impl Sms {
    /// The first run of `n` digits in the message.
    pub fn code(&self, n: usize) -> String {
        let digits: Vec<char> = self.message.chars().collect();
        digits
            .windows(n)
            .enumerate()
            .find(|(i, w)| {
                w.iter().all(char::is_ascii_digit)
                    && (*i == 0 || !digits[i - 1].is_ascii_digit())
                    && digits.get(i + n).is_none_or(|c| !c.is_ascii_digit())
            })
            .map(|(_, w)| w.iter().collect())
            .unwrap_or_else(|| panic!("no {n}-digit code in {:?}", self.message))
    }
}

#[derive(Clone)]
pub struct SmsGateway {
    pub url: String,
    texts: Arc<Mutex<Vec<Sms>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

fn handle(
    stream: std::net::TcpStream,
    texts: &Mutex<Vec<Sms>>,
    status: u16,
    delay: Duration,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut length = 0usize;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
            if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    std::thread::sleep(delay);
    if status < 300 {
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        texts.lock().unwrap().push(Sms {
            to: json["to"].as_str().unwrap_or_default().to_string(),
            message: json["message"].as_str().unwrap_or_default().to_string(),
            authorization,
            path,
        });
    }
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    )?;
    stream.flush()
}

impl SmsGateway {
    /// Listens on a free loopback port, answering 200.
    pub fn start() -> SmsGateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/sms/send", listener.local_addr().unwrap());
        let gateway = SmsGateway {
            url,
            texts: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU64::new(0)),
        };
        let g = gateway.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let g = g.clone();
                std::thread::spawn(move || {
                    let status = g.status.load(Ordering::SeqCst);
                    let delay = Duration::from_millis(g.delay_ms.load(Ordering::SeqCst));
                    let _ = handle(stream, &g.texts, status, delay);
                });
            }
        });
        gateway
    }

    /// From now on answer `status` (a 5xx refuses the message).
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// From now on wait this long before answering.
    pub fn delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn count(&self) -> usize {
        self.texts.lock().unwrap().len()
    }

    pub fn all(&self) -> Vec<Sms> {
        self.texts.lock().unwrap().clone()
    }

    /// Waits for text number `n` (0-based).
    pub fn nth(&self, n: usize) -> Sms {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(sms) = self.texts.lock().unwrap().get(n) {
                return sms.clone();
            }
            assert!(Instant::now() < deadline, "no text number {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last text received.
    pub fn last(&self) -> Sms {
        let n = self.count();
        assert!(n > 0, "no text received");
        self.nth(n - 1)
    }
}
