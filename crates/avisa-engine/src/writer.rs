//! Group commit for accepted alerts.
//!
//! Every press hands its sealed rows to one writer task and waits. The task
//! takes everything waiting in its queue, writes it in one transaction (one
//! fsync), and answers each press only after that commit returned. While a
//! commit is on disk the next presses queue up, so under load batches grow by
//! themselves and the accept rate does not fall with the disk's fsync time.
//! When the dispatcher has room, a batch's messages are written leased and
//! handed to it in memory after the commit (see [`crate::handoff`]).

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use avisa_store::{Claimed, Inserted, SealedAlert, Store, StoreError};

use avisa_core::messages::CASE_SLOT;

use crate::handoff::Handoff;
use crate::supervisor::TaskCtx;

/// What the commit did with one alert, and the case number it got.
type Written = Result<(Inserted, Option<String>), Arc<StoreError>>;

/// The most alerts one transaction takes.
const MAX_BATCH: usize = 512;

struct Job {
    alert: SealedAlert,
    /// Its messages in plain text, for the dispatcher if they are handed
    /// over.
    messages: Vec<Claimed>,
    reply: oneshot::Sender<Result<Inserted, Arc<StoreError>>>,
}

/// The handle presses use to reach the writer task.
#[derive(Clone)]
pub struct AlertWriter {
    tx: mpsc::Sender<Job>,
}

/// The group-commit loop, run (and restarted after a crash) by the
/// supervisor. Every incarnation reads the same queue, so presses waiting
/// when one died are taken by the next (those of the batch it was writing
/// get an error, and their clients retry with the same key).
#[derive(Clone)]
pub struct WriterLoop(Arc<Worker>);

struct Worker {
    store: Store,
    rx: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    committed: Arc<Notify>,
    handoff: Arc<Handoff>,
}

impl AlertWriter {
    /// The writer's handle and its loop. `committed` is notified after every
    /// commit (the dispatcher waits on it).
    pub fn new(
        store: Store,
        committed: Arc<Notify>,
        handoff: Arc<Handoff>,
    ) -> (AlertWriter, WriterLoop) {
        let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * 8);
        let worker = Worker {
            store,
            rx: tokio::sync::Mutex::new(rx),
            committed,
            handoff,
        };
        (AlertWriter { tx }, WriterLoop(Arc::new(worker)))
    }

    /// Writes one alert durably (shared with concurrent presses).
    /// `messages` are its messages as [`avisa_store::NewAlert::leased_messages`]
    /// gives them.
    pub async fn write(
        &self,
        alert: SealedAlert,
        messages: Vec<Claimed>,
    ) -> Result<Inserted, Arc<StoreError>> {
        let (reply, done_rx) = oneshot::channel();
        self.tx
            .send(Job {
                alert,
                messages,
                reply,
            })
            .await
            .map_err(|_| Arc::new(StoreError::WriterStopped))?;
        done_rx
            .await
            .map_err(|_| Arc::new(StoreError::WriterStopped))?
    }
}

impl WriterLoop {
    /// Commits whatever presses wait, batch after batch, until shutdown
    /// (by then the HTTP server has answered every press, so nothing waits).
    pub async fn run(self, mut ctx: TaskCtx) {
        let worker = &self.0;
        let mut rx = worker.rx.lock().await;
        let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut jobs, MAX_BATCH) => if n == 0 { return },
                _ = ctx.stop.changed() => {
                    while let Ok(job) = rx.try_recv() {
                        jobs.push(job);
                    }
                    if jobs.is_empty() {
                        return;
                    }
                }
            }
            worker.commit(&mut jobs).await;
            if ctx.stopping() && rx.is_empty() {
                return;
            }
        }
    }
}

impl Worker {
    async fn commit(&self, jobs: &mut Vec<Job>) {
        let Worker {
            store,
            committed,
            handoff,
            ..
        } = self;
        let mut batch = Vec::with_capacity(jobs.len());
        let mut plain = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            batch.push(job.alert);
            plain.push(job.messages);
            replies.push(job.reply);
        }
        let reservation = handoff.reserve(plain.iter().map(Vec::len).sum());
        if let Some(r) = &reservation {
            for alert in &mut batch {
                alert.lease_outbox(r.lease_until, store.instance_id());
            }
        }
        metrics::histogram!("avisa_group_commit_size").record(batch.len() as f64);
        let started = std::time::Instant::now();
        let written = store.insert_alerts_numbered(&batch).await;
        metrics::histogram!("avisa_group_commit_seconds").record(started.elapsed().as_secs_f64());
        let results: Vec<Written> = match written {
            Ok(results) => results.into_iter().map(Ok).collect(),
            Err(e) if batch.len() > 1 => {
                // One bad alert must not fail its neighbours: write each
                // alone, so only the faulty one is refused.
                tracing::warn!(error = %e, size = batch.len(), "group commit failed; writing alerts one by one");
                let mut results = Vec::with_capacity(batch.len());
                for alert in &batch {
                    results.push(
                        store
                            .insert_alerts_numbered(std::slice::from_ref(alert))
                            .await
                            .map(|mut r| r.remove(0))
                            .map_err(Arc::new),
                    );
                }
                results
            }
            Err(e) => vec![Err(Arc::new(e))],
        };
        if let Some(r) = reservation {
            // Only the messages of alerts this commit created were written
            // (a reused key wrote nothing).
            let created = results
                .iter()
                .zip(plain)
                .filter_map(|(result, messages)| match result {
                    Ok((Inserted::Created(id), number)) => Some((*id, number, messages)),
                    _ => None,
                })
                .flat_map(|(id, number, messages)| {
                    messages.into_iter().map(move |mut m| {
                        // The duty SMS names the case as the stored copy
                        // does (only it carries the slot: no work for the
                        // others).
                        if m.body.contains(CASE_SLOT) {
                            let label = number
                                .clone()
                                .unwrap_or_else(|| id.simple().to_string()[..8].to_string());
                            m.body = m.body.replace(CASE_SLOT, &label);
                        }
                        m
                    })
                })
                .collect();
            r.deliver(created);
        }
        // Counted after the rows are durable and before any press hears so.
        handoff.committed();
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result.map(|(inserted, _)| inserted));
        }
        committed.notify_one();
    }
}
