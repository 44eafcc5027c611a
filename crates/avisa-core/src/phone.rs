//! Phone numbers, parsed to E.164 once at the edge.

use std::fmt;

use phonenumber::{Mode, country};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Invalid;

/// A valid phone number in E.164 form (`+12135550100`).
///
/// `Debug` never prints the number, so a stray `{:?}` in a log line does not
/// leak it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses what a person types: "(213) 555-0100" (US by default),
    /// "+52 55 1234 5678", "001 520 623 7874" is not accepted (use +).
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        Self::parse_field("phone", input)
    }

    /// As [`PhoneNumber::parse`], naming the field in the error.
    pub fn parse_field(field: &'static str, input: &str) -> Result<Self, Invalid> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(Invalid::new(
                field,
                "phone_required",
                "a phone number is required",
            ));
        }
        if trimmed.len() > 32 {
            return Err(Invalid::new(field, "phone_invalid", "not a phone number"));
        }
        let parsed = phonenumber::parse(Some(country::Id::US), trimmed)
            .map_err(|_| Invalid::new(field, "phone_invalid", "not a phone number"))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(Invalid::new(
                field,
                "phone_invalid",
                "this phone number does not exist in its country's numbering plan",
            ));
        }
        Ok(PhoneNumber(parsed.format().mode(Mode::E164).to_string()))
    }

    /// Rebuilds a number that was stored in E.164 form by this type.
    pub fn from_e164_unchecked(e164: String) -> Self {
        PhoneNumber(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
