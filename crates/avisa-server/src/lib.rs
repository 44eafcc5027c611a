//! Avisa's HTTP server.
//!
//! [`App::build`] turns a [`Config`] into everything a server needs (store
//! bound to its data key, consulate directory, SMS gateway); [`serve`] runs it
//! on a listener the caller bound, so production and tests start it the same
//! way.

pub mod api;
pub mod config;
pub mod error;
pub mod extract;
pub mod ops;
pub mod state;
mod telemetry;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use utoipa::OpenApi;

use avisa_core::crypto::DataKey;
use avisa_core::directory::Directory;
use avisa_sms::{Gateway, LogGateway};
use avisa_store::Store;

pub use config::Config;
pub use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Avisa", description = "Panic-button alerts to a person's contacts and the nearest consulate."),
    paths(
        api::devices::register, api::devices::verify,
        api::profile::get, api::profile::put,
        api::contacts::list, api::contacts::create, api::contacts::get,
        api::contacts::put, api::contacts::delete,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "device_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Loads the consulate directory in effect: the operator's file or the
/// embedded one.
pub fn load_directory(config: &Config) -> anyhow::Result<Directory> {
    match config.directory_file() {
        None => Ok(Directory::embedded()),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the consulate directory {}", path.display())
            })?;
            Directory::from_csv(&text)
                .with_context(|| format!("the consulate directory {} is refused", path.display()))
        }
    }
}

/// Connects to the database (applying migrations) and binds it to its data
/// key: the configured one, else `<data-dir>/data.key`, else — only for a
/// database that has never had a key — a new key written there with mode 0600.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let backend = avisa_store::connect(&config.database_url())
        .await
        .context("cannot open the database (check database_url / AVISA_DATABASE_URL)")?;
    let configured = config.data_key.expose_secret().trim();
    let key_file = config.data_key_file();
    let key = if !configured.is_empty() {
        DataKey::from_base64(configured).context("data_key / AVISA_DATA_KEY")?
    } else if key_file.exists() {
        read_key_file(&key_file)?
    } else if !avisa_store::has_data_key(backend.as_ref()).await? {
        let key = DataKey::generate()?;
        write_key_file(&key_file, &key)?;
        tracing::info!(path = %key_file.display(), "generated a new data key; keep it safe and out of database backups");
        key
    } else {
        anyhow::bail!(
            "this database was sealed with a data key, but no key is configured: set AVISA_DATA_KEY, \
             or restore {} from where you keep it",
            key_file.display()
        );
    };
    Ok(Store::open(backend, &key).await?)
}

fn read_key_file(path: &Path) -> anyhow::Result<DataKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the data key file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the data key file is readable by other users; chmod 600 it");
        }
    }
    DataKey::from_base64(&text)
        .with_context(|| format!("the data key file {} does not hold a key", path.display()))
}

fn write_key_file(path: &Path, key: &DataKey) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the data key file {}", path.display()))?;
    file.write_all(format!("{}\n", key.to_base64().as_str()).as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn build_gateway(config: &Config) -> anyhow::Result<Arc<dyn Gateway>> {
    let first = config
        .sms
        .gateways
        .first()
        .context("sms.gateways is empty")?;
    match first.as_str() {
        "log" => Ok(Arc::new(LogGateway::new(
            config.sms_log_file(),
            config.sms.log_echo,
        ))),
        other => anyhow::bail!("unknown SMS gateway {other:?}"),
    }
}

/// A server ready to run.
pub struct App {
    pub state: AppState,
}

impl App {
    /// Validates the configuration and opens everything the server needs.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        config.validate()?;
        let directory = load_directory(&config)?;
        let store = open_store(&config).await?;
        let gateway = build_gateway(&config)?;
        let state = AppState::new(state::Inner {
            metrics: telemetry::metrics_handle(),
            config,
            store,
            directory,
            gateway,
        });
        Ok(App { state })
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    let api = Router::new()
        .route("/devices", post(api::devices::register))
        .route("/devices/verify", post(api::devices::verify))
        .route("/profile", get(api::profile::get).put(api::profile::put))
        .route(
            "/contacts",
            get(api::contacts::list).post(api::contacts::create),
        )
        .route(
            "/contacts/{id}",
            get(api::contacts::get)
                .put(api::contacts::put)
                .delete(api::contacts::delete),
        )
        .fallback(|| async { error::ApiError::NotFound });
    let routes = Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/openapi.json", get(ops::openapi))
        .layer(DefaultBodyLimit::max(limit));
    telemetry::apply(routes).with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests and
/// closes the database.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = app.state.clone();
    let upkeep = telemetry::spawn_upkeep(state.metrics.clone());
    let router = app.router();
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP server failed")?;
    upkeep.abort();
    state.store.close().await;
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
