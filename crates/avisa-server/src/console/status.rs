//! The console's status bar: whether the SMS gateways of this server take
//! messages (a gateway refusing our account is out of service, and staff
//! must know alerts may be waiting).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::StaffSession;
use crate::dispatch::GatewayHealth;
use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct ConsoleStatus {
    /// Each SMS gateway, in failover order, as this server sees it.
    pub gateways: Vec<GatewayHealth>,
}

/// The SMS gateways' health, for the status bar (any staff member).
#[utoipa::path(get, path = "/api/v1/console/status", tag = "console",
    responses((status = 200, body = ConsoleStatus), (status = 401, body = crate::api::ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    _who: StaffSession,
) -> ApiResult<Json<ConsoleStatus>> {
    Ok(Json(ConsoleStatus {
        gateways: state.dispatcher.gateway_health(),
    }))
}
