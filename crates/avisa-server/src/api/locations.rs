//! Live location of an active alert: points of its trail from the phone
//! (`crate::live` decides what a point means beyond being stored), and the
//! stop that needs the PIN.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use avisa_core::{AlertState, Location, Outcome, now_millis};

use super::alerts::own_alert;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Person};
use crate::state::AppState;

/// Add a point to the alert's location trail.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/locations", tag = "alerts",
    security(("device_token" = [])), params(("id" = Uuid, Path)),
    request_body = LocationRequest,
    responses((status = 201, body = Location),
              (status = 401, body = super::ErrorBody),
              (status = 403, description = "device not verified", body = super::ErrorBody),
              (status = 404, body = super::ErrorBody),
              (status = 409, description = "alert_not_active, or sharing_ended (the case is resolved, the person stopped sharing, or live_location_for has passed)", body = super::ErrorBody),
              (status = 429, description = "a point within trail_every of the last (see Retry-After), or trail_full", body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)))]
pub async fn add_location(
    State(state): State<AppState>,
    who: Person,
    Path(id): Path<String>,
    ApiJson(loc): ApiJson<LocationRequest>,
) -> ApiResult<(StatusCode, Json<Location>)> {
    let view = own_alert(&state, &who, &id).await?;
    let loc = Location::new(loc.lat, loc.lon, loc.accuracy_m)?;
    if view.state != AlertState::Active || view.duress_at.is_some() {
        return Err(ApiError::Conflict {
            code: "alert_not_active",
            message: "this alert is no longer active".into(),
        });
    }
    let now = now_millis();
    let alerts = &state.config.alerts;
    // Live sharing ends by itself after live_location_for, and once the
    // consulate resolved the case knowing the person safe (they spoke to
    // them, or they were released). A case closed on a guess ("false
    // alarm", "no contact", "detained") keeps taking points, and a point
    // reopens it: a phone still moving may be a person still in danger.
    let known_safe = state.store.case(view.id).await?.is_some_and(|c| {
        c.state == avisa_core::CaseState::Resolved
            && matches!(c.outcome, Some(Outcome::PersonSafe | Outcome::Released))
    });
    if known_safe
        || now >= view.created_at + crate::config::millis(alerts.live_location_for)
        || state.store.sharing_stopped(view.id).await?
    {
        return Err(ApiError::Conflict {
            code: "sharing_ended",
            message: "this alert no longer takes locations (the person is safe, or shared for long enough)"
                .into(),
        });
    }
    // A bounded trail: one point per trail_every, trail_max in all, so no
    // client can flood the store or the console's map.
    let (points, newest) = state.store.trail_state(view.id).await?;
    if points >= i64::from(alerts.trail_max) {
        return Err(ApiError::Limit {
            code: "trail_full",
            message: format!("this alert's trail holds its {} points", alerts.trail_max),
        });
    }
    if let Some(newest) = &newest {
        let next = newest.at + crate::config::millis(alerts.trail_every);
        if next > now {
            return Err(ApiError::TooManyRequests {
                retry_after_secs: ((next - now + 999) / 1000) as u64,
            });
        }
    }
    let implausible = newest
        .as_ref()
        .is_some_and(|prev| crate::live::implausible(prev, &loc, now));
    if implausible {
        tracing::warn!(alert_id = %view.id, "a trail point implausibly far from the one before: kept, flagged");
    }
    if state
        .store
        .add_location(view.id, &loc, now, implausible)
        .await?
    {
        tracing::warn!(alert_id = %view.id, "a resolved case received a new location: reopened");
    }
    state.events.publish_scoped(view.id, view.scope());
    // The point is stored whatever happens to the updates it owes.
    if let Err(e) = crate::live::tell_contacts(&state, &view, &loc).await {
        tracing::error!(alert_id = %view.id, error = %e, "location updates to contacts not queued");
    }
    Ok((StatusCode::CREATED, Json(loc)))
}

/// The answer to a stop of location sharing.
#[derive(Serialize, ToSchema)]
pub struct SharingResponse {
    /// Always false: the phone stops sending.
    pub sharing: bool,
}

/// Stop sharing the location of an active alert, with the PIN. The duress
/// PIN answers exactly the same; the stop is then not kept (the server
/// would still take points) and the consulate sees it was forced.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/sharing/stop", tag = "alerts",
    security(("device_token" = [])), params(("id" = Uuid, Path)),
    request_body = super::profile::PinRequest,
    responses((status = 200, body = SharingResponse),
              (status = 401, body = super::ErrorBody),
              (status = 403, description = "wrong PIN, or device not verified", body = super::ErrorBody),
              (status = 404, body = super::ErrorBody),
              (status = 422, description = "not a PIN of 4 to 8 digits", body = super::ErrorBody),
              (status = 429, description = "PIN locked after too many wrong PINs", body = super::ErrorBody)))]
pub async fn stop_sharing(
    State(state): State<AppState>,
    who: Person,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<super::profile::PinRequest>,
) -> ApiResult<Json<SharingResponse>> {
    let view = own_alert(&state, &who, &id).await?;
    let (_, entered) =
        crate::pin::check(&state, "pin", who.person.id, &req.pin, Some(view.id)).await?;
    let forced = entered == crate::pin::Entered::Duress;
    if view.state == AlertState::Active {
        state
            .store
            .stop_sharing(view.id, forced, now_millis())
            .await?;
        state.events.publish_scoped(view.id, view.scope());
        if forced {
            tracing::warn!(alert_id = %view.id, "location sharing stopped with the duress PIN");
        }
    }
    Ok(Json(SharingResponse { sharing: false }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationRequest {
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub lon: f64,
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1000000.0)]
    pub accuracy_m: Option<f64>,
}

/// This module's routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(add_location))
        .routes(utoipa_axum::routes!(stop_sharing))
}
