//! The server's background work under one supervisor: the group-commit
//! writer, the dispatcher, and every periodic job.
//!
//! A supervised task that panics or is aborted is logged, counted
//! (`avisa_task_restarts_total`) and started again after a short pause, so a
//! bug in one round never leaves accepted alerts unsent. A task that beats
//! (the dispatcher, once per loop) and falls silent for longer than it
//! promised makes `/readyz` answer 503, so an orchestrator stops routing
//! presses to a server that would accept them and send nothing; so does a
//! task that is down between a crash and its restart.
//!
//! A periodic job is one function and an interval, added in [`jobs`]: the
//! escalation of unacknowledged alerts and the metrics upkeep live there,
//! and so do later jobs (check-in timers, retention purges).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use crate::state::AppState;

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
    }

    /// Whether the server is shutting down.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

struct Beat {
    last: AtomicI64,
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
    pub fn every<F, Fut>(&self, name: &'static str, every: Duration, state: AppState, job: F)
    where
        F: Fn(AppState) -> Fut + Send + Sync + Clone + 'static,
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

/// The periodic jobs: one line each.
pub fn jobs(supervisor: &Supervisor, state: &AppState) {
    let escalate_after = state.config.console.escalate_after;
    // Often enough that an escalation is never late by more than a quarter
    // of the timeout (and at most 15 s).
    let every = (escalate_after / 4).clamp(Duration::from_millis(200), Duration::from_secs(15));
    supervisor.every("escalation", every, state.clone(), escalate);
    supervisor.every("purge", Duration::from_secs(600), state.clone(), purge);
    // Silence is looked for at a quarter of its timeout (at most every 30 s).
    let every = (state.config.sms.receipt_timeout / 4)
        .clamp(Duration::from_millis(250), Duration::from_secs(30));
    supervisor.every("receipts", every, state.clone(), unconfirmed);
    supervisor.every(
        "retention",
        state.config.retention.every,
        state.clone(),
        crate::retention::run,
    );
    // A missed check-in's alert leaves within a second of its deadline.
    supervisor.every(
        "checkins",
        Duration::from_secs(1),
        state.clone(),
        crate::checkins::run,
    );
    // A gateway out for an account error is asked whether it works again
    // a few times within its pause.
    let every = (state.config.dispatch.account_pause / 6)
        .clamp(Duration::from_millis(100), Duration::from_secs(10));
    supervisor.every("gateway-probe", every, state.clone(), |s| async move {
        s.dispatcher.probe_paused().await;
    });
    supervisor.every(
        "metrics-upkeep",
        Duration::from_secs(5),
        state.clone(),
        |s| async move {
            s.metrics.run_upkeep();
        },
    );
}

/// Marks messages without any receipt within `sms.receipt_timeout` as
/// "sin confirmación", and sends each such alert message once more by the
/// next gateway.
async fn unconfirmed(state: AppState) {
    let now = avisa_core::now_millis();
    let cutoff = now - crate::config::millis(state.config.sms.receipt_timeout);
    match state.store.mark_unconfirmed(cutoff, now).await {
        Ok(u) => {
            if u.marked > 0 {
                tracing::warn!(
                    marked = u.marked,
                    resent = u.resent,
                    "messages without a delivery receipt in time; alert messages sent once more by the next gateway"
                );
                metrics::counter!("avisa_sms_unconfirmed_total").increment(u.marked);
                metrics::counter!("avisa_sms_resent_unconfirmed_total").increment(u.resent);
            }
            if u.resent > 0 {
                state.dispatch_wake.notify_one();
            }
            state.events.publish_all(&u.alerts);
        }
        Err(e) => tracing::error!(error = %e, "the check for unconfirmed messages failed"),
    }
}

/// Forgets budget windows that ended (the longest are a day: anything
/// older than two days) and devices never verified within
/// `limits.unverified_ttl`.
async fn purge(state: AppState) {
    let now = avisa_core::now_millis();
    let ttl = crate::config::millis(state.config.limits.unverified_ttl);
    match state
        .store
        .purge_budgets_and_unverified(now - 48 * 3_600_000, now - ttl)
        .await
    {
        Ok((windows, devices)) => {
            if devices > 0 {
                tracing::info!(devices, windows, "unverified devices forgotten");
            }
            metrics::counter!("avisa_unverified_devices_purged_total").increment(devices);
        }
        Err(e) => tracing::error!(error = %e, "purge failed"),
    }
    let forget = crate::config::millis(state.config.console.login_forget);
    if let Err(e) = state.store.purge_login_failures(now - forget).await {
        tracing::error!(error = %e, "purge of login failures failed");
    }
}

/// Escalates alerts nobody acknowledged in time to CIAM, and again at the
/// second threshold: each time an SMS to the consulate's duty phone and
/// CIAM's (`alerts.duty_phones`), written with the escalation itself so it
/// goes once across instances and restarts.
async fn escalate(state: AppState) {
    use avisa_core::messages;
    let console = &state.config.console;
    let now = avisa_core::now_millis();
    let first = now - crate::config::millis(console.escalate_after);
    let second = now - crate::config::millis(console.escalate_again_after);
    let duty = &state.config.alerts.duty_phones;
    let validity = crate::config::millis(state.config.sms.validity);
    let public = state.config.public_url.trim_end_matches('/').to_string();
    let notify = |e: &avisa_store::Escalated| {
        let office = e
            .consulate_id
            .as_deref()
            .and_then(|c| state.directory.get(c));
        let body = messages::escalation_duty(
            e.again,
            e.case_number
                .as_deref()
                .unwrap_or(&e.id.simple().to_string()[..8]),
            office.map(|o| o.name.as_str()),
            &messages::short_name(e.person_name.as_deref().unwrap_or_default()),
            (now - e.created_at) / 60_000,
            &format!("{public}/console/alerts/{}", e.id),
        );
        [e.consulate_id.as_deref(), Some("ciam")]
            .into_iter()
            .flatten()
            .filter_map(|key| {
                duty.get(key)
                    .and_then(|p| avisa_core::PhoneNumber::parse(p).ok())
                    .map(|p| (key, p))
            })
            .map(|(key, to)| avisa_store::NewMessage {
                id: uuid::Uuid::now_v7(),
                owner: Some(e.person_id),
                kind: avisa_store::MessageKind::Consulate,
                // A follow-up, not one of the alert's own messages: the
                // person's list of recipients does not grow with it.
                purpose: avisa_store::Purpose::Update,
                contact_id: None,
                parent_id: None,
                name: Some(
                    office
                        .filter(|_| key != "ciam")
                        .map_or("CIAM".into(), |o| o.name.clone()),
                ),
                to,
                body: body.clone(),
                language: avisa_core::Language::Es,
                rank: 0,
                expires_at: now + validity,
            })
            .collect()
    };
    match state.store.escalate_due(first, second, now, notify).await {
        Ok(escalated) => {
            for e in &escalated {
                tracing::warn!(alert_id = %e.id, again = e.again, "alert not acknowledged in time: escalated");
            }
            metrics::counter!("avisa_alerts_escalated_total").increment(escalated.len() as u64);
            let ids: Vec<uuid::Uuid> = escalated.iter().map(|e| e.id).collect();
            if !ids.is_empty() {
                state.dispatch_wake.notify_one();
            }
            state.events.publish_all(&ids);
        }
        Err(e) => tracing::error!(error = %e, "escalation check failed"),
    }
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
