//! Logging in and out: password check on the staff hashing pool, the session
//! cookie and its CSRF token, the account lockout.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use avisa_core::crypto::{random_token, token_hash};
use avisa_core::{AuditAction, CIAM, Role, now_millis};
use avisa_store::Staff;

use super::{COOKIE, StaffSession};
use crate::api::alerts::ConsulateRef;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub username: String,
    pub role: Role,
    pub consulate: ConsulateRef,
    /// Echo it in `X-CSRF-Token` on every POST.
    pub csrf_token: String,
    pub escalate_after_seconds: u64,
    /// Map tiles, when configured.
    pub tile_url: Option<String>,
}

fn me(state: &AppState, staff: &Staff, csrf_token: String) -> Me {
    let consulate = if staff.sees_all() {
        ConsulateRef {
            id: CIAM.into(),
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
        role: staff.role,
        consulate,
        csrf_token,
        escalate_after_seconds: state.config.console.escalate_after.as_secs(),
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
    let login = state.store.staff_login(req.username.trim()).await?;
    let Some(login) = login else {
        // The same work as a real check, so timing does not tell which
        // usernames exist.
        let dummy = dummy_hash(&state).await?;
        crate::pin::verify_password(&state, req.password.clone(), dummy).await?;
        return Err(login_refused(failed()));
    };
    if let Some(until) = login.locked_until.filter(|u| *u > now) {
        return Err(ApiError::LoginLocked {
            retry_after_secs: ((until - now) / 1000).max(1) as u64,
        });
    }
    let ok = crate::pin::verify_password(&state, req.password.clone(), login.password_hash).await?;
    let staff = login.staff;
    if !ok || staff.disabled {
        let max = state.config.console.lockout_failures as i32;
        let lock_until = now + crate::config::millis(state.config.console.lockout);
        let (_, locked) = state
            .store
            .staff_login_failed(staff.id, max, lock_until)
            .await?;
        state
            .store
            .audit(&staff, None, AuditAction::LoginFailed, None, now)
            .await?;
        tracing::warn!(staff_id = %staff.id, "console login refused");
        if let Some(until) = locked.filter(|u| *u > now) {
            return Err(ApiError::LoginLocked {
                retry_after_secs: ((until - now) / 1000).max(1) as u64,
            });
        }
        return Err(login_refused(failed()));
    }
    state.store.staff_login_ok(staff.id).await?;
    let token = random_token().map_err(anyhow::Error::new)?;
    let csrf = random_token().map_err(anyhow::Error::new)?.to_string();
    let idle = crate::config::millis(state.config.console.session_idle);
    state
        .store
        .create_session(staff.id, token_hash(&token), csrf.clone(), now, now + idle)
        .await?;
    state
        .store
        .audit(&staff, None, AuditAction::Login, None, now)
        .await?;
    let max_age = state.config.console.session_max.as_secs() as i64;
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
    who.audit(&state, None, AuditAction::Logout, None).await?;
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
