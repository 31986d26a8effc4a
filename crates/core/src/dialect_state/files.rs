//! Files a user may reach (Saasu's numeric `FileId`s, granted as `fileid:<n>` scopes)
//! and the legacy web-service access keys that act as a user on one file. Keys are 256
//! random bits shown once; only their SHA-256 is stored.

use diesel::prelude::*;

use crate::audit;
use crate::crypto::hash_token;
use crate::db::schema::{user_files, ws_keys};
use crate::db::{write_tx, DbConnection};
use crate::random::random_hex;
use crate::users::{find_by_id, find_by_username};
use crate::{Core, CoreError, CoreResult, Origin, User};

/// Removes a user's files and keys (inside `delete_user`'s transaction).
pub(crate) fn delete_user_rows(conn: &mut DbConnection, user_id: &str) -> CoreResult<()> {
    diesel::delete(user_files::table.filter(user_files::user_id.eq(user_id))).execute(conn)?;
    diesel::delete(ws_keys::table.filter(ws_keys::user_id.eq(user_id))).execute(conn)?;
    Ok(())
}

fn files_of(conn: &mut DbConnection, user_id: &str) -> CoreResult<Vec<i64>> {
    Ok(user_files::table
        .filter(user_files::user_id.eq(user_id))
        .select(user_files::file_id)
        .order(user_files::file_id.asc())
        .load(conn)?)
}

impl Core {
    /// Grants the user access to `file_ids`; with none, to one fresh file (an id no
    /// user has yet). Returns all the user's files.
    pub async fn add_user_files(
        &self,
        origin: Origin,
        user_id: String,
        file_ids: Vec<i64>,
    ) -> CoreResult<Vec<i64>> {
        if file_ids.iter().any(|&id| id <= 0) {
            return Err(CoreError::InvalidFile("file ids are positive".into()));
        }
        self.run(move |inner, conn| {
            write_tx(conn, |conn| {
                let user = find_by_id(conn, &user_id)?.ok_or(CoreError::UserNotFound)?;
                let mut file_ids = file_ids;
                if file_ids.is_empty() {
                    let max: Option<i64> = user_files::table
                        .select(diesel::dsl::max(user_files::file_id))
                        .get_result(conn)?;
                    file_ids.push(max.unwrap_or(0).max(10_000) + 1);
                }
                let existing = files_of(conn, &user.id)?;
                for id in file_ids.iter().filter(|id| !existing.contains(id)) {
                    diesel::insert_into(user_files::table)
                        .values((user_files::user_id.eq(&user.id), user_files::file_id.eq(id)))
                        .execute(conn)?;
                }
                let granted = format!("{file_ids:?}");
                audit::record(inner, conn, &origin, "files.granted", &user, Some(&granted))?;
                files_of(conn, &user.id)
            })
        })
        .await
    }

    /// The files the user may reach, ascending.
    pub async fn user_files(&self, user_id: String) -> CoreResult<Vec<i64>> {
        self.run(move |_, conn| files_of(conn, &user_id)).await
    }

    /// Issues a web-service access key for `username` on one of their files. The key
    /// is returned once; only its hash is kept.
    pub async fn issue_ws_key(
        &self,
        origin: Origin,
        username: String,
        file_id: i64,
    ) -> CoreResult<String> {
        self.run(move |inner, conn| {
            let key = random_hex(inner.rng(), 32).to_ascii_uppercase();
            write_tx(conn, |conn| {
                let user = find_by_username(conn, &username)?.ok_or(CoreError::UserNotFound)?;
                if !files_of(conn, &user.id)?.contains(&file_id) {
                    return Err(CoreError::InvalidFile(format!(
                        "{username} has no file {file_id}"
                    )));
                }
                diesel::insert_into(ws_keys::table)
                    .values((
                        ws_keys::hash.eq(hash_token(&key)),
                        ws_keys::user_id.eq(&user.id),
                        ws_keys::file_id.eq(file_id),
                        ws_keys::created_at.eq(inner.now()),
                    ))
                    .execute(conn)?;
                let file = format!("file {file_id}");
                audit::record(inner, conn, &origin, "ws_key.issued", &user, Some(&file))?;
                Ok(key)
            })
        })
        .await
    }

    /// The user a web-service access key acts as, if the key is valid for `file_id`
    /// (and the user is enabled and still has the file). Keys match case-insensitively
    /// (they are hex).
    pub async fn ws_key_user(&self, key: String, file_id: i64) -> CoreResult<Option<User>> {
        let hash = hash_token(&key.trim().to_ascii_uppercase());
        self.run(move |_, conn| {
            let owner: Option<(String, i64)> = ws_keys::table
                .find(&hash)
                .select((ws_keys::user_id, ws_keys::file_id))
                .get_result(conn)
                .optional()?;
            let Some((user_id, key_file)) = owner else {
                return Ok(None);
            };
            if key_file != file_id || !files_of(conn, &user_id)?.contains(&file_id) {
                return Ok(None);
            }
            Ok(find_by_id(conn, &user_id)?
                .filter(|u| !u.disabled)
                .map(User::from))
        })
        .await
    }
}
