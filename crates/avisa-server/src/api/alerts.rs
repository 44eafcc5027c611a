//! Alerts: press, status (and its live stream); the cancel is in
//! `cancel.rs`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;
use uuid::Uuid;

use avisa_core::{AlertState, Coverage, MessageKind, OutboxStatus};
use avisa_core::{Invalid, Location, now_millis};
use avisa_store::AlertView;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Bearer, Person, Viewer, not_verified, path_id};
use crate::state::AppState;
use avisa_engine::alerting::{Preview, Raise};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRequest {
    /// Made by the phone (e.g. a UUID); the same key never sends twice.
    #[schema(pattern = r"^[A-Za-z0-9_:.-]{8,128}$")]
    pub idempotency_key: String,
    #[serde(default)]
    pub location: Option<Location>,
    /// Runs the whole flow but reaches only the person's own phone.
    #[serde(default)]
    pub practice: bool,
    /// When the button was pressed (milliseconds since the epoch, the
    /// phone's clock), for a press kept while there was no connection: the
    /// SMS then say when it was pressed and when it went. At most 7 days
    /// old; a time ahead of the server's counts as now.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub pressed_at: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ConsulateRef {
    pub id: String,
    pub name: String,
    /// The office's switchboard, to call.
    pub phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RecipientStatus {
    pub id: Uuid,
    /// `contact`, `self` (the person's own phone) or `consulate` (duty phone).
    pub kind: MessageKind,
    pub name: Option<String>,
    /// `queued`, `sent`, `delivered`, `failed`, `expired` or `withdrawn`.
    pub status: OutboxStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The "I'm safe" message that followed a cancel, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_status: Option<OutboxStatus>,
    /// A gateway took it and no receipt came within `sms.receipt_timeout`:
    /// "sin confirmación" (it may not have reached the phone).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unconfirmed: bool,
    /// Sent once more by the next gateway for want of a receipt: the
    /// recipient may get it twice.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resent: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AlertResponse {
    pub alert_id: Uuid,
    pub state: AlertState,
    pub practice: bool,
    pub created_at: i64,
    /// How the office was chosen: `nearest`, `home_county`, `home_state`;
    /// `outside` (a location abroad) or `none`.
    pub coverage: Coverage,
    pub consulate: Option<ConsulateRef>,
    /// When the consulate's console received the alert (None for practice
    /// or without a consulate).
    pub consulate_received_at: Option<i64>,
    /// When consulate staff took the case.
    pub consulate_acknowledged_at: Option<i64>,
    /// The newest location. Without an unlock, only for the active alert
    /// this phone raised (its status screen); a past, cancelled or resolved
    /// alert's place needs the PIN.
    pub location: Option<Location>,
    pub recipients: Vec<RecipientStatus>,
    /// Practice only: what each recipient would have received.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub previews: Vec<Preview>,
    /// In the answer to a press past the person's alert limit or SMS
    /// budget: the consulate and the person's phone have it; contacts
    /// already messaged within the window were not messaged again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub limit_reached: bool,
}

/// An alert as the phone sees it. Without `names` (no valid unlock, once a
/// PIN is set) each recipient shows only its kind, position and status, and
/// practice previews are left out: whoever holds the phone learns nobody's
/// name, number or message from it.
pub fn response(
    state: &AppState,
    view: AlertView,
    previews: Vec<Preview>,
    viewer: Viewer,
) -> AlertResponse {
    let names = viewer.unlocked;
    // The place is behind the unlock, but for the one alert the status
    // screen of the phone that raised it needs: active, and not "cancelled"
    // under duress (which must look like any cancelled alert).
    let place = viewer.unlocked
        || (view.state == AlertState::Active
            && view.duress_at.is_none()
            && view.device_id.is_some()
            && view.device_id == viewer.device_id);
    let consulate = view
        .consulate_id
        .as_deref()
        .and_then(|id| state.alerting.directory().get(id))
        .map(|o| ConsulateRef {
            id: o.id.clone(),
            name: o.name.clone(),
            phone: o.phone.clone(),
        });
    let received = (!view.practice && view.consulate_id.is_some()).then_some(view.created_at);
    // After a forced cancel the phone shows nothing the consulate did since:
    // whoever holds it must not see the case go on.
    let acknowledged = view
        .acknowledged_at
        .filter(|at| view.duress_at.is_none_or(|d| *at <= d));
    AlertResponse {
        consulate_received_at: received,
        consulate_acknowledged_at: acknowledged,
        alert_id: view.id,
        // Cancelled with the duress PIN: cancelled, to whoever holds the
        // phone (the console reads the true state from the view).
        state: if view.duress_at.is_some() {
            AlertState::Cancelled
        } else {
            view.state
        },
        practice: view.practice,
        created_at: view.created_at,
        coverage: view.coverage,
        consulate,
        location: view.location.filter(|_| place),
        recipients: {
            // The consulate, then the contacts in their order, then the
            // person's own phone (sent early, by rank, but never listed
            // between two contacts).
            let mut recipients = view.recipients;
            recipients.sort_by_key(|r| match r.kind {
                MessageKind::Consulate => 0,
                MessageKind::SelfPhone => 2,
                _ => 1,
            });
            recipients
        }
        .into_iter()
        .map(|r| RecipientStatus {
            id: r.id,
            kind: r.kind,
            name: if names { r.name } else { None },
            status: r.status,
            reason: r.reason,
            safe_status: r.safe_status,
            unconfirmed: r.unconfirmed,
            resent: r.resent,
        })
        .collect(),
        previews: if names { previews } else { Vec::new() },
        limit_reached: false,
    }
}

/// The person's own alert, or 404 (also for anyone else's).
pub(super) async fn own_alert(state: &AppState, who: &Person, id: &str) -> ApiResult<AlertView> {
    let id = path_id(id)?;
    match state.store.alert(id).await? {
        Some(view) if view.person_id == who.person.id => Ok(view),
        _ => Err(ApiError::NotFound),
    }
}

fn check_key(key: &str) -> Result<(), Invalid> {
    let ok = (8..=128).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "idempotency_key",
            "idempotency_key_invalid",
            "idempotency_key is 8 to 128 letters, digits, - _ : or .",
        ))
    }
}

/// Press: raise an alert.
#[utoipa::path(post, path = "/api/v1/alerts", tag = "alerts",
    security(("device_token" = [])),
    request_body = AlertRequest,
    responses(
        (status = 202, description = "accepted: stored durably with every message it owes", body = AlertResponse),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 409, description = "profile incomplete", body = super::ErrorBody),
        (status = 422, body = super::ErrorBody),
        (status = 429, description = "too many alerts; see Retry-After", body = super::ErrorBody),
        (status = 503, description = "busy: as many presses as the server takes at once are in flight; send it again with the same key after Retry-After", body = super::ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Bearer(token_hash): Bearer,
    body: Result<ApiJson<AlertRequest>, ApiError>,
) -> ApiResult<(StatusCode, Json<AlertResponse>)> {
    // Shed load honestly: past the bound, an immediate 503 the app answers
    // by sending the same press again, not a wait that grows with the load.
    let Ok(_permit) = state.presses.clone().try_acquire_owned() else {
        metrics::counter!("avisa_alerts_refused_total", "reason" => "busy").increment(1);
        return Err(ApiError::Busy {
            retry_after_secs: 1,
        });
    };
    // A database that hangs rather than refuses: the press is answered
    // anyway. Stored later, it is found by the app's retry with its key.
    let deadline = state.config.limits.press_deadline;
    match tokio::time::timeout(deadline, take(state, token_hash, headers, body)).await {
        Ok(answer) => answer,
        Err(_) => {
            tracing::error!("a press was not answered within limits.press_deadline; 503");
            metrics::counter!("avisa_alerts_refused_total", "reason" => "deadline").increment(1);
            Err(ApiError::Busy {
                retry_after_secs: 2,
            })
        }
    }
}

/// The press itself, under [`create`]'s deadline.
async fn take(
    state: AppState,
    token_hash: Vec<u8>,
    headers: axum::http::HeaderMap,
    body: Result<ApiJson<AlertRequest>, ApiError>,
) -> ApiResult<(StatusCode, Json<AlertResponse>)> {
    let checked = body.and_then(|ApiJson(req)| {
        check_key(&req.idempotency_key)?;
        if let Some(at) = req.pressed_at
            && at < now_millis() - 7 * 24 * 3_600_000
        {
            return Err(Invalid::new(
                "pressed_at",
                "pressed_at_invalid",
                "pressed_at is milliseconds since the epoch, at most 7 days ago",
            )
            .into());
        }
        let location = req
            .location
            .map(Location::validated)
            .transpose()
            .map_err(ApiError::from)?;
        Ok((req, location))
    });
    let (req, location) = match checked {
        Ok(checked) => checked,
        Err(refusal) => {
            // An unknown device hears 401 before anything about its request.
            Person::authenticate(&state, &token_hash).await?;
            return Err(refusal);
        }
    };
    // The device, the person, the key's alert and the rate-limit count: one
    // read before the write.
    let lookup = state
        .store
        .press_lookup(
            &token_hash,
            &req.idempotency_key,
            state.alerting.window_start(now_millis()),
            req.practice,
        )
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let person = lookup.person.ok_or_else(not_verified)?;
    // Names in the answer only for a holder who gave the PIN.
    let names = crate::pin::access(
        &state,
        &headers,
        lookup.device.id,
        person.pin_hash.as_deref(),
    )
    .unlocked();
    let raised = state
        .alerting
        .raise(Raise {
            person,
            device_id: Some(lookup.device.id),
            idempotency_key: req.idempotency_key,
            source: avisa_core::AlertSource::App,
            practice: req.practice,
            pressed_at: req.pressed_at,
            location,
            seen: Some((lookup.existing, lookup.recent)),
            missed_checkin: None,
            quiet: false,
            caller: None,
        })
        .await?;
    let id = raised.id;
    state.dispatch_wake.notify_one();
    // A new alert is answered from what was just written (every message
    // queued); a retried one is read back as it stands now.
    let view = match raised.created {
        Some(mut alert) => AlertView {
            id: alert.id,
            person_id: alert.person_id,
            device_id: Some(lookup.device.id),
            state: AlertState::Active,
            practice: alert.practice,
            source: alert.source,
            consulate_id: alert.consulate_id,
            coverage: alert.coverage,
            created_at: alert.created_at,
            cancelled_at: None,
            duress_at: None,
            acknowledged_at: None,
            location: alert.location,
            caller: alert.caller.map(|c| c.as_str().to_string()),
            // The person's screens do not show it.
            case_number: None,
            recipients: {
                // The order GET gives: by fairness rank, then as written.
                alert.messages.sort_by_key(|m| m.rank);
                alert.messages
            }
            .into_iter()
            // The alert's own messages, as GET gives them (not a follow-up
            // such as the locator details).
            .filter(|m| m.purpose == avisa_store::Purpose::Alert)
            .map(|m| avisa_store::Recipient {
                id: m.id,
                kind: m.kind,
                name: m.name,
                status: OutboxStatus::Queued,
                reason: None,
                language: m.language,
                safe_status: None,
                unconfirmed: false,
                resent: false,
            })
            .collect(),
        },
        None => state.store.alert(id).await?.ok_or(ApiError::NotFound)?,
    };
    let mut body = response(
        &state,
        view,
        raised.previews,
        Viewer {
            unlocked: names,
            device_id: Some(lookup.device.id),
        },
    );
    body.limit_reached = raised.limit_reached;
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// The alert and each recipient's status.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts",
    security(("device_token" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = AlertResponse),
              (status = 401, description = "no token, or a token in the URL", body = super::ErrorBody),
              (status = 403, description = "device not verified", body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    who: Person,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertResponse>> {
    let view = own_alert(&state, &who, &id).await?;
    Ok(Json(response(&state, view, Vec::new(), Viewer::of(&who))))
}

/// The same as `GET /api/v1/alerts/{id}`, as a live stream (Server-Sent
/// Events, one `alert` event per change), read with `fetch` so the token
/// (and an unlock) travel as headers: a token in the URL is refused. A
/// server stopping ends it with a `reconnect` event (`retry: 1000`).
#[utoipa::path(get, path = "/api/v1/alerts/{id}/events", tag = "alerts",
    security(("device_token" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "text/event-stream"),
              (status = 401, description = "no token, or a token in the URL", body = super::ErrorBody),
              (status = 403, description = "device not verified", body = super::ErrorBody),
              (status = 404, body = super::ErrorBody),
              (status = 429, description = "too_many_streams: this phone holds streams_per_device open", body = super::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    who: Person,
    Path(id): Path<String>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let view = own_alert(&state, &who, &id).await?;
    let slot = state.streams.open(
        who.device_id.as_bytes(),
        state.config.limits.streams_per_device,
    )?;
    let alert_id = view.id;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(16);
    let mut changes = state.events.subscribe();
    let viewer = Viewer::of(&who);
    let mut draining = state.draining.subscribe();
    let task_state = state.clone();
    tokio::spawn(async move {
        // Held until the stream ends.
        let _slot = slot;
        let mut last = String::new();
        let mut poll = tokio::time::interval(Duration::from_secs(2));
        loop {
            let view = match task_state.store.alert(alert_id).await {
                Ok(Some(v)) => v,
                _ => return,
            };
            let json = serde_json::to_string(&response(&task_state, view, Vec::new(), viewer))
                .unwrap_or_default();
            if json != last {
                if tx
                    .send(Ok(Event::default().event("alert").data(json.clone())))
                    .await
                    .is_err()
                {
                    return; // the client went away
                }
                last = json;
            }
            // Read again only for a change to this alert (or a missed one),
            // or the poll that catches other processes' changes.
            loop {
                tokio::select! {
                    changed = changes.recv() => match changed {
                        Ok(c) if c.alert_id != alert_id => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        _ => break,
                    },
                    _ = poll.tick() => break,
                    _ = tx.closed() => return,
                    _ = draining.changed() => {
                        let _ = tx.try_send(Ok(crate::streams::reconnect()));
                        return;
                    }
                }
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}

/// This module's routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(create))
        .routes(utoipa_axum::routes!(get))
        .routes(utoipa_axum::routes!(events))
}
