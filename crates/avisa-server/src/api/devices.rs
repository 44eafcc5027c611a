//! Device registration and phone verification.
//!
//! `POST /api/v1/devices {phone, language}` creates an unverified device and
//! sends a 6-digit code by SMS; the answer carries the device's bearer token,
//! shown this once and stored only as a hash. `POST /api/v1/devices/verify
//! {code}` with that token proves the phone: 5 tries, codes live 10 minutes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use avisa_core::crypto::{random_digits, random_token, token_hash};
use avisa_core::{Channel, messages};
use avisa_core::{Invalid, Language, now_millis};
use avisa_store::{Budget, MessageKind, NewMessage, Purpose, VerifyOutcome};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Caller, ClientAddr};
use crate::state::AppState;

/// How long a one-time code is valid.
pub const CODE_TTL_MS: i64 = 10 * 60 * 1000;
const HOUR_MS: i64 = 60 * 60 * 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The person's phone number, as typed ("(213) 555-0100", "+52 55 …").
    #[schema(min_length = 1, max_length = 40)]
    pub phone: String,
    /// The country the number is read in (ISO 3166, "MX"); see
    /// `POST /api/v1/phone/read`.
    #[serde(default)]
    #[schema(pattern = r"^\s*([A-Za-z]{2})?\s*$")]
    pub country: Option<String>,
    #[serde(default)]
    pub language: Language,
    /// A solved proof of work (`GET /api/v1/devices/challenge`), needed when
    /// codes are being asked faster than usual (429 `challenge_required`).
    #[serde(default)]
    pub challenge: Option<ChallengeSolution>,
}

/// A challenge to solve before a code is sent (ALTCHA's format): find the
/// number `n` in `0..=maxnumber` whose SHA-256 of `salt` followed by `n` in
/// decimal, in hex, is `challenge`.
#[derive(Serialize, ToSchema)]
pub struct ChallengeResponse {
    /// "SHA-256".
    pub algorithm: String,
    pub challenge: String,
    pub maxnumber: u64,
    pub salt: String,
    pub signature: String,
}

/// The challenge as handed out, with the number found.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeSolution {
    pub algorithm: String,
    #[schema(max_length = 64)]
    pub challenge: String,
    pub number: u64,
    #[schema(max_length = 80)]
    pub salt: String,
    #[schema(max_length = 64)]
    pub signature: String,
}

/// How long a challenge may take to solve and send.
const CHALLENGE_TTL_SECS: i64 = 5 * 60;

fn challenge_required() -> ApiError {
    ApiError::Status {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "challenge_required",
        message: "codes are being asked for faster than usual: solve GET /api/v1/devices/challenge and send the solution as `challenge`",
    }
}

/// A proof of work to solve before a code is sent, when codes are asked
/// faster than usual.
#[utoipa::path(get, path = "/api/v1/devices/challenge", tag = "devices",
    responses((status = 200, body = ChallengeResponse)))]
pub async fn challenge(State(state): State<AppState>) -> ApiResult<Json<ChallengeResponse>> {
    let random = random_token().map_err(anyhow::Error::new)?;
    let max = state.config.limits.challenge_maxnumber.max(1);
    let number = u64::from_be_bytes(
        token_hash(random.as_str())[..8]
            .try_into()
            .unwrap_or([0; 8]),
    ) % (max + 1);
    let vault = state.store.vault();
    let c = avisa_core::challenge::new_challenge(
        &token_hash(&format!("salt:{}", random.as_str()))[..16],
        number,
        max,
        now_millis() / 1000 + CHALLENGE_TTL_SECS,
        |text| vault.blind_index("challenge", text.as_bytes()),
    );
    Ok(Json(ChallengeResponse {
        algorithm: c.algorithm,
        challenge: c.challenge,
        maxnumber: c.maxnumber,
        salt: c.salt,
        signature: c.signature,
    }))
}

/// Whether this registration may have a code: with a solved challenge
/// (used once), or while codes are asked no faster than usual.
async fn proof_of_work(
    state: &AppState,
    solution: Option<&ChallengeSolution>,
    now: i64,
) -> ApiResult<()> {
    let limits = &state.config.limits;
    let Some(s) = solution else {
        let (minute, _) = avisa_store::window(now, 60_000);
        let calm = [Budget::of(
            &state.store,
            "codes-calm",
            b"all",
            i64::from(limits.codes_without_challenge_per_minute),
        )];
        if limits.codes_without_challenge_per_minute == 0
            || state.store.take_budgets(&calm, minute).await?.is_some()
        {
            metrics::counter!("avisa_registrations_refused_total", "reason" => "challenge")
                .increment(1);
            return Err(challenge_required());
        }
        return Ok(());
    };
    let vault = state.store.vault();
    let solution = avisa_core::challenge::Solution {
        algorithm: s.algorithm.clone(),
        challenge: s.challenge.clone(),
        number: s.number,
        salt: s.salt.clone(),
        signature: s.signature.clone(),
    };
    let checked = avisa_core::challenge::verify(&solution, now / 1000, |text, sig| {
        vault.blind_index_matches("challenge", text.as_bytes(), &unhex(sig))
    });
    let Ok(expires) = checked else {
        metrics::counter!("avisa_registrations_refused_total", "reason" => "challenge_wrong")
            .increment(1);
        return Err(challenge_required());
    };
    // Once: a budget of one per challenge, in the window of its expiry (the
    // same row whenever it is replayed).
    let (window, _) = avisa_store::window(expires * 1000, HOUR_MS);
    let once = [Budget::of(
        &state.store,
        "challenge-used",
        s.challenge.as_bytes(),
        1,
    )];
    if state.store.take_budgets(&once, window).await?.is_some() {
        metrics::counter!("avisa_registrations_refused_total", "reason" => "challenge_replayed")
            .increment(1);
        return Err(challenge_required());
    }
    Ok(())
}

/// Hex to bytes (empty for anything else: it never matches).
fn unhex(text: &str) -> Vec<u8> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Vec::new();
    }
    (0..text.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    pub device_id: Uuid,
    /// The bearer token for every later request. Shown only now.
    pub token: String,
    pub verified: bool,
    /// When the code sent by SMS stops working (milliseconds since the epoch).
    pub code_expires_at: i64,
    /// The number the code went to, as read ("+1 213-555-0100"): the code
    /// screen repeats it, so a misread number shows at once.
    pub international: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The 6-digit code received by SMS.
    #[schema(pattern = r"^[0-9]{6}$")]
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyResponse {
    pub device_id: Uuid,
    pub verified: bool,
}

/// Register a device and send it a verification code by SMS.
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices",
    request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterResponse),
        (status = 422, description = "invalid phone number or body; phone_not_allowed for a number outside the code countries or a premium-rate, toll-free, shared-cost or satellite one", body = super::ErrorBody),
        (status = 429, description = "a code budget is spent (this number, this address, the country or all; Retry-After is the true time left), or challenge_required: codes are asked faster than usual and the request carries no solved, unused challenge", body = super::ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<RegisterResponse>)> {
    let phone = super::phones::parse(&req.phone, req.country.as_deref())?;
    let limits = &state.config.limits;
    let country = phone.country().map(|c| c.to_string()).unwrap_or_default();
    if !limits
        .code_countries
        .iter()
        .any(|c| c.eq_ignore_ascii_case(&country))
    {
        metrics::counter!("avisa_registrations_refused_total", "reason" => "country").increment(1);
        return Err(Invalid::new(
            "phone",
            "phone_not_allowed",
            "Avisa does not send codes to phone numbers in this country",
        )
        .into());
    }
    let now = now_millis();
    proof_of_work(&state, req.challenge.as_ref(), now).await?;
    // Every code is paid for from each budget of the hour, all or none.
    let (window, retry_after_secs) = avisa_store::window(now, HOUR_MS);
    let mut budgets = vec![
        Budget::number(
            &state.store,
            &phone,
            i64::from(limits.registrations_per_hour),
        ),
        Budget::country(&country, i64::from(limits.codes_per_country_per_hour)),
        Budget::all(i64::from(limits.codes_per_hour)),
    ];
    if let Some(addr) = client {
        budgets.push(Budget::address(
            &state.store,
            addr,
            i64::from(limits.codes_per_address_per_hour),
        ));
    }
    if let Some(spent) = state.store.take_budgets(&budgets, window).await? {
        metrics::counter!("avisa_registrations_refused_total", "reason" => spent.kind).increment(1);
        tracing::warn!(
            budget = spent.kind,
            "verification code refused: budget spent"
        );
        return Err(ApiError::TooManyRequests {
            // The true time left: until the hour's window ends.
            retry_after_secs,
        });
    }
    let token = random_token().map_err(anyhow::Error::new)?;
    let code = random_digits(6).map_err(anyhow::Error::new)?;
    let expires = now + CODE_TTL_MS;
    let device = state
        .store
        .register_device(
            &phone,
            req.language,
            token_hash(&token),
            &code,
            expires,
            now,
        )
        .await?;
    let international = phone.international();
    // The code goes through the outbox like every SMS: retried, failed over,
    // and expired with the code itself.
    // Nobody's yet (the phone is not verified), and like every message
    // that is not an alert's, it never waits ahead of an alert's messages.
    let sms = NewMessage::new(
        Channel::Sms,
        MessageKind::Verification,
        Purpose::Code,
        phone,
        messages::verification_code(req.language, &code),
        req.language,
        expires,
    );
    state.store.enqueue(&[sms], now).await?;
    state.dispatch_wake.notify_one();
    metrics::counter!("avisa_devices_registered_total").increment(1);
    tracing::info!(device_id = %device.id, "device registered, code queued");
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            device_id: device.id,
            token: token.to_string(),
            verified: false,
            code_expires_at: expires,
            international,
        }),
    ))
}

/// Verify the device's phone number with the code received by SMS.
#[utoipa::path(post, path = "/api/v1/devices/verify", tag = "devices",
    request_body = VerifyRequest,
    security(("device_token" = [])),
    responses(
        (status = 200, body = VerifyResponse),
        (status = 401, body = super::ErrorBody),
        (status = 409, description = "already verified", body = super::ErrorBody),
        (status = 422, description = "wrong, expired or burnt code", body = super::ErrorBody),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    Caller(device): Caller,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Json<VerifyResponse>> {
    if device.verified_at.is_some() {
        return Err(ApiError::Conflict {
            code: "already_verified",
            message: "this device is already verified".into(),
        });
    }
    let code = req.code.trim();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(Invalid::new("code", "code_invalid", "the code has 6 digits").into());
    }
    match state.store.verify_device(device.id, code, now_millis()).await? {
        VerifyOutcome::Verified { .. } => {
            tracing::info!(device_id = %device.id, "device verified");
            Ok(Json(VerifyResponse {
                device_id: device.id,
                verified: true,
            }))
        }
        VerifyOutcome::Wrong { attempts_left } if attempts_left > 0 => Err(Invalid::new(
            "code",
            "code_incorrect",
            format!("the code is not right; {attempts_left} attempts left"),
        )
        .into()),
        VerifyOutcome::Wrong { .. } | VerifyOutcome::NoCode => Err(Invalid::new(
            "code",
            "code_expired",
            "this code no longer works (expired or too many attempts); register again to get a new one",
        )
        .into()),
    }
}

/// This module's routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(register))
        .routes(utoipa_axum::routes!(challenge))
        .routes(utoipa_axum::routes!(verify))
}
