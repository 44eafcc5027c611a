//! The live queue of alerts in the staff member's scope.

use axum::Json;
use axum::extract::State;

use crate::extract::ApiQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use avisa_core::now_millis;
use avisa_core::{AlertSource, AlertState, AuditAction, CaseState, OutboxStatus};
use avisa_store::{QueueFilter, QueueView};

use super::StaffSession;
use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct QueueQuery {
    /// `new`, `acknowledged`, `resolved` or `cancelled`; default: open cases.
    pub state: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub from: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub to: Option<String>,
}

/// The cases a queue shows, for the OpenAPI document (the handler reads
/// the text and answers `state_invalid` for anything else).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum QueueState {
    New,
    Acknowledged,
    Resolved,
    Cancelled,
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
    /// The number staff say ("LAX-2026-0042"); null for alerts from before
    /// case numbers.
    pub case_number: Option<String>,
    pub created_at: i64,
    pub age_seconds: i64,
    /// `active` or `cancelled` (by the person).
    pub state: AlertState,
    /// When the person "cancelled" with the duress PIN: forced, the alert
    /// stands (state stays `active`); such a case tops the queue.
    pub duress_at: Option<i64>,
    pub case_state: CaseState,
    pub escalated: bool,
    pub source: AlertSource,
    pub consulate_id: Option<String>,
    pub person_name: Option<String>,
    /// State (ISO 3166-2) of the newest location, when in the US.
    pub place: Option<String>,
    pub distance_km: Option<f64>,
    pub assigned_to: Option<String>,
    pub delivery: Delivery,
}

pub(super) fn day_start(date: &str, field: &'static str) -> ApiResult<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date, &format)
        .map_err(|_| avisa_core::Invalid::new(field, "date_invalid", "dates are YYYY-MM-DD"))?;
    Ok(day.midnight().assume_utc().unix_timestamp() * 1000)
}

pub(super) fn delivery(counts: &[(OutboxStatus, i64)]) -> Delivery {
    let get = |s: OutboxStatus| {
        counts
            .iter()
            .filter(|(k, _)| *k == s)
            .map(|(_, n)| n)
            .sum::<i64>()
    };
    Delivery {
        total: counts.iter().map(|(_, n)| n).sum(),
        queued: get(OutboxStatus::Queued) + get(OutboxStatus::Sending),
        sent: get(OutboxStatus::Sent),
        delivered: get(OutboxStatus::Delivered),
        failed: get(OutboxStatus::Failed) + get(OutboxStatus::Expired),
    }
}

pub(super) async fn usernames(
    state: &AppState,
) -> ApiResult<std::collections::HashMap<Uuid, String>> {
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
        ("state" = inline(Option<QueueState>), Query, description = "default: the open cases"),
        ("from" = Option<String>, Query, format = Date, description = "YYYY-MM-DD (UTC), inclusive"),
        ("to" = Option<String>, Query, format = Date, description = "YYYY-MM-DD (UTC), inclusive")),
    responses((status = 200, body = [QueueEntry]), (status = 401, body = crate::api::ErrorBody)))]
pub async fn queue(
    State(state): State<AppState>,
    who: StaffSession,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> ApiResult<Json<Vec<QueueEntry>>> {
    let view = match q.state.as_deref() {
        None => QueueView::Open,
        Some("new") => QueueView::New,
        Some("acknowledged") => QueueView::Acknowledged,
        Some("resolved") => QueueView::Resolved,
        Some("cancelled") => QueueView::Cancelled,
        Some(_) => {
            return Err(avisa_core::Invalid::new(
                "state",
                "state_invalid",
                "state is new, acknowledged, resolved or cancelled",
            )
            .into());
        }
    };
    let filter = QueueFilter {
        consulate_id: who.scope(),
        view,
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
    // A search through past or filtered cases leaves a trace; the live
    // queue, polled all shift long, does not.
    let searched: Vec<String> = [("state", &q.state), ("from", &q.from), ("to", &q.to)]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| format!("{k}={v}")))
        .collect();
    if !searched.is_empty() {
        who.audit(&state, None, AuditAction::Search, Some(&searched.join(" ")))
            .await?;
    }
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
                    .and_then(|c| state.alerting.directory().get(c));
                QueueEntry {
                    alert_id: i.alert_id,
                    case_number: i.case_number,
                    created_at: i.created_at,
                    age_seconds: (now - i.created_at) / 1000,
                    state: i.state,
                    duress_at: i.duress_at,
                    case_state: i.case.state,
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
