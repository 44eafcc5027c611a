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
}

impl Invalid {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }
}
