//! Configuration. Every setting is declared once, as a field of [`Settings`] or of a
//! dialect's settings struct (which owns its defaults): the field's attribute gives its
//! flag and `TWOFA_*` variable, its doc comment the help text, its path the TOML key
//! (a table per dialect: `[zstack] session_timeout = 7200`). figment layers them:
//! defaults, then the TOML file, then variables and flags.

use clap::parser::ValueSource;
use clap::ArgMatches;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use twofa_api_authendpoints::AuthEndpointsSettings;
use twofa_api_saasu::SaasuSettings;
use twofa_api_ucloud::UcloudSettings;
use twofa_api_zstack::ZstackSettings;

use twofa_web::non_blank;

use crate::dialects;

/// Every setting of the server and its dialects.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on
    #[arg(id = "bind", long = "bind", value_name = "BIND", env = "TWOFA_BIND", default_value_t = Settings::default().bind, global = true)]
    pub bind: String,
    /// Directory for the SQLite file, key files and outboxes
    #[arg(id = "data_dir", long = "data-dir", value_name = "DATA_DIR", env = "TWOFA_DATA_DIR",
        default_value_os_t = Settings::default().data_dir, global = true)]
    pub data_dir: PathBuf,
    /// `postgres://user@host/db` for PostgreSQL, else a SQLite path [default: <data dir>/twofa.sqlite3]
    #[arg(
        id = "database_url",
        long = "database-url",
        value_name = "DATABASE_URL",
        env = "TWOFA_DATABASE_URL",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Comma-separated dialects to mount [default: all built: ucloud,zstack,authendpoints,saasu]
    #[arg(
        id = "dialects",
        long = "dialects",
        value_name = "DIALECTS",
        env = "TWOFA_DIALECTS",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialects: Option<String>,
    /// Password of the `admin` user created on an empty database [default: random, written to <data dir>/admin-password]
    #[arg(
        id = "admin_password",
        long = "admin-password",
        value_name = "ADMIN_PASSWORD",
        env = "TWOFA_ADMIN_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    /// AES-256 key for secrets at rest, 64 hex digits or base64 [default: <data dir>/master.key]
    #[arg(
        id = "master_key",
        long = "master-key",
        value_name = "MASTER_KEY",
        env = "TWOFA_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,
    /// HS256 key for access tokens, 64 hex digits or base64 [default: <data dir>/jwt.key]
    #[arg(
        id = "jwt_key",
        long = "jwt-key",
        value_name = "JWT_KEY",
        env = "TWOFA_JWT_KEY",
        global = true,
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_key: Option<String>,
    /// Master keys that still decrypt but never encrypt, comma-separated: the old key while `twofa keys rotate` re-seals under `master_key`, or the new one while instances are being given it (see "Rotating keys") [default: none]
    #[arg(
        id = "previous_master_keys",
        long = "previous-master-keys",
        value_name = "PREVIOUS_MASTER_KEYS",
        env = "TWOFA_PREVIOUS_MASTER_KEYS",
        global = true,
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_master_keys: Option<String>,
    /// JWT keys whose tokens are still accepted until they expire, comma-separated; new tokens are signed with `jwt_key` only [default: none]
    #[arg(
        id = "previous_jwt_keys",
        long = "previous-jwt-keys",
        value_name = "PREVIOUS_JWT_KEYS",
        env = "TWOFA_PREVIOUS_JWT_KEYS",
        global = true,
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_jwt_keys: Option<String>,
    /// SMTP for mail with codes and links: `smtp://user:pass@host:587` (STARTTLS, required whenever the URL has credentials), `smtps://user:pass@host` (TLS), `smtp://host:25` (plain, local relays); lettre's `?tls=required|opportunistic` overrides [default: none, each message is written to <data dir>/outbox/mail/*.eml]
    #[arg(id = "smtp_url", long = "smtp-url", value_name = "SMTP_URL", env = "TWOFA_SMTP_URL", global = true, hide_env_values = true,
        value_parser = non_blank)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// From address of mail
    #[arg(id = "mail_from", long = "mail-from", value_name = "MAIL_FROM", env = "TWOFA_MAIL_FROM", default_value_t = Settings::default().mail_from, global = true)]
    pub mail_from: String,
    /// SMS gateway: each text is POSTed as JSON `{"to": "+61…", "message": "…"}`; a non-2xx answer or a timeout fails the request and leaves nothing behind [default: none, texts are appended to <data dir>/outbox/sms.jsonl]
    #[arg(id = "sms_webhook_url", long = "sms-webhook-url", value_name = "SMS_WEBHOOK_URL", env = "TWOFA_SMS_WEBHOOK_URL", global = true,
        hide_env_values = true, value_parser = non_blank)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms_webhook_url: Option<String>,
    /// Sent to the SMS webhook as `Authorization: Bearer <token>` [default: none]
    #[arg(id = "sms_webhook_token", long = "sms-webhook-token", value_name = "SMS_WEBHOOK_TOKEN", env = "TWOFA_SMS_WEBHOOK_TOKEN", global = true,
        hide_env_values = true, value_parser = non_blank)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms_webhook_token: Option<String>,
    /// Seconds an SMS webhook call may take before the send fails
    #[arg(id = "sms_timeout", long = "sms-timeout", value_name = "SMS_TIMEOUT", env = "TWOFA_SMS_TIMEOUT", default_value_t = Settings::default().sms_timeout,
        value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub sms_timeout: u64,
    /// Seconds a request's headers, and then its body, may take to arrive before the connection is closed
    #[arg(id = "body_timeout", long = "body-timeout", value_name = "BODY_TIMEOUT", env = "TWOFA_BODY_TIMEOUT", default_value_t = Settings::default().body_timeout,
        value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub body_timeout: u64,
    /// HTTP worker threads [default: one per core]
    #[arg(
        id = "workers",
        long = "workers",
        value_name = "WORKERS",
        env = "TWOFA_WORKERS",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// PostgreSQL connections in the pool (SQLite always uses one, on which concurrent requests share group commits) [default: 16]
    #[arg(
        id = "pool_size",
        long = "pool-size",
        value_name = "POOL_SIZE",
        env = "TWOFA_POOL_SIZE",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u32>,
    #[command(flatten)]
    pub log: LogSettings,
    #[command(flatten)]
    pub metrics: MetricsSettings,
    #[command(flatten)]
    pub ucloud: UcloudSettings,
    #[command(flatten)]
    pub zstack: ZstackSettings,
    #[command(flatten)]
    pub authendpoints: AuthEndpointsSettings,
    #[command(flatten)]
    pub saasu: SaasuSettings,
    /// The dialects to mount, resolved from `dialects`.
    #[arg(skip)]
    #[serde(skip)]
    pub enabled: Vec<&'static str>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            dialects: None,
            admin_password: None,
            master_key: None,
            jwt_key: None,
            previous_master_keys: None,
            previous_jwt_keys: None,
            smtp_url: None,
            mail_from: "twofa@localhost".into(),
            sms_webhook_url: None,
            sms_webhook_token: None,
            sms_timeout: 10,
            body_timeout: 10,
            workers: None,
            pool_size: None,
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
            ucloud: UcloudSettings::default(),
            zstack: ZstackSettings::default(),
            authendpoints: AuthEndpointsSettings::default(),
            saasu: SaasuSettings::default(),
            enabled: Vec::new(),
        }
    }
}

/// The log: what is written (`filter`) and how (`format`), on standard error.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(from = "LogTable")]
pub struct LogSettings {
    /// Log filter, e.g. `info` or `twofa_core=debug` (`debug` shows audit events in the log too); each request is logged at `info` by the target `twofa::request`
    #[arg(id = "log.filter", long = "log", value_name = "LOG", env = "TWOFA_LOG", default_value_t = LogSettings::default().filter, global = true)]
    pub filter: String,
    /// `text` for people, or `json`: one JSON object per line, each request's with its request id, dialect, route, status and latency
    #[arg(id = "log.format", long = "log-format", value_name = "LOG_FORMAT", env = "TWOFA_LOG_FORMAT", value_enum,
        default_value_t = LogSettings::default().format, global = true)]
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `log = "debug"` (the key before `[log]` was a table) still reads as the filter.
#[derive(Deserialize)]
#[serde(untagged)]
enum LogTable {
    Filter(String),
    Table(LogFields),
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LogFields {
    filter: String,
    format: LogFormat,
}

impl Default for LogFields {
    fn default() -> Self {
        let LogSettings { filter, format } = LogSettings::default();
        LogFields { filter, format }
    }
}

impl From<LogTable> for LogSettings {
    fn from(table: LogTable) -> Self {
        match table {
            LogTable::Filter(filter) => LogSettings {
                filter,
                ..Default::default()
            },
            LogTable::Table(LogFields { filter, format }) => LogSettings { filter, format },
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Prometheus `/metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address of a listener that serves only `/metrics`, which the main address then does not serve [default: none, `/metrics` is served on the main address]
    #[arg(id = "metrics.bind", long = "metrics-bind", value_name = "METRICS_BIND", env = "TWOFA_METRICS_BIND", global = true,
        value_parser = non_blank)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid {0}: {1}")]
    Parse(PathBuf, String),
    #[error("invalid settings: {0}")]
    Invalid(Box<figment::Error>),
    #[error("unknown dialect {0:?} (built: {1})")]
    UnknownDialect(String, String),
}

/// The values of `settings` whose source is one of `sources`, nested by their ids
/// (`zstack.session_timeout`), which are the settings' serde paths.
fn values_from(settings: &Settings, matches: &ArgMatches, sources: &[ValueSource]) -> Value {
    let all = serde_json::to_value(settings).unwrap_or_default();
    let mut picked = Map::new();
    for id in matches.ids() {
        let id = id.as_str();
        if !matches
            .value_source(id)
            .is_some_and(|s| sources.contains(&s))
        {
            continue;
        }
        let path: Vec<&str> = id.split('.').collect();
        let Some(value) = path.iter().try_fold(&all, |v, key| v.get(key)) else {
            continue;
        };
        let (last, tables) = path.split_last().expect("ids are not empty");
        let mut table = &mut picked;
        for key in tables {
            table = table
                .entry(*key)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("a table");
        }
        table.insert(last.to_string(), value.clone());
    }
    Value::Object(picked)
}

impl Settings {
    /// Layers the settings parsed from `matches` (flags, variables, defaults): defaults,
    /// then the TOML file at `file`, then what variables and flags set.
    pub fn load(
        parsed: Settings,
        matches: &ArgMatches,
        file: Option<&Path>,
    ) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(&parsed));
        if let Some(path) = file {
            if !path.is_file() {
                let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
                return Err(ConfigError::Read(path.into(), missing));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let given = values_from(
            &parsed,
            matches,
            &[ValueSource::EnvVariable, ValueSource::CommandLine],
        );
        figment = figment.merge(Serialized::defaults(given));
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        settings.resolve()
    }

    /// Checks what serde cannot and derives the rest: the dialect list, the mail
    /// templates file.
    pub fn resolve(mut self) -> Result<Settings, ConfigError> {
        // Flags refuse these below 1; a file may not, and zero would end every session
        // or send at once.
        self.zstack.session_timeout = self.zstack.session_timeout.max(1);
        self.saasu.access_token_ttl = self.saasu.access_token_ttl.max(1);
        self.sms_timeout = self.sms_timeout.max(1);
        self.enabled = match &self.dialects {
            None => dialects::ALL.iter().map(|d| d.name).collect(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|name| {
                    dialects::find(name).map(|d| d.name).ok_or_else(|| {
                        let built: Vec<_> = dialects::ALL.iter().map(|d| d.name).collect();
                        ConfigError::UnknownDialect(name.into(), built.join(","))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if self.authendpoints.registration.is_none() {
            // Accounts registered through AuthEndpoints sign in on every dialect: open
            // only where AuthEndpoints is the whole server, as the product is.
            let alone = self.enabled == [twofa_api_authendpoints::DIALECT];
            self.authendpoints.registration = Some(if alone {
                twofa_api_authendpoints::Registration::Open
            } else {
                twofa_api_authendpoints::Registration::Closed
            });
        }
        if let Some(path) = self.authendpoints.templates.clone() {
            let text =
                std::fs::read_to_string(&path).map_err(|e| ConfigError::Read(path.clone(), e))?;
            let given: MailTemplates =
                toml::from_str(&text).map_err(|e| ConfigError::Parse(path, e.to_string()))?;
            let ae = &mut self.authendpoints;
            for (target, given) in [
                (&mut ae.enable_2fa_mail, given.enable_2fa),
                (&mut ae.login_mail, given.login),
                (&mut ae.confirm_email_mail, given.confirm_email),
                (&mut ae.reset_password_mail, given.reset_password),
            ] {
                if let Some(t) = given {
                    *target = twofa_core::Template::new(t.subject, t.body);
                }
            }
        }
        Ok(self)
    }

    /// The database: the URL given, else the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            let file = self.data_dir.join("twofa.sqlite3");
            file.to_string_lossy().into_owned()
        })
    }
}

/// The README's table of settings, one row per setting, as `--help` knows them.
pub fn markdown_table() -> String {
    use clap::Args;
    let command = Settings::augment_args(clap::Command::new("twofa"));
    let mut rows = vec![
        "| variable | TOML key | default | meaning |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let (meaning, stated) = match help.rsplit_once(" [default: ") {
            Some((meaning, rest)) => (meaning.to_string(), rest.trim_end_matches(']').to_string()),
            None => (help.clone(), String::new()),
        };
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect();
        let default = match (defaults.is_empty(), stated.is_empty()) {
            (false, _) => defaults.join(", "),
            (true, false) => stated,
            (true, true) => "none".into(),
        };
        let default = if default == "``" {
            "empty".into()
        } else {
            default
        };
        // A `|` inside a cell would end it.
        let (default, meaning) = (default.replace('|', "\\|"), meaning.replace('|', "\\|"));
        rows.push(format!(
            "| `{}` | `{}` | {default} | {meaning} |",
            env.to_string_lossy(),
            arg.get_id()
        ));
    }
    rows.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn load(args: &[&str], file: Option<&Path>) -> Result<Settings, ConfigError> {
        let matches = Cli::command()
            .try_get_matches_from(std::iter::once("twofa").chain(args.iter().copied()))
            .unwrap();
        let parsed = Cli::from_arg_matches(&matches).unwrap().settings;
        Settings::load(parsed, &matches, file)
    }

    #[test]
    fn defaults() {
        let s = load(&[], None).unwrap();
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert!(s.database_url().ends_with("twofa.sqlite3"));
        assert_eq!(
            s.enabled,
            vec!["ucloud", "zstack", "authendpoints", "saasu"]
        );
        assert_eq!(s.zstack.session_timeout, 7200);
        assert!(!s.zstack.twofa_enable);
        assert_eq!(s.ucloud.issuer, "UCloud");
        assert_eq!(s.smtp_url, None);
        assert_eq!(s.body_timeout, 10);
        use twofa_api_authendpoints::Registration;
        assert_eq!(s.authendpoints.registration, Some(Registration::Closed));
        let alone = load(&["--dialects", "authendpoints"], None).unwrap();
        assert_eq!(alone.authendpoints.registration, Some(Registration::Open));
        let set = load(&["--authendpoints-registration", "open"], None).unwrap();
        assert_eq!(set.authendpoints.registration, Some(Registration::Open));
    }

    #[test]
    fn flags_override_file_over_defaults_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twofa.toml");
        std::fs::write(
            &path,
            "bind = \"0.0.0.0:9000\"\ndata_dir = \"/var/lib/twofa\"\n[ucloud]\nissuer = \"Example\"\n[zstack]\nsession_timeout = 60\ntwofa_enable = true\n",
        )
        .unwrap();
        let s = load(
            &["--bind", "127.0.0.1:1", "--zstack-twofa-enable", "false"],
            Some(&path),
        )
        .unwrap();
        assert_eq!(s.bind, "127.0.0.1:1");
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/twofa"));
        assert_eq!(s.ucloud.issuer, "Example");
        assert_eq!(s.zstack.session_timeout, 60);
        assert!(
            !s.zstack.twofa_enable,
            "a flag wins over the file even when it says the default"
        );
        // Settings the file does not name keep their defaults.
        assert_eq!(s.saasu.access_token_ttl, 10800);

        for bad in [
            "bindd = \"x\"\n",
            "[zstack]\nsession_timeot = 1\n",
            "[zstack]\nsession_timeout = \"x\"\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                matches!(load(&[], Some(&path)), Err(ConfigError::Invalid(..))),
                "{bad}"
            );
        }
        assert!(matches!(
            load(&[], Some(&dir.path().join("none.toml"))),
            Err(ConfigError::Read(..))
        ));
    }

    #[test]
    fn every_flag_id_is_its_toml_path() {
        use clap::Args;
        let all = serde_json::to_value(Settings {
            database_url: Some("x".into()),
            dialects: Some("x".into()),
            admin_password: Some("x".into()),
            master_key: Some("x".into()),
            jwt_key: Some("x".into()),
            previous_master_keys: Some("x".into()),
            previous_jwt_keys: Some("x".into()),
            smtp_url: Some("x".into()),
            sms_webhook_url: Some("x".into()),
            sms_webhook_token: Some("x".into()),
            workers: Some(1),
            pool_size: Some(1),
            metrics: MetricsSettings {
                bind: Some("x".into()),
            },
            authendpoints: AuthEndpointsSettings {
                templates: Some("x".into()),
                registration: Some(twofa_api_authendpoints::Registration::Open),
                ..Default::default()
            },
            saasu: SaasuSettings {
                public_url: Some("x".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
        let command = Settings::augment_args(clap::Command::new("twofa"));
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let found = id.split('.').try_fold(&all, |v, key| v.get(key));
            assert!(found.is_some(), "flag id {id} is not a TOML key");
            assert!(arg.get_env().is_some(), "{id} has no TWOFA_* variable");
        }
    }

    #[test]
    fn readme_table_matches_the_code() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap();
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README's settings table is out of date; it must read:\n{table}"
        );
    }

    #[test]
    fn log_and_metrics_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twofa.toml");
        let d = load(&[], None).unwrap();
        assert_eq!(
            (d.log.filter.as_str(), d.log.format),
            ("info", LogFormat::Text)
        );
        assert_eq!(d.metrics.bind, None);
        std::fs::write(
            &path,
            "[log]\nformat = \"json\"\n[metrics]\nbind = \"127.0.0.1:9100\"\n",
        )
        .unwrap();
        let s = load(&["--log", "debug"], Some(&path)).unwrap();
        assert_eq!(
            (s.log.filter.as_str(), s.log.format),
            ("debug", LogFormat::Json)
        );
        assert_eq!(s.metrics.bind.as_deref(), Some("127.0.0.1:9100"));
        // The key before `[log]` was a table.
        std::fs::write(&path, "log = \"warn\"\n").unwrap();
        let s = load(&[], Some(&path)).unwrap();
        assert_eq!(
            (s.log.filter.as_str(), s.log.format),
            ("warn", LogFormat::Text)
        );
        std::fs::write(&path, "[log]\nformt = \"json\"\n").unwrap();
        assert!(matches!(
            load(&[], Some(&path)),
            Err(ConfigError::Invalid(..))
        ));
        let flags = load(
            &["--log-format", "json", "--metrics-bind", "127.0.0.1:1"],
            None,
        )
        .unwrap();
        assert_eq!(flags.log.format, LogFormat::Json);
        assert_eq!(flags.metrics.bind.as_deref(), Some("127.0.0.1:1"));
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
        let flag = path.to_str().unwrap();
        let ae = load(&["--authendpoints-templates", flag], None)
            .unwrap()
            .authendpoints;
        assert_eq!(ae.login_mail.body, "Code: {code}");
        assert_eq!(
            ae.enable_2fa_mail.subject,
            AuthEndpointsSettings::default().enable_2fa_mail.subject
        );
        std::fs::write(&path, "[logn]\nsubject = \"x\"\nbody = \"y\"\n").unwrap();
        assert!(matches!(
            load(&["--authendpoints-templates", flag], None),
            Err(ConfigError::Parse(..))
        ));
    }

    #[test]
    fn dialect_list() {
        assert_eq!(
            load(&["--dialects", " ucloud ,"], None).unwrap().enabled,
            vec!["ucloud"]
        );
        assert!(matches!(
            load(&["--dialects", "ucloud,nope"], None),
            Err(ConfigError::UnknownDialect(..))
        ));
    }
}
