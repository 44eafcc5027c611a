//! US states and territories that Avisa routes by: two-letter USPS codes.

/// The 50 states, DC, and the territories the consular directory covers.
pub const STATES: &[(&str, &str)] = &[
    ("AL", "Alabama"),
    ("AK", "Alaska"),
    ("AZ", "Arizona"),
    ("AR", "Arkansas"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DE", "Delaware"),
    ("DC", "District of Columbia"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("HI", "Hawaii"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("IA", "Iowa"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("ME", "Maine"),
    ("MD", "Maryland"),
    ("MA", "Massachusetts"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MS", "Mississippi"),
    ("MO", "Missouri"),
    ("MT", "Montana"),
    ("NE", "Nebraska"),
    ("NV", "Nevada"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NY", "New York"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PA", "Pennsylvania"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VT", "Vermont"),
    ("VA", "Virginia"),
    ("WA", "Washington"),
    ("WV", "West Virginia"),
    ("WI", "Wisconsin"),
    ("WY", "Wyoming"),
    ("PR", "Puerto Rico"),
    ("VI", "U.S. Virgin Islands"),
    ("GU", "Guam"),
    ("MP", "Northern Mariana Islands"),
    ("AS", "American Samoa"),
];

/// Returns the canonical code for `code` (any case), if it is a known state.
pub fn normalize(code: &str) -> Option<&'static str> {
    let upper = code.trim().to_ascii_uppercase();
    STATES.iter().find(|(c, _)| *c == upper).map(|(c, _)| *c)
}

/// Folds a county name for comparison: lower case, no accents, no "County" /
/// "Parish" suffix, single spaces ("Doña Ana County" == "dona ana").
pub fn fold_county(name: &str) -> String {
    let mut folded: String = name
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'Á' | 'À' | 'Ä' => 'a',
            'é' | 'è' | 'É' | 'È' => 'e',
            'í' | 'ì' | 'Í' => 'i',
            'ó' | 'ò' | 'ö' | 'Ó' | 'Ö' => 'o',
            'ú' | 'ù' | 'ü' | 'Ú' | 'Ü' => 'u',
            'ñ' | 'Ñ' => 'n',
            '.' => ' ',
            other => other.to_ascii_lowercase(),
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for suffix in [" county", " parish", " borough", " municipio"] {
        if let Some(stripped) = folded.strip_suffix(suffix) {
            folded = stripped.to_string();
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize("ca"), Some("CA"));
        assert_eq!(normalize(" pr "), Some("PR"));
        assert_eq!(normalize("XX"), None);
        assert_eq!(fold_county("Doña Ana County"), "dona ana");
        assert_eq!(fold_county("St. Lucie"), "st lucie");
        assert_eq!(fold_county("  los  angeles "), "los angeles");
    }
}
