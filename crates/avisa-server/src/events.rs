//! Alert change notices inside one process: whoever changes an alert
//! (accept, dispatch, receipt, cancel, location, case action) publishes its
//! id; live streams (SSE) listen and re-read what concerns them. Streams
//! also poll, so a change made by another process sharing PostgreSQL still
//! shows, only later.
//!
//! A console stream shows only its consulate's real alerts. A change carries
//! the alert's scope (consulate, practice) when its publisher knows it, and
//! otherwise a cell the first stream that needs it fills with one small read
//! that every other stream then shares: open consoles never each re-read the
//! alert to filter it.

use std::sync::Arc;

use tokio::sync::{OnceCell, broadcast};
use uuid::Uuid;

use avisa_store::{AlertScope, Store};

/// One alert changed.
#[derive(Clone, Debug)]
pub struct Change {
    pub alert_id: Uuid,
    scope: Arc<OnceCell<Option<AlertScope>>>,
}

impl Change {
    /// The alert's consulate and whether it is practice: from the change, or
    /// read once for every stream. None when the alert is gone.
    pub async fn scope(&self, store: &Store) -> Option<&AlertScope> {
        self.scope
            .get_or_try_init(|| store.alert_scope(self.alert_id))
            .await
            .ok()
            .and_then(Option::as_ref)
    }
}

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Change>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Events {
    /// A change to an alert whose scope the publisher does not hold.
    pub fn publish(&self, alert_id: Uuid) {
        self.send(alert_id, OnceCell::new());
    }

    /// A change to an alert whose scope the publisher holds.
    pub fn publish_scoped(&self, alert_id: Uuid, scope: AlertScope) {
        self.send(alert_id, OnceCell::new_with(Some(Some(scope))));
    }

    pub fn publish_all(&self, alert_ids: &[Uuid]) {
        for id in alert_ids {
            self.publish(*id);
        }
    }

    fn send(&self, alert_id: Uuid, scope: OnceCell<Option<AlertScope>>) {
        // No listener is not an error.
        let _ = self.tx.send(Change {
            alert_id,
            scope: Arc::new(scope),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}
