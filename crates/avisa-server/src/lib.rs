//! Avisa's HTTP server.
//!
//! [`App::build`] turns a [`Config`] into everything a server needs (store
//! bound to its data key, consulate directory, SMS gateway); [`serve`] runs it
//! on a listener the caller bound, so production and tests start it the same
//! way.

mod api;
mod backup;
mod bodies;
mod checkins;
pub mod config;
mod console;
mod duress;
mod error;
mod extract;
mod hasher;
mod help;
mod hooks;
mod jobs;
mod keyfile;
mod listen;
mod live;
mod openapi;
mod ops;
mod pin;
mod state;
mod streams;
mod telemetry;
mod trigger;
mod voice;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::any;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use avisa_core::directory::Directory;
use std::time::Duration;

use avisa_sms::{KannelConfig, KannelGateway, LogGateway, TwilioConfig, TwilioGateway};
use avisa_store::Store;

// The engine's parts, under the names the server and its tests use.
pub use avisa_engine::{dispatch, events, handoff, supervisor, writer};

pub use config::Config;
use config::Gateway;
pub use console::{MIN_PASSWORD, password_problem};
pub use state::AppState;
pub use telemetry::init_logging;

/// What the OpenAPI document says beyond its operations, which each
/// module's `routes()` adds with its routes; [`openapi::complete`] adds the
/// security schemes and the refusals common to every route of a kind.
#[derive(OpenApi)]
#[openapi(info(
    title = "Avisa",
    description = "Panic-button alerts to a person's contacts and the nearest consulate."
))]
pub struct ApiDoc;

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

pub use backup::{Copied, backup, restore};
pub use keyfile::{PauseAt, Rotation, check_key, open_store, owner_only, rotate_key};

/// The gateways in their configured order, each with its rate limit.
fn build_slots(config: &Config, store: &Store) -> anyhow::Result<Vec<dispatch::Slot>> {
    let public = config.public_url.trim_end_matches('/').to_string();
    let mut slots = Vec::new();
    for gateway in &config.sms.gateways {
        let slot = match gateway {
            Gateway::Log(l) => {
                if config.sms.log_echo {
                    tracing::warn!(
                        path = %config.sms_log_file().display(),
                        "the log gateway writes every number and message in plain text to its file (mode 0600) and prints each on standard output, which a service manager keeps in its journal (sms.log_echo = false stops that): for trying Avisa on one machine only"
                    );
                } else {
                    tracing::warn!(
                        path = %config.sms_log_file().display(),
                        "the log gateway writes every number and message in plain text to its file (mode 0600): for trying Avisa on one machine only"
                    );
                }
                dispatch::Slot::new(
                    Arc::new(LogGateway::new(config.sms_log_file(), config.sms.log_echo)),
                    l.rate_per_second,
                )
            }
            Gateway::Twilio(t) => {
                let gateway = TwilioGateway::new(TwilioConfig {
                    base_url: t.base_url.clone(),
                    account_sid: t.account_sid.clone(),
                    auth_token: t.auth_token.clone(),
                    from: Some(t.from.clone()).filter(|f| !f.is_empty()),
                    messaging_service_sid: Some(t.messaging_service_sid.clone())
                        .filter(|f| !f.is_empty()),
                    status_callback: Some(format!("{public}/hooks/twilio/status")),
                    timeout: t.timeout,
                })
                .context("cannot set up the twilio gateway")?;
                dispatch::Slot::new(Arc::new(gateway), t.rate_per_second)
            }
            Gateway::Kannel(k) => {
                let signer = store.clone();
                let dlr_base = format!("{public}/hooks/kannel/dlr");
                let dlr_url: avisa_sms::kannel::DlrUrl = Arc::new(move |id| {
                    let sig = hooks::kannel_dlr_signature(signer.vault(), id);
                    format!("{dlr_base}?id={id}&sig={sig}&status=%d")
                });
                let gateway = KannelGateway::new(
                    KannelConfig {
                        sendsms_url: k.sendsms_url.clone(),
                        username: k.username.clone(),
                        password: k.password.clone(),
                        from: Some(k.from.clone()).filter(|f| !f.is_empty()),
                        timeout: k.timeout,
                    },
                    Some(dlr_url),
                )
                .context("cannot set up the kannel gateway")?;
                dispatch::Slot::new(Arc::new(gateway), k.rate_per_second)
            }
        };
        slots.push(slot);
    }
    Ok(slots)
}

/// A server ready to run.
pub struct App {
    pub state: AppState,
    pub dispatcher: Arc<dispatch::Dispatcher>,
    /// Whether [`serve`] runs the dispatcher loop (tests may drive it by hand).
    pub run_dispatcher: bool,
    writer: writer::WriterLoop,
}

impl App {
    /// Validates the configuration and opens everything the server needs.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        config.validate()?;
        let directory = load_directory(&config)?;
        for office in config.alerts.duty_phones.keys() {
            // "ciam": the 24-hour centre's duty phone, for escalations.
            if office != "ciam" && directory.get(office).is_none() {
                anyhow::bail!(
                    "alerts.duty_phones names {office:?}, which is neither \"ciam\" nor an office of the directory (see `avisa consulates list`)"
                );
            }
        }
        let store = open_store(&config).await?;
        let slots = build_slots(&config, &store)?;
        let events = events::Events::default();
        let wake = Arc::new(tokio::sync::Notify::new());
        let handoff = Arc::new(handoff::Handoff::new(config.dispatch.lease_ms()));
        let dispatcher = Arc::new(dispatch::Dispatcher::new(
            store.clone(),
            slots,
            events.clone(),
            wake.clone(),
            handoff.clone(),
            config.dispatch.clone(),
        ));
        let (writer, writer_loop) = writer::AlertWriter::new(store.clone(), wake.clone(), handoff);
        let alerting = avisa_engine::alerting::Alerting::new(
            store.clone(),
            directory,
            writer,
            events.clone(),
            wake.clone(),
            config.alert_rules(),
        );
        let state = AppState::new(state::Inner {
            metrics: telemetry::metrics_handle(),
            tasks: supervisor::Supervisor::default(),
            draining: tokio::sync::watch::channel(false).0,
            logins_in_flight: Default::default(),
            streams: Default::default(),
            alerting,
            events,
            dispatcher: dispatcher.clone(),
            presses: Arc::new(tokio::sync::Semaphore::new(
                config.limits.presses_in_flight.max(1),
            )),
            dispatch_wake: wake,
            config,
            store,
        });
        Ok(App {
            state,
            dispatcher,
            run_dispatcher: true,
            writer: writer_loop,
        })
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }
}

/// Every module's routes with their OpenAPI operations: the one list.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::routes())
        .merge(console::routes())
        .merge(hooks::routes())
        .merge(voice::routes())
        .merge(ops::routes())
        .merge(web::routes())
}

/// Every route of the server. The OpenAPI document ([`openapi`]) is made
/// from the same list, so it cannot miss a route.
pub fn router(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    let routes = Router::from(routes())
        // An unknown API path is a JSON 404, not the app's page.
        .route(
            "/api/v1/{*rest}",
            any(|| async { error::ApiError::NotFound }),
        )
        .fallback(web::asset)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            bodies::BodyRules {
                max_bytes: limit,
                timeout: state.config.limits.body_timeout,
                min_rate: state.config.limits.min_body_rate,
            },
            bodies::read_body,
        ))
        .layer(axum::middleware::map_response(no_store))
        .layer(axum::middleware::from_fn(json_errors));
    let routes = if state.config.public_url.starts_with("https://") {
        // Behind https, browsers are told to come back only that way.
        routes.layer(axum::middleware::map_response(hsts))
    } else {
        routes
    };
    telemetry::apply(routes).with_state(state)
}

async fn hsts(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// Every refusal of the API and the webhooks in the JSON error shape: the
/// router's own 405 and the body extractors' plain-text rejections (a
/// webhook's raw body over the limit) become `{"error": {...}}`, with
/// `Allow` and `Retry-After` kept.
async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let path = request.uri().path();
    let ours = path.starts_with("/api/") || path.starts_with("/hooks/");
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !ours || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let mut replaced = error::ApiError::from_status(status).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = response.headers().get(&name) {
            replaced.headers_mut().insert(name, v.clone());
        }
    }
    replaced
}

/// No answer of the API or the webhooks is kept in a cache (the browser's
/// disk cache of a seized phone held contacts and locations): only the
/// app's own files may be cached, and they say so themselves.
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().into_openapi();
    openapi::complete(&mut doc);
    doc
}

/// Serves until `shutdown` resolves, then finishes in-flight requests, stops
/// the background tasks and closes the database.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = app.state.clone();
    let tasks = state.tasks.clone();
    let writer = app.writer.clone();
    tasks.spawn("writer", None, move |ctx| writer.clone().run(ctx));
    if app.run_dispatcher {
        // Alive before the first claim: a message held by an instance that
        // never beat would look abandoned to the others.
        app.dispatcher.heartbeat().await;
        let dispatcher = app.dispatcher.clone();
        let every = state
            .config
            .dispatch
            .takeover
            .min(state.config.dispatch.lease)
            / 4;
        tasks.spawn("heartbeat", None, move |mut ctx| {
            let dispatcher = dispatcher.clone();
            async move {
                loop {
                    dispatcher.heartbeat().await;
                    ctx.beat();
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = ctx.stop.changed() => return,
                    }
                }
            }
        });
        let dispatcher = app.dispatcher.clone();
        // A round that outlives its lease has lost its messages to the
        // sweep anyway: silence that long is a stall.
        let max_silence = Duration::from_millis(state.config.dispatch.lease_ms() as u64);
        tasks.spawn("dispatcher", Some(max_silence), move |ctx| {
            dispatcher.clone().run(ctx)
        });
    }
    jobs::jobs(&tasks, &state);
    if state.store.shares_changes() {
        // Other instances on the same PostgreSQL: their changes reach this
        // one's live streams at once, and this one's reach theirs.
        state.events.share();
        let (store, changes) = (state.store.clone(), state.events.clone());
        tasks.spawn("changes-out", None, move |ctx| {
            events::relay_out(store.clone(), changes.clone(), ctx)
        });
        let (store, changes) = (state.store.clone(), state.events.clone());
        tasks.spawn("changes-in", None, move |ctx| {
            events::relay_in(store.clone(), changes.clone(), ctx)
        });
    }
    let router = app.router();
    let draining = state.draining.clone();
    let shutdown = async move {
        shutdown.await;
        // Live streams end now; requests in flight (presses) still finish.
        let _ = draining.send(true);
    };
    let limits = &state.config.limits;
    // As many open files as the system lets this process have; the
    // connections fitted under them.
    let files = listen::raise_open_files();
    let max_connections =
        listen::fit_connections(limits.max_connections, limits.reserved_connections, files);
    tracing::info!(
        open_files = files,
        max_connections,
        reserved_connections = limits.reserved_connections,
        "connections"
    );
    let limits = listen::Limits {
        header_timeout: limits.header_timeout,
        max_connections,
        reserved_connections: limits.reserved_connections,
        connections_per_address: limits.connections_per_address,
        trusted_proxy: limits.trusted_proxy,
        console_addresses: limits.console_addresses.clone(),
    };
    let served = listen::serve(listener, router, limits, shutdown)
        .await
        .context("the HTTP server failed");
    // Requests are finished; the dispatcher finishes its round and hands back
    // what it held (whatever it could not record comes back after its lease).
    tasks.shutdown().await;
    if app.run_dispatcher {
        app.dispatcher.leave().await;
    }
    state.store.close().await;
    served
}

/// What `avisa serve` does: builds the server from `config`, listens on
/// `config.listen`, and serves until ctrl-c or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let addr = config.listen;
    let app = App::build(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        address = %local,
        database = app.state.store.backend_kind(),
        gateways = ?app.dispatcher.gateway_names(),
        "Avisa is listening: open http://{local}/healthz"
    );
    serve(listener, app, shutdown_signal()).await
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
