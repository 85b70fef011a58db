//! The group-commit writer between the scheduler and the [`Store`].
//!
//! The scheduler hands over a [`Batch`] of changes and effects; the writer
//! commits its changes in one transaction, and only then runs its effects
//! (frames to agents, answers to callers) in order. One batch waits in the
//! channel while another commits; the turns the scheduler takes meanwhile go
//! into its own next batch ([`Writer::try_submit`]), so under load one commit
//! carries every turn since the last one, and the scheduler never waits for
//! the database until that batch holds [`MAX_PENDING_CHANGES`] changes.
//!
//! Before, the channel held 64 batches of one turn each: under load it was
//! full at every commit, and the scheduler, blocked on it, stopped reading
//! agents' frames until the commit ended (dispatch benchmark: 10,800 tasks/s,
//! the writer always busy with 25 ms commits of about 1,300 changes).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::metrics::WriterMetrics;
use crate::storage::StorageSignals;
use crate::store::{Change, Store};

/// Something to do once the changes before it are durable.
pub(crate) type Effect = Box<dyn FnOnce() + Send>;

/// The changes of one scheduler turn and the effects that wait for them.
#[derive(Default)]
pub(crate) struct Batch {
    /// State changes, in the order they happened.
    pub changes: Vec<Change>,
    /// What to do after they commit, in order.
    pub effects: Vec<Effect>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.effects.is_empty()
    }
}

/// The writer stopped; the store failed for good.
#[derive(Debug)]
pub(crate) struct WriterStopped;

/// The scheduler's end of the writer.
pub(crate) struct Writer {
    /// Batches on their way to the writer task: one at most. What the
    /// scheduler gathers meanwhile is bounded by [`MAX_PENDING_CHANGES`], so a
    /// slow database slows the scheduler down instead of growing memory
    /// without limit.
    batches: mpsc::Sender<Batch>,
}

/// Most changes committed in one transaction; more waiting batches go in the next.
const MAX_CHANGES_PER_COMMIT: usize = 20_000;

/// Changes the scheduler gathers while the writer is busy before it waits for
/// the writer: the bound on what a slow database lets pile up in memory.
pub(crate) const MAX_PENDING_CHANGES: usize = MAX_CHANGES_PER_COMMIT;

/// The name of the writer's thread, with [`crate::ControllerConfig::writer_thread`].
pub const WRITER_THREAD: &str = "youmi-writer";

/// Attempts of one commit that fail permanently before the writer gives up
/// and stops the controller. Transient failures are retried without limit.
const COMMIT_ATTEMPTS: u32 = 4;

/// The wait after a commit's first failure; it doubles with each failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
/// The longest wait between two attempts of a commit.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

impl Writer {
    /// Spawns the writer task over `store`: on a thread of its own when
    /// `own_thread` ([`crate::ControllerConfig::writer_thread`]), else on the
    /// caller's runtime. A commit that fails for good sets the failure of
    /// `signals` and ends the task; one that fails transiently is retried
    /// until it succeeds, the store `Degraded` meanwhile.
    pub(crate) fn start<S: Store>(
        store: S,
        signals: Arc<StorageSignals>,
        own_thread: bool,
    ) -> Writer {
        // One batch waits while one commits; see the module doc.
        let (batches, receiver) = mpsc::channel(1);
        let writer = run(store, receiver, signals.clone(), WriterMetrics::register());
        if !own_thread {
            tokio::spawn(writer);
            return Writer { batches };
        }
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::warn!(%error, "cannot build the writer's runtime; it runs with the others");
                tokio::spawn(writer);
                return Writer { batches };
            }
        };
        let spawned = std::thread::Builder::new()
            .name(WRITER_THREAD.to_owned())
            .spawn(move || runtime.block_on(writer));
        if let Err(error) = spawned {
            // The closure, and the store in it, are gone: the scheduler stops.
            tracing::error!(%error, "cannot start the writer's thread");
            signals
                .failure
                .send_replace(Some(format!("cannot start the writer's thread: {error}")));
        }
        Writer { batches }
    }

    /// Hands a batch to the writer, waiting while the writer is behind.
    pub(crate) async fn submit(&self, batch: Batch) -> Result<(), WriterStopped> {
        self.batches.send(batch).await.map_err(|_| WriterStopped)
    }

    /// Hands a batch to the writer if it can take one now; otherwise gives it
    /// back, for the caller to add its next turns to.
    pub(crate) fn try_submit(&self, batch: Batch) -> Result<Option<Batch>, WriterStopped> {
        match self.batches.try_send(batch) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Full(batch)) => Ok(Some(batch)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(WriterStopped),
        }
    }

    /// Waits until the writer can take a batch. The future holds its own
    /// handle on the channel, so the caller may change itself meanwhile.
    pub(crate) fn ready(
        &self,
    ) -> impl Future<Output = Result<mpsc::OwnedPermit<Batch>, WriterStopped>> + 'static {
        let batches = self.batches.clone();
        async move { batches.reserve_owned().await.map_err(|_| WriterStopped) }
    }
}

async fn run<S: Store>(
    store: S,
    mut receiver: mpsc::Receiver<Batch>,
    signals: Arc<StorageSignals>,
    metrics: WriterMetrics,
) {
    let mut changes = Vec::new();
    let mut effects: Vec<Effect> = Vec::new();
    while let Some(first) = receiver.recv().await {
        changes.extend(first.changes);
        effects.extend(first.effects);
        while changes.len() < MAX_CHANGES_PER_COMMIT {
            match receiver.try_recv() {
                Ok(batch) => {
                    changes.extend(batch.changes);
                    effects.extend(batch.effects);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let committed_changes = changes.len();
        if !changes.is_empty() {
            signals.committing(true);
            let committed = commit_with_retries(&store, &changes, &signals, &metrics).await;
            signals.committing(false);
            if let Err(reason) = committed {
                tracing::error!(%reason, changes = changes.len(), "the store failed; stopping the scheduler");
                signals.failure.send_replace(Some(reason));
                // Dropping the effects drops their reply channels, so waiting
                // callers learn that the controller stopped.
                return;
            }
            changes.clear();
            metrics.commit_seconds.record(started.elapsed());
        }
        let commit = started.elapsed();
        let effect_count = effects.len();
        for effect in effects.drain(..) {
            effect();
        }
        // How long commits and their effects take, and how big they are, is
        // what explains the scheduler's throughput (docs/benchmarks.md).
        tracing::trace!(
            changes = committed_changes,
            effects = effect_count,
            commit_us = duration_us(commit),
            effects_us = duration_us(started.elapsed().saturating_sub(commit)),
            "committed"
        );
    }
}

/// Commits `changes`, trying again after each failure with a wait that
/// doubles up to [`MAX_RETRY_DELAY`]: without limit while the failures are
/// transient (the store is `Degraded` meanwhile), up to [`COMMIT_ATTEMPTS`]
/// permanent ones. Each attempt is a fresh transaction; the store closes the
/// connection of a failed one ([`Store::commit`]).
async fn commit_with_retries<S: Store>(
    store: &S,
    changes: &[Change],
    signals: &StorageSignals,
    metrics: &WriterMetrics,
) -> Result<(), String> {
    let mut delay = FIRST_RETRY_DELAY;
    let mut failures = 0u64;
    let mut permanent = 0;
    loop {
        let error = match store.commit(changes).await {
            Ok(()) => {
                if signals.recovered() {
                    tracing::warn!(failures, "the store works again; commits resume");
                }
                return Ok(());
            }
            Err(error) => error,
        };
        metrics.write_errors.increment(1);
        failures += 1;
        if error.is_transient() {
            if failures == 1 {
                tracing::error!(%error, changes = changes.len(), "commit failed; retrying until the store works again, refusing new writes meanwhile");
            } else {
                tracing::warn!(%error, failures, "commit failed again; retrying");
            }
            signals.degraded(error.to_string());
        } else {
            permanent += 1;
            if permanent >= COMMIT_ATTEMPTS {
                return Err(error.to_string());
            }
            tracing::warn!(%error, attempt = permanent, "commit failed; retrying");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

fn duration_us(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
