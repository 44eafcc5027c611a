//! Group commit for accepted alerts.
//!
//! Every press hands its sealed rows to one writer task and waits. The task
//! takes everything waiting in its queue, writes it in one transaction (one
//! fsync), and answers each press only after that commit returned. While a
//! commit is on disk the next presses queue up, so under load batches grow by
//! themselves and the accept rate does not fall with the disk's fsync time.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use avisa_store::{AlertInsert, Inserted, Store, StoreError};

/// The most alerts one transaction takes.
const MAX_BATCH: usize = 512;

type Job = (
    AlertInsert,
    oneshot::Sender<Result<Inserted, Arc<StoreError>>>,
);

/// The handle presses use to reach the writer task.
#[derive(Clone)]
pub struct AlertWriter {
    tx: mpsc::Sender<Job>,
}

impl AlertWriter {
    /// Starts the writer task. `committed` is notified after every commit
    /// (the dispatcher waits on it).
    pub fn spawn(store: Store, committed: Arc<Notify>) -> AlertWriter {
        let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * 8);
        tokio::spawn(run(store, rx, committed));
        AlertWriter { tx }
    }

    /// Writes one alert durably (shared with concurrent presses).
    pub async fn write(&self, alert: AlertInsert) -> Result<Inserted, Arc<StoreError>> {
        let (done_tx, done_rx) = oneshot::channel();
        self.tx
            .send((alert, done_tx))
            .await
            .map_err(|_| Arc::new(StoreError::NotFound))?;
        done_rx.await.map_err(|_| Arc::new(StoreError::NotFound))?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>, committed: Arc<Notify>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (batch, replies): (Vec<AlertInsert>, Vec<_>) = jobs.drain(..).unzip();
        metrics::histogram!("avisa_group_commit_size").record(batch.len() as f64);
        let started = std::time::Instant::now();
        let written = store.insert_alerts(&batch).await;
        metrics::histogram!("avisa_group_commit_seconds").record(started.elapsed().as_secs_f64());
        match written {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) if batch.len() > 1 => {
                // One bad alert must not fail its neighbours: write each
                // alone, so only the faulty one is refused.
                tracing::warn!(error = %e, size = batch.len(), "group commit failed; writing alerts one by one");
                for (alert, reply) in batch.into_iter().zip(replies) {
                    let result = store
                        .insert_alerts(std::slice::from_ref(&alert))
                        .await
                        .map(|mut r| r.remove(0))
                        .map_err(Arc::new);
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        committed.notify_one();
    }
}
