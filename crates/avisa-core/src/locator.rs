//! What a family needs to find a detained person in ICE's Online Detainee
//! Locator (locator.ice.gov): the country of birth, and either the A-number
//! or the full legal name (the date of birth narrows a name search). Families
//! rarely have them at hand; the person writes them once, sealed with their
//! key, and chooses which contacts receive them after an alert.

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};

use crate::{Invalid, Language};

/// The person's details for the detainee locator; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locator {
    /// Full legal name, as on the person's documents.
    #[serde(default)]
    pub legal_name: Option<String>,
    /// Country of birth, as the person writes it ("México").
    #[serde(default)]
    pub birth_country: Option<String>,
    /// Date of birth, "YYYY-MM-DD".
    #[serde(default)]
    pub birth_date: Option<String>,
    /// The Alien Registration Number: nine digits (an eight-digit one with a
    /// leading zero, as the locator asks).
    #[serde(default)]
    pub a_number: Option<String>,
}

/// The longest legal name and country accepted.
pub const MAX_NAME: usize = 100;
pub const MAX_COUNTRY: usize = 56;

fn text(field: &'static str, raw: Option<&str>, max: usize) -> Result<Option<String>, Invalid> {
    let Some(value) = raw.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(Invalid::new(
            field,
            "too_long",
            format!("{field} is longer than {max} characters"),
        ));
    }
    crate::invalid::check_visible(field, value)?;
    Ok(Some(value.to_string()))
}

/// "A 012-345-678", "a12345678", "012345678": nine digits, an eight-digit
/// number padded with a leading zero.
pub fn parse_a_number(raw: &str) -> Result<String, Invalid> {
    let bad = || {
        Invalid::new(
            "a_number",
            "a_number_invalid",
            "an A-number is 8 or 9 digits, with or without the A",
        )
    };
    let trimmed = raw.trim();
    let rest = trimmed
        .strip_prefix(['A', 'a'])
        .unwrap_or(trimmed)
        .trim_start_matches(['-', '#', ' ', ':']);
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.'))
    {
        return Err(bad());
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        9 => Ok(digits),
        8 => Ok(format!("0{digits}")),
        _ => Err(bad()),
    }
}

/// "1990-05-01", a real date between 1900 and today.
pub fn parse_birth_date(raw: &str, now_millis: i64) -> Result<String, Invalid> {
    let bad = || {
        Invalid::new(
            "birth_date",
            "birth_date_invalid",
            "a date of birth is YYYY-MM-DD, between 1900 and today",
        )
    };
    let date = date_of(raw.trim()).ok_or_else(bad)?;
    let today = OffsetDateTime::from_unix_timestamp(now_millis.div_euclid(1000))
        .map(|t| t.date())
        .map_err(|_| bad())?;
    if date.year() < 1900 || date > today {
        return Err(bad());
    }
    Ok(format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    ))
}

fn present(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

fn date_of(s: &str) -> Option<Date> {
    let mut parts = s.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

impl Locator {
    /// Reads what the person typed: blanks are absent; each field checked.
    pub fn parse(
        legal_name: Option<&str>,
        birth_country: Option<&str>,
        birth_date: Option<&str>,
        a_number: Option<&str>,
        now_millis: i64,
    ) -> Result<Self, Invalid> {
        Ok(Locator {
            legal_name: text("legal_name", legal_name, MAX_NAME)?,
            birth_country: text("birth_country", birth_country, MAX_COUNTRY)?,
            birth_date: present(birth_date)
                .map(|d| parse_birth_date(d, now_millis))
                .transpose()?,
            a_number: present(a_number).map(parse_a_number).transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        *self == Locator::default()
    }

    /// Whether the locator can search with it: the country of birth, and
    /// the A-number or the legal name.
    pub fn is_searchable(&self) -> bool {
        self.birth_country.is_some() && (self.a_number.is_some() || self.legal_name.is_some())
    }

    /// The SMS to a chosen contact after an alert ("Para encontrarlo en
    /// locator.ice.gov: …"), in the contact's language. The date is written
    /// out ("1 de mayo de 1990"): 01/05 reads as January in the US and as
    /// May in Mexico.
    pub fn sms(&self, lang: Language, person_name: &str) -> String {
        let who = crate::messages::short_name(person_name);
        let mut parts = Vec::new();
        let (a, name, country, born) = match lang {
            Language::Es => (
                "Numero A",
                "Nombre legal",
                "Pais de nacimiento",
                "Nacimiento",
            ),
            Language::En => ("A-number", "Legal name", "Country of birth", "Born"),
        };
        if let Some(v) = &self.a_number {
            parts.push(format!("{a}: {v}"));
        }
        if let Some(v) = &self.legal_name {
            parts.push(format!("{name}: {v}"));
        }
        if let Some(v) = &self.birth_country {
            parts.push(format!("{country}: {v}"));
        }
        if let Some(v) = self.birth_date.as_deref().and_then(date_of) {
            parts.push(format!("{born}: {}", spelled(v, lang)));
        }
        let head = match (lang, who.is_empty()) {
            (Language::Es, false) => {
                format!("Avisa: para buscar a {who} si lo detienen, en locator.ice.gov:")
            }
            (Language::Es, true) => "Avisa: para buscarlo en locator.ice.gov:".to_string(),
            (Language::En, false) => {
                format!("Avisa: to find {who} if detained, at locator.ice.gov:")
            }
            (Language::En, true) => "Avisa: to find them at locator.ice.gov:".to_string(),
        };
        format!("{head} {}.", parts.join(". "))
    }
}

fn spelled(d: Date, lang: Language) -> String {
    const ES: [&str; 12] = [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ];
    let m = usize::from(u8::from(d.month())) - 1;
    match lang {
        Language::Es => format!("{} de {} de {}", d.day(), ES[m], d.year()),
        Language::En => format!("{} {}, {}", d.month(), d.day(), d.year()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_601_600_000; // 2026-12-07

    #[test]
    fn a_numbers_are_read_as_people_write_them() {
        for (typed, want) in [
            ("A012345678", "012345678"),
            ("a 012-345-678", "012345678"),
            ("A-12345678", "012345678"),
            ("212.345.678", "212345678"),
            (" A# 212 345 678 ", "212345678"),
        ] {
            assert_eq!(parse_a_number(typed).as_deref(), Ok(want), "{typed}");
        }
        for bad in ["A1234567", "A1234567890", "B012345678", "12345678x", ""] {
            assert_eq!(
                parse_a_number(bad).map_err(|e| e.code),
                Err("a_number_invalid"),
                "{bad}"
            );
        }
    }

    #[test]
    fn dates_of_birth_are_real_and_past() {
        assert_eq!(
            parse_birth_date("1990-05-01", NOW).as_deref(),
            Ok("1990-05-01")
        );
        for bad in [
            "1990-02-30",
            "01/05/1990",
            "1899-12-31",
            "2027-01-01",
            "1990-5-1",
        ] {
            assert!(parse_birth_date(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_sms_spells_the_date_and_says_where_to_search() {
        let l = Locator::parse(
            Some(" José Luis Hernández Cruz "),
            Some("México"),
            Some("1990-05-01"),
            Some("a12345678"),
            NOW,
        )
        .expect("valid");
        assert!(l.is_searchable());
        assert_eq!(
            l.sms(Language::Es, "José Luis Hernández"),
            "Avisa: para buscar a José L. si lo detienen, en locator.ice.gov: Numero A: 012345678. Nombre legal: José Luis Hernández Cruz. Pais de nacimiento: México. Nacimiento: 1 de mayo de 1990."
        );
        assert!(
            l.sms(Language::En, "José Luis Hernández")
                .ends_with("Born: May 1, 1990.")
        );
        // Without the country of birth the locator cannot search.
        let partial = Locator::parse(Some("X"), None, None, Some("012345678"), NOW).expect("ok");
        assert!(!partial.is_searchable());
        assert!(
            Locator::parse(None, Some(" "), None, None, NOW)
                .expect("ok")
                .is_empty()
        );
    }
}
