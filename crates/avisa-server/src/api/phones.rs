//! Reading a phone number before it is saved: the one parser of
//! `avisa_core::phone`, offered to the app so that it can show the person
//! "México · +52 55 1234 5678" and ask when a number fits two countries.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use avisa_core::{Country, Invalid, PhoneNumber};

use crate::error::ApiResult;
use crate::extract::ApiJson;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneRequest {
    /// As typed: "55 1234 5678", "044 55 1234 5678", "(213) 555-0100".
    #[schema(min_length = 1, max_length = 40)]
    pub phone: String,
    /// The country the person chose (ISO 3166, "MX"); a number with "+",
    /// "00" or "011" names its own. Without it, a number valid both in
    /// Mexico and in the US is refused as `phone_ambiguous`.
    #[serde(default)]
    #[schema(pattern = r"^\s*([A-Za-z]{2})?\s*$")]
    pub country: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PhoneResponse {
    /// E.164, as it would be stored.
    pub phone: String,
    /// ISO 3166 code of the number's country.
    pub country: String,
    /// "+52 55 1234 5678".
    pub international: String,
}

/// Parses a request's phone and country hint (fields `phone`, `country`).
/// The longest phone number as typed (spaces, dots and dashes included).
pub(crate) const MAX_TYPED: usize = 40;

pub(crate) fn parse(phone: &str, country: Option<&str>) -> Result<PhoneNumber, Invalid> {
    if phone.chars().count() > MAX_TYPED {
        return Err(Invalid::new(
            "phone",
            "phone_invalid",
            format!("a phone number as typed has at most {MAX_TYPED} characters"),
        ));
    }
    let country = country
        .filter(|c| !c.trim().is_empty())
        .map(|c| Country::parse("country", c))
        .transpose()?;
    let phone = PhoneNumber::parse_in("phone", phone, country)?;
    phone.check_sms_allowed("phone")?;
    Ok(phone)
}

pub(crate) fn describe(phone: &PhoneNumber) -> PhoneResponse {
    let reading = phone.reading();
    PhoneResponse {
        phone: reading.phone,
        country: reading.country,
        international: reading.international,
    }
}

/// Read a phone number as it would be saved, without saving anything.
#[utoipa::path(post, path = "/api/v1/phone/read", tag = "devices",
    request_body = PhoneRequest,
    responses(
        (status = 200, body = PhoneResponse),
        (status = 400, description = "malformed JSON", body = super::ErrorBody),
        (status = 413, description = "body too large", body = super::ErrorBody),
        (status = 415, description = "not JSON", body = super::ErrorBody),
        (status = 422, description = "phone_invalid, phone_required, country_invalid, phone_not_allowed (premium-rate, toll-free, shared-cost, satellite), or phone_ambiguous with `readings`", body = super::ErrorBody),
    ))]
pub async fn read(ApiJson(req): ApiJson<PhoneRequest>) -> ApiResult<Json<PhoneResponse>> {
    let phone = parse(&req.phone, req.country.as_deref())?;
    Ok(Json(describe(&phone)))
}

pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(read))
}
