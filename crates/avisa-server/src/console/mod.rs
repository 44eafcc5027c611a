//! The consulate console's JSON API (`/api/v1/console/…`).
//!
//! Staff log in with a password (argon2id) and get a session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS) holding a random
//! token stored only hashed, plus a CSRF token every state-changing request
//! must echo in `X-CSRF-Token`. Repeated failed logins lock the account.
//! Staff see only their consulate's alerts (CIAM sees all); anyone else's
//! alert is answered exactly like a missing one. Every view of an alert and
//! every action is written to the append-only audit log.

pub mod audit;
pub mod calls;
pub mod case;
pub mod colleagues;
pub mod events;
mod passwords;
pub mod queue;
pub mod session;
pub mod stats;
pub mod status;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use uuid::Uuid;

use avisa_core::crypto::token_hash;
use avisa_core::{AuditAction, Role, now_millis};
use avisa_store::{AlertView, Staff};

use crate::error::{ApiError, ApiResult};
use crate::extract::path_id;
use crate::state::AppState;

pub const COOKIE: &str = "avisa_console";
/// The readable marker beside it (see `session::signed_in_marker`).
pub const SIGNED_IN: &str = "avisa_console_signed_in";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Sent by the console page on requests that follow the officer's own
/// input; only those keep an idle session alive.
pub const ACTIVITY_HEADER: &str = "x-avisa-activity";
pub use passwords::{MIN_PASSWORD, password_problem};

/// The staff member behind a request, from the session cookie; for
/// state-changing methods the CSRF token is checked too.
pub struct StaffSession {
    pub staff: Staff,
    pub csrf_token: String,
    token_hash: Vec<u8>,
}

impl StaffSession {
    /// What names this session (its token's hash).
    pub fn token_hash(&self) -> &[u8] {
        &self.token_hash
    }
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
        let max_ms = crate::config::millis(state.config.console.session_max);
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
        // Sliding expiry by the officer's own activity (the page marks
        // what a person did, not its polling or its live stream), written
        // at most once a minute (a quarter of the idle time, if shorter).
        let active = parts
            .headers
            .get(ACTIVITY_HEADER)
            .is_some_and(|v| v.as_bytes() == b"1");
        let idle = crate::config::millis(state.config.console.session_idle);
        if active && now - session.last_seen_at > (idle / 4).min(60_000) {
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
    fn scope(&self) -> Option<String> {
        (!self.staff.sees_all()).then(|| self.staff.consulate_id.clone())
    }

    fn can_see(&self, consulate_id: Option<&str>) -> bool {
        self.staff.sees_all() || consulate_id == Some(self.staff.consulate_id.as_str())
    }

    fn require_supervisor(&self) -> ApiResult<()> {
        if self.staff.role == Role::Operator {
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
        action: AuditAction,
        detail: Option<&str>,
    ) -> ApiResult<()> {
        state
            .store
            .audit(&self.staff, alert_id, action, detail, now_millis())
            .await?;
        Ok(())
    }
}

/// A real alert in the staff member's scope, or 404: practice alerts,
/// other consulates' alerts and missing ones answer alike, in body and in
/// time (the same small read, then the same audit write, before anything
/// only a visible alert costs). The refused try is audited as `denied`: with
/// the alert for its consulate's supervisors (who see who tried), without
/// it for the trying officer's (a missing id leaves the same line).
async fn alert_in_scope(state: &AppState, who: &StaffSession, id: &str) -> ApiResult<AlertView> {
    let id = path_id(id)?;
    let owner = state.store.alert_owner(id).await?;
    let visible = owner
        .as_ref()
        .is_some_and(|o| !o.practice && who.can_see(o.consulate_id.as_deref()));
    if visible {
        return state.store.alert(id).await?.ok_or(ApiError::NotFound);
    }
    // Only a real alert's id may be kept (the log's link to the alert).
    let real = owner.filter(|o| !o.practice).map(|_| id);
    who.audit(state, real, AuditAction::Denied, None).await?;
    tracing::warn!(alert_id = %id, "console request for an alert outside the staff member's scope refused");
    Err(ApiError::NotFound)
}

/// The console API's routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::whoami))
        .routes(routes!(queue::queue))
        .routes(routes!(case::alert))
        .routes(routes!(case::acknowledge))
        .routes(routes!(case::assign))
        .routes(routes!(case::note))
        .routes(routes!(calls::call))
        .routes(routes!(case::resolve))
        .routes(routes!(case::reopen))
        .routes(routes!(events::events))
        .routes(routes!(colleagues::colleagues))
        .routes(routes!(colleagues::facilities))
        .routes(routes!(audit::audit))
        .routes(routes!(status::status))
        .routes(routes!(stats::json))
        .routes(routes!(stats::csv))
        .routes(routes!(stats::svg))
}
