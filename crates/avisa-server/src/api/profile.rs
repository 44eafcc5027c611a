//! The person's profile: name, home state (and county), language, the
//! cancel PIN (write-only) and the SMS trigger keyword.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use avisa_core::{Invalid, Language, now_millis, states};
use avisa_store::Profile;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Person, Unlocked};
use crate::state::AppState;

/// Words carriers reserve for themselves; a trigger keyword must not be one.
const RESERVED_KEYWORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "HELP",
    "INFO",
    "START",
    "UNSTOP",
    "YES",
    "NO",
    "ALTO",
    "PARAR",
    "AYUDA",
    "BAJA",
    "ALTA",
    "CANCELAR",
    "INFORMACION",
];

/// The profile. Once a PIN is set, its personal fields (phone, name, home
/// state and county, keyword, consulate) are given only with a valid
/// unlock; without one they are null and `locked` is true.
#[derive(Serialize, ToSchema)]
pub struct ProfileResponse {
    /// The verified phone number of this person.
    pub phone: Option<String>,
    pub name: Option<String>,
    pub home_state: Option<String>,
    pub home_county: Option<String>,
    pub language: Language,
    pub keyword: Option<String>,
    /// Each contact's SMS says who is asking at its end ("… Avisa: María
    /// Pérez pide ayuda."), not first.
    pub name_at_end: bool,
    /// Whether a cancel PIN is set (the PIN itself is never returned).
    pub pin_set: bool,
    /// Whether the profile is complete (name, home state, keyword, PIN): the
    /// button is ready.
    pub complete: bool,
    /// Whether the personal fields were withheld for want of an unlock.
    pub locked: bool,
    /// After a request that set the PIN: an unlock, so the app goes on
    /// without asking for the PIN it was just given (send it as
    /// `X-Avisa-Unlock`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unlock: Option<String>,
    /// Seconds that unlock lasts; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// The office for the home state (and county): the one an alert without a
    /// location goes to, and the number to call.
    pub consulate: Option<crate::api::alerts::ConsulateRef>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    #[schema(
        max_length = 80,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*[^\s\u0000-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF][^\u0000-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$"
    )]
    pub name: String,
    /// Two-letter code of a US state, DC or territory (PR, VI, GU, MP, AS).
    #[schema(pattern = r"^\s*[A-Za-z]{2}\s*$")]
    pub home_state: String,
    #[serde(default)]
    #[schema(
        max_length = 60,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*[^\s\u0000-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF][^\u0000-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$"
    )]
    pub home_county: Option<String>,
    #[serde(default)]
    pub language: Language,
    /// 4 to 8 digits. Required the first time; to change it later, send
    /// `current_pin` too.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4,8}$")]
    pub cancel_pin: Option<String>,
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4,8}$")]
    pub current_pin: Option<String>,
    /// A second PIN, 4 to 8 digits and not the cancel PIN, for a cancel
    /// forced on the person: it cancels on the phone exactly as the cancel
    /// PIN does, but the alert stays open, the consulate sees it flagged and
    /// the contacts are told the cancel was forced. `""` removes it. Never
    /// returned; no answer tells whether one is set.
    #[serde(default)]
    #[schema(pattern = r"^([0-9]{4,8})?$")]
    pub duress_pin: Option<String>,
    /// The word that, sent by SMS to the service number, raises the alert.
    #[schema(pattern = r"^\s*[A-Za-z0-9]{3,20}\s*$")]
    pub keyword: String,
    /// Each contact's SMS says who is asking at its end instead of first.
    #[serde(default)]
    pub name_at_end: bool,
}

fn text_field(field: &'static str, raw: &str, max: usize) -> Result<String, Invalid> {
    // The limit counts what was sent, as the OpenAPI document's maxLength.
    let too_long = raw.chars().count() > max;
    let value = raw.trim();
    if value.is_empty() {
        return Err(Invalid::new(
            field,
            "required",
            format!("{field} is required"),
        ));
    }
    if too_long {
        return Err(Invalid::new(
            field,
            "too_long",
            format!("{field} has at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            "invalid_characters",
            format!("{field} has control characters"),
        ));
    }
    avisa_core::invalid::check_visible(field, value)?;
    Ok(value.to_string())
}

fn keyword(value: &str) -> Result<String, Invalid> {
    let word = value.trim().to_uppercase();
    if !(3..=20).contains(&word.len()) || !word.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Invalid::new(
            "keyword",
            "keyword_invalid",
            "the keyword is one word of 3 to 20 letters or digits, without accents",
        ));
    }
    if RESERVED_KEYWORDS.contains(&word.as_str())
        || crate::trigger::consent_word(&word).is_some()
        || crate::trigger::help_word(&word)
    {
        return Err(Invalid::new(
            "keyword",
            "keyword_reserved",
            "this word is reserved by phone carriers; choose another",
        ));
    }
    Ok(word)
}

fn response(state: &AppState, person: avisa_store::Person, unlocked: bool) -> ProfileResponse {
    let complete = person.profile.name.is_some()
        && person.profile.home_state.is_some()
        && person.profile.keyword.is_some()
        && person.pin_hash.is_some();
    if !unlocked {
        return ProfileResponse {
            phone: None,
            name: None,
            home_state: None,
            home_county: None,
            language: person.profile.language,
            keyword: None,
            name_at_end: false,
            pin_set: person.pin_hash.is_some(),
            complete,
            locked: true,
            consulate: None,
            unlock: None,
            expires_in: None,
        };
    }
    let consulate = person
        .profile
        .home_state
        .as_deref()
        .and_then(|st| {
            state
                .alerting
                .directory()
                .route_by_home(st, person.profile.home_county.as_deref())
        })
        .map(|(o, _)| crate::api::alerts::ConsulateRef {
            id: o.id.clone(),
            name: o.name.clone(),
            phone: o.phone.clone(),
        });
    ProfileResponse {
        consulate,
        phone: Some(person.phone.to_string()),
        name: person.profile.name,
        home_state: person.profile.home_state,
        home_county: person.profile.home_county,
        language: person.profile.language,
        keyword: person.profile.keyword,
        name_at_end: person.profile.name_at_end,
        pin_set: person.pin_hash.is_some(),
        complete,
        locked: false,
        unlock: None,
        expires_in: None,
    }
}

/// The person's profile: its personal fields only with a valid unlock.
#[utoipa::path(get, path = "/api/v1/profile", tag = "profile",
    security(("device_token" = [])),
    responses((status = 200, body = ProfileResponse), (status = 401, body = super::ErrorBody),
              (status = 403, description = "device not verified", body = super::ErrorBody)))]
pub async fn get(State(state): State<AppState>, who: Person) -> ApiResult<Json<ProfileResponse>> {
    let mut person = state
        .store
        .person(who.person.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if who.under_duress() {
        let view = crate::duress::load(&state, who.person.id).await?;
        person = crate::duress::seen_profile(&view, &person);
    }
    Ok(Json(response(&state, person, who.unlocked)))
}

/// Replace the person's profile (with a valid unlock, once a PIN is set).
#[utoipa::path(put, path = "/api/v1/profile", tag = "profile",
    security(("device_token" = [])),
    request_body = ProfileRequest,
    responses((status = 200, body = ProfileResponse), (status = 401, body = super::ErrorBody),
              (status = 403, description = "not verified, pin_required (no valid X-Avisa-Unlock), or wrong current PIN", body = super::ErrorBody),
              (status = 429, description = "the PIN is locked; see Retry-After", body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
    ApiJson(req): ApiJson<ProfileRequest>,
) -> ApiResult<Json<ProfileResponse>> {
    // Validate everything before anything is written.
    let name = text_field("name", &req.name, 80)?;
    let home_state = states::normalize(&req.home_state)
        .filter(|s| state.alerting.directory().covers_state(s))
        .ok_or_else(|| {
            Invalid::new(
                "home_state",
                "home_state_invalid",
                "not a US state code served by a consulate (e.g. CA, TX, PR)",
            )
        })?;
    let home_county = match req.home_county.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(text_field("home_county", c, 60)?),
    };
    let keyword = keyword(&req.keyword)?;
    if let Some(pin) = &req.cancel_pin {
        crate::pin::check_shape("cancel_pin", pin)?;
    }
    let duress_pin = req.duress_pin.as_deref().filter(|p| !p.is_empty());
    if let Some(duress) = duress_pin {
        crate::pin::check_shape("duress_pin", duress)?;
        if req.cancel_pin.as_deref() == Some(duress) {
            return Err(same_as_pin().into());
        }
    }
    let profile = Profile {
        name: Some(name),
        home_state: Some(home_state.to_string()),
        home_county,
        keyword: Some(keyword),
        language: req.language,
        name_at_end: req.name_at_end,
    };
    if who.under_duress() {
        return put_under_duress(&state, &who, &req, profile, duress_pin).await;
    }
    let person = state
        .store
        .person(who.person.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let pin_hash = match (&req.cancel_pin, person.pin_hash.clone()) {
        (None, None) => {
            return Err(Invalid::new(
                "cancel_pin",
                "pin_required",
                "choose a cancel PIN of 4 to 8 digits",
            )
            .into());
        }
        (None, Some(existing)) => existing,
        (Some(new_pin), existing) => {
            if existing.is_some() {
                // The same guard and lockout as cancel: a wrong current PIN
                // counts, and a locked PIN cannot be changed.
                let Some(current) = req.current_pin.as_deref() else {
                    return Err(ApiError::Forbidden {
                        code: "pin_incorrect",
                        message: "to change the PIN, send the current one as current_pin".into(),
                    });
                };
                crate::pin::check(&state, "current_pin", who.person.id, current, None).await?;
            }
            crate::pin::hash_pin(&state, new_pin.clone()).await?
        }
    };
    let duress_hash = duress_hash(&state, &req, &person, duress_pin).await?;
    let keyword_changed = person
        .profile
        .keyword
        .as_ref()
        .is_some_and(|k| Some(k) != profile.keyword.as_ref());
    state
        .store
        .update_profile(
            who.person.id,
            &profile,
            Some(pin_hash.clone()),
            duress_hash,
            now_millis(),
        )
        .await?;
    if person.pin_hash.is_none() {
        // The set-up: what the person does in the next minutes (adding
        // contacts) is told together, once, at the end of the window.
        state
            .store
            .changes_notice(
                who.person.id,
                now_millis(),
                super::contacts::notice_window(&state),
            )
            .await?;
    } else if keyword_changed {
        super::contacts::tell_of_change(&state, &person).await;
    }
    // Saved with the real PIN: the person has their phone back. What a
    // duress session wrote stops showing, and the PIN it chose as "duress
    // PIN" stops working once the person sets their PINs again.
    state.store.set_decoy_view(who.person.id, None).await?;
    if person.decoy_hash.is_some() && (req.cancel_pin.is_some() || req.duress_pin.is_some()) {
        let nothing = crate::pin::hash_nothing(&state).await?;
        state
            .store
            .set_duress_hashes(who.person.id, None, Some(nothing))
            .await?;
    }
    let person = state
        .store
        .person(who.person.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut body = response(&state, person, true);
    if req.cancel_pin.is_some() {
        // A new PIN ends every unlock made under the old one; this device,
        // which just gave it, gets a fresh one.
        let unlock =
            crate::pin::issue_unlock(&state, who.device_id, &pin_hash, crate::pin::Entered::Pin);
        body.unlock = Some(unlock.unlock);
        body.expires_in = Some(unlock.expires_in);
    }
    Ok(Json(body))
}

/// `PUT /api/v1/profile` in a session unlocked with a duress PIN: the
/// same checks and the same answer as a real one, with no effect on alerts
/// (see [`crate::duress`]). The PIN it sets becomes the duress PIN; the
/// duress PIN it sets becomes a second one, compared only with what this
/// session itself knows as the cancel PIN (the duress PIN), never with the
/// real one; the profile goes to the duress view.
async fn put_under_duress(
    state: &AppState,
    who: &Person,
    req: &ProfileRequest,
    profile: Profile,
    duress_pin: Option<&str>,
) -> ApiResult<Json<ProfileResponse>> {
    let person = state
        .store
        .person(who.person.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut tried = Vec::new();
    let mut new_duress = None;
    if let Some(new_pin) = &req.cancel_pin {
        let Some(current) = req.current_pin.as_deref() else {
            return Err(ApiError::Forbidden {
                code: "pin_incorrect",
                message: "to change the PIN, send the current one as current_pin".into(),
            });
        };
        // Counts and refuses exactly as for a real change.
        crate::pin::check(state, "current_pin", who.person.id, current, None).await?;
        new_duress = Some(crate::pin::hash_pin(state, new_pin.clone()).await?);
        tried.push("cancel_pin");
    }
    let mut new_decoy = None;
    if let Some(duress) = duress_pin {
        // This session's "cancel PIN" is the duress PIN: the one comparison
        // a real session would make, against a PIN the holder knows.
        if req.cancel_pin.is_none()
            && let Some(known) = person.duress_hash.clone()
            && crate::pin::matches(state, duress.to_string(), known).await?
        {
            return Err(same_as_pin().into());
        }
        new_decoy = Some(crate::pin::hash_pin(state, duress.to_string()).await?);
        tried.push("duress_pin");
    } else if req.duress_pin.is_some() {
        new_decoy = Some(crate::pin::hash_nothing(state).await?);
        tried.push("duress_pin");
    }
    if new_duress.is_some() || new_decoy.is_some() {
        state
            .store
            .set_duress_hashes(who.person.id, new_duress, new_decoy)
            .await?;
    }
    let mut view = crate::duress::load(state, who.person.id).await?;
    let seen = crate::duress::seen_profile(&view, &person);
    let keyword_changed = seen.profile.keyword != profile.keyword;
    if seen.profile != profile {
        tried.push("profile");
    }
    view.profile = Some((&profile).into());
    crate::duress::save(state, who.person.id, &view).await?;
    if keyword_changed {
        // A real change of keyword tells the person's phone; so does this.
        super::contacts::tell_of_change(state, &person).await;
    }
    for what in tried {
        crate::duress::attempted(state, who.person.id, what).await;
    }
    let mut seen = person.clone();
    seen.profile = profile;
    let mut body = response(state, seen, true);
    if req.cancel_pin.is_some() {
        let unlock = crate::pin::issue_unlock(
            state,
            who.device_id,
            person.pin_hash.as_deref().unwrap_or_default(),
            crate::pin::Entered::Duress,
        );
        body.unlock = Some(unlock.unlock);
        body.expires_in = Some(unlock.expires_in);
    }
    Ok(Json(body))
}

fn same_as_pin() -> Invalid {
    Invalid::new(
        "duress_pin",
        "duress_same_as_pin",
        "the duress PIN must differ from the cancel PIN",
    )
}

/// The duress hash to write, or None to keep the stored one. A new duress
/// PIN is refused when it is the cancel PIN (new or kept); `""` or the first
/// PIN without one stores a random secret's hash, so the database never
/// tells whether a duress PIN is set; a new cancel PIN equal to the duress
/// PIN replaces the duress PIN the same way (silently: saying so would tell).
async fn duress_hash(
    state: &AppState,
    req: &ProfileRequest,
    person: &avisa_store::Person,
    duress_pin: Option<&str>,
) -> ApiResult<Option<String>> {
    if let Some(duress) = duress_pin {
        if req.cancel_pin.is_none()
            && let Some(current) = person.pin_hash.clone()
            && crate::pin::matches(state, duress.to_string(), current).await?
        {
            return Err(same_as_pin().into());
        }
        return Ok(Some(crate::pin::hash_pin(state, duress.to_string()).await?));
    }
    let removed = req.duress_pin.is_some();
    let first = person.duress_hash.is_none();
    let collides = match (&req.cancel_pin, person.duress_hash.clone()) {
        (Some(new_pin), Some(stored)) => {
            crate::pin::matches(state, new_pin.clone(), stored).await?
        }
        _ => false,
    };
    if removed || first || collides {
        return Ok(Some(crate::pin::hash_nothing(state).await?));
    }
    Ok(None)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    #[schema(pattern = r"^[0-9]{4,8}$")]
    pub pin: String,
}

/// Check the PIN: the right one earns an unlock for this device, which
/// reading or changing contacts and the profile needs. Wrong PINs count
/// towards the one lockout.
#[utoipa::path(post, path = "/api/v1/pin/check", tag = "profile",
    security(("device_token" = [])),
    request_body = PinRequest,
    responses((status = 200, body = crate::pin::Unlock), (status = 401, body = super::ErrorBody),
              (status = 403, description = "wrong PIN, or device not verified", body = super::ErrorBody),
              (status = 422, description = "not a PIN of 4 to 8 digits", body = super::ErrorBody),
              (status = 429, description = "locked after too many wrong PINs", body = super::ErrorBody)))]
pub async fn pin_check(
    State(state): State<AppState>,
    who: Person,
    ApiJson(req): ApiJson<PinRequest>,
) -> ApiResult<Json<crate::pin::Unlock>> {
    // The duress PIN unlocks too: refusing it would tell whoever forces the
    // person that the PIN they were given is not the real one.
    let (person, entered) = crate::pin::check(&state, "pin", who.person.id, &req.pin, None).await?;
    let pin_hash = person.pin_hash.unwrap_or_default();
    Ok(Json(crate::pin::issue_unlock(
        &state,
        who.device_id,
        &pin_hash,
        entered,
    )))
}

/// Delete my data: the person, every device, contact and alert of theirs,
/// after the PIN. Refused while a real alert is active (cancel it first), so
/// a case the consulate is handling is not erased from under it.
#[utoipa::path(delete, path = "/api/v1/profile", tag = "profile",
    security(("device_token" = [])),
    request_body = PinRequest,
    responses((status = 204), (status = 403, body = super::ErrorBody),
              (status = 409, description = "an alert is active", body = super::ErrorBody),
              (status = 429, body = super::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
    ApiJson(req): ApiJson<PinRequest>,
) -> ApiResult<axum::http::StatusCode> {
    let (_, entered) = crate::pin::check(&state, "pin", who.person.id, &req.pin, None).await?;
    let open = state.store.active_alerts(who.person.id).await?;
    if entered == crate::pin::Entered::Duress || who.under_duress() || open.under_duress > 0 {
        // Forced: the phone sees its data deleted (and its token stops
        // working), but the person, their contacts and the open case stay
        // for the consulate. Refusing, or deleting, would serve whoever
        // forces the person.
        state.store.forget_device(who.device_id).await?;
        crate::duress::attempted(&state, who.person.id, "delete").await;
        tracing::warn!("delete my data under duress: this device forgotten, the data kept");
        return Ok(axum::http::StatusCode::NO_CONTENT);
    }
    if open.active > 0 {
        return Err(ApiError::Conflict {
            code: "alert_active",
            message: "an alert is active: cancel it first, then delete your data".into(),
        });
    }
    state.store.delete_person(who.person.id).await?;
    tracing::info!("a person deleted their data");
    metrics::counter!("avisa_people_deleted_total").increment(1);
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// This module's routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(get, put, delete))
        .routes(utoipa_axum::routes!(pin_check))
}
