//! The console's status bar: whether the SMS gateways of this server take
//! messages (a gateway refusing our account is out of service, and staff
//! must know alerts may be waiting).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::StaffSession;
use crate::error::ApiResult;
use crate::state::AppState;

/// A gateway's health as staff see it.
#[derive(Serialize, ToSchema)]
pub struct GatewayHealth {
    /// `twilio`, `kannel`, `log`.
    pub name: String,
    /// False while it is taken out (repeated failures, or our account).
    pub up: bool,
    /// The last refusal that took it out (no phone numbers: redacted).
    pub problem: Option<String>,
    /// Since when it has had that problem (Unix ms).
    pub since: Option<i64>,
}

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
        gateways: state
            .dispatcher
            .gateway_health()
            .into_iter()
            .map(|g| GatewayHealth {
                name: g.name,
                up: g.up,
                problem: g.problem,
                since: g.since,
            })
            .collect(),
    }))
}
