//! The phone API (`/api/v1/…`), one module per resource.

pub mod alerts;
pub mod cancel;
pub mod checkins;
pub mod contacts;
pub mod devices;
pub mod history;
pub mod locations;
pub mod locator;
pub mod phones;
pub mod profile;

use serde::Serialize;
use utoipa::ToSchema;

/// The error shape every endpoint answers with.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `phone_invalid`, `unauthorized`, `rate_limited`.
    pub code: String,
    pub message: String,
    /// The input field at fault, for 422s about one value.
    pub field: Option<String>,
    /// For `phone_ambiguous`: the readings to choose between.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readings: Vec<phones::PhoneResponse>,
}

/// The phone API's routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .merge(devices::routes())
        .merge(phones::routes())
        .merge(profile::routes())
        .merge(locator::routes())
        .merge(contacts::routes())
        .merge(alerts::routes())
        .merge(cancel::routes())
        .merge(locations::routes())
        .merge(checkins::routes())
        .merge(history::routes())
}
