//! The consulate console's JSON API (`/api/v1/console/…`).
//!
//! Staff log in with a password (argon2id) and get a session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS) holding a random
//! token stored only hashed, plus a CSRF token every state-changing request
//! must echo in `X-CSRF-Token`. Repeated failed logins lock the account.
//! Staff see only their consulate's alerts (CIAM sees all); anyone else's
//! alert is answered exactly like a missing one. Every view of an alert and
//! every action is written to the append-only audit log.

pub mod stats;

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;
use uuid::Uuid;

use avisa_core::crypto::{random_token, token_hash};
use avisa_core::{Location, now_millis};
use avisa_store::{AlertView, CaseAction, QueueFilter, Staff};

use crate::api::alerts::ConsulateRef;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, path_id};
use crate::state::AppState;

pub const COOKIE: &str = "avisa_console";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Shortest password a staff account may have.
pub const MIN_PASSWORD: usize = 12;
pub const ROLES: &[&str] = &["operator", "supervisor", "admin"];
pub const OUTCOMES: &[&str] = &[
    "false_alarm",
    "person_safe",
    "detained",
    "released",
    "no_contact",
    "other",
];

/// The staff member behind a request, from the session cookie; for
/// state-changing methods the CSRF token is checked too.
pub struct StaffSession {
    pub staff: Staff,
    pub csrf_token: String,
    token_hash: Vec<u8>,
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized
}

impl FromRequestParts<AppState> for StaffSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = cookie_token(&parts.headers).ok_or_else(unauthorized)?;
        let hash = token_hash(&token);
        let session = state.store.session(&hash).await?.ok_or_else(unauthorized)?;
        let now = now_millis();
        let max_ms = (state.config.console.session_max_hours * 3_600_000) as i64;
        if session.expires_at <= now || session.created_at + max_ms <= now {
            state.store.end_session(&hash).await?;
            return Err(unauthorized());
        }
        let staff = state
            .store
            .staff_by_id(session.staff_id)
            .await?
            .ok_or_else(unauthorized)?;
        if staff.disabled {
            return Err(unauthorized());
        }
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !avisa_core::crypto::constant_time_eq(
                given.as_bytes(),
                session.csrf_token.as_bytes(),
            ) {
                return Err(ApiError::Forbidden {
                    code: "csrf",
                    message: "missing or wrong X-CSRF-Token".into(),
                });
            }
        }
        // Sliding expiry, written at most once a minute.
        if now - session.last_seen_at > 60_000 {
            let idle = (state.config.console.session_idle_minutes * 60_000) as i64;
            state.store.touch_session(&hash, now, now + idle).await?;
        }
        Ok(StaffSession {
            staff,
            csrf_token: session.csrf_token,
            token_hash: hash,
        })
    }
}

impl StaffSession {
    fn is_ciam(&self) -> bool {
        self.staff.consulate_id == "ciam"
    }

    fn scope(&self) -> Option<String> {
        (!self.is_ciam()).then(|| self.staff.consulate_id.clone())
    }

    fn can_see(&self, consulate_id: Option<&str>) -> bool {
        self.is_ciam() || consulate_id == Some(self.staff.consulate_id.as_str())
    }

    fn require_supervisor(&self) -> ApiResult<()> {
        if self.staff.role == "operator" {
            return Err(ApiError::Forbidden {
                code: "forbidden_role",
                message: "supervisors and admins only".into(),
            });
        }
        Ok(())
    }

    async fn audit(
        &self,
        state: &AppState,
        alert_id: Option<Uuid>,
        action: &str,
        detail: Option<&str>,
    ) -> ApiResult<()> {
        state
            .store
            .audit(&self.staff, alert_id, action, detail, now_millis())
            .await?;
        Ok(())
    }
}

/// A real alert in the staff member's scope, or 404 (practice alerts, other
/// consulates' alerts and missing ones answer alike).
async fn alert_in_scope(state: &AppState, who: &StaffSession, id: &str) -> ApiResult<AlertView> {
    let id = path_id(id)?;
    match state.store.alert(id).await? {
        Some(view) if !view.practice && who.can_see(view.consulate_id.as_deref()) => Ok(view),
        _ => Err(ApiError::NotFound),
    }
}

// ---- login -------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub username: String,
    pub role: String,
    pub consulate: ConsulateRef,
    /// Echo it in `X-CSRF-Token` on every POST.
    pub csrf_token: String,
    pub escalate_after_seconds: u64,
    /// Map tiles, when configured.
    pub tile_url: Option<String>,
}

fn me(state: &AppState, staff: &Staff, csrf_token: String) -> Me {
    let consulate = if staff.consulate_id == "ciam" {
        ConsulateRef {
            id: "ciam".into(),
            name: "CIAM — Centro de Información y Asistencia a Personas Mexicanas (24 h)".into(),
            phone: Some(avisa_core::messages::CIAM_PHONE.into()),
        }
    } else {
        let office = state.directory.get(&staff.consulate_id);
        ConsulateRef {
            id: staff.consulate_id.clone(),
            name: office
                .map(|o| o.name.clone())
                .unwrap_or_else(|| staff.consulate_id.clone()),
            phone: office.and_then(|o| o.phone.clone()),
        }
    };
    Me {
        username: staff.username.clone(),
        role: staff.role.clone(),
        consulate,
        csrf_token,
        escalate_after_seconds: state.config.console.escalate_after_seconds,
        tile_url: Some(state.config.console.tile_url.clone()).filter(|t| !t.is_empty()),
    }
}

fn session_cookie(state: &AppState, token: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config.console.secure(&state.config.public_url) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Log in.
#[utoipa::path(post, path = "/api/v1/console/login", tag = "console", request_body = LoginRequest,
    responses((status = 200, body = Me), (status = 401, description = "wrong username or password", body = crate::api::ErrorBody),
              (status = 429, description = "locked after repeated failures", body = crate::api::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let failed = || ApiError::Forbidden {
        code: "login_failed",
        message: "wrong username or password".into(),
    };
    let now = now_millis();
    let row = state.store.staff_login_row(req.username.trim()).await?;
    let Some(row) = row else {
        // The same work as a real check, so timing does not tell which
        // usernames exist.
        let dummy = dummy_hash(&state).await?;
        crate::pin::verify_password(&state, req.password.clone(), dummy).await?;
        return Err(login_refused(failed()));
    };
    if let Some(until) = row.locked_until.filter(|u| *u > now) {
        return Err(ApiError::LoginLocked {
            retry_after_secs: ((until - now) / 1000).max(1) as u64,
        });
    }
    let ok = crate::pin::verify_password(&state, req.password.clone(), row.password_hash.clone())
        .await?;
    let staff = Staff::from(&row);
    if !ok || row.disabled {
        let max = state.config.console.lockout_failures as i32;
        let lock_until = now + (state.config.console.lockout_minutes * 60_000) as i64;
        let (_, locked) = state
            .store
            .staff_login_failed(row.id, max, lock_until)
            .await?;
        state
            .store
            .audit(&staff, None, "login_failed", None, now)
            .await?;
        tracing::warn!(staff_id = %row.id, "console login refused");
        if let Some(until) = locked.filter(|u| *u > now) {
            return Err(ApiError::LoginLocked {
                retry_after_secs: ((until - now) / 1000).max(1) as u64,
            });
        }
        return Err(login_refused(failed()));
    }
    state.store.staff_login_ok(row.id).await?;
    let token = random_token().map_err(anyhow::Error::new)?;
    let csrf = random_token().map_err(anyhow::Error::new)?.to_string();
    let idle = (state.config.console.session_idle_minutes * 60_000) as i64;
    state
        .store
        .create_session(row.id, token_hash(&token), csrf.clone(), now, now + idle)
        .await?;
    state.store.audit(&staff, None, "login", None, now).await?;
    let max_age = (state.config.console.session_max_hours * 3600) as i64;
    let mut response = Json(me(&state, &staff, csrf)).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, &token, max_age));
    Ok(response)
}

/// A login refusal is 401, whatever the reason.
fn login_refused(e: ApiError) -> ApiError {
    match e {
        ApiError::Forbidden { message, .. } => ApiError::LoginFailed { message },
        other => other,
    }
}

/// A hash of a random secret, checked against for unknown usernames so a
/// refusal takes the same time either way.
async fn dummy_hash(state: &AppState) -> ApiResult<String> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let hash = DUMMY
        .get_or_try_init(|| async {
            let secret = random_token().map_err(anyhow::Error::new)?.to_string();
            crate::pin::hash_password(state, secret).await
        })
        .await?;
    Ok(hash.clone())
}

/// Log out.
#[utoipa::path(post, path = "/api/v1/console/logout", tag = "console", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, who: StaffSession) -> ApiResult<Response> {
    state.store.end_session(&who.token_hash).await?;
    who.audit(&state, None, "logout", None).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(response)
}

/// Who is logged in (and the CSRF token, after a reload).
#[utoipa::path(get, path = "/api/v1/console/me", tag = "console", responses((status = 200, body = Me), (status = 401, body = crate::api::ErrorBody)))]
pub async fn whoami(State(state): State<AppState>, who: StaffSession) -> Json<Me> {
    Json(me(&state, &who.staff, who.csrf_token.clone()))
}

// ---- queue and detail ------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
pub struct QueueQuery {
    /// `new`, `acknowledged`, `resolved` or `cancelled`; default: open cases.
    pub state: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub from: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Delivery {
    pub total: i64,
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
}

#[derive(Serialize, ToSchema)]
pub struct QueueEntry {
    pub alert_id: Uuid,
    pub created_at: i64,
    pub age_seconds: i64,
    /// `active` or `cancelled` (by the person).
    pub state: String,
    /// `new`, `acknowledged` or `resolved`.
    pub case_state: String,
    pub escalated: bool,
    pub source: String,
    pub consulate_id: Option<String>,
    pub person_name: Option<String>,
    /// State (ISO 3166-2) of the newest location, when in the US.
    pub place: Option<String>,
    pub distance_km: Option<f64>,
    pub assigned_to: Option<String>,
    pub delivery: Delivery,
}

fn day_start(date: &str, field: &'static str) -> ApiResult<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date, &format)
        .map_err(|_| avisa_core::Invalid::new(field, "date_invalid", "dates are YYYY-MM-DD"))?;
    Ok(day.midnight().assume_utc().unix_timestamp() * 1000)
}

fn delivery(counts: &[(String, i64)]) -> Delivery {
    let get = |s: &str| {
        counts
            .iter()
            .filter(|(k, _)| k == s)
            .map(|(_, n)| n)
            .sum::<i64>()
    };
    Delivery {
        total: counts.iter().map(|(_, n)| n).sum(),
        queued: get("queued") + get("sending"),
        sent: get("sent"),
        delivered: get("delivered"),
        failed: get("failed") + get("expired"),
    }
}

async fn usernames(state: &AppState) -> ApiResult<std::collections::HashMap<Uuid, String>> {
    Ok(state
        .store
        .staff_all()
        .await?
        .into_iter()
        .map(|s| (s.id, s.username))
        .collect())
}

/// The live queue: unacknowledged first, oldest first.
#[utoipa::path(get, path = "/api/v1/console/alerts", tag = "console", params(
        ("state" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query)),
    responses((status = 200, body = [QueueEntry]), (status = 401, body = crate::api::ErrorBody)))]
pub async fn queue(
    State(state): State<AppState>,
    who: StaffSession,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Json<Vec<QueueEntry>>> {
    if let Some(s) = q.state.as_deref()
        && !["new", "acknowledged", "resolved", "cancelled"].contains(&s)
    {
        return Err(avisa_core::Invalid::new(
            "state",
            "state_invalid",
            "state is new, acknowledged, resolved or cancelled",
        )
        .into());
    }
    let filter = QueueFilter {
        consulate_id: who.scope(),
        state: q.state.clone(),
        from: q
            .from
            .as_deref()
            .map(|d| day_start(d, "from"))
            .transpose()?,
        to: q
            .to
            .as_deref()
            .map(|d| day_start(d, "to").map(|t| t + 86_400_000))
            .transpose()?,
        limit: 500,
    };
    let now = now_millis();
    let names = usernames(&state).await?;
    let items = state.store.queue(&filter).await?;
    Ok(Json(
        items
            .into_iter()
            .map(|i| {
                let office = i
                    .consulate_id
                    .as_deref()
                    .and_then(|c| state.directory.get(c));
                QueueEntry {
                    alert_id: i.alert_id,
                    created_at: i.created_at,
                    age_seconds: (now - i.created_at) / 1000,
                    state: i.state,
                    case_state: i.case.state.clone(),
                    escalated: i.case.escalated_at.is_some(),
                    source: i.source,
                    person_name: i.person_name,
                    place: i
                        .location
                        .and_then(|l| avisa_core::directory::place_of(l.lat, l.lon).subdivision),
                    distance_km: match (i.location, office) {
                        (Some(l), Some(o)) => {
                            Some((l.distance_km(o.lat, o.lon) * 10.0).round() / 10.0)
                        }
                        _ => None,
                    },
                    consulate_id: i.consulate_id,
                    assigned_to: i.case.assigned_to.and_then(|s| names.get(&s).cloned()),
                    delivery: delivery(&i.delivery),
                }
            })
            .collect(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct PersonInfo {
    pub name: Option<String>,
    pub phone: String,
    pub language: String,
    pub home_state: Option<String>,
    pub home_county: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TrailPoint {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub at: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TimelineEntry {
    pub at: i64,
    /// `created`, `location`, `message_sent`, `message_delivered`,
    /// `message_failed`, `cancelled`, `acknowledged`, `assigned`, `note`,
    /// `resolved`, `reopened`, `escalated`.
    pub kind: String,
    pub staff: Option<String>,
    pub detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CaseInfo {
    pub state: String,
    pub assigned_to: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub escalated_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub outcome: Option<String>,
    pub outcome_detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AlertDetail {
    pub alert_id: Uuid,
    pub created_at: i64,
    pub state: String,
    pub source: String,
    pub coverage: &'static str,
    pub consulate: Option<ConsulateRef>,
    /// Coordinates of the consulate, to measure the distance on the map.
    pub consulate_location: Option<Location>,
    pub person: PersonInfo,
    pub location: Option<Location>,
    pub distance_km: Option<f64>,
    pub trail: Vec<TrailPoint>,
    pub recipients: Vec<crate::api::alerts::RecipientStatus>,
    pub case: CaseInfo,
    pub timeline: Vec<TimelineEntry>,
}

async fn detail(state: &AppState, view: AlertView) -> ApiResult<AlertDetail> {
    let id = view.id;
    let person = state
        .store
        .person(view.person_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let case = state.store.case(id).await?.unwrap_or_default();
    let names = usernames(state).await?;
    let name = |s: Option<Uuid>| s.and_then(|s| names.get(&s).cloned());
    let trail = state.store.trail(id).await?;
    let office = view
        .consulate_id
        .as_deref()
        .and_then(|c| state.directory.get(c));
    let mut timeline = vec![TimelineEntry {
        at: view.created_at,
        kind: "created".into(),
        staff: None,
        detail: Some(view.source.clone()),
    }];
    for (loc, at) in trail.iter().skip(1) {
        timeline.push(TimelineEntry {
            at: *at,
            kind: "location".into(),
            staff: None,
            detail: Some(format!("{:.5},{:.5}", loc.lat, loc.lon)),
        });
    }
    if let Some(at) = view.cancelled_at {
        timeline.push(TimelineEntry {
            at,
            kind: "cancelled".into(),
            staff: None,
            detail: None,
        });
    }
    for e in state.store.case_events(id).await? {
        timeline.push(TimelineEntry {
            at: e.at,
            kind: e.kind,
            staff: name(e.staff_id),
            detail: e.detail,
        });
    }
    timeline.sort_by_key(|t| t.at);
    let response = crate::api::alerts::response(state, view.clone(), Vec::new());
    Ok(AlertDetail {
        alert_id: id,
        created_at: view.created_at,
        state: view.state,
        source: view.source,
        coverage: view.coverage.as_str(),
        consulate: response.consulate,
        consulate_location: office.map(|o| Location {
            lat: o.lat,
            lon: o.lon,
            accuracy_m: None,
        }),
        person: PersonInfo {
            name: person.profile.name,
            phone: person.phone.to_string(),
            language: person.profile.language.code().into(),
            home_state: person.profile.home_state,
            home_county: person.profile.home_county,
        },
        distance_km: match (view.location, office) {
            (Some(l), Some(o)) => Some((l.distance_km(o.lat, o.lon) * 10.0).round() / 10.0),
            _ => None,
        },
        location: view.location,
        trail: trail
            .into_iter()
            .map(|(l, at)| TrailPoint {
                lat: l.lat,
                lon: l.lon,
                accuracy_m: l.accuracy_m,
                at,
            })
            .collect(),
        recipients: response.recipients,
        case: CaseInfo {
            state: case.state,
            assigned_to: name(case.assigned_to),
            acknowledged_at: case.acknowledged_at,
            acknowledged_by: name(case.acknowledged_by),
            escalated_at: case.escalated_at,
            resolved_at: case.resolved_at,
            outcome: case.outcome,
            outcome_detail: case.outcome_detail,
        },
        timeline,
    })
}

/// One alert, with the person, the map trail, deliveries and the timeline.
/// The view is audited.
#[utoipa::path(get, path = "/api/v1/console/alerts/{id}", tag = "console", params(("id" = Uuid, Path)),
    responses((status = 200, body = AlertDetail), (status = 404, body = crate::api::ErrorBody)))]
pub async fn alert(
    State(state): State<AppState>,
    who: StaffSession,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertDetail>> {
    let view = alert_in_scope(&state, &who, &id).await?;
    who.audit(&state, Some(view.id), "view", None).await?;
    Ok(Json(detail(&state, view).await?))
}

// ---- case handling -----------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    pub username: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    pub text: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `false_alarm`, `person_safe`, `detained`, `released`, `no_contact`, `other`.
    pub outcome: String,
    /// Where the person is held (from the facility list, or typed), or
    /// other detail.
    #[serde(default)]
    pub detail: Option<String>,
}

async fn act(
    state: &AppState,
    who: &StaffSession,
    id: &str,
    action: CaseAction,
    audit_detail: Option<&str>,
) -> ApiResult<Json<AlertDetail>> {
    let view = alert_in_scope(state, who, id).await?;
    let name = match &action {
        CaseAction::Acknowledge => "acknowledge",
        CaseAction::Assign { .. } => "assign",
        CaseAction::Note { .. } => "note",
        CaseAction::Resolve { .. } => "resolve",
        CaseAction::Reopen => "reopen",
    };
    if !state
        .store
        .change_case(view.id, who.staff.id, &action, now_millis())
        .await?
    {
        return Err(ApiError::Conflict {
            code: "case_state",
            message: format!("this case cannot be {name}d in its current state"),
        });
    }
    who.audit(state, Some(view.id), name, audit_detail).await?;
    tracing::info!(alert_id = %view.id, action = name, "case updated");
    state.events.publish(view.id);
    Ok(Json(detail(state, view).await?))
}

/// Take the case.
#[utoipa::path(post, path = "/api/v1/console/alerts/{id}/acknowledge", tag = "console", params(("id" = Uuid, Path)),
    responses((status = 200, body = AlertDetail), (status = 403, description = "CSRF", body = crate::api::ErrorBody),
              (status = 404, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    who: StaffSession,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertDetail>> {
    act(&state, &who, &id, CaseAction::Acknowledge, None).await
}

/// Assign the case to a colleague (one who can see it).
#[utoipa::path(post, path = "/api/v1/console/alerts/{id}/assign", tag = "console", params(("id" = Uuid, Path)),
    request_body = AssignRequest, responses((status = 200, body = AlertDetail), (status = 422, body = crate::api::ErrorBody)))]
pub async fn assign(
    State(state): State<AppState>,
    who: StaffSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AssignRequest>,
) -> ApiResult<Json<AlertDetail>> {
    let view = alert_in_scope(&state, &who, &id).await?;
    let target = state.store.staff_by_username(req.username.trim()).await?;
    let Some(target) = target.filter(|t| {
        !t.disabled
            && (t.consulate_id == "ciam"
                || Some(t.consulate_id.as_str()) == view.consulate_id.as_deref())
    }) else {
        return Err(avisa_core::Invalid::new(
            "username",
            "staff_invalid",
            "no active colleague with that username can see this case",
        )
        .into());
    };
    let username = target.username.clone();
    act(
        &state,
        &who,
        &id,
        CaseAction::Assign {
            to: target.id,
            username: username.clone(),
        },
        Some(&username),
    )
    .await
}

/// Add a note to the case.
#[utoipa::path(post, path = "/api/v1/console/alerts/{id}/notes", tag = "console", params(("id" = Uuid, Path)),
    request_body = NoteRequest, responses((status = 200, body = AlertDetail), (status = 422, body = crate::api::ErrorBody)))]
pub async fn note(
    State(state): State<AppState>,
    who: StaffSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NoteRequest>,
) -> ApiResult<Json<AlertDetail>> {
    let text = req.text.trim();
    if text.is_empty() || text.chars().count() > 4000 {
        return Err(avisa_core::Invalid::new(
            "text",
            "note_invalid",
            "a note has 1 to 4000 characters",
        )
        .into());
    }
    act(
        &state,
        &who,
        &id,
        CaseAction::Note {
            text: text.to_string(),
        },
        None,
    )
    .await
}

/// Resolve the case with an outcome.
#[utoipa::path(post, path = "/api/v1/console/alerts/{id}/resolve", tag = "console", params(("id" = Uuid, Path)),
    request_body = ResolveRequest, responses((status = 200, body = AlertDetail), (status = 409, body = crate::api::ErrorBody),
                                             (status = 422, body = crate::api::ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    who: StaffSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> ApiResult<Json<AlertDetail>> {
    if !OUTCOMES.contains(&req.outcome.as_str()) {
        return Err(avisa_core::Invalid::new(
            "outcome",
            "outcome_invalid",
            format!("outcome is one of {}", OUTCOMES.join(", ")),
        )
        .into());
    }
    let detail = req
        .detail
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    if detail.as_ref().is_some_and(|d| d.chars().count() > 300) {
        return Err(avisa_core::Invalid::new(
            "detail",
            "too_long",
            "the detail has at most 300 characters",
        )
        .into());
    }
    if req.outcome == "detained" && detail.is_none() {
        return Err(avisa_core::Invalid::new(
            "detail",
            "facility_required",
            "say where the person is held (pick a facility or type one)",
        )
        .into());
    }
    let outcome = req.outcome.clone();
    act(
        &state,
        &who,
        &id,
        CaseAction::Resolve {
            outcome: req.outcome,
            detail,
        },
        Some(&outcome),
    )
    .await
}

/// Reopen a resolved case.
#[utoipa::path(post, path = "/api/v1/console/alerts/{id}/reopen", tag = "console", params(("id" = Uuid, Path)),
    responses((status = 200, body = AlertDetail), (status = 409, body = crate::api::ErrorBody)))]
pub async fn reopen(
    State(state): State<AppState>,
    who: StaffSession,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertDetail>> {
    act(&state, &who, &id, CaseAction::Reopen, None).await
}

// ---- live events, colleagues, facilities, audit -------------------------------------

/// Changes to alerts in scope, as they happen (SSE `changed` events with the
/// alert id; the console re-reads its queue).
#[utoipa::path(get, path = "/api/v1/console/events", tag = "console", responses((status = 200, content_type = "text/event-stream")))]
pub async fn events(State(state): State<AppState>, who: StaffSession) -> impl IntoResponse {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
    let mut changes = state.events.subscribe();
    let scope = who.scope();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = changes.recv() => {
                    let id = match changed {
                        Ok(id) => id,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Uuid::nil(),
                        Err(_) => return,
                    };
                    let visible = if id.is_nil() {
                        true // missed some: tell the console to re-read
                    } else {
                        match state.store.alert(id).await {
                            Ok(Some(a)) => !a.practice && (scope.is_none() || a.consulate_id == scope),
                            _ => false,
                        }
                    };
                    if visible && tx.send(Ok(Event::default().event("changed").data(id.to_string()))).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(Serialize, ToSchema)]
pub struct Colleague {
    pub username: String,
    pub consulate_id: String,
    pub role: String,
}

/// Colleagues a case can be assigned to: the same consulate's staff and CIAM.
#[utoipa::path(get, path = "/api/v1/console/staff", tag = "console", responses((status = 200, body = [Colleague])))]
pub async fn colleagues(
    State(state): State<AppState>,
    who: StaffSession,
) -> ApiResult<Json<Vec<Colleague>>> {
    Ok(Json(
        state
            .store
            .staff_all()
            .await?
            .into_iter()
            .filter(|s| {
                !s.disabled
                    && (who.is_ciam()
                        || s.consulate_id == who.staff.consulate_id
                        || s.consulate_id == "ciam")
            })
            .map(|s| Colleague {
                username: s.username,
                consulate_id: s.consulate_id,
                role: s.role,
            })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct FacilityQuery {
    pub q: Option<String>,
}

/// Search the embedded list of detention facilities.
#[utoipa::path(get, path = "/api/v1/console/facilities", tag = "console", params(("q" = Option<String>, Query)),
    responses((status = 200, body = [avisa_core::facilities::Facility])))]
pub async fn facilities(
    _who: StaffSession,
    Query(q): Query<FacilityQuery>,
) -> Json<Vec<avisa_core::facilities::Facility>> {
    Json(
        avisa_core::facilities::search(q.q.as_deref().unwrap_or(""), 20)
            .into_iter()
            .cloned()
            .collect(),
    )
}

#[derive(Deserialize, ToSchema)]
pub struct AuditQuery {
    pub alert_id: Option<Uuid>,
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditLine {
    pub id: i64,
    pub at: i64,
    pub staff: String,
    pub consulate_id: String,
    pub alert_id: Option<Uuid>,
    pub action: String,
    pub detail: Option<String>,
}

/// The audit log (supervisors and admins; a consulate's own entries, or all
/// for CIAM). Reading it is itself audited.
#[utoipa::path(get, path = "/api/v1/console/audit", tag = "console", params(("alert_id" = Option<Uuid>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = [AuditLine]), (status = 403, body = crate::api::ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    who: StaffSession,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditLine>>> {
    who.require_supervisor()?;
    if let Some(id) = q.alert_id {
        // Entries about an alert the staff member cannot see are not theirs to read.
        alert_in_scope(&state, &who, &id.to_string()).await?;
    }
    who.audit(&state, q.alert_id, "read_audit", None).await?;
    let rows = state
        .store
        .audit_log(
            q.alert_id,
            who.scope().as_deref(),
            q.limit.unwrap_or(200).clamp(1, 1000),
        )
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|a| AuditLine {
                id: a.id,
                at: a.at,
                staff: a.staff_username,
                consulate_id: a.consulate_id,
                alert_id: a.alert_id,
                action: a.action,
                detail: a.detail,
            })
            .collect(),
    ))
}
