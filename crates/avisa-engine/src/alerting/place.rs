//! Where an alert is: the US state a point is in, the time zone its texts
//! are told in, and the prefix of an office's case numbers.

use avisa_core::directory::{CIAM_CASE_CODE, Consulate, place_of};
use avisa_core::localtime::{Zone, local_year, zone_for};
use avisa_core::{Location, states};

/// The state (USPS code) a location is in, when it is in the US.
fn state_at(loc: &Location) -> Option<String> {
    let place = place_of(loc.lat, loc.lon);
    match (place.subdivision, place.country.as_deref()) {
        (Some(sub), _) if sub.starts_with("US-") => Some(sub[3..].to_string()),
        (_, Some("PR")) => Some("PR".into()),
        _ => None,
    }
}

pub fn zone_of(location: Option<&Location>, home_state: Option<&str>) -> Zone {
    let state = location
        .and_then(state_at)
        .or_else(|| home_state.and_then(states::normalize).map(str::to_string))
        .unwrap_or_else(|| "DC".into());
    zone_for(&state, location.map(|l| l.lon))
}

/// An office's own time zone; CIAM's (None), in Tucson: Arizona.
pub fn office_zone(office: Option<&Consulate>) -> Zone {
    match office {
        Some(o) => zone_of(
            Some(&Location {
                lat: o.lat,
                lon: o.lon,
                accuracy_m: None,
            }),
            Some(&o.state),
        ),
        None => Zone::Arizona,
    }
}

/// What a real alert's case number starts with: the office's code (CIAM's
/// for an alert no office covers) and the year where that office is.
pub fn case_prefix(office: Option<&Consulate>, now: i64) -> String {
    let code = office.map_or(CIAM_CASE_CODE, |o| o.case_code.as_str());
    format!("{code}-{}", local_year(now, office_zone(office)))
}
