//! Cancel ("I'm safe") with the person's PIN, over HTTP: the PIN guard
//! here, the cancel itself the engine's ([`avisa_engine::alerting`]: what
//! has not gone is withdrawn and those the alert reached are told; with the
//! duress PIN the phone shows the same while the alert stands, flagged for
//! the consulate; a practice rehearses it and nothing is sent).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::alerts::{AlertResponse, own_alert, response};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Person, Viewer};
use crate::state::AppState;
use avisa_engine::alerting::CancelledWith;

#[derive(Serialize, ToSchema)]
pub struct CancelResponse {
    #[serde(flatten)]
    pub alert: AlertResponse,
    /// Messages that had not gone yet and never will.
    pub withdrawn: u64,
    /// "I'm safe" messages queued for those the alert reached.
    pub safe_messages: usize,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[schema(pattern = r"^[0-9]{4,8}$")]
    pub pin: String,
}

/// Cancel ("I'm safe") with the person's PIN.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/cancel", tag = "alerts",
    security(("device_token" = [])), params(("id" = Uuid, Path)),
    request_body = CancelRequest,
    responses(
        (status = 200, body = CancelResponse),
        (status = 401, body = super::ErrorBody),
        (status = 403, description = "wrong PIN, or device not verified", body = super::ErrorBody),
        (status = 422, description = "not a PIN of 4 to 8 digits", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
        (status = 409, description = "already cancelled", body = super::ErrorBody),
        (status = 429, description = "too many wrong PINs; see Retry-After", body = super::ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    who: Person,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CancelRequest>,
) -> ApiResult<Json<CancelResponse>> {
    let view = own_alert(&state, &who, &id).await?;
    let (person, entered) =
        crate::pin::check(&state, "pin", who.person.id, &req.pin, Some(view.id)).await?;
    let with = match entered {
        crate::pin::Entered::Pin => CancelledWith::Pin,
        crate::pin::Entered::Duress => CancelledWith::Duress,
    };
    let withdrawn = state.alerting.cancel(&view, &person, with).await?;
    let view = state
        .store
        .alert(view.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let safe_messages = view
        .recipients
        .iter()
        .filter(|r| r.safe_status.is_some())
        .count();
    Ok(Json(CancelResponse {
        alert: response(&state, view, Vec::new(), Viewer::of(&who)),
        withdrawn,
        safe_messages,
    }))
}

/// This module's routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(cancel))
}
