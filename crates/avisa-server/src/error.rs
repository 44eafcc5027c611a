//! The one error of the HTTP layer, and how each becomes a response.
//!
//! Every error is `{"error": {"code", "message", "field"?}}` with the right
//! status. `code` is stable (clients translate by it); a 5xx is logged in
//! full and answered with no internal detail.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use avisa_core::Invalid;
use avisa_store::StoreError;

use crate::checkins::CheckinError;
use crate::pin::PinError;
use crate::streams::TooManyStreams;
use avisa_engine::alerting::{CancelError, RaiseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 422: a value that does not parse or break a rule.
    #[error("{0}")]
    Invalid(#[from] Invalid),
    /// 400: the body is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// 400: a query string of the wrong shape.
    #[error("invalid query string: {0}")]
    InvalidQuery(String),
    /// A refusal made outside the handlers (the router's 405, an
    /// extractor's plain-text rejection), in the JSON shape.
    #[error("{message}")]
    Status {
        status: StatusCode,
        code: &'static str,
        message: &'static str,
    },
    /// 422: JSON of the wrong shape (missing or unknown field, wrong type).
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// 413
    #[error("the request body is too large")]
    BodyTooLarge,
    /// 415
    #[error("the body must be JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 401 for a console login refused (wrong username or password, or a
    /// disabled account: the same answer).
    #[error("{message}")]
    LoginFailed { message: String },
    /// 401: no token, or one that names no device.
    #[error("a valid device token is required (Authorization: Bearer …)")]
    Unauthorized,
    /// 403 with a code of its own.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404
    #[error("not found")]
    NotFound,
    /// 409 with a code of its own.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 429, with the seconds to wait.
    #[error("too many requests; try again in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// 429 for a limit that no waiting lifts soon (e.g. a full trail).
    #[error("{message}")]
    Limit { code: &'static str, message: String },
    /// 429 for a PIN locked after too many wrong tries.
    #[error("too many wrong PINs; try again in {retry_after_secs} s")]
    Locked { retry_after_secs: u64 },
    /// 503: a bounded queue is full (e.g. the hashing threads); try again in
    /// `retry_after_secs`.
    #[error("busy; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// 429 for a console login from an address that failed too often: it
    /// waits (the account itself is never locked).
    #[error("too many failed logins from this address; try again in {retry_after_secs} s")]
    LoginThrottled { retry_after_secs: u64 },
    /// 500: logged, never shown.
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    readings: &'a [avisa_core::invalid::PhoneReading],
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &str) {
        match self {
            ApiError::Invalid(i) => (StatusCode::UNPROCESSABLE_ENTITY, i.code),
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::InvalidBody(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            ApiError::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            ApiError::Status { status, code, .. } => (*status, code),
            ApiError::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::LoginFailed { .. } => (StatusCode::UNAUTHORIZED, "login_failed"),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Locked { .. } => (StatusCode::TOO_MANY_REQUESTS, "pin_locked"),
            ApiError::Limit { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::LoginThrottled { .. } => (StatusCode::TOO_MANY_REQUESTS, "login_throttled"),
            ApiError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl ApiError {
    /// The JSON refusal for a status answered outside the handlers.
    pub fn from_status(status: StatusCode) -> ApiError {
        let (code, message) = match status.as_u16() {
            400 => ("bad_request", "the request is not well-formed"),
            404 => ("not_found", "not found"),
            405 => (
                "method_not_allowed",
                "this path does not answer that method",
            ),
            408 => ("timeout", "the request took too long to arrive"),
            413 => ("body_too_large", "the request body is too large"),
            415 => (
                "unsupported_media_type",
                "the body is not of a type this path reads",
            ),
            422 => (
                "invalid_body",
                "the request body is not of the expected shape",
            ),
            s if s >= 500 => (
                "internal",
                "something went wrong on our side; please try again",
            ),
            _ => ("refused", "the request was refused"),
        };
        ApiError::Status {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(e) => {
                // The full chain goes to the log (which never holds personal
                // data: store errors name tables, not values); the client
                // gets nothing it could use.
                tracing::error!(error = %format!("{e:#}"), "internal error");
                "something went wrong on our side; nothing was changed, please try again".into()
            }
            ApiError::Invalid(i) => i.message.clone(),
            other => other.to_string(),
        };
        let (field, readings) = match &self {
            ApiError::Invalid(i) => (Some(i.field), i.readings.as_slice()),
            _ => (None, &[][..]),
        };
        let mut response = (
            status,
            Json(Body {
                error: Detail {
                    code,
                    message,
                    field,
                    readings,
                },
            }),
        )
            .into_response();
        if let ApiError::TooManyRequests { retry_after_secs }
        | ApiError::Locked { retry_after_secs }
        | ApiError::LoginThrottled { retry_after_secs }
        | ApiError::Busy { retry_after_secs } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

// The domain's errors, each said in HTTP here and only here: what the
// voice line, the SMS keyword and the check-in job tell a person is decided
// from the domain error itself (`alerting`, `pin`, `checkins`).

impl From<RaiseError> for ApiError {
    fn from(e: RaiseError) -> Self {
        match e {
            RaiseError::NoPerson => ApiError::NotFound,
            RaiseError::ProfileIncomplete => ApiError::Conflict {
                code: "profile_incomplete",
                message: e.to_string(),
            },
            RaiseError::RateLimited { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs }
            }
            RaiseError::Unavailable(e) => {
                tracing::error!(error = %e, "the database is unavailable; press answered 503");
                ApiError::Busy {
                    retry_after_secs: 2,
                }
            }
            RaiseError::Store(e) => e.into(),
            RaiseError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::AlreadyCancelled => ApiError::Conflict {
                code: "already_cancelled",
                message: e.to_string(),
            },
            CancelError::Store(e) => e.into(),
        }
    }
}

impl From<PinError> for ApiError {
    fn from(e: PinError) -> Self {
        match e {
            PinError::Shape(invalid) => ApiError::Invalid(invalid),
            PinError::Wrong { .. } => ApiError::Forbidden {
                code: "pin_incorrect",
                message: e.to_string(),
            },
            PinError::Locked { retry_after_secs } => ApiError::Locked { retry_after_secs },
            PinError::NoPerson => ApiError::NotFound,
            PinError::Busy => ApiError::Busy {
                retry_after_secs: 1,
            },
            PinError::Store(e) => e.into(),
            PinError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<CheckinError> for ApiError {
    fn from(e: CheckinError) -> Self {
        match e {
            CheckinError::Raise(e) => e.into(),
            CheckinError::Pin(e) => e.into(),
            CheckinError::Store(e) => e.into(),
        }
    }
}

impl From<TooManyStreams> for ApiError {
    fn from(e: TooManyStreams) -> Self {
        ApiError::Limit {
            code: "too_many_streams",
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::LimitReached => ApiError::Conflict {
                code: "limit_reached",
                message: "the limit for this resource is reached".into(),
            },
            // The database away or swamped: the client is told to come
            // back (the app sends the press again with its key), never left
            // hanging.
            e if e.is_unavailable() => {
                tracing::error!(error = %e, "the database is unavailable; answered 503");
                ApiError::Busy {
                    retry_after_secs: 2,
                }
            }
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::InvalidBody(rejection.body_text()),
            _ => match rejection {
                JsonRejection::JsonSyntaxError(_) => ApiError::MalformedJson(rejection.body_text()),
                other => ApiError::InvalidBody(other.body_text()),
            },
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
