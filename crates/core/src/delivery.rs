//! Delivery of messages that carry one-time codes. Email goes through SMTP (lettre);
//! without SMTP configured each message is written as an .eml file to the outbox so the
//! embedded default needs no outside service. SMS goes to an HTTP webhook (any SMS
//! gateway: `POST {"to": "+61…", "message": "…"}`), or without one to a JSON-lines
//! outbox. A channel is one variant of [`Channel`].

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

use crate::{CoreError, CoreResult};

/// How mail leaves the server.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// lettre's connection URL: `smtp://user:pass@host:587` (STARTTLS: required whenever
    /// the URL has credentials), `smtps://user:pass@host` (TLS from the start) or
    /// `smtp://host:25` (plain, for local relays); `?tls=` overrides. `None` writes
    /// messages to `outbox_dir` instead.
    pub smtp_url: Option<String>,
    /// The From address.
    pub from: String,
    /// Where messages go without SMTP.
    pub outbox_dir: PathBuf,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_url: None,
            from: "twofa@localhost".into(),
            outbox_dir: PathBuf::from("data/outbox/mail"),
        }
    }
}

/// How text messages leave the server.
#[derive(Debug, Clone)]
pub struct SmsConfig {
    /// The gateway's webhook; `None` appends messages to `outbox_dir/sms.jsonl`.
    pub webhook_url: Option<String>,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub webhook_token: Option<String>,
    /// How long a webhook call may take before the send counts as failed.
    pub timeout: Duration,
    pub outbox_dir: PathBuf,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            webhook_url: None,
            webhook_token: None,
            timeout: Duration::from_secs(10),
            outbox_dir: PathBuf::from("data/outbox"),
        }
    }
}

/// The ways a code reaches its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    /// A text message to the user's SMS-factor number.
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

/// A message before the code is filled in: `{code}` in the subject or body is replaced
/// by the code.
#[derive(Debug, Clone)]
pub struct Template {
    pub subject: String,
    pub body: String,
}

impl Template {
    pub fn new(subject: impl Into<String>, body: impl Into<String>) -> Self {
        Template {
            subject: subject.into(),
            body: body.into(),
        }
    }

    pub(crate) fn render(&self, code: &str) -> (String, String) {
        (
            self.subject.replace("{code}", code),
            self.body.replace("{code}", code),
        )
    }
}

/// Credentials never cross the network in the clear: an `smtp://` URL with a user and
/// no `tls=` choice gets STARTTLS, required.
fn with_starttls(url: &str) -> String {
    let has_credentials = url
        .strip_prefix("smtp://")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|authority| authority.contains('@'));
    if has_credentials && !url.contains("tls=") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}tls=required")
    } else {
        url.to_string()
    }
}

enum MailTransport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

enum SmsTransport {
    Webhook {
        client: reqwest::Client,
        url: String,
        token: Option<String>,
    },
    Outbox(PathBuf),
}

/// Every transport the core delivers through.
pub(crate) struct Delivery {
    from: Mailbox,
    mail: MailTransport,
    sms: SmsTransport,
}

impl Delivery {
    pub(crate) fn new(cfg: &MailConfig, sms: &SmsConfig) -> CoreResult<Delivery> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| CoreError::InvalidConfig(format!("mail from address: {e}")))?;
        let mail = match &cfg.smtp_url {
            Some(url) => MailTransport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(&with_starttls(url))
                    .map_err(|e| CoreError::InvalidConfig(format!("SMTP URL: {e}")))?
                    .timeout(Some(Duration::from_secs(20)))
                    .build(),
            ),
            None => MailTransport::Outbox(cfg.outbox_dir.clone()),
        };
        let sms = match &sms.webhook_url {
            Some(url) => SmsTransport::Webhook {
                client: reqwest::Client::builder()
                    .timeout(sms.timeout)
                    .build()
                    .map_err(|e| CoreError::InvalidConfig(format!("SMS webhook client: {e}")))?,
                url: reqwest::Url::parse(url)
                    .map_err(|e| CoreError::InvalidConfig(format!("SMS webhook URL: {e}")))?
                    .to_string(),
                token: sms.webhook_token.clone(),
            },
            None => SmsTransport::Outbox(sms.outbox_dir.clone()),
        };
        Ok(Delivery { from, mail, sms })
    }

    /// Sends one message to `to` over `channel`. The message carries a secret: it is
    /// never logged.
    pub(crate) async fn send(
        &self,
        channel: Channel,
        to: &str,
        subject: &str,
        body: &str,
    ) -> CoreResult<()> {
        match channel {
            Channel::Email => self.send_mail(to, subject, body).await,
            Channel::Sms => self.send_sms(to, body).await,
        }
    }

    /// A text message: the body only. Logged without its text (it carries the code).
    async fn send_sms(&self, to: &str, message: &str) -> CoreResult<()> {
        let payload = serde_json::json!({ "to": to, "message": message });
        match &self.sms {
            SmsTransport::Webhook { client, url, token } => {
                let mut request = client.post(url).json(&payload);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let status = request.send().await.map_err(|e| {
                    tracing::warn!(error = %e.without_url(), "SMS webhook failed");
                    CoreError::DeliveryFailed("the SMS gateway did not answer".into())
                })?;
                if !status.status().is_success() {
                    tracing::warn!(status = %status.status(), "SMS webhook refused the message");
                    return Err(CoreError::DeliveryFailed(format!(
                        "the SMS gateway answered {}",
                        status.status()
                    )));
                }
                tracing::info!(to, "SMS sent");
            }
            SmsTransport::Outbox(dir) => {
                let mut line = payload.to_string();
                line.push('\n');
                let path =
                    append_to_outbox(dir.clone(), "sms.jsonl".into(), line.into_bytes()).await?;
                tracing::info!(to, path = %path.display(), "SMS written to the outbox");
            }
        }
        Ok(())
    }

    async fn send_mail(&self, to: &str, subject: &str, body: &str) -> CoreResult<()> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| CoreError::DeliveryFailed("the email address is not valid".into()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| CoreError::DeliveryFailed(format!("cannot build message: {e}")))?;
        match &self.mail {
            MailTransport::Smtp(transport) => {
                transport.send(message).await.map_err(|e| {
                    tracing::warn!(error = %e, "SMTP delivery failed");
                    CoreError::DeliveryFailed(format!("SMTP: {e}"))
                })?;
                tracing::info!(to = %to.email, subject, "mail sent");
            }
            MailTransport::Outbox(dir) => {
                let name = format!(
                    "{}-{}.eml",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0),
                    std::process::id()
                );
                let path = append_to_outbox(dir.clone(), name, message.formatted()).await?;
                tracing::info!(to = %to.email, subject, path = %path.display(), "mail written to the outbox");
            }
        }
        Ok(())
    }
}

/// Appends `bytes` to `dir/name` (created as needed, 0700 and 0600) off the async threads: the outbox
/// of a transport that is not configured. One write per call, so concurrent appends to
/// one file do not interleave.
async fn append_to_outbox(dir: PathBuf, name: String, bytes: Vec<u8>) -> CoreResult<PathBuf> {
    tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
        use std::io::Write;
        crate::files::private_dir(&dir)?;
        let path = dir.join(name);
        crate::files::private_options()
            .create(true)
            .append(true)
            .open(&path)?
            .write_all(&bytes)?;
        Ok(path)
    })
    .await
    .map_err(|e| CoreError::Internal(e.to_string()))?
    .map_err(|e| CoreError::DeliveryFailed(format!("outbox: {e}")))
}

#[cfg(test)]
mod tests {
    use super::with_starttls;

    #[test]
    fn credentials_get_starttls() {
        assert_eq!(
            with_starttls("smtp://u:p@mail.example:587"),
            "smtp://u:p@mail.example:587?tls=required"
        );
        assert_eq!(with_starttls("smtp://127.0.0.1:25"), "smtp://127.0.0.1:25");
        assert_eq!(
            with_starttls("smtp://u:p@relay?tls=opportunistic"),
            "smtp://u:p@relay?tls=opportunistic"
        );
        assert_eq!(with_starttls("smtps://u:p@host"), "smtps://u:p@host");
    }
}
