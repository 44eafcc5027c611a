//! Threads of their own for argon2id, in two pools: one for the person's
//! PINs, one for staff passwords.
//!
//! Each hash holds tens of MiB while it runs (46 MiB; see
//! `Vault::argon2`). On tokio's blocking pool every hash could land on a
//! fresh thread, and glibc could keep a freed block in that thread's arena: a
//! burst of logins or profile saves grew the server by hundreds of megabytes
//! that never came back. Fixed threads fed by bounded queues bound both the
//! concurrency and that memory.
//!
//! The person in danger comes first: a flood of console logins (with unknown
//! usernames, each hashed against a dummy so timing tells nothing) fills only
//! the staff pool's one thread and short queue, so it can never delay a PIN
//! check. A full queue answers [`Busy`] at once instead of growing, and a job
//! whose caller went away (the client closed the request) is skipped, not
//! hashed.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// Which pool a hash runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// The person's PINs (cancel, unlock, profile, delete): as many threads
    /// as cores, a queue of 64.
    Person,
    /// Staff passwords (console login, account set-up): one thread, a queue
    /// of 8.
    Staff,
}

/// The pool's queue is full: answer "try again shortly" instead of waiting.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the hashing queue is full")]
    Busy,
    #[error("the hashing threads are gone")]
    Gone,
}

struct Queue {
    tx: mpsc::SyncSender<Job>,
}

impl Queue {
    fn start(name: &str, threads: usize, depth: usize) -> Queue {
        let (tx, rx) = mpsc::sync_channel::<Job>(depth);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("avisa-{name}-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
        }
        Queue { tx }
    }
}

fn queue(pool: Pool) -> &'static Queue {
    static PERSON: OnceLock<Queue> = OnceLock::new();
    static STAFF: OnceLock<Queue> = OnceLock::new();
    match pool {
        Pool::Person => PERSON.get_or_init(|| {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2);
            Queue::start("pin", cores, 64)
        }),
        Pool::Staff => STAFF.get_or_init(|| Queue::start("password", 1, 8)),
    }
}

/// Runs `work` on one of `pool`'s threads and waits for its result. If the
/// caller stops waiting (its request was dropped) before a thread takes the
/// job, the work is skipped.
pub async fn run<T: Send + 'static>(
    pool: Pool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        if tx.is_closed() {
            return;
        }
        let _ = tx.send(work());
    });
    queue(pool).tx.try_send(job).map_err(|e| match e {
        mpsc::TrySendError::Full(_) => HashError::Busy,
        mpsc::TrySendError::Disconnected(_) => HashError::Gone,
    })?;
    rx.await.map_err(|_| HashError::Gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    // One test, since both pools are process-wide.
    #[tokio::test]
    async fn a_staff_flood_is_refused_early_skipped_when_abandoned_and_never_reaches_the_person_pool()
     {
        // Hold the staff thread, then flood its queue.
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn(run(Pool::Staff, move || {
            let _ = started_tx.send(());
            let _ = release_rx.recv_timeout(Duration::from_secs(10));
        }));
        // Until the staff thread holds that job.
        while started_rx.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ran = Arc::new(AtomicUsize::new(0));
        let flood: Vec<_> = (0..20)
            .map(|_| {
                let counter = ran.clone();
                tokio::spawn(run(Pool::Staff, move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                }))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut busy = 0;
        for job in flood {
            if job.is_finished() {
                if matches!(job.await.expect("task"), Err(HashError::Busy)) {
                    busy += 1;
                }
            } else {
                // The caller goes away while its job waits in the queue.
                job.abort();
                let _ = job.await;
            }
        }
        assert_eq!(
            busy, 12,
            "a queue of 8 behind one busy thread refuses the rest"
        );

        // The person's pool answers during the staff flood.
        assert_eq!(run(Pool::Person, || 7).await.expect("person pool"), 7);

        let _ = release_tx.send(());
        holder.await.expect("holder").expect("ran");
        // The abandoned jobs drain without running: a job queued after them
        // gets in (once the queue has room) and runs, and none of them ran.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match run(Pool::Staff, || ()).await {
                Ok(()) => break,
                Err(HashError::Busy) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Err(e) => panic!("after the flood: {e}"),
            }
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
