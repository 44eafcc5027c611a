//! The person's history, with the PIN: past alerts with what became of each
//! message, and check-in timers. It shows what the phone itself saw, since
//! whoever forces the PIN out of the person reads it too: an alert cancelled
//! with the duress PIN shows cancelled, and alerts raised where the phone
//! never showed them — by the voice line or "AYUDA" from another phone, or
//! by a check-out forced with the duress PIN — are left out.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::extract::Unlocked;
use crate::state::AppState;

/// Alerts shown at most.
const ALERTS: i64 = 50;

#[derive(Serialize, ToSchema)]
pub struct History {
    /// Newest first; practice alerts included (`practice`).
    pub alerts: Vec<super::alerts::AlertResponse>,
    /// Newest first.
    pub checkins: Vec<super::checkins::CheckinResponse>,
}

/// The person's past alerts and timers (needs the PIN's unlock).
#[utoipa::path(get, path = "/api/v1/history", tag = "alerts",
    security(("device_token" = [])),
    responses((status = 200, body = History),
              (status = 401, body = super::ErrorBody),
              (status = 403, description = "pin_required: no valid X-Avisa-Unlock (or the device is not verified)", body = super::ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
) -> ApiResult<Json<History>> {
    let mut alerts = Vec::new();
    for (id, _) in state.store.alert_ids_of(who.person.id, ALERTS).await? {
        let Some(view) = state.store.alert(id).await? else {
            continue;
        };
        let unseen = view.caller.is_some()
            || (view.source == avisa_core::AlertSource::Checkin && view.duress_at.is_some());
        if !unseen {
            alerts.push(super::alerts::response(
                &state,
                view,
                Vec::new(),
                crate::extract::Viewer {
                    unlocked: true,
                    device_id: None,
                },
            ));
        }
    }
    let checkins = state
        .store
        .checkins_of(who.person.id)
        .await?
        .into_iter()
        .map(super::checkins::response)
        .collect();
    Ok(Json(History { alerts, checkins }))
}

/// This module's routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(history))
}
