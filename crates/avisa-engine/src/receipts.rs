//! Silence after sending: a message a gateway took and no receipt of any
//! kind followed within `sms.receipt_timeout` is "sin confirmación", and an
//! alert message is then sent once more by the next gateway of its channel
//! (the receipts themselves arrive by the server's webhooks and are
//! recorded by the store).

use std::sync::Arc;
use std::time::Duration;

use avisa_store::Store;
use tokio::sync::Notify;

use crate::config::millis;
use crate::events::Events;

/// What the silence job uses, and nothing more.
#[derive(Clone)]
pub struct Silence {
    pub store: Store,
    pub events: Events,
    /// Wakes the dispatcher for what is sent once more.
    pub wake: Arc<Notify>,
    /// `sms.receipt_timeout`.
    pub timeout: Duration,
}

/// One run: marks messages without any receipt in time as "sin
/// confirmación", and sends each such alert message once more by the next
/// gateway.
pub async fn unconfirmed(s: Silence) {
    let now = avisa_core::now_millis();
    let cutoff = now - millis(s.timeout);
    match s.store.mark_unconfirmed(cutoff, now).await {
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
                s.wake.notify_one();
            }
            s.events.publish_all(&u.alerts);
        }
        Err(e) => tracing::error!(error = %e, "the check for unconfirmed messages failed"),
    }
}
