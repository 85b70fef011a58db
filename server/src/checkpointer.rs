//! SQLite's WAL checkpoints, run beside the scheduler's writer instead of
//! inside its commits.
//!
//! In WAL mode every commit appends pages to the `-wal` file, and a checkpoint
//! copies them back into the database file. Left to SQLite, the commit that
//! takes the WAL past `wal_autocheckpoint` pages runs the checkpoint itself,
//! so the scheduler's writer, and every task waiting on it, stopped for its
//! whole length: up to 600 ms, disk waits included, in the dispatch
//! benchmark. The [`Checkpointer`] instead runs a `PASSIVE` checkpoint every
//! [`INTERVAL`] on a connection of its own. Such a checkpoint copies what has
//! been committed and takes no lock that a reader or the writer waits for.
//!
//! The WAL starts over only when a commit finds all of it copied, which
//! seldom happens while commits follow each other, so under load it still
//! grows to the `wal_autocheckpoint` mark. The commit that crosses the mark
//! still checkpoints, but has only the pages written since this task's last
//! checkpoint left to copy, and after it the WAL starts over.
//!
//! Dispatch benchmark, SQLite, paired runs: about 12 % more tasks per second
//! (`docs/bench-history.md`, sixth session).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::db::Db;

/// How often the checkpointer copies the WAL back. The dispatch benchmark
/// writes about 12,000 pages of WAL a second; every 50, 100, 200 ms and 1 s
/// all did better than none, 1 s the least.
pub const INTERVAL: Duration = Duration::from_millis(200);

/// The task that checkpoints a SQLite database; see the module doc.
pub struct Checkpointer {
    /// Set to true to stop.
    stop: watch::Sender<bool>,
    /// The checkpoint loop.
    task: JoinHandle<()>,
    /// Pages copied back so far.
    pages: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts checkpointing `db` every `interval`, on its checkpoint
    /// connection. `None` for PostgreSQL, which checkpoints by itself.
    pub fn start(db: &Db, interval: Duration) -> Option<Checkpointer> {
        let pool = db.checkpoints.clone()?;
        let (stop, stopped) = watch::channel(false);
        let pages = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(pool, interval, stopped, pages.clone()));
        Some(Checkpointer { stop, task, pages })
    }

    /// How many WAL pages the checkpointer has copied into the database file,
    /// as far as SQLite's counts tell: pages of a WAL that started over
    /// between two of its checkpoints may be counted short.
    pub fn pages_copied(&self) -> u64 {
        self.pages.load(Ordering::Relaxed)
    }

    /// Stops after the checkpoint in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the checkpointer task failed");
        }
    }
}

#[tracing::instrument(name = "checkpointer", skip_all)]
async fn run(
    pool: AnyPool,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
    pages: Arc<AtomicU64>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The copy already done, as SQLite counts it: it restarts from zero with
    // the WAL, so only growth counts as pages copied.
    let mut last_done = 0;
    // A failure is logged once, until a checkpoint succeeds again.
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        // busy: another checkpoint (the writer's) held the lock; log: pages
        // in the WAL; done: pages of it now in the database file. log and
        // done are -1 when no checkpoint ran (busy, or not in WAL mode).
        let checkpoint = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await;
        match checkpoint {
            Ok((busy, log, done)) => {
                let copied = match done {
                    // Busy, or not in WAL mode: nothing was copied.
                    ..=-1 => 0,
                    _ if done >= last_done => done - last_done,
                    // The WAL started over since the last checkpoint.
                    _ => done,
                };
                if done >= 0 {
                    last_done = done;
                }
                pages.fetch_add(u64::try_from(copied).unwrap_or(0), Ordering::Relaxed);
                tracing::trace!(busy, log, done, copied, "checkpoint");
                if failing {
                    failing = false;
                    tracing::info!("WAL checkpoints work again");
                }
            }
            Err(error) if failing => tracing::debug!(%error, "a WAL checkpoint failed again"),
            Err(error) => {
                failing = true;
                tracing::warn!(%error, "a WAL checkpoint failed; the writer's own checkpoints still bound the WAL");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn copies_committed_pages_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let db = Db::open(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (x TEXT NOT NULL)")
            .execute(&db.write)
            .await
            .unwrap();
        let checkpointer = Checkpointer::start(&db, Duration::from_millis(10)).unwrap();
        for _ in 0..20 {
            sqlx::query("INSERT INTO t (x) VALUES ($1)")
                .bind("x".repeat(4_000))
                .execute(&db.write)
                .await
                .unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while checkpointer.pages_copied() < 20 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} pages copied",
                checkpointer.pages_copied()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        checkpointer.stop().await;
        db.close().await;
    }
}
