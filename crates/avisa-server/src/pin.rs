//! The person's PIN guard: the one way any path takes the person's PIN.
//!
//! Cancel, the PIN check, a profile change that touches the PIN and
//! "delete my data" all go through [`check`], so they share one lockout
//! counter: five wrong PINs anywhere lock every one of them for the lockout
//! time (429 with the real remaining time), and a locked PIN is refused
//! before it is hashed — the right PIN included — so a phone's holder cannot
//! go on guessing through another door. A later path that takes the PIN (a
//! duress PIN, a check-in's check-out) belongs here too.
//!
//! Hashes run on the person's own pool (see [`crate::hasher`]), which staff
//! logins never reach.

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

/// Checks the person's PIN under the lockout and returns the person when it
/// is right. Refusals: 422 `pin_invalid` (not 4–8 digits; counts nothing),
/// 403 `pin_incorrect` (wrong; counts), 429 `pin_locked` with `Retry-After`
/// (locked: nothing is hashed, nothing counts).
pub async fn check(
    state: &AppState,
    field: &'static str,
    person_id: Uuid,
    pin: &str,
    alert_id: Option<Uuid>,
) -> ApiResult<avisa_store::Person> {
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
    if verify(state, Pool::Person, pin.to_string(), hash).await? {
        state.store.pin_reset(person_id).await?;
        return Ok(person);
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
