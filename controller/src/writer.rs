//! The group-commit writer between the scheduler and the [`Store`].
//!
//! The scheduler hands over one [`Batch`] per turn of its loop; the writer takes
//! every batch waiting at that moment, commits all their changes in one
//! transaction, and only then runs their effects (frames to agents, answers to
//! callers) in order. While a commit is in flight the scheduler keeps working
//! and the next batches pile up, so under load one commit carries many turns.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

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
    /// Batches on their way to the writer task. Bounded, so a slow database
    /// slows the scheduler down instead of growing memory without limit.
    batches: mpsc::Sender<Batch>,
}

/// Most changes committed in one transaction; more waiting batches go in the next.
const MAX_CHANGES_PER_COMMIT: usize = 20_000;

/// Attempts of one commit before the writer gives up and stops the controller.
const COMMIT_ATTEMPTS: u32 = 4;

impl Writer {
    /// Spawns the writer task over `store`. A commit that fails after retries
    /// sets `failure` and ends the task.
    pub(crate) fn start<S: Store>(store: S, failure: Arc<watch::Sender<Option<String>>>) -> Writer {
        let (batches, receiver) = mpsc::channel(64);
        tokio::spawn(run(store, receiver, failure));
        Writer { batches }
    }

    /// Hands a batch to the writer, waiting while the writer is behind.
    pub(crate) async fn submit(&self, batch: Batch) -> Result<(), WriterStopped> {
        self.batches.send(batch).await.map_err(|_| WriterStopped)
    }
}

async fn run<S: Store>(
    store: S,
    mut receiver: mpsc::Receiver<Batch>,
    failure: Arc<watch::Sender<Option<String>>>,
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
        if !changes.is_empty() {
            if let Err(reason) = commit_with_retries(&store, &changes).await {
                tracing::error!(%reason, changes = changes.len(), "the store failed; stopping the scheduler");
                failure.send_replace(Some(reason));
                // Dropping the effects drops their reply channels, so waiting
                // callers learn that the controller stopped.
                return;
            }
            tracing::trace!(
                changes = changes.len(),
                effects = effects.len(),
                "committed"
            );
            changes.clear();
        }
        for effect in effects.drain(..) {
            effect();
        }
    }
}

async fn commit_with_retries<S: Store>(store: &S, changes: &[Change]) -> Result<(), String> {
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match store.commit(changes).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < COMMIT_ATTEMPTS => {
                tracing::warn!(%error, attempt, "commit failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
                attempt += 1;
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}
