//! Group commit for SQLite. One thread owns the connection. It takes every job that is
//! waiting, runs them in one `BEGIN IMMEDIATE … COMMIT` (each `write_tx` inside is a
//! savepoint, so a failing one rolls back alone), and only after the COMMIT tells each
//! caller its result: nothing is acknowledged before it is durable, and one commit, one
//! lock and one thread wake-up serve a whole batch.

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use std::cell::Cell;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::{deferred_audit, DbConnection, PooledDb};
use crate::error::CoreError;

/// Called once the batch's COMMIT is done, with its outcome.
pub(crate) type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
pub(crate) type Job = Box<dyn FnOnce(&mut DbConnection) -> Completion + Send>;

/// Most jobs in one transaction, so one batch cannot hold the lock for long.
const MAX_BATCH: usize = 256;

thread_local! {
    /// Set on the batch thread while its transaction is open.
    static IN_BATCH: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn in_batch() -> bool {
    IN_BATCH.with(Cell::get)
}

#[derive(Clone)]
pub(crate) struct Batcher {
    jobs: mpsc::Sender<Job>,
    /// The checkpoint thread runs while this exists.
    _alive: Arc<()>,
}

/// How often the background thread copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// How often the background thread looks at the WAL's size, to start a pass early when
/// it fills fast.
const WAL_POLL: Duration = Duration::from_millis(10);

impl Batcher {
    /// `path` is the SQLite file, opened a second time for background checkpoints: the
    /// writer never stalls on copying the WAL back (PASSIVE checkpoints do not block it).
    ///
    /// Those checkpoints copy the WAL back but never restart it while writes keep
    /// coming: SQLite reuses the WAL from its start only when a write begins after
    /// *every* frame was copied, which under sustained load never happens, so the WAL
    /// (and the cost of every read that searches its index) grew without bound: 500 MiB
    /// in 4 s of user creation. So passes start early when the WAL fills fast, and past
    /// `wal_limit` bytes of frames the writer, between two batches, runs one RESTART
    /// checkpoint itself: most frames are already copied, so it copies the rest and
    /// syncs once, and its next batch writes the WAL from its start again. RESTART, not
    /// TRUNCATE: cutting the file to nothing took as long as the sync (10 ms of the
    /// writer's 23), and the file is rewritten in place instead of grown anew. So the
    /// file stays about `wal_limit` long, and what is measured is the frames in use.
    pub(crate) fn start(
        mut conn: PooledDb,
        path: &str,
        wal_limit: u64,
    ) -> Result<Batcher, CoreError> {
        conn.batch_execute("PRAGMA wal_autocheckpoint = 0")?;
        let alive = Arc::new(());
        let mut checkpointer = SqliteConnection::establish(path)
            .map_err(|e| CoreError::Storage(format!("cannot open database: {e}")))?;
        checkpointer.batch_execute("PRAGMA busy_timeout = 10000")?;
        let watch = Arc::downgrade(&alive);
        let wal_size = wal_in_use(path)?;
        let checkpointer_wal_size = wal_size.clone();
        std::thread::Builder::new()
            .name("twofa-checkpoint".into())
            .spawn(move || {
                let mut last = std::time::Instant::now();
                while watch.upgrade().is_some() {
                    std::thread::sleep(WAL_POLL);
                    let size = checkpointer_wal_size();
                    // Past the limit it is the writer's turn: a pass of ours would hold
                    // the checkpoint lock its restart needs.
                    let due = last.elapsed() >= CHECKPOINT_EVERY || size > wal_limit / 4;
                    if size > wal_limit || !due {
                        continue;
                    }
                    if let Err(e) = checkpointer.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                    last = std::time::Instant::now();
                }
            })
            .map_err(|e| CoreError::Internal(format!("cannot start the checkpoint thread: {e}")))?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("twofa-sqlite".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter().take(MAX_BATCH - 1));
                    run_batch(&mut conn, batch);
                    // One read of the WAL index per batch. While a background pass is
                    // running this returns at once (busy) and the next batch tries again.
                    if wal_size() > wal_limit {
                        if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(RESTART)") {
                            tracing::warn!(error = %e, "WAL restart failed");
                        }
                    }
                }
            })
            .map_err(|e| CoreError::Internal(format!("cannot start the database thread: {e}")))?;
        Ok(Batcher {
            jobs,
            _alive: alive,
        })
    }

    pub(crate) fn submit(&self, job: Job) -> Result<(), CoreError> {
        self.jobs
            .send(job)
            .map_err(|_| CoreError::Internal("the database thread has stopped".into()))
    }
}

/// Bytes of WAL frames in use now, from the wal-index header at the start of the
/// `-shm` file (sqlite.org/walformat.html: bytes 14..16 the page size, 16..20 `mxFrame`,
/// the last valid frame; native byte order), each frame a page and 24 bytes of header.
/// The WAL file's own size says nothing once it is reused in place. A read that races a
/// commit sees the old count or the new one: either is only a hint of when to
/// checkpoint.
fn wal_in_use(path: &str) -> Result<impl Fn() -> u64 + Clone, CoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let shm = std::fs::File::open(format!("{path}-shm"))
        .map_err(|e| CoreError::Storage(format!("cannot open the WAL index: {e}")))?;
    let shm = Arc::new(std::sync::Mutex::new(shm));
    Ok(move || {
        let mut header = [0u8; 6];
        let mut shm = shm.lock().unwrap_or_else(|e| e.into_inner());
        if shm
            .seek(SeekFrom::Start(14))
            .and_then(|_| shm.read_exact(&mut header))
            .is_err()
        {
            return 0;
        }
        // A page size of 65,536 is stored as 1.
        let page = match u16::from_ne_bytes([header[0], header[1]]) {
            1 => 65536,
            size => u64::from(size),
        };
        let frames = u32::from_ne_bytes([header[2], header[3], header[4], header[5]]);
        u64::from(frames) * (page + 24)
    })
}

fn run_batch(conn: &mut DbConnection, batch: Vec<Job>) {
    let (jobs, started) = (batch.len(), std::time::Instant::now());
    let began = conn.batch_execute("BEGIN IMMEDIATE");
    IN_BATCH.with(|b| b.set(began.is_ok()));
    let completions: Vec<Completion> = batch.into_iter().map(|job| job(conn)).collect();
    IN_BATCH.with(|b| b.set(false));
    let committed = began
        .map_err(CoreError::from)
        .and_then(|_| deferred_audit::flush(conn))
        .and_then(|_| Ok(conn.batch_execute("COMMIT")?))
        .map_err(|e| e.to_string());
    if committed.is_err() {
        deferred_audit::discard();
        let _ = conn.batch_execute("ROLLBACK");
    }
    crate::metrics::batch(jobs, started.elapsed());
    for done in completions {
        done(committed.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        log: i32,
    }

    /// The frames read from the WAL index are the frames SQLite itself counts, and once
    /// every frame is copied back the next write uses the WAL from its start, so the
    /// count falls with it (the file's size would not).
    #[test]
    fn wal_in_use_counts_the_frames_sqlite_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let path = path.to_str().unwrap();
        let pool = super::super::connect(path, 1).unwrap();
        let mut conn = pool.get().unwrap();
        conn.batch_execute("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (v BLOB)")
            .unwrap();
        let in_use = wal_in_use(path).unwrap();
        let frames = |conn: &mut DbConnection| {
            diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
                .get_result::<Checkpoint>(conn)
                .unwrap()
                .log as u64
        };
        for _ in 0..50 {
            conn.batch_execute("INSERT INTO t VALUES (randomblob(3000))")
                .unwrap();
        }
        let counted = in_use();
        assert!(counted > 50 * 3000, "{counted} bytes in use");
        assert_eq!(counted, frames(&mut conn) * (4096 + 24));

        conn.batch_execute("PRAGMA wal_checkpoint(RESTART)")
            .unwrap();
        conn.batch_execute("INSERT INTO t VALUES (1)").unwrap();
        assert_eq!(in_use(), frames(&mut conn) * (4096 + 24));
        assert!(in_use() < counted / 10, "the WAL did not restart");
    }
}
