//! Look-ups for case forms: colleagues to assign to, detention facilities.

use axum::Json;
use axum::extract::State;

use crate::extract::ApiQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::StaffSession;
use avisa_core::Role;

use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Colleague {
    pub username: String,
    pub consulate_id: String,
    pub role: Role,
}

/// Colleagues a case can be assigned to: the same consulate's staff (CIAM
/// sees everyone's). CIAM's own names and roles are not listed to offices.
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
                !s.disabled && (who.staff.sees_all() || s.consulate_id == who.staff.consulate_id)
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
    ApiQuery(q): ApiQuery<FacilityQuery>,
) -> Json<Vec<avisa_core::facilities::Facility>> {
    Json(
        avisa_core::facilities::search(q.q.as_deref().unwrap_or(""), 20)
            .into_iter()
            .cloned()
            .collect(),
    )
}
