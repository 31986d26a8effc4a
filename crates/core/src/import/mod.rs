//! Taking over the users of the products this server stands in for: their passwords
//! keep working (the legacy hashes in `passwords::legacy`, replaced by argon2id on the
//! first sign-in), their authenticators keep producing codes that work (the secrets are
//! sealed like any other), their email 2FA stays on.
//!
//! Two halves: [`read`] turns one product's own tables into a [`Source`] (one file per
//! product: `ucloud`, `zstack`, `authendpoints`; connections in `source`), and
//! [`Core::import`] applies it here in one transaction and reports an [`Outcome`] per
//! user. Safe to repeat: users that exist here are left as they are unless
//! [`ImportOptions::update`]; the built-in admin is never touched. Neither half logs or
//! reports a secret or a hash.

mod authendpoints;
mod source;
mod ucloud;
mod zstack;

use diesel::prelude::*;

use crate::audit;
use crate::db::schema::{email_factors, settings, totp_factors, users};
use crate::db::{write_tx, DbConnection};
use crate::factors::{self, email, totp};
use crate::random::random_hex;
use crate::users::{find_by_username, validate_username, UserRow};
use crate::{Core, CoreError, CoreResult, Inner, Origin};

/// The products users can be imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Ucloud,
    Zstack,
    Authendpoints,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Product::Ucloud => "ucloud",
            Product::Zstack => "zstack",
            Product::Authendpoints => "authendpoints",
        }
    }
}

/// A user as the source has them, ready to be created here. No `Debug`: it holds a
/// password hash and a TOTP secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUser {
    pub username: String,
    pub email: Option<String>,
    pub email_confirmed: bool,
    pub phone: Option<String>,
    pub phone_confirmed: bool,
    pub is_admin: bool,
    /// In one of the stored forms of `passwords::legacy`.
    pub password_hash: String,
    pub totp: Option<SourceTotp>,
    /// Codes by email on every login (Identity's `TwoFactorEnabled`).
    pub email_factor: bool,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SourceTotp {
    pub secret: Vec<u8>,
    /// Confirmed by a code in the source; else pending, to be confirmed here.
    pub active: bool,
}

impl SourceTotp {
    /// A source's base32 TOTP secret, if it is one a user's app can be producing codes
    /// for here (80 bits or more, as UCloud and ZStack generated).
    fn from_base32(base32: &str, active: bool) -> Option<SourceTotp> {
        let secret = crate::otp::secret_from_base32(base32)?;
        (secret.len() >= crate::otp::MIN_SECRET_BYTES).then_some(SourceTotp { secret, active })
    }
}

impl SourceUser {
    /// What is carried over, for the report (never a secret).
    fn factors_note(&self) -> String {
        let mut parts = Vec::new();
        match &self.totp {
            Some(t) if t.active => parts.push("totp active"),
            Some(_) => parts.push("totp pending"),
            None => {}
        }
        if self.email_factor {
            parts.push("email 2fa");
        }
        if self.is_admin {
            parts.push("admin");
        }
        match parts.is_empty() {
            true => "password only".into(),
            false => parts.join(", "),
        }
    }
}

/// One record of the source: a user to import, or one that is not, and why.
#[derive(Clone)]
pub enum Record {
    User(SourceUser),
    Left {
        username: String,
        outcome: Outcome,
        why: String,
    },
}

/// What a product's tables hold, read by [`read`].
#[derive(Clone)]
pub struct Source {
    pub product: Product,
    pub records: Vec<Record>,
    /// Server-wide settings the product keeps (ZStack's `twofa.enable`).
    pub settings: Vec<(String, String)>,
}

/// Reads `product`'s tables at `url` (`postgres://…`, `mysql://…`, or a SQLite file).
/// Blocking; nothing is written to the source.
pub fn read(product: Product, url: &str) -> CoreResult<Source> {
    let mut db = source::SourceDb::open(url)?;
    let (mut records, settings) = match product {
        Product::Ucloud => (ucloud::read(&mut db)?, Vec::new()),
        Product::Zstack => zstack::read(&mut db)?,
        Product::Authendpoints => (authendpoints::read(&mut db)?, Vec::new()),
    };
    records.sort_by(|a, b| a.username().cmp(b.username()));
    Ok(Source {
        product,
        records,
        settings,
    })
}

impl Record {
    pub fn username(&self) -> &str {
        match self {
            Record::User(u) => &u.username,
            Record::Left { username, .. } => username,
        }
    }

    fn left(username: impl Into<String>, outcome: Outcome, why: impl Into<String>) -> Record {
        Record::Left {
            username: username.into(),
            outcome,
            why: why.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Report what would happen; change nothing.
    pub dry_run: bool,
    /// Users that exist here take the source's password and factors.
    pub update: bool,
}

/// What happened to one source record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Created,
    Updated,
    /// Exists here already with the source's password and factors (`--update`).
    Unchanged,
    /// Exists here already; left exactly as it is (no `--update`).
    Exists,
    /// The product's built-in admin, or this server's own `admin`: never touched.
    BuiltinAdmin,
    /// Not a user this server carries (a service principal, a federated login, …).
    Skipped,
    /// Malformed in the source (a hash or secret that cannot be used): not imported.
    Invalid,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Unchanged,
        Outcome::Exists,
        Outcome::BuiltinAdmin,
        Outcome::Skipped,
        Outcome::Invalid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Exists => "exists",
            Outcome::BuiltinAdmin => "builtin-admin",
            Outcome::Skipped => "skipped",
            Outcome::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub username: String,
    pub outcome: Outcome,
    /// What was carried over, or why not (never a secret).
    pub note: String,
}

/// A setting of the source and what became of it: `set`, `unchanged`, `updated`, or
/// `kept` (this server's differing value, without `--update`).
#[derive(Debug, Clone)]
pub struct SettingEntry {
    pub key: String,
    pub value: String,
    pub outcome: &'static str,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub product: Product,
    pub dry_run: bool,
    pub entries: Vec<Entry>,
    pub settings: Vec<SettingEntry>,
}

impl Summary {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.entries.iter().filter(|e| e.outcome == outcome).count()
    }

    /// `created 2, updated 0, …`: every outcome, in a fixed order.
    pub fn counts_line(&self) -> String {
        Outcome::ALL
            .iter()
            .map(|o| format!("{} {}", o.name(), self.count(*o)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether `row` is this server's own built-in admin, which an import never changes.
fn is_own_admin(row: &UserRow) -> bool {
    row.username == "admin" && row.is_admin
}

impl Core {
    /// Applies `source` here, all of it in one transaction: a failure part-way leaves
    /// nothing imported. Every imported or updated user gets an audit event.
    pub async fn import(
        &self,
        origin: Origin,
        source: Source,
        options: ImportOptions,
    ) -> CoreResult<Summary> {
        self.run(move |inner, conn| {
            write_tx(conn, |conn| apply(inner, conn, &origin, &source, options))
        })
        .await
    }
}

fn apply(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    source: &Source,
    options: ImportOptions,
) -> CoreResult<Summary> {
    let product = source.product.name();
    let mut entries = Vec::with_capacity(source.records.len());
    for record in &source.records {
        let entry = match record {
            Record::Left {
                username,
                outcome,
                why,
            } => Entry {
                username: username.clone(),
                outcome: *outcome,
                note: why.clone(),
            },
            Record::User(user) => apply_user(inner, conn, origin, product, user, options)?,
        };
        entries.push(entry);
    }
    let mut settings_done = Vec::new();
    for (key, value) in &source.settings {
        let outcome = apply_setting(inner, conn, origin, product, key, value, options)?;
        settings_done.push(SettingEntry {
            key: key.clone(),
            value: value.clone(),
            outcome,
        });
    }
    Ok(Summary {
        product: source.product,
        dry_run: options.dry_run,
        entries,
        settings: settings_done,
    })
}

fn apply_user(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    product: &str,
    user: &SourceUser,
    options: ImportOptions,
) -> CoreResult<Entry> {
    let entry = |outcome, note: String| Entry {
        username: user.username.clone(),
        outcome,
        note,
    };
    if let Err(CoreError::InvalidUsername(why)) = validate_username(&user.username) {
        return Ok(entry(Outcome::Invalid, why.into()));
    }
    let existing = find_by_username(conn, &user.username)?;
    match existing {
        Some(row) if is_own_admin(&row) => Ok(entry(
            Outcome::BuiltinAdmin,
            "this server's own admin: left untouched".into(),
        )),
        None => {
            if !options.dry_run {
                let row = UserRow {
                    id: random_hex(inner.rng(), 16),
                    username: user.username.clone(),
                    email: user.email.clone(),
                    email_confirmed: user.email_confirmed,
                    phone: user.phone.clone(),
                    phone_confirmed: user.phone_confirmed,
                    password_hash: Some(user.password_hash.clone()),
                    is_admin: user.is_admin,
                    disabled: false,
                    created_at: inner.now(),
                };
                diesel::insert_into(users::table)
                    .values(&row)
                    .execute(conn)?;
                insert_factors(inner, conn, &row.id, user)?;
                let detail = format!("from {product}: {}", user.factors_note());
                audit::record(inner, conn, origin, "user.imported", &row, Some(&detail))?;
            }
            Ok(entry(Outcome::Created, user.factors_note()))
        }
        Some(_) if !options.update => Ok(entry(
            Outcome::Exists,
            "exists here: left as it is (--update replaces its password and factors)".into(),
        )),
        Some(row) => {
            if same_as_source(inner, conn, &row, user)? {
                return Ok(entry(Outcome::Unchanged, user.factors_note()));
            }
            if !options.dry_run {
                diesel::update(users::table.find(&row.id))
                    .set(users::password_hash.eq(&user.password_hash))
                    .execute(conn)?;
                factors::remove_all(conn, &row.id)?;
                insert_factors(inner, conn, &row.id, user)?;
                let detail = format!("from {product}: {}", user.factors_note());
                audit::record(
                    inner,
                    conn,
                    origin,
                    "user.import_updated",
                    &row,
                    Some(&detail),
                )?;
            }
            Ok(entry(Outcome::Updated, user.factors_note()))
        }
    }
}

/// The source's factors for a user that has none here (yet, or any more).
fn insert_factors(
    inner: &Inner,
    conn: &mut DbConnection,
    user_id: &str,
    user: &SourceUser,
) -> CoreResult<()> {
    let now = inner.now();
    if let Some(t) = &user.totp {
        let id = random_hex(inner.rng(), 16);
        let sealed = inner.secrets.seal(inner.rng(), &id, &t.secret);
        diesel::insert_into(totp_factors::table)
            .values((
                totp_factors::id.eq(&id),
                totp_factors::user_id.eq(user_id),
                totp_factors::secret_sealed.eq(&sealed),
                totp_factors::active.eq(t.active),
                totp_factors::last_step.eq(-1i64),
                totp_factors::created_at.eq(now),
                totp_factors::activated_at.eq(t.active.then_some(now)),
            ))
            .execute(conn)?;
    }
    if user.email_factor {
        diesel::insert_into(email_factors::table)
            .values((
                email_factors::user_id.eq(user_id),
                email_factors::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Whether the user here has exactly the source's password hash and factors.
fn same_as_source(
    inner: &Inner,
    conn: &mut DbConnection,
    row: &UserRow,
    user: &SourceUser,
) -> CoreResult<bool> {
    if row.password_hash.as_deref() != Some(user.password_hash.as_str())
        || email::enabled(conn, &row.id)? != user.email_factor
        || crate::factors::sms::active(conn, &row.id)?
    {
        return Ok(false);
    }
    let here = match totp::factor_of(conn, &row.id)? {
        Some(f) => Some(SourceTotp {
            secret: inner.secrets.open(&f.id, &f.secret_sealed)?,
            active: f.active,
        }),
        None => None,
    };
    Ok(here == user.totp)
}

fn apply_setting(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    product: &str,
    key: &str,
    value: &str,
    options: ImportOptions,
) -> CoreResult<&'static str> {
    let current: Option<String> = settings::table
        .find(key)
        .select(settings::value)
        .get_result(conn)
        .optional()?;
    let outcome = match current.as_deref() {
        Some(v) if v == value => return Ok("unchanged"),
        Some(_) if !options.update => return Ok("kept"),
        Some(_) => "updated",
        None => "set",
    };
    if !options.dry_run {
        let now = inner.now();
        diesel::delete(settings::table.find(key)).execute(conn)?;
        diesel::insert_into(settings::table)
            .values((
                settings::key.eq(key),
                settings::value.eq(value),
                settings::updated_at.eq(now),
            ))
            .execute(conn)?;
        let change = format!("{key}={value} (from {product})");
        audit::record(inner, conn, origin, "setting.changed", None, Some(&change))?;
    }
    Ok(outcome)
}
