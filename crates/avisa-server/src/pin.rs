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

/// Why a PIN was not taken. The phone API answers each with its HTTP
/// status (the `From` in `error.rs`); the help line and the check-out
/// by SMS decide what the person is told from this, never from HTTP.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// Not 4 to 8 digits: nothing hashed, nothing counted.
    #[error(transparent)]
    Shape(#[from] Invalid),
    /// Not one of the person's PINs; counted.
    #[error("the PIN is not right; {attempts_left} attempts left")]
    Wrong { attempts_left: i32 },
    /// Too many wrong PINs: nothing is hashed until the time is up.
    #[error("the PIN is locked for {retry_after_secs} s")]
    Locked { retry_after_secs: u64 },
    /// The person is gone.
    #[error("no such person")]
    NoPerson,
    /// The hashing pool is full: the same check, a moment later.
    #[error("the PIN checks are busy")]
    Busy,
    #[error(transparent)]
    Store(#[from] avisa_store::StoreError),
    #[error("{0}")]
    Internal(anyhow::Error),
}

impl From<HashError> for PinError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => PinError::Busy,
            HashError::Gone => PinError::Internal(anyhow::anyhow!("the hashing threads are gone")),
        }
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
/// which PIN it was, when it is either the cancel PIN or a duress PIN.
/// Refusals: 422 `pin_invalid` (not 4–8 digits; counts nothing), 403
/// `pin_incorrect` (wrong; counts), 429 `pin_locked` with `Retry-After`
/// (locked: nothing is hashed).
///
/// The order holds the lock under any burst: the person's checks take turns
/// ([`Turns`]: one in flight per person, so a burst for one person fills
/// neither the hashing pool nor anyone else's wait), then the attempt is
/// taken from the person's counter in the database before anything is
/// hashed ([`avisa_store::Store::pin_attempt`]: at most `pin_max_failures`
/// verified per lockout, across instances too), and a right PIN gives it
/// back.
///
/// Every hash is always verified (the cancel PIN, the duress PIN and the
/// second duress PIN a duress session may have set), in one job on the
/// person's pool, so the time a check takes tells nothing of which PIN was
/// entered or whether a duress PIN is set.
pub async fn check(
    state: &AppState,
    field: &'static str,
    person_id: Uuid,
    pin: &str,
    alert_id: Option<Uuid>,
) -> Result<(avisa_store::Person, Entered), PinError> {
    check_shape(field, pin)?;
    let _turn = turns().take(person_id).await;
    let now = now_millis();
    let max = state.config.alerts.pin_max_failures as i32;
    let lock_until = now + crate::config::millis(state.config.alerts.pin_lockout);
    let (attempt, locks_until) = match state
        .store
        .pin_attempt(person_id, max, now, lock_until)
        .await?
    {
        avisa_store::PinAttempt::Locked { until } => return Err(locked(until, now)),
        avisa_store::PinAttempt::Taken {
            attempt,
            locks_until,
        } => (attempt, locks_until),
    };
    let person = state
        .store
        .person(person_id)
        .await?
        .ok_or(PinError::NoPerson)?;
    let hash = person.pin_hash.clone().unwrap_or_default();
    // Before a duress hash exists, the cancel PIN's hash stands in, so the
    // work done is the same.
    let duress = person.duress_hash.clone().unwrap_or_else(|| hash.clone());
    let decoy = person.decoy_hash.clone().unwrap_or_else(|| hash.clone());
    let (real_duress, real_decoy) = (person.duress_hash.is_some(), person.decoy_hash.is_some());
    let store = state.store.clone();
    let secret = pin.to_string();
    let (is_pin, is_duress, is_decoy) = hasher::run(Pool::Person, move || {
        let vault = store.vault();
        (
            vault.verify_secret(&secret, &hash),
            vault.verify_secret(&secret, &duress),
            vault.verify_secret(&secret, &decoy),
        )
    })
    .await?;
    metrics::counter!("avisa_pin_verified_total").increment(1);
    let entered = if is_pin {
        Some(Entered::Pin)
    } else if (is_duress && real_duress) || (is_decoy && real_decoy) {
        Some(Entered::Duress)
    } else {
        None
    };
    if let Some(entered) = entered {
        state.store.pin_reset(person_id).await?;
        return Ok((person, entered));
    }
    tracing::warn!(alert_id = ?alert_id, "wrong PIN");
    metrics::counter!("avisa_pin_refused_total").increment(1);
    if let Some(until) = locks_until {
        return Err(locked(until, now));
    }
    Err(PinError::Wrong {
        attempts_left: max - attempt,
    })
}

/// One PIN check in flight per person: the rest of that person's checks
/// wait their turn here, in memory, holding no hashing thread and no slot
/// of the pool's queue, so a burst of guesses for one person never makes
/// another person's cancel wait.
#[derive(Default)]
pub struct Turns {
    people:
        std::sync::Mutex<std::collections::HashMap<Uuid, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

/// A person's turn; the next check of theirs starts when it is dropped.
pub struct Turn<'a> {
    turns: &'a Turns,
    person: Uuid,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turns {
    /// Waits for the person's turn.
    pub async fn take(&self, person: Uuid) -> Turn<'_> {
        let lane = {
            let mut people = self.people.lock().unwrap_or_else(|e| e.into_inner());
            people.entry(person).or_default().clone()
        };
        Turn {
            turns: self,
            person,
            guard: Some(lane.lock_owned().await),
        }
    }

    /// How many of the person's checks hold or wait for a turn.
    #[cfg(test)]
    pub fn waiting(&self, person: Uuid) -> usize {
        let people = self.people.lock().unwrap_or_else(|e| e.into_inner());
        // The map's own reference is not a check.
        people
            .get(&person)
            .map_or(0, |lane| std::sync::Arc::strong_count(lane) - 1)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut people = self.turns.people.lock().unwrap_or_else(|e| e.into_inner());
        // The last one out removes the person's lane (held only by the map).
        if people
            .get(&self.person)
            .is_some_and(|lane| std::sync::Arc::strong_count(lane) == 1)
        {
            people.remove(&self.person);
        }
    }
}

/// The process's turns (PIN checks are process-wide, as the hashing pools).
pub fn turns() -> &'static Turns {
    static TURNS: std::sync::OnceLock<Turns> = std::sync::OnceLock::new();
    TURNS.get_or_init(Turns::default)
}

/// The work [`check`] does, for a PIN that belongs to nobody (a number
/// that is not registered, a locked PIN): two verifications against the
/// hash of a random secret, so the time taken tells nothing. Never matches.
pub async fn check_nothing(state: &AppState, pin: &str) -> Result<(), PinError> {
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
pub async fn matches(state: &AppState, pin: String, hash: String) -> Result<bool, PinError> {
    verify(state, Pool::Person, pin, hash).await
}

/// A hash of 32 random bytes: what stands for "no duress PIN", at the same
/// cost as a real one.
pub async fn hash_nothing(state: &AppState) -> Result<String, PinError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| PinError::Internal(anyhow::anyhow!("{e}")))?;
    hash(state, Pool::Person, URL_SAFE_NO_PAD.encode(bytes)).await
}

fn locked(until: i64, now: i64) -> PinError {
    PinError::Locked {
        // Rounded up: the true time left, never a second early.
        retry_after_secs: ((until - now + 999) / 1000).max(1) as u64,
    }
}

/// Hashes the person's new PIN with argon2id, on the person's pool.
pub async fn hash_pin(state: &AppState, pin: String) -> Result<String, PinError> {
    hash(state, Pool::Person, pin).await
}

/// Hashes a staff password, on the staff pool.
pub async fn hash_password(state: &AppState, password: String) -> Result<String, PinError> {
    hash(state, Pool::Staff, password).await
}

/// Checks a staff password against its hash, on the staff pool.
pub async fn verify_password(
    state: &AppState,
    password: String,
    hash: String,
) -> Result<bool, PinError> {
    verify(state, Pool::Staff, password, hash).await
}

async fn hash(state: &AppState, pool: Pool, secret: String) -> Result<String, PinError> {
    let store = state.store.clone();
    hasher::run(pool, move || store.vault().hash_secret(&secret))
        .await
        .map_err(busy)?
        .map_err(|e| PinError::Internal(e.into()))
}

async fn verify(
    state: &AppState,
    pool: Pool,
    secret: String,
    hash: String,
) -> Result<bool, PinError> {
    let store = state.store.clone();
    hasher::run(pool, move || store.vault().verify_secret(&secret, &hash))
        .await
        .map_err(busy)
}

fn busy(e: HashError) -> PinError {
    match e {
        HashError::Busy => PinError::Busy,
        HashError::Gone => PinError::Internal(anyhow::anyhow!("the hashing threads are gone")),
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

/// How a request is unlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No valid unlock (and a PIN is set).
    Locked,
    /// Unlocked by the cancel PIN, or no PIN set yet.
    Real,
    /// Unlocked by a duress PIN: it looks and answers exactly as `Real`, but
    /// nothing it changes takes effect on the alert path (see
    /// [`crate::duress`]).
    Duress,
}

impl Access {
    pub fn unlocked(self) -> bool {
        self != Access::Locked
    }
}

/// The MAC of an unlock: over the device, the expiry, the PIN's hash and
/// which PIN earned it. The token does not carry that last part in the
/// clear: a duress unlock is bytes like any other, told apart only by which
/// MAC it matches.
fn unlock_mac(
    state: &AppState,
    device_id: Uuid,
    pin_hash: &str,
    expires_at: i64,
    duress: bool,
) -> Vec<u8> {
    let mut input = Vec::with_capacity(25 + pin_hash.len());
    input.extend_from_slice(device_id.as_bytes());
    input.extend_from_slice(&expires_at.to_be_bytes());
    input.push(if duress { b'd' } else { b'r' });
    input.extend_from_slice(pin_hash.as_bytes());
    state.store.vault().blind_index("unlock", &input)
}

/// An unlock for `device_id` under the PIN whose hash is `pin_hash`, earned
/// by the cancel PIN or (`entered` Duress) a duress PIN.
pub fn issue_unlock(state: &AppState, device_id: Uuid, pin_hash: &str, entered: Entered) -> Unlock {
    let expires_at = now_millis() + (UNLOCK_SECONDS * 1000) as i64;
    let mut token = expires_at.to_be_bytes().to_vec();
    token.extend(unlock_mac(
        state,
        device_id,
        pin_hash,
        expires_at,
        entered == Entered::Duress,
    ));
    Unlock {
        unlock: URL_SAFE_NO_PAD.encode(token),
        expires_in: UNLOCK_SECONDS,
    }
}

/// Whether the person may see and change what the PIN protects in this
/// request, and under which PIN: always (as `Real`) until a PIN is set,
/// else with a valid unlock.
pub fn access(
    state: &AppState,
    headers: &HeaderMap,
    device_id: Uuid,
    pin_hash: Option<&str>,
) -> Access {
    let Some(pin_hash) = pin_hash else {
        return Access::Real;
    };
    let Some(token) = headers
        .get(UNLOCK_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim()).ok())
    else {
        return Access::Locked;
    };
    if token.len() <= 8 {
        return Access::Locked;
    }
    let (expiry, mac) = token.split_at(8);
    let expires_at = i64::from_be_bytes(expiry.try_into().unwrap_or_default());
    let now = now_millis();
    if expires_at <= now || expires_at > now + (UNLOCK_SECONDS * 1000) as i64 {
        return Access::Locked;
    }
    let real = avisa_core::crypto::constant_time_eq(
        mac,
        &unlock_mac(state, device_id, pin_hash, expires_at, false),
    );
    let duress = avisa_core::crypto::constant_time_eq(
        mac,
        &unlock_mac(state, device_id, pin_hash, expires_at, true),
    );
    match (real, duress) {
        (true, _) => Access::Real,
        (_, true) => Access::Duress,
        _ => Access::Locked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A burst of 50 checks for one person, each as slow as a hash can be
    /// (it holds its turn until released): they queue behind each other,
    /// one in flight, and another person's check gets its turn at once.
    #[tokio::test]
    async fn a_burst_for_one_person_waits_in_its_own_lane() {
        let turns = Arc::new(Turns::default());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let burst: Vec<_> = (0..50)
            .map(|_| {
                let (turns, in_flight, most) = (turns.clone(), in_flight.clone(), most.clone());
                let mut release = release_rx.clone();
                tokio::spawn(async move {
                    let _turn = turns.take(a).await;
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // The slow hasher: runs until the test lets it end.
                    let _ = release.wait_for(|r| *r).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        // Until all 50 are queued or running.
        while turns.waiting(a) < 50 {
            tokio::task::yield_now().await;
        }
        assert_eq!(in_flight.load(Ordering::SeqCst), 1, "one check in flight");
        // Another person's check: its turn comes while all 50 still wait
        // (a hang here would be the bug; the bound only ends the test).
        let other = tokio::time::timeout(Duration::from_secs(10), turns.take(b))
            .await
            .expect("another person's check is not queued behind the burst");
        assert_eq!(turns.waiting(a), 50, "the burst is still queued");
        drop(other);
        assert_eq!(turns.waiting(b), 0, "the lane is gone with its last check");
        release_tx.send(true).expect("release");
        for t in burst {
            t.await.expect("check");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "never two at once");
        assert_eq!(turns.waiting(a), 0);
    }
}
