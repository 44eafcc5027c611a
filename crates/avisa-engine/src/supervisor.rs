//! Background work under one supervisor: the group-commit writer, the
//! dispatcher, the relays and every periodic job the server adds.
//!
//! A supervised task that panics or is aborted is logged, counted
//! (`avisa_task_restarts_total`) and started again after a short pause, so a
//! bug in one round never leaves accepted alerts unsent. A task that beats
//! (the dispatcher, once per loop) and falls silent for longer than it
//! promised makes `/readyz` answer 503, so an orchestrator stops routing
//! presses to a server that would accept them and send nothing; so does a
//! task that is down between a crash and its restart.
//!
//! A periodic job is one function and an interval ([`Supervisor::every`]);
//! the server's jobs (escalation, check-in timers, retention, receipts'
//! silence) are listed in `avisa-server/src/jobs.rs`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

/// The pause before a crashed task starts again.
const RESTART_AFTER: Duration = Duration::from_millis(500);

/// What a supervised task is given: the shutdown signal and its heartbeat.
#[derive(Clone)]
pub struct TaskCtx {
    pub stop: watch::Receiver<bool>,
    beat: Arc<Beat>,
}

impl TaskCtx {
    /// Says "I am still turning" (cheap: one atomic store).
    pub fn beat(&self) {
        self.beat
            .last
            .store(avisa_core::now_millis(), Ordering::Relaxed);
        self.beat.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the server is shutting down.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

struct Beat {
    last: AtomicI64,
    /// Beats so far: for a periodic job, its rounds done (see
    /// [`Supervisor::beats`]).
    count: AtomicU64,
    /// Silence longer than this is a stall; None: the task does not beat.
    max_silence: Option<Duration>,
}

struct Supervised {
    name: &'static str,
    beat: Arc<Beat>,
    alive: Arc<AtomicBool>,
    current: Arc<Mutex<Option<AbortHandle>>>,
}

/// A task's state, as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Running,
    /// Crashed and waiting to restart.
    Down,
    /// Alive but silent for longer than it promised.
    Stalled,
}

/// Starts, watches and restarts the background tasks; stops them all at
/// shutdown.
#[derive(Clone)]
pub struct Supervisor {
    stop: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<Supervised>>>,
    loops: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            stop: watch::channel(false).0,
            tasks: Arc::default(),
            loops: Arc::default(),
        }
    }
}

impl Supervisor {
    /// Runs `make()`'s future as the task `name`, again after every crash,
    /// until it returns or the server stops. With `max_silence`, the task
    /// must call [`TaskCtx::beat`] at least that often.
    pub fn spawn<F, Fut>(&self, name: &'static str, max_silence: Option<Duration>, make: F)
    where
        F: Fn(TaskCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let beat = Arc::new(Beat {
            last: AtomicI64::new(avisa_core::now_millis()),
            count: AtomicU64::new(0),
            max_silence,
        });
        let alive = Arc::new(AtomicBool::new(false));
        let current = Arc::new(Mutex::new(None));
        let ctx = TaskCtx {
            stop: self.stop.subscribe(),
            beat: beat.clone(),
        };
        lock(&self.tasks).push(Supervised {
            name,
            beat,
            alive: alive.clone(),
            current: current.clone(),
        });
        let mut stop = self.stop.subscribe();
        let supervising = tokio::spawn(async move {
            loop {
                ctx.beat();
                let task = tokio::spawn(make(ctx.clone()));
                *lock(&current) = Some(task.abort_handle());
                alive.store(true, Ordering::Relaxed);
                let ended = task.await;
                alive.store(false, Ordering::Relaxed);
                if *stop.borrow() {
                    return;
                }
                match ended {
                    Ok(()) => {
                        tracing::info!(task = name, "background task finished");
                        return;
                    }
                    Err(e) if e.is_panic() => {
                        tracing::error!(task = name, "background task panicked; restarting it")
                    }
                    Err(_) => {
                        tracing::error!(task = name, "background task was killed; restarting it")
                    }
                }
                metrics::counter!("avisa_task_restarts_total", "task" => name).increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(RESTART_AFTER) => {}
                    _ = stop.changed() => return,
                }
            }
        });
        lock(&self.loops).push(supervising);
    }

    /// Runs `job` every `every` (the first run at once) until shutdown; a
    /// job that panics is restarted like any task.
    pub fn every<S, F, Fut>(&self, name: &'static str, every: Duration, state: S, job: F)
    where
        S: Clone + Send + Sync + 'static,
        F: Fn(S) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, None, move |mut ctx| {
            let state = state.clone();
            let job = job.clone();
            async move {
                loop {
                    job(state.clone()).await;
                    ctx.beat();
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = ctx.stop.changed() => return,
                    }
                    if ctx.stopping() {
                        return;
                    }
                }
            }
        });
    }

    /// How often the task `name` has beaten (a periodic job beats once per
    /// round done): a test waits for rounds instead of sleeping. None: no
    /// such task.
    pub fn beats(&self, name: &str) -> Option<u64> {
        lock(&self.tasks)
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.beat.count.load(Ordering::Relaxed))
    }

    /// Each task's health, by name.
    pub fn health(&self) -> Vec<(&'static str, Health)> {
        let now = avisa_core::now_millis();
        lock(&self.tasks)
            .iter()
            .map(|t| {
                let silent = Duration::from_millis(
                    (now - t.beat.last.load(Ordering::Relaxed)).max(0) as u64,
                );
                let health = if !t.alive.load(Ordering::Relaxed) {
                    Health::Down
                } else if t.beat.max_silence.is_some_and(|max| silent > max) {
                    Health::Stalled
                } else {
                    Health::Running
                };
                (t.name, health)
            })
            .collect()
    }

    /// Aborts the named task as a crash would (for drills and tests); its
    /// supervisor starts it again. False if no such task runs.
    pub fn kill(&self, name: &str) -> bool {
        let tasks = lock(&self.tasks);
        let Some(task) = tasks.iter().find(|t| t.name == name) else {
            return false;
        };
        match lock(&task.current).as_ref() {
            Some(handle) => {
                handle.abort();
                true
            }
            None => false,
        }
    }

    /// Tells every task to stop and waits for them (each finishes what it is
    /// doing; the dispatcher hands back what it held).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let loops: Vec<_> = lock(&self.loops).drain(..).collect();
        for l in loops {
            let _ = l.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn wait_for(sup: &Supervisor, want: Health) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while sup.health()[0].1 != want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {want:?}: {:?}",
                sup.health()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_killed_task_is_down_then_restarted_and_a_silent_one_is_stalled() {
        let sup = Supervisor::default();
        let starts = Arc::new(AtomicI64::new(0));
        let beating = Arc::new(AtomicBool::new(true));
        let (s, b) = (starts.clone(), beating.clone());
        sup.spawn(
            "worker",
            Some(Duration::from_millis(200)),
            move |mut ctx| {
                s.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                async move {
                    loop {
                        if b.load(Ordering::SeqCst) {
                            ctx.beat();
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                            _ = ctx.stop.changed() => return,
                        }
                    }
                }
            },
        );
        wait_for(&sup, Health::Running).await;
        assert!(sup.kill("worker"));
        wait_for(&sup, Health::Down).await;
        wait_for(&sup, Health::Running).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);

        beating.store(false, Ordering::SeqCst);
        wait_for(&sup, Health::Stalled).await;
        beating.store(true, Ordering::SeqCst);
        wait_for(&sup, Health::Running).await;

        sup.shutdown().await;
        assert_eq!(sup.health()[0].1, Health::Down);
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "not restarted at shutdown"
        );
    }
}
