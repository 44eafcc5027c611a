//! What every request handler can reach.

use std::sync::Arc;

use avisa_core::directory::Directory;
use avisa_sms::Gateway;
use avisa_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub directory: Directory,
    /// The first configured gateway (failover across several comes with the
    /// dispatcher).
    pub gateway: Arc<dyn Gateway>,
    pub metrics: PrometheusHandle,
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
