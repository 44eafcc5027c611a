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
use avisa_core::messages;
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
        (status = 429, description = "a code budget is spent (this number, this address, the country or all); Retry-After is the true time left", body = super::ErrorBody),
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
    let sms = NewMessage {
        id: Uuid::now_v7(),
        // Nobody's yet: the phone is not verified.
        owner: None,
        kind: MessageKind::Verification,
        purpose: Purpose::Code,
        contact_id: None,
        parent_id: None,
        name: None,
        to: phone,
        body: messages::verification_code(req.language, &code),
        language: req.language,
        // A code never waits ahead of an alert's messages.
        rank: avisa_store::RANK_AFTER_ALERTS,
        expires_at: expires,
    };
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
        .routes(utoipa_axum::routes!(verify))
}
