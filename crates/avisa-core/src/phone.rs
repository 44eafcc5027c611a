//! Phone numbers, parsed to E.164 once at the edge.
//!
//! Most contacts are family in Mexico and most people live in the United
//! States, and a 10-digit number can be valid in both ("55 1234 5678" is
//! Mexico City and New Jersey). So a number is read in the country the person
//! chose; written with "+" (or an international prefix, "00" or "011") it
//! names its own country; and with neither, a number valid in both countries
//! is refused as ambiguous with both readings, never guessed.

use std::fmt;

use phonenumber::{Mode, country};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Invalid;
use crate::invalid::PhoneReading;

/// A valid phone number in E.164 form (`+12135550100`).
///
/// `Debug` never prints the number, so a stray `{:?}` in a log line does not
/// leak it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

/// An ISO 3166 country code ("MX", "US") that the numbering plans know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Country(country::Id);

impl Country {
    pub const MX: Country = Country(country::Id::MX);
    pub const US: Country = Country(country::Id::US);

    /// Parses "MX", "mx", " us ": a 422 `country_invalid` otherwise.
    pub fn parse(field: &'static str, input: &str) -> Result<Self, Invalid> {
        let code = input.trim().to_ascii_uppercase();
        if code.len() != 2 {
            return Err(Invalid::new(
                field,
                "country_invalid",
                "a country is a two-letter ISO code such as MX or US",
            ));
        }
        code.parse::<country::Id>().map(Country).map_err(|_| {
            Invalid::new(
                field,
                "country_invalid",
                "not a country with a telephone numbering plan",
            )
        })
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Digits and a leading "+" of what was typed, with the international
/// prefixes people dial from the US ("011") and from Mexico ("00") read as
/// "+". Everything else (spaces, dots, dashes, brackets) is dropped; letters
/// make the input no number at all.
fn normalize(input: &str) -> Option<String> {
    let mut out = String::with_capacity(input.len());
    for (i, c) in input.trim().chars().enumerate() {
        match c {
            '0'..='9' => out.push(c),
            '+' if i == 0 => out.push('+'),
            ' ' | '.' | '-' | '(' | ')' | '/' | '\u{a0}' => {}
            _ => return None,
        }
    }
    if let Some(rest) = out.strip_prefix("011") {
        out = format!("+{rest}");
    } else if let Some(rest) = out.strip_prefix("00") {
        out = format!("+{rest}");
    }
    Some(out)
}

/// Mexico's dialling before August 2019, still how many people write a
/// number: "044"/"045" before a mobile, "01" before a long-distance number,
/// "1" after the country code for a mobile ("+52 1 55 …"). Today every
/// number is 10 digits after "+52".
fn mexican_national(digits: &str) -> &str {
    if digits.len() == 13 && (digits.starts_with("044") || digits.starts_with("045")) {
        &digits[3..]
    } else if digits.len() == 12 && digits.starts_with("01") {
        &digits[2..]
    } else if digits.len() == 13 && digits.starts_with("521") {
        &digits[3..]
    } else if digits.len() == 12 && digits.starts_with("52") {
        &digits[2..]
    } else if digits.len() == 11 && digits.starts_with('1') {
        &digits[1..]
    } else {
        digits
    }
}

/// Reads `digits` ("+…" or national) in `country`; `None` when it is no
/// valid number there.
fn read(digits: &str, country: Country) -> Option<PhoneNumber> {
    let text = if let Some(intl) = digits.strip_prefix('+') {
        match intl.strip_prefix("521") {
            // "+52 1 55 1234 5678": the old mobile "1".
            Some(rest) if rest.len() == 10 => format!("+52{rest}"),
            _ => digits.to_string(),
        }
    } else if country == Country::MX {
        mexican_national(digits).to_string()
    } else {
        digits.to_string()
    };
    let parsed = phonenumber::parse(Some(country.0), &text).ok()?;
    phonenumber::is_valid(&parsed)
        .then(|| PhoneNumber(parsed.format().mode(Mode::E164).to_string()))
}

impl PhoneNumber {
    /// Parses a number written with "+" or an international prefix, or else
    /// one that is valid in exactly one of Mexico and the United States.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        Self::parse_in("phone", input, None)
    }

    /// As [`PhoneNumber::parse`], naming the field in the error.
    pub fn parse_field(field: &'static str, input: &str) -> Result<Self, Invalid> {
        Self::parse_in(field, input, None)
    }

    /// Parses what a person types, in the country they chose: "55 1234 5678",
    /// "044 55 1234 5678" and "52 1 55 1234 5678" in Mexico, "(213) 555-0100"
    /// in the US. A number with "+", "00" or "011" names its own country,
    /// whatever was chosen. With no country chosen, a number valid in both
    /// Mexico and the US is refused (`phone_ambiguous`) with both readings.
    pub fn parse_in(
        field: &'static str,
        input: &str,
        country: Option<Country>,
    ) -> Result<Self, Invalid> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(Invalid::new(
                field,
                "phone_required",
                "a phone number is required",
            ));
        }
        let not_a_number = || Invalid::new(field, "phone_invalid", "not a phone number");
        if trimmed.len() > 32 {
            return Err(not_a_number());
        }
        let digits = normalize(trimmed).ok_or_else(not_a_number)?;
        if digits.trim_start_matches('+').len() < 4 {
            return Err(not_a_number());
        }
        let no_such = || {
            Invalid::new(
                field,
                "phone_invalid",
                "this phone number does not exist in its country's numbering plan",
            )
        };
        if digits.starts_with('+') {
            // The country is written in the number; the region only matters
            // for parsing national forms, which this is not.
            return read(&digits, country.unwrap_or(Country::US)).ok_or_else(no_such);
        }
        if let Some(country) = country {
            return read(&digits, country).ok_or_else(no_such);
        }
        match (read(&digits, Country::MX), read(&digits, Country::US)) {
            (Some(mx), Some(us)) if mx != us => Err(Invalid::new(
                field,
                "phone_ambiguous",
                "this number is valid both in Mexico and in the United States; choose the country",
            )
            .with_readings(vec![mx.reading(), us.reading()])),
            (Some(one), _) | (None, Some(one)) => Ok(one),
            (None, None) => Err(no_such()),
        }
    }

    /// Every number `digits` could be when dialled on a keypad with no
    /// country named (the voice line, "AYUDA <number> <PIN>"): its reading
    /// in the US and in Mexico, and with "+" before it when it starts with
    /// a country code. Empty when none is valid.
    pub fn candidates(digits: &str) -> Vec<PhoneNumber> {
        let mut out: Vec<PhoneNumber> = Vec::new();
        let with_plus =
            (!digits.trim_start().starts_with('+')).then(|| format!("+{}", digits.trim()));
        let readings = [Country::US, Country::MX]
            .into_iter()
            .map(|c| Self::parse_in("phone", digits, Some(c)).ok())
            .chain(std::iter::once(
                with_plus.and_then(|d| Self::parse_in("phone", &d, None).ok()),
            ));
        for p in readings.flatten() {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// Rebuilds a number that was stored in E.164 form by this type.
    pub fn from_e164_unchecked(e164: String) -> Self {
        PhoneNumber(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parsed(&self) -> Option<phonenumber::PhoneNumber> {
        phonenumber::parse(None, &self.0).ok()
    }

    /// The country whose numbering plan holds this number ("MX"), when the
    /// plans name one (shared codes such as +1 are resolved by the plan).
    pub fn country(&self) -> Option<Country> {
        self.parsed()?.country().id().map(Country)
    }

    /// The number as people read it across borders: "+52 55 1234 5678".
    pub fn international(&self) -> String {
        match self.parsed() {
            Some(p) => p.format().mode(Mode::International).to_string(),
            None => self.0.clone(),
        }
    }

    /// Refuses a number an SMS must never be paid to (422
    /// `phone_not_allowed`): premium-rate, shared-cost, toll-free, universal
    /// access, pager, voicemail and personal numbers, short codes, and the
    /// non-geographic codes of no country (satellite phones, +881/+882):
    /// the ranges SMS pumping makes money from, where no family member
    /// waits for a message either.
    pub fn check_sms_allowed(&self, field: &'static str) -> Result<(), Invalid> {
        use phonenumber::Type;
        let refused = || {
            Invalid::new(
                field,
                "phone_not_allowed",
                "Avisa does not send SMS to premium-rate, toll-free, shared-cost or satellite numbers",
            )
        };
        let parsed = self.parsed().ok_or_else(refused)?;
        if parsed.country().id().is_none() {
            return Err(refused());
        }
        match parsed.number_type(&phonenumber::metadata::DATABASE) {
            Type::FixedLine
            | Type::Mobile
            | Type::FixedLineOrMobile
            | Type::Voip
            | Type::StandardRate
            | Type::Unknown => Ok(()),
            _ => Err(refused()),
        }
    }

    /// This number as one reading offered back to the person.
    pub fn reading(&self) -> PhoneReading {
        PhoneReading {
            phone: self.0.clone(),
            country: self.country().map(|c| c.to_string()).unwrap_or_default(),
            international: self.international(),
        }
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneNumber(<redacted>)")
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        PhoneNumber::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keypad_number_has_every_reading() {
        let all = |d: &str| {
            PhoneNumber::candidates(d)
                .into_iter()
                .map(|p| p.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(all("2135550100"), vec!["+12135550100"]);
        assert_eq!(all("5512345678"), vec!["+15512345678", "+525512345678"]);
        assert_eq!(all("525512345678"), vec!["+525512345678"]);
        assert_eq!(all("12135550100"), vec!["+12135550100"]);
        assert!(all("123").is_empty());
        assert!(all("").is_empty());
    }

    #[test]
    fn parses_what_people_type() {
        assert_eq!(
            PhoneNumber::parse("(213) 555-0100").map(|p| p.0),
            Ok("+12135550100".into())
        );
        assert_eq!(
            PhoneNumber::parse("213.555.0100").map(|p| p.0),
            Ok("+12135550100".into())
        );
        assert_eq!(
            PhoneNumber::parse("+52 55 1234 5678").map(|p| p.0),
            Ok("+525512345678".into())
        );
        assert_eq!(
            PhoneNumber::parse(" +1 520 623 7874 ").map(|p| p.0),
            Ok("+15206237874".into())
        );
    }

    fn in_mx(s: &str) -> Result<String, Invalid> {
        PhoneNumber::parse_in("phone", s, Some(Country::MX)).map(|p| p.0)
    }

    #[test]
    fn mexican_forms_in_mexico() {
        for typed in [
            "55 1234 5678",
            "5512345678",
            "55.1234.5678",
            "55-1234-5678",
            "(55) 1234-5678",
            "52 55 1234 5678",
            "521 55 1234 5678",
            "1 55 1234 5678",
            "+52 55 1234 5678",
            "+52 1 55 1234 5678",
            "044 55 1234 5678",
            "045 55 1234 5678",
            "01 55 1234 5678",
            "011 52 55 1234 5678",
            "011 52 1 55 1234 5678",
            "00 52 55 1234 5678",
        ] {
            assert_eq!(in_mx(typed), Ok("+525512345678".into()), "{typed:?}");
        }
        assert_eq!(in_mx("664 123 4567"), Ok("+526641234567".into()));
        assert_eq!(in_mx("044 664 123 4567"), Ok("+526641234567".into()));
    }

    #[test]
    fn a_plus_names_its_own_country_whatever_was_chosen() {
        assert_eq!(in_mx("+1 213 555 0100"), Ok("+12135550100".into()));
        assert_eq!(
            PhoneNumber::parse_in("phone", "011 52 55 1234 5678", Some(Country::US)).map(|p| p.0),
            Ok("+525512345678".into())
        );
    }

    #[test]
    fn the_chosen_country_is_never_replaced() {
        // A US-only number read in Mexico is refused, not moved to the US.
        assert_eq!(
            in_mx("(213) 555-0100").map_err(|e| e.code),
            Err("phone_invalid")
        );
        // A Mexican-only number read in the US is refused, not moved to Mexico.
        let us = PhoneNumber::parse_in("phone", "664 123 4567", Some(Country::US));
        assert_eq!(us.map_err(|e| e.code), Err("phone_invalid"));
        assert_eq!(
            PhoneNumber::parse_in("phone", "55 1234 5678", Some(Country::US)).map(|p| p.0),
            Ok("+15512345678".into())
        );
    }

    #[test]
    fn a_number_valid_in_both_countries_is_never_guessed() {
        let err = PhoneNumber::parse("55 1234 5678").expect_err("ambiguous");
        assert_eq!(err.code, "phone_ambiguous");
        let readings: Vec<_> = err
            .readings
            .iter()
            .map(|r| {
                (
                    r.country.as_str(),
                    r.phone.as_str(),
                    r.international.as_str(),
                )
            })
            .collect();
        assert_eq!(
            readings,
            [
                ("MX", "+525512345678", "+52 55 1234 5678"),
                ("US", "+15512345678", "+1 551-234-5678")
            ]
        );
        // Valid in one country only: no question.
        assert_eq!(
            PhoneNumber::parse("664 123 4567").map(|p| p.0),
            Ok("+526641234567".into())
        );
        assert_eq!(
            PhoneNumber::parse("52 55 1234 5678").map(|p| p.0),
            Ok("+525512345678".into())
        );
    }

    #[test]
    fn costly_numbers_are_not_sent_to() {
        for costly in [
            "+1 900 555 0100",
            "+1 800 555 0100",
            "+44 909 879 0000",
            "+881 6 12345678",
            "+52 900 123 4567",
        ] {
            let p = PhoneNumber::parse(costly);
            if let Ok(p) = p {
                assert_eq!(
                    p.check_sms_allowed("phone").map_err(|e| e.code),
                    Err("phone_not_allowed"),
                    "{costly}"
                );
            }
        }
        let premium = PhoneNumber::parse("+1 900 555 0100").expect("valid");
        assert!(premium.check_sms_allowed("phone").is_err());
        for fine in [
            "+12135550100",
            "+525512345678",
            "+526641234567",
            "+502 5512 3456",
        ] {
            let p = PhoneNumber::parse(fine).expect("valid");
            assert_eq!(p.check_sms_allowed("phone"), Ok(()), "{fine}");
        }
    }

    #[test]
    fn countries_parse() {
        assert_eq!(Country::parse("country", " mx "), Ok(Country::MX));
        assert_eq!(
            Country::parse("country", "US").map(|c| c.to_string()),
            Ok("US".into())
        );
        for bad in ["", "MEX", "XX", "1", "zz"] {
            assert!(Country::parse("country", bad).is_err(), "{bad:?}");
        }
        let p = PhoneNumber::parse("+525512345678").expect("valid");
        assert_eq!(p.country(), Some(Country::MX));
        assert_eq!(p.international(), "+52 55 1234 5678");
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        for bad in [
            "",
            "   ",
            "hello",
            "123",
            "+1 000 000 0000",
            "+999 1234",
            &"9".repeat(40),
        ] {
            assert!(
                PhoneNumber::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn debug_does_not_leak_the_number() {
        let p = PhoneNumber::parse("+12135550100").expect("valid");
        assert!(!format!("{p:?}").contains("555"));
    }
}
