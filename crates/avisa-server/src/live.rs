//! Live location while an alert is active: what a new point of the trail
//! means beyond being stored.
//!
//! - A point too far from the one before for the time between them (faster
//!   than an airliner, once both fixes' accuracy is allowed for) is kept and
//!   flagged for the console, never dropped: a person being moved is exactly
//!   when points matter, and a wrong fix is the console's to judge.
//! - Contacts who chose location updates get a "nueva ubicación" SMS: at
//!   most one per `alerts.location_update_every` (15 min) and at most
//!   `alerts.location_updates_max` (3) per alert — the last counted in the
//!   database as a budget, so parallel points cannot pass it.
//!
//! The phone stops sharing at cancel, once the case is resolved, and after
//! `alerts.live_location_for` (4 h); the API refuses points after those
//! (`api/alerts.rs` `add_location`).

use avisa_core::localtime::clock_for;
use avisa_core::{Channel, Location, MessageKind, messages, now_millis};
use avisa_store::{AlertView, Budget, Fix, NewMessage, Purpose};

use crate::state::AppState;
use avisa_engine::alerting::zone_of;

/// Faster than this between two fixes is not a person travelling.
const MAX_SPEED_KMH: f64 = 1_000.0;

/// Whether `loc`, taken at `at`, is too far from `prev` for the time
/// between them (each fix's accuracy given the benefit of the doubt).
pub fn implausible(prev: &Fix, loc: &Location, at: i64) -> bool {
    let slack_km =
        (prev.location.accuracy_m.unwrap_or(0.0) + loc.accuracy_m.unwrap_or(0.0)) / 1000.0;
    let km = prev.location.distance_km(loc.lat, loc.lon) - slack_km;
    // At least a second between them: two fixes in one instant are one.
    let hours = (at - prev.at).max(1_000) as f64 / 3_600_000.0;
    km > 1.0 && km / hours > MAX_SPEED_KMH
}

/// Queues the "nueva ubicación" SMS owed for a new point of `view`'s trail.
pub async fn tell_contacts(
    state: &AppState,
    view: &AlertView,
    loc: &Location,
) -> Result<(), avisa_store::StoreError> {
    if view.practice {
        return Ok(());
    }
    let store = &state.store;
    let alerts = &state.config.alerts;
    let now = now_millis();
    let contacts: Vec<_> = store
        .contacts(view.person_id)
        .await?
        .into_iter()
        .filter(|c| c.location_updates)
        .collect();
    if contacts.is_empty() {
        return Ok(());
    }
    let Some(person) = store.person(view.person_id).await? else {
        return Ok(());
    };
    let name = person.profile.name.clone().unwrap_or_default();
    let zone = zone_of(Some(loc), person.profile.home_state.as_deref());
    let every = crate::config::millis(alerts.location_update_every);
    let max = i64::from(alerts.location_updates_max);
    let mut owed = Vec::new();
    for c in contacts {
        let (sent, last) = store.updates_sent(view.id, c.id).await?;
        if sent >= max || last.is_some_and(|l| now - l < every) {
            continue;
        }
        let mut subject = view.id.as_bytes().to_vec();
        subject.extend_from_slice(c.id.as_bytes());
        let budget = [Budget::of(store, "location-update", &subject, max)];
        // One window for the whole alert: the count never starts again.
        if store
            .take_budgets(&budget, view.created_at)
            .await?
            .is_some()
        {
            continue;
        }
        let clock = clock_for(now, zone, &c.phone, c.language);
        owed.push(
            NewMessage::new(
                Channel::Sms,
                MessageKind::Contact,
                Purpose::Update,
                c.phone,
                messages::location_update(c.language, &name, loc, &clock),
                c.language,
                now + crate::config::millis(state.config.sms.validity),
            )
            .owned_by(view.person_id)
            .to_contact(Some(c.id), Some(c.name)),
        );
    }
    if owed.is_empty() {
        return Ok(());
    }
    metrics::counter!("avisa_location_updates_total").increment(owed.len() as u64);
    store.enqueue_for_alert(view.id, &owed, now).await?;
    state.dispatch_wake.notify_one();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(lat: f64, lon: f64, at: i64) -> Fix {
        Fix {
            location: Location::new(lat, lon, Some(20.0)).expect("loc"),
            at,
            implausible: false,
        }
    }

    #[test]
    fn flags_only_what_no_vehicle_could_do() {
        let prev = fix(34.0505, -118.2551, 0);
        let near = Location::new(34.0550, -118.2551, Some(20.0)).expect("loc");
        assert!(!implausible(&prev, &near, 10_000), "500 m in 10 s: a car");
        // Los Angeles to Chicago in two minutes.
        let far = Location::new(41.8781, -87.6298, Some(20.0)).expect("loc");
        assert!(implausible(&prev, &far, 120_000));
        // The same in four hours: a flight.
        assert!(!implausible(&prev, &far, 4 * 3_600_000));
        // A coarse fix that wanders within its accuracy is not flagged.
        let coarse = Location::new(34.0700, -118.2551, Some(3_000.0)).expect("loc");
        assert!(!implausible(&prev, &coarse, 1_000));
    }
}
