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
    // "1 55 1234 5678" is also +1 551-234-5678: asked, not guessed.
    assert_eq!(
        in_mx("1 55 1234 5678").map_err(|e| e.code),
        Err("phone_ambiguous")
    );
}

#[test]
fn a_plus_names_its_own_country_whatever_was_chosen() {
    assert_eq!(in_mx("+1 213 555 0100"), Ok("+12135550100".into()));
    assert_eq!(
        PhoneNumber::parse_in("phone", "011 52 55 1234 5678", Some(Country::US)).map(|p| p.0),
        Ok("+525512345678".into())
    );
}

/// "1" and ten digits: the North American form, never read as Mexican
/// without asking (the retired "+52 1" mobile form is its only Mexican
/// reading).
#[test]
fn one_and_ten_digits_is_asked_about_outside_the_us() {
    // 415 757 5405 is valid in both plans: asked, North American first.
    for country in [Some(Country::MX), None] {
        let err = PhoneNumber::parse_in("phone", "1-415-757-5405", country).expect_err("asked");
        assert_eq!(err.code, "phone_ambiguous", "{country:?}");
        let readings: Vec<&str> = err.readings.iter().map(|r| r.phone.as_str()).collect();
        assert_eq!(readings, ["+14157575405", "+524157575405"], "{country:?}");
    }
    // Chosen the US: the North American reading, no question.
    assert_eq!(
        PhoneNumber::parse_in("phone", "1 (415) 757-5405", Some(Country::US)).map(|p| p.0),
        Ok("+14157575405".into())
    );
    // Only one reading valid: that one, whatever was chosen.
    assert_eq!(
        PhoneNumber::parse_in("phone", "1 213 555 0100", Some(Country::MX)).map(|p| p.0),
        Ok("+12135550100".into())
    );
    // A number with "+" names its country: no question.
    assert_eq!(
        PhoneNumber::parse_in("phone", "+52 1 55 1234 5678", Some(Country::MX)).map(|p| p.0),
        Ok("+525512345678".into())
    );
}

#[test]
fn pasted_links_full_width_digits_and_extensions() {
    assert_eq!(
        PhoneNumber::parse("tel:+1-213-555-0100").map(|p| p.0),
        Ok("+12135550100".into())
    );
    assert_eq!(
        PhoneNumber::parse("TEL:+52 55 1234 5678").map(|p| p.0),
        Ok("+525512345678".into())
    );
    assert_eq!(
        PhoneNumber::parse("＋１ ２１３ ５５５ ０１００").map(|p| p.0),
        Ok("+12135550100".into())
    );
    for typed in [
        "(213) 555-0100 ext. 12",
        "213 555 0100 x12",
        "2135550100x12",
        "213-555-0100 #12",
    ] {
        assert_eq!(
            PhoneNumber::parse(typed).map_err(|e| e.code),
            Err("phone_extension"),
            "{typed}"
        );
    }
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

/// The table of typed inputs (crates/avisa-core/data/phone-readings.csv,
/// made by make-phone-table.py from libphonenumber's metadata and the
/// numbering plans where the two differ): every row reads as expected.
#[test]
fn the_phone_reader_table() {
    let table = include_str!("../data/phone-readings.csv");
    let mut rows = 0;
    let mut wrong = Vec::new();
    for line in table.lines().skip(1) {
        // input,country,expected,rule,libphonenumber (no field has a comma)
        let cols: Vec<&str> = line.split(',').collect();
        let [input, country, want, rule, _lib] = cols[..] else {
            panic!("bad row {line:?}");
        };
        rows += 1;
        let country =
            (!country.is_empty()).then(|| Country::parse("country", country).expect("country"));
        let got = match PhoneNumber::parse_in("phone", input, country) {
            Ok(p) => p.as_str().to_string(),
            Err(e) if e.code == "phone_ambiguous" => format!(
                "ask:{}",
                e.readings
                    .iter()
                    .map(|r| r.phone.as_str())
                    .collect::<Vec<_>>()
                    .join("|")
            ),
            Err(_) => "invalid".to_string(),
        };
        if got != want {
            wrong.push(format!(
                "{input:?} in {country:?} ({rule}): want {want}, got {got}"
            ));
        }
    }
    assert!(rows >= 500, "{rows} rows");
    assert!(
        wrong.is_empty(),
        "{} of {rows} rows read wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
