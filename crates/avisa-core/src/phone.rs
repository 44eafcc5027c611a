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
    // A `tel:` link pasted whole, and the full-width digits of an Asian
    // keyboard, are read as what they say.
    let input = input.trim();
    let input = match input.get(..4) {
        Some(head) if head.eq_ignore_ascii_case("tel:") => &input[4..],
        _ => input,
    };
    let chars = input.trim().chars().map(|c| match c {
        '\u{ff10}'..='\u{ff19}' => char::from(b'0' + (c as u32 - 0xff10) as u8),
        '\u{ff0b}' => '+',
        '\u{ff08}' => '(',
        '\u{ff09}' => ')',
        '\u{ff0d}' | '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' => '-',
        '\u{3000}' => ' ',
        c => c,
    });
    for (i, c) in chars.enumerate() {
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

/// Whether a typed number carries an extension ("ext. 12", "x12", "#12"),
/// which no SMS can reach.
fn has_extension(input: &str) -> bool {
    let lower = input.to_lowercase();
    lower.contains("ext") || lower.contains('#') || lower.contains(" x") || {
        // "5551234x12": an x between digits.
        let b = lower.as_bytes();
        b.windows(3)
            .any(|w| w[0].is_ascii_digit() && w[1] == b'x' && w[2].is_ascii_digit())
    }
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
        if trimmed.chars().count() > 32 {
            return Err(not_a_number());
        }
        if has_extension(trimmed) {
            return Err(Invalid::new(
                field,
                "phone_extension",
                "an extension cannot receive an SMS: give the number without it, a mobile if you can",
            ));
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
        // "1" and ten digits, however punctuated, is how the US and Canada
        // write a number; in Mexico it was only ever the retired "+52 1"
        // mobile form. Never read as Mexican without asking: chosen
        // Mexico, or no country, both readings are offered (the North
        // American first) when both are valid.
        if country != Some(Country::US) && digits.len() == 11 && digits.starts_with('1') {
            let north = read(&format!("+{digits}"), Country::US);
            let mexican = read(&digits, Country::MX);
            return match (north, mexican) {
                (Some(na), Some(mx)) if na != mx => Err(Invalid::new(
                    field,
                    "phone_ambiguous",
                    "1 and ten digits is a US or Canadian number, or an old Mexican mobile form; choose which",
                )
                .with_readings(vec![na.reading(), mx.reading()])),
                (Some(one), _) | (None, Some(one)) => Ok(one),
                (None, None) => Err(no_such()),
            };
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
        // A keypad asks nobody: every reading of an ambiguous form counts.
        let every = |r: Result<PhoneNumber, Invalid>| match r {
            Ok(p) => vec![p],
            Err(e) => e
                .readings
                .into_iter()
                .map(|r| PhoneNumber(r.phone))
                .collect(),
        };
        let readings = [Country::US, Country::MX]
            .into_iter()
            .map(|c| every(Self::parse_in("phone", digits, Some(c))))
            .chain(std::iter::once(
                with_plus
                    .map(|d| every(Self::parse_in("phone", &d, None)))
                    .unwrap_or_default(),
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
#[path = "phone_tests.rs"]
mod tests;
