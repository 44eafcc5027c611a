//! Cancel ("I'm safe") with the person's PIN: what has not gone is
//! withdrawn and those the alert reached are told; with the duress PIN the
//! phone shows the same while the alert stands, flagged for the consulate;
//! a practice rehearses it and nothing is sent.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use avisa_core::messages::{self, AlertFacts};
use avisa_core::{AlertState, MessageKind, OutboxStatus, now_millis};

use super::alerts::{AlertResponse, own_alert, response};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Person, Viewer};
use crate::state::AppState;
use avisa_engine::alerting::zone_of;

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
    let now = now_millis();
    let (person, entered) =
        crate::pin::check(&state, "pin", who.person.id, &req.pin, Some(view.id)).await?;
    if view.state != AlertState::Active || view.duress_at.is_some() {
        return Err(ApiError::Conflict {
            code: "already_cancelled",
            message: "this alert is already cancelled".into(),
        });
    }
    let name = person.profile.name.clone().unwrap_or_default();
    let facts = AlertFacts {
        alert_id: view.id,
        person_name: &name,
        person_phone: &person.phone,
        location: view.location,
        at_millis: now,
        sent_millis: None,
        zone: zone_of(view.location.as_ref(), person.profile.home_state.as_deref()),
        consulate: None,
        console_url: format!(
            "{}/console/alerts/{}",
            state.config.public_url.trim_end_matches('/'),
            view.id
        ),
        missed_checkin: None,
        case_number: view.case_number.as_deref(),
        name_at_end: person.profile.name_at_end,
    };
    let expires_at = now + crate::config::millis(state.config.sms.validity);
    // A practice under duress is an ordinary cancel: no one else hears of a
    // practice, and the phone shows the same either way.
    let withdrawn = if entered == crate::pin::Entered::Duress && !view.practice {
        // Forced: the phone gets what a cancel gives (and its own SMS is
        // the ordinary one), but nothing is withdrawn, the alert stays open
        // and flagged for the consulate, and the contacts hear it was forced.
        let notice = |kind: MessageKind, lang| match kind {
            MessageKind::Consulate => messages::consulate_duress(&facts),
            MessageKind::SelfPhone => messages::safe(lang, &name),
            _ => messages::duress(lang, &name),
        };
        // What a real cancel would have withdrawn, so the count says nothing.
        let queued = view
            .recipients
            .iter()
            .filter(|r| r.status == OutboxStatus::Queued)
            .count() as u64;
        if state
            .store
            .duress_cancel(view.id, now, expires_at, &notice)
            .await?
            .is_none()
        {
            return Err(ApiError::Conflict {
                code: "already_cancelled",
                message: "this alert is already cancelled".into(),
            });
        }
        tracing::warn!(alert_id = %view.id, "alert cancelled under duress; it stays open");
        metrics::counter!("avisa_alerts_duress_total").increment(1);
        queued
    } else {
        let safe_text = |kind: MessageKind, lang| match kind {
            MessageKind::Consulate => messages::consulate_cancelled(&facts),
            _ => messages::safe(lang, &name),
        };
        let Some(withdrawn) = state
            .store
            .cancel_alert(
                view.id,
                now,
                expires_at,
                // A practice rehearses "I'm safe": the phone sees what a
                // real one shows, and nobody, its own phone included, is
                // sent anything.
                (!view.practice).then_some(&safe_text as _),
            )
            .await?
        else {
            return Err(ApiError::Conflict {
                code: "already_cancelled",
                message: "this alert is already cancelled".into(),
            });
        };
        tracing::info!(alert_id = %view.id, withdrawn, "alert cancelled by its person");
        metrics::counter!("avisa_alerts_cancelled_total").increment(1);
        withdrawn
    };
    state.events.publish_scoped(view.id, view.scope());
    state.dispatch_wake.notify_one();
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
