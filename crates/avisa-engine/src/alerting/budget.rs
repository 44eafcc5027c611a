//! What a press's contacts cost and which SMS budgets of the person pay
//! for them (taken, all or none, by the group commit).

use avisa_store::{Budget, BudgetUnits, Contact, Store};

use super::{AlertRules, Raise};

/// What an alert SMS to each contact costs, in price units
/// (`limits.price_units`: an SMS in the US is one), one SMS per number.
pub(super) fn price_units(limits: &AlertRules, contacts: &[Contact]) -> i64 {
    let mut numbers = std::collections::HashSet::new();
    contacts
        .iter()
        .filter(|c| numbers.insert(c.phone.as_str()))
        .map(|c| {
            let country = c.phone.country().map(|c| c.to_string()).unwrap_or_default();
            i64::from(
                limits
                    .price_units
                    .get(&country)
                    .copied()
                    .unwrap_or(limits.price_units_default),
            )
        })
        .sum()
}

/// What a press's contacts take from the person's hourly and daily SMS
/// budgets (`limits.person_sms_per_hour`, `person_sms_per_day`), all or
/// none, taken by the group commit. Both are kept in the day's window, the
/// hour's key naming its hour, so one transaction takes from both.
pub(super) fn person_budget(
    store: &Store,
    limits: &AlertRules,
    r: &Raise,
    units: i64,
    now: i64,
) -> BudgetUnits {
    const HOUR_MS: i64 = 3_600_000;
    let (day, _) = avisa_store::window(now, 24 * HOUR_MS);
    let (hour, _) = avisa_store::window(now, HOUR_MS);
    BudgetUnits {
        budgets: vec![
            Budget::person_hour(
                store,
                r.person.id,
                hour,
                i64::from(limits.person_sms_per_hour),
            ),
            Budget::person_day(store, r.person.id, i64::from(limits.person_sms_per_day)),
        ],
        window_start: day,
        units,
    }
}
