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

use super::{DbConnection, PooledDb};
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

impl Batcher {
    /// `path` is the SQLite file, opened a second time for background checkpoints: the
    /// writer never stalls on copying the WAL back (PASSIVE checkpoints do not block it).
    pub(crate) fn start(mut conn: PooledDb, path: &str) -> Result<Batcher, CoreError> {
        conn.batch_execute("PRAGMA wal_autocheckpoint = 0")?;
        let alive = Arc::new(());
        let mut checkpointer = SqliteConnection::establish(path)
            .map_err(|e| CoreError::Storage(format!("cannot open database: {e}")))?;
        checkpointer.batch_execute("PRAGMA busy_timeout = 10000")?;
        let watch = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("twofa-checkpoint".into())
            .spawn(move || {
                while watch.upgrade().is_some() {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    if let Err(e) = checkpointer.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
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
        .and_then(|_| conn.batch_execute("COMMIT"))
        .map_err(|e| e.to_string());
    if committed.is_err() {
        let _ = conn.batch_execute("ROLLBACK");
    }
    crate::metrics::batch(jobs, started.elapsed());
    for done in completions {
        done(committed.clone());
    }
}
