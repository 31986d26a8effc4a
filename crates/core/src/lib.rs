//! twofa-core: the domain of the twofa server, over SQLite or PostgreSQL. No HTTP here:
//! dialect crates translate wire formats into calls on [`Core`].
//!
//! Layers, each using only those below it: `accounts` (resets, password changes,
//! deletion) and `login` (every login variant) over `challenges`, `tokens` (sessions,
//! JWTs) and `factors` (the one view of a user's second factors: `totp`, `email`,
//! `sms`), over `codes` (sent one-time codes), `lockout` (every brute-force counter)
//! and `users`; under all of them the plumbing (`db`, `crypto`, `passwords`, `otp`,
//! `clock`, `random`, `delivery`, `audit`). `dialect_state` keeps what one product's
//! wire needs, with no wire text.

// The domain, each rule in one file.
pub mod accounts;
pub mod challenges;
pub mod codes;
pub mod factors;
pub mod import;
pub mod keys;
pub mod lockout;
pub mod login;
pub mod tokens;
pub mod users;
// What one product's wire needs kept, apart from the rules.
pub mod dialect_state;
// Plumbing.
pub mod audit;
pub mod clock;
pub mod crypto;
pub mod db;
pub mod delivery;
pub mod error;
pub mod files;
pub mod metrics;
pub mod otp;
pub mod passwords;
pub mod random;

use std::sync::Arc;

pub use audit::AuditEvent;
pub use challenges::{ChallengeOutcome, TotpSetup};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codes::{CodeFormat, CodePurpose};
pub use delivery::{Channel, MailConfig, SmsConfig, Template};
pub use dialect_state::query;
pub use error::{CoreError, CoreResult};
pub use factors::sms::OptOut;
pub use factors::totp::TotpFactorInfo;
pub use factors::{FactorState, Factors};
pub use login::{CodeLogin, LoginStep, SignIn, SmsLogin};
pub use passwords::Password;
pub use random::{OsRandom, RandomSource, SeededRandom};
pub use tokens::jwt::AccessClaims;
pub use tokens::sessions::Session;
pub use users::{Actor, LoginName, NewUser, User};

use crypto::SecretBox;
use db::{Backend, DbConnection, DbPool};

/// Settings of the core, filled in by the server from its configuration.
#[derive(Clone)]
pub struct CoreConfig {
    pub database_url: String,
    pub pool_size: u32,
    /// AES-256-GCM key for secrets at rest: seals new values. Never stored in the
    /// database.
    pub master_key: [u8; 32],
    /// Master keys that still open (during a rotation), but never seal.
    pub previous_master_keys: Vec<[u8; 32]>,
    /// HS256 key for access tokens: signs new ones.
    pub jwt_key: Vec<u8>,
    /// JWT keys whose tokens are still accepted (until they expire), but never sign.
    pub previous_jwt_keys: Vec<Vec<u8>>,
    pub jwt_issuer: String,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub challenge_ttl: i64,
    /// How messages with codes are delivered.
    pub mail: delivery::MailConfig,
    pub sms: delivery::SmsConfig,
    /// SQLite: the bytes of WAL frames in use past which the writer restarts the WAL
    /// (see `db::batch`).
    pub wal_limit: u64,
}

impl CoreConfig {
    /// Defaults for everything but the database and keys.
    pub fn new(database_url: impl Into<String>, master_key: [u8; 32], jwt_key: Vec<u8>) -> Self {
        let database_url = database_url.into();
        CoreConfig {
            pool_size: Backend::of_url(&database_url).default_pool_size(),
            database_url,
            master_key,
            previous_master_keys: Vec::new(),
            jwt_key,
            previous_jwt_keys: Vec::new(),
            jwt_issuer: "twofa".into(),
            access_token_ttl: 600,
            refresh_token_ttl: 30 * 24 * 3600,
            challenge_ttl: 600,
            mail: delivery::MailConfig::default(),
            sms: delivery::SmsConfig::default(),
            wal_limit: 32 << 20,
        }
    }
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone)]
pub struct Origin {
    pub dialect: String,
    pub ip: Option<String>,
}

impl Origin {
    pub fn new(dialect: impl Into<String>, ip: Option<String>) -> Self {
        Origin {
            dialect: dialect.into(),
            ip,
        }
    }
}

/// The domain service. Cheap to clone; every method that touches the database runs it
/// on tokio's blocking pool, so async callers (actix workers) are never blocked.
#[derive(Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

/// How long a password check may wait for a hashing permit before the caller is told
/// to retry: about 25 hashes' worth per core, far past any honest queue.
pub const HASH_WAIT_MS: u64 = 2000;

pub(crate) struct Inner {
    pub(crate) pool: DbPool,
    /// SQLite: the group-commit thread that runs all database work.
    batcher: Option<db::batch::Batcher>,
    /// One permit per pooled connection: requests beyond that wait here, asynchronously,
    /// instead of parking blocking-pool threads on the pool.
    db_permits: tokio::sync::Semaphore,
    /// One permit per core for password hashing (argon2 takes ~19 MiB and a core's
    /// worth of time each): a flood of logins queues here instead of growing memory.
    hash_permits: tokio::sync::Semaphore,
    pub(crate) backend: Backend,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Arc<dyn RandomSource>,
    pub(crate) secrets: SecretBox,
    pub(crate) delivery: delivery::Delivery,
    pub(crate) cfg: CoreConfig,
}

impl Inner {
    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }
    pub(crate) fn rng(&self) -> &dyn RandomSource {
        &*self.rng
    }
}

impl Core {
    /// Connects, migrates and returns the service.
    pub fn open(
        cfg: CoreConfig,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn RandomSource>,
    ) -> CoreResult<Core> {
        let backend = Backend::of_url(&cfg.database_url);
        let pool_size = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => cfg.pool_size,
        };
        let pool = db::connect(&cfg.database_url, pool_size)?;
        let batcher = match backend {
            Backend::Sqlite => Some(db::batch::Batcher::start(
                pool.get()?,
                db::sqlite_path(&cfg.database_url),
                cfg.wal_limit,
            )?),
            Backend::Postgres => None,
        };
        Ok(Core {
            inner: Arc::new(Inner {
                pool,
                batcher,
                db_permits: tokio::sync::Semaphore::new(pool_size as usize),
                hash_permits: tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                ),
                backend,
                clock,
                rng,
                secrets: SecretBox::with_previous(&cfg.master_key, &cfg.previous_master_keys),
                delivery: delivery::Delivery::new(&cfg.mail, &cfg.sms)?,
                cfg,
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    pub fn now(&self) -> i64 {
        self.inner.now()
    }

    /// Runs blocking database work off the async threads: on SQLite in the next
    /// group-commit batch, on PostgreSQL on the blocking pool with a pooled connection.
    /// Either way the result is returned only once its writes are committed.
    pub(crate) async fn run<T, F>(&self, f: F) -> CoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut DbConnection) -> CoreResult<T> + Send + 'static,
    {
        if let Some(batcher) = &self.inner.batcher {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let inner = self.inner.clone();
            batcher.submit(Box::new(move |conn| {
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&inner, conn)));
                Box::new(move |committed| {
                    let result = match (result, committed) {
                        (Ok(result), Ok(())) => result,
                        (Ok(_), Err(e)) => Err(CoreError::Storage(format!("commit failed: {e}"))),
                        (Err(_), _) => Err(CoreError::Internal("database task panicked".into())),
                    };
                    let _ = reply.send(result);
                })
            }))?;
            return answer
                .await
                .map_err(|_| CoreError::Internal("the database thread dropped a task".into()))?;
        }
        let waiting = std::time::Instant::now();
        let _permit = self
            .inner
            .db_permits
            .acquire()
            .await
            .map_err(|e| CoreError::Internal(format!("database gate closed: {e}")))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.pool.get();
            crate::metrics::pool_wait(waiting.elapsed(), conn.is_ok());
            f(&inner, &mut *conn?)
        })
        .await
        .map_err(|e| CoreError::Internal(format!("blocking task failed: {e}")))?
    }

    /// Runs CPU-heavy work (argon2, QR rendering) off the async threads, without holding
    /// a database connection.
    /// Password hashing, `f`, on the blocking pool under [`Inner::hash_permits`]: a
    /// caller that waits longer than [`HASH_WAIT_MS`] for a permit gets `Busy`.
    pub(crate) async fn hashing<T, F>(&self, f: F) -> CoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> T + Send + 'static,
    {
        let wait = std::time::Duration::from_millis(HASH_WAIT_MS);
        let _permit = tokio::time::timeout(wait, self.inner.hash_permits.acquire())
            .await
            .map_err(|_| CoreError::Busy { retry_after: 1 })?
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        self.cpu(f).await
    }

    pub(crate) async fn cpu<T, F>(&self, f: F) -> CoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> T + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| CoreError::Internal(format!("blocking task failed: {e}")))
    }

    /// Checks that the database answers (for /healthz).
    pub async fn ping(&self) -> CoreResult<()> {
        self.run(|_, conn| {
            use diesel::connection::SimpleConnection;
            conn.batch_execute("SELECT 1").map_err(CoreError::from)
        })
        .await
    }
}
