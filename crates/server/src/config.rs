//! Configuration: command-line flags and `TWOFA_*` environment variables, over an
//! optional TOML file with the same keys, over defaults.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::dialects;

/// Every setting, each optional so that layers can be merged.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ConfigValues {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "TWOFA_BIND", global = true)]
    pub bind: Option<String>,
    /// Directory for the SQLite file, key files and outbox [default: ./data]
    #[arg(long, env = "TWOFA_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` or a SQLite path [default: <data dir>/twofa.sqlite3]
    #[arg(long, env = "TWOFA_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Comma-separated dialects to mount [default: all that are built]
    #[arg(long, env = "TWOFA_DIALECTS", global = true)]
    pub dialects: Option<String>,
    /// Password of the `admin` user created on an empty database [default: random, logged once]
    #[arg(
        long,
        env = "TWOFA_ADMIN_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub admin_password: Option<String>,
    /// AES-256 key for secrets at rest, 64 hex digits or base64 [default: <data dir>/master.key]
    #[arg(long, env = "TWOFA_MASTER_KEY", global = true, hide_env_values = true)]
    pub master_key: Option<String>,
    /// HS256 key for access tokens, 64 hex digits or base64 [default: <data dir>/jwt.key]
    #[arg(long, env = "TWOFA_JWT_KEY", global = true, hide_env_values = true)]
    pub jwt_key: Option<String>,
    /// Issuer shown in authenticator apps for UCloud enrollments [default: UCloud]
    #[arg(long, env = "TWOFA_UCLOUD_ISSUER", global = true)]
    pub ucloud_issuer: Option<String>,
    /// Lifetime of ZStack sessions in seconds [default: 7200]
    #[arg(long, env = "TWOFA_ZSTACK_SESSION_TIMEOUT", global = true)]
    pub zstack_session_timeout: Option<i64>,
    /// ZStack's `twofa.enable` until an admin changes it through the API [default: false]
    #[arg(long, env = "TWOFA_ZSTACK_TWOFA_ENABLE", global = true)]
    pub zstack_twofa_enable: Option<bool>,
    /// SMTP server for mail with codes and links: smtp://user:pass@host:587 (STARTTLS,
    /// required with credentials), smtps://user:pass@host (TLS), smtp://host:25 (plain,
    /// local relays); `?tls=` overrides [default: none, mail goes to <data dir>/outbox/mail]
    #[arg(long, env = "TWOFA_SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// From address of mail [default: twofa@localhost]
    #[arg(long, env = "TWOFA_MAIL_FROM", global = true)]
    pub mail_from: Option<String>,
    /// Path prefix of the AuthEndpoints dialect [default: none, /users and /jwt at the root]
    #[arg(long, env = "TWOFA_AUTHENDPOINTS_PREFIX", global = true)]
    pub authendpoints_prefix: Option<String>,
    /// Issuer of AuthEndpoints JWTs [default: webapi]
    #[arg(long, env = "TWOFA_AUTHENDPOINTS_JWT_ISSUER", global = true)]
    pub authendpoints_jwt_issuer: Option<String>,
    /// Audience of AuthEndpoints JWTs [default: webapi]
    #[arg(long, env = "TWOFA_AUTHENDPOINTS_JWT_AUDIENCE", global = true)]
    pub authendpoints_jwt_audience: Option<String>,
    /// Link in AuthEndpoints confirmation mails, with {uid} and {token}
    #[arg(
        long,
        env = "TWOFA_AUTHENDPOINTS_EMAIL_CONFIRMATION_URL",
        global = true
    )]
    pub authendpoints_email_confirmation_url: Option<String>,
    /// Link in AuthEndpoints password reset mails, with {uid} and {token}
    #[arg(long, env = "TWOFA_AUTHENDPOINTS_PASSWORD_RESET_URL", global = true)]
    pub authendpoints_password_reset_url: Option<String>,
    /// TOML file with AuthEndpoints mail templates: tables `enable_2fa`, `login`
    /// (`{code}`), `confirm_email`, `reset_password` (`{link}`), each with `subject` and
    /// `body` [default: the reference's wording]
    #[arg(long, env = "TWOFA_AUTHENDPOINTS_TEMPLATES", global = true)]
    pub authendpoints_templates: Option<PathBuf>,
    /// Path prefix of the Saasu dialect [default: none, /authorisation and /User at the root]
    #[arg(long, env = "TWOFA_SAASU_PREFIX", global = true)]
    pub saasu_prefix: Option<String>,
    /// Scheme and host of Saasu's absolute `_links` hrefs, e.g. https://api.example.com
    /// [default: from the request]
    #[arg(long, env = "TWOFA_SAASU_PUBLIC_URL", global = true)]
    pub saasu_public_url: Option<String>,
    /// Lifetime of Saasu access tokens in seconds [default: 10800]
    #[arg(long, env = "TWOFA_SAASU_ACCESS_TOKEN_TTL", global = true)]
    pub saasu_access_token_ttl: Option<i64>,
    /// SMS gateway webhook: codes are POSTed as JSON {"to": "+61…", "message": "…"}
    /// [default: none, texts go to <data dir>/outbox/sms.jsonl]
    #[arg(
        long,
        env = "TWOFA_SMS_WEBHOOK_URL",
        global = true,
        hide_env_values = true
    )]
    pub sms_webhook_url: Option<String>,
    /// Bearer token sent to the SMS webhook [default: none]
    #[arg(
        long,
        env = "TWOFA_SMS_WEBHOOK_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub sms_webhook_token: Option<String>,
    /// Seconds an SMS webhook call may take before the send fails [default: 10]
    #[arg(long, env = "TWOFA_SMS_TIMEOUT", global = true)]
    pub sms_timeout: Option<u64>,
    /// Mark cookies Secure (set when served over HTTPS) [default: false]
    #[arg(long, env = "TWOFA_SECURE_COOKIES", global = true)]
    pub secure_cookies: Option<bool>,
    /// Seconds a request's headers, and then its body, may take to arrive before the
    /// connection is closed [default: 10]
    #[arg(long, env = "TWOFA_BODY_TIMEOUT", global = true)]
    pub body_timeout: Option<u64>,
    /// HTTP worker threads [default: one per core]
    #[arg(long, env = "TWOFA_WORKERS", global = true)]
    pub workers: Option<usize>,
    /// PostgreSQL connections in the pool (SQLite uses one) [default: 16]
    #[arg(long, env = "TWOFA_POOL_SIZE", global = true)]
    pub pool_size: Option<u32>,
    /// Log filter, e.g. `info` or `twofa_core=debug` [default: info]
    #[arg(long, env = "TWOFA_LOG", global = true)]
    pub log: Option<String>,
}

impl ConfigValues {
    /// `self` where set, else `fallback`.
    fn or(self, fallback: ConfigValues) -> ConfigValues {
        ConfigValues {
            bind: self.bind.or(fallback.bind),
            data_dir: self.data_dir.or(fallback.data_dir),
            database_url: self.database_url.or(fallback.database_url),
            dialects: self.dialects.or(fallback.dialects),
            admin_password: self.admin_password.or(fallback.admin_password),
            master_key: self.master_key.or(fallback.master_key),
            jwt_key: self.jwt_key.or(fallback.jwt_key),
            ucloud_issuer: self.ucloud_issuer.or(fallback.ucloud_issuer),
            zstack_session_timeout: self
                .zstack_session_timeout
                .or(fallback.zstack_session_timeout),
            zstack_twofa_enable: self.zstack_twofa_enable.or(fallback.zstack_twofa_enable),
            smtp_url: self.smtp_url.or(fallback.smtp_url),
            mail_from: self.mail_from.or(fallback.mail_from),
            authendpoints_prefix: self.authendpoints_prefix.or(fallback.authendpoints_prefix),
            authendpoints_jwt_issuer: self
                .authendpoints_jwt_issuer
                .or(fallback.authendpoints_jwt_issuer),
            authendpoints_jwt_audience: self
                .authendpoints_jwt_audience
                .or(fallback.authendpoints_jwt_audience),
            authendpoints_email_confirmation_url: self
                .authendpoints_email_confirmation_url
                .or(fallback.authendpoints_email_confirmation_url),
            authendpoints_password_reset_url: self
                .authendpoints_password_reset_url
                .or(fallback.authendpoints_password_reset_url),
            authendpoints_templates: self
                .authendpoints_templates
                .or(fallback.authendpoints_templates),
            saasu_prefix: self.saasu_prefix.or(fallback.saasu_prefix),
            saasu_public_url: self.saasu_public_url.or(fallback.saasu_public_url),
            saasu_access_token_ttl: self
                .saasu_access_token_ttl
                .or(fallback.saasu_access_token_ttl),
            sms_webhook_url: self.sms_webhook_url.or(fallback.sms_webhook_url),
            sms_webhook_token: self.sms_webhook_token.or(fallback.sms_webhook_token),
            sms_timeout: self.sms_timeout.or(fallback.sms_timeout),
            secure_cookies: self.secure_cookies.or(fallback.secure_cookies),
            body_timeout: self.body_timeout.or(fallback.body_timeout),
            workers: self.workers.or(fallback.workers),
            pool_size: self.pool_size.or(fallback.pool_size),
            log: self.log.or(fallback.log),
        }
    }
}

/// One mail template from the templates file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailTemplate {
    pub subject: String,
    pub body: String,
}

/// Replacements for the AuthEndpoints mails; those not given keep their default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailTemplates {
    pub enable_2fa: Option<MailTemplate>,
    pub login: Option<MailTemplate>,
    pub confirm_email: Option<MailTemplate>,
    pub reset_password: Option<MailTemplate>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub dialects: Vec<&'static str>,
    pub admin_password: Option<String>,
    pub master_key: Option<String>,
    pub jwt_key: Option<String>,
    pub ucloud_issuer: String,
    pub zstack_session_timeout: i64,
    pub zstack_twofa_enable: bool,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    /// Unset values keep the dialect's defaults.
    pub authendpoints_prefix: Option<String>,
    pub authendpoints_jwt_issuer: Option<String>,
    pub authendpoints_jwt_audience: Option<String>,
    pub authendpoints_email_confirmation_url: Option<String>,
    pub authendpoints_password_reset_url: Option<String>,
    pub authendpoints_templates: MailTemplates,
    pub saasu_prefix: Option<String>,
    pub saasu_public_url: Option<String>,
    pub saasu_access_token_ttl: Option<i64>,
    pub sms_webhook_url: Option<String>,
    pub sms_webhook_token: Option<String>,
    /// Seconds.
    pub sms_timeout: u64,
    pub secure_cookies: bool,
    /// Seconds.
    pub body_timeout: u64,
    pub workers: Option<usize>,
    pub pool_size: Option<u32>,
    pub log: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("unknown dialect {0:?} (built: {1})")]
    UnknownDialect(String, String),
}

impl Settings {
    /// Merges `values` (flags and environment) over the TOML file at `file`, if any.
    pub fn load(values: ConfigValues, file: Option<&Path>) -> Result<Settings, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), e))?
            }
            None => ConfigValues::default(),
        };
        let v = values.or(from_file);
        let data_dir = v.data_dir.unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = v.database_url.unwrap_or_else(|| {
            data_dir
                .join("twofa.sqlite3")
                .to_string_lossy()
                .into_owned()
        });
        let dialects = match v.dialects {
            None => dialects::ALL.iter().map(|d| d.name).collect(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|name| {
                    dialects::find(name).map(|d| d.name).ok_or_else(|| {
                        ConfigError::UnknownDialect(
                            name.into(),
                            dialects::ALL
                                .iter()
                                .map(|d| d.name)
                                .collect::<Vec<_>>()
                                .join(","),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Settings {
            bind: v.bind.unwrap_or_else(|| "127.0.0.1:8080".into()),
            data_dir,
            database_url,
            dialects,
            admin_password: v.admin_password,
            master_key: v.master_key,
            jwt_key: v.jwt_key,
            ucloud_issuer: v.ucloud_issuer.unwrap_or_else(|| "UCloud".into()),
            zstack_session_timeout: v.zstack_session_timeout.unwrap_or(7200).max(1),
            zstack_twofa_enable: v.zstack_twofa_enable.unwrap_or(false),
            smtp_url: v.smtp_url.filter(|u| !u.trim().is_empty()),
            mail_from: v.mail_from.unwrap_or_else(|| "twofa@localhost".into()),
            authendpoints_prefix: v.authendpoints_prefix,
            authendpoints_jwt_issuer: v.authendpoints_jwt_issuer,
            authendpoints_jwt_audience: v.authendpoints_jwt_audience,
            authendpoints_email_confirmation_url: v.authendpoints_email_confirmation_url,
            authendpoints_password_reset_url: v.authendpoints_password_reset_url,
            authendpoints_templates: match v.authendpoints_templates {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| ConfigError::Read(path.clone(), e))?;
                    toml::from_str(&text).map_err(|e| ConfigError::Parse(path, e))?
                }
                None => MailTemplates::default(),
            },
            saasu_prefix: v.saasu_prefix,
            saasu_public_url: v.saasu_public_url.filter(|u| !u.trim().is_empty()),
            saasu_access_token_ttl: v.saasu_access_token_ttl.map(|t| t.max(1)),
            sms_webhook_url: v.sms_webhook_url.filter(|u| !u.trim().is_empty()),
            sms_webhook_token: v.sms_webhook_token.filter(|t| !t.trim().is_empty()),
            sms_timeout: v.sms_timeout.unwrap_or(10).max(1),
            secure_cookies: v.secure_cookies.unwrap_or(false),
            body_timeout: v.body_timeout.unwrap_or(10).max(1),
            workers: v.workers,
            pool_size: v.pool_size,
            log: v.log.unwrap_or_else(|| "info".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::load(ConfigValues::default(), None).unwrap();
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert!(s.database_url.ends_with("twofa.sqlite3"));
        assert_eq!(
            s.dialects,
            vec!["ucloud", "zstack", "authendpoints", "saasu"]
        );
        assert_eq!(s.zstack_session_timeout, 7200);
        assert!(!s.zstack_twofa_enable);
        assert_eq!(s.smtp_url, None);
    }

    #[test]
    fn flags_override_file_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twofa.toml");
        std::fs::write(
            &path,
            "bind = \"0.0.0.0:9000\"\ndata_dir = \"/var/lib/twofa\"\nucloud_issuer = \"Example\"\nzstack_session_timeout = 60\nzstack_twofa_enable = true\n",
        )
        .unwrap();
        let flags = ConfigValues {
            bind: Some("127.0.0.1:1".into()),
            ..Default::default()
        };
        let s = Settings::load(flags, Some(&path)).unwrap();
        assert_eq!(s.bind, "127.0.0.1:1");
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/twofa"));
        assert_eq!(s.ucloud_issuer, "Example");
        assert_eq!(s.zstack_session_timeout, 60);
        assert!(s.zstack_twofa_enable);

        std::fs::write(&path, "bindd = \"x\"\n").unwrap();
        assert!(matches!(
            Settings::load(ConfigValues::default(), Some(&path)),
            Err(ConfigError::Parse(..))
        ));
    }

    #[test]
    fn mail_templates_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("templates.toml");
        std::fs::write(
            &path,
            "[login]\nsubject = \"Your code\"\nbody = \"Code: {code}\"\n",
        )
        .unwrap();
        let v = ConfigValues {
            authendpoints_templates: Some(path.clone()),
            ..Default::default()
        };
        let t = Settings::load(v.clone(), None)
            .unwrap()
            .authendpoints_templates;
        assert_eq!(t.login.unwrap().body, "Code: {code}");
        assert!(t.enable_2fa.is_none());
        std::fs::write(&path, "[logn]\nsubject = \"x\"\nbody = \"y\"\n").unwrap();
        assert!(matches!(
            Settings::load(v, None),
            Err(ConfigError::Parse(..))
        ));
    }

    #[test]
    fn dialect_list() {
        let v = ConfigValues {
            dialects: Some(" ucloud ,".into()),
            ..Default::default()
        };
        assert_eq!(Settings::load(v, None).unwrap().dialects, vec!["ucloud"]);
        let v = ConfigValues {
            dialects: Some("ucloud,nope".into()),
            ..Default::default()
        };
        assert!(matches!(
            Settings::load(v, None),
            Err(ConfigError::UnknownDialect(..))
        ));
    }
}
