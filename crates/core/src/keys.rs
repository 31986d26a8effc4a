//! Key rotation: every sealed value re-sealed under the current master key, row by
//! row, while servers keep serving (see the README's "Rotating keys").
//!
//! Each page of rows is one short transaction, and each row is rewritten only if it
//! still holds the value that was read (compare and swap), so a concurrent change is
//! never overwritten; a value already under the current key is left alone, so a rerun
//! changes nothing.

use diesel::prelude::*;

use crate::audit::record;
use crate::crypto::key_id;
use crate::db::schema::{api_jobs, totp_factors};
use crate::db::write_tx;
use crate::{Core, CoreResult, Origin};

/// Rows read and rewritten per transaction.
const PAGE: i64 = 200;

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    /// The id of the master key everything is now sealed under.
    pub master_key_id: String,
    /// The id of the JWT key that signs new tokens.
    pub jwt_key_id: String,
    /// Sealed TOTP secrets seen.
    pub secrets: u64,
    /// Of those, re-sealed by this run (the others were under the current key already,
    /// or changed under it meanwhile).
    pub resealed: u64,
    /// Secrets no configured key opens: the key that sealed them is missing.
    pub unreadable: u64,
    /// Job results (ZStack's 202 + poll) sealed under another key. They cannot be
    /// re-sealed, since their associated data is the job id that only the client holds;
    /// they expire within an hour.
    pub old_job_results: u64,
    /// When the last of those expires (Unix seconds).
    pub old_job_results_expire: Option<i64>,
}

#[derive(Default)]
struct Page {
    last: Option<String>,
    rows: u64,
    resealed: u64,
    unreadable: u64,
}

impl Core {
    /// Re-seals every sealed secret under the current master key; see [`Rotation`].
    pub async fn rotate_keys(&self, origin: Origin) -> CoreResult<Rotation> {
        let mut rotation = Rotation {
            master_key_id: self.inner.secrets.current_key_id(),
            jwt_key_id: key_id(&self.inner.cfg.jwt_key),
            ..Rotation::default()
        };
        let mut after = String::new();
        loop {
            let from = after.clone();
            let page = self
                .run(move |inner, conn| {
                    write_tx(conn, |conn| {
                        let rows: Vec<(String, Vec<u8>)> = totp_factors::table
                            .filter(totp_factors::id.gt(&from))
                            .order(totp_factors::id.asc())
                            .limit(PAGE)
                            .select((totp_factors::id, totp_factors::secret_sealed))
                            .load(conn)?;
                        let mut page = Page::default();
                        for (id, sealed) in rows {
                            page.rows += 1;
                            match inner.secrets.reseal(inner.rng(), &id, &sealed) {
                                Ok(Some(resealed)) => {
                                    page.resealed += diesel::update(
                                        totp_factors::table
                                            .filter(totp_factors::id.eq(&id))
                                            .filter(totp_factors::secret_sealed.eq(&sealed)),
                                    )
                                    .set(totp_factors::secret_sealed.eq(&resealed))
                                    .execute(conn)?
                                        as u64;
                                }
                                Ok(None) => {}
                                Err(_) => page.unreadable += 1,
                            }
                            page.last = Some(id);
                        }
                        Ok(page)
                    })
                })
                .await?;
            rotation.secrets += page.rows;
            rotation.resealed += page.resealed;
            rotation.unreadable += page.unreadable;
            match page.last {
                Some(last) if page.rows == PAGE as u64 => after = last,
                _ => break,
            }
        }
        let summary = rotation.clone();
        let (old_jobs, expire) = self
            .run(move |inner, conn| {
                let jobs: Vec<(Vec<u8>, i64)> = api_jobs::table
                    .filter(api_jobs::expires_at.gt(inner.now()))
                    .select((api_jobs::result_sealed, api_jobs::expires_at))
                    .load(conn)?;
                let old: Vec<i64> = jobs
                    .into_iter()
                    .filter(|(sealed, _)| !inner.secrets.names_current_key(sealed))
                    .map(|(_, expires)| expires)
                    .collect();
                let detail = format!(
                    "master key {}: {} of {} secrets re-sealed, {} unreadable",
                    summary.master_key_id, summary.resealed, summary.secrets, summary.unreadable
                );
                record(inner, conn, &origin, "keys_rotated", None, Some(&detail))?;
                Ok((old.len() as u64, old.into_iter().max()))
            })
            .await?;
        rotation.old_job_results = old_jobs;
        rotation.old_job_results_expire = expire;
        Ok(rotation)
    }
}
