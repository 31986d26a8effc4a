//! `twofa`: the server binary and its operator commands.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use twofa_core::{import, Actor, NewUser, Origin};
use twofa_server::config::{LogFormat, LogSettings};
use twofa_server::{dialects, ServerError, Settings};

/// mimalloc: the request path allocates a lot across threads, where glibc malloc
/// spent about a tenth of the CPU in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "twofa",
    version,
    about = "A two-factor authentication server that speaks the 2FA APIs of UCloud, ZStack, AuthEndpoints and Saasu."
)]
struct Cli {
    /// TOML file with the same keys as the flags (flags and TWOFA_* variables win).
    #[arg(long, env = "TWOFA_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the enabled dialects.
    Serve,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Write the OpenAPI document of each enabled dialect to DIR/<dialect>.json.
    Openapi {
        #[arg(long)]
        out: PathBuf,
    },
    /// Rotate keys (see the README's "Rotating keys").
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Import users with their passwords and second factors from the original
    /// product's own database (repeatable: existing users are left as they are).
    Import {
        product: ImportProduct,
        /// The product's database: postgres://…, mysql://… or the path of a SQLite file.
        #[arg(long = "from", env = "TWOFA_IMPORT_FROM", hide_env_values = true)]
        from: String,
        /// Report what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Users that exist here take the source's password and factors.
        #[arg(long)]
        update: bool,
    },
    /// Print the audit log, newest first, as JSON lines.
    Audit {
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random key (64 hex digits) for `master_key` or `jwt_key`.
    Generate,
    /// Re-seal every secret under the current master key, while the previous keys
    /// still decrypt. Safe while servers serve (row by row); a rerun changes nothing.
    Rotate,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        admin: bool,
        /// A Saasu file the user may reach (repeatable) [default: one fresh file]
        #[arg(long = "file-id")]
        file_ids: Vec<i64>,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove a user's second factors so they can enroll again.
    #[command(name = "reset-2fa")]
    Reset2fa { username: String },
    /// List users.
    List,
    /// Issue a Saasu web-service access key for one of the user's files; it is
    /// printed once and stored hashed.
    #[command(name = "ws-key")]
    WsKey {
        #[arg(long)]
        username: String,
        #[arg(long)]
        file_id: i64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportProduct {
    Ucloud,
    Zstack,
    Authendpoints,
}

impl From<ImportProduct> for import::Product {
    fn from(p: ImportProduct) -> Self {
        match p {
            ImportProduct::Ucloud => import::Product::Ucloud,
            ImportProduct::Zstack => import::Product::Zstack,
            ImportProduct::Authendpoints => import::Product::Authendpoints,
        }
    }
}

/// Reads the source off the async threads, applies it, prints one line per record and
/// the counts by outcome.
async fn import_users(
    settings: &Settings,
    product: import::Product,
    from: String,
    options: import::ImportOptions,
) -> Result<(), ServerError> {
    let core = twofa_server::open_core(settings)?;
    let source = tokio::task::spawn_blocking(move || import::read(product, &from))
        .await
        .map_err(|e| ServerError::Core(twofa_core::CoreError::Internal(e.to_string())))??;
    let summary = core.import(operator(), source, options).await?;
    let mode = if summary.dry_run {
        " (dry run: nothing was changed)"
    } else {
        ""
    };
    println!("import from {}{mode}", product.name());
    for e in &summary.entries {
        println!("{:<14}{}\t{}", e.outcome.name(), e.username, e.note);
    }
    for s in &summary.settings {
        println!("setting {}={}: {}", s.key, s.value, s.outcome);
    }
    println!("summary: {}", summary.counts_line());
    Ok(())
}

fn operator() -> Origin {
    Origin::new("cli", None)
}

/// The log on standard error: text, or one JSON object per line (the event's fields at
/// the top level beside `timestamp`, `level`, `target` and `message`).
fn init_logging(log: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn serve(settings: Settings) -> Result<(), ServerError> {
    let core = twofa_server::open_core(&settings)?;
    if let Some(password) = core
        .ensure_admin(Origin::new("server", None), settings.admin_password.clone())
        .await?
    {
        // For the operator to sign in with, in a private file: never in the log, which
        // is shipped elsewhere. Change it, or set TWOFA_ADMIN_PASSWORD.
        use std::io::Write;
        let path = settings.data_dir.join("admin-password");
        let mut file = twofa_core::files::private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.write_all(format!("{password}\n").as_bytes())?;
        tracing::warn!(path = %path.display(), "created user `admin`; its generated password is in this file (read it, then delete it)");
    }
    let (server, addrs) = twofa_server::bind(core, &settings)?;
    tracing::info!(?addrs, dialects = ?settings.enabled, backend = ?twofa_core::db::Backend::of_url(&settings.database_url()), "twofa listening");
    server.await?;
    tracing::info!("twofa stopped");
    Ok(())
}

async fn run(cli: Cli, matches: clap::ArgMatches) -> Result<(), ServerError> {
    let settings = Settings::load(cli.settings, &matches, cli.config.as_deref())?;
    init_logging(&settings.log);
    if matches!(cli.command, Command::Serve) {
        // Before the core records anything.
        twofa_server::telemetry::exporter();
    }
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Openapi { out } => {
            std::fs::create_dir_all(&out)?;
            for name in &settings.enabled {
                let dialect = dialects::find(name).expect("settings hold built dialects");
                let path = out.join(format!("{name}.json"));
                std::fs::write(&path, twofa_server::openapi_json(dialect))?;
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::User(cmd) => {
            let core = twofa_server::open_core(&settings)?;
            match cmd {
                UserCommand::Add {
                    username,
                    email,
                    phone,
                    admin,
                    file_ids,
                    password_stdin: _,
                } => {
                    let mut password = String::new();
                    std::io::stdin().read_to_string(&mut password)?;
                    let password = password.lines().next().unwrap_or("").to_string();
                    if password.is_empty() {
                        return Err(ServerError::Usage("empty password on standard input"));
                    }
                    let user = core
                        .create_user(
                            operator(),
                            NewUser {
                                username,
                                email,
                                phone,
                                password: Some(password),
                                is_admin: admin,
                            },
                        )
                        .await?;
                    let files = core
                        .add_user_files(operator(), user.id.clone(), file_ids)
                        .await?;
                    let files: Vec<String> = files.iter().map(i64::to_string).collect();
                    println!(
                        "created user {} ({}), files {}",
                        user.username,
                        user.id,
                        files.join(",")
                    );
                }
                UserCommand::Reset2fa { username } => {
                    core.reset_second_factors(operator(), Actor::Operator, username.clone())
                        .await?;
                    println!("second factors of {username} removed");
                }
                UserCommand::List => {
                    for u in core.list_users().await? {
                        let mfa = core.second_factors(u.id.clone()).await?.any();
                        println!(
                            "{}\t{}\t{}{}{}",
                            u.username,
                            u.email.as_deref().unwrap_or("-"),
                            if u.is_admin { "admin " } else { "" },
                            if mfa { "2fa" } else { "no-2fa" },
                            if u.disabled { " disabled" } else { "" }
                        );
                    }
                }
                UserCommand::WsKey { username, file_id } => {
                    let key = core.issue_ws_key(operator(), username, file_id).await?;
                    println!("{key}");
                }
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Generate) => {
            println!(
                "{}",
                twofa_core::crypto::generate_key(&twofa_core::OsRandom)
            );
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let core = twofa_server::open_core(&settings)?;
            let r = core.rotate_keys(operator()).await?;
            println!(
                "master key {}: {} of {} TOTP secrets re-sealed, {} already under it",
                r.master_key_id,
                r.resealed,
                r.secrets,
                r.secrets - r.resealed - r.unreadable
            );
            if let Some(expire) = r.old_job_results_expire {
                println!(
                    "{} job results sealed under older keys cannot be re-sealed; the last expires at {} (Unix time): keep the previous master keys until then",
                    r.old_job_results, expire
                );
            }
            println!(
                "JWT key {} signs new tokens; tokens signed with previous JWT keys are accepted until they expire",
                r.jwt_key_id
            );
            if r.unreadable > 0 {
                return Err(ServerError::Rotation(r.unreadable));
            }
            Ok(())
        }
        Command::Import {
            product,
            from,
            dry_run,
            update,
        } => {
            let options = import::ImportOptions { dry_run, update };
            import_users(&settings, product.into(), from, options).await
        }
        Command::Audit { user, limit } => {
            let core = twofa_server::open_core(&settings)?;
            for event in core.audit_events(user, limit).await? {
                println!("{}", serde_json::to_string(&event).unwrap_or_default());
            }
            Ok(())
        }
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli, matches).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twofa: {e}");
            ExitCode::FAILURE
        }
    }
}
