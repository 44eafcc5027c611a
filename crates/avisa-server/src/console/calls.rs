//! The call log: each call an officer makes about a case (with whom, how
//! it went, a note sealed like any note), on the timeline and in the audit.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;

use avisa_core::{CallResult, CallWith};
use avisa_store::CaseAction;

use super::StaffSession;
use super::case::{AlertDetail, act};
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// `person`, `contact`, `facility`, `ice`, `lawyer` or `other`.
    #[schema(value_type = avisa_core::CallWith)]
    pub with: String,
    /// `spoke`, `no_answer`, `voicemail`, `busy` or `wrong_number`.
    #[schema(value_type = avisa_core::CallResult)]
    pub result: String,
    /// What was said or agreed ("hablé con la hermana: va al centro").
    #[serde(default)]
    #[schema(
        max_length = 1000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$"
    )]
    pub note: Option<String>,
}

/// Log a call made about the case: with whom, how it went, a note. It goes
/// on the timeline (the note sealed) and in the audit.
#[utoipa::path(post, path = "/api/v1/console/alerts/{id}/calls", tag = "console", params(("id" = Uuid, Path)),
    request_body = CallRequest, responses((status = 200, body = AlertDetail), (status = 403, description = "CSRF", body = crate::api::ErrorBody),
                                          (status = 404, body = crate::api::ErrorBody), (status = 422, body = crate::api::ErrorBody)))]
pub async fn call(
    State(state): State<AppState>,
    who: StaffSession,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CallRequest>,
) -> ApiResult<Json<AlertDetail>> {
    let with = req.with.parse::<CallWith>().map_err(|_| {
        avisa_core::Invalid::new(
            "with",
            "call_with_invalid",
            "with is person, contact, facility, ice, lawyer or other",
        )
    })?;
    let result = req.result.parse::<CallResult>().map_err(|_| {
        avisa_core::Invalid::new(
            "result",
            "call_result_invalid",
            "result is spoke, no_answer, voicemail, busy or wrong_number",
        )
    })?;
    if req.note.as_ref().is_some_and(|n| n.chars().count() > 1000) {
        return Err(avisa_core::Invalid::new(
            "note",
            "too_long",
            "the note has at most 1000 characters",
        )
        .into());
    }
    let note = req
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if let Some(n) = &note {
        avisa_core::invalid::check_visible("note", n)?;
    }
    let detail = format!("{with} {result}");
    act(
        &state,
        &who,
        &id,
        CaseAction::Call { with, result, note },
        Some(&detail),
    )
    .await
}
