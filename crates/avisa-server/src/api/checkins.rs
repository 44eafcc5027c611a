//! Check-in timers: the person schedules an appointment (an ICE check-in,
//! a court date) with a deadline; without a check-out by then the server
//! raises their alert (see `crate::checkins`). Reading and scheduling need
//! the PIN's unlock (the plan is personal); checking out, extending and
//! cancelling take the PIN itself. The duress PIN does each of them on the
//! phone exactly as the PIN would, and raises the alert in silence.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use uuid::Uuid;

use avisa_core::{CheckinState, Invalid, Location, now_millis};
use avisa_store::{Checkin, MAX_SCHEDULED_CHECKINS, NewCheckin, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Person, Unlocked, path_id};
use crate::state::AppState;

/// The longest a timer may run: a deadline further away is a mistake.
const MAX_AHEAD_MS: i64 = 90 * 24 * 3_600_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    /// When the appointment is (RFC 3339, e.g. `2026-12-01T09:00:00-08:00`).
    #[schema(format = DateTime)]
    pub appointment_at: String,
    /// The time to check out by (RFC 3339); not before the appointment.
    #[schema(format = DateTime)]
    pub deadline: String,
    /// Where: an office, a court, an address (sealed).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub place: Option<String>,
    /// For the consulate, if the alert goes (sealed).
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub note: Option<String>,
    #[serde(default)]
    pub location: Option<Location>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinPin {
    #[schema(pattern = r"^[0-9]{4,8}$")]
    pub pin: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    #[schema(pattern = r"^[0-9]{4,8}$")]
    pub pin: String,
    /// The new deadline (RFC 3339).
    #[schema(format = DateTime)]
    pub deadline: String,
}

/// A timer as its person sees it.
#[derive(Serialize, ToSchema)]
pub struct CheckinResponse {
    pub id: Uuid,
    #[schema(format = DateTime)]
    pub appointment_at: String,
    #[schema(format = DateTime)]
    pub deadline: String,
    pub place: Option<String>,
    pub note: Option<String>,
    pub location: Option<Location>,
    #[schema(value_type = String, example = "scheduled")]
    pub state: CheckinState,
    /// The alert it raised, once its deadline passed without a check-out.
    pub alert_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckinList {
    pub checkins: Vec<CheckinResponse>,
    pub max_scheduled: i64,
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn parse_time(field: &'static str, value: &str) -> Result<i64, Invalid> {
    OffsetDateTime::parse(value.trim(), &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            Invalid::new(
                field,
                "time_invalid",
                format!("{field} is a date and time in RFC 3339, e.g. 2026-12-01T09:00:00-08:00"),
            )
        })
}

fn check_deadline(deadline: i64, appointment_at: i64, now: i64) -> Result<(), Invalid> {
    if deadline <= now {
        return Err(Invalid::new(
            "deadline",
            "deadline_past",
            "the deadline has passed already",
        ));
    }
    if deadline < appointment_at {
        return Err(Invalid::new(
            "deadline",
            "deadline_before_appointment",
            "the deadline comes before the appointment",
        ));
    }
    if deadline > now + MAX_AHEAD_MS {
        return Err(Invalid::new(
            "deadline",
            "deadline_too_far",
            "a deadline is at most 90 days away",
        ));
    }
    Ok(())
}

fn optional_text(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, Invalid> {
    let Some(value) = value else { return Ok(None) };
    if value.chars().count() > max {
        return Err(Invalid::new(
            field,
            "too_long",
            format!("{field} has at most {max} characters"),
        ));
    }
    let value = value.trim().to_string();
    avisa_core::invalid::check_visible(field, &value)?;
    Ok(Some(value).filter(|v| !v.is_empty()))
}

/// The person's view: a timer forced with the duress PIN shows as checked
/// out (or cancelled), with no alert.
pub(crate) fn response(c: Checkin) -> CheckinResponse {
    CheckinResponse {
        id: c.id,
        appointment_at: rfc3339(c.appointment_at),
        deadline: rfc3339(c.deadline),
        place: c.place,
        note: c.note,
        location: c.location,
        state: c.state,
        alert_id: c.alert_id.filter(|_| c.state == CheckinState::Fired),
    }
}

/// Schedule a check-in timer.
#[utoipa::path(post, path = "/api/v1/checkins", tag = "checkins",
    security(("device_token" = [])), request_body = CheckinRequest,
    responses((status = 201, body = CheckinResponse),
              (status = 403, description = "device not verified, or the PIN's unlock is needed", body = super::ErrorBody),
              (status = 422, description = "a time in the past, a deadline before the appointment, a field too long, or checkins_limit", body = super::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
    ApiJson(req): ApiJson<CheckinRequest>,
) -> ApiResult<(StatusCode, Json<CheckinResponse>)> {
    let now = now_millis();
    let appointment_at = parse_time("appointment_at", &req.appointment_at)?;
    let deadline = parse_time("deadline", &req.deadline)?;
    check_deadline(deadline, appointment_at, now)?;
    let new = NewCheckin {
        person_id: who.person.id,
        appointment_at,
        deadline,
        place: optional_text("place", req.place, 200)?,
        note: optional_text("note", req.note, 1000)?,
        location: req
            .location
            .map(Location::validated)
            .transpose()
            .map_err(ApiError::from)?,
    };
    let checkin = match state.store.add_checkin(&new, now).await {
        Err(StoreError::LimitReached) => {
            return Err(Invalid::new(
                "deadline",
                "checkins_limit",
                format!("at most {MAX_SCHEDULED_CHECKINS} timers at once; cancel one first"),
            )
            .into());
        }
        other => other?,
    };
    metrics::counter!("avisa_checkins_scheduled_total").increment(1);
    Ok((StatusCode::CREATED, Json(response(checkin))))
}

/// My check-in timers, newest first.
#[utoipa::path(get, path = "/api/v1/checkins", tag = "checkins",
    security(("device_token" = [])),
    responses((status = 200, body = CheckinList)))]
pub async fn list(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
) -> ApiResult<Json<CheckinList>> {
    let checkins = state.store.checkins_of(who.person.id).await?;
    Ok(Json(CheckinList {
        checkins: checkins.into_iter().map(response).collect(),
        max_scheduled: MAX_SCHEDULED_CHECKINS,
    }))
}

async fn own(state: &AppState, person_id: Uuid, id: &str) -> ApiResult<Checkin> {
    state
        .store
        .checkin(person_id, path_id(id)?)
        .await?
        .ok_or(ApiError::NotFound)
}

/// One of my timers.
#[utoipa::path(get, path = "/api/v1/checkins/{id}", tag = "checkins",
    security(("device_token" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = CheckinResponse)))]
pub async fn get(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
    Path(id): Path<String>,
) -> ApiResult<Json<CheckinResponse>> {
    Ok(Json(response(own(&state, who.person.id, &id).await?)))
}

fn not_scheduled() -> ApiError {
    ApiError::Conflict {
        code: "checkin_ended",
        message: "this timer has ended already".into(),
    }
}

/// Ends a scheduled timer as `to`; with the duress PIN, the phone sees the
/// same while the alert is raised in silence and flagged for the consulate.
async fn end(
    state: &AppState,
    who: &Person,
    id: &str,
    pin: &str,
    to: CheckinState,
) -> ApiResult<Checkin> {
    let mut checkin = own(state, who.person.id, id).await?;
    let (_, entered) = crate::pin::check(state, "pin", who.person.id, pin, None).await?;
    if checkin.state != CheckinState::Scheduled {
        return Err(not_scheduled());
    }
    let now = now_millis();
    let alert_id = crate::checkins::forced(state, &checkin, entered, now).await?;
    if !state
        .store
        .end_checkin(checkin.id, to, alert_id, now)
        .await?
    {
        return Err(not_scheduled());
    }
    checkin.state = to;
    Ok(checkin)
}

/// Check out: I left the appointment; the timer stops.
#[utoipa::path(post, path = "/api/v1/checkins/{id}/checkout", tag = "checkins",
    security(("device_token" = [])), params(("id" = Uuid, Path)), request_body = CheckinPin,
    responses((status = 200, body = CheckinResponse),
              (status = 403, description = "wrong PIN (the timer keeps running)", body = super::ErrorBody),
              (status = 409, description = "checkin_ended", body = super::ErrorBody),
              (status = 429, description = "too many wrong PINs; see Retry-After", body = super::ErrorBody)))]
pub async fn checkout(
    State(state): State<AppState>,
    who: Person,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CheckinPin>,
) -> ApiResult<Json<CheckinResponse>> {
    let checkin = end(&state, &who, &id, &req.pin, CheckinState::CheckedOut).await?;
    Ok(Json(response(checkin)))
}

/// Cancel a timer (the appointment moved, or it was a mistake).
#[utoipa::path(delete, path = "/api/v1/checkins/{id}", tag = "checkins",
    security(("device_token" = [])), params(("id" = Uuid, Path)), request_body = CheckinPin,
    responses((status = 204),
              (status = 403, description = "wrong PIN", body = super::ErrorBody),
              (status = 409, description = "checkin_ended", body = super::ErrorBody),
              (status = 429, description = "too many wrong PINs; see Retry-After", body = super::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    who: Person,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CheckinPin>,
) -> ApiResult<StatusCode> {
    end(&state, &who, &id, &req.pin, CheckinState::Cancelled).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move a timer's deadline (the appointment runs late).
#[utoipa::path(patch, path = "/api/v1/checkins/{id}", tag = "checkins",
    security(("device_token" = [])), params(("id" = Uuid, Path)), request_body = ExtendRequest,
    responses((status = 200, body = CheckinResponse),
              (status = 403, description = "wrong PIN", body = super::ErrorBody),
              (status = 409, description = "checkin_ended", body = super::ErrorBody),
              (status = 429, description = "too many wrong PINs; see Retry-After", body = super::ErrorBody)))]
pub async fn extend(
    State(state): State<AppState>,
    who: Person,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ExtendRequest>,
) -> ApiResult<Json<CheckinResponse>> {
    let mut checkin = own(&state, who.person.id, &id).await?;
    let deadline = parse_time("deadline", &req.deadline)?;
    let now = now_millis();
    check_deadline(deadline, checkin.appointment_at, now)?;
    let (_, entered) = crate::pin::check(&state, "pin", who.person.id, &req.pin, None).await?;
    if checkin.state != CheckinState::Scheduled {
        return Err(not_scheduled());
    }
    // Forced to move it: the phone sees the new deadline, and the timer
    // runs on as if extended (at its new deadline it records the alert it
    // raised now).
    let alert_id = crate::checkins::forced(&state, &checkin, entered, now).await?;
    if !state
        .store
        .extend_checkin(checkin.id, deadline, alert_id, now)
        .await?
    {
        return Err(not_scheduled());
    }
    checkin.deadline = deadline;
    Ok(Json(response(checkin)))
}

/// This module's routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(create, list))
        .routes(utoipa_axum::routes!(get, cancel, extend))
        .routes(utoipa_axum::routes!(checkout))
}
