//! Operations endpoints: health, readiness, Prometheus metrics, the OpenAPI
//! description.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::Peer;
use crate::state::AppState;
use crate::supervisor::Health as TaskHealth;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can serve: its database answers, and its background tasks
/// (the writer, the dispatcher, the periodic jobs) are running, none of them
/// down after a crash or silent for longer than it promised.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let unready = |status: &'static str| (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status }));
    for (task, health) in state.tasks.health() {
        match health {
            TaskHealth::Running => {}
            TaskHealth::Down => {
                tracing::warn!(task, "readiness check failed: a background task is down");
                return unready("a background task is down");
            }
            TaskHealth::Stalled => {
                tracing::warn!(task, "readiness check failed: a background task is stalled");
                return unready("a background task is stalled");
            }
        }
    }
    // No gateway can send (every one taken out: failing, or our account
    // refused): said here and in `avisa_gateway_up`, but still ready. The
    // gateways are shared by every instance, so a 503 would take them all
    // out of the load balancer at once, and presses — which the consulate's
    // console receives with or without SMS, and whose messages wait to be
    // sent — would be refused at the door instead of stored.
    let status = if gateways_up(&state) {
        "ready"
    } else {
        tracing::warn!("no SMS gateway can send: presses are stored and their messages wait");
        "no SMS gateway can send"
    };
    // Within a second, whatever the pool's acquire timeout: a load
    // balancer's check must not hang while the database is away.
    match tokio::time::timeout(std::time::Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(Health { status })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed: the database does not answer");
            unready("database unavailable")
        }
        Err(_) => {
            tracing::warn!("readiness check failed: the database did not answer within 1 s");
            unready("database unavailable")
        }
    }
}

/// Prometheus text exposition. It tells when alerts, cancellations and
/// escalations happen, so it is not public: with `metrics_token` set it
/// needs `Authorization: Bearer <metrics_token>`; without, it answers only
/// a scraper on this machine (a loopback peer that is not the trusted
/// proxy). Anyone else gets 404, as if it were not there.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain"),
              (status = 404, description = "not a loopback scraper, or no valid metrics token", body = crate::api::ErrorBody)))]
pub async fn metrics(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let token = state.config.metrics_token.expose_secret();
    let allowed = if token.is_empty() {
        peer.is_some_and(|ip| ip.is_loopback() && state.config.limits.trusted_proxy != Some(ip))
    } else {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                avisa_core::crypto::constant_time_eq(given.as_bytes(), token.as_bytes())
            })
    };
    if !allowed {
        return Err(ApiError::NotFound);
    }
    gateways_up(&state);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    ))
}

/// Whether any gateway can send now; sets `avisa_gateway_up{gateway}` (1 or
/// 0) for each on the way.
fn gateways_up(state: &AppState) -> bool {
    let mut any = false;
    for g in state.dispatcher.gateway_health() {
        metrics::gauge!("avisa_gateway_up", "gateway" => g.name.clone()).set(if g.up {
            1.0
        } else {
            0.0
        });
        any |= g.up;
    }
    any
}

/// This API's OpenAPI description, generated from the code.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", responses((status = 200, content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| crate::openapi().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str())
}

/// The operations routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}
