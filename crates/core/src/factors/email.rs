//! Two-step verification by email: a row means it is on for the user; every login then
//! needs a code emailed to the user's confirmed address (one-time codes, `codes.rs`).

use diesel::prelude::*;

use crate::audit;
use crate::codes::{self, CodePurpose};
use crate::db::schema::email_factors;
use crate::db::DbConnection;
use crate::users::live_user;
use crate::{Core, CoreError, CoreResult, Origin};

pub(crate) fn enabled(conn: &mut DbConnection, user_id: &str) -> CoreResult<bool> {
    let n: i64 = email_factors::table
        .filter(email_factors::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub(crate) fn delete(conn: &mut DbConnection, user_id: &str) -> CoreResult<()> {
    diesel::delete(email_factors::table.filter(email_factors::user_id.eq(user_id)))
        .execute(conn)?;
    Ok(())
}

impl Core {
    /// Turns on two-step verification by email with a code of purpose
    /// `EnableTwoFactor` that was sent to the user's confirmed address.
    pub async fn enable_email_two_factor(
        &self,
        origin: Origin,
        user_id: String,
        code: String,
    ) -> CoreResult<()> {
        self.run(move |inner, conn| {
            let user = live_user(conn, &user_id)?;
            if enabled(conn, &user.id)? {
                return Err(CoreError::AlreadyBound);
            }
            let purpose = CodePurpose::EnableTwoFactor;
            codes::redeem(inner, conn, &origin, &user, purpose, &code, |conn| {
                diesel::insert_into(email_factors::table)
                    .values((
                        email_factors::user_id.eq(&user.id),
                        email_factors::created_at.eq(inner.now()),
                    ))
                    .execute(conn)?;
                // Codes sent before the change are void, as Identity's stamp rotation did.
                codes::void_all(conn, &user.id)?;
                audit::record(inner, conn, &origin, "email_2fa.enabled", &user, None)
            })
        })
        .await
    }
}
