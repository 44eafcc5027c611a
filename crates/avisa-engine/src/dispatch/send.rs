//! One message's try: asked of the provider first when a try before it was
//! left in doubt, then sent through the gateway its round gave it, and the
//! outcome turned into the update its round records.

use std::time::{Duration, Instant};

use avisa_core::now_millis;
use avisa_sms::{GatewayError, OutgoingSms};
use avisa_store::{Claimed, OutboxUpdate};

use super::{Dispatcher, LATER_RANK, Lookup};

impl Dispatcher {
    pub(super) async fn send_one(
        &self,
        m: Claimed,
        index: usize,
        ready: Option<Instant>,
        epoch: u64,
    ) -> OutboxUpdate {
        // Failover is between the gateways of the message's channel.
        let n = self.carriers(m.channel);
        let slot = &self.slots[index];
        if let Some(at) = ready {
            tokio::time::sleep_until(at.into()).await;
            // See `round`: a later rank gives way to alerts committed since.
            if m.rank >= LATER_RANK && self.handoff.commits() != epoch {
                metrics::counter!("avisa_dispatch_gave_way_total").increment(1);
                let now = now_millis();
                return OutboxUpdate::Release {
                    id: m.id,
                    next_attempt_at: now,
                    at: now,
                };
            }
        }
        let sms = OutgoingSms {
            id: m.id,
            channel: m.channel,
            to: m.to.clone(),
            body: m.body.clone(),
            // The provider holds it no longer than it is worth sending.
            valid_for: Some(Duration::from_millis(
                (m.expires_at - now_millis()).max(1_000) as u64,
            )),
        };
        let gateway = slot.gateway.name().to_string();
        let started = Instant::now();
        // A try before this one may have reached the provider: ask it
        // first, and send only if it does not have the message. Within the
        // window a look-up that fails sends nothing; past it, the message
        // goes (a possible duplicate: counted, and said in the log).
        let mut possible_duplicate = false;
        let found = match m.in_doubt_since {
            Some(since) => match self.find_in_doubt(slot, &sms, since).await {
                Ok(Lookup::Found(copy)) => Some(copy),
                Ok(Lookup::Absent) => None,
                Ok(Lookup::Busy) => {
                    let reason = "a message with the same text to the same number is being sent: asked again after it".to_string();
                    return self.retry_later(&m, index, None, reason, now_millis(), None);
                }
                Err(reason) if self.pinned(Some(since), now_millis()) => {
                    tracing::warn!(gateway = %slot.gateway.name(), reason = %reason, "not sent: the gateway may have it and is asked again");
                    metrics::counter!("avisa_sms_in_doubt_unasked_total", "gateway" => slot.gateway.name().to_string()).increment(1);
                    return self.retry_later(&m, index, None, reason, now_millis(), None);
                }
                Err(reason) => {
                    tracing::warn!(gateway = %slot.gateway.name(), reason = %reason, "sent past the in-doubt window: a possible duplicate");
                    metrics::counter!("avisa_sms_possible_duplicates_total").increment(1);
                    possible_duplicate = true;
                    None
                }
            },
            None => None,
        };
        let started_ms = now_millis();
        let was_found = found.is_some();
        let result = match found {
            Some(accepted) => {
                metrics::counter!("avisa_sms_in_doubt_found_total", "gateway" => slot.gateway.name().to_string()).increment(1);
                tracing::info!(gateway = %slot.gateway.name(), "the provider had the message sent in doubt: not sent again");
                Ok(accepted)
            }
            None => {
                let sending = self.copies.sending(&sms);
                let result = slot.gateway.send(&sms).await;
                if let Ok(accepted) = &result {
                    sending.accepted(&accepted.provider_id);
                }
                result
            }
        };
        slot.observe_send(started.elapsed());
        let now = now_millis();
        metrics::histogram!("avisa_gateway_send_seconds", "gateway" => gateway.clone())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(accepted) => {
                slot.succeeded();
                metrics::counter!("avisa_sms_total", "gateway" => gateway.clone(), "outcome" => "sent").increment(1);
                tracing::info!(gateway = %gateway, "message handed to the gateway");
                OutboxUpdate::Sent {
                    id: m.id,
                    gateway,
                    provider_id: accepted.provider_id,
                    at: now,
                    possible_duplicate,
                    found: was_found,
                }
            }
            Err(GatewayError::Retryable {
                reason,
                retry_after,
            }) => {
                slot.failed(retry_after, &reason);
                metrics::counter!("avisa_sms_total", "gateway" => gateway.clone(), "outcome" => "retry").increment(1);
                tracing::warn!(gateway = %gateway, reason = %reason, "temporary failure; will retry");
                self.retry_later(&m, index, retry_after, reason, now, None)
            }
            Err(GatewayError::InDoubt { reason }) => {
                slot.failed(None, &reason);
                metrics::counter!("avisa_sms_total", "gateway" => gateway.clone(), "outcome" => "in_doubt").increment(1);
                tracing::warn!(gateway = %gateway, reason = %reason, "no answer in time; the gateway is asked before the message is sent again");
                self.retry_later(&m, index, None, reason, now, Some(started_ms))
            }
            Err(GatewayError::Account { reason }) => {
                // Our fault, not the message's: the gateway goes out of
                // service and the message by another, or waits for it.
                slot.account_failed(&reason, self.config.account_pause);
                metrics::counter!("avisa_sms_total", "gateway" => gateway.clone(), "outcome" => "account_error").increment(1);
                metrics::counter!("avisa_gateway_account_errors_total", "gateway" => gateway.clone()).increment(1);
                tracing::error!(gateway = %gateway, reason = %reason, "the gateway refused our account or credentials: out of service for a minute, messages go by another gateway or wait; check the gateway's settings");
                self.retry_later(
                    &m,
                    index,
                    Some(self.config.account_pause),
                    reason,
                    now,
                    None,
                )
            }
            Err(GatewayError::Recipient { reason, opted_out }) => {
                // Final on every gateway: another would bypass a STOP, or
                // fail the same way.
                metrics::counter!("avisa_sms_total", "gateway" => gateway.clone(), "outcome" => "recipient_refused").increment(1);
                tracing::warn!(gateway = %gateway, opted_out, "the recipient refuses or cannot receive; not tried elsewhere");
                // Recorded before the outcome, so the number's next message
                // (on any gateway, any instance) finds it.
                if opted_out && let Err(e) = self.store.record_opt_out(&m.to, now).await {
                    tracing::error!(error = %e, "recording an opt-out failed");
                }
                OutboxUpdate::Failed {
                    id: m.id,
                    reason,
                    at: now,
                }
            }
            Err(GatewayError::Permanent { reason }) => {
                metrics::counter!("avisa_sms_total", "gateway" => gateway.clone(), "outcome" => "refused").increment(1);
                let failures = m.permanent_failures + 1;
                tracing::warn!(gateway = %gateway, reason = %reason, "gateway refused the message");
                if failures as usize >= n {
                    OutboxUpdate::Failed {
                        id: m.id,
                        reason,
                        at: now,
                    }
                } else {
                    OutboxUpdate::Retry {
                        id: m.id,
                        next_attempt_at: now,
                        gateway_index: self.next_for(index, m.channel) as i32,
                        permanent_failures: failures,
                        reason,
                        at: now,
                        in_doubt: None,
                    }
                }
            }
        }
    }
}
