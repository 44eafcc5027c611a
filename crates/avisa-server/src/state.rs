//! What every request handler can reach.

use std::sync::Arc;

use avisa_engine::alerting::Alerting;
use avisa_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;

use crate::config::Config;
use crate::events::Events;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    /// Raises alerts (the directory, the group-commit writer, the rules).
    pub alerting: Alerting,
    /// Alert changes, for live streams.
    pub events: Events,
    /// Wakes the dispatcher when messages were queued.
    pub dispatch_wake: Arc<Notify>,
    /// Presses from the app in flight (`limits.presses_in_flight`).
    pub presses: Arc<tokio::sync::Semaphore>,
    /// The dispatcher, for its gateways' health (the console's status bar).
    pub dispatcher: Arc<crate::dispatch::Dispatcher>,
    pub metrics: PrometheusHandle,
    /// The background tasks and periodic jobs (their health is `/readyz`'s).
    pub tasks: crate::supervisor::Supervisor,
    /// Turns true when the server starts shutting down: live streams end
    /// then, so the graceful shutdown is not held open by a console or a
    /// phone that never disconnects.
    pub draining: tokio::sync::watch::Sender<bool>,
    /// The live streams each phone and console session holds open.
    pub streams: crate::streams::Streams,
    /// Client addresses with a console login being checked: one at a time
    /// each (the next waits its turn), so parallel guesses cannot all pass
    /// the throttle's count.
    pub logins_in_flight: LoginTurns,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Console logins being checked, by client address (see
/// `console::session::LoginTurn`).
pub type LoginTurns =
    std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, Arc<tokio::sync::Mutex<()>>>>;
