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
    /// `wal_limit` bytes the writer, between two batches, runs one TRUNCATE checkpoint
    /// itself: most frames are already copied, so it copies the rest and syncs once.
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
        let wal = format!("{path}-wal");
        let wal_size = move || std::fs::metadata(&wal).map_or(0, |m| m.len());
        let checkpointer_wal_size = wal_size.clone();
        std::thread::Builder::new()
            .name("twofa-checkpoint".into())
            .spawn(move || {
                let mut last = std::time::Instant::now();
                while watch.upgrade().is_some() {
                    std::thread::sleep(WAL_POLL);
                    let size = checkpointer_wal_size();
                    // Past the limit it is the writer's turn: a pass of ours would hold
                    // the checkpoint lock its truncation needs.
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
                    // One stat() per batch. While a background pass is still running this
                    // returns at once (busy) and the next batch tries again.
                    if wal_size() > wal_limit {
                        if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)") {
                            tracing::warn!(error = %e, "WAL truncation failed");
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
