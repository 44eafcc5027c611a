//! Alert change notices: whoever changes an alert (accept, dispatch,
//! receipt, cancel, location, case action) publishes its id; live streams
//! (SSE) listen and re-read what concerns them. On PostgreSQL the ids also
//! travel to every other instance (`LISTEN/NOTIFY`, batched, ids only:
//! [`relay_out`], [`relay_in`]), so a console on one instance sees a press
//! taken by another at once; streams also poll, as a last resort.
//!
//! A console stream shows only its consulate's real alerts. A change carries
//! the alert's scope (consulate, practice) when its publisher knows it, and
//! otherwise a cell the first stream that needs it fills with one small read
//! that every other stream then shares: open consoles never each re-read the
//! alert to filter it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{OnceCell, broadcast, mpsc};
use uuid::Uuid;

use avisa_store::{AlertScope, Store};

use crate::supervisor::TaskCtx;

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
    /// This process, as the other instances know its notices.
    instance: Uuid,
    /// Ids for the other instances (PostgreSQL only), and where the relay
    /// task takes them from.
    outbound: Arc<OnceLock<mpsc::UnboundedSender<Uuid>>>,
    relay: Arc<tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<Uuid>>>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(4096).0,
            instance: Uuid::new_v4(),
            outbound: Arc::default(),
            relay: Arc::default(),
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
        if let Some(out) = self.outbound.get() {
            let _ = out.send(alert_id);
        }
        self.send_local(alert_id, scope);
    }

    fn send_local(&self, alert_id: Uuid, scope: OnceCell<Option<AlertScope>>) {
        // No listener is not an error.
        let _ = self.tx.send(Change {
            alert_id,
            scope: Arc::new(scope),
        });
    }

    /// From now on every change also goes to the other instances (called
    /// once, when the store is PostgreSQL).
    pub fn share(&self) {
        let (tx, rx) = mpsc::unbounded_channel();
        if self.outbound.set(tx).is_ok()
            && let Ok(mut relay) = self.relay.try_lock()
        {
            *relay = Some(rx);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

/// Sends this instance's changes to the others, in batches: what
/// accumulates while one notice is written goes in the next.
pub async fn relay_out(store: Store, events: Events, mut ctx: TaskCtx) {
    let mut guard = events.relay.lock().await;
    let Some(rx) = guard.as_mut() else {
        return;
    };
    let mut ids = Vec::new();
    loop {
        tokio::select! {
            n = rx.recv_many(&mut ids, 1000) => if n == 0 { return },
            _ = ctx.stop.changed() => return,
        }
        ids.sort_unstable();
        ids.dedup();
        if let Err(e) = store.notify_changes(events.instance, &ids).await {
            // Streams still poll; the change shows there, later.
            tracing::warn!(error = %e, count = ids.len(), "change notices to the other instances not sent");
        }
        ids.clear();
    }
}

/// Hears the other instances' changes and tells this instance's streams.
pub async fn relay_in(store: Store, events: Events, mut ctx: TaskCtx) {
    let mut listener = loop {
        match store.listen_changes().await {
            Ok(Some(l)) => break l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen to the other instances' changes; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = ctx.stop.changed() => return,
                }
            }
        }
    };
    loop {
        let notice = tokio::select! {
            n = listener.next() => n,
            _ = ctx.stop.changed() => return,
        };
        match notice {
            Ok((from, ids)) if from != events.instance => {
                for id in ids {
                    events.send_local(id, OnceCell::new());
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "listening to the other instances' changes failed; listening again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
