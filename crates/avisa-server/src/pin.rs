//! The person's PIN guard: the one way any path takes the person's PIN.
//!
//! Cancel, the PIN check, a profile change that touches the PIN and
//! "delete my data" all go through [`check`], so they share one lockout
//! counter: five wrong PINs anywhere lock every one of them for the lockout
//! time (429 with the real remaining time), and a locked PIN is refused
//! before it is hashed — the right PIN included — so a phone's holder cannot
//! go on guessing through another door. The duress PIN is checked here too
//! ([`Entered::Duress`]); so do a check-in's check-out and the help line
//! ([`crate::help`]), which tries a number and PIN from any phone.
//!
//! Hashes run on the person's own pool (see [`crate::hasher`]), which staff
//! logins never reach.
//!
//! The right PIN earns an **unlock**: a token for one device, for a few
//! minutes, that reading or changing contacts and the profile's personal
//! fields require once a PIN is set (`X-Avisa-Unlock`). It is a MAC over the
//! device, its expiry and the PIN's hash, so it needs no table, dies at its
//! expiry, is worth nothing on another device, and dies when the PIN changes.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use avisa_core::{Invalid, now_millis};

use crate::error::{ApiError, ApiResult};
use crate::hasher::{self, HashError, Pool};
use crate::state::AppState;

/// Checks a PIN's shape: 4 to 8 digits.
pub fn check_shape(field: &'static str, pin: &str) -> Result<(), Invalid> {
    if (4..=8).contains(&pin.len()) && pin.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            "pin_invalid",
            "the PIN has 4 to 8 digits",
        ))
    }
}

/// Which of the person's PINs was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entered {
    /// The cancel PIN.
    Pin,
    /// The duress PIN: whoever watches must see exactly what the cancel PIN
    /// gives; only a cancel (and "delete my data") act on it, unseen.
    Duress,
}

/// Checks the person's PIN under the lockout and returns the person, with
/// which PIN it was, when it is either the cancel PIN or the duress PIN.
/// Refusals: 422 `pin_invalid` (not 4–8 digits; counts nothing), 403
/// `pin_incorrect` (wrong; counts), 429 `pin_locked` with `Retry-After`
/// (locked: nothing is hashed, nothing counts).
///
/// Both hashes are always verified, in one job on the person's pool, so the
/// time a check takes tells nothing of which PIN was entered or whether a
/// duress PIN is set (a person without one has a random secret's hash).
pub async fn check(
    state: &AppState,
    field: &'static str,
    person_id: Uuid,
    pin: &str,
    alert_id: Option<Uuid>,
) -> ApiResult<(avisa_store::Person, Entered)> {
    check_shape(field, pin)?;
    let now = now_millis();
    let (_, locked_until) = state.store.pin_state(person_id).await?;
    if let Some(until) = locked_until.filter(|u| *u > now) {
        return Err(locked(until, now));
    }
    let person = state
        .store
        .person(person_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let hash = person.pin_hash.clone().unwrap_or_default();
    // Before the first duress hash exists, the cancel PIN's hash stands in,
    // so the work done is the same.
    let duress = person.duress_hash.clone().unwrap_or_else(|| hash.clone());
    let real_duress = person.duress_hash.is_some();
    let store = state.store.clone();
    let secret = pin.to_string();
    let (is_pin, is_duress) = hasher::run(Pool::Person, move || {
        let vault = store.vault();
        (
            vault.verify_secret(&secret, &hash),
            vault.verify_secret(&secret, &duress),
        )
    })
    .await
    .map_err(busy)?;
    let entered = if is_pin {
        Some(Entered::Pin)
    } else if is_duress && real_duress {
        Some(Entered::Duress)
    } else {
        None
    };
    if let Some(entered) = entered {
        state.store.pin_reset(person_id).await?;
        return Ok((person, entered));
    }
    let max = state.config.alerts.pin_max_failures as i32;
    let lock_until = now + crate::config::millis(state.config.alerts.pin_lockout);
    let (failures, locked_at) = state.store.pin_failed(person_id, max, lock_until).await?;
    tracing::warn!(alert_id = ?alert_id, "wrong PIN");
    metrics::counter!("avisa_pin_refused_total").increment(1);
    if let Some(until) = locked_at.filter(|u| *u > now) {
        return Err(locked(until, now));
    }
    Err(ApiError::Forbidden {
        code: "pin_incorrect",
        message: format!("the PIN is not right; {} attempts left", max - failures),
    })
}

/// The work [`check`] does, for a PIN that belongs to nobody (a number
/// that is not registered, a locked PIN): two verifications against the
/// hash of a random secret, so the time taken tells nothing. Never matches.
pub async fn check_nothing(state: &AppState, pin: &str) -> ApiResult<()> {
    static NOTHING: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let hash = NOTHING
        .get_or_try_init(|| hash_nothing(state))
        .await?
        .clone();
    let store = state.store.clone();
    let secret = pin.to_string();
    hasher::run(Pool::Person, move || {
        let vault = store.vault();
        vault.verify_secret(&secret, &hash) || vault.verify_secret(&secret, &hash)
    })
    .await
    .map_err(busy)?;
    Ok(())
}

/// Whether `pin` is the one whose hash is `hash` (on the person's pool).
pub async fn matches(state: &AppState, pin: String, hash: String) -> ApiResult<bool> {
    verify(state, Pool::Person, pin, hash).await
}

/// A hash of 32 random bytes: what stands for "no duress PIN", at the same
/// cost as a real one.
pub async fn hash_nothing(state: &AppState) -> ApiResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    hash(state, Pool::Person, URL_SAFE_NO_PAD.encode(bytes)).await
}

fn locked(until: i64, now: i64) -> ApiError {
    ApiError::Locked {
        // Rounded up: the true time left, never a second early.
        retry_after_secs: ((until - now + 999) / 1000).max(1) as u64,
    }
}

/// Hashes the person's new PIN with argon2id, on the person's pool.
pub async fn hash_pin(state: &AppState, pin: String) -> ApiResult<String> {
    hash(state, Pool::Person, pin).await
}

/// Hashes a staff password, on the staff pool.
pub async fn hash_password(state: &AppState, password: String) -> ApiResult<String> {
    hash(state, Pool::Staff, password).await
}

/// Checks a staff password against its hash, on the staff pool.
pub async fn verify_password(state: &AppState, password: String, hash: String) -> ApiResult<bool> {
    verify(state, Pool::Staff, password, hash).await
}

async fn hash(state: &AppState, pool: Pool, secret: String) -> ApiResult<String> {
    let store = state.store.clone();
    hasher::run(pool, move || store.vault().hash_secret(&secret))
        .await
        .map_err(busy)?
        .map_err(|e| ApiError::Internal(e.into()))
}

async fn verify(state: &AppState, pool: Pool, secret: String, hash: String) -> ApiResult<bool> {
    let store = state.store.clone();
    hasher::run(pool, move || store.vault().verify_secret(&secret, &hash))
        .await
        .map_err(busy)
}

fn busy(e: HashError) -> ApiError {
    match e {
        HashError::Busy => ApiError::Busy {
            retry_after_secs: 1,
        },
        HashError::Gone => ApiError::Internal(anyhow::anyhow!("the hashing threads are gone")),
    }
}

/// How long an unlock lasts.
pub const UNLOCK_SECONDS: u64 = 600;

/// The header that carries an unlock.
pub const UNLOCK_HEADER: &str = "x-avisa-unlock";

/// Proof that this device's holder entered the PIN a moment ago.
#[derive(Serialize, ToSchema)]
pub struct Unlock {
    /// Send it as `X-Avisa-Unlock` to read or change contacts and the profile.
    pub unlock: String,
    /// Seconds it lasts.
    pub expires_in: u64,
}

fn unlock_mac(state: &AppState, device_id: Uuid, pin_hash: &str, expires_at: i64) -> Vec<u8> {
    let mut input = Vec::with_capacity(24 + pin_hash.len());
    input.extend_from_slice(device_id.as_bytes());
    input.extend_from_slice(&expires_at.to_be_bytes());
    input.extend_from_slice(pin_hash.as_bytes());
    state.store.vault().blind_index("unlock", &input)
}

/// An unlock for `device_id` under the PIN whose hash is `pin_hash`.
pub fn issue_unlock(state: &AppState, device_id: Uuid, pin_hash: &str) -> Unlock {
    let expires_at = now_millis() + (UNLOCK_SECONDS * 1000) as i64;
    let mut token = expires_at.to_be_bytes().to_vec();
    token.extend(unlock_mac(state, device_id, pin_hash, expires_at));
    Unlock {
        unlock: URL_SAFE_NO_PAD.encode(token),
        expires_in: UNLOCK_SECONDS,
    }
}

/// Whether the person may see and change what the PIN protects in this
/// request: always until a PIN is set, else with a valid unlock.
pub fn is_unlocked(
    state: &AppState,
    headers: &HeaderMap,
    device_id: Uuid,
    pin_hash: Option<&str>,
) -> bool {
    pin_hash.is_none_or(|hash| unlocked(state, headers, device_id, hash))
}

/// Whether the request carries an unlock valid now for this device and PIN.
fn unlocked(state: &AppState, headers: &HeaderMap, device_id: Uuid, pin_hash: &str) -> bool {
    let Some(token) = headers
        .get(UNLOCK_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim()).ok())
    else {
        return false;
    };
    if token.len() <= 8 {
        return false;
    }
    let (expiry, mac) = token.split_at(8);
    let expires_at = i64::from_be_bytes(expiry.try_into().unwrap_or_default());
    let now = now_millis();
    expires_at > now
        && expires_at <= now + (UNLOCK_SECONDS * 1000) as i64
        && avisa_core::crypto::constant_time_eq(
            mac,
            &unlock_mac(state, device_id, pin_hash, expires_at),
        )
}

/// The refusal for a request that needs the PIN first.
pub fn pin_required() -> ApiError {
    ApiError::Forbidden {
        code: "pin_required",
        message:
            "enter the PIN first (POST /api/v1/pin/check) and send its unlock as X-Avisa-Unlock"
                .into(),
    }
}
