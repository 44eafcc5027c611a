//! The person's contacts: up to 10, each with a message of their own.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use avisa_core::messages::longest_contact_alert;
use avisa_core::sms::{Encoding, MAX_MESSAGE_SEGMENTS, analyze};
use avisa_core::{Invalid, Language, now_millis};
use avisa_store::{Contact, ContactInput, MAX_CONTACTS, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Unlocked, path_id};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    #[schema(
        max_length = 80,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*[^\s\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$"
    )]
    pub name: String,
    /// As typed; stored in E.164.
    #[schema(min_length = 1, max_length = 40)]
    pub phone: String,
    /// The country the number is read in (ISO 3166, "MX"); see
    /// `POST /api/v1/phone/read`.
    #[serde(default)]
    #[schema(pattern = r"^\s*([A-Za-z]{2})?\s*$")]
    pub country: Option<String>,
    #[serde(default)]
    pub language: Language,
    /// What this contact receives when the button is pressed (at most 3 SMS).
    #[schema(
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*[^\s\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$"
    )]
    pub message: String,
    /// Send this contact a "nueva ubicación" SMS when the person moves while
    /// an alert is active (at most one per 15 minutes, three per alert).
    #[serde(default)]
    pub location_updates: bool,
    /// Send this contact, after an alert, what ICE's detainee locator needs
    /// to find the person (`PUT /api/v1/profile/locator`): typically the
    /// lawyer and one relative.
    #[serde(default)]
    pub locator: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ContactResponse {
    pub id: Uuid,
    pub name: String,
    pub phone: String,
    /// ISO 3166 code of the number's country.
    pub country: String,
    /// "+52 55 1234 5678".
    pub international: String,
    pub language: Language,
    pub message: String,
    /// Gets "nueva ubicación" SMS during an alert.
    pub location_updates: bool,
    /// Gets the locator details after an alert.
    pub locator: bool,
    /// The contact's number asked for no more of Avisa's messages (STOP, to
    /// the provider or to the service number): alerts no longer reach it on
    /// any gateway. Only the number itself undoes it, by sending START;
    /// saving the contact again does not.
    pub blocked: bool,
    /// When the number asked for no more messages (Unix milliseconds), if
    /// it did.
    pub blocked_since: Option<i64>,
    /// The name of another contact with the same number, if any: that
    /// number gets one alert SMS (the first contact's), not one per entry.
    pub same_number_as: Option<String>,
    /// "GSM-7" or "UCS-2", of what the contact receives: the message with
    /// the longest location line an alert adds.
    pub encoding: Encoding,
    /// SMS that makes at most (the 3-SMS limit applies to the text alone).
    pub segments: usize,
    pub characters: usize,
}

#[derive(Serialize, ToSchema)]
pub struct ContactList {
    pub contacts: Vec<ContactResponse>,
    /// The most contacts a person may have.
    pub max: i64,
}

/// `person_name` is the person's, as their contacts' SMS begin with it
/// ("Avisa: … pide ayuda:"): the count is of what the contact receives.
fn response(
    c: Contact,
    blocked_since: Option<i64>,
    person_name: &str,
    all: &[Contact],
) -> ContactResponse {
    let same_number_as = all
        .iter()
        .find(|o| o.id != c.id && o.phone == c.phone)
        .map(|o| o.name.clone());
    let info = analyze(&longest_contact_alert(&c.message, c.language, person_name));
    let reading = c.phone.reading();
    ContactResponse {
        id: c.id,
        name: c.name,
        phone: reading.phone,
        country: reading.country,
        international: reading.international,
        language: c.language,
        location_updates: c.location_updates,
        locator: c.locator,
        blocked: blocked_since.is_some(),
        blocked_since,
        same_number_as,
        encoding: info.encoding,
        segments: info.segments,
        characters: info.characters,
        message: c.message,
    }
}

/// A contact's number must be in `limits.contact_countries`: an alert is
/// SMS Avisa pays for, to numbers the person chooses.
fn allowed_country(state: &AppState, phone: &avisa_core::PhoneNumber) -> Result<(), Invalid> {
    let allowed = &state.config.limits.contact_countries;
    let country = phone.country();
    if country
        .as_ref()
        .is_some_and(|c| allowed.iter().any(|a| a.eq_ignore_ascii_case(c.as_str())))
    {
        return Ok(());
    }
    Err(Invalid::new(
        "phone",
        "contact_country_not_allowed",
        format!(
            "alerts are not sent to numbers in {} here; this service sends them to: {}",
            country.map_or_else(|| "that country".to_string(), |c| c.to_string()),
            allowed.join(", ")
        ),
    ))
}

fn parse(req: ContactRequest) -> Result<ContactInput, Invalid> {
    let name = req.name.trim();
    if name.is_empty() {
        return Err(Invalid::new("name", "required", "name is required"));
    }
    if req.name.chars().count() > 80 {
        return Err(Invalid::new(
            "name",
            "too_long",
            "name has at most 80 characters",
        ));
    }
    avisa_core::invalid::check_visible("name", name)?;
    let phone = super::phones::parse(&req.phone, req.country.as_deref())?;
    let message = req.message.trim_end().to_string();
    if message.trim().is_empty() {
        return Err(Invalid::new("message", "required", "message is required"));
    }
    avisa_core::invalid::check_visible("message", &message)?;
    // The 3-SMS limit is on the person's text. Applied to the whole SMS (the
    // text and the location line of up to 110 characters) it would leave an
    // accented Spanish message about 90 characters, and refuse the app's own
    // templates for most names; the counter and `segments` tell the whole.
    let info = analyze(&message);
    if info.segments > MAX_MESSAGE_SEGMENTS {
        return Err(Invalid::new(
            "message",
            "message_too_long",
            format!(
                "the message takes {} SMS ({}); at most {MAX_MESSAGE_SEGMENTS} are allowed",
                info.segments,
                info.encoding.as_str()
            ),
        ));
    }
    Ok(ContactInput {
        name: name.to_string(),
        phone,
        message,
        language: req.language,
        location_updates: req.location_updates,
        locator: req.locator,
    })
}

/// The person's contacts, in the order they were added.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts",
    security(("device_token" = [])),
    responses((status = 200, body = ContactList), (status = 403, description = "pin_required: no valid X-Avisa-Unlock (or the device is not verified)", body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
) -> ApiResult<Json<ContactList>> {
    let contacts = if who.under_duress() {
        let view = crate::duress::load(&state, who.person.id).await?;
        crate::duress::seen_contacts(&state, &view, who.person.id)
            .await?
            .iter()
            .map(crate::duress::ViewContact::contact)
            .collect()
    } else {
        state.store.contacts(who.person.id).await?
    };
    let phones: Vec<_> = contacts.iter().map(|c| &c.phone).collect();
    let blocked = state.store.opted_out(&phones).await?;
    let name = name_of(&who);
    Ok(Json(ContactList {
        contacts: contacts
            .iter()
            .map(|c| {
                let since = blocked.get(c.phone.as_str()).copied();
                response(c.clone(), since, name, &contacts)
            })
            .collect(),
        max: MAX_CONTACTS,
    }))
}

/// Add a contact.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts",
    security(("device_token" = [])),
    request_body = ContactRequest,
    responses((status = 201, body = ContactResponse), (status = 403, description = "pin_required: no valid X-Avisa-Unlock (or the device is not verified)", body = super::ErrorBody), (status = 401, body = super::ErrorBody),
              (status = 409, description = "already 10 contacts", body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
    ApiJson(req): ApiJson<ContactRequest>,
) -> ApiResult<(StatusCode, Json<ContactResponse>)> {
    let input = parse(req)?;
    allowed_country(&state, &input.phone)?;
    if who.under_duress() {
        return Ok((
            StatusCode::CREATED,
            Json(under_duress(&state, &who, Change::Add(&input)).await?),
        ));
    }
    match state
        .store
        .add_contact(who.person.id, &input, now_millis())
        .await
    {
        Ok(c) => {
            tell_of_change(&state, &who.person).await;
            // A STOP is the number's to undo (START), not the person's.
            let blocked = state.store.opted_out(&[&c.phone]).await?;
            let since = blocked.values().next().copied();
            let all = state.store.contacts(who.person.id).await?;
            Ok((
                StatusCode::CREATED,
                Json(response(c, since, name_of(&who), &all)),
            ))
        }
        Err(StoreError::LimitReached) => Err(ApiError::Conflict {
            code: "contacts_limit",
            message: format!("a person may have at most {MAX_CONTACTS} contacts"),
        }),
        Err(e) => Err(e.into()),
    }
}

/// One contact.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts",
    security(("device_token" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ContactResponse), (status = 403, description = "pin_required: no valid X-Avisa-Unlock (or the device is not verified)", body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
    Path(id): Path<String>,
) -> ApiResult<Json<ContactResponse>> {
    let id = path_id(&id)?;
    let contact = if who.under_duress() {
        let view = crate::duress::load(&state, who.person.id).await?;
        crate::duress::seen_contacts(&state, &view, who.person.id)
            .await?
            .iter()
            .find(|c| c.id == id)
            .map(crate::duress::ViewContact::contact)
    } else {
        state.store.contact(who.person.id, id).await?
    }
    .ok_or(ApiError::NotFound)?;
    let blocked = state.store.opted_out(&[&contact.phone]).await?;
    let since = blocked.values().next().copied();
    let all = seen(&state, &who).await?;
    Ok(Json(response(contact, since, name_of(&who), &all)))
}

/// Every contact as this session sees them (a duress session: its own view).
async fn seen(state: &AppState, who: &crate::extract::Person) -> ApiResult<Vec<Contact>> {
    if who.under_duress() {
        let view = crate::duress::load(state, who.person.id).await?;
        Ok(crate::duress::seen_contacts(state, &view, who.person.id)
            .await?
            .iter()
            .map(crate::duress::ViewContact::contact)
            .collect())
    } else {
        Ok(state.store.contacts(who.person.id).await?)
    }
}

/// Replace a contact.
#[utoipa::path(put, path = "/api/v1/contacts/{id}", tag = "contacts",
    security(("device_token" = [])),
    params(("id" = Uuid, Path)),
    request_body = ContactRequest,
    responses((status = 200, body = ContactResponse), (status = 403, description = "pin_required: no valid X-Avisa-Unlock (or the device is not verified)", body = super::ErrorBody), (status = 404, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ContactRequest>,
) -> ApiResult<Json<ContactResponse>> {
    let id = path_id(&id)?;
    let input = parse(req)?;
    allowed_country(&state, &input.phone)?;
    if who.under_duress() {
        return Ok(Json(
            under_duress(&state, &who, Change::Replace(id, &input)).await?,
        ));
    }
    let contact = state
        .store
        .update_contact(who.person.id, id, &input, now_millis())
        .await?;
    tell_of_change(&state, &who.person).await;
    let blocked = state.store.opted_out(&[&contact.phone]).await?;
    let since = blocked.values().next().copied();
    let all = state.store.contacts(who.person.id).await?;
    Ok(Json(response(contact, since, name_of(&who), &all)))
}

/// Delete a contact.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts",
    security(("device_token" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, description = "pin_required: no valid X-Avisa-Unlock (or the device is not verified)", body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id)?;
    if who.under_duress() {
        under_duress(&state, &who, Change::Delete(id)).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    if state.store.delete_contact(who.person.id, id).await? {
        tell_of_change(&state, &who.person).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// A change of the contacts.
enum Change<'a> {
    Add(&'a ContactInput),
    Replace(Uuid, &'a ContactInput),
    Delete(Uuid),
}

/// A change of the contacts in a session unlocked with a duress PIN: made
/// on the duress view only (alerts keep every real number and message),
/// answered exactly as the real change (the same refusals, the same notice
/// to the person's phone), and put on the case timeline. Returns the
/// contact as answered (a deleted one for `Delete`).
/// The person's name as their contacts' SMS carry it.
fn name_of(who: &crate::extract::Person) -> &str {
    who.person.profile.name.as_deref().unwrap_or("")
}

async fn under_duress(
    state: &AppState,
    who: &crate::extract::Person,
    change: Change<'_>,
) -> ApiResult<ContactResponse> {
    let mut view = crate::duress::load(state, who.person.id).await?;
    let mut list = crate::duress::seen_contacts(state, &view, who.person.id).await?;
    let now = now_millis();
    let touched = match change {
        Change::Add(input) => {
            if list.len() as i64 >= MAX_CONTACTS {
                return Err(ApiError::Conflict {
                    code: "contacts_limit",
                    message: format!("a person may have at most {MAX_CONTACTS} contacts"),
                });
            }
            list.push(crate::duress::ViewContact::new(input, Uuid::now_v7(), now));
            list.len() - 1
        }
        Change::Replace(id, input) => {
            let at = list
                .iter()
                .position(|c| c.id == id)
                .ok_or(ApiError::NotFound)?;
            let created = list[at].created_at;
            list[at] = crate::duress::ViewContact::new(input, id, now);
            list[at].created_at = created;
            at
        }
        Change::Delete(id) => list
            .iter()
            .position(|c| c.id == id)
            .ok_or(ApiError::NotFound)?,
    };
    let contact = list[touched].contact();
    if matches!(change, Change::Delete(_)) {
        list.remove(touched);
    }
    view.contacts = Some(list);
    crate::duress::save(state, who.person.id, &view).await?;
    tell_of_change(state, &who.person).await;
    crate::duress::attempted(state, who.person.id, "contacts").await;
    let all: Vec<Contact> = view
        .contacts
        .iter()
        .flatten()
        .map(crate::duress::ViewContact::contact)
        .collect();
    Ok(response(contact, None, name_of(who), &all))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub message: String,
    #[serde(default)]
    pub language: Language,
    /// Where the phone is now, if it knows; otherwise an example place near
    /// the person's consulate is used.
    #[serde(default)]
    pub location: Option<avisa_core::Location>,
    /// The contact's number, as typed: the preview gives the time as its
    /// holder reads it (their own zone in Mexico). When absent, or not yet
    /// a number that can be read alone, the person's own number stands in
    /// (the preview is a hint; the contact's save checks the number).
    #[serde(default)]
    pub phone: Option<String>,
    /// The country chosen beside the number ("MX", "US"), as for a contact.
    #[serde(default)]
    pub country: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PreviewResponse {
    /// Exactly what the contact would receive if the button were pressed now.
    pub body: String,
    pub encoding: Encoding,
    pub segments: usize,
    pub characters: usize,
    /// Whether the location in the body is an example.
    pub sample_location: bool,
}

/// What a contact would receive: the message with its location line, as the
/// alert renders it.
#[utoipa::path(post, path = "/api/v1/contacts/preview", tag = "contacts",
    security(("device_token" = [])),
    request_body = PreviewRequest,
    responses((status = 200, body = PreviewResponse), (status = 403, description = "pin_required: no valid X-Avisa-Unlock (or the device is not verified)", body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    Unlocked(who): Unlocked,
    ApiJson(req): ApiJson<PreviewRequest>,
) -> ApiResult<Json<PreviewResponse>> {
    let person = state
        .store
        .person(who.person.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let given = req
        .location
        .map(avisa_core::Location::validated)
        .transpose()?;
    let home = person.profile.home_state.clone();
    let sample = home
        .as_deref()
        .and_then(|st| {
            state
                .alerting
                .directory()
                .route_by_home(st, person.profile.home_county.as_deref())
        })
        .map(|(office, _)| avisa_core::Location {
            lat: office.lat,
            lon: office.lon,
            accuracy_m: Some(15.0),
        });
    let location = given.or(sample);
    let name = person.profile.name.clone().unwrap_or_default();
    let facts = avisa_core::messages::AlertFacts {
        alert_id: Uuid::nil(),
        person_name: &name,
        person_phone: &person.phone,
        location,
        at_millis: now_millis(),
        sent_millis: None,
        zone: avisa_engine::alerting::zone_of(location.as_ref(), home.as_deref()),
        consulate: None,
        console_url: String::new(),
        missed_checkin: None,
        case_number: None,
        name_at_end: person.profile.name_at_end,
    };
    let to = req
        .phone
        .as_deref()
        .and_then(|typed| {
            let country = req
                .country
                .as_deref()
                .and_then(|c| avisa_core::phone::Country::parse("country", c).ok());
            avisa_core::PhoneNumber::parse_in("phone", typed, country).ok()
        })
        .unwrap_or_else(|| person.phone.clone());
    let body = avisa_core::messages::contact_alert(&req.message, req.language, &to, &facts);
    let info = analyze(&body);
    Ok(Json(PreviewResponse {
        body,
        encoding: info.encoding,
        segments: info.segments,
        characters: info.characters,
        sample_location: given.is_none(),
    }))
}

/// How often, at most, the person is told that their contacts or keyword
/// changed.
pub(crate) fn notice_window(state: &AppState) -> i64 {
    crate::config::millis(state.config.alerts.changes_notice_every)
}

/// Tells the person, by SMS to their own phone, that their contacts or
/// keyword changed: whoever rewrites them on a seized phone cannot do it
/// silently. At most one SMS per ten minutes (the changes of a window are
/// told together at its end, [`avisa_store::Store::changes_notice`]). A
/// failure here is logged, never turned into a refusal of the change.
pub(crate) async fn tell_of_change(state: &AppState, person: &avisa_store::Person) {
    let now = now_millis();
    let at = match state
        .store
        .changes_notice(person.id, now, notice_window(state))
        .await
    {
        Ok(Some(at)) => at,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot plan the changes notice");
            return;
        }
    };
    let language = person.profile.language;
    let zone = avisa_engine::alerting::zone_of(None, person.profile.home_state.as_deref());
    let clock = avisa_core::localtime::local_clock(now, zone, language);
    // A message that belongs to no alert, as a reply does; after every
    // alert's messages.
    let message = avisa_store::NewMessage::new(
        avisa_core::Channel::Sms,
        avisa_core::MessageKind::SelfPhone,
        avisa_core::Purpose::Reply,
        person.phone.clone(),
        avisa_core::messages::changes_notice(language, &clock),
        language,
        at + crate::config::millis(state.config.sms.validity),
    )
    .owned_by(person.id);
    match state.store.enqueue_at(&[message], now, at).await {
        Ok(()) => state.dispatch_wake.notify_one(),
        Err(e) => tracing::error!(error = %e, "cannot queue the changes notice"),
    }
}

/// This module's routes, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list, create))
        .routes(utoipa_axum::routes!(preview))
        .routes(utoipa_axum::routes!(get, put, delete))
}
