//! Server-wide settings kept in the database, so every instance sharing it agrees
//! (ZStack's global config `twofa.enable`, for one).

use diesel::prelude::*;

use crate::audit;
use crate::db::schema::settings;
use crate::db::write_tx;
use crate::users::{find_by_id, require_admin, UserRow};
use crate::{Actor, Core, CoreResult, Origin};

impl Core {
    /// The value of `key`, or `None` when it was never set.
    pub async fn setting(&self, key: String) -> CoreResult<Option<String>> {
        self.run(move |_, conn| {
            Ok(settings::table
                .find(&key)
                .select(settings::value)
                .get_result(conn)
                .optional()?)
        })
        .await
    }

    /// Sets `key` to `value`; admins only.
    pub async fn set_setting(
        &self,
        origin: Origin,
        actor: Actor,
        key: String,
        value: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            write_tx(conn, |conn| {
                require_admin(conn, &actor)?;
                let who = match &actor {
                    Actor::User(id) => find_by_id(conn, id)?,
                    Actor::Operator => None,
                };
                let now = inner.now();
                let updated = diesel::update(settings::table.find(&key))
                    .set((settings::value.eq(&value), settings::updated_at.eq(now)))
                    .execute(conn)?;
                if updated == 0 {
                    diesel::insert_into(settings::table)
                        .values((
                            settings::key.eq(&key),
                            settings::value.eq(&value),
                            settings::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                }
                let change = format!("{key}={value}");
                audit::record(
                    inner,
                    conn,
                    &origin,
                    "setting.changed",
                    who.as_ref().map(UserRow::subject),
                    Some(&change),
                )
            })
        })
        .await
    }
}
