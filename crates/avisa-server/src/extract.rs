//! Extractors that answer in Avisa's error shape: JSON bodies and the
//! device's bearer token.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use avisa_store::Device;

use crate::error::ApiError;
use crate::state::AppState;

/// The client's address: the peer's, or — for a request from the configured
/// trusted proxy — the last address in its `X-Forwarded-For`. None when the
/// server was not given connection info (a router called directly).
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if let (Some(peer), Some(proxy)) = (peer, state.config.limits.trusted_proxy)
            && peer == proxy
            && let Some(client) = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|v| v.trim().parse().ok())
        {
            return Ok(ClientAddr(Some(client)));
        }
        Ok(ClientAddr(peer))
    }
}

/// The address of the connection's peer itself (no header believed); None
/// when the server was not given connection info.
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// `axum::Json`, with rejections turned into [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection.into()),
        }
    }
}

/// `axum::extract::Query`, with rejections turned into a JSON 400.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::InvalidQuery(rejection.body_text())),
        }
    }
}

/// The hash of the bearer token of a request. A token in the URL is refused
/// (proxies and browsers keep URLs), even beside a valid header: the app
/// streams with a header too.
fn bearer_hash(parts: &Parts) -> Result<Vec<u8>, ApiError> {
    if parts.uri.query().is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.starts_with("access_token=") || pair == "access_token")
    }) {
        return Err(ApiError::Unauthorized);
    }
    let token = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .ok_or(ApiError::Unauthorized)?;
    Ok(avisa_core::crypto::token_hash(&token))
}

/// The hash of the request's bearer token, not yet looked up (for handlers
/// that read the device together with something else, in one round trip).
pub struct Bearer(pub Vec<u8>);

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        bearer_hash(parts).map(Bearer)
    }
}

/// The refusal for a device whose phone number is not verified yet.
pub fn not_verified() -> ApiError {
    ApiError::Forbidden {
        code: "device_not_verified",
        message: "verify this device with the code sent by SMS first".into(),
    }
}

/// The device making the request, from `Authorization: Bearer <token>`.
pub struct Caller(pub Device);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let hash = bearer_hash(parts)?;
        let device = state
            .store
            .device_by_token_hash(&hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Caller(device))
    }
}

/// A caller whose phone number is verified: the person it belongs to (read
/// with the device, in one round trip), and whether the request carries a
/// valid unlock (always true until the person has set a PIN).
pub struct Person {
    pub person: avisa_store::Person,
    pub device_id: Uuid,
    pub unlocked: bool,
    /// Which PIN unlocked it: a session unlocked with a duress PIN answers
    /// exactly as a real one, and its changes go to [`crate::duress`].
    pub access: crate::pin::Access,
}

impl FromRequestParts<AppState> for Person {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let hash = bearer_hash(parts)?;
        let mut who = Person::authenticate(state, &hash).await?;
        who.access = crate::pin::access(
            state,
            &parts.headers,
            who.device_id,
            who.person.pin_hash.as_deref(),
        );
        who.unlocked = who.access.unlocked();
        Ok(who)
    }
}

impl Person {
    /// The verified person a bearer token hash belongs to (not unlocked).
    pub async fn authenticate(state: &AppState, hash: &[u8]) -> Result<Person, ApiError> {
        let (device, person) = state
            .store
            .device_and_person(hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let person = person.ok_or_else(not_verified)?;
        Ok(Person {
            person,
            device_id: device.id,
            unlocked: false,
            access: crate::pin::Access::Locked,
        })
    }
}

/// A verified caller with a valid unlock (or no PIN yet): what reading or
/// changing contacts and the profile's personal fields needs. Anything else
/// is 403 `pin_required`.
pub struct Unlocked(pub Person);

impl FromRequestParts<AppState> for Unlocked {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let who = Person::from_request_parts(parts, state).await?;
        if who.unlocked {
            Ok(Unlocked(who))
        } else {
            Err(pin_required())
        }
    }
}

impl Person {
    /// Whether this request was unlocked with a duress PIN.
    pub fn under_duress(&self) -> bool {
        self.access == crate::pin::Access::Duress
    }
}

/// Who reads an alert: whether they gave the PIN (names, previews, the place
/// of any alert), and from which phone (the place of the active alert that
/// phone raised).
#[derive(Clone, Copy)]
pub struct Viewer {
    pub unlocked: bool,
    pub device_id: Option<Uuid>,
}

impl Viewer {
    pub fn of(who: &Person) -> Viewer {
        Viewer {
            unlocked: who.unlocked,
            device_id: Some(who.device_id),
        }
    }
}

/// Parses an id from a path; anything that is not a UUID names nothing (404).
pub fn path_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// The refusal for a request that needs the PIN first.
fn pin_required() -> ApiError {
    ApiError::Forbidden {
        code: "pin_required",
        message:
            "enter the PIN first (POST /api/v1/pin/check) and send its unlock as X-Avisa-Unlock"
                .into(),
    }
}
