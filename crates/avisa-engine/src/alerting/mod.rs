//! Raising an alert: from a press (the button, an SMS keyword, the voice
//! line, a missed check-in) to rows in the outbox.
//!
//! Everything is decided and rendered here, in the caller's task — routing,
//! every message text, sealing — so the group-commit writer only writes.
//! [`Alerting`] holds what that takes (the store, the directory, the
//! writer, the change events and the [`AlertRules`]); the HTTP layer and the
//! check-in job call [`Alerting::raise`], and the cancel by PIN or duress
//! PIN [`Alerting::cancel`].

use avisa_core::directory::Directory;
use avisa_core::directory::{Route, RouteBasis};
use avisa_core::messages::{self, AlertFacts};
use avisa_core::{AlertSource, Channel};
use avisa_core::{Language, Location, PhoneNumber, now_millis};
use avisa_store::Store;
use avisa_store::{
    AlertLimit, Coverage, Inserted, MessageKind, NewAlert, NewMessage, Person, Purpose,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::millis;
use crate::events::Events;
use crate::writer::AlertWriter;

mod budget;
mod cancel;
mod error;
mod place;
use budget::{person_budget, price_units};
pub use cancel::{CancelError, CancelledWith};
pub use error::RaiseError;
pub use place::{case_prefix, office_zone, zone_of};

/// What raising an alert reads of the configuration (from `[alerts]`,
/// `[limits]`, `[sms]` and `public_url`).
#[derive(Debug, Clone)]
pub struct AlertRules {
    /// Alerts a person may raise within `rate_window` before a press goes
    /// past the limit (a practice is refused).
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// How long an alert's SMS is worth sending.
    pub validity: Duration,
    /// Where the console is, for the links in the consulate's SMS.
    pub public_url: String,
    /// Duty phones by office id ("ciam": the 24-hour centre's).
    pub duty_phones: BTreeMap<String, String>,
    /// Price units of an SMS by country code, and elsewhere.
    pub price_units: BTreeMap<String, u32>,
    pub price_units_default: u32,
    /// The person's SMS budgets, in price units.
    pub person_sms_per_hour: u32,
    pub person_sms_per_day: u32,
}

/// Raises alerts: the handles and rules it takes, cheap to clone.
#[derive(Clone)]
pub struct Alerting(Arc<Inner>);

struct Inner {
    store: Store,
    directory: Directory,
    writer: AlertWriter,
    events: Events,
    /// Wakes the dispatcher for what a cancel queued (the writer wakes it
    /// for an alert).
    wake: Arc<Notify>,
    rules: AlertRules,
}

impl Alerting {
    pub fn new(
        store: Store,
        directory: Directory,
        writer: AlertWriter,
        events: Events,
        wake: Arc<Notify>,
        rules: AlertRules,
    ) -> Self {
        Alerting(Arc::new(Inner {
            store,
            directory,
            writer,
            events,
            wake,
            rules,
        }))
    }

    /// The store alerts are written to.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The consulate directory alerts are routed by.
    pub fn directory(&self) -> &Directory {
        &self.0.directory
    }

    pub fn rules(&self) -> &AlertRules {
        &self.0.rules
    }

    /// The start of the rate-limit window for a press at `now`.
    pub fn window_start(&self, now: i64) -> i64 {
        now - millis(self.0.rules.rate_window)
    }

    /// Raises an alert. A real press is never refused for the person's
    /// alert limit or SMS budget (a practice is): past them it reaches the
    /// consulate and the person's own phone, contacts already messaged
    /// within the window are not messaged again, and the case says "límite
    /// de alertas alcanzado".
    pub async fn raise(&self, r: Raise) -> Result<Raised, RaiseError> {
        // At most three writes: as pressed, past the limit, without the
        // contacts the budget could not pay for (each only if the store
        // said so).
        let (mut past, mut spent) = (false, false);
        for _ in 0..3 {
            match raise_once(&self.0, &r, past, spent).await? {
                Attempt::Done(raised) => return Ok(*raised),
                Attempt::PastLimit => past = true,
                Attempt::OverBudget => spent = true,
            }
        }
        Err(RaiseError::Internal(anyhow::anyhow!(
            "a press was turned back by the store three times"
        )))
    }
}

/// How the texts name the 24-hour centre when it has an alert no office
/// covers.
const CIAM_NAME: &str = "CIAM (centro 24 horas)";

/// A request to raise an alert.
pub struct Raise {
    pub person: Person,
    pub device_id: Option<Uuid>,
    pub idempotency_key: String,
    /// The button, the keyword by SMS, the voice line or a check-in timer.
    pub source: AlertSource,
    pub practice: bool,
    /// When the button was pressed, by the phone's clock, for a press that
    /// waited for a connection; None: now.
    pub pressed_at: Option<i64>,
    pub location: Option<Location>,
    /// What the caller already read of the person's alerts, with the same
    /// window as [`window_start`]: (the key's alert, the recent count).
    pub seen: Option<(Option<Uuid>, i64)>,
    /// Raised by a check-in timer (its planned place): the messages say a
    /// check-in was missed, and no rate limit stands in its way — a missed
    /// check-in is the one alert that cannot be pressed again.
    pub missed_checkin: Option<String>,
    /// No SMS to the person's own phone: a check-out forced with the duress
    /// PIN raises the alert in silence, where the phone's holder sees it.
    pub quiet: bool,
    /// The number that raised it, when not the person's own phone (the
    /// voice line, "AYUDA <number> <PIN>" by SMS): the console shows it.
    pub caller: Option<PhoneNumber>,
}

/// A press over the person's limit: 429 with the wait until the oldest
/// counted alert (raised at `oldest`) leaves the window that starts at
/// `since`.
fn rate_limited(oldest: i64, since: i64, now: i64) -> RaiseError {
    metrics::counter!("avisa_alerts_refused_total", "reason" => "rate_limited").increment(1);
    // Never longer than the window: a parallel press may have been written
    // a moment after this one read the clock.
    let wait_ms = (oldest - since).clamp(0, (now - since).max(0));
    RaiseError::RateLimited {
        retry_after_secs: ((wait_ms + 999) / 1000).max(1) as u64,
    }
}

/// What a practice alert would have sent, for the person to see.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub kind: &'static str,
    pub name: Option<String>,
    pub body: String,
}

pub struct Raised {
    /// The alert this press made, or the one its key made before.
    pub id: Uuid,
    pub previews: Vec<Preview>,
    /// The alert as written, when this press created it (its response is
    /// built from it, without reading it back).
    pub created: Option<NewAlert>,
    /// Raised past the person's alert limit or SMS budget: the consulate
    /// and the person's phone have it, contacts already messaged within the
    /// window were not messaged again.
    pub limit_reached: bool,
}

/// One try at writing a press.
enum Attempt {
    Done(Box<Raised>),
    /// A parallel press took the last place in the window as this one was
    /// written: it is raised again, past the limit.
    PastLimit,
    /// The person's SMS budget could not pay for its contacts' messages
    /// when it was written: raised again, without them.
    OverBudget,
}

async fn raise_once(
    state: &Inner,
    r: &Raise,
    force_past: bool,
    budget_spent: bool,
) -> Result<Attempt, RaiseError> {
    let store = &state.store;
    let now = now_millis();
    let since = now - millis(state.rules.rate_window);
    // A retried press is answered with its alert, whatever the rate limit
    // says.
    let (existing, recent) = match r.seen {
        Some(seen) => seen,
        None => {
            store
                .key_and_recent(r.person.id, &r.idempotency_key, since, r.practice)
                .await?
        }
    };
    if let Some(existing) = existing {
        return Ok(Attempt::Done(Box::new(Raised {
            id: existing,
            previews: Vec::new(),
            created: None,
            limit_reached: false,
        })));
    }
    let profile = &r.person.profile;
    let (Some(name), Some(_home), true) = (
        profile.name.as_deref(),
        profile.home_state.as_deref(),
        r.person.pin_hash.is_some(),
    ) else {
        return Err(RaiseError::ProfileIncomplete);
    };
    // A missed check-in is the one alert that cannot be pressed again: no
    // limit stands in its way.
    let limited = r.missed_checkin.is_none();
    let over = limited && (force_past || recent >= i64::from(state.rules.rate_limit));
    if over && r.practice {
        // The true wait: until the oldest counted alert leaves the window.
        let oldest = store
            .oldest_recent(r.person.id, since, r.practice)
            .await?
            .unwrap_or(now);
        return Err(rate_limited(oldest, since, now));
    }
    let mut contacts = store
        .alert_contacts(r.person.id, r.person.contacts_version)
        .await?;
    let mut limit_reached = false;
    if over {
        // Past the limit: the contacts an alert of the window reached are
        // not messaged again (one the person added since still is).
        // A look-up that fails never holds the press back: the contacts are
        // messaged (one more SMS beats a silenced alert).
        let reached = store
            .contacts_alerted_since(r.person.id, since)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "contacts already told not read: all are messaged");
                Default::default()
            });
        contacts = contacts
            .iter()
            .filter(|c| !reached.contains(&c.id))
            .cloned()
            .collect::<Vec<_>>()
            .into();
        limit_reached = true;
    }
    // The person's SMS budget, as the limit, never stands in the way of a
    // missed check-in's alert: it is the one that cannot be pressed again.
    // It is taken where the alert is written (the group commit); when it
    // could not pay, the press comes back here to go without contacts.
    let pays = limited && !r.practice && !contacts.is_empty();
    if pays && budget_spent {
        contacts = Vec::new().into();
        limit_reached = true;
    }
    let budget = (pays && !budget_spent).then(|| {
        person_budget(
            &state.store,
            &state.rules,
            r,
            price_units(&state.rules, &contacts),
            now,
        )
    });
    if limit_reached {
        metrics::counter!("avisa_alerts_past_limit_total").increment(1);
    }
    let route = state.directory.route(
        r.location.map(|l| (l.lat, l.lon)),
        profile.home_state.as_deref(),
        profile.home_county.as_deref(),
    );
    let (office, coverage) = match &route {
        Route::Office { office, basis, .. } => (
            Some(*office),
            match basis {
                RouteBasis::Nearest => Coverage::Nearest,
                RouteBasis::HomeCounty => Coverage::HomeCounty,
                RouteBasis::HomeState => Coverage::HomeState,
            },
        ),
        Route::Ciam => (None, Coverage::Ciam),
        Route::OutsideCoverage { .. } => (None, Coverage::Outside),
        Route::Unroutable => (None, Coverage::None),
    };
    // Random, not time-ordered: the audit keeps a deleted person's case
    // id, which must not date the press.
    let id = Uuid::new_v4();
    let facts = AlertFacts {
        alert_id: id,
        person_name: name,
        person_phone: &r.person.phone,
        location: r.location,
        // A press that waited for a connection says when it was made
        // (never later than now: a phone's clock may run ahead).
        at_millis: r.pressed_at.map_or(now, |p| p.min(now)),
        sent_millis: r
            .pressed_at
            .filter(|p| now - p >= messages::DELAY_TOLD_MS)
            .map(|_| now),
        zone: zone_of(r.location.as_ref(), profile.home_state.as_deref()),
        consulate: match (office, coverage) {
            (Some(o), _) => Some((o.name.as_str(), o.phone.as_deref())),
            (None, Coverage::Ciam) => Some((CIAM_NAME, Some(messages::CIAM_PHONE))),
            (None, _) => None,
        },
        console_url: format!(
            "{}/console/alerts/{id}",
            state.rules.public_url.trim_end_matches('/')
        ),
        missed_checkin: r.missed_checkin.as_deref(),
        // The store writes the number in as it writes the alert.
        case_number: Some(messages::CASE_SLOT),
        name_at_end: profile.name_at_end,
    };
    let expires_at = now + millis(state.rules.validity);
    let message =
        |kind, contact_id, name: Option<String>, to: PhoneNumber, body: String, language, rank| {
            NewMessage::new(
                Channel::Sms,
                kind,
                Purpose::Alert,
                to,
                body,
                language,
                expires_at,
            )
            .owned_by(r.person.id)
            .to_contact(contact_id, name)
            .ranked(rank)
        };
    let mut messages = Vec::new();
    let mut previews = Vec::new();
    // The consulate's duty phone first, where one is configured (the
    // centre's, "ciam", for a place no office covers).
    let duty_of = match (office, coverage) {
        (Some(o), _) => Some((o.id.as_str(), o.name.as_str())),
        (None, Coverage::Ciam) => Some(("ciam", CIAM_NAME)),
        (None, _) => None,
    };
    if let Some((duty_key, duty_name)) = duty_of
        && let Some(duty) = state.rules.duty_phones.get(duty_key)
        && let Ok(duty) = PhoneNumber::parse(duty)
    {
        let body = messages::consulate_duty(&facts);
        if r.practice {
            let body = body.replace(messages::CASE_SLOT, "PRACTICA");
            previews.push(Preview {
                kind: "consulate",
                name: Some(duty_name.to_string()),
                body,
            });
        } else {
            messages.push(message(
                MessageKind::Consulate,
                None,
                Some(duty_name.to_string()),
                duty,
                body,
                Language::Es,
                0,
            ));
        }
    }
    // One alert SMS per number: a number saved under two contacts gets the
    // first one's (the app warns when it is saved twice).
    let mut numbers = std::collections::HashSet::new();
    let contacts: Vec<&avisa_store::Contact> = contacts
        .iter()
        .filter(|c| numbers.insert(c.phone.as_str()))
        .collect();
    for (i, c) in contacts.iter().enumerate() {
        let body = messages::contact_alert(&c.message, c.language, &c.phone, &facts);
        if r.practice {
            previews.push(Preview {
                kind: "contact",
                name: Some(c.name.clone()),
                body,
            });
        } else {
            messages.push(message(
                MessageKind::Contact,
                Some(c.id),
                Some(c.name.clone()),
                c.phone.clone(),
                body,
                c.language,
                i as i32,
            ));
        }
    }
    // What ICE's detainee locator needs, to the contacts the person chose,
    // after every alert SMS (read only when someone chose it; a failed read
    // never fails the press).
    if contacts.iter().any(|c| c.locator) {
        let locator = match stored_locator(&state.store, r.person.id).await {
            Ok(l) => l.filter(avisa_core::locator::Locator::is_searchable),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the locator details; the alert goes without them");
                None
            }
        };
        for c in contacts.iter().filter(|c| c.locator) {
            let Some(l) = &locator else { break };
            let body = l.sms(c.language, name);
            if r.practice {
                previews.push(Preview {
                    kind: "contact",
                    name: Some(c.name.clone()),
                    body,
                });
            } else {
                // A follow-up, after every alert's own messages.
                let mut update = message(
                    MessageKind::Contact,
                    Some(c.id),
                    Some(c.name.clone()),
                    c.phone.clone(),
                    body,
                    c.language,
                    avisa_store::RANK_AFTER_ALERTS,
                );
                update.purpose = Purpose::Update;
                messages.push(update);
            }
        }
    }
    let mut own = messages::self_confirmation(
        profile.language,
        &facts,
        contacts.len(),
        r.practice,
        r.source == AlertSource::Sms,
    );
    if limit_reached {
        own.push(' ');
        own.push_str(&messages::limit_reached_note(profile.language));
    }
    if !r.quiet {
        messages.push(message(
            MessageKind::SelfPhone,
            None,
            Some(name.to_string()),
            r.person.phone.clone(),
            own,
            profile.language,
            1,
        ));
    }
    let alert = NewAlert {
        id,
        person_id: r.person.id,
        device_id: r.device_id,
        idempotency_key: r.idempotency_key.clone(),
        source: r.source,
        practice: r.practice,
        // Practice never reaches a consulate.
        consulate_id: if r.practice {
            None
        } else {
            office.map(|o| o.id.clone())
        },
        coverage,
        location: r.location,
        caller: r.caller.clone(),
        created_at: now,
        messages,
        // Counted again where the alert is written: parallel presses read
        // the same count above.
        // (A real press already past it needs no count: it is raised.)
        limit: (limited && !over).then(|| AlertLimit {
            since,
            max: i64::from(state.rules.rate_limit),
        }),
        case_prefix: (!r.practice).then(|| case_prefix(office, now)),
        budget,
    };
    // With the key the lookup handed out: what the key cache does
    // meanwhile cannot touch the press.
    let sealed = store.seal_alert(&alert, &r.person.key)?;
    let inserted = match state.writer.write(sealed, alert.leased_messages()).await {
        Ok(inserted) => inserted,
        // The database away: come back, with the same key.
        Err(e) if e.is_unavailable() => return Err(RaiseError::Unavailable(e.to_string())),
        Err(e) => {
            return Err(RaiseError::Internal(anyhow::anyhow!(
                "alert not stored: {e}"
            )));
        }
    };
    let id = match inserted {
        Inserted::Created(id) | Inserted::Existing(id) => id,
        Inserted::Limited { oldest } if r.practice => return Err(rate_limited(oldest, since, now)),
        Inserted::Limited { .. } => return Ok(Attempt::PastLimit),
        Inserted::OverBudget => {
            tracing::warn!("a person's alert SMS budget is spent: contacts not messaged");
            return Ok(Attempt::OverBudget);
        }
    };
    if let Inserted::Created(id) = inserted {
        metrics::counter!("avisa_alerts_total", "source" => r.source.as_str(), "practice" => r.practice.to_string()).increment(1);
        tracing::info!(alert_id = %id, source = r.source.as_str(), practice = r.practice, coverage = coverage.as_str(), "alert accepted");
        state.events.publish_scoped(
            id,
            avisa_store::AlertScope {
                consulate_id: alert.consulate_id.clone(),
                practice: alert.practice,
            },
        );
    }
    if let (Inserted::Created(id), true) = (inserted, limit_reached && !r.practice)
        && let Err(e) = store.note_limit_reached(id, now).await
    {
        tracing::warn!(error = %e, "the limit's note on the case was not written");
    }
    let created = matches!(inserted, Inserted::Created(_)).then_some(alert);
    Ok(Attempt::Done(Box::new(Raised {
        id,
        previews,
        created,
        limit_reached: limit_reached && !r.practice,
    })))
}

/// The person's real locator details (None: never written, or unreadable
/// as a locator: treated as absent, never a refused press).
pub async fn stored_locator(
    store: &avisa_store::Store,
    person_id: Uuid,
) -> Result<Option<avisa_core::locator::Locator>, avisa_store::StoreError> {
    match store.locator(person_id).await {
        Ok(text) => Ok(text.and_then(|text| serde_json::from_str(&text).ok())),
        // The person is gone (deleted their data): nothing to give.
        Err(avisa_store::StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}
