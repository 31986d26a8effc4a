//! Users: creation, lookups, the admin check. Passwords are checked in `login.rs`.

use diesel::prelude::*;
use serde::Serialize;

use crate::audit::{self, Subject};
use crate::db::schema::users;
use crate::db::{write_tx, DbConnection};
use crate::lockout::{self, PASSWORD, PASSWORD_BY_CLIENT};
use crate::passwords::{
    dummy_password_hash, hash_password, needs_upgrade, verify_password, Password,
};
use crate::random::{random_hex, random_uuid};
use crate::{Core, CoreError, CoreResult, Inner, Origin};

// Both backends have lower(); addresses are compared case-insensitively (ASCII letters:
// what SQLite's lower() folds).
diesel::define_sql_function!(fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>);

/// A user as the rest of the system sees it: never with the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_confirmed: bool,
    pub phone: Option<String>,
    pub phone_confirmed: bool,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
}

impl<'a> From<&'a User> for Option<Subject<'a>> {
    fn from(u: &'a User) -> Self {
        Some(Subject {
            id: &u.id,
            name: &u.username,
        })
    }
}

impl<'a> From<&'a UserRow> for Option<Subject<'a>> {
    fn from(u: &'a UserRow) -> Self {
        Some(u.subject())
    }
}

impl UserRow {
    pub(crate) fn subject(&self) -> Subject<'_> {
        Subject {
            id: &self.id,
            name: &self.username,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, treat_none_as_null = true)]
pub(crate) struct UserRow {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_confirmed: bool,
    pub phone: Option<String>,
    pub phone_confirmed: bool,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            email: r.email,
            email_confirmed: r.email_confirmed,
            phone: r.phone,
            phone_confirmed: r.phone_confirmed,
            is_admin: r.is_admin,
            disabled: r.disabled,
            created_at: r.created_at,
        }
    }
}

/// What `create_user` needs. A user without a password can only sign in through a
/// dialect that does not use one.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    pub is_admin: bool,
}

/// The name a user signs in with: their username, or, where a dialect's clients send
/// it (Saasu), their username or email address (case-insensitive). A plain `String` is
/// a username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginName {
    pub name: String,
    pub or_email: bool,
}

impl LoginName {
    /// `name` as a username, or else as the email address of exactly one user.
    pub fn username_or_email(name: String) -> Self {
        LoginName {
            name,
            or_email: true,
        }
    }
}

impl From<String> for LoginName {
    fn from(name: String) -> Self {
        LoginName {
            name,
            or_email: false,
        }
    }
}

impl From<&str> for LoginName {
    fn from(name: &str) -> Self {
        name.to_string().into()
    }
}

impl From<&String> for LoginName {
    fn from(name: &String) -> Self {
        name.clone().into()
    }
}

/// The user `login` names: by username, then (when allowed) by email.
fn find_for_login(conn: &mut DbConnection, login: &LoginName) -> CoreResult<Option<UserRow>> {
    match find_by_username(conn, &login.name)? {
        None if login.or_email && login.name.contains('@') => find_by_email(conn, &login.name),
        row => Ok(row),
    }
}

/// Who asks for a privileged operation.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The operator at the command line.
    Operator,
    /// A signed-in user (by id); must be an admin.
    User(String),
}

pub(crate) fn validate_username(username: &str) -> CoreResult<()> {
    if username.is_empty() || username.len() > 255 || username.chars().any(char::is_control) {
        return Err(CoreError::InvalidUsername(
            "username must be 1-255 characters without control characters",
        ));
    }
    Ok(())
}

pub(crate) fn find_by_username(
    conn: &mut DbConnection,
    username: &str,
) -> CoreResult<Option<UserRow>> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// The one user with this email address (case-insensitive), if exactly one has it.
pub(crate) fn find_by_email(conn: &mut DbConnection, email: &str) -> CoreResult<Option<UserRow>> {
    let rows: Vec<UserRow> = users::table
        .filter(lower(users::email).eq(email.trim().to_ascii_lowercase()))
        .select(UserRow::as_select())
        .limit(2)
        .load(conn)?;
    Ok(<[UserRow; 1]>::try_from(rows).ok().map(|[user]| user))
}

/// Locks the user's row until the transaction ends (PostgreSQL; SQLite runs one writer
/// anyway), so that one user's concurrent changes happen in turn.
pub(crate) fn lock_user(conn: &mut DbConnection, id: &str) -> CoreResult<()> {
    diesel::update(users::table.find(id))
        .set(users::id.eq(users::id))
        .execute(conn)?;
    Ok(())
}

pub(crate) fn find_by_id(conn: &mut DbConnection, id: &str) -> CoreResult<Option<UserRow>> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// The user, unless unknown (`UserNotFound`) or disabled (`UserDisabled`).
pub(crate) fn live_user(conn: &mut DbConnection, user_id: &str) -> CoreResult<UserRow> {
    match find_by_id(conn, user_id)? {
        Some(u) if !u.disabled => Ok(u),
        Some(_) => Err(CoreError::UserDisabled),
        None => Err(CoreError::UserNotFound),
    }
}

/// Ensures `actor` may administer other users.
pub(crate) fn require_admin(conn: &mut DbConnection, actor: &Actor) -> CoreResult<()> {
    match actor {
        Actor::Operator => Ok(()),
        Actor::User(id) => match find_by_id(conn, id)? {
            Some(u) if u.is_admin && !u.disabled => Ok(()),
            _ => Err(CoreError::Forbidden),
        },
    }
}

fn insert_user(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    new: NewUser,
    hash: Option<String>,
) -> CoreResult<User> {
    let row = UserRow {
        id: random_hex(inner.rng(), 16),
        username: new.username,
        email: new.email,
        email_confirmed: false,
        phone: new.phone,
        phone_confirmed: false,
        password_hash: hash,
        is_admin: new.is_admin,
        disabled: false,
        created_at: inner.now(),
    };
    write_tx(conn, |conn| {
        diesel::insert_into(users::table)
            .values(&row)
            .execute(conn)
            .map_err(|e| match CoreError::from(e) {
                CoreError::Conflict => CoreError::UserExists,
                other => other,
            })?;
        audit::record(inner, conn, origin, "user.created", &row, None)
    })?;
    Ok(row.into())
}

impl Core {
    pub async fn create_user(&self, origin: Origin, new: NewUser) -> CoreResult<User> {
        validate_username(&new.username)?;
        // Argon2 is deliberately slow: hash before taking a connection.
        let password = new.password.clone();
        let hash = self
            .cpu(move |inner| {
                password
                    .map(|p| hash_password(inner.rng(), &Password::Plain(p)))
                    .transpose()
            })
            .await??;
        self.run(move |inner, conn| insert_user(inner, conn, &origin, new, hash))
            .await
    }

    pub async fn user_by_id(&self, id: String) -> CoreResult<Option<User>> {
        self.run(move |_, conn| Ok(find_by_id(conn, &id)?.map(User::from)))
            .await
    }

    /// The one user with this email address (case-insensitive); `None` when there is
    /// none, or when several share it (ambiguous, so nobody).
    pub async fn user_by_email(&self, email: String) -> CoreResult<Option<User>> {
        self.run(move |_, conn| Ok(find_by_email(conn, &email)?.map(User::from)))
            .await
    }

    pub async fn list_users(&self) -> CoreResult<Vec<User>> {
        self.run(|_, conn| {
            let rows: Vec<UserRow> = users::table
                .order(users::username)
                .select(UserRow::as_select())
                .load(conn)?;
            Ok(rows.into_iter().map(User::from).collect())
        })
        .await
    }

    /// On an empty database, creates `admin` with `password`, or with a random password
    /// that is returned so the caller can show it once.
    pub async fn ensure_admin(
        &self,
        origin: Origin,
        password: Option<String>,
    ) -> CoreResult<Option<String>> {
        let count: i64 = self
            .run(|_, conn| Ok(users::table.count().get_result(conn)?))
            .await?;
        if count > 0 {
            return Ok(None);
        }
        let generated = password.is_none().then(|| random_uuid(&*self.inner.rng));
        let password = password
            .or_else(|| generated.clone())
            .expect("one of them is set");
        let new = NewUser {
            username: "admin".into(),
            password: Some(password),
            is_admin: true,
            ..NewUser::default()
        };
        match self.create_user(origin, new).await {
            Ok(_) => Ok(generated),
            // Another instance on the same database created it first.
            Err(CoreError::UserExists) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks a login name and password under the password brute-force limit (one
    /// limit per user, by username or email). Unknown users cost the same argon2 work
    /// as known ones and give the same error. Argon2
    /// runs between two short database steps, never while holding a connection.
    pub(crate) async fn authenticate(
        &self,
        origin: &Origin,
        login: impl Into<LoginName>,
        password: Password,
    ) -> CoreResult<User> {
        let login = login.into();
        let client = lockout::password_client_key(origin.ip.as_deref());
        let (key, client, row) = self
            .run(move |inner, conn| {
                let row = find_for_login(conn, &login)?;
                // One password limit per user, whichever name they are addressed by,
                // and one per client address, whichever users it tries.
                let name = row.as_ref().map_or(login.name.as_str(), |r| &r.username);
                let key = lockout::password_key(name);
                lockout::check(conn, &key, inner.now())?;
                lockout::check(conn, &client, inner.now())?;
                Ok((key, client, row))
            })
            .await?;
        let hash = row.as_ref().and_then(|r| r.password_hash.clone());
        let (password_ok, upgrade) = self
            .hashing(move |inner| {
                let stored = hash.as_deref().unwrap_or(dummy_password_hash());
                let ok = verify_password(stored, &password);
                // An imported legacy hash is replaced by argon2id on its first success.
                let upgrade = match ok && needs_upgrade(stored) {
                    true => Some((stored.to_string(), hash_password(inner.rng(), &password)?)),
                    false => None,
                };
                Ok::<_, CoreError>((ok, upgrade))
            })
            .await??;
        let origin = origin.clone();
        self.run(move |inner, conn| match row {
            Some(row) if password_ok && !row.disabled => {
                write_tx(conn, |conn| {
                    lockout::clear(conn, &key)?;
                    if let Some((old, new)) = &upgrade {
                        // Only if unchanged meanwhile: a password set since wins.
                        diesel::update(
                            users::table
                                .find(&row.id)
                                .filter(users::password_hash.eq(old)),
                        )
                        .set(users::password_hash.eq(new))
                        .execute(conn)?;
                    }
                    audit::record(inner, conn, &origin, "login.password_ok", &row, None)
                })?;
                Ok(row.into())
            }
            row => {
                write_tx(conn, |conn| {
                    password_failed(inner, conn, &origin, row, (&key, &client))
                })?;
                Err(CoreError::InvalidCredentials)
            }
        })
        .await
    }
}

/// Counts a failed password check against the user (or the name tried) and the client
/// address, and audits it.
fn password_failed(
    inner: &Inner,
    conn: &mut DbConnection,
    origin: &Origin,
    row: Option<UserRow>,
    (key, client): (&str, &str),
) -> CoreResult<()> {
    let detail = match &row {
        Some(r) if r.disabled => "disabled",
        _ => "wrong password or unknown user",
    };
    let subject = row.as_ref().map(UserRow::subject);
    let locked = lockout::record(conn, &PASSWORD, key, inner.now())?;
    let client_locked = lockout::record(conn, &PASSWORD_BY_CLIENT, client, inner.now())?;
    audit::record(
        inner,
        conn,
        origin,
        "login.password_failed",
        subject,
        Some(detail),
    )?;
    for (until, what) in [(locked, "password"), (client_locked, "client address")] {
        if until.is_some() {
            audit::record(inner, conn, origin, "login.locked", subject, Some(what))?;
        }
    }
    Ok(())
}
