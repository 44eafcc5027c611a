//! One alert as a case: its detail (person, trail, messages, timeline) and
//! what staff do with it (acknowledge, assign, note, resolve, reopen).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use avisa_core::{
    AlertSource, AlertState, AuditAction, CaseState, Coverage, Location, Outcome, now_millis,
};
use avisa_store::{AlertView, CaseAction};

use super::queue::usernames;
use super::{StaffSession, alert_in_scope};
use crate::api::alerts::ConsulateRef;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct PersonInfo {
    pub name: Option<String>,
    pub phone: String,
    pub language: String,
    pub home_state: Option<String>,
    pub home_county: Option<String>,
    /// What ICE's detainee locator needs to find the person (legal name,
    /// country and date of birth, A-number), when they wrote it.
    pub locator: Option<crate::api::locator::LocatorBody>,
}

#[derive(Serialize, ToSchema)]
pub struct TrailPoint {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub at: i64,
    /// Too far from the point before for the time between them: kept, to
    /// be judged (a bad fix, or a wrong phone).
    pub implausible: bool,
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
    pub state: CaseState,
    pub assigned_to: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub escalated_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub outcome: Option<Outcome>,
    pub outcome_detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AlertDetail {
    pub alert_id: Uuid,
    /// The number staff say ("LAX-2026-0042"); null for alerts from before
    /// case numbers.
    pub case_number: Option<String>,
    pub created_at: i64,
    pub state: AlertState,
    /// When the person "cancelled" with the duress PIN: forced, the alert
    /// stands.
    pub duress_at: Option<i64>,
    pub source: AlertSource,
    /// The number the alert was raised from when it is not the person's own
    /// phone (the voice line, "AYUDA" by SMS from another phone): a
    /// facility's phone or a borrowed one, worth calling back.
    pub caller: Option<String>,
    pub coverage: Coverage,
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
    /// The check-in timer that raised it: the appointment the person did
    /// not come back from ("cita no confirmada").
    pub checkin: Option<CheckinPlan>,
    /// A resolved case's retention: when its trail, then its personal
    /// fields, are erased ("se borra el …"). None while it is open.
    pub erased_at: Option<ErasedAt>,
    /// What each recipient was sent (by recipient id); `text` is null once
    /// retention wiped it (`retention.message_bodies` after it was final).
    pub messages: Vec<MessageText>,
    /// The person's other real alerts in the staff member's scope, newest
    /// first (at most 20).
    pub earlier: Vec<EarlierAlert>,
    /// The nearest town to the newest location, from the gazetteer built
    /// into the binary (GeoNames, CC BY 4.0): no location leaves the server.
    pub place: Option<NearestPlace>,
    /// The three detention facilities nearest to the newest location (the
    /// embedded ICE list), where to ask first.
    pub facilities_near: Vec<FacilityNear>,
}

#[derive(Serialize, ToSchema)]
pub struct FacilityNear {
    pub name: String,
    pub city: String,
    pub state: String,
    pub distance_km: f64,
}

/// A town of the offline gazetteer and how far the point is from it.
#[derive(Serialize, ToSchema)]
pub struct NearestPlace {
    pub name: String,
    /// The state ("California", "Jalisco").
    pub admin: String,
    /// ISO 3166-1 ("US", "MX").
    pub country: String,
    pub distance_km: f64,
}

#[derive(Serialize, ToSchema)]
pub struct MessageText {
    pub recipient_id: Uuid,
    pub text: Option<String>,
    /// The number it went to (a contact to call back); null once the
    /// case's personal data is erased.
    pub to: Option<String>,
    /// When the gateway took it.
    pub sent_at: Option<i64>,
    /// Its last change: the delivery receipt or the failure.
    pub updated_at: i64,
}

/// One of the person's other real alerts in the staff member's scope.
#[derive(Serialize, ToSchema)]
pub struct EarlierAlert {
    pub alert_id: Uuid,
    pub case_number: Option<String>,
    pub created_at: i64,
    pub state: AlertState,
    pub case_state: CaseState,
    pub outcome: Option<Outcome>,
}

/// When retention erases parts of a resolved case (`[retention]`).
#[derive(Serialize, ToSchema)]
pub struct ErasedAt {
    pub trail: i64,
    pub personal: i64,
}

/// A check-in timer's plan, as the person wrote it.
#[derive(Serialize, ToSchema)]
pub struct CheckinPlan {
    pub appointment_at: i64,
    pub deadline: i64,
    pub place: Option<String>,
    pub note: Option<String>,
    /// Forced: the person checked out (or moved or cancelled the timer)
    /// with the duress PIN.
    pub forced: bool,
}

async fn detail(state: &AppState, who: &StaffSession, view: AlertView) -> ApiResult<AlertDetail> {
    let id = view.id;
    let person = state
        .store
        .person(view.person_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let case = state.store.case(id).await?.ok_or(ApiError::NotFound)?;
    let names = usernames(state).await?;
    let name = |s: Option<Uuid>| s.and_then(|s| names.get(&s).cloned());
    let trail = state.store.trail(id).await?;
    let checkin = state
        .store
        .checkin_of_alert(id)
        .await?
        .map(|c| CheckinPlan {
            appointment_at: c.appointment_at,
            deadline: c.deadline,
            place: c.place,
            note: c.note,
            forced: view.duress_at.is_some(),
        });
    let office = view
        .consulate_id
        .as_deref()
        .and_then(|c| state.alerting.directory().get(c));
    let mut timeline = vec![TimelineEntry {
        at: view.created_at,
        kind: "created".into(),
        staff: None,
        detail: Some(view.source.as_str().into()),
    }];
    for fix in trail.iter().skip(1) {
        let (loc, flag) = (&fix.location, if fix.implausible { " ⚠" } else { "" });
        timeline.push(TimelineEntry {
            at: fix.at,
            kind: "location".into(),
            staff: None,
            detail: Some(format!("{:.5},{:.5}{flag}", loc.lat, loc.lon)),
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
            kind: e.kind.as_str().into(),
            staff: name(e.staff_id),
            detail: e.detail,
        });
    }
    timeline.sort_by_key(|t| t.at);
    let retention = &state.config.retention;
    let erased_at = state
        .store
        .erased_at(
            id,
            crate::config::millis(retention.resolved_trail),
            crate::config::millis(retention.resolved_personal),
        )
        .await?
        .map(|(trail, personal)| ErasedAt { trail, personal });
    let response = crate::api::alerts::response(
        state,
        view.clone(),
        Vec::new(),
        crate::extract::Viewer {
            unlocked: true,
            device_id: None,
        },
    );
    let earlier = state
        .store
        .person_alerts(view.person_id, 21)
        .await?
        .into_iter()
        .filter(|a| a.id != id && who.can_see(a.consulate_id.as_deref()))
        .take(20)
        .map(|a| EarlierAlert {
            alert_id: a.id,
            case_number: a.case_number,
            created_at: a.created_at,
            state: a.state,
            case_state: a.case_state,
            outcome: a.outcome,
        })
        .collect();
    Ok(AlertDetail {
        alert_id: id,
        case_number: view.case_number.clone(),
        created_at: view.created_at,
        state: view.state,
        duress_at: view.duress_at,
        source: view.source,
        caller: view.caller.clone(),
        coverage: view.coverage,
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
            // A failed read leaves the case without it, never unreadable.
            locator: match avisa_engine::alerting::stored_locator(&state.store, view.person_id)
                .await
            {
                Ok(l) => l.map(crate::api::locator::LocatorBody::from),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the locator details");
                    None
                }
            },
        },
        distance_km: match (view.location, office) {
            (Some(l), Some(o)) => Some((l.distance_km(o.lat, o.lon) * 10.0).round() / 10.0),
            _ => None,
        },
        location: view.location,
        trail: trail
            .into_iter()
            .map(|f| TrailPoint {
                lat: f.location.lat,
                lon: f.location.lon,
                accuracy_m: f.location.accuracy_m,
                at: f.at,
                implausible: f.implausible,
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
        checkin,
        erased_at,
        messages: state
            .store
            .message_texts(id)
            .await?
            .into_iter()
            .map(|m| MessageText {
                recipient_id: m.recipient_id,
                text: m.text,
                to: m.to,
                sent_at: m.sent_at,
                updated_at: m.updated_at,
            })
            .collect(),
        earlier,
        facilities_near: view
            .location
            .map(|l| avisa_core::facilities::nearest(l.lat, l.lon, 3))
            .unwrap_or_default()
            .into_iter()
            .map(|(f, km)| FacilityNear {
                name: f.name.clone(),
                city: f.city.clone(),
                state: f.state.clone(),
                distance_km: (km * 10.0).round() / 10.0,
            })
            .collect(),
        place: view.location.and_then(|l| {
            avisa_core::gazetteer::nearest(l.lat, l.lon).map(|p| NearestPlace {
                name: p.name.to_string(),
                admin: p.admin.to_string(),
                country: p.country.to_string(),
                distance_km: (p.distance_km * 10.0).round() / 10.0,
            })
        }),
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
    who.audit(&state, Some(view.id), AuditAction::View, None)
        .await?;
    Ok(Json(detail(&state, &who, view).await?))
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
    #[schema(
        max_length = 4000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*[^\s\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$"
    )]
    pub text: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `false_alarm`, `person_safe`, `detained`, `released`, `no_contact`, `other`.
    #[schema(value_type = avisa_core::Outcome)]
    pub outcome: String,
    /// Where the person is held (from the facility list, or typed), or
    /// other detail.
    #[serde(default)]
    #[schema(
        max_length = 300,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$"
    )]
    pub detail: Option<String>,
}

pub(super) async fn act(
    state: &AppState,
    who: &StaffSession,
    id: &str,
    action: CaseAction,
    audit_detail: Option<&str>,
) -> ApiResult<Json<AlertDetail>> {
    let view = alert_in_scope(state, who, id).await?;
    let audited = action.audit_action();
    if !state
        .store
        .change_case(view.id, who.staff.id, &action, now_millis())
        .await?
    {
        return Err(ApiError::Conflict {
            code: "case_state",
            message: format!(
                "this case cannot be {} in its current state",
                action.event_kind()
            ),
        });
    }
    who.audit(state, Some(view.id), audited, audit_detail)
        .await?;
    tracing::info!(alert_id = %view.id, action = audited.as_str(), "case updated");
    state.events.publish_scoped(view.id, view.scope());
    Ok(Json(detail(state, who, view).await?))
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
    if text.is_empty() || req.text.chars().count() > 4000 {
        return Err(avisa_core::Invalid::new(
            "text",
            "note_invalid",
            "a note has 1 to 4000 characters",
        )
        .into());
    }
    avisa_core::invalid::check_visible("text", text)?;
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
    let Ok(outcome) = req.outcome.parse::<Outcome>() else {
        let all: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        return Err(avisa_core::Invalid::new(
            "outcome",
            "outcome_invalid",
            format!("outcome is one of {}", all.join(", ")),
        )
        .into());
    };
    let detail = req
        .detail
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    if req.detail.as_ref().is_some_and(|d| d.chars().count() > 300) {
        return Err(avisa_core::Invalid::new(
            "detail",
            "too_long",
            "the detail has at most 300 characters",
        )
        .into());
    }
    if let Some(d) = &detail {
        avisa_core::invalid::check_visible("detail", d)?;
    }
    if outcome == Outcome::Detained && detail.is_none() {
        return Err(avisa_core::Invalid::new(
            "detail",
            "facility_required",
            "say where the person is held (pick a facility or type one)",
        )
        .into());
    }
    act(
        &state,
        &who,
        &id,
        CaseAction::Resolve { outcome, detail },
        // Who resolved it, not how: the audit outlives a deleted person's
        // case, and the outcome is sealed with the case.
        None,
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
