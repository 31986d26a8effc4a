//! Results of asynchronous API calls (ZStack's 202 + poll), kept in the database so
//! that any instance can answer the poll. The job id is a bearer credential: only its
//! hash is stored, and the result (which may carry a secret) is sealed with the id as
//! associated data.

use diesel::prelude::*;

use crate::crypto::hash_token;
use crate::db::schema::api_jobs;
use crate::random::random_hex;
use crate::{Core, CoreResult, Origin};

impl Core {
    /// Stores `result` (an opaque, dialect-rendered document) for `ttl` seconds and
    /// returns the new job id (32 hex digits).
    pub async fn store_job_result(
        &self,
        origin: Origin,
        result: String,
        ttl: i64,
    ) -> CoreResult<String> {
        self.run(move |inner, conn| {
            let id = random_hex(inner.rng(), 16);
            let now = inner.now();
            let sealed = inner.secrets.seal(inner.rng(), &id, result.as_bytes());
            diesel::insert_into(api_jobs::table)
                .values((
                    api_jobs::id_hash.eq(hash_token(&id)),
                    api_jobs::dialect.eq(&origin.dialect),
                    api_jobs::result_sealed.eq(&sealed),
                    api_jobs::created_at.eq(now),
                    api_jobs::expires_at.eq(now + ttl),
                ))
                .execute(conn)?;
            // Expired results are dropped as new ones arrive.
            diesel::delete(api_jobs::table.filter(api_jobs::expires_at.le(now))).execute(conn)?;
            Ok(id)
        })
        .await
    }

    /// The result stored for job `id` by the same dialect, unless unknown or expired.
    pub async fn job_result(&self, origin: Origin, id: String) -> CoreResult<Option<String>> {
        self.run(move |inner, conn| {
            let found: Option<Vec<u8>> = api_jobs::table
                .find(hash_token(&id))
                .filter(api_jobs::dialect.eq(&origin.dialect))
                .filter(api_jobs::expires_at.gt(inner.now()))
                .select(api_jobs::result_sealed)
                .get_result(conn)
                .optional()?;
            found
                .map(|sealed| {
                    let plain = inner.secrets.open(&id, &sealed)?;
                    String::from_utf8(plain)
                        .map_err(|_| crate::CoreError::Internal("job result is not UTF-8".into()))
                })
                .transpose()
        })
        .await
    }
}
