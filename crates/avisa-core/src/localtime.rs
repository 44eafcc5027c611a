//! The local time of an alert, for the line contacts read ("14:32, hora del
//! Pacífico").
//!
//! US time zones follow fixed rules since 2007 (daylight time from the second
//! Sunday of March to the first Sunday of November, at 02:00 local), so the
//! zone of a place is derived from its state (and, for the states that a zone
//! line crosses, its longitude) without a time-zone database. The result is
//! approximate near zone lines, which is why the text says "hora local".

use time::{Date, Month, OffsetDateTime, UtcOffset};

/// A US time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Atlantic,
    Eastern,
    Central,
    Mountain,
    /// Arizona: Mountain time without daylight saving.
    Arizona,
    Pacific,
    Alaska,
    Hawaii,
    /// Mexico's zones (Ley de los Husos Horarios, 2022): the centre (UTC-6),
    MxCentro,
    /// the Pacific (Sonora, Sinaloa, Nayarit, Baja California Sur: UTC-7),
    MxPacifico,
    /// Quintana Roo (UTC-5),
    MxSureste,
    /// Baja California (the US Pacific's rules),
    MxNoroeste,
    /// Ciudad Juárez and Ojinaga (the US Mountain's rules),
    MxJuarez,
    /// and the border of Coahuila, Nuevo León and Tamaulipas (the US
    /// Central's rules).
    MxFrontera,
}

impl Zone {
    fn standard_offset_hours(self) -> i8 {
        match self {
            Zone::Atlantic => -4,
            Zone::Eastern => -5,
            Zone::Central => -6,
            Zone::Mountain | Zone::Arizona => -7,
            Zone::Pacific => -8,
            Zone::Alaska => -9,
            Zone::Hawaii => -10,
            Zone::MxSureste => -5,
            Zone::MxCentro | Zone::MxFrontera => -6,
            Zone::MxPacifico | Zone::MxJuarez => -7,
            Zone::MxNoroeste => -8,
        }
    }

    fn observes_dst(self) -> bool {
        !matches!(
            self,
            Zone::Atlantic
                | Zone::Arizona
                | Zone::Hawaii
                | Zone::MxCentro
                | Zone::MxPacifico
                | Zone::MxSureste
        )
    }

    /// The IANA name, for clients that format times themselves.
    pub fn iana(self) -> &'static str {
        match self {
            Zone::Atlantic => "America/Puerto_Rico",
            Zone::Eastern => "America/New_York",
            Zone::Central => "America/Chicago",
            Zone::Mountain => "America/Denver",
            Zone::Arizona => "America/Phoenix",
            Zone::Pacific => "America/Los_Angeles",
            Zone::Alaska => "America/Anchorage",
            Zone::Hawaii => "Pacific/Honolulu",
            Zone::MxCentro => "America/Mexico_City",
            Zone::MxPacifico => "America/Mazatlan",
            Zone::MxSureste => "America/Cancun",
            Zone::MxNoroeste => "America/Tijuana",
            Zone::MxJuarez => "America/Ciudad_Juarez",
            Zone::MxFrontera => "America/Matamoros",
        }
    }

    /// The zone's name in Spanish and English.
    pub fn name(self, lang: crate::Language) -> &'static str {
        use crate::Language::{En, Es};
        match (self, lang) {
            (Zone::Atlantic, Es) => "hora del Atlantico",
            (Zone::Eastern, Es) => "hora del Este",
            (Zone::Central, Es) => "hora del Centro",
            (Zone::Mountain | Zone::Arizona, Es) => "hora de la Montaña",
            (Zone::Pacific, Es) => "hora del Pacifico",
            (Zone::Alaska, Es) => "hora de Alaska",
            (Zone::Hawaii, Es) => "hora de Hawai",
            (Zone::Atlantic, En) => "Atlantic time",
            (Zone::Eastern, En) => "Eastern time",
            (Zone::Central, En) => "Central time",
            (Zone::Mountain | Zone::Arizona, En) => "Mountain time",
            (Zone::Pacific, En) => "Pacific time",
            (Zone::Alaska, En) => "Alaska time",
            (Zone::Hawaii, En) => "Hawaii time",
            // As people there say it.
            (Zone::MxCentro, Es) => "hora del centro de Mexico",
            (Zone::MxPacifico, Es) => "hora del Pacifico de Mexico",
            (Zone::MxSureste, Es) => "hora de Quintana Roo",
            (Zone::MxNoroeste, Es) => "hora de Baja California",
            (Zone::MxJuarez, Es) => "hora de Ciudad Juarez",
            (Zone::MxFrontera, Es) => "hora de la frontera",
            (Zone::MxCentro, En) => "central Mexico time",
            (Zone::MxPacifico, En) => "Mexican Pacific time",
            (Zone::MxSureste, En) => "Quintana Roo time",
            (Zone::MxNoroeste, En) => "Baja California time",
            (Zone::MxJuarez, En) => "Ciudad Juarez time",
            (Zone::MxFrontera, En) => "Mexican border time",
        }
    }

    /// The UTC offset in force at `at`.
    pub fn offset_at(self, at: OffsetDateTime) -> UtcOffset {
        let standard = self.standard_offset_hours();
        let hours = if self.observes_dst() && in_dst(at, standard) {
            standard + 1
        } else {
            standard
        };
        UtcOffset::from_hms(hours, 0, 0).unwrap_or(UtcOffset::UTC)
    }
}

fn nth_sunday(year: i32, month: Month, n: u8) -> Option<Date> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let to_sunday = (7 + 7 - first.weekday().number_days_from_sunday()) % 7;
    first.checked_add(time::Duration::days(
        i64::from(to_sunday) + 7 * (i64::from(n) - 1),
    ))
}

fn in_dst(at: OffsetDateTime, standard_hours: i8) -> bool {
    let year = at.year();
    let (Some(start), Some(end)) = (
        nth_sunday(year, Month::March, 2),
        nth_sunday(year, Month::November, 1),
    ) else {
        return false;
    };
    // 02:00 local standard time starts DST; 02:00 local daylight time ends it.
    let start_utc =
        start.midnight().assume_utc() + time::Duration::hours(2 - i64::from(standard_hours));
    let end_utc =
        end.midnight().assume_utc() + time::Duration::hours(1 - i64::from(standard_hours));
    at >= start_utc && at < end_utc
}

/// The zone of a place in a state (`lon` refines the states a zone line
/// crosses).
pub fn zone_for(state: &str, lon: Option<f64>) -> Zone {
    let west_of = |limit: f64| lon.is_some_and(|l| l < limit);
    match state {
        "PR" | "VI" => Zone::Atlantic,
        "HI" => Zone::Hawaii,
        "AK" => Zone::Alaska,
        "AZ" => Zone::Arizona,
        "CA" | "WA" | "NV" => Zone::Pacific,
        "OR" if !lon.is_some_and(|l| l > -117.5) => Zone::Pacific,
        "ID" if lon.is_some_and(|l| l < -115.8) => Zone::Pacific,
        "OR" | "ID" | "MT" | "WY" | "CO" | "NM" | "UT" => Zone::Mountain,
        "TX" if west_of(-104.5) => Zone::Mountain,
        "KS" | "NE" | "SD" | "ND" if west_of(-101.0) => Zone::Mountain,
        "FL" if west_of(-85.0) => Zone::Central,
        "TN" if west_of(-85.3) => Zone::Central,
        "KY" if west_of(-86.0) => Zone::Central,
        "IN" if west_of(-87.0) => Zone::Central,
        "MI" if west_of(-87.5) => Zone::Central,
        "TX" | "OK" | "KS" | "NE" | "SD" | "ND" | "MN" | "IA" | "MO" | "AR" | "LA" | "MS"
        | "AL" | "WI" | "IL" | "TN" => Zone::Central,
        _ => Zone::Eastern,
    }
}

/// The Mexican zone of a national number (ten digits), by its area code.
/// Codes not listed are in the centre, as most of the country is.
pub fn mexican_zone(national: &str) -> Zone {
    let code = national.get(..3).unwrap_or("");
    match code {
        // Baja California.
        "616" | "646" | "658" | "661" | "664" | "665" | "686" => Zone::MxNoroeste,
        // Sonora, Baja California Sur, Sinaloa and Nayarit (Bahía de
        // Banderas, 329, keeps the centre's time).
        "622" | "623" | "631" | "632" | "633" | "634" | "637" | "638" | "641" | "642" | "643"
        | "644" | "645" | "647" | "651" | "653" | "662" | "612" | "613" | "615" | "624" | "667"
        | "668" | "669" | "672" | "673" | "687" | "694" | "695" | "696" | "697" | "698" | "311"
        | "319" | "323" | "324" | "325" | "327" | "389" => Zone::MxPacifico,
        // Quintana Roo.
        "983" | "984" | "987" | "998" => Zone::MxSureste,
        // Ciudad Juárez and Ojinaga.
        "656" | "626" => Zone::MxJuarez,
        // Nuevo Laredo, Matamoros, Reynosa, Piedras Negras, Ciudad Acuña.
        "867" | "868" | "899" | "877" | "878" => Zone::MxFrontera,
        _ => Zone::MxCentro,
    }
}

/// The time of `at_millis` as the holder of `to` reads it: in their own
/// Mexican zone for a Mexican number, in the person's zone (`zone`) for a
/// number in the US or Canada, and with the UTC offset added for anyone
/// else ("19:25 hora del Pacifico (UTC-8)").
pub fn clock_for(
    at_millis: i64,
    zone: Zone,
    to: &crate::PhoneNumber,
    lang: crate::Language,
) -> String {
    let e164 = to.as_str();
    if let Some(national) = e164.strip_prefix("+52") {
        return local_clock(at_millis, mexican_zone(national), lang);
    }
    let clock = local_clock(at_millis, zone, lang);
    let home = e164.starts_with("+1")
        && to
            .country()
            .is_none_or(|c| matches!(c.to_string().as_str(), "US" | "CA" | "PR" | "VI"));
    if home {
        return clock;
    }
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{clock} (UTC{:+})", zone.offset_at(at).whole_hours())
}

/// The calendar year in the zone at `at_millis` (case numbers restart
/// with each local year).
pub fn local_year(at_millis: i64, zone: Zone) -> i32 {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.to_offset(zone.offset_at(at)).year()
}

/// "14:32" in the zone, and the zone's name.
pub fn local_clock(at_millis: i64, zone: Zone, lang: crate::Language) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let local = at.to_offset(zone.offset_at(at));
    format!(
        "{:02}:{:02} {}",
        local.hour(),
        local.minute(),
        zone.name(lang)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Language;
    use time::macros::datetime;

    fn ms(t: OffsetDateTime) -> i64 {
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn daylight_saving_edges() {
        // 2026: DST from Sunday 8 March to Sunday 1 November.
        let before = datetime!(2026-03-08 09:59 UTC); // 01:59 PST
        let after = datetime!(2026-03-08 10:00 UTC); // 03:00 PDT
        assert_eq!(
            local_clock(ms(before), Zone::Pacific, Language::En),
            "01:59 Pacific time"
        );
        assert_eq!(
            local_clock(ms(after), Zone::Pacific, Language::En),
            "03:00 Pacific time"
        );
        let summer = datetime!(2026-07-01 19:30 UTC);
        assert_eq!(
            local_clock(ms(summer), Zone::Eastern, Language::Es),
            "15:30 hora del Este"
        );
        assert_eq!(
            local_clock(ms(summer), Zone::Arizona, Language::Es),
            "12:30 hora de la Montaña"
        );
        assert_eq!(
            local_clock(ms(summer), Zone::Atlantic, Language::Es),
            "15:30 hora del Atlantico"
        );
        let end = datetime!(2026-11-01 08:59 UTC); // 01:59 PDT
        assert_eq!(
            local_clock(ms(end), Zone::Pacific, Language::En),
            "01:59 Pacific time"
        );
        let end = datetime!(2026-11-01 09:00 UTC); // 01:00 PST again
        assert_eq!(
            local_clock(ms(end), Zone::Pacific, Language::En),
            "01:00 Pacific time"
        );
    }

    #[test]
    fn zones_by_state_and_longitude() {
        assert_eq!(zone_for("CA", Some(-118.2)), Zone::Pacific);
        assert_eq!(zone_for("TX", Some(-106.5)), Zone::Mountain, "El Paso");
        assert_eq!(zone_for("TX", Some(-95.4)), Zone::Central, "Houston");
        assert_eq!(zone_for("TX", None), Zone::Central);
        assert_eq!(zone_for("FL", Some(-87.2)), Zone::Central, "Pensacola");
        assert_eq!(zone_for("FL", Some(-80.2)), Zone::Eastern, "Miami");
        assert_eq!(zone_for("NY", None), Zone::Eastern);
        assert_eq!(zone_for("PR", None), Zone::Atlantic);
        assert_eq!(zone_for("AZ", None), Zone::Arizona);
    }
}
