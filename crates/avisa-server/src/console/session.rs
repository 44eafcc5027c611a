//! Logging in and out: password check on the staff hashing pool, the session
//! cookie and its CSRF token, failed logins throttled per client address.

use std::net::{IpAddr, Ipv4Addr};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use avisa_core::crypto::{random_token, token_hash};
use avisa_core::{AuditAction, CIAM, Role, now_millis};
use avisa_store::{LoginFailures, Staff};

use super::{COOKIE, SIGNED_IN, StaffSession};
use crate::api::alerts::ConsulateRef;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ClientAddr};
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
    /// The consulate's time zone (IANA): every time the console shows is in
    /// it. CIAM, in Tucson: America/Phoenix.
    pub time_zone: &'static str,
    /// How often the alarm sounds again while an alert waits
    /// unacknowledged (`console.alarm_every`).
    pub alarm_every_seconds: u64,
    /// The session ends after this long without the officer's own activity
    /// (requests sent with `X-Avisa-Activity: 1`); polling does not count.
    pub idle_seconds: u64,
    /// Next steps by case state (`console.checklist`).
    pub checklist: std::collections::BTreeMap<String, Vec<String>>,
}

fn me(state: &AppState, staff: &Staff, csrf_token: String) -> Me {
    let office = state
        .alerting
        .directory()
        .get(&staff.consulate_id)
        .filter(|_| !staff.sees_all());
    let time_zone = avisa_engine::alerting::office_zone(office).iana();
    let consulate = if staff.sees_all() {
        ConsulateRef {
            id: CIAM.into(),
            name: "CIAM — Centro de Información y Asistencia a Personas Mexicanas (24 h)".into(),
            phone: Some(avisa_core::messages::CIAM_PHONE.into()),
        }
    } else {
        let office = state.alerting.directory().get(&staff.consulate_id);
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
        time_zone,
        alarm_every_seconds: state.config.console.alarm_every.as_secs().max(1),
        idle_seconds: state.config.console.session_idle.as_secs(),
        checklist: state.config.console.checklist.clone(),
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

/// A cookie the console's page can read, saying only that a session was
/// opened in this browser (the session's own cookie is HttpOnly): the login
/// page asks `/me` only when it is there, so a first visit logs no 401.
fn signed_in_marker(state: &AppState, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config.console.secure(&state.config.public_url) {
        "; Secure"
    } else {
        ""
    };
    let value = if max_age_secs > 0 { "1" } else { "" };
    HeaderValue::from_str(&format!(
        "{SIGNED_IN}={value}; Path=/console; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Log in.
///
/// Failed logins are counted per client address: after
/// `console.login_free_failures` of them each next try from that address
/// waits (1 s, doubling up to `login_max_delay`) and is answered 429
/// `login_throttled` before any password is checked. Accounts are never
/// locked, so the right password from another address always works, and
/// unknown usernames are answered exactly as known ones (the same status,
/// body and hashing work).
#[utoipa::path(post, path = "/api/v1/console/login", tag = "console", request_body = LoginRequest,
    responses((status = 200, body = Me), (status = 401, description = "wrong username or password", body = crate::api::ErrorBody),
              (status = 429, description = "login_throttled: too many failed logins from this address (see Retry-After)", body = crate::api::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let addr = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let _turn = LoginTurn::take(&state, addr).await?;
    let now = now_millis();
    let counted = state.store.login_failures(addr).await?;
    if let Some(wait_ms) = login_wait(&state, counted, now) {
        metrics::counter!("avisa_console_logins_total", "outcome" => "throttled").increment(1);
        return Err(ApiError::LoginThrottled {
            retry_after_secs: ((wait_ms + 999) / 1000).max(1) as u64,
        });
    }
    let login = state.store.staff_login(req.username.trim()).await?;
    let (hash, staff) = match login {
        Some(l) => (l.password_hash, Some(l.staff)),
        // The same work as a real check, so timing does not tell which
        // usernames exist.
        None => (dummy_hash(&state).await?, None),
    };
    let ok = crate::pin::verify_password(&state, req.password.clone(), hash).await?;
    let staff = match staff {
        Some(staff) if ok && !staff.disabled => staff,
        refused => {
            let forget = crate::config::millis(state.config.console.login_forget);
            state.store.login_failed(addr, now, now - forget).await?;
            metrics::counter!("avisa_console_logins_total", "outcome" => "failed").increment(1);
            if let Some(staff) = refused {
                tracing::warn!(staff_id = %staff.id, "console login refused");
                // Written after the answer, so a known username takes no
                // longer to refuse than an unknown one.
                let store = state.store.clone();
                tokio::spawn(async move {
                    if let Err(e) = store
                        .audit(&staff, None, AuditAction::LoginFailed, None, now)
                        .await
                    {
                        tracing::error!(error = %e, "audit of a refused login failed");
                    }
                });
            } else {
                tracing::warn!("console login refused for an unknown username");
            }
            return Err(ApiError::LoginFailed {
                message: "wrong username or password".into(),
            });
        }
    };
    state.store.login_succeeded(addr).await?;
    metrics::counter!("avisa_console_logins_total", "outcome" => "ok").increment(1);
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
    let headers = response.headers_mut();
    headers.insert(header::SET_COOKIE, session_cookie(&state, &token, max_age));
    headers.append(header::SET_COOKIE, signed_in_marker(&state, max_age));
    Ok(response)
}

/// How long an address with these failures still waits before its next
/// try, if it must: nothing for the first `login_free_failures`, then 1 s
/// after the last failure, doubling with each one, up to `login_max_delay`.
fn login_wait(state: &AppState, counted: LoginFailures, now: i64) -> Option<i64> {
    let c = &state.config.console;
    let over = counted.failures - i64::from(c.login_free_failures);
    if over < 0 || counted.last_at < now - crate::config::millis(c.login_forget) {
        return None;
    }
    let delay = (1000_i64 << over.min(30)).min(crate::config::millis(c.login_max_delay));
    let until = counted.last_at + delay;
    (until > now).then_some(until - now)
}

/// How long a login waits for the one before it from the same address
/// before it is told to try again.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One login checked at a time per client address: parallel guesses would
/// otherwise all read the same count of failures. Several officers behind
/// one office's address logging in together each wait their turn (a
/// password check), never refused: only failures are throttled.
struct LoginTurn<'a> {
    state: &'a AppState,
    addr: IpAddr,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<'a> LoginTurn<'a> {
    async fn take(state: &'a AppState, addr: IpAddr) -> ApiResult<LoginTurn<'a>> {
        let lock = state
            .logins_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(addr)
            .or_default()
            .clone();
        let mut turn = LoginTurn {
            state,
            addr,
            turn: None,
        };
        match tokio::time::timeout(TURN_WAIT, lock.lock_owned()).await {
            Ok(guard) => {
                turn.turn = Some(guard);
                Ok(turn)
            }
            Err(_) => {
                metrics::counter!("avisa_console_logins_total", "outcome" => "throttled")
                    .increment(1);
                Err(ApiError::LoginThrottled {
                    retry_after_secs: 1,
                })
            }
        }
    }
}

impl Drop for LoginTurn<'_> {
    fn drop(&mut self) {
        let mut turns = self
            .state
            .logins_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.turn = None;
        // Forgotten when nobody else holds or waits for the address's turn
        // (the map's own reference is the last).
        if turns
            .get(&self.addr)
            .is_some_and(|l| std::sync::Arc::strong_count(l) == 1)
        {
            turns.remove(&self.addr);
        }
    }
}

/// A hash of a random secret, checked against for unknown usernames so a
/// refusal takes the same time either way.
async fn dummy_hash(state: &AppState) -> ApiResult<String> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let hash = DUMMY
        .get_or_try_init(|| async {
            let secret = random_token()
                .map_err(|e| crate::pin::PinError::Internal(e.into()))?
                .to_string();
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
    let headers = response.headers_mut();
    headers.insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    headers.append(header::SET_COOKIE, signed_in_marker(&state, 0));
    Ok(response)
}

/// Who is logged in (and the CSRF token, after a reload).
#[utoipa::path(get, path = "/api/v1/console/me", tag = "console", responses((status = 200, body = Me), (status = 401, body = crate::api::ErrorBody)))]
pub async fn whoami(State(state): State<AppState>, who: StaffSession) -> Json<Me> {
    Json(me(&state, &who.staff, who.csrf_token.clone()))
}
