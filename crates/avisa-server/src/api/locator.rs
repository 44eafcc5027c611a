//! What the family needs to find the person in ICE's Online Detainee
//! Locator (issue 34): full legal name, country and date of birth,
//! A-number. Optional, sealed with the person's key, given only with the
//! PIN; the contacts the person marks (`locator` on a contact) receive them
//! in a second SMS after an alert (`crate::alerting`), and the consulate's
//! case shows them. A session unlocked with the duress PIN never reads the
//! real ones (see `crate::duress`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use avisa_core::locator::Locator;
use avisa_core::now_millis;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Unlocked};
use crate::state::AppState;

/// The locator details; every field may be null.
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LocatorBody {
    /// Full legal name, as on the person's documents (up to 100 characters).
    #[serde(default)]
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$"
    )]
    pub legal_name: Option<String>,
    /// Country of birth, as the person writes it (up to 56 characters).
    #[serde(default)]
    #[schema(
        max_length = 56,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$"
    )]
    pub birth_country: Option<String>,
    /// Date of birth, YYYY-MM-DD (1900 to today).
    #[serde(default)]
    #[schema(pattern = r"^\s*([0-9]{4}-[0-9]{2}-[0-9]{2})?\s*$")]
    pub birth_date: Option<String>,
    /// The A-number, 8 or 9 digits with or without the A; kept as 9 digits.
    #[serde(default)]
    #[schema(max_length = 24)]
    pub a_number: Option<String>,
}

/// What the details are, and whether the locator can search with them.
#[derive(Serialize, ToSchema)]
pub struct LocatorResponse {
    pub legal_name: Option<String>,
    pub birth_country: Option<String>,
    /// YYYY-MM-DD.
    pub birth_date: Option<String>,
    /// Nine digits.
    pub a_number: Option<String>,
    /// The country of birth and the A-number or the legal name are there:
    /// the chosen contacts get the SMS after an alert.
    pub searchable: bool,
}

impl From<Locator> for LocatorBody {
    fn from(l: Locator) -> Self {
        LocatorBody {
            legal_name: l.legal_name,
            birth_country: l.birth_country,
            birth_date: l.birth_date,
            a_number: l.a_number,
        }
    }
}

fn response(l: Locator) -> LocatorResponse {
    let searchable = l.is_searchable();
    LocatorResponse {
        legal_name: l.legal_name,
        birth_country: l.birth_country,
        birth_date: l.birth_date,
        a_number: l.a_number,
        searchable,
    }
}

/// The details for ICE's detainee locator.
#[utoipa::path(get, path = "/api/v1/profile/locator", tag = "profile",
    security(("device_token" = [])),
    responses((status = 200, body = LocatorResponse), (status = 401, body = super::ErrorBody),
              (status = 403, description = "pin_required: no valid X-Avisa-Unlock (or the device is not verified)", body = super::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
) -> ApiResult<Json<LocatorResponse>> {
    let locator = if who.under_duress() {
        crate::duress::load(&state, who.person.id).await?.locator
    } else {
        avisa_engine::alerting::stored_locator(&state.store, who.person.id).await?
    };
    Ok(Json(response(locator.unwrap_or_default())))
}

/// Replace the details for ICE's detainee locator (all null or blank:
/// forget them).
#[utoipa::path(put, path = "/api/v1/profile/locator", tag = "profile",
    security(("device_token" = [])),
    request_body = LocatorBody,
    responses((status = 200, body = LocatorResponse), (status = 401, body = super::ErrorBody),
              (status = 403, description = "pin_required: no valid X-Avisa-Unlock (or the device is not verified)", body = super::ErrorBody),
              (status = 422, description = "a field too long, a date of birth or an A-number that does not read", body = super::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<LocatorResponse>> {
    // An object, field by field (every field is optional, and serde would
    // read an array as the fields in order).
    let req: LocatorBody = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    let locator = Locator::parse(
        req.legal_name.as_deref(),
        req.birth_country.as_deref(),
        req.birth_date.as_deref(),
        req.a_number.as_deref(),
        now_millis(),
    )?;
    let kept = (!locator.is_empty()).then_some(&locator);
    if who.under_duress() {
        // Answered as done, read back by such sessions, never used.
        let mut view = crate::duress::load(&state, who.person.id).await?;
        view.locator = kept.cloned();
        crate::duress::save(&state, who.person.id, &view).await?;
        crate::duress::attempted(&state, who.person.id, "locator").await;
        return Ok(Json(response(locator)));
    }
    let text = kept
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    state
        .store
        .set_locator(who.person.id, text.as_deref())
        .await?;
    Ok(Json(response(locator)))
}

pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(get, put))
}
