//! The one error of the domain layer: an input that does not parse.

/// An input that was refused, with the field it came from, a stable code that
/// clients can translate, and a human-readable reason (English; the apps show
/// their own Spanish text keyed by `code`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
    /// For `phone_ambiguous`: the readings the person chooses between.
    pub readings: Vec<PhoneReading>,
}

/// One way to read what was typed as a phone number, offered back to the
/// person when the country is not clear.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PhoneReading {
    /// E.164: "+525512345678".
    pub phone: String,
    /// ISO 3166: "MX".
    pub country: String,
    /// "+52 55 1234 5678".
    pub international: String,
}

impl Invalid {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
            readings: Vec::new(),
        }
    }

    pub fn with_readings(mut self, readings: Vec<PhoneReading>) -> Self {
        self.readings = readings;
        self
    }
}

/// Whether a character changes how the text around it is shown without
/// being seen itself: bidirectional overrides, embeddings, isolates and
/// marks, zero-width spaces and joiners of words, the byte-order mark. In a
/// name they let "…ZTIRF" show as "FRITZ" in the console. (The zero-width
/// joiner and non-joiner, which emoji and some scripts need, are allowed.)
pub fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}' | '\u{200E}' | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}')
}

/// Refuses text that holds control characters or invisible formatting
/// (422 `invalid_characters`): what people read must be what was written.
pub fn check_visible(field: &'static str, value: &str) -> Result<(), Invalid> {
    // Line breaks are text in a message; every other control is not.
    if value
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\r' && c != '\t') || is_invisible_format(c))
    {
        return Err(Invalid::new(
            field,
            "invalid_characters",
            format!("{field} has invisible or control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_formatting_is_refused_and_ordinary_text_is_not() {
        assert!(check_visible("name", "María Pérez").is_ok());
        assert!(
            check_visible(
                "message",
                "Hola,\nllama a la abogada 👨\u{200D}👩\u{200D}👧"
            )
            .is_ok()
        );
        for bad in [
            "\u{202E}ZTIRF",
            "Ana\u{200B}",
            "a\u{2066}b\u{2069}",
            "\u{FEFF}x",
            "a\u{0007}b",
        ] {
            assert_eq!(
                check_visible("name", bad).map_err(|e| e.code),
                Err("invalid_characters"),
                "{bad:?}"
            );
        }
    }
}
