//! This instance among the others on the database: its heartbeat, the
//! gateways' rates split between the live instances, and when the sweep may
//! take the messages of an instance that went silent (see
//! `avisa-store/src/instances.rs`).

use std::sync::atomic::Ordering;

use avisa_core::now_millis;
use avisa_store::OutboxUpdate;

use super::Dispatcher;

impl Dispatcher {
    /// (A lease shorter than the takeover already brings messages back
    /// sooner.)
    fn takeover_ms(&self) -> i64 {
        crate::config::millis(self.config.takeover.min(self.config.lease))
    }

    /// One beat: this instance is alive, and each gateway's rate is split
    /// between the instances that are.
    pub async fn heartbeat(&self) {
        let now = now_millis();
        match self.store.beat(now, now - self.takeover_ms()).await {
            Ok(live) => {
                let _ = self.healthy_since.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                for slot in &self.slots {
                    slot.limiter.share_with(live);
                }
                metrics::gauge!("avisa_instances_live").set(f64::from(live));
                metrics::gauge!("avisa_database_up").set(1.0);
            }
            Err(e) => {
                self.healthy_since.store(0, Ordering::Relaxed);
                metrics::gauge!("avisa_database_up").set(0.0);
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }

    /// Sets `avisa_alert_messages_oldest_waiting_seconds`: how long the
    /// oldest alert message not yet taken by a gateway has waited (0 when
    /// none waits). Every instance reports the same figure, read from the
    /// shared database.
    pub async fn gauge_waiting(&self) {
        match self.store.oldest_waiting_alert_message().await {
            Ok(oldest) => {
                let waited = oldest.map_or(0, |at| (now_millis() - at).max(0));
                metrics::gauge!("avisa_alert_messages_oldest_waiting_seconds")
                    .set(waited as f64 / 1000.0);
            }
            Err(e) => tracing::warn!(error = %e, "the oldest waiting alert message was not read"),
        }
    }

    /// Returns leases of dead workers to the queue and expires what waited
    /// too long.
    pub async fn sweep(&self) {
        let now = now_millis();
        match self
            .store
            .reclaim_expired_leases(now, self.dead_before(now))
            .await
        {
            Ok(n) if n > 0 => {
                tracing::warn!(
                    count = n,
                    "reclaimed messages of a stopped or silent worker"
                );
                metrics::counter!("avisa_outbox_reclaimed_total").increment(n);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "lease reclaim failed"),
        }
        match self.store.release_copies_taken_twice(now).await {
            Ok(alerts) if !alerts.is_empty() => {
                tracing::warn!(
                    count = alerts.len(),
                    "messages recorded as a copy another message holds go back to the queue"
                );
                metrics::counter!("avisa_sms_in_doubt_released_total")
                    .increment(alerts.len() as u64);
                self.events.publish_all(&alerts);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "the check of copies taken twice failed"),
        }
        match self.store.expire_due(now).await {
            Ok(alerts) => self.events.publish_all(&alerts),
            Err(e) => tracing::error!(error = %e, "expiry sweep failed"),
        }
    }

    /// Before when another instance's last beat means it is gone — only
    /// once this instance has itself beaten without a miss for a takeover
    /// period: after an outage of the database every instance's beats are
    /// old, and the others must get the time to beat again (and record what
    /// they sent meanwhile) before their messages are taken.
    pub(super) fn dead_before(&self, now: i64) -> Option<i64> {
        let since = self.healthy_since.load(Ordering::Relaxed);
        let takeover = self.takeover_ms();
        (since > 0 && now - since >= takeover).then(|| now - takeover)
    }

    /// Keeps a round's outcomes the database did not take.
    pub(super) fn keep_unrecorded(&self, updates: Vec<OutboxUpdate>) {
        let mut kept = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
        kept.extend(updates);
        metrics::gauge!("avisa_dispatch_unrecorded").set(kept.len() as f64);
    }

    /// Records the kept outcomes; true when none is left waiting.
    pub(super) async fn record_unrecorded(&self) -> bool {
        let kept: Vec<OutboxUpdate> =
            std::mem::take(&mut *self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()));
        if kept.is_empty() {
            return true;
        }
        match self.store.apply(&kept).await {
            Ok(touched) => {
                tracing::info!(
                    messages = kept.len(),
                    "outcomes kept while the database was away are recorded"
                );
                metrics::gauge!("avisa_dispatch_unrecorded").set(0.0);
                self.events.publish_all(&touched);
                true
            }
            Err(_) => {
                self.keep_unrecorded(kept);
                false
            }
        }
    }

    /// This instance leaves (a graceful stop, after the dispatcher handed
    /// back what it held): what it still holds goes to the others now.
    pub async fn leave(&self) {
        if let Err(e) = self.store.leave().await {
            tracing::warn!(error = %e, "could not tell the other instances this one stopped");
        }
    }
}
