//! Alert change notices inside one process: whoever changes an alert
//! (accept, dispatch, receipt, cancel, location) publishes its id; live
//! streams (SSE) listen and re-read. Streams also poll, so a change made by
//! another process sharing PostgreSQL still shows, only later.

use tokio::sync::broadcast;
use uuid::Uuid;

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Uuid>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Events {
    pub fn publish(&self, alert_id: Uuid) {
        // No listener is not an error.
        let _ = self.tx.send(alert_id);
    }

    pub fn publish_all(&self, alert_ids: &[Uuid]) {
        for id in alert_ids {
            self.publish(*id);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.tx.subscribe()
    }
}
