//! The languages Avisa speaks. Spanish first.

use crate::kinds::text_enum;

text_enum! {
    /// A language of the app, the messages and the console.
    Language ("language") {
        Es = "es",
        En = "en",
    }
}

// Spanish first. (`text_enum!` derives a fixed set, so no `#[default]`.)
#[allow(clippy::derivable_impls)]
impl Default for Language {
    fn default() -> Self {
        Language::Es
    }
}

impl Language {
    pub fn code(self) -> &'static str {
        self.as_str()
    }

    pub fn from_code(code: &str) -> Option<Self> {
        code.parse().ok()
    }
}
