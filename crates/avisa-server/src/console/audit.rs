//! The audit log, for supervisors and admins.

use axum::Json;
use axum::extract::State;

use crate::extract::ApiQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{StaffSession, alert_in_scope};
use avisa_core::AuditAction;

use crate::error::ApiResult;
use crate::state::AppState;

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
    /// The alert's case number ("LAX-2026-0042"), when it has one.
    pub case_number: Option<String>,
    pub action: AuditAction,
    pub detail: Option<String>,
}

/// The audit log (supervisors and admins; for a consulate, its staff's
/// entries and every entry on its cases, CIAM's and refused attempts
/// included; all for CIAM). Its own staff's refused tries on a case it
/// cannot see carry no alert id or case number. Reading it is itself
/// audited.
#[utoipa::path(get, path = "/api/v1/console/audit", tag = "console", params(("alert_id" = Option<Uuid>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = [AuditLine]), (status = 403, body = crate::api::ErrorBody),
              (status = 404, description = "alert_id names no alert this staff member may see", body = crate::api::ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    who: StaffSession,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditLine>>> {
    who.require_supervisor()?;
    if let Some(id) = q.alert_id {
        // Entries about an alert the staff member cannot see are not theirs to read.
        alert_in_scope(&state, &who, &id.to_string()).await?;
    }
    who.audit(&state, q.alert_id, AuditAction::ReadAudit, None)
        .await?;
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
                case_number: a.case_number,
                action: a.action,
                detail: a.detail,
            })
            .collect(),
    ))
}
